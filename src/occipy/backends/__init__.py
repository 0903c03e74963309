"""Cloud drivers behind one small typed interface (`base.Driver`).

`DRIVERS` maps a driver name to "module:Class"; modules are imported lazily, so only the
driver in use imports its cloud's SDK.
"""

from __future__ import annotations

import importlib
from typing import Any, Final

DRIVERS: Final[dict[str, str]] = {
    "simulated": "occipy.backends.simulated:SimulatedDriver",
    "libvirt": "occipy.backends.libvirt:LibvirtDriver",
}


def load_driver_class(name: str) -> Any:
    """The driver class registered under `name`; ValueError for an unknown name."""
    try:
        target = DRIVERS[name]
    except KeyError:
        raise ValueError(f"unknown driver {name!r}; choose one of {', '.join(sorted(DRIVERS))}") from None
    module_name, _, class_name = target.partition(":")
    return getattr(importlib.import_module(module_name), class_name)
