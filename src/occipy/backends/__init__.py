"""Cloud drivers behind one small typed contract (`base.Driver` and its optional protocols).

`DRIVERS` maps a driver name to "module:Class"; modules are imported lazily, so only the
driver in use imports its cloud's SDK. Adding a driver is one line there. A driver whose SDK
comes with a package extra names the extra after the driver (`occipy[libvirt]` for "libvirt"),
so that a missing SDK is reported as one line naming the extra to install.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import Any, Final

DRIVERS: Final[dict[str, str]] = {
    "simulated": "occipy.backends.simulated:SimulatedDriver",
    "libvirt": "occipy.backends.libvirt:LibvirtDriver",
    "occi": "occipy.backends.occi:OcciDriver",
    "ec2": "occipy.backends.ec2:EC2Driver",
    "docker": "occipy.backends.docker:DockerDriver",
    "openstack": "occipy.backends.openstack:OpenStackDriver",
}


def load_driver_class(name: str) -> Any:
    """The driver class registered under `name`.

    Raises ValueError, in one line, for an unknown name and for a driver whose SDK is not
    installed (naming the package extra that brings it).
    """
    try:
        target = DRIVERS[name]
    except KeyError:
        raise ValueError(f"unknown driver {name!r}; choose one of {', '.join(sorted(DRIVERS))}") from None
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").partition(".")[0]
        if not missing or missing == "occipy":
            raise  # a module of occipy itself is missing: a bug, not a missing extra
        raise ValueError(_missing_sdk(name, missing)) from None
    return getattr(module, class_name)


def _missing_sdk(driver: str, module: str) -> str:
    if driver in _extras():
        return (
            f"the {driver} driver needs the {driver} extra: pip install 'occipy[{driver}]' "
            f"(or uv sync --extra {driver}); Python module {module!r} is not installed"
        )
    return f"the {driver} driver needs the Python module {module!r}, which is not installed"


def _extras() -> frozenset[str]:
    """The package extras occipy declares (empty when it runs from a source tree without metadata)."""
    try:
        return frozenset(importlib.metadata.metadata("occipy").get_all("Provides-Extra") or ())
    except importlib.metadata.PackageNotFoundError:
        return frozenset()
