"""OCCI text renderings: text/plain, text/occi+plain (body lines) and text/occi (headers), GFD.229.

Both media types carry the same four fields (Category, Link, X-OCCI-Attribute, X-OCCI-Location)
with one grammar; only the carrier differs. So the module works in two steps: a carrier
(`fields_from_body` / `fields_from_headers`, `body_from_fields` / `headers_from_fields`) turns
bytes or headers into a list of `Field`s, one value each, and the `parse_*` / `render_*`
functions turn fields into `messages.py` values and model objects into fields. Parsers never
consult the registry. Imports `occipy.model`, `occipy.errors` and the rendering messages; no I/O.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Final

from occipy.errors import ParseError
from occipy.model.category import Action, AttributeDef, AttributeValue, Kind, Mixin, split_type_id
from occipy.model.entity import Entity
from occipy.model.registry import RESOURCE, Registry
from occipy.rendering import _abnf
from occipy.rendering._abnf import quote, split_outside_quotes, unquote
from occipy.rendering.messages import (
    ActionInvocation,
    CategoryDefinition,
    CategoryRef,
    EntityMessage,
    Filter,
    LinkMessage,
)

Field = tuple[str, str]
"""(canonical field name, one value), e.g. ("X-OCCI-Attribute", 'occi.core.title="vm"')."""

CATEGORY: Final = "Category"
LINK: Final = "Link"
ATTRIBUTE: Final = "X-OCCI-Attribute"
LOCATION: Final = "X-OCCI-Location"
FIELD_NAMES: Final = (CATEGORY, LINK, ATTRIBUTE, LOCATION)

# Lower-cased wire names -> canonical names. GFD.229 field names are case-insensitive (HTTP);
# X-OCCI-Category and X-OCCI-Link are what rOCCI-core 5 emits in header mode (text-rendering.md §3).
_NAMES: Final[Mapping[str, str]] = {
    "category": CATEGORY,
    "x-occi-category": CATEGORY,
    "link": LINK,
    "x-occi-link": LINK,
    "x-occi-attribute": ATTRIBUTE,
    "x-occi-location": LOCATION,
}
# rOCCI-core 5 renders location lists as `Location` in header mode; pOCCI accepts both.
_LOCATION_ALIAS: Final = "location"

_CORE_ID: Final = "occi.core.id"
_TARGET_KIND: Final = "occi.core.target.kind"
# Link parameters that are not link attributes (GFD.229 §4, Link).
_LINK_PARAMETERS: Final = frozenset({"rel", "self", "category"})
_OBS_FOLD: Final = re.compile(r"\r?\n[ \t]+")


# =============================================================================================
# carriers
# =============================================================================================


def fields_from_body(body: bytes) -> list[Field]:
    """The fields of a text/plain (text/occi+plain) body, one value each (GFD.229 §6).

    UTF-8; CRLF or LF; blank lines and a line that is exactly `OK` are ignored; a line starting
    with SP/HTAB continues the previous one (obsolete folding). Any other field name -> ParseError.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(f"text/plain body is not valid UTF-8: {exc.reason} at byte {exc.start}") from None
    text = text.removeprefix("\ufeff")
    # Split on LF only: str.splitlines() would also break at VT, FF, NEL, U+2028..., which may
    # appear raw inside a quoted-string.
    lines: list[str] = []
    for raw in text.split("\n"):
        line = raw.removesuffix("\r")
        if line[:1] in (" ", "\t") and line.strip():
            # RFC 7230 §3.2.4: "replace each received obs-fold with one or more SP octets".
            if not lines:
                raise ParseError("text/plain body starts with a continuation line")
            lines[-1] = lines[-1] + " " + line.strip()
            continue
        lines.append(line)
    fields: list[Field] = []
    for line in lines:
        stripped = line.strip()
        if not stripped or stripped == "OK":
            # GFD.229 §7 puts `OK` in text/occi bodies; some clients send it with text/plain.
            continue
        name, colon, value = line.partition(":")
        canonical = _field_name(name.strip()) if colon else None
        if canonical is None:
            raise ParseError(f"not an OCCI field line: {line[:200]!r}")
        fields.extend(_split_value(canonical, value))
    return fields


def fields_from_headers(
    headers: Sequence[tuple[str | bytes, str | bytes]], *, location_alias: bool = False
) -> list[Field]:
    """The OCCI fields among HTTP headers (text/occi, GFD.229 §7); other headers are ignored.

    Names are matched case-insensitively; X-OCCI-Category and X-OCCI-Link are aliases, and with
    `location_alias` so is `Location` for X-OCCI-Location (clients reading listings). Repeated
    headers and comma-joined values are both split into one field per value ("MUST be fully
    supported", GFD.229 §7). Raw bytes are decoded as UTF-8, falling back to ISO-8859-1.
    """
    fields: list[Field] = []
    for raw_name, raw_value in headers:
        name = _decode_header(raw_name).strip()
        canonical = _field_name(name)
        if canonical is None:
            if location_alias and name.lower() == _LOCATION_ALIAS:
                canonical = LOCATION
            else:
                continue
        value = _OBS_FOLD.sub(" ", _decode_header(raw_value))
        fields.extend(_split_value(canonical, value))
    return fields


def body_from_fields(fields: Sequence[Field]) -> bytes:
    """A text/plain body: one `Name: value` line per field, CRLF-terminated, UTF-8 (GFD.229 §6)."""
    return "".join(f"{name}: {_one_line(value)}\r\n" for name, value in fields).encode("utf-8")


def headers_from_fields(fields: Sequence[Field]) -> list[tuple[str, str]]:
    """text/occi headers: one header per field name, values joined by ", " (GFD.229 §7 RECOMMENDED).

    Names keep the order of their first appearance. The caller encodes values as UTF-8.
    """
    grouped: dict[str, list[str]] = {}
    for name, value in fields:
        grouped.setdefault(name, []).append(_one_line(value))
    return [(name, ", ".join(values)) for name, values in grouped.items()]


def _field_name(name: str) -> str | None:
    if not _abnf.FIELD_NAME_RE.match(name):
        return None
    return _NAMES.get(name.lower())


def _decode_header(raw: str | bytes) -> str:
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("iso-8859-1")


def _split_value(name: str, value: str) -> list[Field]:
    # GFD.229 §7: "a field may appear several times, or once with comma-separated values"; the
    # splitter honours quoted-strings and the `<...>` of a Link (URIs may contain ',' and ';').
    return [(name, part) for part in split_outside_quotes(value, ",")]


def _one_line(value: str) -> str:
    if "\r" in value or "\n" in value:
        # Our renderers escape CR/LF inside quoted-strings; a raw one here is a bug upstream and
        # would inject a field.
        raise ValueError(f"field value contains a line break: {value[:200]!r}")
    return value


# =============================================================================================
# values (GFD.229 §4 Attribute, text-rendering.md §6.6)
# =============================================================================================


def render_value(value: AttributeValue) -> str:
    """One attribute value: quoted string, `true`/`false`, decimal number, or quoted compact JSON."""
    # bool before int: True is an int.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _render_float(value)
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, (list, dict)):
        # De facto encoding (rOCCI-core 5): the compact JSON text as a quoted-string; the published
        # grammar has no List/Hash values (text-rendering.md §6.6).
        return quote(json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False))
    raise TypeError(f"not an attribute value: {value!r}")


def _render_float(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError(f"cannot render {value!r}: OCCI numbers are finite")
    # number = (int | float); float = *DIGIT "." *DIGIT: never an exponent, keep ".0".
    text = repr(value)
    if "e" in text or "E" in text:
        text = format(Decimal(text), "f")
    if "." not in text:
        text += ".0"
    return text


def parse_value(text: str) -> AttributeValue:
    """One attribute value, leniently (text-rendering.md §6.6); the service coerces it later.

    quoted-string -> str (a quoted JSON list stays a str: only the attribute definition can tell
    a List from a string), `true`/`false` -> bool, `-?[0-9]+` -> int, a decimal -> float, any other
    token -> str. Empty values and the withdrawn unquoted `[a, b]` / `{k: v}` forms -> ParseError.
    """
    text = text.strip()
    if not text:
        raise ParseError("attribute value is empty")
    if text[0] == '"':
        return unquote(text)
    if text in _abnf.BOOLEANS:
        return _abnf.BOOLEANS[text]
    if _abnf.INT_RE.match(text):
        try:
            return int(text)
        except ValueError:  # more digits than sys.get_int_max_str_digits() allows
            raise ParseError(f"integer too long: {text[:50]!r}...") from None
    if _abnf.FLOAT_RE.match(text):
        number = float(text)
        if not math.isfinite(number):
            raise ParseError(f"number out of range: {text[:50]!r}")
        return number
    if text[0] in "[{":
        raise ParseError(f"complex values must be quoted JSON strings: {text[:200]!r}")
    if not _abnf.TOKEN_RE.match(text) and not _abnf.is_uri_reference(text):
        raise ParseError(f"attribute value is neither a quoted-string, a number, a boolean nor a token: "
                         f"{text[:200]!r}")
    # An unquoted token (an enum written bare, a URL): a string; the definition decides later.
    return text


# =============================================================================================
# lexing of one field value
# =============================================================================================


def _parameters(parts: Sequence[str], what: str) -> dict[str, tuple[str, str]]:
    """`name=value` parameters -> lower-case name -> (name as written, raw value); duplicates refused."""
    params: dict[str, tuple[str, str]] = {}
    for part in parts:
        name, eq, value = part.partition("=")
        name = name.strip()
        if not eq or not name:
            raise ParseError(f"{what}: parameter without '=': {part[:200]!r}")
        key = name.lower()
        if key in params:
            raise ParseError(f"{what}: parameter {name!r} given twice")
        params[key] = (name, value.strip())
    return params


def _param_text(raw: str, what: str, *, spaces: bool = False) -> str:
    """A parameter value: a quoted-string (unquoted), or a bare token (GFD.229 errata: accept both)."""
    if raw.startswith('"'):
        return unquote(raw)
    if not raw or '"' in raw or (not spaces and any(ch.isspace() for ch in raw)):
        raise ParseError(f"{what}: malformed value {raw[:200]!r}")
    return raw


def _type_ids(text: str, what: str) -> tuple[str, ...]:
    ids = tuple(_abnf.split_type_ids(text))
    if not ids:
        raise ParseError(f"{what}: empty list of type identifiers")
    return ids


def _location(text: str, what: str) -> str:
    if not _abnf.is_uri_reference(text):
        raise ParseError(f"{what}: not a URI-reference: {text[:200]!r}")
    return text


# Clients send the same few Category values again and again (a kind, an action, a template): a
# parsed value is a frozen definition, so a short one is parsed once per process (a fifth of an
# action request's parsing). Longer values (a user mixin's attribute list) are parsed every time.
_MEMO_CATEGORY_CHARS: Final = 512


def _parse_category(value: str, *, require_class: bool) -> CategoryDefinition:
    """One Category value (text-rendering.md §10, "Category value")."""
    if len(value) <= _MEMO_CATEGORY_CHARS:
        return _parse_short_category(value, require_class)
    return _parse_any_category(value, require_class)


@functools.lru_cache(maxsize=1024)
def _parse_short_category(value: str, require_class: bool) -> CategoryDefinition:
    return _parse_any_category(value, require_class)


def _parse_any_category(value: str, require_class: bool) -> CategoryDefinition:
    parts = split_outside_quotes(value, ";")
    if not parts:
        raise ParseError("empty Category")
    term = parts[0]
    if not _abnf.TERM_RE.match(term):
        raise ParseError(f"Category: invalid term {term[:100]!r}")
    what = f"Category {term}"
    params = _parameters(parts[1:], what)
    if "scheme" not in params:
        raise ParseError(f"{what}: missing scheme")
    scheme = _abnf.check_scheme(_param_text(params["scheme"][1], what, spaces=True))
    category_class: str | None = None
    if "class" in params:
        category_class = _param_text(params["class"][1], what).lower()
        if category_class not in _abnf.CLASSES:
            raise ParseError(f"{what}: class must be kind, mixin or action, not {category_class!r}")
    elif require_class:
        raise ParseError(f"{what}: missing class")
    title = _param_text(params["title"][1], what, spaces=True) if "title" in params else None
    rel: tuple[str, ...] = ()
    if "rel" in params:
        # GFD.229 allows one type-identifier; 1.1 mixins and rOCCI-core 5 send a list (§4.1).
        rel = _type_ids(_param_text(params["rel"][1], what, spaces=True), what)
    location = None
    if "location" in params:
        location = _location(_param_text(params["location"][1], what), what)
    attributes: tuple[AttributeDef, ...] = ()
    if "attributes" in params:
        attributes = _attribute_defs(_param_text(params["attributes"][1], what, spaces=True), what)
    actions: tuple[str, ...] = ()
    if "actions" in params:
        actions = _type_ids(_param_text(params["actions"][1], what, spaces=True), what)
    # Unknown parameters are ignored (text-rendering.md §10 step 2).
    return CategoryDefinition(scheme=scheme, term=term, cls=category_class, title=title, rel=rel,
                              location=location, attributes=attributes, actions=actions)


def _attribute_defs(text: str, what: str) -> tuple[AttributeDef, ...]:
    """attribute-list = attribute-def *( 1*SP attribute-def ); flags {immutable required}."""
    result: list[AttributeDef] = []
    seen: set[str] = set()
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _abnf.ATTRIBUTE_DEF_RE.match(text, pos)
        if match is None or match.end() == pos:
            raise ParseError(f"{what}: malformed attribute list near {text[pos:pos + 60]!r}")
        name, flags = match.group(1), match.group(2)
        if not _abnf.ATTRIBUTE_NAME_RE.match(name):
            raise ParseError(f"{what}: invalid attribute name {name[:100]!r}")
        if name in seen:
            raise ParseError(f"{what}: attribute {name} listed twice")
        seen.add(name)
        words = flags.split() if flags else []
        for word in words:
            if word not in _abnf.ATTRIBUTE_PROPERTIES and word not in _abnf.IGNORED_ATTRIBUTE_PROPERTIES:
                raise ParseError(f"{what}: unknown attribute property {word[:50]!r} of {name}")
        # GFD.185 §3.5.1: `immutable` -> not client-modifiable; `required` -> client MUST supply it.
        result.append(AttributeDef(name, mutable="immutable" not in words, required="required" in words))
        pos = match.end()
        if pos < len(text) and not text[pos].isspace():
            raise ParseError(f"{what}: attribute definitions must be separated by spaces near "
                             f"{text[pos:pos + 60]!r}")
    return tuple(result)


def _parse_attribute(value: str) -> tuple[str, AttributeValue]:
    """attribute-repr = attribute-name "=" attribute-value."""
    name, eq, raw = value.partition("=")
    name = name.strip()
    if not eq:
        raise ParseError(f"X-OCCI-Attribute without '=': {value[:200]!r}")
    if not _abnf.ATTRIBUTE_NAME_RE.match(name):
        raise ParseError(f"invalid attribute name {name[:100]!r}")
    return name, parse_value(raw)


def _parse_attributes(values: Iterable[str]) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {}
    for value in values:
        name, parsed = _parse_attribute(value)
        if name in attributes:
            raise ParseError(f"attribute {name} given twice")
        attributes[name] = parsed
    return attributes


class _LinkValue:
    """A parsed Link value: an ActionLink (`action` set) or a Link instance reference."""

    __slots__ = ("attributes", "categories", "rel", "self_location", "target")

    def __init__(self, target: str, rel: tuple[str, ...], self_location: str | None,
                 categories: tuple[str, ...], attributes: dict[str, AttributeValue]) -> None:
        self.target = target
        self.rel = rel
        self.self_location = self_location
        self.categories = categories
        self.attributes = attributes

    @property
    def is_action(self) -> bool:
        return _abnf.ACTION_MARKER in self.target


def _parse_link(value: str) -> _LinkValue:
    """link-value = "<" URI-reference ">" ";" "rel" "=" <"> resource-type <"> [ ";" "self" ... ]."""
    parts = split_outside_quotes(value, ";")
    if not parts or not (parts[0].startswith("<") and parts[0].endswith(">")):
        raise ParseError(f"Link must start with <URI>: {value[:200]!r}")
    target = _location(parts[0][1:-1].strip(), "Link")
    what = f"Link <{target}>"
    rel: tuple[str, ...] | None = None
    self_location: str | None = None
    categories: tuple[str, ...] = ()
    attributes: dict[str, AttributeValue] = {}
    seen: set[str] = set()
    for part in parts[1:]:
        name, eq, raw = part.partition("=")
        name, raw = name.strip(), raw.strip()
        if not eq or not name:
            raise ParseError(f"{what}: parameter without '=': {part[:200]!r}")
        key = name.lower()
        if key in _LINK_PARAMETERS:
            if key in seen:
                raise ParseError(f"{what}: parameter {name!r} given twice")
            seen.add(key)
            if key == "rel":
                rel = _type_ids(_param_text(raw, what, spaces=True), what)
            elif key == "self":
                self_location = _location(_param_text(raw, what), what)
            else:
                # category = link-type, shown unquoted in the ABNF: accept both (§4.1 errata).
                categories = _type_ids(_param_text(raw, what, spaces=True), what)
            continue
        # link-attribute = attribute-name "=" ( token | quoted-string )
        if not _abnf.ATTRIBUTE_NAME_RE.match(name):
            raise ParseError(f"{what}: invalid attribute name {name[:100]!r}")
        if name in attributes:
            raise ParseError(f"{what}: attribute {name} given twice")
        attributes[name] = parse_value(raw)
    if rel is None:
        raise ParseError(f"{what}: missing rel")
    return _LinkValue(target, rel, self_location, categories, attributes)


def _values(fields: Sequence[Field], name: str) -> list[str]:
    return [value for field_name, value in fields if field_name == name]


# =============================================================================================
# server side: parse requests
# =============================================================================================


def parse_entity(fields: Sequence[Field]) -> EntityMessage:
    """A resource or link rendering, or a create/update request (GFD.229 §5.1.1, §5.1.2).

    Categories: the first `kind` is the Kind (a second one -> ParseError), `mixin`s in order; an
    `action` category -> ParseError. A category without `class` (OCCI 1.1 clients send
    `Category: compute; scheme="..."`) is kept in `unclassified`: its term and scheme name one
    category, which only the registry can tell (the receiver resolves it). ActionLinks become
    `action_links`, other Links `links`. Order on input is free (rOCCI-core 5 emits attributes
    before links).
    """
    kind: str | None = None
    mixins: list[str] = []
    unclassified: list[str] = []
    for value in _values(fields, CATEGORY):
        category = _parse_category(value, require_class=False)
        if category.cls is None:
            if category.type_id not in unclassified:
                unclassified.append(category.type_id)
        elif category.cls == "kind":
            if kind is not None and kind != category.type_id:
                raise ParseError(f"more than one Kind: {kind} and {category.type_id}")
            kind = category.type_id
        elif category.cls == "mixin":
            if category.type_id not in mixins:
                mixins.append(category.type_id)
        else:
            raise ParseError(f"an entity rendering cannot carry the action category {category.type_id}")
    links: list[LinkMessage] = []
    action_links: list[str] = []
    for value in _values(fields, LINK):
        link = _parse_link(value)
        if link.is_action:
            action_links.append(link.rel[0])
            continue
        source = link.attributes.get("occi.core.source")
        links.append(LinkMessage(
            target=link.target,
            target_kind=link.rel[0],
            kind=link.categories[0] if link.categories else None,
            mixins=link.categories[1:],
            attributes=dict(link.attributes),
            self_location=link.self_location,
            source=source if isinstance(source, str) else None,
            lenient=True,
        ))
    return EntityMessage(
        kind=kind,
        mixins=tuple(mixins),
        unclassified=tuple(unclassified),
        attributes=dict(_parse_attributes(_values(fields, ATTRIBUTE))),
        links=tuple(links),
        action_links=tuple(action_links),
        lenient=True,
    )


def parse_action(fields: Sequence[Field]) -> ActionInvocation:
    """An action invocation: one action Category plus parameter attributes (GFD.229 §5.1.1.1).

    "The client MUST send exactly one Category"; a full Category (title, attributes), as pOCCI
    sends, is accepted. No Category -> `action=None` (the query string names it); more -> ParseError.
    """
    categories = _values(fields, CATEGORY)
    if len(categories) > 1:
        raise ParseError("an action invocation carries exactly one Category")
    action: str | None = None
    if categories:
        category = _parse_category(categories[0], require_class=False)
        if category.cls not in (None, "action"):
            raise ParseError(f"{category.type_id} is a {category.cls}, not an action")
        action = category.type_id
    return ActionInvocation(action=action, attributes=dict(_parse_attributes(_values(fields, ATTRIBUTE))),
                            lenient=True)


def parse_categories(fields: Sequence[Field], *, require_class: bool = True) -> list[CategoryDefinition]:
    """Full Category renderings (POST/DELETE /-/, or a client reading /-/), GFD.229 §5.2, §5.4.

    A type identifier listed twice -> ParseError (pOCCI refuses duplicates in a collection).
    """
    result: list[CategoryDefinition] = []
    seen: set[str] = set()
    for value in _values(fields, CATEGORY):
        category = _parse_category(value, require_class=require_class)
        if category.type_id in seen:
            raise ParseError(f"category {category.type_id} listed twice")
        seen.add(category.type_id)
        result.append(category)
    return result


def parse_filter(fields: Sequence[Field]) -> Filter:
    """A collection or discovery filter: Category references (class optional) and attributes (GFD.223 §7)."""
    refs = tuple(
        CategoryRef(scheme=category.scheme, term=category.term, cls=category.cls)
        for category in (_parse_category(value, require_class=False) for value in _values(fields, CATEGORY))
    )
    return Filter(categories=refs, attributes=dict(_parse_attributes(_values(fields, ATTRIBUTE))))


def parse_locations(fields: Sequence[Field], *, absolute: bool = False) -> list[str]:
    """X-OCCI-Location values (location-value = URI-reference, GFD.229 §4).

    `absolute=True` also requires a scheme, as pOCCI does for listings (P-02).
    """
    result: list[str] = []
    for value in _values(fields, LOCATION):
        location = _location(value, "X-OCCI-Location")
        if absolute and not _abnf.is_absolute_uri(location):
            raise ParseError(f"X-OCCI-Location must be an absolute URL: {location[:200]!r}")
        result.append(location)
    return result


# =============================================================================================
# server side: render answers
# =============================================================================================


def _short_category(type_id: str, category_class: str) -> str:
    # Short form in entity renderings (text-rendering.md §6.1): rOCCI-core 5 only accepts
    # parameters in ABNF order, and title/location are not needed to identify a category.
    scheme, term = split_type_id(type_id)
    return f"{term}; scheme={quote(scheme)}; class={quote(category_class)}"


def _attribute_fields(attributes: Mapping[str, Any], entity_id: str | None) -> list[Field]:
    fields: list[Field] = []
    if entity_id is not None:
        # P-17: occi.core.id is always rendered (jOCCI/rOCCI clients require it).
        fields.append((ATTRIBUTE, f"{_CORE_ID}={render_value(attributes.get(_CORE_ID, entity_id))}"))
    for name, value in attributes.items():
        if value is None or (entity_id is not None and name == _CORE_ID):
            continue
        fields.append((ATTRIBUTE, f"{name}={render_value(value)}"))
    return fields


def _link_attribute_text(attributes: Mapping[str, Any], entity_id: str | None) -> str:
    parts: list[str] = []
    if entity_id is not None:
        parts.append(f"{_CORE_ID}={render_value(attributes.get(_CORE_ID, entity_id))}")
    for name, value in attributes.items():
        if value is None or (entity_id is not None and name == _CORE_ID):
            continue
        if name.lower() in _LINK_PARAMETERS:
            raise ValueError(f"link attribute {name!r} cannot be told apart from the Link parameter")
        parts.append(f"{name}={render_value(value)}")
    return "".join(f"; {part}" for part in parts)


def _link_field(target: str, target_kind: str, self_location: str | None, categories: Sequence[str],
                attributes: Mapping[str, Any], entity_id: str | None) -> Field:
    value = f"<{target}>; rel={quote(target_kind)}"
    if self_location is not None:
        value += f"; self={quote(self_location)}"
    if categories:
        value += f"; category={quote(' '.join(categories))}"
    return LINK, value + _link_attribute_text(attributes, entity_id)


def render_entity(entity: Entity) -> list[Field]:
    """A resource (GFD.229 §5.1.1) or link (§5.1.2) rendering: Categories, Links, Attributes.

    "MUST represent any associated Action instances using the ActionLink" (§5.1.1): one Link per
    `entity.actions` (the service passes the applicable ones), then one Link per owned link.
    """
    fields: list[Field] = [(CATEGORY, _short_category(entity.kind, "kind"))]
    fields.extend((CATEGORY, _short_category(mixin, "mixin")) for mixin in entity.mixins)
    for action_id in entity.actions:
        _, term = split_type_id(action_id)
        # ActionLink: link-value = "<" action-uri ">" ";" "rel" "=" <"> action-type <">
        fields.append((LINK, f"<{entity.location}{_abnf.ACTION_MARKER}{term}>; rel={quote(action_id)}"))
    for link in entity.links:
        target = link.target
        if target is None:
            raise ValueError(f"link {link.location} has no occi.core.target")
        target_kind = link.attributes.get(_TARGET_KIND)
        fields.append(_link_field(
            target=target,
            target_kind=target_kind if isinstance(target_kind, str) and target_kind else RESOURCE,
            self_location=link.location,
            categories=[link.kind, *link.mixins],
            attributes=link.attributes,
            entity_id=link.entity_id,
        ))
    fields.extend(_attribute_fields(entity.attributes, entity.entity_id))
    return fields


def _flags(adef: AttributeDef) -> str:
    words = [word for word, on in (("immutable", not adef.mutable), ("required", adef.required)) if on]
    return adef.name + ("{" + " ".join(words) + "}" if words else "")


def _full_category(term: str, scheme: str, category_class: str | None, *, title: str | None = None,
                   rel: Sequence[str] = (), location: str | None = None,
                   attributes: Iterable[AttributeDef] = (), actions: Sequence[str] = ()) -> Field:
    # Parameter order of the ABNF (rOCCI-core 5 parses with a fixed order); empty ones omitted.
    parts = [term, f"scheme={quote(scheme)}"]
    if category_class is not None:
        # OGF 1.1 test_syntax matches class="(?:action|kind|mixin)": quoted.
        parts.append(f"class={quote(category_class)}")
    if title:
        parts.append(f"title={quote(title)}")
    if rel:
        parts.append(f"rel={quote(' '.join(rel))}")
    if location:
        parts.append(f"location={quote(location)}")
    attribute_text = " ".join(_flags(adef) for adef in attributes)
    if attribute_text:
        parts.append(f"attributes={quote(attribute_text)}")
    if actions:
        parts.append(f"actions={quote(' '.join(actions))}")
    return CATEGORY, "; ".join(parts)


def render_categories(categories: Sequence[Kind | Mixin | Action], registry: Registry) -> list[Field]:
    """Full Category renderings for the query interface (GFD.229 §5.2, §5.4).

    Kind: rel = parent, attributes = the full effective set. Mixin: rel = the first `depends`
    only ("MUST", GFD.229 §5.5.2). Action: parameters only; "An Action instance MUST NOT have
    Link and Action references" (§5.2.3), so no rel, location or actions.
    """
    fields: list[Field] = []
    for category in categories:
        if isinstance(category, Kind):
            fields.append(_full_category(
                category.term, category.scheme, "kind", title=category.title,
                rel=(category.parent,) if category.parent else (), location=category.location,
                attributes=registry.kind_attribute_defs(category.type_id).values(),
                actions=category.actions,
            ))
        elif isinstance(category, Mixin):
            fields.append(_full_category(
                category.term, category.scheme, "mixin", title=category.title,
                rel=category.depends[:1], location=category.location,
                attributes=category.attributes, actions=category.actions,
            ))
        else:
            fields.append(_full_category(category.term, category.scheme, "action", title=category.title,
                                         attributes=category.attributes))
    return fields


def render_locations(urls: Sequence[str]) -> list[Field]:
    """An entity collection: one X-OCCI-Location per URL (GFD.229 §5.3)."""
    return [(LOCATION, url) for url in urls]


def body_from_locations(locations: Sequence[str], base: str = "") -> bytes:
    """The text/plain body of `render_locations([base + l for l in locations])` in one pass.

    For large collections. Same bytes as the field-by-field rendering for locations without line
    breaks (the server's own locations never have any).
    """
    if not locations:
        return b""
    head = "X-OCCI-Location: " + base
    return (head + ("\r\n" + head).join(locations) + "\r\n").encode("utf-8")


# =============================================================================================
# client side: render requests
# =============================================================================================


def render_entity_message(message: EntityMessage) -> list[Field]:
    """A create/update request (GFD.185 §3.4.4): Categories, inline Links, Attributes.

    Echoed action links are not sent. A link without `target_kind` gets `core#resource` (rel is
    required by the grammar).
    """
    fields: list[Field] = []
    if message.kind is not None:
        fields.append((CATEGORY, _short_category(message.kind, "kind")))
    fields.extend((CATEGORY, _short_category(mixin, "mixin")) for mixin in message.mixins)
    for link in message.links:
        if link.target is None:
            raise ValueError("an inline Link needs a target")
        categories = [link.kind] if link.kind else []
        categories.extend(link.mixins)
        fields.append(_link_field(link.target, link.target_kind or RESOURCE, link.self_location,
                                  categories, link.attributes, None))
    fields.extend(_attribute_fields(message.attributes, None))
    return fields


def render_action_invocation(invocation: ActionInvocation) -> list[Field]:
    """action_definition = 1( Category CRLF ) *( Attribute CRLF ) (GFD.229 §5.1.1.1)."""
    fields: list[Field] = []
    if invocation.action is not None:
        fields.append((CATEGORY, _short_category(invocation.action, "action")))
    fields.extend(_attribute_fields(invocation.attributes, None))
    return fields


def render_category_definitions(definitions: Sequence[CategoryDefinition]) -> list[Field]:
    """Full Category renderings of user mixins for POST or DELETE /-/ (GFD.185 §3.4.1)."""
    return [
        _full_category(d.term, d.scheme, d.cls, title=d.title, rel=d.rel, location=d.location,
                       attributes=d.attributes, actions=d.actions)
        for d in definitions
    ]


__all__ = [
    "ATTRIBUTE", "CATEGORY", "FIELD_NAMES", "LINK", "LOCATION", "Field",
    "body_from_fields", "fields_from_body", "fields_from_headers", "headers_from_fields",
    "parse_action", "parse_categories", "parse_entity", "parse_filter", "parse_locations", "parse_value",
    "render_action_invocation", "render_categories", "render_category_definitions", "render_entity",
    "render_entity_message", "render_locations", "render_value",
]
