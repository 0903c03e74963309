"""Kind, Mixin, Action and attribute definitions (GFD.221 §5.3), as frozen values.

Categories refer to each other by type identifier (scheme + term); the registry resolves them.
Attribute values are checked here against their definition (type and the JSON-Schema `pattern`,
GFD.226 §3.5.1). Imports only `occi.errors`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Union

from occipy.errors import InvalidAttribute, ParseError

# A value of an attribute: the five JSON rendering types (GFD.226 §3.5.1).
AttributeValue = Union[str, int, float, bool, list[Any], dict[str, Any]]

ATTRIBUTE_TYPES = ("string", "number", "boolean", "array", "object")

# GFD.229 §4: term = ( ALPHA / DIGIT ) *( ALPHA / DIGIT / "-" / "_" / "." )
TERM_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
# GFD.229 §4: attribute-name has the same shape as term.
ATTRIBUTE_NAME_RE = TERM_RE
# GFD.185 §3.5.4 (OCCI 1.1) and rOCCI-core 5: term = LOALPHA *( LOALPHA / DIGIT / "-" / "_" ).
# Input keeps accepting the wider GFD.229 grammar; every term occipy mints matches this one.
STRICT_TERM_RE = re.compile(r"[a-z][a-z0-9_-]*\Z")


def strict_term(name: str) -> str:
    """A term for any provider name that OCCI 1.1 and rOCCI-core 5 parsers accept.

    Deterministic and collision-safe: a name that already matches `STRICT_TERM_RE` is kept as it
    is; any other name becomes a readable slug (lower case, every other character `_`, a leading
    `t` when it does not start with a letter) followed by `-` and the first 8 hex digits of the
    SHA-256 of the name. So two different names never get the same term unless SHA-256 prefixes
    collide (2^-32 for a pair): `ubuntu-24.04` -> `ubuntu-24_04-` + 8 hex digits, while a
    provider's own `ubuntu-24_04` stays `ubuntu-24_04`. docs/decisions.md D-STRICT-TERMS.
    """
    if STRICT_TERM_RE.match(name):
        return name
    slug = re.sub(r"[^a-z0-9_-]", "_", name.lower())
    if not slug[:1].isalpha() or not slug[:1].isascii():
        slug = "t" + slug
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{slug}-{digest}"


def split_type_id(type_id: str) -> tuple[str, str]:
    """Split a type identifier after its last '#' into (scheme, term) (core.md §2.2)."""
    cut = type_id.rfind("#")
    if cut < 0 or cut == len(type_id) - 1:
        raise ParseError(f"not a type identifier (scheme#term): {type_id!r}")
    return type_id[: cut + 1], type_id[cut + 1 :]


@dataclass(frozen=True, slots=True)
class AttributeDef:
    """An attribute definition (GFD.221 §5.3.2): never a value."""

    name: str
    type: str = "string"
    mutable: bool = True
    required: bool = False
    pattern: Mapping[str, Any] | None = field(default=None, hash=False)
    default: AttributeValue | None = field(default=None, hash=False)
    description: str | None = None
    # Infrastructure §3.5.2.2: `occi.compute.userdata` is supplied once and never updated.
    write_once: bool = False

    def __post_init__(self) -> None:
        if self.type not in ATTRIBUTE_TYPES:
            raise ValueError(f"attribute {self.name}: unknown type {self.type!r}")

    @property
    def is_integer(self) -> bool:
        return self.type == "number" and bool(self.pattern) and self.pattern.get("type") == "integer"  # type: ignore[union-attr]

    def check(self, value: object, *, lenient: bool = False) -> AttributeValue:
        """Return `value` coerced to this definition, or raise InvalidAttribute naming the attribute.

        `lenient` is for the text renderings, where a number may arrive quoted and a boolean as a
        quoted "true" (text-rendering.md §6.6); JSON values must have the declared type.
        """
        checked = _coerce(self, value, lenient)
        if self.pattern:
            problem = _schema_problem(self.pattern, checked)
            if problem:
                raise InvalidAttribute(f"attribute {self.name}: {problem}")
        return checked


def _coerce(adef: AttributeDef, value: object, lenient: bool) -> AttributeValue:
    name = adef.name
    if value is None:
        raise InvalidAttribute(f"attribute {name}: a value is required (null is not allowed)")
    kind = adef.type
    if kind == "string":
        if isinstance(value, str):
            bad = _CONTROL.search(value)
            if bad:
                # No rendering can carry them: HTTP header values (text/occi) must not contain
                # control characters (RFC 7230 §3.2); TAB, LF and CR are escaped by the renderers.
                raise InvalidAttribute(f"attribute {name}: control character U+{ord(bad.group()):04X} is not allowed")
            return value
        if lenient and isinstance(value, (int, float)) and not isinstance(value, bool):
            return _number_text(value)
        raise InvalidAttribute(f"attribute {name}: expected a string, got {_json_type(value)}")
    if kind == "number":
        if isinstance(value, bool):
            raise InvalidAttribute(f"attribute {name}: expected a number, got a boolean")
        if isinstance(value, str) and lenient:
            value = _parse_number(name, value)
        if isinstance(value, (int, float)):
            if isinstance(value, float) and not math.isfinite(value):
                raise InvalidAttribute(f"attribute {name}: number must be finite")
            if abs(value) > MAX_SAFE_INTEGER:
                # docs/decisions.md D-RANGES: a number no JSON client reads back exactly (RFC 8259
                # §6, IEEE 754 doubles) is refused, so no value is stored or rendered as `1e+308`
                # or as a 309-digit integer; attribute patterns set tighter ranges.
                raise InvalidAttribute(f"attribute {name}: {_short(value)} is out of range "
                                       f"(at most {MAX_SAFE_INTEGER} in magnitude)")
            if adef.is_integer:
                if isinstance(value, float):
                    if not value.is_integer():
                        raise InvalidAttribute(f"attribute {name}: expected an integer, got {value}")
                    return int(value)
            return value
        raise InvalidAttribute(f"attribute {name}: expected a number, got {_json_type(value)}")
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if lenient and isinstance(value, str) and value in ("true", "false"):
            return value == "true"
        raise InvalidAttribute(f"attribute {name}: expected true or false, got {_json_type(value)}")
    if kind in ("array", "object") and lenient and isinstance(value, str):
        # text renderings carry List/Hash values as a quoted JSON text (text-rendering.md §6.6)
        try:
            value = json.loads(value)
        except ValueError:
            raise InvalidAttribute(f"attribute {name}: expected a JSON {kind}, got {value!r}") from None
    if kind == "array":
        if isinstance(value, list):
            return value
        raise InvalidAttribute(f"attribute {name}: expected an array, got {_json_type(value)}")
    if isinstance(value, dict):
        return value
    raise InvalidAttribute(f"attribute {name}: expected an object, got {_json_type(value)}")


# RFC 8259 §6: integers in [-(2**53)+1, (2**53)-1] are the ones every JSON implementation
# agrees on exactly.
MAX_SAFE_INTEGER = 2**53 - 1


def _short(value: float) -> str:
    text = repr(value)
    return text if len(text) <= 24 else text[:10] + "..." + f" ({len(text)} digits)"


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_NUMBER_RE = re.compile(r"-?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\Z")


def _parse_number(name: str, text: str) -> int | float:
    text = text.strip()
    if not _NUMBER_RE.match(text):
        raise InvalidAttribute(f"attribute {name}: expected a number, got {text!r}")
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return float(text)


def _number_text(value: int | float) -> str:
    return str(value)


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


@lru_cache(maxsize=512)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _schema_problem(schema: Mapping[str, Any], value: object) -> str | None:
    """The subset of JSON Schema (draft-04) that attribute patterns use; None when `value` is valid.

    Supported: type, enum, minimum, maximum, exclusiveMinimum/Maximum (numbers and draft-04
    booleans), minLength, maxLength, pattern, format (ipv4, ipv6, ip-address, ip-network,
    date-time, uri), anyOf. Other keywords are annotations and are ignored.
    """
    expected = schema.get("type")
    if expected == "integer":
        if not (isinstance(value, int) and not isinstance(value, bool)):
            return f"expected an integer, got {value!r}"
    elif expected == "string" and not isinstance(value, str):
        return f"expected a string, got {value!r}"
    enum = schema.get("enum")
    if enum is not None and value not in enum:
        return f"{value!r} is not one of {', '.join(map(str, enum))}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        low, high = schema.get("minimum"), schema.get("maximum")
        excl_low, excl_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
        if isinstance(excl_low, (int, float)) and not isinstance(excl_low, bool) and value <= excl_low:
            return f"{value} must be greater than {excl_low}"
        if low is not None:
            if excl_low is True and value <= low:
                return f"{value} must be greater than {low}"
            if value < low:
                return f"{value} is below the minimum {low}"
        if isinstance(excl_high, (int, float)) and not isinstance(excl_high, bool) and value >= excl_high:
            return f"{value} must be less than {excl_high}"
        if high is not None:
            if excl_high is True and value >= high:
                return f"{value} must be less than {high}"
            if value > high:
                return f"{value} is above the maximum {high}"
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            return f"{value!r} is shorter than {schema['minLength']} characters"
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            return f"value is longer than {schema['maxLength']} characters"
        regex = schema.get("pattern")
        if isinstance(regex, str) and not _regex(regex).search(value):
            return f"{value!r} does not match the pattern {regex}"
        fmt = schema.get("format")
        if isinstance(fmt, str) and not _format_ok(fmt, value):
            return f"{value!r} is not a valid {fmt}"
    any_of = schema.get("anyOf")
    if isinstance(any_of, list) and any_of:
        problems = [_schema_problem(sub, value) for sub in any_of]
        if all(problems):
            return problems[0]
    return None


def _format_ok(fmt: str, value: str) -> bool:
    try:
        if fmt == "ipv4":
            ipaddress.IPv4Address(value)
        elif fmt == "ipv6":
            ipaddress.IPv6Address(value)
        elif fmt == "ip-address":
            # Infrastructure examples write addresses with a prefix ("192.168.0.1/24"): accept both.
            ipaddress.ip_interface(value)
        elif fmt == "ip-network":
            ipaddress.ip_network(value, strict=False)
        elif fmt == "date-time":
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        elif fmt == "uri":
            return bool(re.match(r"[A-Za-z][A-Za-z0-9+.-]*:\S*\Z", value))
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Action:
    """An Action: only an identifier of an invocable operation (GFD.221 §5.3.5)."""

    scheme: str
    term: str
    title: str | None = None
    attributes: tuple[AttributeDef, ...] = ()

    # scheme + term, computed once: it is read on every lookup and rendering.
    type_id: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "type_id", self.scheme + self.term)

    def attribute(self, name: str) -> AttributeDef | None:
        for adef in self.attributes:
            if adef.name == name:
                return adef
        return None


@dataclass(frozen=True, slots=True)
class Kind:
    """The type identifier of an Entity sub-type (GFD.221 §5.3.3); `parent` and `actions` are type ids."""

    scheme: str
    term: str
    title: str | None = None
    attributes: tuple[AttributeDef, ...] = ()
    actions: tuple[str, ...] = ()
    parent: str | None = None
    location: str | None = None

    # scheme + term, computed once: it is read on every lookup and rendering.
    type_id: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "type_id", self.scheme + self.term)


@dataclass(frozen=True, slots=True)
class Mixin:
    """A Mixin (GFD.221 §5.3.4); `depends`, `applies` and `actions` are type ids."""

    scheme: str
    term: str
    title: str | None = None
    attributes: tuple[AttributeDef, ...] = ()
    actions: tuple[str, ...] = ()
    depends: tuple[str, ...] = ()
    applies: tuple[str, ...] = ()
    location: str | None = None
    user_defined: bool = False
    # User mixins: the user who defined it and the tenant it belongs to (None: the provider's).
    owner: str | None = None
    tenant: str | None = None

    # scheme + term, computed once: it is read on every lookup and rendering.
    type_id: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "type_id", self.scheme + self.term)


Category = Union[Kind, Mixin, Action]


def category_class(category: Category) -> str:
    """The `class` of a category as the renderings spell it: kind, mixin or action."""
    if isinstance(category, Kind):
        return "kind"
    if isinstance(category, Mixin):
        return "mixin"
    return "action"
