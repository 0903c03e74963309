"""How the CLI prints: rich tables on a terminal, `--output json` for scripts, `--output occi`
for the OCCI text rendering (text/plain, GFD.229 §6) of what was read.

Answers go to stdout; notes and wait progress go to stderr so that stdout stays parseable.
Imports rich, click, `occipy.client`, `occipy.model` and `occipy.rendering.text`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from occipy.client import Entity, Model, Progress, ServerEvent
from occipy.model.category import Action, AttributeDef, Kind, Mixin
from occipy.rendering import text
from occipy.rendering.messages import CategoryDefinition

__all__ = ["Printer", "entity_document", "short"]


def short(location: str) -> str:
    """A location as a path (what tables show); external URLs stay whole."""
    parts = urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "") if parts.scheme else location


def _term(type_id: str) -> str:
    return type_id.rpartition("#")[2] or type_id


def entity_document(entity: Entity) -> dict[str, Any]:
    """An entity as a JSON-able dict (`--output json`)."""
    document: dict[str, Any] = {
        "location": entity.location,
        "kind": entity.kind,
        "mixins": list(entity.mixins),
        "attributes": dict(entity.attributes),
        "actions": list(entity.actions),
    }
    if entity.links:
        document["links"] = [entity_document(link) for link in entity.links]
    return document


def _attribute_document(adef: AttributeDef) -> dict[str, Any]:
    document: dict[str, Any] = {"type": adef.type, "mutable": adef.mutable, "required": adef.required}
    if adef.default is not None:
        document["default"] = adef.default
    if adef.pattern:
        document["pattern"] = dict(adef.pattern)
    if adef.description:
        document["description"] = adef.description
    return document


def _category_document(category: Kind | Mixin | Action) -> dict[str, Any]:
    document: dict[str, Any] = {"type_id": category.type_id, "term": category.term, "scheme": category.scheme}
    if category.title:
        document["title"] = category.title
    if isinstance(category, Kind):
        if category.parent:
            document["parent"] = category.parent
    elif isinstance(category, Mixin):
        if category.depends:
            document["depends"] = list(category.depends)
        if category.applies:
            document["applies"] = list(category.applies)
    if not isinstance(category, Action):
        if category.location:
            document["location"] = category.location
        if category.actions:
            document["actions"] = list(category.actions)
    if category.attributes:
        document["attributes"] = {adef.name: _attribute_document(adef) for adef in category.attributes}
    return document


def _value_text(value: object) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


class Printer:
    """Prints answers in the chosen output format."""

    def __init__(self, output: str) -> None:
        self.output = output
        self.out = Console(highlight=False)
        if not self.out.is_terminal and "COLUMNS" not in os.environ:
            self.out.width = 160  # piped tables: wide enough for type ids and paths
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)

    # ---- plain pieces -----------------------------------------------------------------------

    def _json(self, document: object) -> None:
        click.echo(json.dumps(document, indent=2, ensure_ascii=False))

    def _occi(self, fields: Sequence[text.Field]) -> None:
        click.echo(text.body_from_fields(fields).decode("utf-8"), nl=False)

    def note(self, message: str) -> None:
        """A remark for the human (stderr), e.g. "deleted /compute/1"."""
        self.err.print(escape(message))

    # ---- answers ----------------------------------------------------------------------------

    def location(self, location: str) -> None:
        """A created entity's location."""
        if self.output == "json":
            self._json({"location": location})
        elif self.output == "occi":
            self._occi(text.render_locations([location]))
        else:
            click.echo(location)

    def locations(self, locations: Sequence[str]) -> None:
        if self.output == "json":
            self._json(list(locations))
        elif self.output == "occi":
            self._occi(text.render_locations(locations))
        else:
            for location in locations:
                click.echo(location)

    def entity(self, entity: Entity, model: Model) -> None:
        if self.output == "json":
            self._json(entity_document(entity))
            return
        if self.output == "occi":
            view = Entity(kind=entity.kind, entity_id=entity.entity_id, location=short(entity.location),
                          mixins=entity.mixins, attributes=dict(entity.attributes),
                          links=tuple(_path_view(link) for link in entity.links), actions=entity.actions)
            self._occi(text.render_entity(view))
            return
        table = Table(title=escape(short(entity.location)), show_header=False, title_justify="left")
        table.add_column("", style="bold")
        table.add_column("")
        table.add_row("kind", escape(entity.kind))
        if entity.mixins:
            table.add_row("mixins", escape("\n".join(entity.mixins)))
        state, message = model.state_of(entity)
        if state:
            table.add_row("state", escape(state + (f" ({message})" if message else "")))
        if entity.actions:
            table.add_row("actions", escape(", ".join(_term(a) for a in entity.actions)))
        for name in sorted(entity.attributes):
            table.add_row(escape(name), escape(_value_text(entity.attributes[name])))
        self.out.print(table)
        if entity.links:
            links = Table(title="links", title_justify="left")
            for column in ("location", "kind", "target", "state"):
                links.add_column(column)
            for link in entity.links:
                link_state, _ = model.state_of(link)
                links.add_row(escape(short(link.location) or "?"), escape(_term(link.kind)),
                              escape(link.target or ""), escape(link_state or ""))
            self.out.print(links)

    def entities(self, entities: Sequence[Entity], model: Model) -> None:
        if self.output == "json":
            self._json([entity_document(e) for e in entities])
            return
        if self.output == "occi":
            self._occi(text.render_locations([e.location for e in entities]))
            return
        table = Table()
        for column in ("location", "kind", "title", "state", "mixins"):
            table.add_column(column)
        for entity in entities:
            state, message = model.state_of(entity)
            table.add_row(escape(short(entity.location)), escape(_term(entity.kind)), escape(entity.title or ""),
                          escape((state or "") + (f" ({message})" if message else "")),
                          escape(", ".join(_term(m) for m in entity.mixins)))
        self.out.print(table)

    def categories(self, categories: Sequence[Kind | Mixin | Action], model: Model) -> None:
        if self.output == "json":
            grouped: dict[str, list[dict[str, Any]]] = {"kinds": [], "mixins": [], "actions": []}
            for category in categories:
                key = "kinds" if isinstance(category, Kind) else "mixins" if isinstance(category, Mixin) else "actions"
                grouped[key].append(_category_document(category))
            self._json({key: value for key, value in grouped.items() if value})
            return
        if self.output == "occi":
            wanted = {c.type_id for c in categories}
            self._occi(text.render_category_definitions(
                [d for d in model.definitions if d.type_id in wanted] or _definitions(categories)))
            return
        for title, cls in (("kinds", Kind), ("mixins", Mixin), ("actions", Action)):
            chosen = [c for c in categories if isinstance(c, cls)]
            if not chosen:
                continue
            table = Table(title=title, title_justify="left")
            table.add_column("term", style="bold")
            table.add_column("scheme")
            table.add_column("title")
            if cls is not Action:
                table.add_column("location")
                table.add_column("parent / depends")
            for category in chosen:
                row = [escape(category.term), escape(category.scheme), escape(category.title or "")]
                if isinstance(category, Kind):
                    row += [escape(category.location or ""), escape(_term(category.parent or ""))]
                elif isinstance(category, Mixin):
                    row += [escape(category.location or ""), escape(", ".join(_term(d) for d in category.depends))]
                table.add_row(*row)
            self.out.print(table)

    def event(self, event: ServerEvent) -> None:
        """One change of `occi events`: a JSON object a line (-o json), else one readable line."""
        if self.output == "json":
            click.echo(json.dumps({"id": event.id, **event.data}, ensure_ascii=False))
            return
        when = time.strftime("%H:%M:%S", time.localtime(event.time)) if event.time is not None else "--:--:--"
        style = _EVENT_STYLES.get(event.type, "")
        what = event.type
        if event.type == "operation":
            what = f"{event.action or 'operation'} {event.state or ''}".strip()
        elif event.state and event.type != "deleted":
            what = f"{event.type} {event.state}" if event.type != "state" else f"-> {event.state}"
        parts = [f"[dim]{when} #{escape(event.id)}[/dim]", f"[{style}]{escape(what)}[/{style}]" if style else escape(what)]
        if event.location:
            parts.append(escape(short(event.location)))
        if event.kind:
            parts.append(f"[dim]{escape(_term(event.kind))}[/dim]")
        if event.message:
            parts.append(escape(f"({event.message})"))
        self.out.print("  ".join(parts), soft_wrap=True)

    # ---- progress ---------------------------------------------------------------------------

    @contextmanager
    def progress(self, location: str) -> Iterator[Any]:
        """A callback for `wait_for` that shows each new state: a spinner on a terminal,
        one line per change otherwise."""
        last: list[str] = []

        def line(update: Progress) -> str:
            what = update.state or "unknown"
            if update.operation is not None:
                what = f"operation {update.operation.action or ''} {update.operation.state}".replace("  ", " ")
            if update.message:
                what += f" ({update.message})"
            return f"{short(location)}: {what} [{update.elapsed:.0f}s]"

        if self.err.is_terminal:
            with self.err.status(f"waiting for {escape(short(location))}") as status:
                yield lambda update: status.update(escape(line(update)))
        else:
            def report(update: Progress) -> None:
                current = line(update).rsplit(" [", 1)[0]
                if not last or last[-1] != current:
                    last.append(current)
                    self.err.print(escape(current))
            yield report


_EVENT_STYLES = {"created": "green", "deleted": "red", "state": "cyan", "updated": "yellow", "operation": "blue",
                 "lost": "bold red"}


def _path_view(link: Entity) -> Entity:
    return Entity(kind=link.kind, entity_id=link.entity_id, location=short(link.location),
                  mixins=link.mixins, attributes=dict(link.attributes))


def _definitions(categories: Sequence[Kind | Mixin | Action]) -> list[CategoryDefinition]:
    result: list[CategoryDefinition] = []
    for category in categories:
        if isinstance(category, Kind):
            result.append(CategoryDefinition(category.scheme, category.term, "kind", category.title,
                                             (category.parent,) if category.parent else (), (),
                                             category.location, category.attributes, category.actions))
        elif isinstance(category, Mixin):
            result.append(CategoryDefinition(category.scheme, category.term, "mixin", category.title,
                                             category.depends, category.applies, category.location,
                                             category.attributes, category.actions))
        else:
            result.append(CategoryDefinition(category.scheme, category.term, "action", category.title,
                                             attributes=category.attributes))
    return result
