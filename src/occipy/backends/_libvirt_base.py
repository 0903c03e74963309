"""The libvirt driver's base: one connection, error translation, lookups and device plumbing.

`_LibvirtBase` holds the settings and the libvirt connection shared by the synchronous
operations (`_libvirt_compute`, `_libvirt_devices`), which `LibvirtDriver` (libvirt.py) runs in
worker threads. Everything here blocks: never call it on the event loop. Imports libvirt,
backends.base, errors and the driver's other helpers.
"""

from __future__ import annotations

import contextlib
import ipaddress
import random
import threading
import uuid as uuidlib
from collections.abc import Callable
from typing import Any, Final, TypeVar

import libvirt

from occipy.backends import _libvirt_xml as lx
from occipy.backends._libvirt_local import Image, Settings, load_saved, scan_images, slug
from occipy.backends.base import NETWORKINTERFACE, STORAGELINK
from occipy.errors import BackendError, BackendUnavailable, NotSupported, OcciError

T = TypeVar("T")
LINKS: Final = (STORAGELINK, NETWORKINTERFACE)
# Device aliases name the link type: "ua-sl-<hex>" disks, "ua-nic-<hex>" interfaces.
ALIAS_PREFIX: Final = {STORAGELINK: "ua-sl-", NETWORKINTERFACE: "ua-nic-"}
# GFD.224 §3.1 action methods the driver runs.
METHODS: Final = {
    "stop": ("graceful", "acpioff", "poweroff"),
    "restart": ("graceful", "warm", "cold"),
    "suspend": ("hibernate", "suspend"),
    "save": ("hot", "deferred", "deffered"),  # rOCCI's misspelling is an input alias
}
DETACH_TIMEOUT: Final = 15.0  # seconds a guest gets to release a hot-unplugged device
POLL: Final = 0.2
_NOT_FOUND: Final = frozenset(
    {
        libvirt.VIR_ERR_NO_DOMAIN,
        libvirt.VIR_ERR_NO_NETWORK,
        libvirt.VIR_ERR_NO_STORAGE_VOL,
        libvirt.VIR_ERR_NO_STORAGE_POOL,
    }
)
_UNREACHABLE_CODES: Final = frozenset(
    {
        libvirt.VIR_ERR_NO_CONNECT,
        libvirt.VIR_ERR_RPC,
        libvirt.VIR_ERR_AUTH_FAILED,
        libvirt.VIR_ERR_AUTH_UNAVAILABLE,
        libvirt.VIR_ERR_AUTH_CANCELLED,
    }
)
_REMOTE_DOMAINS: Final = frozenset({libvirt.VIR_FROM_RPC, libvirt.VIR_FROM_REMOTE})


# ---------------------------------------------------------------------------- process-wide events

_events_lock = threading.Lock()
_events_started = False


def _start_event_loop() -> None:
    """libvirt's default event loop in a daemon thread, once per process.

    It must be registered before the first connection is opened (keepalives and events of
    remote connections need it). A thread, not libvirtaio: libvirtaio binds the process to one
    asyncio loop for good, which breaks every later loop (tests, restarts of the server's loop).
    """
    global _events_started
    with _events_lock:
        if _events_started:
            return
        # libvirt prints every error on stderr by default; we report them as OcciErrors instead.
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
        libvirt.virEventRegisterDefaultImpl()

        def run() -> None:
            while True:
                libvirt.virEventRunDefaultImpl()

        threading.Thread(target=run, name="libvirt-events", daemon=True).start()
        _events_started = True


def _code(exc: libvirt.libvirtError) -> int:
    return int(exc.get_error_code() or 0)


def _missing(exc: libvirt.libvirtError) -> bool:
    return _code(exc) in _NOT_FOUND


class _LibvirtBase:
    """Settings, the connection and the lookups every operation needs (worker threads only)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._connection: Any = None
        self._connect_lock = threading.Lock()
        self._domain_type = settings.domain_type
        self._images: dict[str, Image] = {}
        self._saved: dict[str, Image] = {}
        self._image_problems: list[str] = []
        self._offline: set[str] = set()

    def _register_events(self, conn: Any) -> None:
        """Subscribe to the connection's events (the driver does; the base has none)."""

    def _guard(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        try:
            return fn(*args)
        except libvirt.libvirtError as exc:
            raise self._translate(exc, what) from None
        except OSError as exc:
            raise BackendError(f"{what}: {exc.strerror or exc} ({exc.filename or 'local file'})") from None

    def _translate(self, exc: libvirt.libvirtError, what: str) -> OcciError:
        message = exc.get_error_message() or str(exc)
        code = _code(exc)
        if code in _UNREACHABLE_CODES or (
            exc.get_error_domain() in _REMOTE_DOMAINS
            and code in (libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_ERR_INTERNAL_ERROR)
        ):
            self._connection = None  # reconnect on the next call
            return BackendUnavailable(
                f"libvirt at {self.settings.uri} is unreachable ({message}); "
                "is libvirtd running? (scripts/libvirt-setup.sh starts it)"
            )
        if code == libvirt.VIR_ERR_NO_SUPPORT:
            return BackendError(
                f"{what}: the libvirt connection {self.settings.uri} cannot do this ({message})"
            )
        return BackendError(f"{what} failed: {message}")

    def _conn(self) -> Any:
        """The connection, reopened if libvirtd went away (called in worker threads)."""
        conn = self._connection
        if conn is not None:
            try:
                if conn.isAlive():
                    return conn
            except libvirt.libvirtError:
                pass
        with self._connect_lock:
            if self._connection is not None and self._connection is not conn:
                return self._connection
            self._connection = self._open_connection()
            return self._connection

    def _open_connection(self) -> Any:
        try:
            conn = libvirt.open(self.settings.uri)
        except libvirt.libvirtError as exc:
            raise BackendUnavailable(
                f"cannot connect to libvirt at {self.settings.uri}: {exc.get_error_message() or exc}. "
                "Is libvirtd running? (scripts/libvirt-setup.sh installs and starts it)"
            ) from None
        if conn is None:
            raise BackendUnavailable(f"cannot connect to libvirt at {self.settings.uri}")
        if str(conn.getType()).lower() == "test":
            self._domain_type = "test"
        else:
            with contextlib.suppress(libvirt.libvirtError):
                conn.setKeepAlive(5, 3)  # notice a dead libvirtd within ~20 s
        self._register_events(conn)
        return conn

    def _rescan_images(self) -> None:
        self._images, self._image_problems = scan_images(self.settings.image_dir)
        self._saved = load_saved(self.settings.template_dir)

    def _dom(self, backend_id: str, required: bool = True) -> Any:
        try:
            uuidlib.UUID(backend_id)
            return self._conn().lookupByUUIDString(backend_id)
        except ValueError:
            pass
        except libvirt.libvirtError as exc:
            if not _missing(exc):
                raise
        if required:
            raise BackendError(f"compute {backend_id} does not exist (any more) in libvirt")
        return None

    def _free_name(self, taken: set[str], name: str, suffix: str = "") -> str:
        base = self.settings.name_prefix + slug(name)
        candidate, n = base, 1
        while candidate + suffix in taken:
            n += 1
            candidate = f"{base}-{n}"
        return candidate

    def _pool(self) -> Any:
        return self._conn().storagePoolLookupByName(self.settings.pool)

    def _vol(self, backend_id: str, required: bool = True) -> Any:
        pool_name, sep, volume = backend_id.partition("/")
        if sep and volume:
            try:
                return self._conn().storagePoolLookupByName(pool_name).storageVolLookupByName(volume)
            except libvirt.libvirtError as exc:
                if not _missing(exc):
                    raise
        if required:
            raise BackendError(f"storage {backend_id} does not exist (any more) in libvirt")
        return None

    def _net(self, backend_id: str, required: bool = True) -> Any:
        try:
            uuidlib.UUID(backend_id)
            return self._conn().networkLookupByUUIDString(backend_id)
        except ValueError:
            pass
        except libvirt.libvirtError as exc:
            if not _missing(exc):
                raise
        if required:
            raise BackendError(f"network {backend_id} does not exist (any more) in libvirt")
        return None

    def _definitions(self, dom: Any) -> tuple[lx.DomainInfo, lx.DomainInfo | None]:
        """(persistent definition, live definition or None when the domain is not running)."""
        config = lx.parse_domain(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        live = lx.parse_domain(dom.XMLDesc(0)) if dom.isActive() else None
        return config, live

    def _attach(self, dom: Any, device: str) -> None:
        flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
        if dom.isActive():
            flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE  # hot-plug: the running guest sees it now
        try:
            dom.attachDeviceFlags(device, flags)
        except libvirt.libvirtError as exc:
            if _code(exc) != libvirt.VIR_ERR_NO_SUPPORT:
                raise
            # No device API on this connection (the test driver): change the definition; a running
            # guest sees the device from its next start, and observe() says so.
            self._conn().defineXML(
                lx.set_domain_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE), add_device=device)
            )

    def _set_link_meta(self, dom: Any, add: lx.LinkMeta | None = None, forget: str | None = None) -> None:
        """Record (`add`) or drop (`forget`, an alias) occipy's metadata of a device of `dom`.

        The metadata lives in the persistent definition, where the driver reads it; a running
        domain picks the new definition up at its next start, which changes nothing it runs.
        """
        xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        if forget is not None and lx.parse_domain(xml).link(forget) is None:
            return
        self._conn().defineXML(lx.set_domain_xml(xml, add_link=add, forget_link=forget))

    def _attachments(self, path: str) -> list[tuple[Any, lx.Disk]]:
        """Every (domain, disk) that uses the file, in a live or a persistent definition."""
        found = []
        for dom in self._conn().listAllDomains(0):
            xmls = [dom.XMLDesc(0)]
            if dom.isActive() and dom.isPersistent():
                xmls.append(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            for xml in xmls:
                disk = next((d for d in lx.parse_domain(xml).disks if d.source == path), None)
                if disk is not None:
                    found.append((dom, disk))
                    break
        return found

    def _link(self, backend_id: str) -> tuple[Any, str, lx.DomainInfo, lx.DomainInfo | None] | None:
        domain_id, _, alias = backend_id.partition("/")
        if not lx.ALIAS_RE.match(alias):
            return None
        dom = self._dom(domain_id, required=False)
        if dom is None:
            return None
        try:
            config, live = self._definitions(dom)
        except libvirt.libvirtError as exc:
            if _missing(exc):
                return None
            raise
        return dom, alias, config, live

    @staticmethod
    def _update_hosts(net: Any, command: int, host_xml: str) -> None:
        flags = libvirt.VIR_NETWORK_UPDATE_AFFECT_CONFIG
        if net.isActive():
            flags |= libvirt.VIR_NETWORK_UPDATE_AFFECT_LIVE
        net.update(command, libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST, -1, host_xml, flags)

    def _drop_reservation(self, conn: Any, nic: lx.Interface) -> None:
        if not nic.network:
            return
        with contextlib.suppress(libvirt.libvirtError):
            net = conn.networkLookupByName(nic.network)
            hosts = lx.parse_network(_network_config(net)).hosts
            if nic.mac in hosts:
                self._update_hosts(
                    net, libvirt.VIR_NETWORK_UPDATE_COMMAND_DELETE, lx.dhcp_host_xml(nic.mac, hosts[nic.mac])
                )


# ---------------------------------------------------------------------------- pure helpers


def _network_config(net: Any) -> str:
    """A network's persistent definition (the test driver has only the one definition)."""
    try:
        return str(net.XMLDesc(libvirt.VIR_NETWORK_XML_INACTIVE))
    except libvirt.libvirtError as exc:
        if _code(exc) not in (libvirt.VIR_ERR_INVALID_ARG, libvirt.VIR_ERR_NO_SUPPORT):
            raise
        return str(net.XMLDesc(0))


def _check_method(action: str, method: str) -> str:
    """The method if the driver runs it for this action; NotSupported otherwise."""
    if method not in METHODS[action]:
        offered = ", ".join(m for m in METHODS[action] if m != "deffered")
        raise NotSupported(f"the libvirt driver has no {action} method {method!r}; it has {offered}")
    return "deferred" if method == "deffered" else method


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value < 1:
        raise BackendError(f"{name} must be a whole number of 1 or more, got {value!r}")
    return int(value)


def _positive_float(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise BackendError(f"{name} must be a number above 0, got {value!r}")
    return float(value)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_interface(text)
    except ValueError:
        return False
    return True


def _address_and_gateway(address: str, gateway: str | None) -> tuple[lx.IPNetwork, lx.IPAddress]:
    """A network's range (CIDR; "192.168.0.1/24" also names the gateway) and gateway."""
    try:
        interface = ipaddress.ip_interface(address)
    except ValueError:
        raise BackendError(f"network address {address!r} is not a CIDR range") from None
    network = interface.network
    if gateway:
        try:
            gw = ipaddress.ip_address(gateway)
        except ValueError:
            raise BackendError(f"gateway {gateway!r} is not an IP address") from None
    elif interface.ip != network.network_address:
        gw = interface.ip
    else:
        gw = network.network_address + 1
    if gw not in network or gw in (network.network_address, network.broadcast_address):
        raise BackendError(f"gateway {gw} is not a host address of {network}")
    return network, gw


def _free_mac(taken: set[str | None]) -> str:
    rng = random.SystemRandom()
    while True:
        # 52:54:00 is the prefix QEMU/libvirt use for generated MACs.
        mac = "52:54:00:" + ":".join(f"{rng.randrange(256):02x}" for _ in range(3))
        if mac not in taken:
            return mac
