"""The served catalogue: generated data in sync with the spec catalogue, the legacy `speed`
attribute and storage actions, attribute ranges in discovery, and strict terms in everything the
server mints."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from occipy.errors import ActionNotAllowed
from occipy.model import _catalogue_data, state
from occipy.model.catalogue import (
    COMPUTE,
    LEGACY_STORAGE_ACTIONS,
    NETWORKINTERFACE,
    RANGES,
    STORAGE,
    STORAGE_ACTION,
    STORAGE_BACKUP,
    STORAGE_RESIZE,
    STORAGE_SNAPSHOT,
    STORAGELINK,
)
from occipy.model.category import STRICT_TERM_RE, Action
from occipy.model.standard import standard_registry

ROOT = Path(__file__).resolve().parents[3]
SPEC_CATALOGUE = ROOT.parent / "shared" / "spec" / "catalogue.json"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_catalogue", ROOT / "scripts" / "gen_catalogue.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_catalogue_matches_the_committed_file() -> None:
    """`python scripts/gen_catalogue.py` must have been run after every catalogue change."""
    generator = _generator()
    committed = Path(_catalogue_data.__file__).read_text()
    expected = generator.render(generator.extract(json.loads(SPEC_CATALOGUE.read_text())))
    assert committed == expected, "run: python scripts/gen_catalogue.py"


def test_speed_is_declared_like_rocci_and_occiware() -> None:
    speed = standard_registry().kind_attribute_defs(COMPUTE)["occi.compute.speed"]
    assert (speed.type, speed.mutable, speed.required, speed.default) == ("number", True, False, None)
    assert speed.pattern is not None and speed.pattern["exclusiveMinimum"] is True


@pytest.mark.parametrize(("kind", "name"), [(COMPUTE, name) for name in RANGES if "compute" in name
                                            and "ephemeral" not in name] + [(STORAGE, "occi.storage.size")])
def test_ranges_are_in_the_discoverable_pattern(kind: str, name: str) -> None:
    pattern = standard_registry().kind_attribute_defs(kind)[name].pattern
    assert pattern is not None
    for keyword, value in RANGES[name].items():
        assert pattern[keyword] == value


def test_every_float_minimum_of_the_catalogue_survives() -> None:
    # The catalogue's `minimum` of a Float used to be dropped with the whole pattern.
    memory = standard_registry().kind_attribute_defs(COMPUTE)["occi.compute.memory"]
    assert memory.pattern is not None and memory.pattern["minimum"] == 0


def test_every_standard_term_is_strict() -> None:
    # OCCI 1.1 and rOCCI-core 5 parsers only accept [a-z][a-z0-9_-]* (D-STRICT-TERMS).
    bad = [c.type_id for c in standard_registry().categories() if not STRICT_TERM_RE.match(c.term)]
    assert bad == []


def test_the_storage_kind_serves_the_legacy_actions() -> None:
    # D-LEGACY-STORAGE: the OCCI 1.1 identifiers (GFD.184 §3.3), after the 1.2 actions; resize has `size`.
    registry = standard_registry()
    assert registry.action_ids(STORAGE) == [STORAGE_ACTION + t for t in
                                            ("online", "offline", "backup", "snapshot", "resize")]
    resize = registry.find(STORAGE_RESIZE)
    assert isinstance(resize, Action)
    [size] = resize.attributes
    assert (size.name, size.type, size.required) == ("size", "number", True)
    # only the 1.1 actions: not the non-standard link actions the catalogue also lists as optional
    assert registry.action_ids(NETWORKINTERFACE) == [] and registry.action_ids(STORAGELINK) == []


def test_the_legacy_actions_keep_the_state_and_no_1_1_state_is_served() -> None:
    for action_id in LEGACY_STORAGE_ACTIONS:
        assert state.next_state(STORAGE, "online", action_id) == "online"
        assert state.next_state(STORAGE, "offline", action_id) == "offline"
        with pytest.raises(ActionNotAllowed):
            state.next_state(STORAGE, "error", action_id)
    assert set(state.MACHINES[STORAGE].states) == {"online", "offline", "error"}
    assert state.available_actions(STORAGE, "online", standard_registry().action_ids(STORAGE)) == (
        STORAGE_ACTION + "offline", STORAGE_BACKUP, STORAGE_SNAPSHOT, STORAGE_RESIZE)
