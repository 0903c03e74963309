"""Entity views: a stored entity with what the renderings show besides it (GFD.224 INF-R2).

A view carries the actions that may be invoked now (or, with operations accepted and not ended,
in the state the entity will then be in), its links, and for links the kind of their source.
An entity being deleted shows "deleting" and no actions. Views are values; stored entities are
never changed.
"""

from __future__ import annotations

from occipy.model import state as fsm
from occipy.model.entity import Entity
from occipy.model.registry import Registry
from occipy.service.cloud import Clouds
from occipy.service.edits import set_state, state_of
from occipy.store.base import Store


# Bound on the remembered action lists (kinds x mixin sets x states in use; cleared when full).
ACTIONS_KEPT = 4096


class Views:
    def __init__(self, registry: Registry, store: Store, cloud: Clouds) -> None:
        self.registry = registry
        self.store = store
        self.cloud = cloud
        # (registry version, kind, mixins, state) -> the actions to render. What an entity offers
        # depends on nothing else: its kind and mixins name its actions and its cloud, and the
        # state machine picks among them.
        self._actions: dict[tuple[int, str, tuple[str, ...], str | None], tuple[str, ...]] = {}

    async def view(self, entity: Entity) -> Entity:
        """The entity with its links and actions filled in."""
        links: tuple[Entity, ...] = ()
        if self.registry.is_resource_kind(entity.kind):
            found = await self.store.links_from([entity.location])
            links = tuple([await self.decorate(link) for link in found.get(entity.location, [])])
        decorated = await self.decorate(entity)
        return decorated.evolve(links=links) if links else decorated

    async def decorate(self, entity: Entity) -> Entity:
        """The entity with the actions allowed now (or after its accepted work) and, for links,
        `occi.core.source.kind`."""
        registry = self.registry
        lanes = self.cloud.lanes
        location = entity.location
        if lanes.deleting(location):
            return set_state(entity, None, "deleting").evolve(actions=())
        current = lanes.projected(location) or state_of(entity)
        key = (registry.version, entity.kind, entity.mixins, current)
        actions = self._actions.get(key)
        if actions is None:
            candidates = [action_id for action_id in registry.action_ids(entity.kind, entity.mixins)
                          if self.cloud.offers_action(entity, action_id)]
            actions = fsm.available_actions(entity.kind, current, candidates)
            if len(self._actions) >= ACTIONS_KEPT:
                self._actions.clear()
            self._actions[key] = actions
        result = entity.evolve(actions=actions) if actions != entity.actions else entity
        source = entity.source
        if source and registry.is_link_kind(entity.kind):
            other = await self.store.get(source)
            if other is not None:
                result = result.with_attributes({"occi.core.source.kind": other.kind})
        return result
