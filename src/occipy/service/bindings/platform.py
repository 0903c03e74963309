"""The Platform kinds (GFD.227) realised by driver resource types: application, component and
componentlink (backends/platform_types.py).

Every OCCI attribute name of the Platform kinds that a driver's work depends on appears here and
nowhere else in the service. A component's runtime and size come from its provider app_tpl and
res_tpl children (driver template families RUNTIME and PLAN).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from occipy.backends import base as driver
from occipy.backends.platform_types import (
    APPLICATION as APPLICATION_RESOURCE,
)
from occipy.backends.platform_types import (
    COMPONENT as COMPONENT_RESOURCE,
)
from occipy.backends.platform_types import (
    COMPONENTLINK as COMPONENTLINK_RESOURCE,
)
from occipy.backends.platform_types import (
    ApplicationFacts,
    ApplicationSpec,
    ComponentFacts,
    ComponentLinkFacts,
    ComponentLinkSpec,
    ComponentSpec,
)
from occipy.errors import NotSupported
from occipy.model.category import AttributeValue
from occipy.model.entity import Entity
from occipy.model.extensions.platform import (
    APPLICATION,
    COMPONENT,
    COMPONENTLINK,
    DATABASE,
    DATABASELINK,
)
from occipy.service.bindings import Binding, Reported, SpecInput, register

_EMPTY: Final[Mapping[str, str]] = {}


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _present(values: Mapping[str, AttributeValue | None]) -> dict[str, AttributeValue]:
    return {name: value for name, value in values.items() if value is not None}


class _Base:
    """Start and stop (GFD.227 §3.1, §3.2); nothing changes on a live object."""

    live: Mapping[str, str] = _EMPTY
    reported: frozenset[str] = frozenset()

    def action(self, term: str, params: Mapping[str, AttributeValue]) -> driver.Action:
        if term == "start":
            return driver.Start()
        if term == "stop":
            return driver.Stop()
        plain = {k: v for k, v in params.items() if isinstance(v, (str, int, float, bool))}
        return driver.Custom(name=term, params=plain)

    def update(self, fields: Mapping[str, object]) -> driver.Update:
        raise NotSupported("a platform resource cannot be changed while it runs")

    def proposal(self, siblings: Sequence[Entity]) -> Mapping[str, AttributeValue]:
        return {}


class ApplicationBinding(_Base):
    kind: str = APPLICATION
    resource: str = APPLICATION_RESOURCE
    created_state: str = "active"  # GFD.227 §4: a created application runs
    reported: frozenset[str] = frozenset({"occi.app.url", "occi.app.context"})

    def spec(self, entity: Entity, given: SpecInput) -> object:
        return ApplicationSpec(name=given.name, entity_id=entity.entity_id,
                               app_name=_str(entity.attributes.get("occi.app.name")),
                               runtime=given.templates.get(driver.RUNTIME), plan=given.templates.get(driver.PLAN))

    def report(self, facts: object | None) -> Reported:
        if not isinstance(facts, ApplicationFacts):
            return Reported()
        return Reported(_present({"occi.app.url": facts.url, "occi.app.context": facts.context}))

    def facts(self, entity: Entity) -> object | None:
        a = entity.attributes
        return ApplicationFacts(url=_str(a.get("occi.app.url")), context=_str(a.get("occi.app.context")))


class ComponentBinding(_Base):
    kind: str = COMPONENT
    resource: str = COMPONENT_RESOURCE
    created_state: str = "active"
    reported: frozenset[str] = frozenset({"occi.database.version"})

    def spec(self, entity: Entity, given: SpecInput) -> object:
        return ComponentSpec(name=given.name, entity_id=entity.entity_id, runtime=given.templates.get(driver.RUNTIME),
                             plan=given.templates.get(driver.PLAN), database=DATABASE in entity.mixins)

    def report(self, facts: object | None) -> Reported:
        if not isinstance(facts, ComponentFacts):
            return Reported()
        # occi.database.version exists only on components with the database mixin: the service
        # drops attributes the entity's categories do not define.
        return Reported(_present({"occi.database.version": facts.version}))

    def facts(self, entity: Entity) -> object | None:
        return ComponentFacts(version=_str(entity.attributes.get("occi.database.version")))


class ComponentLinkBinding(_Base):
    kind: str = COMPONENTLINK
    resource: str = COMPONENTLINK_RESOURCE
    created_state: str = "active"
    reported: frozenset[str] = frozenset({"occi.database.uri", "occi.database.username", "occi.database.token"})

    def spec(self, entity: Entity, given: SpecInput) -> object:
        assert given.ends is not None
        return ComponentLinkSpec(name=given.name, entity_id=entity.entity_id, source_id=given.ends[0],
                                 target_id=given.ends[1], database=DATABASELINK in entity.mixins)

    def report(self, facts: object | None) -> Reported:
        if not isinstance(facts, ComponentLinkFacts):
            return Reported()
        values = _present({"occi.database.uri": facts.uri, "occi.database.username": facts.username,
                           "occi.database.token": facts.token})
        # GFD.227 §4.1.1: a link to a database component SHOULD carry the databaselink mixin.
        return Reported(values, (DATABASELINK,) if facts.uri else ())

    def facts(self, entity: Entity) -> object | None:
        a = entity.attributes
        return ComponentLinkFacts(uri=_str(a.get("occi.database.uri")), username=_str(a.get("occi.database.username")),
                                  token=_str(a.get("occi.database.token")))


PLATFORM: tuple[Binding, ...] = (ApplicationBinding(), ComponentBinding(), ComponentLinkBinding())
for _binding in PLATFORM:
    register(_binding)
