"""Driver templates offered as OCCI mixins (GFD.224 §3.5: children of os_tpl and resource_tpl; GFD.227
app_tpl/res_tpl; EGI floatingippool pools).

A driver names its images and flavours in its own words (`ubuntu-24.04`); OCCI 1.1 and rOCCI-core
parsers only take terms in `[a-z][a-z0-9_-]*`, so every template gets a strict term here
(`strict_term`, collision-safe) and the index maps the mixin back to the driver's name. Saved
templates are stored as mixins; at start-up they are matched back to what the driver still lists.
Imports the model and the driver contract's values only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from occipy.backends.base import FLAVOUR, IMAGE, PLAN, POOL, RUNTIME, Template
from occipy.model.catalogue import COMPUTE, NETWORKINTERFACE, OS_TPL, RESOURCE_TPL
from occipy.model.category import AttributeDef, AttributeValue, Mixin, strict_term
from occipy.model.extensions.egi import FLOATINGIPPOOL, IPRESERVATION
from occipy.model.extensions.platform import APP_TPL, APPLICATION, COMPONENT, RES_TPL
from occipy.model.registry import Registry

# Template family -> the OCCI mixin it depends on, and the scheme tag of its children.
FAMILIES: Final[Mapping[str, tuple[str, str]]] = {IMAGE: (OS_TPL, "os_tpl"), FLAVOUR: (RESOURCE_TPL, "resource_tpl"),
                                                  # docker branch: GFD.227 §3.4 provider templates
                                                  RUNTIME: (APP_TPL, "app_tpl"), PLAN: (RES_TPL, "res_tpl"),
                                                  # EGI: address pools, children of floatingippool (rOCCI
                                                  # `<prefix>/floatingippool#<pool>`, D-EXT-EGI-POOL)
                                                  POOL: (FLOATINGIPPOOL, "floatingippool")}
# The kinds a family's templates apply to (GFD.227 §3.4 / OCCIware: app_tpl and res_tpl apply to
# applications and components).
_APPLIES: Final[Mapping[str, tuple[str, ...]]] = {RUNTIME: (APPLICATION, COMPONENT), PLAN: (APPLICATION, COMPONENT),
                                                  # rOCCI-server: ipreservation; ooi: networkinterface
                                                  POOL: (NETWORKINTERFACE, IPRESERVATION)}


@dataclass(frozen=True, slots=True)
class Offered:
    """A template as offered: the driver's value and the mixin that stands for it."""

    template: Template
    mixin: Mixin


class TemplateIndex:
    """Templates of one cloud, by mixin type id; registers their mixins in the registry."""

    def __init__(self, registry: Registry, scheme_base: str, cloud: str, depends: tuple[str, ...] = ()) -> None:
        self.registry = registry
        self.scheme_base = scheme_base
        self.cloud = cloud
        # More mixins every template depends on (the cloud's mixin, with several clouds).
        self.depends = depends
        self._by_mixin: dict[str, Offered] = {}

    def mixin_for(self, template: Template) -> Mixin:
        """The mixin offering a template (its sizes become attribute defaults, GFD.224 §3.5)."""
        parent, tag = FAMILIES[template.family]
        compute_defs = self.registry.kind_attribute_defs(COMPUTE)
        defaults: dict[str, AttributeValue | None] = {
            "occi.compute.cores": template.cores,
            "occi.compute.memory": template.memory_gib,
            "occi.compute.architecture": template.architecture,
        }
        attributes = []
        for name, value in defaults.items():
            base = compute_defs.get(name)
            if base is not None and value is not None and template.family not in _APPLIES:
                attributes.append(AttributeDef(name=name, type=base.type, mutable=base.mutable, required=False,
                                               pattern=base.pattern, default=value, description=base.description))
        scheme = f"{self.scheme_base}{tag}#"
        existing = [o for o in self._by_mixin.values() if o.template.family == template.family
                    and o.template.name == template.name]
        # D-STRICT-TERMS: provider names (`ubuntu-24.04`) become terms OCCI 1.1 parsers accept.
        term = strict_term(template.name)
        location = f"/mixin/{tag}/{term}/"
        if self.registry.by_location(location) is not None and not existing:
            location = f"/mixin/{tag}/{self.cloud}/{term}/"
        return Mixin(scheme=scheme, term=term, title=template.title, attributes=tuple(attributes),
                     depends=(parent, *self.depends), applies=_APPLIES.get(template.family, (COMPUTE,)),
                     location=location)

    def offer(self, template: Template) -> Mixin:
        """Register the template's mixin (or find it, when registered before) and index it."""
        mixin = self.mixin_for(template)
        existing = self.registry.find(mixin.type_id)
        if isinstance(existing, Mixin):
            mixin = existing
        else:
            self.registry.add(mixin)
        self._by_mixin[mixin.type_id] = Offered(template, mixin)
        return mixin

    def adopt_saved(self, mixin: Mixin, listed: Iterable[Template]) -> None:
        """A saved template loaded from the store: find the driver's template it stands for."""
        family = IMAGE if OS_TPL in mixin.depends else FLAVOUR
        for template in listed:
            if template.family == family and strict_term(template.name) == mixin.term:
                self._by_mixin[mixin.type_id] = Offered(template, mixin)
                return
        # The cloud does not list it any more: keep the mixin (entities render it); creating from it
        # is refused by the driver as an unknown image.
        self._by_mixin[mixin.type_id] = Offered(Template(family, mixin.term, mixin.title or mixin.term), mixin)

    def template(self, mixin_id: str) -> Template | None:
        offered = self._by_mixin.get(mixin_id)
        return offered.template if offered is not None else None

    def chosen(self, mixin_ids: Iterable[str], family: str) -> str | None:
        """The driver name of the entity's template of this family, if it has one."""
        for mixin_id in mixin_ids:
            offered = self._by_mixin.get(mixin_id)
            if offered is not None and offered.template.family == family:
                return offered.template.name
        return None

    def owns(self, mixin: Mixin) -> bool:
        """Whether a stored (saved) template mixin is one of this cloud's (by its scheme)."""
        return mixin.scheme.startswith(self.scheme_base) and mixin.scheme[len(self.scheme_base):] in (
            tuple(f"{tag}#" for _, tag in FAMILIES.values()))

    def chosen_all(self, mixin_ids: Iterable[str]) -> dict[str, str]:
        """Every family the entity has a template of -> the template's driver name."""
        chosen: dict[str, str] = {}
        for mixin_id in mixin_ids:
            offered = self._by_mixin.get(mixin_id)
            if offered is not None:
                chosen.setdefault(offered.template.family, offered.template.name)
        return chosen

    def __contains__(self, mixin_id: object) -> bool:
        return mixin_id in self._by_mixin
