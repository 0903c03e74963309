"""The OpenStack driver's blocking calls: one openstacksdk Connection, one step per method.

Each method does one thing the cloud can do at once (start a build, attach a volume, read a
port); the waiting for nova, cinder and neutron to finish happens in the async driver
(`openstack.py`), which runs these methods in worker threads. `guard()` turns SDK and Keystone
errors into occipy's: unreachable, 5xx or refused credentials -> BackendUnavailable (503, naming
the cloud), any other refusal -> BackendError (502). With `_openstack_map.py` and `openstack.py`
the only modules of occipy that touch openstacksdk.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final, TypeVar

import keystoneauth1.exceptions as ksa
import openstack
import openstack.config
import openstack.exceptions as sdk

from occipy.backends import _openstack_map as m
from occipy.backends._openstack_settings import Settings
from occipy.backends.base import (
    COMPUTE,
    FLAVOUR,
    NETWORK,
    NETWORKINTERFACE,
    STORAGE,
    STORAGELINK,
    ComputeSpec,
    NetworkInterfaceSpec,
    NetworkSpec,
    Observed,
    StorageLinkSpec,
    StorageSpec,
    Template,
)
from occipy.backends.egi_types import IPRESERVATION, SECURITYGROUP, SECURITYGROUPLINK
from occipy.errors import BackendError, BackendUnavailable, NotSupported, OcciError

T = TypeVar("T")
HOSTNAME_MICROVERSION: Final = (2, 90)  # nova takes a hostname on create from 2.90 (Xena)
UNAVAILABLE_STATUS: Final = frozenset({502, 503, 504})


@contextlib.contextmanager
def choice_refused(where: str, chosen: object, what: str, remedy: str) -> Iterator[None]:
    """Neutron's 403 for a create that chose a value its policy keeps for the cloud (a MAC, a
    floating address): a 501 that says what to leave out. Without a choice, the 403 stays."""
    try:
        yield
    except sdk.ForbiddenException as exc:
        if chosen:
            raise NotSupported(f"{where} does not let this project choose {what} ({_reason(exc)}); {remedy}") from None
        raise


def _reason(exc: BaseException) -> str:
    if isinstance(exc, sdk.HttpException):
        detail = exc.details or exc.message or ""
        text = str(detail).strip() or type(exc).__name__
        return f"{exc.status_code}: {text}" if exc.status_code else text
    return str(exc).strip() or type(exc).__name__


class OpenStackOps:
    """Blocking operations on one OpenStack project (the driver runs them in worker threads)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._connection: openstack.connection.Connection | None = None
        self._connect_lock = threading.Lock()
        self._images: dict[str, Any] = {}  # image id -> glance image (active ones)
        self._flavors: dict[str, Any] = {}  # flavor name -> nova flavor
        self._hostname_ok = False
        self._picked: set[ipaddress.IPv4Network] = set()  # ranges handed out, not yet listed
        self.pools: dict[str, Any] = {}  # floating IP pool name -> external network
        self.has_security_groups = False
        self.has_floating_ips = False
        self._pick_lock = threading.Lock()

    # ------------------------------------------------------------------ plumbing

    @property
    def where(self) -> str:
        return self.settings.where

    def mark_key(self, what: str) -> str:
        return f"{self.settings.label}:{what}"

    def guard(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        """Run one blocking call; SDK and Keystone errors become occipy errors naming the cloud."""
        try:
            return fn(*args)
        except OcciError:
            raise
        except ValueError as exc:  # our own checks (marks too long, bad ranges)
            raise BackendError(f"{what}: {exc}") from None
        except (sdk.SDKException, ksa.ClientException) as exc:
            raise self._translate(what, exc) from None

    def _translate(self, what: str, exc: BaseException) -> OcciError:
        """The occipy error for an SDK or Keystone error (503 when the cloud cannot be used now)."""
        if isinstance(exc, sdk.HttpException):
            status = exc.status_code or 0
        else:
            status = getattr(exc, "http_status", None) or 0
        if isinstance(exc, ksa.Unauthorized) or status == 401:
            self._connection = None  # a new token at the next call
            return BackendUnavailable(f"{what}: {self.where} refused occipy's credentials ({_reason(exc)})")
        if isinstance(exc, (ksa.ConnectionError, ksa.DiscoveryFailure, ksa.EndpointNotFound)):
            self._connection = None
            return BackendUnavailable(f"{what}: {self.where} cannot be reached ({_reason(exc)})")
        if status in UNAVAILABLE_STATUS:
            return BackendUnavailable(f"{what}: {self.where} is unavailable ({_reason(exc)})")
        inner = exc.__cause__ or exc.__context__
        if not isinstance(exc, sdk.HttpException) and isinstance(inner, (sdk.SDKException, ksa.ClientException)):
            return self._translate(what, inner)  # openstacksdk wraps keystoneauth's errors (authorize)
        if isinstance(exc, sdk.HttpException):
            return BackendError(f"{what}: {self.where} refused ({_reason(exc)})")
        return BackendError(f"{what}: {self.where}: {_reason(exc)}")

    def conn(self) -> openstack.connection.Connection:
        with self._connect_lock:
            if self._connection is None:
                self._connection = self._connect()
            return self._connection

    def _connect(self) -> openstack.connection.Connection:
        settings = self.settings
        files = [str(settings.clouds_yaml)] if settings.clouds_yaml is not None else None
        loader = openstack.config.OpenStackConfig(
            config_files=files, load_yaml_config=settings.cloud is not None, load_envvars=False
        )
        options: dict[str, Any] = {**settings.connection}
        if settings.auth:
            options["auth"] = dict(settings.auth)
        if settings.insecure:
            options["verify"] = False
        try:
            region = loader.get_one(cloud=settings.cloud, **options)
        except sdk.ConfigException as exc:
            raise BackendUnavailable(f"{self.where}: {exc}") from None
        return openstack.connection.Connection(config=region, strict_proxies=False)

    def close(self) -> None:
        with self._connect_lock:
            conn, self._connection = self._connection, None
        if conn is not None:
            with contextlib.suppress(Exception):  # closing is best effort
                conn.close()

    # ------------------------------------------------------------------ open: services and templates

    def check(self) -> set[str]:
        """Authenticate and look at the catalogue; the resource types this project can have."""
        conn = self.conn()
        conn.authorize()
        catalogue = {entry["type"] for entry in conn.service_catalog}
        for needed in ("compute", "image", "network"):
            if needed not in catalogue:
                raise BackendUnavailable(f"{self.where} has no {needed} service in its catalogue")
        types = {COMPUTE, NETWORK, NETWORKINTERFACE}
        if catalogue & {"volumev3", "block-storage", "volume"}:
            types |= {STORAGE, STORAGELINK}
        # EGI: security groups where Neutron has them, floating IPs where it has routers (l3) and
        # the project sees an external network to allocate them from.
        aliases = {str(extension.alias) for extension in conn.network.extensions()}
        self.has_security_groups = "security-group" in aliases
        self.has_floating_ips = "router" in aliases
        if self.has_security_groups:
            types |= {SECURITYGROUP, SECURITYGROUPLINK}
        endpoint = conn.compute.get_endpoint_data()
        maximum = getattr(endpoint, "max_microversion", None)
        self._hostname_ok = maximum is not None and tuple(maximum) >= HOSTNAME_MICROVERSION
        self.project_id = str(conn.current_project_id)
        self.refresh_templates()
        if self.has_floating_ips and self.pools:
            types.add(IPRESERVATION)
        return types

    def refresh_templates(self) -> None:
        conn = self.conn()
        self._images = {str(i.id): i for i in conn.image.images() if str(i.status) == "active"}
        self._flavors = {str(f.name): f for f in conn.compute.flavors(details=True) if not f.is_disabled}
        self.refresh_pools()

    def refresh_pools(self) -> None:
        """The external networks the project sees, by name (a name taken twice: the later ones by id)."""
        if not self.has_floating_ips:
            return
        pools: dict[str, Any] = {}
        listed = self.conn().network.networks(is_router_external=True)
        for network in sorted(listed, key=lambda n: (str(n.name or ""), str(n.id))):
            name = str(network.name or network.id)
            pools[name if name not in pools else str(network.id)] = network
        self.pools = pools

    def templates(self) -> list[Template]:
        return [
            *(m.image_template(i) for i in self._images.values()),
            *(m.flavor_template(f) for f in self._flavors.values()),
            *(m.pool_template(n, name) for name, n in self.pools.items()),
        ]

    def architectures(self) -> dict[str, str]:
        return {
            image_id: arch
            for image_id, image in self._images.items()
            if (arch := m.ARCHITECTURES.get(str(getattr(image, "architecture", None) or "").lower()))
        }

    def _image(self, name: str) -> Any:
        """An image by id (a template name) or by unique name."""
        if name in self._images:
            return self._images[name]
        conn = self.conn()
        with contextlib.suppress(sdk.NotFoundException):
            image = conn.image.find_image(name, ignore_missing=True)
            if image is not None and str(image.status) == "active":
                self._images[str(image.id)] = image
                return image
        raise BackendError(f"{self.where} has no active image {name!r}")

    def _flavor_named(self, name: str) -> Any:
        if name not in self._flavors:
            self._flavors = {str(f.name): f for f in self.conn().compute.flavors(details=True)}
        flavor = self._flavors.get(name)
        if flavor is None:
            with contextlib.suppress(sdk.NotFoundException):
                flavor = self.conn().compute.find_flavor(name, ignore_missing=True)
        if flavor is None:
            raise BackendError(f"{self.where} has no flavor {name!r}")
        return flavor

    def _flavor_for(self, cores: int | None, memory_gib: float | None) -> Any:
        """The flavor for occi.compute.cores and occi.compute.memory: exactly these cores (OCCI
        reports the cores a compute has) and the least memory that is at least the one asked for."""
        if cores is None and memory_gib is None and self.settings.default_flavor:
            return self._flavor_named(self.settings.default_flavor)
        fitting = [
            f
            for f in self._flavors.values()
            if (cores is None or int(f.vcpus) == cores)
            and (memory_gib is None or int(f.ram) >= round(memory_gib * 1024))
        ]
        if not fitting:
            offered = ", ".join(
                f"{t.name} ({t.cores} vCPU, {t.memory_gib:g} GiB)"
                for t in sorted(self.templates(), key=lambda t: (t.cores or 0, t.memory_gib or 0))
                if t.family == FLAVOUR
            )
            raise BackendError(
                f"{self.where} has no flavor with {cores if cores is not None else 'any number of'} vCPU and "
                f"at least {memory_gib if memory_gib is not None else 0:g} GiB of memory; it offers {offered}"
            )
        return min(fitting, key=lambda f: (int(f.ram), int(f.vcpus), int(f.disk or 0), str(f.name)))

    # ------------------------------------------------------------------ compute

    def server(self, server_id: str) -> Any | None:
        try:
            return self.conn().compute.get_server(server_id)
        except sdk.NotFoundException:
            return None

    def server_observed(self, server: Any | None) -> Observed | None:
        return None if server is None else m.server_observed(server, self.architectures())

    def create_server(self, spec: ComputeSpec) -> str:
        """Ask nova for the server (no NIC: networkinterfaces are ports plugged in afterwards)."""
        image_name = spec.image or self.settings.default_image
        if image_name is None:
            raise BackendError(
                f"a compute on {self.where} needs an image: give it an os_tpl mixin or set the "
                "driver option default_image"
            )
        image = self._image(image_name)
        flavor = (
            self._flavor_named(spec.flavour) if spec.flavour else self._flavor_for(spec.cores, spec.memory_gib)
        )
        attrs: dict[str, Any] = {
            "name": spec.name,
            "image_id": image.id,
            "flavor_id": flavor.id,
            "networks": "none",
            "metadata": {self.settings.entity_key: m.check_metadata(spec.entity_id)} if spec.entity_id else {},
        }
        if spec.hostname and self._hostname_ok:
            attrs["hostname"] = spec.hostname
        if spec.user_data is not None:
            attrs["user_data"] = base64.b64encode(spec.user_data).decode("ascii")
        if self.settings.availability_zone:
            attrs["availability_zone"] = self.settings.availability_zone
        conn = self.conn()
        key_name = None
        if spec.ssh_public_key:
            # ooi's way: a key pair for the boot only; nova copies the key into the server.
            key_name = f"{self.settings.label}-{uuid.uuid4().hex[:12]}"
            conn.compute.create_keypair(name=key_name, public_key=spec.ssh_public_key.strip())
            attrs["key_name"] = key_name
        try:
            server = conn.compute.create_server(**attrs)
        finally:
            if key_name is not None:
                with contextlib.suppress(sdk.SDKException):
                    conn.compute.delete_keypair(key_name, ignore_missing=True)
        return str(server.id)

    def delete_server(self, server_id: str) -> bool:
        """Ask nova to delete the server; False when it is already gone."""
        try:
            self.conn().compute.delete_server(server_id)
        except sdk.NotFoundException:
            return False
        return True

    def server_action(self, server_id: str, verb: str, *args: Any) -> None:
        """start, stop, reboot, pause, unpause, suspend, resume, unshelve (nova server actions)."""
        compute = self.conn().compute
        calls: Mapping[str, Callable[..., Any]] = {
            "start": compute.start_server,
            "stop": compute.stop_server,
            "reboot": compute.reboot_server,
            "pause": compute.pause_server,
            "unpause": compute.unpause_server,
            "suspend": compute.suspend_server,
            "resume": compute.resume_server,
            "unshelve": compute.unshelve_server,
            "confirm": compute.confirm_server_resize,
        }
        calls[verb](server_id, *args)

    def resize(self, server_id: str, flavor_name: str) -> bool:
        """Start a resize to the flavor; False when the server already has it."""
        flavor = self._flavor_named(flavor_name)
        server = self.server(server_id)
        if server is None:
            raise BackendError(f"compute {server_id} does not exist in {self.where}")
        current = getattr(server.flavor, "original_name", None) or getattr(server.flavor, "name", None)
        if current == flavor.name:
            return False
        self.conn().compute.resize_server(server_id, flavor.id)
        return True

    def target_flavor(self, server_id: str, cores: int | None, memory_gib: float | None) -> str:
        """The flavor a change of cores and/or memory asks for (the others stay as they are)."""
        server = self.server(server_id)
        if server is None:
            raise BackendError(f"compute {server_id} does not exist in {self.where}")
        flavor = server.flavor
        wanted_cores = cores if cores is not None else int(getattr(flavor, "vcpus", 1) or 1)
        wanted_memory = memory_gib if memory_gib is not None else int(getattr(flavor, "ram", 0) or 0) / 1024
        return str(self._flavor_for(wanted_cores, wanted_memory).name)

    def rebuild(self, server_id: str, image_name: str) -> None:
        image = self._image(image_name)
        server = self.server(server_id)
        if server is None:
            raise BackendError(f"compute {server_id} does not exist in {self.where}")
        self.conn().compute.rebuild_server(server_id, image=image.id)

    def create_image(self, server_id: str, name: str) -> str:
        """createImage (GFD.224 save); the new image's id."""
        metadata = {self.mark_key("saved-from"): server_id}
        image = self.conn().compute.create_server_image(server_id, name, metadata, wait=False)
        return str(image.id)

    def image_status(self, image_id: str) -> tuple[str, Any | None]:
        try:
            image = self.conn().image.get_image(image_id)
        except sdk.NotFoundException:
            return "deleted", None
        return str(image.status), image

    def adopt_image(self, image: Any) -> Template:
        self._images[str(image.id)] = image
        return m.image_template(image)

    # ------------------------------------------------------------------ storage

    def volume(self, volume_id: str) -> Any | None:
        try:
            return self.conn().block_storage.get_volume(volume_id)
        except sdk.NotFoundException:
            return None

    def create_volume(self, spec: StorageSpec) -> str:
        attrs: dict[str, Any] = {
            "name": spec.name,
            "size": m.gib(spec.size_gib),
            "metadata": {self.settings.entity_key: m.check_metadata(spec.entity_id)} if spec.entity_id else {},
        }
        if self.settings.volume_type:
            attrs["volume_type"] = self.settings.volume_type
        if self.settings.availability_zone:
            attrs["availability_zone"] = self.settings.availability_zone
        return str(self.conn().block_storage.create_volume(**attrs).id)

    def delete_volume(self, volume_id: str) -> bool:
        try:
            self.conn().block_storage.delete_volume(volume_id)
        except sdk.NotFoundException:
            return False
        return True

    def extend_volume(self, volume_id: str, size_gib: float) -> bool:
        """Grow a detached volume; False when it already has the size."""
        volume = self.volume(volume_id)
        if volume is None:
            raise BackendError(f"storage {volume_id} does not exist in {self.where}")
        size = m.gib(size_gib)
        if size == int(volume.size):
            return False
        if size < int(volume.size):
            raise BackendError(
                f"storage {volume_id} has {volume.size} GiB; cinder can only grow a volume, not shrink it"
            )
        if volume.attachments:
            raise NotSupported(
                f"storage {volume_id} is attached: occipy grows only detached volumes on OpenStack "
                "(an attached volume needs the hypervisor's help, and a failure leaves it in "
                "error_extending); delete its storagelinks first"
            )
        self.conn().block_storage.extend_volume(volume_id, size)
        return True

    # ------------------------------------------------------------------ storagelink (attachments)

    def attach(self, spec: StorageLinkSpec) -> str:
        """Mark the volume with the link's entity id, then ask nova to attach it."""
        if self.server(spec.compute_id) is None:
            raise BackendError(f"compute {spec.compute_id} does not exist in {self.where}")
        volume = self.volume(spec.storage_id)
        if volume is None:
            raise BackendError(f"storage {spec.storage_id} does not exist in {self.where}")
        storage = self.conn().block_storage
        marks = {self.mark_key("storagelink"): m.check_metadata(spec.entity_id)} if spec.entity_id else {}
        if spec.mountpoint:
            marks[self.mark_key("mountpoint")] = m.check_metadata(spec.mountpoint)
        stale = [k for k in (self.mark_key("storagelink"), self.mark_key("mountpoint")) if k in (volume.metadata or {})]
        if stale:
            storage.delete_volume_metadata(volume, keys=stale)
        if marks:
            storage.set_volume_metadata(volume, **marks)
        attrs: dict[str, Any] = {"volume_id": spec.storage_id}
        if spec.device and spec.device.startswith("/dev/"):
            attrs["device"] = spec.device  # nova takes it as a hint; other names (disk0) are not paths
        self.conn().compute.create_volume_attachment(spec.compute_id, **attrs)
        return f"{spec.compute_id}/{spec.storage_id}"

    def storagelink_observed(self, backend_id: str) -> Observed | None:
        volume_id = backend_id.partition("/")[2]
        if not volume_id:
            return None
        volume = self.volume(volume_id)
        return None if volume is None else m.storagelink_observed(backend_id, volume, self.mark_key("mountpoint"))

    def detach(self, backend_id: str) -> bool:
        """Ask nova to detach; False when the volume is not attached to the server (any more)."""
        server_id, _, volume_id = backend_id.partition("/")
        volume = self.volume(volume_id) if volume_id else None
        if volume is None or m.attachment_of(volume, server_id) is None:
            return False
        try:
            self.conn().compute.delete_volume_attachment(server_id, volume_id)
        except sdk.NotFoundException:
            return False
        return True

    def unmark_volume(self, backend_id: str) -> None:
        volume = self.volume(backend_id.partition("/")[2])
        if volume is None:
            return
        keys = [k for k in (self.mark_key("storagelink"), self.mark_key("mountpoint")) if k in (volume.metadata or {})]
        if keys:
            with contextlib.suppress(sdk.NotFoundException):
                self.conn().block_storage.delete_volume_metadata(volume, keys=keys)

    # ------------------------------------------------------------------ network

    def network_observed(self, network_id: str) -> Observed | None:
        try:
            network = self.conn().network.get_network(network_id)
        except sdk.NotFoundException:
            return None
        subnets = list(self.conn().network.subnets(network_id=network_id))
        return m.network_observed(network, m.first_subnet(subnets))

    def _free_range(self) -> ipaddress.IPv4Network:
        """The first /network_prefix of network_range that no subnet this project sees overlaps."""
        taken = []
        for subnet in self.conn().network.subnets(ip_version=4):
            with contextlib.suppress(ValueError):
                taken.append(ipaddress.IPv4Network(str(subnet.cidr), strict=False))
        with self._pick_lock:
            busy = taken + list(self._picked)
            for candidate in self.settings.network_range.subnets(new_prefix=self.settings.network_prefix):
                if not any(candidate.overlaps(other) for other in busy):
                    self._picked.add(candidate)
                    return candidate
        raise BackendError(
            f"no free /{self.settings.network_prefix} left in network_range {self.settings.network_range}"
        )

    def create_network(self, spec: NetworkSpec) -> str:
        """A network and its subnet (DHCP for dynamic allocation); the network is deleted again if
        the subnet cannot be made."""
        marks = [m.encode_tag(self.settings.entity_key, spec.entity_id)] if spec.entity_id else []
        net = self.conn().network
        network = net.create_network(name=spec.name, description=m.describe(marks))
        try:
            net.set_tags(network, [self.settings.label, *marks])
            subnet: dict[str, Any] = {
                "network_id": network.id,
                "name": spec.name,
                "ip_version": 4,
                "is_dhcp_enabled": spec.allocation != "static",
            }
            picked = None
            if spec.address:
                subnet["cidr"] = str(ipaddress.IPv4Network(spec.address, strict=False))
            elif self.settings.subnet_pool:
                pool = net.find_subnet_pool(self.settings.subnet_pool, ignore_missing=False)
                subnet["subnetpool_id"] = pool.id
            else:
                picked = self._free_range()
                subnet["cidr"] = str(picked)
            if spec.gateway:
                subnet["gateway_ip"] = spec.gateway
            try:
                net.create_subnet(**subnet)
            finally:
                if picked is not None:
                    with self._pick_lock:
                        self._picked.discard(picked)
        except BaseException:
            with contextlib.suppress(Exception):
                net.delete_network(network.id, ignore_missing=True)
            raise
        return str(network.id)

    def set_network_up(self, network_id: str, up: bool) -> None:
        self.conn().network.update_network(network_id, is_admin_state_up=up)

    def delete_network(self, network_id: str) -> bool:
        """Delete the network with its subnets and unplugged ports; False when it is gone."""
        net = self.conn().network
        try:
            net.get_network(network_id)
        except sdk.NotFoundException:
            return False
        for port in net.ports(network_id=network_id):
            if not port.device_id:  # our unplugged ports; plugged ones make neutron refuse (409)
                net.delete_port(port.id, ignore_missing=True)
        try:
            net.delete_network(network_id)
        except sdk.NotFoundException:
            return False
        return True

    # ------------------------------------------------------------------ networkinterface (ports)

    def _subnets_of(self, ports: Iterable[Any]) -> dict[str, Any]:
        ids = {fixed.get("subnet_id") for port in ports for fixed in (port.fixed_ips or ())}
        subnets = {}
        for subnet_id in ids - {None}:
            with contextlib.suppress(sdk.NotFoundException):
                subnets[str(subnet_id)] = self.conn().network.get_subnet(subnet_id)
        return subnets

    def port(self, port_id: str) -> Any | None:
        try:
            return self.conn().network.get_port(port_id)
        except sdk.NotFoundException:
            return None

    def port_observed(self, port: Any | None) -> Observed | None:
        if port is None:
            return None
        return m.port_observed(port, self._subnets_of([port]), self.mark_key("interface"))

    def create_port(self, spec: NetworkInterfaceSpec) -> str:
        """A port on the network, marked with the entity id (and the interface name asked for), in
        the security groups that securitygrouplinks put the server in (besides Neutron's default)."""
        server = self.server(spec.compute_id)
        if server is None:
            raise BackendError(f"compute {spec.compute_id} does not exist in {self.where}")
        net = self.conn().network
        try:
            net.get_network(spec.network_id)
        except sdk.NotFoundException:
            raise BackendError(f"network {spec.network_id} does not exist in {self.where}") from None
        marks = [m.encode_tag(self.settings.entity_key, spec.entity_id)] if spec.entity_id else []
        if spec.interface:
            marks.append(m.encode_tag(self.mark_key("interface"), spec.interface))
        attrs: dict[str, Any] = {"network_id": spec.network_id, "name": spec.name, "description": m.describe(marks)}
        if spec.mac:
            attrs["mac_address"] = spec.mac.lower()
        if spec.address:
            attrs["fixed_ips"] = [{"ip_address": str(ipaddress.ip_interface(spec.address).ip)}]
        with choice_refused(self.where, spec.mac, "a MAC address",
                            "leave occi.networkinterface.mac unset and the cloud picks one"):
            port = net.create_port(**attrs)
        try:
            net.set_tags(port, [self.settings.label, *marks])
            prefix = self.mark_key("securitygroup:")
            linked = [key[len(prefix):] for key in (server.metadata or {}) if key.startswith(prefix)]
            if linked:
                net.update_port(port, security_group_ids=[*(port.security_group_ids or ()), *linked])
        except BaseException:
            with contextlib.suppress(Exception):
                net.delete_port(port.id, ignore_missing=True)
            raise
        return str(port.id)

    def plug(self, server_id: str, port_id: str) -> None:
        self.conn().compute.create_server_interface(server_id, port_id=port_id)

    def unplug(self, port_id: str) -> bool:
        """Ask nova to unplug the port from its server; False when it is not plugged in."""
        port = self.port(port_id)
        if port is None or not port.device_id or not str(port.device_owner or "").startswith("compute:"):
            return False
        try:
            self.conn().compute.delete_server_interface(port_id, server=port.device_id)
        except sdk.NotFoundException:
            return False
        return True

    def delete_port(self, port_id: str) -> None:
        self.conn().network.delete_port(port_id, ignore_missing=True)

    has_volumes: bool = True
    project_id: str | None = None
