"""The OCCI driver: another OCCI site (1.1 or 1.2, any rendering) as one of occipy's clouds.

Every call goes through occipy's own SDK (`occipy.client.AsyncClient`): a compute, storage,
network, storagelink or networkinterface created here is created there, and its remote
location (a path on the remote site) is the backend id. The remote's templates become this
cloud's templates; `supports` is read from the remote's discovery at `open()`; actions, live
updates and save pass through and are followed to their end (the remote's operation record, or
its state). Remote objects carry this installation's tag (`Inventories`), and a poll finds
changes made on the remote (`Watches`). docs/drivers/occi.md has the settings and the mapping.
Imports backends.base, errors, the SDK and the driver's private `_occi_*` modules.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Final, TypeVar
from urllib.parse import urlsplit

from occipy.backends import _occi_map as occi
from occipy.backends import base as b
from occipy.backends._occi_settings import OcciSettings, parse
from occipy.client import (
    AsyncClient,
    BackendError,
    BackendUnavailable,
    Entity,
    Forbidden,
    Model,
    NotFound,
    NotSupported,
    OcciError,
    ServerUnreachable,
    Unauthorized,
    WaitTimeout,
)
from occipy.model.standard import standard_registry

log = logging.getLogger("occipy.backends.occi")

T = TypeVar("T")
_CONCURRENCY: Final = 8  # remote GETs at once when polling or taking the inventory


def _local_templates() -> frozenset[str]:
    """Template mixins occipy defines itself (CRTP's small, medium, ...): not repeated as the remote's."""
    return frozenset(mixin.type_id for mixin in standard_registry().mixins())


class OcciDriver:
    """A remote OCCI site behind the driver contract; see the module docstring."""

    name = "occi"

    def __init__(self, settings: OcciSettings) -> None:
        self.settings = settings
        # Known after open(): what the remote's discovery announces.
        self.supports: Mapping[str, b.Support] = {}
        self._client: AsyncClient | None = None
        self._model: Model | None = None
        self._offered = occi.Offered()
        self._last: dict[b.Ref, b.Observed] = {}  # what was last seen of each object (for Watches)
        self._save_lock = asyncio.Lock()
        self._closed = asyncio.Event()

    @classmethod
    def from_options(cls, options: Mapping[str, str], data_dir: Path) -> OcciDriver:
        """Build from string settings (docs/drivers/occi.md); ValueError naming a bad one."""
        return cls(parse(options, data_dir))

    @property
    def site(self) -> str:
        return self.settings.url

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        """Connect and read the remote's query interface; BackendUnavailable naming it when it cannot."""
        s = self.settings
        if self._client is None:
            try:
                self._client = AsyncClient(s.url, auth=s.auth, cert=s.cert, verify=s.verify,
                                           media_type=s.media_type, timeout=s.timeout, validate=False)
            except (OSError, ValueError) as error:  # a certificate or CA file that does not load
                raise BackendUnavailable(f"cannot set up a connection to the OCCI site at {s.url}: {error}") from None
        self._closed.clear()
        model = await self._call("read its query interface", self._client.discover(refresh=True))
        self._learn(model)
        log.info("OCCI site %s: %s, %d templates, types %s", s.url, self._client.media_type,
                 len(self._offered.templates), ", ".join(sorted(self.supports)))

    async def close(self) -> None:
        """Stop the change pollers and close the connections."""
        self._closed.set()
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    def templates(self) -> Sequence[b.Template]:
        """The remote's os_tpl and resource_tpl children (after open(), and again after a save)."""
        return self._offered.templates

    def _learn(self, model: Model) -> None:
        self._model = model
        self._offered = occi.templates_of(model, _local_templates())
        self.supports = occi.supports_of(model, self._offered.templates)

    # ------------------------------------------------------------------ create / delete / observe

    async def create(self, spec: object) -> b.Observed:
        """Create the object on the remote and follow it until it is up; on failure nothing is left there."""
        client, model = self._ready()
        try:
            resource = b.resource_of(spec)
        except TypeError:
            raise NotSupported(f"the OCCI driver cannot create a {type(spec).__name__}") from None
        if resource not in self.supports:
            raise NotSupported(f"the OCCI site at {self.site} offers no {resource}")
        request = occi.creation(spec, model, self._offered, self.settings.tag)
        attributes = dict(request.attributes)
        if request.source is not None and request.target is not None:
            source, target = self._url(request.source), self._url(request.target)
            if source is None or target is None:
                missing = request.source if source is None else request.target
                raise BackendError(f"the OCCI site at {self.site} has no object {missing!r} to link")
            location = await self._call(f"create a {resource}", client.link(
                source, target, kind=request.kind, mixins=request.mixins, attributes=attributes))
        else:
            location = await self._call(f"create a {resource}", client.create(
                request.kind, attributes=attributes, mixins=request.mixins))
        backend_id = self._backend_id(location)
        ref = b.Ref(resource, backend_id)
        try:
            observed = await self._settle(ref, location, occi.CREATED_STATE[resource], f"create a {resource}")
        except BaseException:
            # The remote made something that did not come up: take it away again (best effort;
            # what stays is tagged, and the next start-up's sweep deletes it).
            await asyncio.shield(self._discard(ref))
            raise
        return observed

    async def _discard(self, ref: b.Ref) -> None:
        try:
            await self.delete(ref)
        except OcciError as error:
            log.warning("could not delete %s on %s after a failed create: %s", ref.backend_id, self.site,
                        error.message)

    async def delete(self, ref: b.Ref) -> None:
        """Delete the remote object, its own links first; wait until the remote no longer shows them."""
        client, _ = self._ready()
        self._last.pop(ref, None)
        url = self._url(ref.backend_id)
        if url is None:
            return
        try:
            entity = await self._call(f"read {ref.backend_id}", client.get(url), missing=True)
        except NotFound:
            return
        # GFD.224 §3.4: a resource's own links go with it; deleting them first means nobody sees
        # a link whose source is gone, whatever order the remote deletes them in.
        links = [link.location for link in entity.links
                 if link.location and self._same(link.attributes.get("occi.core.source"), url)]
        for location in [*links, url]:
            try:
                await self._call(f"delete {self._backend_id(location)}", client.delete(location), missing=True)
            except NotFound:
                pass
        await self._gone([*links, url])

    async def _gone(self, urls: Sequence[str]) -> None:
        client, _ = self._ready()
        deadline = time.monotonic() + self.settings.wait
        for url in urls:
            while True:
                try:
                    await self._call(f"read {self._backend_id(url)}", client.get(url), missing=True)
                except NotFound:
                    break
                if time.monotonic() >= deadline:
                    raise BackendError(f"the OCCI site at {self.site} still shows {self._backend_id(url)} "
                                       f"{self.settings.wait:g} s after deleting it")
                await asyncio.sleep(self.settings.interval)

    async def observe(self, ref: b.Ref) -> b.Observed | None:
        """The remote object's state and facts, or None when the remote no longer has it."""
        observed = await self._look(ref)
        if observed is None:
            self._last.pop(ref, None)
        else:
            self._last[ref] = observed
        return observed

    async def _look(self, ref: b.Ref) -> b.Observed | None:
        client, _ = self._ready()
        url = self._url(ref.backend_id)
        if url is None or ref.resource not in occi.KINDS:
            return None
        try:
            entity = await self._call(f"read {ref.backend_id}", client.get(url), missing=True)
        except NotFound:
            return None
        if occi.KINDS[ref.resource] != entity.kind:
            return None  # the location holds another type of object: not the one asked for
        return occi.observed_of(ref.resource, ref.backend_id, entity)

    # ------------------------------------------------------------------ actions, updates, save

    async def act(self, ref: b.Ref, action: b.Action) -> b.Observed:
        """Run the action on the remote and follow it until the object reaches the action's state."""
        client, model = self._ready()
        support = self.supports.get(ref.resource, b.Support())
        if action.name not in support.actions:
            raise NotSupported(f"the OCCI site at {self.site} has no action {action.name!r} on a {ref.resource}")
        if isinstance(action, b.Save):
            template = await self.save(ref, action)
            observed = await self._require(ref)
            return replace(observed, message=f"saved as image {template.name}")
        url = self._existing(ref)
        type_id, params = occi.action_request(ref.resource, action, model)
        try:
            await self._call(f"{action.name} {ref.backend_id}", client.trigger(url, type_id, params), missing=True)
        except NotFound:
            raise BackendError(f"the OCCI site at {self.site} has no {ref.resource} {ref.backend_id}") from None
        return await self._settle(ref, url, occi.TARGET_STATE[action.name], f"{action.name} {ref.backend_id}")

    async def update(self, ref: b.Ref, change: b.Update) -> b.Observed:
        """Resize, or replace the OS or resource template (a partial update on the remote, GFD.223 §10.3.1)."""
        client, _ = self._ready()
        missing = sorted(occi.update_fields(change) - self.supports.get(ref.resource, b.Support()).updates)
        if missing:
            raise NotSupported(f"the OCCI site at {self.site} cannot change {', '.join(missing)} of a {ref.resource}")
        url = self._existing(ref)
        attributes, mixins = occi.update_request(change, self._offered)
        try:
            await self._call(f"update {ref.backend_id}", client.update(url, attributes=attributes, mixins=mixins), missing=True)
        except NotFound:
            raise BackendError(f"the OCCI site at {self.site} has no {ref.resource} {ref.backend_id}") from None
        return await self._settle(ref, url, None, f"update {ref.backend_id}")

    async def save(self, ref: b.Ref, request: b.Save) -> b.Template:
        """The remote's save action (GFD.224 §3.1); the new os_tpl its discovery then lists is the image."""
        client, model = self._ready()
        if "save" not in self.supports.get(b.COMPUTE, b.Support()).actions or ref.resource != b.COMPUTE:
            raise NotSupported(f"the OCCI site at {self.site} cannot save a compute")
        url = self._existing(ref)
        type_id, params = occi.action_request(b.COMPUTE, request, model)
        # One save at a time: the new template is told apart by comparing discovery before and after.
        async with self._save_lock:
            before = set(self._offered.mixins.values())
            try:
                await self._call(f"save {ref.backend_id}", client.trigger(url, type_id, params), missing=True)
            except NotFound:
                raise BackendError(f"the OCCI site at {self.site} has no compute {ref.backend_id}") from None
            await self._settle(ref, url, None, f"save {ref.backend_id}")
            self._learn(await self._call("read its query interface", client.discover(refresh=True)))
            new = [t for t in self._offered.templates
                   if t.family == b.IMAGE and self._offered.mixins[(t.family, t.name)] not in before]
        if not new:
            raise BackendError(f"the OCCI site at {self.site} saved {ref.backend_id} but lists no new OS template")
        wanted = request.image_name
        return next((t for t in new if wanted and wanted in (t.name, t.title)), new[0])

    async def _settle(self, ref: b.Ref, url: str, state: str | None, what: str) -> b.Observed:
        """Follow the remote's operation to its end, then (when `state` is given) the object to `state`."""
        client, _ = self._ready()
        s = self.settings
        deadline = time.monotonic() + s.wait
        try:
            entity = await self._call(what, client.wait_for(url, timeout=s.wait, interval=s.interval), missing=True)
        except NotFound:
            raise BackendError(f"the OCCI site at {self.site}: {ref.backend_id} disappeared during {what}") from None
        observed = self._check(ref, entity, what)
        while state is not None and observed.state != state:
            if time.monotonic() >= deadline:
                raise BackendError(f"the OCCI site at {self.site} did not bring {ref.backend_id} to state {state} "
                                   f"within {s.wait:g} s ({what}); it is {observed.state}")
            await asyncio.sleep(s.interval)
            try:
                entity = await self._call(what, client.get(url), missing=True)
            except NotFound:
                raise BackendError(f"the OCCI site at {self.site}: {ref.backend_id} disappeared during {what}") from None
            observed = self._check(ref, entity, what)
        self._last[ref] = observed
        return observed

    def _check(self, ref: b.Ref, entity: Entity, what: str) -> b.Observed:
        observed = occi.observed_of(ref.resource, ref.backend_id, entity)
        if observed.state == b.ERROR:
            self._last[ref] = observed
            raise BackendError(f"the OCCI site at {self.site} could not {what}: "
                               f"{observed.message or 'the object is in state error'}")
        return observed

    async def _require(self, ref: b.Ref) -> b.Observed:
        observed = await self.observe(ref)
        if observed is None:
            raise BackendError(f"the OCCI site at {self.site} has no {ref.resource} {ref.backend_id}")
        return observed

    # ------------------------------------------------------------------ Watches, Adopts, Inventories

    def changes(self) -> AsyncIterator[b.Change]:
        """Changes made on the remote, found by looking at every known object every `poll` seconds."""
        return self._poll()

    async def _poll(self) -> AsyncIterator[b.Change]:
        failing = False
        while not self._closed.is_set():
            if self.settings.poll <= 0:
                await self._closed.wait()
                return
            try:
                await asyncio.wait_for(self._closed.wait(), timeout=self.settings.poll)
                return
            except TimeoutError:
                pass
            if self._client is None:
                continue
            refs = list(self._last)
            try:
                seen = await self._gather([self._look(ref) for ref in refs])
            except BackendUnavailable as error:
                if not failing:
                    log.warning("cannot look for changes on the OCCI site: %s", error.message)
                failing = True
                continue
            except OcciError as error:
                log.warning("looking for changes on the OCCI site failed: %s", error.message)
                continue
            failing = False
            for ref, observed in zip(refs, seen, strict=True):
                if ref not in self._last:
                    continue  # deleted through occipy meanwhile
                if observed is None:
                    self._last.pop(ref, None)
                    yield b.Change(ref, None)
                elif observed != self._last[ref]:
                    self._last[ref] = observed
                    yield b.Change(ref, observed)

    async def adopt(self, ref: b.Ref, observed: b.Observed) -> None:
        """Learn an object occipy manages, so that the poll watches it from start-up on."""
        self._last.setdefault(ref, observed)

    async def inventory(self) -> Sequence[b.Tagged]:
        """Every remote object that carries this installation's tag, with the entity id in it."""
        client, _ = self._ready()
        locations: list[tuple[str, str]] = []
        for resource in self.supports:
            kind = occi.KINDS[resource]
            found = await self._call(f"list its {resource} collection", client.list_locations(kind))
            locations.extend((resource, location) for location in found)

        async def read(resource: str, location: str) -> b.Tagged | None:
            try:
                entity = await self._call(f"read {location}", client.get(location), missing=True)
            except NotFound:
                return None
            entity_id = occi.tagged_entity_id(self.settings.tag, entity)
            if entity_id is None or entity.kind != occi.KINDS[resource]:
                return None
            return b.Tagged(b.Ref(resource, self._backend_id(location)), entity_id)

        found_items = await self._gather([read(resource, location) for resource, location in locations])
        return [item for item in found_items if item is not None]

    # ------------------------------------------------------------------ helpers

    def _ready(self) -> tuple[AsyncClient, Model]:
        if self._client is None or self._model is None:
            raise BackendUnavailable(f"the OCCI driver for {self.site} is not open")
        return self._client, self._model

    def _url(self, backend_id: str) -> str | None:
        """The remote URL a backend id names; None for an id that names nothing on this site."""
        origin = self.settings.origin
        if backend_id.startswith("/") and not backend_id.startswith("//"):
            return origin + backend_id
        if backend_id.startswith(origin + "/"):
            return backend_id
        return None

    def _existing(self, ref: b.Ref) -> str:
        url = self._url(ref.backend_id)
        if url is None:
            raise BackendError(f"the OCCI site at {self.site} has no {ref.resource} {ref.backend_id}")
        return url

    def _backend_id(self, location: str) -> str:
        """The path of a remote location on the remote's origin (what the backend id records)."""
        origin = self.settings.origin
        if location.startswith(origin + "/"):
            return location[len(origin):]
        return urlsplit(location).path if location.startswith("/") else location

    def _same(self, value: object, url: str) -> bool:
        return isinstance(value, str) and (value == url or self._url(value) == url)

    async def _gather(self, calls: Sequence[Awaitable[T]]) -> list[T]:
        gate = asyncio.Semaphore(_CONCURRENCY)

        async def one(call: Awaitable[T]) -> T:
            async with gate:
                return await call

        return list(await asyncio.gather(*(one(call) for call in calls)))

    async def _call(self, what: str, call: Awaitable[T], *, missing: bool = False) -> T:
        """One SDK call, its errors in the driver contract's words.

        With `missing`, NotFound is left to the caller (reading or deleting what may be gone);
        otherwise it is a BackendError like any other refusal.

        Unreachable or refusing our credentials: BackendUnavailable (503) naming the site; the
        remote cannot: NotSupported (501); anything else it refused or failed: BackendError (502).
        """
        site = self.site
        try:
            return await call
        except NotFound as error:
            if missing:
                raise
            raise BackendError(f"the OCCI site at {site} could not {what}: {error.message}") from None
        except ServerUnreachable as error:
            raise BackendUnavailable(f"{error.message} (while trying to {what})") from None
        except BackendUnavailable as error:
            raise BackendUnavailable(f"the OCCI site at {site} is unavailable: {error.message}") from None
        except (Unauthorized, Forbidden) as error:
            raise BackendUnavailable(f"the OCCI site at {site} refused occipy's credentials "
                                     f"({type(error).__name__}): {error.message}") from None
        except NotSupported as error:
            raise NotSupported(f"the OCCI site at {site} cannot {what}: {error.message}") from None
        except WaitTimeout as error:
            raise BackendError(f"the OCCI site at {site} did not finish ({what}): {error.message}") from None
        except OcciError as error:
            raise BackendError(f"the OCCI site at {site} could not {what}: {error.message}") from None
