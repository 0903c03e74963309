"""The EC2 driver's storage, networks and links: EBS volumes, VPC subnets, attachments and ENIs.

storage = an EBS volume in the driver's availability zone; network = a subnet of the driver's VPC
(a range outside the VPC's CIDR blocks is added to the VPC first); storagelink = a volume
attachment, id "<instance>/<volume>", its entity id and mountpoint kept as tags on the volume;
networkinterface = an ENI in the subnet attached to the instance at device index n ("eth<n>").
Imports boto3 (through _ec2_base), backends.base and errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import math
import re
import uuid
from collections.abc import Sequence
from typing import Any, Final

from occipy.backends import base as b
from occipy.backends._ec2_base import (
    ATTACHMENT_RE,
    TAG_ALLOCATION,
    TAG_CIDR,
    TAG_ENTITY,
    TAG_INTERFACE,
    TAG_LABEL,
    TAG_LINK_ENTITY,
    TAG_MOUNTPOINT,
    TAG_NAME,
    TAG_OWNER,
    _Ec2Base,
    gateway_of,
    tag_spec,
    tags_of,
)
from occipy.backends.base import (
    NetworkFacts,
    NetworkInterfaceFacts,
    NetworkInterfaceSpec,
    NetworkSpec,
    Observed,
    StorageFacts,
    StorageLinkFacts,
    StorageLinkSpec,
    StorageSpec,
    StorageUpdate,
)
from occipy.errors import BackendError, NotSupported, OcciError

# Device names EC2 takes for EBS volumes on Linux instances; the driver hands out /dev/sdf.. first
# (EC2's recommendation), a client may name any of the pattern.
DEVICES: Final = tuple(f"/dev/sd{c}" for c in "fghijklmnopqrstuvwxyz")
DEVICE_RE: Final = re.compile(r"^/dev/(sd[b-z]|xvd[b-z]{1,2}|sd[b-z][1-9][0-5]?|hd[a-z])$")
ETH_RE: Final = re.compile(r"^eth([0-9]{1,2})$")
MAX_DEVICE_INDEX: Final = 31
LINK_TAGS: Final = (TAG_LINK_ENTITY, TAG_MOUNTPOINT)


def device_name(device: str) -> str:
    """A client's device as EC2 wants it ("sdf" -> "/dev/sdf"); BackendError naming the forms."""
    name = device if device.startswith("/dev/") else f"/dev/{device}"
    if not DEVICE_RE.match(name):
        raise BackendError(f"EC2 cannot attach a volume as {device!r}: use /dev/sd[f-p] (or /dev/sd[b-z], "
                           "/dev/xvd[b-z]) as occi.storagelink.deviceid")
    return name


def interface_index(name: str) -> int | None:
    match = ETH_RE.match(name)
    return int(match.group(1)) if match else None


class _DeviceOps(_Ec2Base):
    """Volumes, subnets, attachments and network interfaces."""

    _network_lock: asyncio.Lock

    # ---- storage: EBS volumes ----------------------------------------------------------------------------

    def _observed_volume(self, volume: Any) -> Observed:
        state = str(volume["State"])
        if state in ("available", "in-use"):
            word, message = b.ONLINE, None
        elif state == "creating":
            word, message = b.OFFLINE, "EC2 is creating the volume"
        else:
            word, message = b.ERROR, f"EC2 reports the volume {state}"
        facts = StorageFacts(size_gib=float(volume.get("Size", 0)) or None)
        return self._remember(b.STORAGE, Observed(str(volume["VolumeId"]), word, message, facts))

    async def _create_storage(self, spec: StorageSpec) -> Observed:
        if not spec.size_gib > 0 or math.isinf(spec.size_gib):
            raise BackendError(f"a volume needs a positive size, got {spec.size_gib!r} GiB")
        size = max(1, math.ceil(spec.size_gib - 1e-9))  # EBS sizes are whole GiB
        reply = await self._call(
            f"creating volume {spec.name!r}", self.client.create_volume, AvailabilityZone=self.zone, Size=size,
            VolumeType=self.settings.volume_type, ClientToken=uuid.uuid4().hex,
            TagSpecifications=[tag_spec("volume", self.owned(**{TAG_NAME: spec.name,
                                                                   TAG_ENTITY: spec.entity_id or None}))])
        volume_id = str(reply["VolumeId"])
        with self._working(volume_id):
            try:
                volume = await self._volume_until(volume_id, lambda v: v["State"] != "creating", "creating the volume")
                if volume["State"] != "available":
                    raise BackendError(f"EC2 could not create volume {volume_id} (state {volume['State']})")
            except BaseException:
                await self._quietly("deleting the failed volume", self.client.delete_volume, VolumeId=volume_id)
                raise
            return self._observed_volume(volume)

    async def _volume_until(self, volume_id: str, done: Any, what: str) -> Any:
        async def read() -> Any:
            volume = await self._volume(volume_id)
            if volume is None:
                raise BackendError(f"{what}: volume {volume_id} disappeared")
            return volume

        return await self._wait(f"{what} ({volume_id})", read, done)

    async def _observe_storage(self, volume_id: str) -> Observed | None:
        volume = await self._volume(volume_id)
        if volume is None:
            self._forget(b.STORAGE, volume_id)
            return None
        return self._observed_volume(volume)

    async def _delete_storage(self, volume_id: str) -> None:
        volume = await self._volume(volume_id)
        if volume is None:
            return
        # A resource's links go with it (infrastructure.md §4.3): detach it from every instance first.
        for attachment in volume.get("Attachments", []):
            await self._detach_volume(volume_id, str(attachment["InstanceId"]))
        await self._find(f"deleting volume {volume_id}", self.client.delete_volume, VolumeId=volume_id)
        self._forget(b.STORAGE, volume_id)

    async def _update_storage(self, volume_id: str, change: StorageUpdate) -> Observed:
        volume = await self._volume(volume_id)
        if volume is None:
            raise BackendError(f"no volume {volume_id} in {self._where}")
        if change.size_gib is None:
            return self._observed_volume(volume)
        size = max(1, math.ceil(change.size_gib - 1e-9))
        current = int(volume.get("Size", 0))
        if size < current:
            raise BackendError(f"EBS volumes cannot shrink: {volume_id} has {current} GiB, asked for "
                               f"{change.size_gib:g}")
        if size == current:
            return self._observed_volume(volume)
        with self._working(volume_id):
            await self._call(f"resizing volume {volume_id}", self.client.modify_volume, VolumeId=volume_id, Size=size)
            # EC2 reports the new size once the modification is optimizing (the guest can use it then).
            volume = await self._volume_until(volume_id, lambda v: int(v.get("Size", 0)) >= size, "resizing the volume")
            return self._observed_volume(volume)

    # ---- network: VPC subnets -----------------------------------------------------------------------------

    def _observed_subnet(self, subnet: Any) -> Observed:
        state = str(subnet.get("State", "available"))
        word, message = (b.ACTIVE, None) if state == "available" else (b.INACTIVE, f"EC2 reports the subnet {state}")
        cidr = str(subnet["CidrBlock"])
        facts = NetworkFacts(address=cidr, gateway=gateway_of(cidr), allocation="dynamic")
        return self._remember(b.NETWORK, Observed(str(subnet["SubnetId"]), word, message, facts))

    async def _create_network(self, spec: NetworkSpec) -> Observed:
        if spec.vlan is not None:
            raise NotSupported("EC2 subnets have no VLAN (occi.network.vlan)")
        if spec.allocation not in (None, "dynamic"):
            raise NotSupported("EC2 subnets always hand out addresses by DHCP (occi.network.allocation "
                               "dynamic); give an interface a fixed address with occi.networkinterface.address")
        async with self._network_lock:
            association: str | None = None
            if spec.address is not None:
                cidr = self._given_range(spec)
                association = await self._cover(cidr)
                candidates = [cidr]
            else:
                candidates = await self._free_ranges()
            for cidr in candidates:
                try:
                    reply = await self._call(
                        f"creating subnet {spec.name!r} ({cidr})", self.client.create_subnet, VpcId=self.vpc_id,
                        CidrBlock=cidr, AvailabilityZone=self.zone,
                        TagSpecifications=[tag_spec("subnet", self.owned(**{
                            TAG_NAME: spec.name, TAG_ENTITY: spec.entity_id or None, TAG_LABEL: spec.label,
                            TAG_CIDR: association}))])
                    break
                except BackendError as error:
                    # Another creator took the range meanwhile: try the next free one.
                    if spec.address is None and "InvalidSubnet.Conflict" in error.message:
                        continue
                    if association is not None:
                        await self._quietly("removing the CIDR block", self.client.disassociate_vpc_cidr_block,
                                            AssociationId=association)
                    raise
            else:
                raise BackendError(f"no free /{self.settings.subnet_prefix} range left in VPC {self.vpc_id} "
                                   f"({', '.join(self.vpc_cidrs)}); give occi.network.address")
        subnet_id = str(reply["Subnet"]["SubnetId"])
        with self._working(subnet_id):

            async def read() -> Any:
                subnet = await self._subnet(subnet_id)
                if subnet is None:
                    raise BackendError(f"subnet {subnet_id} disappeared while it was created")
                return subnet

            subnet = await self._wait(f"creating subnet {subnet_id}", read, lambda s: s.get("State") == "available")
            return self._observed_subnet(subnet)

    def _given_range(self, spec: NetworkSpec) -> str:
        assert spec.address is not None
        try:
            network = ipaddress.ip_network(spec.address, strict=False)
        except ValueError:
            raise BackendError(f"occi.network.address {spec.address!r} is not a CIDR range") from None
        if network.version != 4 or not 16 <= network.prefixlen <= 28:
            raise BackendError(f"EC2 subnets are IPv4 ranges from /16 to /28, not {spec.address}")
        if spec.gateway is not None and spec.gateway != gateway_of(str(network)):
            raise BackendError(f"EC2 puts the gateway of {network} at {gateway_of(str(network))}, not "
                               f"{spec.gateway} (occi.network.gateway)")
        return str(network)

    async def _cover(self, cidr: str) -> str | None:
        """Make the VPC hold the range: add it as a CIDR block when no block covers it (the
        association id, to remove with the subnet); None when the VPC already covers it."""
        network = ipaddress.ip_network(cidr)
        if any(network.subnet_of(ipaddress.ip_network(block)) for block in self.vpc_cidrs):  # type: ignore[arg-type]
            return None
        reply = await self._call(f"adding {cidr} to VPC {self.vpc_id}", self.client.associate_vpc_cidr_block,
                                 VpcId=self.vpc_id, CidrBlock=cidr)
        association = str(reply["CidrBlockAssociation"]["AssociationId"])

        async def read() -> Any:
            vpcs = await self._call("reading the VPC", self.client.describe_vpcs, VpcIds=[self.vpc_id])
            for item in vpcs["Vpcs"][0].get("CidrBlockAssociationSet", []):
                if item.get("AssociationId") == association:
                    return item
            return None

        def done(item: Any) -> bool:
            state = ((item.get("CidrBlockState") if item else None) or {}).get("State", "associating")
            if state in ("failed", "failing", "disassociated"):
                reason = ((item.get("CidrBlockState") if item else None) or {}).get("StatusMessage") or state
                raise BackendError(f"EC2 could not add {cidr} to VPC {self.vpc_id}: {reason}")
            return bool(state == "associated")

        await self._wait(f"adding {cidr} to VPC {self.vpc_id}", read, done)
        self.vpc_cidrs.append(cidr)
        return association

    async def _free_ranges(self) -> list[str]:
        """Every /subnet_prefix range of the VPC's CIDR blocks that no subnet overlaps, in order."""
        subnets = await self._pages("listing subnets", "describe_subnets", "Subnets",
                                    Filters=[{"Name": "vpc-id", "Values": [self.vpc_id]}])
        used = [ipaddress.ip_network(str(s["CidrBlock"])) for s in subnets]
        free: list[str] = []
        for block in self.vpc_cidrs:
            network = ipaddress.ip_network(block)
            prefix = max(self.settings.subnet_prefix, network.prefixlen)
            for candidate in network.subnets(new_prefix=prefix):
                if not any(candidate.overlaps(u) for u in used):
                    free.append(str(candidate))
                    if len(free) >= 8:
                        return free
        return free

    async def _observe_network(self, subnet_id: str) -> Observed | None:
        subnet = await self._subnet(subnet_id)
        if subnet is None:
            self._forget(b.NETWORK, subnet_id)
            return None
        return self._observed_subnet(subnet)

    async def _delete_network(self, subnet_id: str) -> None:
        subnet = await self._subnet(subnet_id)
        if subnet is None:
            return
        # Its interfaces go with it (infrastructure.md §4.3); other ENIs make EC2 refuse (DependencyViolation).
        enis = await self._pages("listing the subnet's interfaces", "describe_network_interfaces",
                                 "NetworkInterfaces",
                                 Filters=[{"Name": "subnet-id", "Values": [subnet_id]}, *self.owner_filter()])
        for eni in enis:
            await self._delete_networkinterface(str(eni["NetworkInterfaceId"]))
        await self._find(f"deleting subnet {subnet_id}", self.client.delete_subnet, SubnetId=subnet_id)
        association = tags_of(subnet).get(TAG_CIDR)
        if association:
            with contextlib.suppress(OcciError):
                await self._find("removing the CIDR block", self.client.disassociate_vpc_cidr_block,
                                 AssociationId=association)
                self.vpc_cidrs = [c for c in self.vpc_cidrs if c != subnet["CidrBlock"]]
        self._forget(b.NETWORK, subnet_id)

    # ---- storagelink: volume attachments ---------------------------------------------------------------

    def _observed_attachment(self, volume: Any, instance_id: str) -> Observed | None:
        volume_id = str(volume["VolumeId"])
        backend_id = f"{instance_id}/{volume_id}"
        attachment = next((a for a in volume.get("Attachments", []) if a.get("InstanceId") == instance_id), None)
        if attachment is None or attachment.get("State") == "detached":
            self._forget(b.STORAGELINK, backend_id)
            return None
        state = str(attachment.get("State"))
        word, message = (b.ACTIVE, None) if state == "attached" else (b.INACTIVE, f"EC2 reports the volume {state}")
        facts = StorageLinkFacts(device=attachment.get("Device"), mountpoint=tags_of(volume).get(TAG_MOUNTPOINT))
        return self._remember(b.STORAGELINK, Observed(backend_id, word, message, facts))

    def _link_devices(self, instance: Any) -> set[str]:
        return {str(m.get("DeviceName")) for m in instance.get("BlockDeviceMappings", [])} | \
               {str(instance.get("RootDeviceName", ""))}

    async def _create_storagelink(self, spec: StorageLinkSpec) -> Observed:
        async with self._lock(spec.compute_id):
            instance = await self._live_instance(spec.compute_id)
            if instance is None:
                raise BackendError(f"no instance {spec.compute_id} to attach a volume to")
            volume = await self._volume(spec.storage_id)
            if volume is None:
                raise BackendError(f"no volume {spec.storage_id} to attach")
            if volume.get("Attachments"):
                raise BackendError(f"volume {spec.storage_id} is already attached to "
                                   f"{volume['Attachments'][0].get('InstanceId')}")
            if volume.get("AvailabilityZone") != instance.get("Placement", {}).get("AvailabilityZone"):
                raise BackendError(f"volume {spec.storage_id} and instance {spec.compute_id} are in different "
                                   "availability zones")
            used = self._link_devices(instance)
            if spec.device is not None:
                device = device_name(spec.device)
                if device in used:
                    raise BackendError(f"instance {spec.compute_id} already has a device {device}; choose another")
            else:
                device = next((d for d in DEVICES if d not in used), "")
                if not device:
                    raise BackendError(f"instance {spec.compute_id} has no free device name left")
            backend_id = f"{spec.compute_id}/{spec.storage_id}"
            with self._working(backend_id, spec.storage_id):
                # The link's entity id goes onto the volume before the attachment exists, so that a
                # crash right after the attach still leaves a link the inventory finds.
                await self._tag(spec.storage_id, {TAG_LINK_ENTITY: spec.entity_id or None,
                                                  TAG_MOUNTPOINT: spec.mountpoint})
                try:
                    await self._call(f"attaching volume {spec.storage_id} to {spec.compute_id}",
                                     self.client.attach_volume, VolumeId=spec.storage_id,
                                     InstanceId=spec.compute_id, Device=device)
                    volume = await self._volume_until(spec.storage_id, lambda v: self._attached(v, spec.compute_id),
                                                      "attaching the volume")
                except BaseException:
                    await self._untag(spec.storage_id, LINK_TAGS)
                    raise
                observed = self._observed_attachment(volume, spec.compute_id)
                assert observed is not None
                return observed

    @staticmethod
    def _attached(volume: Any, instance_id: str) -> bool:
        for attachment in volume.get("Attachments", []):
            if attachment.get("InstanceId") == instance_id:
                if attachment.get("State") in ("detaching", "detached"):
                    raise BackendError(f"EC2 detached volume {volume['VolumeId']} while attaching it")
                return bool(attachment.get("State") == "attached")
        raise BackendError(f"EC2 did not attach volume {volume['VolumeId']} to {instance_id}")

    async def _observe_storagelink(self, backend_id: str) -> Observed | None:
        match = ATTACHMENT_RE.match(backend_id)
        if match is None:
            return None
        volume = await self._volume(match.group(2))
        if volume is None:
            self._forget(b.STORAGELINK, backend_id)
            return None
        return self._observed_attachment(volume, match.group(1))

    async def _delete_storagelink(self, backend_id: str) -> None:
        match = ATTACHMENT_RE.match(backend_id)
        if match is None:
            return
        instance_id, volume_id = match.groups()
        async with self._lock(instance_id):
            with self._working(backend_id, volume_id):
                await self._detach_volume(volume_id, instance_id)
        self._forget(b.STORAGELINK, backend_id)

    async def _detach_volume(self, volume_id: str, instance_id: str) -> None:
        """Detach and wait until EC2 lets go of the volume; then drop the link's tags."""
        volume = await self._volume(volume_id)
        if volume is None:
            return
        if any(a.get("InstanceId") == instance_id and a.get("State") in ("attaching", "attached")
               for a in volume.get("Attachments", [])):
            try:
                await self._find(f"detaching volume {volume_id} from {instance_id}", self.client.detach_volume,
                                 VolumeId=volume_id, InstanceId=instance_id)
            except BackendError as error:
                if "IncorrectState" not in error.message:  # already detaching or detached
                    raise

        async def read() -> Any:
            return await self._volume(volume_id)

        await self._wait(f"detaching volume {volume_id} from {instance_id}", read,
                         lambda v: v is None or not any(a.get("InstanceId") == instance_id
                                                        for a in v.get("Attachments", [])))
        if volume is not None and set(LINK_TAGS) & set(tags_of(volume)):
            await self._untag(volume_id, LINK_TAGS)

    # ---- networkinterface: ENIs --------------------------------------------------------------------------

    def _observed_eni(self, eni: Any, gateway: str | None = None) -> Observed:
        tags = tags_of(eni)
        attachment = eni.get("Attachment") or {}
        status = str(attachment.get("Status", "")) if attachment else ""
        if status == "attached":
            word, message = b.ACTIVE, None
        elif not attachment or status == "detached":
            word, message = b.INACTIVE, "the interface is not attached to an instance"
        else:
            word, message = b.INACTIVE, f"EC2 reports the interface {status}"
        index = attachment.get("DeviceIndex")
        facts = NetworkInterfaceFacts(
            interface=tags.get(TAG_INTERFACE) or (f"eth{index}" if index is not None else None),
            mac=str(eni.get("MacAddress", "")).lower() or None,
            address=eni.get("PrivateIpAddress"),
            gateway=gateway,
            allocation=tags.get(TAG_ALLOCATION, "dynamic"),
        )
        return self._remember(b.NETWORKINTERFACE, Observed(str(eni["NetworkInterfaceId"]), word, message, facts))

    async def _eni_gateway(self, eni: Any) -> str | None:
        subnet = await self._subnet(str(eni.get("SubnetId", "")))
        return gateway_of(str(subnet["CidrBlock"])) if subnet else None

    async def _create_networkinterface(self, spec: NetworkInterfaceSpec) -> Observed:
        if spec.mac is not None:
            raise NotSupported("EC2 chooses the MAC address of a network interface itself "
                               "(occi.networkinterface.mac cannot be set)")
        if spec.allocation not in (None, "dynamic", "static"):
            raise BackendError(f"occi.networkinterface.allocation is dynamic or static, not {spec.allocation!r}")
        async with self._lock(spec.compute_id):
            instance = await self._live_instance(spec.compute_id)
            if instance is None:
                raise BackendError(f"no instance {spec.compute_id} to attach an interface to")
            subnet = await self._subnet(spec.network_id)
            if subnet is None:
                raise BackendError(f"no subnet {spec.network_id} to attach to")
            if subnet.get("AvailabilityZone") != instance.get("Placement", {}).get("AvailabilityZone"):
                raise BackendError(f"subnet {spec.network_id} and instance {spec.compute_id} are in different "
                                   "availability zones")
            address = self._interface_address(spec, str(subnet["CidrBlock"]))
            index = self._device_index(spec, instance)
            custom = spec.interface if spec.interface and interface_index(spec.interface) is None else None
            params: dict[str, Any] = {
                "SubnetId": spec.network_id, "Description": spec.name, "ClientToken": uuid.uuid4().hex,
                "TagSpecifications": [tag_spec("network-interface", self.owned(**{
                    TAG_NAME: spec.name, TAG_ENTITY: spec.entity_id or None, TAG_INTERFACE: custom,
                    TAG_ALLOCATION: spec.allocation or ("static" if address else "dynamic")}))],
            }
            if self.security_groups and subnet.get("VpcId") == self.vpc_id:
                # The instance's security groups (securitygrouplink) apply to every interface it has.
                linked = await self._linked_groups(spec.compute_id)
                params["Groups"] = [*self.security_groups, *(g for g in linked if g not in self.security_groups)]
            if address is not None:
                params["PrivateIpAddress"] = address
            reply = await self._call(f"creating network interface {spec.name!r}",
                                     self.client.create_network_interface, **params)
            eni_id = str(reply["NetworkInterface"]["NetworkInterfaceId"])
            with self._working(eni_id):
                try:
                    attached = await self._call(f"attaching interface {eni_id} to {spec.compute_id}",
                                                self.client.attach_network_interface, NetworkInterfaceId=eni_id,
                                                InstanceId=spec.compute_id, DeviceIndex=index)
                    # The interface goes with the instance if the instance is terminated outside occipy.
                    await self._quietly("marking the interface delete-on-termination",
                                        self.client.modify_network_interface_attribute,
                                        NetworkInterfaceId=eni_id,
                                        Attachment={"AttachmentId": attached["AttachmentId"],
                                                    "DeleteOnTermination": True})
                    eni = await self._eni_until(eni_id, self._eni_attached, "attaching the interface")
                except BaseException:
                    await self._delete_networkinterface(eni_id)
                    raise
                return self._observed_eni(eni, gateway_of(str(subnet["CidrBlock"])))

    @staticmethod
    def _interface_address(spec: NetworkInterfaceSpec, cidr: str) -> str | None:
        if spec.address is None:
            return None
        try:
            host = ipaddress.ip_interface(spec.address).ip
        except ValueError:
            raise BackendError(f"occi.networkinterface.address {spec.address!r} is not an IP address") from None
        network = ipaddress.ip_network(cidr)
        # EC2 reserves the first four addresses and the last one of every subnet.
        reserved = {network.network_address + i for i in range(4)} | {network.broadcast_address}
        if host not in network or host in reserved:
            raise BackendError(f"address {host} is not a usable address of subnet {cidr} (EC2 reserves the first "
                               "four and the last)")
        return str(host)

    def _device_index(self, spec: NetworkInterfaceSpec, instance: Any) -> int:
        used = {int(n.get("Attachment", {}).get("DeviceIndex", 0)) for n in instance.get("NetworkInterfaces", [])}
        used.add(0)
        asked = interface_index(spec.interface) if spec.interface else None
        if asked is not None:
            if asked == 0:
                raise BackendError("eth0 is the instance's primary interface (in the driver's subnet); choose eth1 "
                                   "or higher")
            if asked in used:
                raise BackendError(f"instance {spec.compute_id} already has an interface eth{asked}; choose another")
            return asked
        free = next((i for i in range(1, MAX_DEVICE_INDEX + 1) if i not in used), None)
        if free is None:
            raise BackendError(f"instance {spec.compute_id} has no free device index left")
        return free

    @staticmethod
    def _eni_attached(eni: Any) -> bool:
        status = (eni.get("Attachment") or {}).get("Status")
        if status in ("detaching", "detached", None):
            raise BackendError(f"EC2 did not attach interface {eni['NetworkInterfaceId']}")
        return bool(status == "attached")

    async def _eni_until(self, eni_id: str, done: Any, what: str) -> Any:
        async def read() -> Any:
            eni = await self._eni(eni_id)
            if eni is None:
                raise BackendError(f"{what}: interface {eni_id} disappeared")
            return eni

        return await self._wait(f"{what} ({eni_id})", read, done)

    async def _observe_networkinterface(self, eni_id: str) -> Observed | None:
        eni = await self._eni(eni_id)
        if eni is None:
            self._forget(b.NETWORKINTERFACE, eni_id)
            return None
        return self._observed_eni(eni, await self._eni_gateway(eni))

    async def _delete_networkinterface(self, eni_id: str) -> None:
        eni = await self._eni(eni_id)
        if eni is None:
            return
        attachment = eni.get("Attachment") or {}
        if attachment.get("AttachmentId") and attachment.get("Status") in ("attaching", "attached"):
            try:
                await self._find(f"detaching interface {eni_id}", self.client.detach_network_interface,
                                 AttachmentId=attachment["AttachmentId"], Force=True)
            except BackendError as error:
                if "IncorrectState" not in error.message:
                    raise

        async def read() -> Any:
            return await self._eni(eni_id)

        await self._wait(f"detaching interface {eni_id}", read,
                         lambda e: e is None or (e.get("Attachment") or {}).get("Status") in (None, "detached"))
        await self._find(f"deleting interface {eni_id}", self.client.delete_network_interface,
                         NetworkInterfaceId=eni_id)
        self._forget(b.NETWORKINTERFACE, eni_id)

    async def _instance_links(self, instance_id: str) -> tuple[list[str], list[str]]:
        """The ENIs occipy attached to the instance and the volumes attached to it (for its delete)."""
        enis = await self._pages("listing the instance's interfaces", "describe_network_interfaces",
                                 "NetworkInterfaces",
                                 Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]},
                                          *self.owner_filter()])
        volumes = await self._pages("listing the instance's volumes", "describe_volumes", "Volumes",
                                    Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}])
        return ([str(e["NetworkInterfaceId"]) for e in enis if tags_of(e).get(TAG_OWNER) == self.settings.owner],
                [str(v["VolumeId"]) for v in volumes if set(LINK_TAGS) & set(tags_of(v))])

    async def _cleanup_links(self, eni_ids: Sequence[str], volume_ids: Sequence[str]) -> None:
        for eni_id in eni_ids:
            await self._delete_networkinterface(eni_id)
        for volume_id in volume_ids:
            await self._untag(volume_id, LINK_TAGS)
