"""The Docker driver's Infrastructure objects besides containers: volumes, bridge networks,
network connections (networkinterfaces), and the inventory of everything occipy labelled.

Synchronous, like `_docker_engine`; runs in worker threads. Only the Docker driver's modules import
this one.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Final

import docker.errors
import docker.types

from occipy.backends import _docker_platform as plat
from occipy.backends import base as b
from occipy.backends._docker_engine import (
    ALLOCATION,
    CONFIG,
    ENTITY,
    EP_ENTITY,
    EP_INTERFACE,
    EP_KIND,
    KIND,
    MANAGED,
    SIZE,
    Desired,
    Engine,
    Gone,
    endpoints_of,
)
from occipy.backends.platform_types import APPLICATION, COMPONENT, COMPONENTLINK
from occipy.errors import BackendError, NotSupported

_NAME_RE: Final = re.compile(r"[^a-zA-Z0-9_.-]+")
_CONTAINERS: Final = (b.COMPUTE, COMPONENT)


def create_volume(engine: Engine, spec: b.StorageSpec) -> b.Observed:
    if not spec.size_gib > 0:
        raise BackendError(f"size must be above 0 GiB, got {spec.size_gib}")
    name = _NAME_RE.sub("-", spec.name).strip("-._") or "occipy-volume"
    if any(v.name == name for v in engine.client.volumes.list()):
        raise BackendError(f"a Docker volume {name} exists already")
    volume = engine.client.volumes.create(name, driver="local", labels={
        MANAGED: "1", KIND: b.STORAGE, ENTITY: spec.entity_id, SIZE: f"{spec.size_gib:g}"})
    return b.Observed(volume.name, b.ONLINE, None, b.StorageFacts(size_gib=spec.size_gib))


def create_network(engine: Engine, spec: b.NetworkSpec) -> b.Observed:
    ipam = None
    if spec.address:
        try:
            subnet = ipaddress.ip_network(spec.address, strict=False)
        except ValueError:
            raise BackendError(f"network address {spec.address!r} is not an address range (CIDR)") from None
        if spec.gateway and ipaddress.ip_address(spec.gateway) not in subnet:
            raise BackendError(f"gateway {spec.gateway} is outside the network range {subnet}")
        ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=str(subnet),
                                                                           gateway=spec.gateway)])
    elif spec.gateway:
        raise BackendError("a gateway needs the network's address range (occi.network.address)")
    if spec.allocation not in (None, "dynamic", "static"):
        raise BackendError(f"allocation must be dynamic or static, got {spec.allocation!r}")
    labels = {MANAGED: "1", KIND: b.NETWORK, ENTITY: spec.entity_id, ALLOCATION: spec.allocation or "dynamic"}
    network = engine.client.networks.create(_NAME_RE.sub("-", spec.name), driver="bridge", ipam=ipam,
                                                  labels=labels, check_duplicate=True)
    network.reload()
    return network_observed(engine, network)


def network_observed(engine: Engine, network: Any) -> b.Observed:
    config = (network.attrs.get("IPAM", {}).get("Config") or [{}])[0]
    facts = b.NetworkFacts(address=config.get("Subnet"), gateway=config.get("Gateway"),
                           allocation=network.attrs.get("Labels", {}).get(ALLOCATION))
    return b.Observed(network.id, b.ACTIVE, None, facts)


def volume_of(engine: Engine, name: str) -> Any:
    try:
        volume = engine.client.volumes.get(name)
    except docker.errors.NotFound:
        return None
    return volume if (volume.attrs.get("Labels") or {}).get(KIND) == b.STORAGE else None


def create_interface(engine: Engine, spec: b.NetworkInterfaceSpec) -> b.Observed:
    try:
        container = engine.managed_container(spec.compute_id, (b.COMPUTE,))
    except Gone:
        raise BackendError(f"the Docker cloud has no container {spec.compute_id}") from None
    network = network_of(engine, spec.network_id, b.NETWORK)
    if network is None:
        raise BackendError(f"the Docker cloud has no network {spec.network_id}")
    if spec.mac:
        raise NotSupported("Docker picks the MAC address of a network connection itself")
    endpoints = endpoints_of(container)
    if any(e.network == network.id for e in endpoints):
        raise NotSupported(f"Docker connects a container to a network once: {container.name} is on "
                           f"{network.name} already")
    address = str(ipaddress.ip_interface(spec.address).ip) if spec.address else None
    interface = spec.interface or f"eth{len(endpoints)}"
    options = {EP_ENTITY: spec.entity_id, EP_KIND: b.NETWORKINTERFACE, EP_INTERFACE: interface,
               ALLOCATION: spec.allocation or network.attrs.get("Labels", {}).get(ALLOCATION, "dynamic")}
    engine.client.api.connect_container_to_network(container.id, network.id, ipv4_address=address,
                                                         driver_opt=options)
    container.reload()
    observed = interface_observed(engine, container, network.id)
    assert observed is not None
    return observed


def network_of(engine: Engine, backend_id: str, kind: str) -> Any:
    try:
        network = engine.client.networks.get(backend_id)
    except docker.errors.NotFound:
        return None
    return network if network.attrs.get("Labels", {}).get(KIND) == kind else None


def interface_observed(engine: Engine, container: Any, network_id: str) -> b.Observed | None:
    for settings in (container.attrs.get("NetworkSettings", {}).get("Networks") or {}).values():
        options = settings.get("DriverOpts") or {}
        if settings.get("NetworkID") == network_id and options.get(EP_KIND) == b.NETWORKINTERFACE:
            facts = b.NetworkInterfaceFacts(
                interface=options.get(EP_INTERFACE), mac=settings.get("MacAddress") or None,
                address=settings.get("IPAddress") or None, gateway=settings.get("Gateway") or None,
                allocation=options.get(ALLOCATION))
            return b.Observed(f"{container.name}:{network_id}", b.ACTIVE, None, facts)
    return None


def delete_network(engine: Engine, backend_id: str) -> None:
    network = network_of(engine, backend_id, b.NETWORK)
    if network is None:
        return
    for container in (network.attrs.get("Containers") or {}):
        try:
            network.disconnect(container, force=True)
        except docker.errors.NotFound:
            pass
    network.remove()


def disconnect(engine: Engine, compute: str, network: str) -> None:
    try:
        engine.client.api.disconnect_container_from_network(compute, network, force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        if "is not connected" not in str(exc):
            raise


def inventory(engine: Engine) -> list[b.Tagged]:
    client = engine.client
    found: list[b.Tagged] = []
    label = {"label": f"{MANAGED}=1"}
    for container in client.containers.list(all=True, filters=label):
        kind = container.labels.get(KIND, "")
        if kind not in _CONTAINERS or CONFIG not in container.labels:
            continue
        if container.labels.get(ENTITY):
            found.append(b.Tagged(b.Ref(kind, container.name), container.labels[ENTITY]))
        desired = Desired.from_labels(container.labels)
        for mount in desired.mounts:
            if mount.entity:
                found.append(b.Tagged(b.Ref(b.STORAGELINK, f"{container.name}:{mount.volume}"), mount.entity))
        for use in desired.uses:
            if use.entity:
                found.append(b.Tagged(b.Ref(COMPONENTLINK, plat.link_id(plat.USE, container.name, use.target)),
                                      use.entity))
        for endpoint in endpoints_of(container):
            entity = endpoint.options.get(EP_ENTITY)
            if not entity:
                continue
            if endpoint.options.get(EP_KIND) == b.NETWORKINTERFACE:
                found.append(b.Tagged(b.Ref(b.NETWORKINTERFACE, f"{container.name}:{endpoint.network}"), entity))
            elif endpoint.options.get(EP_KIND) == COMPONENTLINK:
                found.append(b.Tagged(b.Ref(COMPONENTLINK, plat.link_id(plat.HOST, endpoint.network,
                                                                        container.name)), entity))
    for volume in client.volumes.list(filters=label):
        labels = volume.attrs.get("Labels") or {}
        if labels.get(KIND) == b.STORAGE and labels.get(ENTITY):
            found.append(b.Tagged(b.Ref(b.STORAGE, volume.name), labels[ENTITY]))
    for network in client.networks.list(filters=label):
        labels = network.attrs.get("Labels") or {}
        if labels.get(KIND) in (b.NETWORK, APPLICATION) and labels.get(ENTITY):
            found.append(b.Tagged(b.Ref(labels[KIND], network.id), labels[ENTITY]))
    return found
