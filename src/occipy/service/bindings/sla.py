"""SLA terms this server enforces (GFD.228 §3.1.2), assessed from the monitoring history (docs/sla.md).

The provider term mixins `availability` and `response_time` (scheme `<provider>sla/term#`) depend
on `sla#agreement_term` and on the `sla#assessment` provider mixin, whose attributes carry the
outcome on the agreement: violated or not, and a message. `assess()` decides a term's state from
the samples of the agreement's linked resources over the term's window. Pure: no I/O, no clock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from occipy.model.catalogue import DRAFT_04
from occipy.model.category import AttributeDef, AttributeValue, Mixin
from occipy.model.entity import Entity
from occipy.model.extensions import sla

VIOLATED: Final = "occipy.agreement.violated"
MESSAGE: Final = "occipy.agreement.message"
ASSESSED: Final = "occipy.agreement.assessed"
DEFAULT_WINDOW: Final = 3600.0


@dataclass(frozen=True, slots=True)
class TermRule:
    """How one provider term is assessed: a metric, its threshold attribute and the comparison."""

    term: str
    metric: str  # the monitoring metric (service/bindings/monitoring.py METRICS)
    threshold: str  # attribute holding the guaranteed value
    at_least: bool  # True: the mean must be >= the threshold; False: <=
    default: float
    title: str
    unit: str


RULES: Final[tuple[TermRule, ...]] = (
    TermRule("availability", "availability", "availability.term.uptime", True, 0.99,
             "Availability: the linked resources run at least this share of the time", "share (0-1)"),
    TermRule("response_time", "response_time", "response_time.term.mean", False, 1.0,
             "Response time: the cloud answers readings of the linked resources within this mean time", "s"),
)
BY_TERM: Final = {rule.term: rule for rule in RULES}


def window_attribute(term: str) -> str:
    return f"{term}.term.window"


def state_attribute(term: str) -> str:
    return f"{term}.term.state"


def term_scheme(provider_scheme: str) -> str:
    return f"{provider_scheme}sla/term#"


def assessment_id(provider_scheme: str) -> str:
    return f"{provider_scheme}sla#assessment"


def provider_mixins(provider_scheme: str) -> list[Mixin]:
    """The assessment mixin and the enforced terms (SLA-13: terms depend on agreement_term)."""
    scheme, _, term = assessment_id(provider_scheme).rpartition("#")
    assessment = Mixin(
        scheme=scheme + "#", term=term, title="Assessment of the agreement's terms by the provider",
        applies=(sla.AGREEMENT,), location="/mixin/agreement_assessment/",
        attributes=(
            AttributeDef(VIOLATED, type="boolean", mutable=False,
                         description="At least one term is Violated (GFD.228 §3.1.2)"),
            AttributeDef(MESSAGE, mutable=False, description="What the latest assessment found"),
            AttributeDef(ASSESSED, mutable=False, description="When the terms were last assessed (RFC 3339)"),
        ))
    mixins = [assessment]
    for rule in RULES:
        bounds: dict[str, object] = {"$schema": DRAFT_04, "type": "number", "minimum": 0}
        if rule.at_least:
            bounds["maximum"] = 1
        base = sla.term_mixin(
            term_scheme(provider_scheme), rule.term, title=rule.title,
            attributes=(
                AttributeDef(rule.threshold, type="number", default=rule.default, pattern=bounds,
                             description=f"The guaranteed {'minimum' if rule.at_least else 'maximum'} mean "
                                         f"({rule.unit})"),
                AttributeDef(window_attribute(rule.term), type="number", default=DEFAULT_WINDOW,
                             pattern={"$schema": DRAFT_04, "type": "number", "minimum": 1},
                             description="The period the mean is taken over, seconds before the assessment"),
            ))
        attributes = tuple(dataclasses.replace(a, default="SLO-TERM") if a.name.endswith(".term.type") else a
                           for a in base.attributes)
        mixins.append(dataclasses.replace(base, attributes=attributes,
                                          depends=(sla.AGREEMENT_TERM, assessment.type_id)))
    return mixins


def terms_of(agreement: Entity, provider_scheme: str) -> list[TermRule]:
    """The enforced terms an agreement carries."""
    scheme = term_scheme(provider_scheme)
    return [BY_TERM[m[len(scheme):]] for m in agreement.mixins if m.startswith(scheme) and m[len(scheme):] in BY_TERM]


def _number(value: object, default: float) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


@dataclass(frozen=True, slots=True)
class Finding:
    """One term's assessment: its new state and why (None: nothing to assess yet)."""

    term: str
    state: str | None
    detail: str


def assess(agreement: Entity, rule: TermRule, values: Sequence[float]) -> Finding:
    """A term's state from the metric values of its window (GFD.228 §3.1.2 term state diagram).

    No values: no assessment (the state stays as it is, `Undefined` at first).
    """
    threshold = _number(agreement.attributes.get(rule.threshold), rule.default)
    window = _number(agreement.attributes.get(window_attribute(rule.term)), DEFAULT_WINDOW)
    if not values:
        return Finding(rule.term, None, f"{rule.term}: no measurements in the last {window:g} s "
                                        "(is a collector measuring the linked resources?)")
    mean = sum(values) / len(values)
    ok = mean >= threshold if rule.at_least else mean <= threshold
    relation = (">=" if rule.at_least else "<=") if ok else ("<" if rule.at_least else ">")
    detail = (f"{rule.term}: {mean:.4g} {relation} {threshold:g} ({rule.unit}), mean of {len(values)} "
              f"measurements over the last {window:g} s")
    return Finding(rule.term, "Fulfilled" if ok else "Violated", detail)


def outcome(agreement: Entity, findings: Sequence[Finding], assessed_at: str,
            provider_scheme: str) -> dict[str, AttributeValue]:
    """The attribute changes of an assessment: each term's state, violated, message, time."""
    changes: dict[str, AttributeValue] = {}
    for finding in findings:
        if finding.state is not None:
            changes[state_attribute(finding.term)] = finding.state
    states = {term.term: changes.get(state_attribute(term.term), agreement.attributes.get(state_attribute(term.term)))
              for term in terms_of(agreement, provider_scheme)}
    violated = [term for term, state in states.items() if state == "Violated"]
    changes[VIOLATED] = bool(violated)
    parts = []
    for finding in findings:
        remedy = agreement.attributes.get(f"{finding.term}.term.remedy")
        part = ("VIOLATED " if finding.state == "Violated" else "") + finding.detail
        if finding.state == "Violated" and isinstance(remedy, str) and remedy:
            part += f"; remedy: {remedy}"
        parts.append(part)
    changes[MESSAGE] = "; ".join(parts)
    changes[ASSESSED] = assessed_at
    return changes


def changed(agreement: Entity, changes: Mapping[str, AttributeValue]) -> bool:
    """Whether writing the changes would change more than the assessment time."""
    return any(agreement.attributes.get(name) != value for name, value in changes.items() if name != ASSESSED)


__all__ = ["BY_TERM", "RULES", "Finding", "TermRule", "assess", "outcome", "provider_mixins", "terms_of"]
