"""The Infrastructure kinds (GFD.224 §3) realised by driver resource types: compute, storage,
network, storagelink and networkinterface.

Every OCCI attribute name of the Infrastructure kinds that a driver's work depends on appears here
and nowhere else in the service.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from typing import Final

from occipy.backends import base as driver
from occipy.errors import NotSupported
from occipy.model.catalogue import (
    COMPUTE,
    IPNETWORK,
    IPNETWORKINTERFACE,
    NETWORK,
    NETWORKINTERFACE,
    SSH_KEY,
    STORAGE,
    STORAGELINK,
    USER_DATA,
)
from occipy.model.category import AttributeValue
from occipy.model.entity import Entity
from occipy.service.bindings import Binding, Reported, SpecInput, register

_EMPTY: Final[Mapping[str, str]] = {}


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _user_data(value: object) -> bytes | None:
    """Contextualisation data: Base64 when it decodes cleanly, else the text itself (infrastructure.md §9.4)."""
    if not isinstance(value, str):
        return None
    compact = "".join(value.split())
    if compact and len(compact) % 4 == 0 and re.fullmatch(r"[A-Za-z0-9+/]+={0,2}", compact):
        try:
            return base64.b64decode(compact, validate=True)
        except (binascii.Error, ValueError):
            pass
    return value.encode()


def _present(values: Mapping[str, AttributeValue | None]) -> dict[str, AttributeValue]:
    return {name: value for name, value in values.items() if value is not None}


def _method(params: Mapping[str, AttributeValue], default: str) -> str:
    value = params.get("method")
    return value if isinstance(value, str) else default


class _Base:
    """Defaults shared by the Infrastructure bindings."""

    live: Mapping[str, str] = _EMPTY
    actions: Mapping[str, type] = {}
    reported: frozenset[str] = frozenset()

    def action(self, term: str, params: Mapping[str, AttributeValue]) -> driver.Action:
        action_class = self.actions.get(term)
        if action_class is None:
            plain = {k: v for k, v in params.items() if isinstance(v, (str, int, float, bool))}
            return driver.Custom(name=term, params=plain)
        action: driver.Action = action_class()
        return action

    def update(self, fields: Mapping[str, object]) -> driver.Update:
        raise NotSupported("this resource cannot be changed while it exists")

    def proposal(self, siblings: Sequence[Entity]) -> Mapping[str, AttributeValue]:
        return {}


class ComputeBinding(_Base):
    kind: str = COMPUTE
    resource: str = driver.COMPUTE
    created_state: str = "active"
    reported: frozenset[str] = frozenset({"occi.compute.architecture", "occi.compute.cores",
                                          "occi.compute.memory"})
    live: Mapping[str, str] = {"occi.compute.cores": "cores", "occi.compute.memory": "memory_gib",
                               "occi.compute.architecture": "architecture"}

    def spec(self, entity: Entity, given: SpecInput) -> object:
        a = entity.attributes
        return driver.ComputeSpec(
            name=given.name, entity_id=entity.entity_id, cores=_int(a.get("occi.compute.cores")),
            memory_gib=_float(a.get("occi.compute.memory")), architecture=_str(a.get("occi.compute.architecture")),
            hostname=_str(a.get("occi.compute.hostname")), share=_int(a.get("occi.compute.share")),
            image=given.image, flavour=given.flavour,
            ssh_public_key=_str(a.get("occi.credentials.ssh.publickey")) if SSH_KEY in entity.mixins else None,
            user_data=_user_data(a.get("occi.compute.userdata")) if USER_DATA in entity.mixins else None,
        )

    def report(self, facts: object | None) -> Reported:
        if not isinstance(facts, driver.ComputeFacts):
            return Reported()
        return Reported(_present({
            "occi.compute.cores": facts.cores, "occi.compute.memory": facts.memory_gib,
            "occi.compute.architecture": facts.architecture, "occi.compute.hostname": facts.hostname,
        }))

    def facts(self, entity: Entity) -> object | None:
        a = entity.attributes
        return driver.ComputeFacts(cores=_int(a.get("occi.compute.cores")), memory_gib=_float(a.get("occi.compute.memory")),
                                   architecture=_str(a.get("occi.compute.architecture")),
                                   hostname=_str(a.get("occi.compute.hostname")))

    def action(self, term: str, params: Mapping[str, AttributeValue]) -> driver.Action:
        if term == "start":
            return driver.Start()
        if term == "stop":
            return driver.Stop(method=_method(params, "graceful"))
        if term == "restart":
            return driver.Restart(method=_method(params, "graceful"))
        if term == "suspend":
            return driver.Suspend(method=_method(params, "suspend"))
        if term == "save":
            name = params.get("name")
            return driver.Save(image_name=name if isinstance(name, str) else None,
                               method=_method(params, "hot"))
        return super().action(term, params)

    def update(self, fields: Mapping[str, object]) -> driver.Update:
        return driver.ComputeUpdate(
            cores=_int(fields.get("cores")), memory_gib=_float(fields.get("memory_gib")),
            architecture=_str(fields.get("architecture")), image=_str(fields.get("image")),
            flavour=_str(fields.get("flavour")))


class StorageBinding(_Base):
    kind: str = STORAGE
    resource: str = driver.STORAGE
    created_state: str = "online"
    reported: frozenset[str] = frozenset()
    live: Mapping[str, str] = {"occi.storage.size": "size_gib"}
    # backup, snapshot: OCCI 1.1 storage actions (D-LEGACY-STORAGE), run where the cloud can.
    actions: Mapping[str, type] = {"online": driver.Online, "offline": driver.Offline,
                                   "backup": driver.Backup, "snapshot": driver.Snapshot}

    def spec(self, entity: Entity, given: SpecInput) -> object:
        return driver.StorageSpec(name=given.name, entity_id=entity.entity_id,
                                  size_gib=float(_float(entity.attributes.get("occi.storage.size")) or 1.0))

    def report(self, facts: object | None) -> Reported:
        if not isinstance(facts, driver.StorageFacts):
            return Reported()
        return Reported(_present({"occi.storage.size": facts.size_gib}))

    def facts(self, entity: Entity) -> object | None:
        return driver.StorageFacts(size_gib=_float(entity.attributes.get("occi.storage.size")))

    def update(self, fields: Mapping[str, object]) -> driver.Update:
        return driver.StorageUpdate(size_gib=_float(fields.get("size_gib")))


class NetworkBinding(_Base):
    kind: str = NETWORK
    resource: str = driver.NETWORK
    created_state: str = "active"
    reported: frozenset[str] = frozenset({"occi.network.address", "occi.network.gateway",
                                          "occi.network.allocation"})
    actions: Mapping[str, type] = {"up": driver.Up, "down": driver.Down}

    def spec(self, entity: Entity, given: SpecInput) -> object:
        a = entity.attributes
        return driver.NetworkSpec(
            name=given.name, entity_id=entity.entity_id, address=_str(a.get("occi.network.address")),
            gateway=_str(a.get("occi.network.gateway")), allocation=_str(a.get("occi.network.allocation")),
            vlan=_int(a.get("occi.network.vlan")), label=_str(a.get("occi.network.label")))

    def report(self, facts: object | None) -> Reported:
        if not isinstance(facts, driver.NetworkFacts):
            return Reported()
        values = _present({"occi.network.address": facts.address, "occi.network.gateway": facts.gateway,
                           "occi.network.allocation": facts.allocation})
        return Reported(values, (IPNETWORK,) if values else ())

    def facts(self, entity: Entity) -> object | None:
        a = entity.attributes
        return driver.NetworkFacts(address=_str(a.get("occi.network.address")),
                                   gateway=_str(a.get("occi.network.gateway")),
                                   allocation=_str(a.get("occi.network.allocation")))


class StorageLinkBinding(_Base):
    kind: str = STORAGELINK
    resource: str = driver.STORAGELINK
    created_state: str = "active"
    reported: frozenset[str] = frozenset({"occi.storagelink.deviceid"})

    def spec(self, entity: Entity, given: SpecInput) -> object:
        assert given.ends is not None
        a = entity.attributes
        return driver.StorageLinkSpec(name=given.name, entity_id=entity.entity_id, compute_id=given.ends[0],
                                      storage_id=given.ends[1], device=_str(a.get("occi.storagelink.deviceid")),
                                      mountpoint=_str(a.get("occi.storagelink.mountpoint")))

    def report(self, facts: object | None) -> Reported:
        if not isinstance(facts, driver.StorageLinkFacts):
            return Reported()
        return Reported(_present({"occi.storagelink.deviceid": facts.device,
                                  "occi.storagelink.mountpoint": facts.mountpoint}))

    def facts(self, entity: Entity) -> object | None:
        a = entity.attributes
        return driver.StorageLinkFacts(device=_str(a.get("occi.storagelink.deviceid")),
                                       mountpoint=_str(a.get("occi.storagelink.mountpoint")))

    def proposal(self, siblings: Sequence[Entity]) -> Mapping[str, AttributeValue]:
        # No cloud names the device: a neutral, unique name among the compute's disks.
        used = {e.attributes.get("occi.storagelink.deviceid") for e in siblings}
        return {"occi.storagelink.deviceid": next(f"disk{n}" for n in range(len(used) + 1) if f"disk{n}" not in used)}


class NetworkInterfaceBinding(_Base):
    kind: str = NETWORKINTERFACE
    resource: str = driver.NETWORKINTERFACE
    created_state: str = "active"
    reported: frozenset[str] = frozenset({"occi.networkinterface.mac", "occi.networkinterface.address",
                                          "occi.networkinterface.gateway", "occi.networkinterface.allocation"})

    def spec(self, entity: Entity, given: SpecInput) -> object:
        assert given.ends is not None
        a = entity.attributes
        return driver.NetworkInterfaceSpec(
            name=given.name, entity_id=entity.entity_id, compute_id=given.ends[0], network_id=given.ends[1],
            interface=_str(a.get("occi.networkinterface.interface")), mac=_str(a.get("occi.networkinterface.mac")),
            address=_str(a.get("occi.networkinterface.address")),
            allocation=_str(a.get("occi.networkinterface.allocation")))

    def report(self, facts: object | None) -> Reported:
        if not isinstance(facts, driver.NetworkInterfaceFacts):
            return Reported()
        ip = _present({"occi.networkinterface.address": facts.address,
                       "occi.networkinterface.gateway": facts.gateway,
                       "occi.networkinterface.allocation": facts.allocation})
        values = {**_present({"occi.networkinterface.interface": facts.interface,
                              "occi.networkinterface.mac": facts.mac}), **ip}
        return Reported(values, (IPNETWORKINTERFACE,) if ip else ())

    def facts(self, entity: Entity) -> object | None:
        a = entity.attributes
        return driver.NetworkInterfaceFacts(
            interface=_str(a.get("occi.networkinterface.interface")), mac=_str(a.get("occi.networkinterface.mac")),
            address=_str(a.get("occi.networkinterface.address")),
            gateway=_str(a.get("occi.networkinterface.gateway")),
            allocation=_str(a.get("occi.networkinterface.allocation")))

    def proposal(self, siblings: Sequence[Entity]) -> Mapping[str, AttributeValue]:
        # No cloud names the interface: the next free ethN (GFD.224 §3.4 examples use eth0).
        used = {e.attributes.get("occi.networkinterface.interface") for e in siblings}
        return {"occi.networkinterface.interface": next(f"eth{n}" for n in range(len(used) + 1)
                                                        if f"eth{n}" not in used)}


INFRASTRUCTURE: tuple[Binding, ...] = (ComputeBinding(), StorageBinding(), NetworkBinding(), StorageLinkBinding(),
                                       NetworkInterfaceBinding())
for _binding in INFRASTRUCTURE:
    register(_binding)
