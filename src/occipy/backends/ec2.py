"""EC2Driver: OCCI Infrastructure on Amazon EC2 (or an EC2-compatible endpoint such as moto), with boto3.

compute = instance, storage = EBS volume, network = subnet of the driver's VPC, storagelink =
volume attachment, networkinterface = ENI, securitygroup = VPC security group, securitygrouplink =
the group on the instance's interfaces, ipreservation = Elastic IP (a networkinterface to one = its
association with the instance); os_tpl = AMIs, resource_tpl = instance types, floatingippool = the
Elastic IP pool;
ssh_public_key = a key pair imported for the instance; user_data goes to EC2 as it is. Every object
carries the OCCI entity id as a tag, so the inventory finds what a crash left behind; changes made
outside occipy are found by polling describe calls (EC2 has no event stream a driver can read
without more AWS services). The mapping, settings and limits are in docs/drivers/ec2.md; the
operations live in `_ec2_compute.py`, `_ec2_devices.py`, `_ec2_groups.py` and `_ec2_addresses.py`, on
`_ec2_base.py`; with
`_ec2_settings.py` they are the only modules of occipy that import boto3. Imports backends.base,
errors and those helpers.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

import anyio.to_thread

from occipy.backends import egi_types as egi
from occipy.backends._ec2_addresses import ALLOCATION_RE, ASSOCIATION_RE, _AddressOps, pool_template
from occipy.backends._ec2_base import (
    ATTACHMENT_RE,
    GONE_INSTANCE,
    GONE_VOLUME,
    TAG_ENTITY,
    TAG_LINK_ENTITY,
    tags_of,
)
from occipy.backends._ec2_compute import _ComputeOps
from occipy.backends._ec2_devices import DEVICES, _DeviceOps, device_name
from occipy.backends._ec2_groups import GROUP_LINK_RE, _GroupOps
from occipy.backends._ec2_settings import Settings, parse_settings
from occipy.backends.base import (
    COMPUTE,
    NETWORK,
    NETWORKINTERFACE,
    STORAGE,
    STORAGELINK,
    Action,
    Change,
    ComputeSpec,
    ComputeUpdate,
    NetworkInterfaceFacts,
    NetworkInterfaceSpec,
    NetworkSpec,
    Observed,
    Ref,
    Save,
    SecurityGroupUpdate,
    StorageLinkFacts,
    StorageLinkSpec,
    StorageSpec,
    StorageUpdate,
    Support,
    Tagged,
    Template,
    Update,
)
from occipy.errors import BackendError, NotSupported, OcciError

if TYPE_CHECKING:
    from mypy_boto3_ec2.client import EC2Client

# What EC2 can do. `suspend` (hibernation) is added only when the `hibernation` option is on.
SUPPORTS: Final[Mapping[str, Support]] = {
    COMPUTE: Support(actions=frozenset({"start", "stop", "restart", "save"}), updates=frozenset({"flavour"})),
    STORAGE: Support(updates=frozenset({"size_gib"})),
    NETWORK: Support(),
    STORAGELINK: Support(),
    NETWORKINTERFACE: Support(),
    # EGI (docs/drivers/ec2.md): a security group's rules change live; an Elastic IP goes up and
    # down (rOCCI's ipreservation state, kept in a tag: EC2 has no such switch).
    egi.SECURITYGROUP: Support(updates=frozenset({"rules"})),
    egi.SECURITYGROUPLINK: Support(),
    egi.IPRESERVATION: Support(actions=frozenset({"up", "down"})),
}


class EC2Driver(_ComputeOps, _DeviceOps, _GroupOps, _AddressOps):
    """One EC2 region (one VPC, one availability zone) behind the driver contract (backends.base).

    Implements Driver, Updates, Saves, Watches (by polling), Inventories and Proposes.
    """

    name = "ec2"

    def __init__(self, settings: Settings, client_factory: Callable[[Settings], EC2Client] | None = None) -> None:
        super().__init__(settings, client_factory)
        compute = SUPPORTS[COMPUTE]
        if settings.hibernation:
            compute = dataclasses.replace(compute, actions=compute.actions | {"suspend"})
        self.supports: Mapping[str, Support] = {**SUPPORTS, COMPUTE: compute}
        self._network_lock = asyncio.Lock()
        self._closed = asyncio.Event()

    @classmethod
    def from_options(cls, options: Mapping[str, str], data_dir: Path) -> EC2Driver:
        """Build from string options (docs/drivers/ec2.md); ValueError naming a bad one."""
        return cls(parse_settings(options))

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        """Connect, find the VPC, zone and subnet, read the catalogue; BackendUnavailable if unreachable."""
        self._closed = asyncio.Event()
        await self._connect()
        zones = await self._call("listing availability zones", self.client.describe_availability_zones)
        await self._placement([str(z["ZoneName"]) for z in zones.get("AvailabilityZones", [])
                               if z.get("State") == "available"])
        await self._load_catalogue()
        await self._collect_keys()

    async def _placement(self, zones: Sequence[str]) -> None:
        """The VPC, availability zone, subnet and security groups every object goes into."""
        s = self.settings
        if s.vpc_id is not None:
            found = await self._find("reading ec2 driver option vpc_id", self.client.describe_vpcs, VpcIds=[s.vpc_id])
            vpcs = (found.get("Vpcs", []) if found else [])
            if not vpcs:
                raise BackendError(f"ec2 driver option vpc_id: no VPC {s.vpc_id} in {self._where}")
        else:
            vpcs = (await self._call("finding the default VPC", self.client.describe_vpcs,
                                     Filters=[{"Name": "is-default", "Values": ["true"]}])).get("Vpcs", [])
            if not vpcs:
                raise BackendError(f"{self._where} has no default VPC: set ec2 driver option vpc_id (and subnet_id)")
        vpc = vpcs[0]
        self.vpc_id = str(vpc["VpcId"])
        self.vpc_cidrs = [str(a["CidrBlock"]) for a in vpc.get("CidrBlockAssociationSet", [])
                          if (a.get("CidrBlockState") or {}).get("State") == "associated"] or [str(vpc["CidrBlock"])]
        if s.availability_zone is not None and s.availability_zone not in zones:
            raise BackendError(f"ec2 driver option availability_zone: {s.availability_zone} is not an available "
                               f"zone of {self._where} ({', '.join(zones)})")
        if s.subnet_id is not None:
            subnet = await self._subnet(s.subnet_id)
            if subnet is None or subnet.get("VpcId") != self.vpc_id:
                raise BackendError(f"ec2 driver option subnet_id: no subnet {s.subnet_id} in VPC {self.vpc_id}")
            if s.availability_zone not in (None, subnet.get("AvailabilityZone")):
                raise BackendError(f"ec2 driver option subnet_id: {s.subnet_id} is in "
                                   f"{subnet.get('AvailabilityZone')}, not in {s.availability_zone}")
        else:
            defaults = await self._pages("finding the default subnet", "describe_subnets", "Subnets",
                                         Filters=[{"Name": "vpc-id", "Values": [self.vpc_id]},
                                                  {"Name": "default-for-az", "Values": ["true"]}])
            defaults = sorted((d for d in defaults if d.get("AvailabilityZone") in zones),
                              key=lambda d: str(d.get("AvailabilityZone")))
            subnet = next((d for d in defaults if s.availability_zone in (None, d.get("AvailabilityZone"))), None)
            if subnet is None:
                raise BackendError(f"VPC {self.vpc_id} has no default subnet in "
                                   f"{s.availability_zone or 'any zone'}: set ec2 driver option subnet_id")
        self.subnet_id = str(subnet["SubnetId"])
        self.zone = str(subnet["AvailabilityZone"])
        if s.security_group_ids:
            self.security_groups = list(s.security_group_ids)
        else:
            groups = await self._call("finding the VPC's default security group", self.client.describe_security_groups,
                                      Filters=[{"Name": "vpc-id", "Values": [self.vpc_id]},
                                               {"Name": "group-name", "Values": ["default"]}])
            self.security_groups = [str(g["GroupId"]) for g in groups.get("SecurityGroups", [])][:1]

    async def close(self) -> None:
        self._closed.set()
        client, self._client = self._client, None
        if client is not None:
            await anyio.to_thread.run_sync(client.close)

    def templates(self) -> Sequence[Template]:
        return [*self._templates(), pool_template(self.pool)]

    # ------------------------------------------------------------------ the core

    async def create(self, spec: object) -> Observed:
        if isinstance(spec, ComputeSpec):
            return await self._create_compute(spec)
        if isinstance(spec, StorageSpec):
            return await self._create_storage(spec)
        if isinstance(spec, NetworkSpec):
            return await self._create_network(spec)
        if isinstance(spec, StorageLinkSpec):
            return await self._create_storagelink(spec)
        if isinstance(spec, NetworkInterfaceSpec):
            if ALLOCATION_RE.match(spec.network_id):  # the target is an ipreservation
                return await self._create_association(spec)
            return await self._create_networkinterface(spec)
        if isinstance(spec, egi.SecurityGroupSpec):
            return await self._create_securitygroup(spec)
        if isinstance(spec, egi.SecurityGroupLinkSpec):
            return await self._create_securitygrouplink(spec)
        if isinstance(spec, egi.IpReservationSpec):
            return await self._create_ipreservation(spec)
        raise NotSupported(f"the ec2 driver cannot create a {type(spec).__name__}")

    async def delete(self, ref: Ref) -> None:
        if ref.resource == COMPUTE:
            await self._delete_compute(ref.backend_id)
        elif ref.resource == STORAGE:
            with self._working(ref.backend_id):
                await self._delete_storage(ref.backend_id)
        elif ref.resource == NETWORK:
            with self._working(ref.backend_id):
                await self._delete_network(ref.backend_id)
        elif ref.resource == STORAGELINK:
            await self._delete_storagelink(ref.backend_id)
        elif ref.resource == NETWORKINTERFACE and ASSOCIATION_RE.match(ref.backend_id):
            await self._delete_association(ref.backend_id)
        elif ref.resource == NETWORKINTERFACE:
            with self._working(ref.backend_id):
                await self._delete_networkinterface(ref.backend_id)
        elif ref.resource == egi.SECURITYGROUP:
            await self._delete_securitygroup(ref.backend_id)
        elif ref.resource == egi.SECURITYGROUPLINK:
            await self._delete_securitygrouplink(ref.backend_id)
        elif ref.resource == egi.IPRESERVATION:
            await self._delete_ipreservation(ref.backend_id)
        else:
            raise NotSupported(f"the ec2 driver has no {ref.resource}")

    async def _delete_compute(self, instance_id: str) -> None:
        """Terminate the instance; its interfaces go with it, its volumes are detached (and kept)."""
        async with self._lock(instance_id):
            with self._working(instance_id):
                if await self._instance(instance_id) is None:
                    return
                enis, volumes = await self._instance_links(instance_id)
                await self._release_associations(instance_id)
                await self._terminate(instance_id)
                await self._cleanup_links(enis, volumes)
                await self._forget_grouplinks(instance_id)
                self._forget(COMPUTE, instance_id)
                for ref in [r for r in self._last if r.backend_id.startswith(instance_id + "/")]:
                    self._last.pop(ref, None)

    async def observe(self, ref: Ref) -> Observed | None:
        if ref.resource == COMPUTE:
            return await self._observe_compute(ref.backend_id)
        if ref.resource == STORAGE:
            return await self._observe_storage(ref.backend_id)
        if ref.resource == NETWORK:
            return await self._observe_network(ref.backend_id)
        if ref.resource == STORAGELINK:
            return await self._observe_storagelink(ref.backend_id)
        if ref.resource == NETWORKINTERFACE and ASSOCIATION_RE.match(ref.backend_id):
            return await self._observe_association(ref.backend_id)
        if ref.resource == NETWORKINTERFACE:
            return await self._observe_networkinterface(ref.backend_id)
        if ref.resource == egi.SECURITYGROUP:
            return await self._observe_securitygroup(ref.backend_id)
        if ref.resource == egi.SECURITYGROUPLINK:
            return await self._observe_securitygrouplink(ref.backend_id)
        if ref.resource == egi.IPRESERVATION:
            return await self._observe_ipreservation(ref.backend_id)
        return None

    async def act(self, ref: Ref, action: Action) -> Observed:
        support = self.supports.get(ref.resource)
        if support is None or (action.name not in support.actions and not (
                ref.resource == COMPUTE and isinstance(action, Save))):
            raise NotSupported(f"the ec2 driver has no {ref.resource} action {action.name!r}")
        if ref.resource == egi.IPRESERVATION:
            return await self._act_ipreservation(ref.backend_id, action)
        async with self._lock(ref.backend_id):
            with self._working(ref.backend_id):
                return await self._act_compute(ref.backend_id, action)

    # ------------------------------------------------------------------ optional protocols

    async def update(self, ref: Ref, change: Update) -> Observed:
        """Updates: a compute's instance type, a volume's size, a security group's rules."""
        if ref.resource == COMPUTE and isinstance(change, ComputeUpdate):
            async with self._lock(ref.backend_id):
                with self._working(ref.backend_id):
                    return await self._update_compute(ref.backend_id, change)
        if ref.resource == STORAGE and isinstance(change, StorageUpdate):
            return await self._update_storage(ref.backend_id, change)
        if ref.resource == egi.SECURITYGROUP and isinstance(change, SecurityGroupUpdate):
            return await self._update_securitygroup(ref.backend_id, change.rules)
        raise NotSupported(f"the ec2 driver cannot update a {ref.resource} with {type(change).__name__}")

    async def save(self, ref: Ref, request: Save) -> Template:
        """Saves: create_image from the instance (an AMI named as asked, numbered if taken)."""
        if ref.resource != COMPUTE:
            raise NotSupported(f"the ec2 driver cannot save a {ref.resource}")
        async with self._lock(ref.backend_id):
            with self._working(ref.backend_id):
                return await self._save(ref.backend_id, request)

    async def inventory(self) -> Sequence[Tagged]:
        """Inventories: every object of this owner that carries an entity id (docs/drivers/ec2.md)."""
        found: list[Tagged] = []
        entity = [*self.owner_filter(), {"Name": "tag-key", "Values": [TAG_ENTITY]}]
        instances: list[str] = []
        owned = await self._pages("listing instances", "describe_instances", "Reservations", Filters=self.owner_filter())
        for instance in owned:
            if instance["State"]["Name"] not in GONE_INSTANCE:
                instances.append(str(instance["InstanceId"]))  # a security group's links need the instance
                if TAG_ENTITY in tags_of(instance):
                    found.append(Tagged(Ref(COMPUTE, str(instance["InstanceId"])), tags_of(instance)[TAG_ENTITY]))
        volumes = await self._pages("listing volumes", "describe_volumes", "Volumes", Filters=self.owner_filter())
        for volume in volumes:
            tags = tags_of(volume)
            if volume["State"] in GONE_VOLUME:
                continue
            if TAG_ENTITY in tags:
                found.append(Tagged(Ref(STORAGE, str(volume["VolumeId"])), tags[TAG_ENTITY]))
            if TAG_LINK_ENTITY in tags:
                for attachment in volume.get("Attachments", []):
                    if attachment.get("State") in ("attaching", "attached"):
                        link = f"{attachment['InstanceId']}/{volume['VolumeId']}"
                        found.append(Tagged(Ref(STORAGELINK, link), tags[TAG_LINK_ENTITY]))
        for subnet in await self._pages("listing subnets", "describe_subnets", "Subnets", Filters=entity):
            found.append(Tagged(Ref(NETWORK, str(subnet["SubnetId"])), tags_of(subnet)[TAG_ENTITY]))
        for eni in await self._pages("listing network interfaces", "describe_network_interfaces",
                                     "NetworkInterfaces", Filters=entity):
            found.append(Tagged(Ref(NETWORKINTERFACE, str(eni["NetworkInterfaceId"])), tags_of(eni)[TAG_ENTITY]))
        found.extend(self._group_tagged(await self._owned_groups(), instances))
        found.extend(self._address_tagged(await self._owned_addresses()))
        return found

    def propose(self, spec: object, taken: Sequence[object]) -> object | None:
        """Proposes: a device for a volume (/dev/sdf...), an interface name for an ENI (eth1...)."""
        if isinstance(spec, StorageLinkSpec):
            if spec.device is not None:
                return StorageLinkFacts(device=spec.device, mountpoint=spec.mountpoint)
            used = set()
            for facts in taken:
                if isinstance(facts, StorageLinkFacts) and facts.device:
                    try:
                        used.add(device_name(facts.device))
                    except BackendError:
                        continue
            device = next((d for d in DEVICES if d not in used), None)
            return StorageLinkFacts(device=device, mountpoint=spec.mountpoint) if device else None
        if isinstance(spec, NetworkInterfaceSpec):
            if spec.interface is not None:
                return NetworkInterfaceFacts(interface=spec.interface, mac=spec.mac)
            names = {f.interface for f in taken if isinstance(f, NetworkInterfaceFacts)}
            # eth0 is the instance's primary interface, in the driver's subnet.
            interface = next(f"eth{n}" for n in range(1, len(names) + 2) if f"eth{n}" not in names)
            return NetworkInterfaceFacts(interface=interface, mac=spec.mac)
        return None

    async def changes(self) -> AsyncIterator[Change]:
        """Watches, by polling: every `poll_interval` seconds one describe per object type (filtered
        by the owner tag) finds what changed outside occipy. Never yields with poll_interval 0."""
        interval = self.settings.poll_interval
        while not self._closed.is_set():
            if interval > 0:
                try:
                    for change in await self._poll():
                        yield change
                except OcciError:
                    pass  # the cloud is unreachable for now: the next round tries again
            try:
                await asyncio.wait_for(self._closed.wait(), timeout=interval if interval > 0 else None)
            except TimeoutError:
                continue

    async def _poll(self) -> list[Change]:
        """Compare what EC2 reports now with what occipy last reported; skip objects being changed."""
        if self._client is None:
            return []
        before = dict(self._last)  # the translators below remember what they read
        now: dict[Ref, Observed] = {}
        owner = self.owner_filter()
        instances: dict[str, object] = {}
        for instance in await self._pages("polling instances", "describe_instances", "Reservations", Filters=owner):
            if instance["State"]["Name"] not in GONE_INSTANCE:
                instances[str(instance["InstanceId"])] = instance
                observed = await self._observed_instance(instance)
                now[Ref(COMPUTE, observed.backend_id)] = observed
        for volume in await self._pages("polling volumes", "describe_volumes", "Volumes", Filters=owner):
            if volume["State"] in GONE_VOLUME:
                continue
            observed = self._observed_volume(volume)
            now[Ref(STORAGE, observed.backend_id)] = observed
            for attachment in volume.get("Attachments", []):
                link = self._observed_attachment(volume, str(attachment.get("InstanceId")))
                if link is not None:
                    now[Ref(STORAGELINK, link.backend_id)] = link
        gateways: dict[str, str | None] = {}
        for subnet in await self._pages("polling subnets", "describe_subnets", "Subnets", Filters=owner):
            observed = self._observed_subnet(subnet)
            now[Ref(NETWORK, observed.backend_id)] = observed
            gateways[observed.backend_id] = getattr(observed.facts, "gateway", None)
        for eni in await self._pages("polling network interfaces", "describe_network_interfaces",
                                     "NetworkInterfaces", Filters=owner):
            gateway = gateways.get(str(eni.get("SubnetId")))
            observed = self._observed_eni(eni, gateway if gateway is not None else await self._eni_gateway(eni))
            now[Ref(NETWORKINTERFACE, observed.backend_id)] = observed
        now.update(self._group_objects(await self._owned_groups(), instances))
        now.update(self._address_objects(await self._owned_addresses(), instances))
        changes = [Change(ref, observed) for ref, observed in now.items()
                   if not self._busy_ref(ref) and before.get(ref) != observed]
        for ref, last in before.items():
            if ref in now or self._busy_ref(ref):
                continue
            # Not among this owner's objects: gone, or not tagged as ours; one describe tells.
            again = await self.observe(ref)
            if again is None or again != last:
                changes.append(Change(ref, again))
        return changes

    def _busy_ref(self, ref: Ref) -> bool:
        match = (ATTACHMENT_RE.match(ref.backend_id) or GROUP_LINK_RE.match(ref.backend_id)
                 or ASSOCIATION_RE.match(ref.backend_id))
        ids = [ref.backend_id, *match.groups()] if match else [ref.backend_id]
        return any(i in self._busy for i in ids)
