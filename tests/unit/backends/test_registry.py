"""`backends.load_driver_class`: the lazy name -> "module:Class" table and its one-line errors."""

from __future__ import annotations

import sys

import pytest

from occipy import backends
from occipy.backends import DRIVERS, load_driver_class
from occipy.backends.simulated import SimulatedDriver


def test_every_entry_names_a_module_and_a_class() -> None:
    for name, target in DRIVERS.items():
        module, sep, cls = target.partition(":")
        assert sep and module.startswith("occipy.backends.") and cls.endswith("Driver"), name


def test_loads_by_name() -> None:
    assert load_driver_class("simulated") is SimulatedDriver


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown driver 'vmware'; choose one of libvirt, openstack, simulated"):
        load_driver_class("vmware")


def _without(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Make `import <module>` fail as when the package is not installed, and forget occipy's
    driver modules that already imported it."""
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)
    # The driver module imports its SDK first, so forgetting it alone makes the import fail there.
    monkeypatch.delitem(sys.modules, "occipy.backends.libvirt", raising=False)


def test_missing_sdk_is_one_line_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    # `occipy serve --driver libvirt` without the extra: server.py turns the ValueError into one
    # line on stderr and exit 1 (instead of a ModuleNotFoundError traceback).
    _without(monkeypatch, "libvirt")
    with pytest.raises(ValueError) as caught:
        load_driver_class("libvirt")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("the libvirt driver needs the libvirt extra: pip install 'occipy[libvirt]'")
    assert "'libvirt' is not installed" in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_a_missing_occipy_module_is_a_bug_not_an_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(DRIVERS, "probe", "occipy.backends._no_such_module:ProbeDriver")
    with pytest.raises(ModuleNotFoundError, match="occipy.backends._no_such_module"):
        load_driver_class("probe")


def test_sdk_message_when_no_extra_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends, "_extras", lambda: frozenset({"postgres"}))
    _without(monkeypatch, "libvirt")
    with pytest.raises(
        ValueError, match=r"^the libvirt driver needs the Python module 'libvirt', which is not"
    ):
        load_driver_class("libvirt")
