"""The EC2 driver's EGI security groups: VPC security groups and their membership on instances.

securitygroup = a security group of the driver's VPC, its rules the group's ingress and egress
permissions (one CIDR range per permission); securitygrouplink = the group added to every network
interface of the instance in that VPC, id "<instance>/<group>", its entity id kept as the tag
`occipy:link:<instance>` on the group (so the inventory finds it). EC2 gives a new group an
"allow all outbound" egress rule: it stays while the group has no outbound rule (traffic no rule
accepts is refused inbound only) and goes once one is given (D-EXT-EGI-REALISE). Imports boto3
(through _ec2_base), backends.base, egi_types and errors.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from occipy.backends import base as b
from occipy.backends import egi_types as egi
from occipy.backends._ec2_base import (
    INSTANCE_RE,
    TAG_ENTITY,
    TAG_GROUP_LINK,
    TAG_NAME,
    _Ec2Base,
    tag_spec,
    tags_of,
)
from occipy.backends.base import FirewallRule, Observed, Ref
from occipy.errors import BackendError

GROUP_RE: Final = re.compile(r"^sg-[0-9a-f]{8,17}$")
GROUP_LINK_RE: Final = re.compile(r"^(i-[0-9a-f]{8,17})/(sg-[0-9a-f]{8,17})$")
# Protocols as EC2 names them (IpProtocol); any other is given by number.
_PROTOCOLS: Final[Mapping[str, str]] = {
    "tcp": "tcp", "6": "tcp", "udp": "udp", "17": "udp", "icmp": "icmp", "1": "icmp",
    "icmpv6": "icmpv6", "ipv6-icmp": "icmpv6", "58": "icmpv6",
}
_PORTED: Final = frozenset({"tcp", "udp"})
_ANYWHERE: Final[Mapping[int, str]] = {4: "0.0.0.0/0", 6: "::/0"}
ALL_OUTBOUND: Final = ("-1", None, None, "0.0.0.0/0")  # EC2's default egress permission

# One permission of one CIDR range: (IpProtocol, FromPort, ToPort, CIDR).
Permission = tuple[str, int | None, int | None, str]


def permission(rule: FirewallRule) -> Permission:
    """A rule as EC2 takes it; BackendError for what EC2 cannot express."""
    protocol = _PROTOCOLS.get(rule.protocol)
    if protocol is None:
        if not rule.protocol.isdigit():
            raise BackendError(f"EC2 security groups take tcp, udp, icmp, icmpv6 or a protocol number, not "
                               f"{rule.protocol!r}")
        protocol = rule.protocol
    first: int | None
    last: int | None
    if protocol in _PORTED:
        first, last = rule.ports if rule.ports is not None else (0, 65535)
    elif protocol in ("icmp", "icmpv6"):
        first, last = -1, -1  # every ICMP type and code
    elif rule.ports is not None:
        raise BackendError(f"EC2 takes port ranges for tcp and udp only, not for protocol {rule.protocol}")
    else:
        first = last = None
    return protocol, first, last, rule.remote or _ANYWHERE.get(rule.ipversion, _ANYWHERE[4])


def rule_of(direction: str, perm: Permission) -> FirewallRule:
    protocol, first, last, cidr = perm
    ports = (first, last) if protocol in _PORTED and first is not None and last is not None \
        and (first, last) != (0, 65535) else None
    version = 6 if ":" in cidr else 4
    return FirewallRule(direction=direction, protocol=protocol, ports=ports,
                        remote=None if cidr == _ANYWHERE[version] else cidr, ipversion=version)


def permissions_of(listed: Iterable[Mapping[str, Any]]) -> set[Permission]:
    """EC2's IpPermissions, one per CIDR range (group and prefix-list sources are not occipy's)."""
    found: set[Permission] = set()
    for item in listed:
        protocol = _PROTOCOLS.get(str(item.get("IpProtocol")), str(item.get("IpProtocol")))
        first = item.get("FromPort") if protocol != "-1" else None
        last = item.get("ToPort") if protocol != "-1" else None
        ranges = [r.get("CidrIp") for r in item.get("IpRanges", [])]
        ranges += [r.get("CidrIpv6") for r in item.get("Ipv6Ranges", [])]
        for cidr in ranges:
            if cidr:
                found.add((protocol, None if first is None else int(first), None if last is None else int(last),
                           str(cidr)))
    return found


def ip_permissions(perms: Iterable[Permission]) -> list[Any]:
    """Permissions as an IpPermissions argument."""
    listed: list[Any] = []
    for protocol, first, last, cidr in sorted(perms, key=str):
        item: dict[str, Any] = {"IpProtocol": protocol}
        if first is not None and last is not None:
            item["FromPort"], item["ToPort"] = first, last
        if ":" in cidr:
            item["Ipv6Ranges"] = [{"CidrIpv6": cidr}]
        else:
            item["IpRanges"] = [{"CidrIp": cidr}]
        listed.append(item)
    return listed


def wanted(rules: Sequence[FirewallRule]) -> tuple[set[Permission], set[Permission]]:
    """The ingress and egress permissions for these rules (EC2's default egress without outbound rules)."""
    ingress = {permission(r) for r in rules if r.direction == "inbound"}
    egress = {permission(r) for r in rules if r.direction == "outbound"}
    for rule in rules:
        if rule.direction not in ("inbound", "outbound"):
            raise BackendError(f"a security rule goes inbound or outbound, not {rule.direction!r}")
    return ingress, (egress or {ALL_OUTBOUND})


class _GroupOps(_Ec2Base):
    """Security groups and their links to instances."""

    # ---- securitygroup: a VPC security group -------------------------------------------------------------

    async def _group(self, group_id: str) -> Any | None:
        if not GROUP_RE.match(group_id):
            return None
        reply = await self._find(f"reading security group {group_id}", self.client.describe_security_groups,
                                 GroupIds=[group_id])
        found = reply.get("SecurityGroups", []) if reply else []
        return found[0] if found else None

    def _observed_group(self, group: Any) -> Observed:
        ingress = permissions_of(group.get("IpPermissions", []))
        egress = permissions_of(group.get("IpPermissionsEgress", []))
        if egress == {ALL_OUTBOUND}:
            egress = set()  # EC2's default: no outbound rule was given
        rules = [rule_of("inbound", p) for p in sorted(ingress, key=str)]
        rules += [rule_of("outbound", p) for p in sorted(egress, key=str)]
        facts = egi.SecurityGroupFacts(rules=tuple(rules))
        return self._remember(egi.SECURITYGROUP, Observed(str(group["GroupId"]), b.ACTIVE, None, facts))

    async def _create_securitygroup(self, spec: egi.SecurityGroupSpec) -> Observed:
        ingress, egress = wanted(spec.rules)  # checked before anything is made
        # Group names are unique per VPC and cannot start with "sg-"; the OCCI title is the Name tag.
        name = f"occipy-{spec.name[:200]}-{uuid.uuid4().hex[:8]}"
        reply = await self._call(
            f"creating security group {spec.name!r}", self.client.create_security_group, GroupName=name,
            Description=f"occipy security group {spec.name}"[:255], VpcId=self.vpc_id,
            TagSpecifications=[tag_spec("security-group", self.owned(**{TAG_NAME: spec.name,
                                                                         TAG_ENTITY: spec.entity_id or None}))])
        group_id = str(reply["GroupId"])
        with self._working(group_id):
            try:
                return await self._set_rules(group_id, ingress, egress)
            except BaseException:
                await self._quietly("deleting the failed security group", self.client.delete_security_group,
                                    GroupId=group_id)
                raise

    async def _set_rules(self, group_id: str, ingress: set[Permission], egress: set[Permission]) -> Observed:
        """Revoke what the group has and should not, then authorize what it lacks."""
        group = await self._group(group_id)
        if group is None:
            raise BackendError(f"no security group {group_id} in {self._where}")
        has_in = permissions_of(group.get("IpPermissions", []))
        has_out = permissions_of(group.get("IpPermissionsEgress", []))
        what = f"changing the rules of security group {group_id}"
        if has_in - ingress:
            await self._call(what, self.client.revoke_security_group_ingress, GroupId=group_id,
                             IpPermissions=ip_permissions(has_in - ingress))
        if has_out - egress:
            await self._call(what, self.client.revoke_security_group_egress, GroupId=group_id,
                             IpPermissions=ip_permissions(has_out - egress))
        if ingress - has_in:
            await self._call(what, self.client.authorize_security_group_ingress, GroupId=group_id,
                             IpPermissions=ip_permissions(ingress - has_in))
        if egress - has_out:
            await self._call(what, self.client.authorize_security_group_egress, GroupId=group_id,
                             IpPermissions=ip_permissions(egress - has_out))
        group = await self._group(group_id)
        if group is None:
            raise BackendError(f"security group {group_id} disappeared while its rules were changed")
        return self._observed_group(group)

    async def _update_securitygroup(self, group_id: str, rules: Sequence[FirewallRule]) -> Observed:
        ingress, egress = wanted(rules)
        async with self._lock(group_id):
            with self._working(group_id):
                return await self._set_rules(group_id, ingress, egress)

    async def _observe_securitygroup(self, group_id: str) -> Observed | None:
        group = await self._group(group_id)
        if group is None:
            self._forget(egi.SECURITYGROUP, group_id)
            return None
        return self._observed_group(group)

    async def _delete_securitygroup(self, group_id: str) -> None:
        """Take the group off every interface that carries it (its links go with it), then delete it."""
        async with self._lock(group_id):
            with self._working(group_id):
                if await self._group(group_id) is None:
                    return
                enis = await self._pages("listing the group's interfaces", "describe_network_interfaces",
                                         "NetworkInterfaces", Filters=[{"Name": "group-id", "Values": [group_id]}])
                for eni in enis:
                    # Under the instance's lock: a link made meanwhile must not lose its group.
                    owner = str((eni.get("Attachment") or {}).get("InstanceId") or eni["NetworkInterfaceId"])
                    async with self._lock(owner):
                        fresh = await self._eni(str(eni["NetworkInterfaceId"]))
                        if fresh is not None and group_id in self._eni_groups(fresh):
                            await self._set_eni_groups(fresh, [g for g in self._eni_groups(fresh) if g != group_id])
                await self._find(f"deleting security group {group_id}", self.client.delete_security_group,
                                 GroupId=group_id)
                self._forget(egi.SECURITYGROUP, group_id)
                for ref in [r for r in self._last if r.resource == egi.SECURITYGROUPLINK
                            and r.backend_id.endswith("/" + group_id)]:
                    self._last.pop(ref, None)

    # ---- securitygrouplink: the group on the instance's interfaces -----------------------------------------

    @staticmethod
    def _eni_groups(eni: Any) -> list[str]:
        return [str(g["GroupId"]) for g in eni.get("Groups", [])]

    async def _set_eni_groups(self, eni: Any, groups: list[str]) -> None:
        """An interface keeps one group at least: the driver's default groups when none is left."""
        eni_id = str(eni["NetworkInterfaceId"])
        if not groups:
            groups = list(self.security_groups)
        await self._call(f"changing the security groups of interface {eni_id}",
                         self.client.modify_network_interface_attribute, NetworkInterfaceId=eni_id, Groups=groups)

    def _vpc_enis(self, instance: Any, vpc_id: str) -> list[Any]:
        return [n for n in instance.get("NetworkInterfaces", []) if n.get("VpcId", vpc_id) == vpc_id]

    def _observed_grouplink(self, instance: Any, group: Any) -> Observed | None:
        """A link occipy made (the tag on the group) to an instance that is not gone; None otherwise."""
        instance_id, group_id = str(instance["InstanceId"]), str(group["GroupId"])
        if TAG_GROUP_LINK + instance_id not in tags_of(group):
            return None
        enis = self._vpc_enis(instance, str(group.get("VpcId", "")))
        if enis and all(group_id in self._eni_groups(n) for n in enis):
            word, message = b.ACTIVE, None
        else:
            word, message = b.INACTIVE, "the instance's network interfaces do not carry the security group"
        return self._remember(egi.SECURITYGROUPLINK, Observed(f"{instance_id}/{group_id}", word, message, None))

    async def _create_securitygrouplink(self, spec: egi.SecurityGroupLinkSpec) -> Observed:
        async with self._lock(spec.compute_id):
            instance = await self._live_instance(spec.compute_id)
            if instance is None:
                raise BackendError(f"no instance {spec.compute_id} to put in a security group")
            group = await self._group(spec.group_id)
            if group is None:
                raise BackendError(f"no security group {spec.group_id} in {self._where}")
            tag = TAG_GROUP_LINK + spec.compute_id
            if tag in tags_of(group):
                raise BackendError(f"instance {spec.compute_id} is already in security group {spec.group_id}")
            enis = self._vpc_enis(instance, str(group.get("VpcId", "")))
            if not enis:
                raise BackendError(f"instance {spec.compute_id} has no interface in the VPC of security group "
                                   f"{spec.group_id}")
            backend_id = f"{spec.compute_id}/{spec.group_id}"
            with self._working(backend_id):
                await self._tag(spec.group_id, {tag: spec.entity_id})
                try:
                    for eni in enis:
                        groups = self._eni_groups(eni)
                        if spec.group_id not in groups:
                            await self._set_eni_groups(eni, [*groups, spec.group_id])
                except BaseException:
                    await self._remove_grouplink(spec.compute_id, spec.group_id)
                    raise
                observed = await self._observe_securitygrouplink(backend_id)
                if observed is None:
                    raise BackendError(f"instance {spec.compute_id} or security group {spec.group_id} "
                                       "disappeared while the group was applied")
                return observed

    async def _observe_securitygrouplink(self, backend_id: str) -> Observed | None:
        match = GROUP_LINK_RE.match(backend_id)
        instance = await self._live_instance(match.group(1)) if match else None
        group = await self._group(match.group(2)) if match else None
        observed = self._observed_grouplink(instance, group) if instance and group else None
        if observed is None:
            self._forget(egi.SECURITYGROUPLINK, backend_id)
        return observed

    async def _delete_securitygrouplink(self, backend_id: str) -> None:
        match = GROUP_LINK_RE.match(backend_id)
        if match is None:
            return
        async with self._lock(match.group(1)):
            with self._working(backend_id):
                await self._remove_grouplink(match.group(1), match.group(2))
                self._forget(egi.SECURITYGROUPLINK, backend_id)

    async def _remove_grouplink(self, instance_id: str, group_id: str) -> None:
        instance = await self._live_instance(instance_id)
        for eni in instance.get("NetworkInterfaces", []) if instance else []:
            groups = self._eni_groups(eni)
            if group_id in groups:
                await self._set_eni_groups(eni, [g for g in groups if g != group_id])
        if GROUP_RE.match(group_id):
            await self._untag(group_id, [TAG_GROUP_LINK + instance_id])

    async def _forget_grouplinks(self, instance_id: str) -> None:
        """After an instance is gone: the link tags on its groups go too."""
        for group_id in await self._linked_groups(instance_id):
            await self._untag(group_id, [TAG_GROUP_LINK + instance_id])
            self._forget(egi.SECURITYGROUPLINK, f"{instance_id}/{group_id}")

    # ---- the inventory and polling -------------------------------------------------------------------------

    async def _owned_groups(self) -> list[Any]:
        return await self._pages("listing security groups", "describe_security_groups", "SecurityGroups",
                                 Filters=self.owner_filter())

    def _group_objects(self, groups: Sequence[Any], instances: Mapping[str, Any]) -> dict[Ref, Observed]:
        """Observed groups and links, from listed groups and the instances that are not gone."""
        found: dict[Ref, Observed] = {}
        for group in groups:
            observed = self._observed_group(group)
            found[Ref(egi.SECURITYGROUP, observed.backend_id)] = observed
            for key in tags_of(group):
                instance = instances.get(key.removeprefix(TAG_GROUP_LINK)) if key.startswith(TAG_GROUP_LINK) \
                    else None
                link = self._observed_grouplink(instance, group) if instance is not None else None
                if link is not None:
                    found[Ref(egi.SECURITYGROUPLINK, link.backend_id)] = link
        return found

    @staticmethod
    def _group_tagged(groups: Sequence[Any], instance_ids: Iterable[str]) -> list[b.Tagged]:
        """Inventory rows: groups with an entity id, links whose instance is not gone."""
        live = set(instance_ids)
        found: list[b.Tagged] = []
        for group in groups:
            tags = tags_of(group)
            if TAG_ENTITY in tags:
                found.append(b.Tagged(Ref(egi.SECURITYGROUP, str(group["GroupId"])), tags[TAG_ENTITY]))
            for key, value in tags.items():
                instance_id = key.removeprefix(TAG_GROUP_LINK)
                if key.startswith(TAG_GROUP_LINK) and INSTANCE_RE.match(instance_id) and instance_id in live \
                        and value:
                    found.append(b.Tagged(Ref(egi.SECURITYGROUPLINK, f"{instance_id}/{group['GroupId']}"), value))
        return found


__all__ = ["GROUP_LINK_RE", "TAG_GROUP_LINK", "_GroupOps"]
