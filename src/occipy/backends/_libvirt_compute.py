"""The libvirt driver's compute operations: domains from images, actions, resize, reimage, save.

Synchronous: `LibvirtDriver` runs each in a worker thread. Maps compute specs, updates, images,
flavours and actions (GFD.224 §3.1, §3.5) to libvirt domain calls; docs/drivers/libvirt.md has
the table. Imports libvirt, the driver's base and helpers, backends.base and errors.
"""

from __future__ import annotations

import contextlib
import functools
import uuid as uuidlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import libvirt

from occipy.backends import _libvirt_xml as lx
from occipy.backends._libvirt_base import (
    _code,
    _LibvirtBase,
    _missing,
    _positive_float,
    _positive_int,
)
from occipy.backends._libvirt_local import Flavour, Image, Seed, seed_iso, slug, store_saved, write_file
from occipy.backends.base import (
    ACTIVE,
    ERROR,
    INACTIVE,
    SUSPENDED,
    ComputeFacts,
    ComputeSpec,
    ComputeUpdate,
    Observed,
)
from occipy.errors import BackendError


class _ComputeOps(_LibvirtBase):
    """Compute (domain) operations."""

    def _image(self, name: str) -> Image:
        image = self._saved.get(name) or self._images.get(name)
        if image is None:
            self._rescan_images()  # a file dropped into image_dir since the last scan
            image = self._saved.get(name) or self._images.get(name)
        if image is None:
            offered = ", ".join(sorted({*self._images, *self._saved})) or "none"
            raise BackendError(f"no image {name!r} in {self.settings.image_dir} (offered: {offered})")
        return image

    def _sizes(self, spec: ComputeSpec) -> tuple[int, float, Flavour | None]:
        flavour = self.settings.flavour(spec.flavour) if spec.flavour else None
        if spec.flavour and flavour is None:
            offered = ", ".join(f.name for f in self.settings.flavours) or "none besides the CRTP ones"
            raise BackendError(f"no flavour {spec.flavour!r} (offered: {offered})")
        # "If the resource itself carries size-related attributes, the assigned resource template
        #  overrides them where applicable" (GFD.224 §3.5.2).
        cores = flavour.cores if flavour else spec.cores if spec.cores is not None else 1
        memory = flavour.memory_gib if flavour else spec.memory_gib if spec.memory_gib is not None else 1.0
        return _positive_int("cores", cores), _positive_float("memory", memory), flavour

    def _create_compute(self, spec: ComputeSpec) -> str:
        conn = self._conn()
        image_name = spec.image or self.settings.default_os_tpl
        image = self._image(image_name) if image_name else None
        cores, memory, flavour = self._sizes(spec)
        arch = spec.architecture or (image.architecture if image else "x64")
        if arch not in lx.ARCH_TO_LIBVIRT:
            raise BackendError(f"the libvirt driver runs x64 and x86 guests, not {arch!r}")
        name = self._free_name({d.name() for d in conn.listAllDomains(0)}, spec.name)
        domain_uuid = str(uuidlib.uuid4())
        hostname = spec.hostname or slug(spec.name, 63)
        pool = conn.storagePoolLookupByName(self.settings.pool)
        undo: list[Callable[[], object]] = []
        try:
            root_path = seed_path = None
            if image is not None:
                disk = int((flavour.disk_gib if flavour and flavour.disk_gib else 0) * lx.BYTES_PER_GIB)
                volume = pool.createXML(
                    lx.volume_xml(
                        f"{name}-root.qcow2", max(image.virtual_size, disk), "qcow2", image.path, image.fmt
                    ),
                    0,
                )
                undo.append(functools.partial(volume.delete, 0))
                root_path = volume.path()
                keys = (spec.ssh_public_key,) if spec.ssh_public_key else ()
                seed = Seed(domain_uuid, hostname, keys, spec.user_data)
                seed_file = self.settings.seed_dir / f"{name}.iso"
                write_file(seed_file, seed_iso(seed))
                undo.append(functools.partial(seed_file.unlink, missing_ok=True))
                seed_path = str(seed_file)
            plan = lx.DomainPlan(
                name=name,
                uuid=domain_uuid,
                domain_type=self._domain_type,
                arch=lx.ARCH_TO_LIBVIRT[arch],
                vcpus=cores,
                memory_kib=int(memory * lx.KIB_PER_GIB),
                hostname=hostname,
                share=spec.share,
                root_path=root_path,
                seed_path=seed_path,
                console_log=str(self.settings.console_dir / f"{name}.log"),
                kernel=image.kernel if image else None,
                initrd=image.initrd if image else None,
                cmdline=image.cmdline if image else None,
                image=image.name if image else None,
                flavour=spec.flavour,
                entity_id=spec.entity_id,
            )
            dom = conn.defineXML(lx.domain_xml(plan))
            undo.append(dom.undefine)
            dom.create()
            return str(dom.UUIDString())
        except BaseException:
            for step in reversed(undo):
                with contextlib.suppress(libvirt.libvirtError, OSError):
                    step()
            raise

    def _domain_state(self, backend_id: str) -> int | None:
        dom = self._dom(backend_id, required=False)
        return None if dom is None else int(dom.state(0)[0])

    def _observe_compute(self, backend_id: str) -> Observed | None:
        dom = self._dom(backend_id, required=False)
        if dom is None:
            return None
        try:
            state, reason = dom.state(0)
            config = lx.parse_domain(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            live = lx.parse_domain(dom.XMLDesc(0)) if dom.isActive() else config
            saved = state == libvirt.VIR_DOMAIN_SHUTOFF and bool(dom.hasManagedSaveImage(0))
        except libvirt.libvirtError as exc:
            if _missing(exc):
                return None  # deleted while we looked
            raise
        word, message = _compute_state(state, reason, saved)
        if word == ACTIVE and (live.vcpus, live.memory_kib) != (config.vcpus, config.memory_kib):
            message = "new cores/memory apply at the next start (stop and start, or restart method=cold)"
        facts = ComputeFacts(
            cores=config.vcpus,
            memory_gib=round(config.memory_kib / lx.KIB_PER_GIB, 6),
            architecture=lx.ARCH_FROM_LIBVIRT.get(config.arch or ""),
            hostname=config.metadata.get("hostname") or None,
        )
        return Observed(backend_id, word, message, facts)

    def _start(self, backend_id: str) -> None:
        dom = self._dom(backend_id)
        state = dom.state(0)[0]
        if state == libvirt.VIR_DOMAIN_PAUSED:
            dom.resume()
        elif state == libvirt.VIR_DOMAIN_PMSUSPENDED:
            dom.pMWakeup(0)
        elif state in (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_CRASHED, libvirt.VIR_DOMAIN_NOSTATE):
            if state == libvirt.VIR_DOMAIN_CRASHED:
                dom.destroy()
            dom.create()  # restores a managed save (hibernate) when there is one

    def _compute_action(self, backend_id: str, action: str, method: str | None) -> None:
        dom = self._dom(backend_id)
        active = bool(dom.isActive())
        if action == "start":
            self._start(backend_id)
        elif action == "stop":  # poweroff; graceful/acpioff go through _graceful_stop
            if active:
                dom.destroy()
            elif dom.hasManagedSaveImage(0):
                dom.managedSaveRemove(0)  # a hibernated compute stopped: forget its memory
        elif action == "restart":
            if not active:
                self._start(backend_id)
            elif method == "graceful":
                dom.reboot(0)  # ACPI (or guest agent) reboot request: the guest OS restarts
            elif method == "warm":
                dom.reset(0)  # reset button: no power cycle
            else:
                dom.destroy()  # cold: power cycle; picks up a new definition (resize, reimage)
                dom.create()
        elif action == "suspend":
            if method == "hibernate":
                dom.managedSave(0)  # memory to disk, qemu exits; start restores it
            elif dom.state(0)[0] != libvirt.VIR_DOMAIN_PAUSED:
                dom.suspend()  # vCPUs paused, memory kept

    def _managed_save(self, backend_id: str) -> None:
        self._dom(backend_id).managedSave(0)

    def _request_shutdown(self, backend_id: str, acpi: bool) -> bool:
        """Ask the guest to power off; False when it is not running."""
        dom = self._dom(backend_id)
        if not dom.isActive():
            return False
        if dom.state(0)[0] == libvirt.VIR_DOMAIN_PAUSED:
            dom.resume()  # a paused guest cannot react to the power button
        if acpi:
            try:
                dom.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
                return True
            except libvirt.libvirtError as exc:
                if _code(exc) not in (
                    libvirt.VIR_ERR_NO_SUPPORT,
                    libvirt.VIR_ERR_INVALID_ARG,
                    libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED,
                ):
                    raise
                # The hypervisor cannot pick the method (test driver): let it choose.
        dom.shutdown()
        return True

    def _is_active(self, backend_id: str) -> bool:
        dom = self._dom(backend_id, required=False)
        return bool(dom is not None and dom.isActive())

    def _copy_root(self, backend_id: str, name: str | None) -> Image:
        conn = self._conn()
        dom = self._dom(backend_id)
        config = lx.parse_domain(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        root = config.disk("ua-root")
        if root is None or not root.source:
            raise BackendError(
                f"compute {config.name} has no root disk to save (it was created without an image)"
            )
        source = conn.storageVolLookupByPath(root.source)
        info = lx.parse_volume(source.XMLDesc(0))
        # The provider "MAY honour the client's name or replace it by policy" (GFD.224 §3.1): we
        # keep it as given, numbered when another image already has it.
        taken = {*self._images, *self._saved}
        if name:
            image_name = next(n for n in _numbered(name, first=None) if n not in taken)
        else:
            base = f"{config.name.removeprefix(self.settings.name_prefix)}-snapshot"
            image_name = next(n for n in _numbered(base, first=1) if n not in taken)
        pool = conn.storagePoolLookupByName(self.settings.pool)
        volumes = set(pool.listVolumes())
        stem = next(
            s
            for s in _numbered(f"{self.settings.name_prefix}tpl-{slug(image_name)}", first=None)
            if f"{s}.qcow2" not in volumes and not (self.settings.template_dir / f"{s}.json").exists()
        )
        volume_name = f"{stem}.qcow2"
        # createXMLFrom copies through `qemu-img convert`: the new image has no backing file.
        copy = pool.createXMLFrom(lx.volume_xml(volume_name, info.capacity, "qcow2"), source, 0)
        origin = config.metadata.get("os-template")
        title = f"Snapshot {image_name} of compute {config.name}" + (f" (from {origin})" if origin else "")
        image = Image(
            name=image_name,
            title=title,
            path=str(copy.path()),
            fmt="qcow2",
            virtual_size=info.capacity,
            architecture=lx.ARCH_FROM_LIBVIRT.get(config.arch or "", "x64"),
            kernel=config.kernel,
            initrd=config.initrd,
            cmdline=config.cmdline,
            saved_from=config.name,
            volume=f"{self.settings.pool}/{volume_name}",
        )
        store_saved(self.settings.template_dir, image, stem)
        self._saved[image_name] = image
        return image

    def _update_compute(self, backend_id: str, change: ComputeUpdate) -> None:
        conn = self._conn()
        dom = self._dom(backend_id)
        xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        config = lx.parse_domain(xml)
        vcpus = _positive_int("cores", change.cores) if change.cores is not None else None
        memory = (
            int(_positive_float("memory", change.memory_gib) * lx.KIB_PER_GIB)
            if change.memory_gib is not None
            else None
        )
        metadata: dict[str, str | None] = {}
        arch: str | None = None
        if change.architecture is not None:
            if change.architecture not in lx.ARCH_TO_LIBVIRT:
                raise BackendError(f"the libvirt driver runs x64 and x86 guests, not {change.architecture!r}")
            arch = lx.ARCH_TO_LIBVIRT[change.architecture]
        if change.flavour is not None:
            flavour = self.settings.flavour(change.flavour)
            if flavour is None:
                raise BackendError(f"cannot resize compute {config.name}: no flavour {change.flavour!r}")
            metadata["resource-template"] = change.flavour
            # CRTP R0305: applying a template resizes the compute.
            vcpus, memory = flavour.cores, int(flavour.memory_gib * lx.KIB_PER_GIB)
        image = self._image(change.image) if change.image is not None else None
        new_xml = lx.set_domain_xml(xml, vcpus=vcpus, memory_kib=memory, metadata=metadata or None, arch=arch)
        if image is not None and image.name != config.metadata.get("os-template"):
            self._reimage(conn, dom, new_xml, config, image)
            return
        if new_xml != xml:
            conn.defineXML(new_xml)

    def _reimage(self, conn: Any, dom: Any, xml: str, config: lx.DomainInfo, image: Image) -> str:
        """Replace the root overlay by one of `image` (GFD.224 §3.5.1: "MUST immediately remove the
        old template, associate the new one and change the execution environment")."""
        running = bool(dom.isActive())
        if running:
            dom.destroy()
        elif dom.hasManagedSaveImage(0):
            dom.managedSaveRemove(0)  # the saved memory belongs to the old disk
        pool = conn.storagePoolLookupByName(self.settings.pool)
        old = config.disk("ua-root")
        taken = set(pool.listVolumes())
        volume_name = next(
            f"{config.name}-root{'' if n == 0 else f'-{n}'}.qcow2"
            for n in range(1000)
            if f"{config.name}-root{'' if n == 0 else f'-{n}'}.qcow2" not in taken
        )
        volume = pool.createXML(
            lx.volume_xml(volume_name, image.virtual_size, "qcow2", image.path, image.fmt), 0
        )
        path = str(volume.path())
        disk = lx.set_disk_source(old.xml, path) if old else lx.disk_xml(path, "qcow2", "vda", "ua-root")
        new_xml = lx.set_domain_xml(
            xml,
            kernel=image.kernel or "",
            initrd=image.initrd,
            cmdline=image.cmdline,
            metadata={"os-template": image.name, "root-volume": path},
            remove_alias="ua-root",
            add_device=disk,
        )
        try:
            conn.defineXML(new_xml)
        except libvirt.libvirtError:
            volume.delete(0)
            raise
        if old is not None and old.source:
            with contextlib.suppress(libvirt.libvirtError):
                conn.storageVolLookupByPath(old.source).delete(0)
        if running:
            dom.create()
        return new_xml

    def _delete_compute(self, backend_id: str) -> None:
        conn = self._conn()
        dom = self._dom(backend_id, required=False)
        if dom is None:
            return
        config = lx.parse_domain(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        if dom.isActive():
            dom.destroy()
        flags = (
            libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
            | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
            | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
        )
        try:
            dom.undefineFlags(flags)
        except libvirt.libvirtError as exc:
            if _missing(exc):
                return
            if dom.hasManagedSaveImage(0):
                dom.managedSaveRemove(0)
            dom.undefine()
        for nic in config.interfaces:
            self._drop_reservation(conn, nic)
        root = config.metadata.get("root-volume") or (d.source if (d := config.disk("ua-root")) else None)
        if root:
            with contextlib.suppress(libvirt.libvirtError):
                conn.storageVolLookupByPath(root).delete(0)
        for path in (config.metadata.get("seed"), str(self.settings.console_dir / f"{config.name}.log")):
            if path:
                Path(path).unlink(missing_ok=True)


def _numbered(base: str, first: int | None) -> Iterator[str]:
    """base, base-2, base-3, ... (first None), or base-1, base-2, ... (first 1)."""
    if first is None:
        yield base
        first = 2
    n = first
    while True:
        yield f"{base}-{n}"
        n += 1


def _compute_state(state: int, reason: int, managed_save: bool) -> tuple[str, str | None]:
    """libvirt domain state -> compute state word and message (GFD.224 §3.1 states)."""
    if state in (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_BLOCKED):
        return ACTIVE, None
    if state == libvirt.VIR_DOMAIN_SHUTDOWN:
        return ACTIVE, "shutting down"
    if state == libvirt.VIR_DOMAIN_PAUSED:
        if reason == libvirt.VIR_DOMAIN_PAUSED_IOERROR:
            return ERROR, "paused by a disk I/O error (is the pool full?)"
        if reason == libvirt.VIR_DOMAIN_PAUSED_CRASHED:
            return ERROR, "the guest crashed"
        return SUSPENDED, None
    if state == libvirt.VIR_DOMAIN_PMSUSPENDED:
        return SUSPENDED, "suspended by the guest (ACPI S3)"
    if state == libvirt.VIR_DOMAIN_SHUTOFF:
        if managed_save:
            return SUSPENDED, "hibernated: memory saved to disk, start resumes it"
        if reason == libvirt.VIR_DOMAIN_SHUTOFF_CRASHED:
            return ERROR, "the guest crashed"
        if reason == libvirt.VIR_DOMAIN_SHUTOFF_FAILED:
            return ERROR, "the domain failed to start"
        return INACTIVE, None
    if state == libvirt.VIR_DOMAIN_CRASHED:
        return ERROR, "the guest crashed"
    return ERROR, f"libvirt reports no state for this domain (state {state})"
