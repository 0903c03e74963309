"""OCCI Service Level Agreements 1.2 (GFD.228): agreements, their links, templates and terms.

Kinds `agreement`, `agreement_link`; mixins `agreement_tpl` (provider templates depend on it) and
`agreement_term` (provider terms depend on it); the five actions under the normative `sla#`
scheme, the OCCIware `sla/agreement/action#` scheme accepted as an alias (SLA-R1). Date-times are
RFC 3339 only (SLA-05); accepting an agreement sets `agreedAt` (sla.md §2.2).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from occipy.errors import InvalidAttribute
from occipy.model._catalogue_data import CATALOGUE, EXTENSIONS
from occipy.model.catalogue import attribute_from_catalogue
from occipy.model.category import AttributeDef, AttributeValue, Mixin
from occipy.model.extensions import _build
from occipy.model.extensions.base import Extension, LinkEnds, SourceState, frozen, with_pattern
from occipy.model.registry import RESOURCE, Registry

SLA = "http://schemas.ogf.org/occi/sla#"
AGREEMENT = SLA + "agreement"
AGREEMENT_LINK = SLA + "agreement_link"
AGREEMENT_TPL = SLA + "agreement_tpl"
AGREEMENT_TERM = SLA + "agreement_term"
ACCEPT, REJECT, SUSPEND, RESUME, TERMINATE = (SLA + t for t in ("accept", "reject", "suspend", "resume", "terminate"))
STATE = "occi.agreement.state"
AGREED_AT = "occi.agreement.agreedAt"
EFFECTIVE_FROM = "occi.agreement.effectiveFrom"
EFFECTIVE_UNTIL = "occi.agreement.effectiveUntil"
DATETIME_ATTRIBUTES = (AGREED_AT, EFFECTIVE_FROM, EFFECTIVE_UNTIL)
# GFD.228 §3.1.2 AgreementTerm state diagram: monitoring-driven, no actions.
TERM_STATES = ("Undefined", "Fulfilled", "Violated")

_DATA = EXTENSIONS["sla"]
_RFC3339 = re.compile(_build.RFC3339)
# ISO 8601 durations ("P1D", "PT5M", "-P1Y") and intervals ("start/end", "start/P1D", "R5/...").
_DURATION = re.compile(r"[+-]?P(?=[\dT])", re.IGNORECASE)


def parse_datetime(name: str, value: object) -> datetime:
    """An RFC 3339 date-time as an aware datetime, or InvalidAttribute naming the attribute.

    GFD.228 §3.1: these values "MUST be absolute date/time values ... MUST NOT be durations or
    intervals". RFC 3339 date-times only (docs/extensions.md D-EXT-SLA-RFC3339).
    """
    if not isinstance(value, str):
        raise InvalidAttribute(f"attribute {name}: expected an RFC 3339 date-time string")
    if "/" in value:
        raise InvalidAttribute(f"attribute {name}: {value!r} is an interval; GFD.228 allows only an "
                               "absolute date-time such as 2015-02-05T02:05:17+00:00")
    if _DURATION.match(value):
        raise InvalidAttribute(f"attribute {name}: {value!r} is a duration; GFD.228 allows only an "
                               "absolute date-time such as 2015-02-05T02:05:17+00:00")
    if not _RFC3339.fullmatch(value):
        raise InvalidAttribute(f"attribute {name}: {value!r} is not an RFC 3339 date-time "
                               "such as 2015-02-05T02:05:17+00:00")
    date, _, rest = value.partition("T")
    fraction = re.search(r"\.(\d+)", rest)
    if fraction and len(fraction.group(1)) > 6:  # datetime keeps microseconds: drop finer digits
        rest = rest.replace(fraction.group(0), "." + fraction.group(1)[:6], 1)
    try:
        return datetime.fromisoformat(f"{date}T{rest}")
    except ValueError:
        raise InvalidAttribute(f"attribute {name}: {value!r} is not a date that exists") from None


def format_datetime(moment: datetime) -> str:
    """An aware datetime as RFC 3339 in UTC, to the second: 2015-02-05T02:05:17+00:00."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a naive datetime has no RFC 3339 rendering: pass an aware one")
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def validate(kind_id: str, mixin_ids: Sequence[str], attributes: Mapping[str, AttributeValue],
             registry: Registry) -> None:
    """Agreement date-times are RFC 3339 (SLA-05) and effectiveFrom <= effectiveUntil."""
    if not registry.is_kind(kind_id) or AGREEMENT not in registry.ancestors(kind_id):
        return
    moments = {name: parse_datetime(name, attributes[name]) for name in DATETIME_ATTRIBUTES if name in attributes}
    start, end = moments.get(EFFECTIVE_FROM), moments.get(EFFECTIVE_UNTIL)
    if start is not None and end is not None and end < start:
        raise InvalidAttribute(f"attribute {EFFECTIVE_UNTIL}: {attributes[EFFECTIVE_UNTIL]} is before "
                               f"{EFFECTIVE_FROM} {attributes[EFFECTIVE_FROM]}")


def accepted(now: datetime) -> dict[str, AttributeValue]:
    """What accepting an agreement sets besides its state: agreedAt = now (sla.md §2.2)."""
    return {AGREED_AT: format_datetime(now)}


def on_action(kind_id: str, action_id: str, attributes: Mapping[str, AttributeValue],
              now: datetime) -> dict[str, AttributeValue]:
    # The accept action belongs to the agreement kind only; its id says enough.
    return accepted(now) if action_id == ACCEPT else {}


def _datetime(adef: AttributeDef) -> AttributeDef:
    return with_pattern(adef, _build.DATE_TIME_SCHEMA,
                        description=(adef.description or "") + " (RFC 3339 date-time)")


CATEGORIES = _build.categories(_DATA, attribute_fixes={name: _datetime for name in DATETIME_ATTRIBUTES})

_TERM_TEMPLATES: list[Mapping[str, Any]] = next(
    m for m in _DATA["mixins"] if m["id"] == AGREEMENT_TERM)["attribute_templates"]


def term_mixin(scheme: str, term: str, *, title: str | None = None, location: str | None = None,
               attributes: Sequence[AttributeDef] = (), suggested: bool = True) -> Mixin:
    """A provider agreement term (GFD.228 §3.1.2): depends on agreement_term, applies to agreement.

    With `suggested`, it carries the suggested attributes `<term>.term.type|state|desc|remedy`
    (SLA-14; the state starts `Undefined`), followed by `attributes` (the term's own metrics).
    """
    own: list[AttributeDef] = []
    if suggested:
        for spec in _TERM_TEMPLATES:
            own.append(attribute_from_catalogue({**spec, "name": spec["name"].replace("{term_name}", term)}))
    own.extend(attributes)
    return Mixin(scheme=scheme, term=term, title=title, attributes=tuple(own), depends=(AGREEMENT_TERM,),
                 applies=(AGREEMENT,), location=location or f"/mixin/agreement_term/{term}/")


def template_mixin(scheme: str, term: str, *, title: str | None = None, location: str | None = None,
                   attributes: Sequence[AttributeDef] = ()) -> Mixin:
    """A provider agreement template such as `gold` (GFD.228 §3.1.1): depends on agreement_tpl."""
    return Mixin(scheme=scheme, term=term, title=title, attributes=tuple(attributes), depends=(AGREEMENT_TPL,),
                 applies=(AGREEMENT,), location=location or f"/mixin/agreement_tpl/{term}/")


def _lower_case_aliases() -> dict[str, dict[str, str]]:
    """sla.md §7: the examples write `pending`, `fulfilled`: compare case-insensitively."""
    result: dict[str, dict[str, str]] = {}
    for alias in CATALOGUE["aliases"]:
        if alias["served_by"] == "sla" and alias["kind"] == "enum_value":
            result.setdefault(alias["attribute"], {})[alias["alias"]] = alias["canonical"]
    return result


EXTENSION = Extension(
    name="sla",
    title="OCCI Service Level Agreements 1.2",
    document="GFD.228",
    status="normative",
    categories=CATEGORIES,
    machines=_build.machines(_DATA, {AGREEMENT}),
    category_aliases=frozen(_build.aliases(CATALOGUE["aliases"], "sla", "category")),
    scoped_value_aliases=frozen({k: frozen(v) for k, v in _lower_case_aliases().items()}),
    link_ends=frozen({
        # GFD.228 §3.2: source an agreement, target any resource; sla.md §5 [reconstructed]: only an
        # Accepted agreement gets links (the execution phase of §3.3).
        AGREEMENT_LINK: LinkEnds(sources=(AGREEMENT,), targets=(RESOURCE,),
                                 source_state=SourceState(STATE, ("Accepted",))),
    }),
    validate=validate,
    on_action=on_action,
)
