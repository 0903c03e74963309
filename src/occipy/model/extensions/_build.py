"""Categories and state machines of one extension, built from its part of the spec catalogue.

`occipy.model._catalogue_data.EXTENSIONS[name]` holds the catalogue records an extension module
serves; this turns them into frozen Kind/Mixin/Action values in registration order, with the
module's overrides (an attribute pattern, a widened `applies`) applied by type id or name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping
from typing import Any

from occipy.model.catalogue import DRAFT_04, attribute_from_catalogue
from occipy.model.category import Action, AttributeDef, Category, Kind, Mixin
from occipy.model.extensions.base import StateMachine, machine_from_catalogue

AttributeFix = Callable[[AttributeDef], AttributeDef]
CategoryFix = Callable[[Category], Category]

# RFC 3339 §5.6 date-time: full-date "T" full-time, where full-time carries a "Z" or a numeric
# offset. Deliberately upper-case "T" and "Z" only, as RFC 3339 §5.6 NOTE allows ("MAY further
# limit the date/time syntax so that the letters 'T' and 'Z' ... are always upper case"), and no
# leap second (:60). Whether the day exists (February 30) is checked by parsing, not here.
RFC3339 = (r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d+)?"
           r"(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$")
DATE_TIME_SCHEMA: Mapping[str, Any] = {"$schema": DRAFT_04, "type": "string", "pattern": RFC3339,
                                       "format": "date-time"}


def attributes(specs: list[Mapping[str, Any]], fixes: Mapping[str, AttributeFix]) -> tuple[AttributeDef, ...]:
    result = []
    for spec in specs:
        adef = attribute_from_catalogue(spec)
        fix = fixes.get(adef.name)
        result.append(fix(adef) if fix is not None else adef)
    return tuple(result)


def categories(data: Mapping[str, Any], *, attribute_fixes: Mapping[str, AttributeFix] | None = None,
               category_fixes: Mapping[str, CategoryFix] | None = None,
               skip: Collection[str] = ()) -> tuple[Category, ...]:
    """Actions, kinds (parents first) and mixins (parents first) of one extension's records."""
    afix = attribute_fixes or {}
    cfix = category_fixes or {}
    result: list[Category] = []
    for spec in data["actions"]:
        result.append(Action(scheme=spec["scheme"], term=spec["term"], title=spec.get("title"),
                             attributes=attributes(spec["attributes"], afix)))
    own_kinds = {spec["id"] for spec in data["kinds"]}
    kinds = sorted(data["kinds"], key=lambda spec: spec["parent"] in own_kinds)
    for spec in kinds:
        result.append(Kind(scheme=spec["scheme"], term=spec["term"], title=spec.get("title"),
                           attributes=attributes(spec["attributes"], afix), actions=tuple(spec.get("actions", ())),
                           parent=spec["parent"], location=spec["location"]))
    for spec in sorted(data["mixins"], key=lambda spec: len(spec.get("depends", ()))):
        result.append(Mixin(scheme=spec["scheme"], term=spec["term"], title=spec.get("title"),
                            attributes=attributes(spec.get("attributes", []), afix),
                            actions=tuple(spec.get("actions", ())), depends=tuple(spec.get("depends", ())),
                            applies=tuple(spec.get("applies", ())), location=spec["location"]))
    fixed = [cfix[c.type_id](c) if c.type_id in cfix else c for c in result if c.type_id not in skip]
    return tuple(fixed)


def machines(data: Mapping[str, Any], kinds: Collection[str]) -> tuple[StateMachine, ...]:
    """The catalogue state machines of these kinds (mixin machines such as SLA terms are left out)."""
    return tuple(machine_from_catalogue(spec) for spec in data["state_machines"] if spec["entity"] in kinds)


def aliases(records: list[Mapping[str, Any]], served_by: str, kind: str) -> dict[str, str]:
    """alias -> canonical of the catalogue aliases of one kind ("category", "attribute", ...)."""
    return {a["alias"]: a["canonical"] for a in records if a["served_by"] == served_by and a["kind"] == kind}


def replace(category: Category, **changes: Any) -> Category:
    return dataclasses.replace(category, **changes)
