"""The EC2 driver's EGI floating addresses: Elastic IPs as ipreservations, their associations as
networkinterfaces.

ipreservation = an Elastic IP of the VPC domain (`AllocateAddress`) from the `address_pool` setting
(Amazon's pool, or a BYOIP pool), tagged with the owner, the entity id and the title in the same
call; the backend id is the allocation id. EC2 has no up/down for an address, so rOCCI's state
(created `inactive`, `up` -> `active`, `down` -> `inactive`) is the tag `occipy:state`. A
networkinterface from a compute to an ipreservation = the address associated with the instance's
primary interface (`AssociateAddress`), id "<instance>/<allocation>"; its entity id and instance are
tags on the address, written before the association (so the inventory finds it after a crash).
Imports boto3 (through _ec2_base), backends.base, egi_types and errors.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from occipy.backends import base as b
from occipy.backends import egi_types as egi
from occipy.backends._ec2_base import (
    INSTANCE_RE,
    TAG_ENTITY,
    TAG_LINK_ENTITY,
    TAG_NAME,
    _Ec2Base,
    tag_spec,
    tags_of,
)
from occipy.backends.base import NetworkInterfaceFacts, NetworkInterfaceSpec, Observed, Ref, Template
from occipy.errors import BackendError, Conflict, NotSupported

ALLOCATION_RE: Final = re.compile(r"^eipalloc-[0-9a-f]{8,17}$")
# A networkinterface to an ipreservation is an association: "<instance id>/<allocation id>".
ASSOCIATION_RE: Final = re.compile(r"^(i-[0-9a-f]{8,17})/(eipalloc-[0-9a-f]{8,17})$")
TAG_STATE: Final = "occipy:state"  # on an Elastic IP: "active" after `up` (absent: inactive)
TAG_LINK_INSTANCE: Final = "occipy:link-instance"  # on an Elastic IP: the instance of its networkinterface
AMAZON_POOL: Final = "amazon"
# The address sits on the instance's primary interface (eth0, which is not an OCCI link on EC2).
PRIMARY_INTERFACE: Final = "eth0"


def pool_template(pool: str) -> Template:
    """The pool the driver allocates from, offered as a floatingippool child (a POOL template)."""
    title = "Elastic IPs from Amazon's pool" if pool == AMAZON_POOL else f"Elastic IPs from BYOIP pool {pool}"
    return Template(b.POOL, pool, title)


def allocation_params(spec: egi.IpReservationSpec, pool: str) -> dict[str, Any]:
    """AllocateAddress's arguments for a reservation (without the tags); BackendError when EC2 cannot.

    A wanted address goes to EC2 as `Address`: from Amazon's pool EC2 gives back only an address
    this account released recently (recovery), from a BYOIP pool one of the pool; EC2 refuses others.
    """
    if spec.pool is not None and spec.pool != pool:
        raise BackendError(f"the ec2 cloud has no floating IP pool {spec.pool!r}; it has {pool!r} "
                           "(ec2 driver option address_pool)")
    params: dict[str, Any] = {"Domain": "vpc"}
    if pool != AMAZON_POOL:
        params["PublicIpv4Pool"] = pool
    if spec.address:
        try:
            host = ipaddress.ip_interface(spec.address).ip
        except ValueError:
            raise BackendError(f"occi.ipreservation.address {spec.address!r} is not an IP address") from None
        if host.version != 4:
            raise BackendError(f"Elastic IPs are IPv4 addresses, not {host}")
        params["Address"] = str(host)
    return params


def associated_instance(address: Mapping[str, Any]) -> str | None:
    """The instance an associated address is on: EC2's InstanceId, else the instance occipy tagged
    (moto leaves InstanceId empty when an address is associated with an interface)."""
    if not address.get("AssociationId"):
        return None
    instance = str(address.get("InstanceId") or tags_of(address).get(TAG_LINK_INSTANCE) or "")
    return instance if INSTANCE_RE.match(instance) else None


def reservation_observed(address: Mapping[str, Any], pool: str) -> Observed:
    """An Elastic IP as an ipreservation: its state from the tag, `used` while associated."""
    state = b.ACTIVE if tags_of(address).get(TAG_STATE) == b.ACTIVE else b.INACTIVE
    facts = egi.IpReservationFacts(address=str(address.get("PublicIp") or "") or None,
                                   used=bool(address.get("AssociationId")), pool=pool)
    return Observed(str(address["AllocationId"]), state, None, facts)


def interface_eni(instance: Mapping[str, Any], address: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The instance's interface the address is associated with (None: not with this instance)."""
    eni_id = address.get("NetworkInterfaceId")
    if not address.get("AssociationId") or not eni_id:
        return None
    return next((n for n in instance.get("NetworkInterfaces", []) if n.get("NetworkInterfaceId") == eni_id), None)


def association_observed(instance: Mapping[str, Any], address: Mapping[str, Any]) -> Observed | None:
    """An association as a networkinterface: the public address on the instance's interface."""
    eni = interface_eni(instance, address)
    if eni is None:
        return None
    facts = NetworkInterfaceFacts(interface=PRIMARY_INTERFACE if int((eni.get("Attachment") or {}).get(
        "DeviceIndex", 0)) == 0 else None, mac=str(eni.get("MacAddress") or "") or None,
        address=str(address.get("PublicIp") or "") or None, allocation="static")
    return Observed(f"{instance['InstanceId']}/{address['AllocationId']}", b.ACTIVE, None, facts)


def primary_eni(instance: Mapping[str, Any]) -> Mapping[str, Any] | None:
    return next((n for n in instance.get("NetworkInterfaces", [])
                 if int((n.get("Attachment") or {}).get("DeviceIndex", -1)) == 0), None)


class _AddressOps(_Ec2Base):
    """Elastic IPs and their associations with instances."""

    @property
    def pool(self) -> str:
        return self.settings.address_pool

    async def _address(self, allocation_id: str) -> Any | None:
        if not ALLOCATION_RE.match(allocation_id):
            return None
        reply = await self._find(f"reading Elastic IP {allocation_id}", self.client.describe_addresses,
                                 AllocationIds=[allocation_id])
        found = reply.get("Addresses", []) if reply else []
        return found[0] if found else None

    async def _owned_addresses(self) -> list[Any]:
        reply = await self._call("listing Elastic IPs", self.client.describe_addresses, Filters=self.owner_filter())
        return list(reply.get("Addresses", []))

    def _observed_address(self, address: Any) -> Observed:
        return self._remember(egi.IPRESERVATION, reservation_observed(address, self.pool))

    # ---- ipreservation: an Elastic IP ---------------------------------------------------------------

    async def _create_ipreservation(self, spec: egi.IpReservationSpec) -> Observed:
        params = allocation_params(spec, self.pool)
        reply = await self._call(
            f"reserving an Elastic IP for {spec.name!r}", self.client.allocate_address, **params,
            TagSpecifications=[tag_spec("elastic-ip", self.owned(**{TAG_NAME: spec.name,
                                                                     TAG_ENTITY: spec.entity_id or None}))])
        allocation_id = str(reply["AllocationId"])
        address = await self._address(allocation_id)
        if address is None:
            raise BackendError(f"Elastic IP {allocation_id} disappeared right after it was reserved")
        return self._observed_address(address)

    async def _observe_ipreservation(self, allocation_id: str) -> Observed | None:
        address = await self._address(allocation_id)
        if address is None:
            self._forget(egi.IPRESERVATION, allocation_id)
            return None
        return self._observed_address(address)

    async def _act_ipreservation(self, allocation_id: str, action: b.Action) -> Observed:
        """up/down: EC2 has no such switch for an address; the state is the tag occipy:state."""
        if not isinstance(action, (b.Up, b.Down)):
            raise NotSupported(f"the ec2 driver has no ipreservation action {action.name!r}")
        async with self._lock(allocation_id):
            with self._working(allocation_id):
                if await self._address(allocation_id) is None:
                    raise BackendError(f"no Elastic IP {allocation_id} in {self._where}")
                if isinstance(action, b.Up):
                    await self._tag(allocation_id, {TAG_STATE: b.ACTIVE})
                else:
                    await self._untag(allocation_id, [TAG_STATE])
                observed = await self._observe_ipreservation(allocation_id)
                if observed is None:
                    raise BackendError(f"Elastic IP {allocation_id} disappeared while its state changed")
                return observed

    async def _delete_ipreservation(self, allocation_id: str) -> None:
        """Disassociate the address if it is on an instance, then release it."""
        async with self._lock(allocation_id):
            with self._working(allocation_id):
                address = await self._address(allocation_id)
                if address is None:
                    return
                if address.get("AssociationId"):
                    await self._disassociate(address)
                await self._find(f"releasing Elastic IP {allocation_id}", self.client.release_address,
                                 AllocationId=allocation_id)
                self._forget(egi.IPRESERVATION, allocation_id)
                for ref in [r for r in self._last if r.resource == b.NETWORKINTERFACE
                            and r.backend_id.endswith("/" + allocation_id)]:
                    self._last.pop(ref, None)

    async def _disassociate(self, address: Any) -> None:
        allocation_id = str(address["AllocationId"])
        await self._find(f"disassociating Elastic IP {allocation_id}", self.client.disassociate_address,
                         AssociationId=str(address["AssociationId"]))
        await self._untag(allocation_id, [TAG_LINK_ENTITY, TAG_LINK_INSTANCE])

    # ---- networkinterface to an ipreservation: an association -------------------------------------------

    async def _create_association(self, spec: NetworkInterfaceSpec) -> Observed:
        if spec.mac is not None:
            raise NotSupported("EC2 chooses the MAC address of a network interface itself "
                               "(occi.networkinterface.mac cannot be set)")
        allocation_id = spec.network_id
        async with self._lock(spec.compute_id), self._lock(allocation_id):
            instance = await self._live_instance(spec.compute_id)
            if instance is None:
                raise BackendError(f"no instance {spec.compute_id} to put a floating address on")
            address = await self._address(allocation_id)
            if address is None:
                raise BackendError(f"no Elastic IP {allocation_id} in {self._where}")
            public_ip = address.get("PublicIp")
            if address.get("AssociationId"):
                where = associated_instance(address) or address.get("NetworkInterfaceId") or "another interface"
                raise Conflict(f"the floating address {public_ip} ({allocation_id}) is already attached to {where}: "
                               "delete that networkinterface first")
            eni = primary_eni(instance)
            if eni is None:
                raise BackendError(f"instance {spec.compute_id} has no primary network interface")
            eni_id = str(eni["NetworkInterfaceId"])
            # EC2 would silently move another Elastic IP off the interface: refuse instead.
            held = await self._call(f"reading the Elastic IPs of interface {eni_id}", self.client.describe_addresses,
                                    Filters=[{"Name": "network-interface-id", "Values": [eni_id]}])
            other = next((a for a in held.get("Addresses", []) if a.get("AssociationId")), None)
            if other is not None:
                raise Conflict(f"instance {spec.compute_id} already has the floating address {other.get('PublicIp')} "
                               f"({other.get('AllocationId')}): EC2 gives an interface one")
            backend_id = f"{spec.compute_id}/{allocation_id}"
            with self._working(backend_id, allocation_id):
                await self._tag(allocation_id, {TAG_LINK_ENTITY: spec.entity_id or None,
                                                TAG_LINK_INSTANCE: spec.compute_id})
                try:
                    await self._call(f"associating Elastic IP {public_ip} with instance {spec.compute_id}",
                                     self.client.associate_address, AllocationId=allocation_id,
                                     NetworkInterfaceId=eni_id, AllowReassociation=False)
                except BaseException:
                    await self._untag(allocation_id, [TAG_LINK_ENTITY, TAG_LINK_INSTANCE])
                    raise
                observed = await self._observe_association(backend_id)
                if observed is None:
                    raise BackendError(f"EC2 did not associate Elastic IP {public_ip} with instance {spec.compute_id}")
                # The reservation's `used` changed: the next polling round reports it (not read here,
                # which would make the poll take it for reported already).
                return observed

    async def _observe_association(self, backend_id: str) -> Observed | None:
        match = ASSOCIATION_RE.match(backend_id)
        instance = await self._live_instance(match.group(1)) if match else None
        address = await self._address(match.group(2)) if match and instance else None
        observed = association_observed(instance, address) if instance and address else None
        if observed is None:
            self._forget(b.NETWORKINTERFACE, backend_id)
            return None
        return self._remember(b.NETWORKINTERFACE, observed)

    async def _delete_association(self, backend_id: str) -> None:
        match = ASSOCIATION_RE.match(backend_id)
        if match is None:
            return
        instance_id, allocation_id = match.groups()
        async with self._lock(instance_id), self._lock(allocation_id):
            with self._working(backend_id, allocation_id):
                address = await self._address(allocation_id)
                if address is not None:
                    instance = await self._instance(instance_id)
                    on_it = instance is not None and interface_eni(instance, address) is not None
                    if on_it or (address.get("AssociationId") and associated_instance(address) == instance_id):
                        await self._disassociate(address)
                    elif tags_of(address).get(TAG_LINK_INSTANCE) == instance_id:
                        await self._untag(allocation_id, [TAG_LINK_ENTITY, TAG_LINK_INSTANCE])
                self._forget(b.NETWORKINTERFACE, backend_id)

    async def _release_associations(self, instance_id: str) -> None:
        """Before an instance goes: the floating addresses occipy put on it come off (and are kept)."""
        reply = await self._call("listing the instance's Elastic IPs", self.client.describe_addresses,
                                 Filters=[*self.owner_filter(),
                                          {"Name": f"tag:{TAG_LINK_INSTANCE}", "Values": [instance_id]}])
        for address in reply.get("Addresses", []):
            if address.get("AssociationId"):
                await self._disassociate(address)
            else:
                await self._untag(str(address["AllocationId"]), [TAG_LINK_ENTITY, TAG_LINK_INSTANCE])
            self._forget(b.NETWORKINTERFACE, f"{instance_id}/{address['AllocationId']}")

    # ---- the inventory and polling ----------------------------------------------------------------------

    def _address_objects(self, addresses: Sequence[Any], instances: Mapping[str, Any]) -> dict[Ref, Observed]:
        """Observed reservations and associations, from listed addresses and instances not gone."""
        found: dict[Ref, Observed] = {}
        for address in addresses:
            observed = self._observed_address(address)
            found[Ref(egi.IPRESERVATION, observed.backend_id)] = observed
            # Associations occipy made (tagged with their instance), on instances that are not gone.
            instance = instances.get(associated_instance(address) or "")
            if instance is not None and TAG_LINK_INSTANCE in tags_of(address):
                link = association_observed(instance, address)
                if link is not None:
                    found[Ref(b.NETWORKINTERFACE, link.backend_id)] = self._remember(b.NETWORKINTERFACE, link)
        return found

    @staticmethod
    def _address_tagged(addresses: Sequence[Any]) -> list[b.Tagged]:
        """Inventory rows: addresses with an entity id, associations with a link entity id."""
        found: list[b.Tagged] = []
        for address in addresses:
            tags = tags_of(address)
            allocation_id = str(address["AllocationId"])
            if tags.get(TAG_ENTITY):
                found.append(b.Tagged(Ref(egi.IPRESERVATION, allocation_id), tags[TAG_ENTITY]))
            instance_id = associated_instance(address)
            if instance_id is not None and tags.get(TAG_LINK_ENTITY):
                found.append(b.Tagged(Ref(b.NETWORKINTERFACE, f"{instance_id}/{allocation_id}"), tags[TAG_LINK_ENTITY]))
        return found


__all__ = ["ALLOCATION_RE", "ASSOCIATION_RE", "TAG_LINK_INSTANCE", "TAG_STATE", "_AddressOps",
           "allocation_params", "association_observed", "pool_template", "reservation_observed"]
