"""The generated _catalogue_data.py is what scripts/gen_catalogue.py makes of the spec catalogue."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

from occipy.model._catalogue_data import CATALOGUE, EXTENSIONS

ROOT = Path(__file__).resolve().parents[4]
CATALOGUE_JSON = ROOT.parent / "shared" / "spec" / "catalogue.json"


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_catalogue", ROOT / "scripts" / "gen_catalogue.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_file_is_in_sync_with_the_catalogue() -> None:
    gen = generator()
    expected = gen.render(gen.extract(json.loads(CATALOGUE_JSON.read_text())))
    actual = (ROOT / "src" / "occipy" / "model" / "_catalogue_data.py").read_text()
    assert actual == expected, "run: python scripts/gen_catalogue.py"


def test_infrastructure_part_keeps_only_the_1_2_diagrams() -> None:
    assert [m["id"] for m in CATALOGUE["state_machines"]] == [
        "infrastructure:compute", "infrastructure:network", "infrastructure:storage",
        "infrastructure:networkinterface", "infrastructure:storagelink"]
    assert {c["extension"] for key in ("kinds", "mixins", "actions") for c in CATALOGUE[key]} == {
        "infrastructure", "crtp"}


def test_extension_parts_hold_the_ogf_variants_only() -> None:
    assert set(EXTENSIONS) == {"platform", "sla", "monitoring", "egi"}
    for name, data in EXTENSIONS.items():
        schemes = {c["scheme"] for key in ("kinds", "mixins", "actions") for c in data[key]}
        assert not any("modmacao" in s or "occiware" in s for s in schemes), (name, schemes)
    assert {k["term"] for k in EXTENSIONS["platform"]["kinds"]} == {"application", "component", "componentlink"}
    assert {k["term"] for k in EXTENSIONS["monitoring"]["kinds"]} == {"sensor", "collector"}


def test_every_alias_names_the_module_that_serves_it() -> None:
    owners = {a["alias"]: a["served_by"] for a in CATALOGUE["aliases"]}
    assert owners["http://schemas.ogf.org/occi/sla/agreement/action#accept"] == "sla"
    assert owners["http://schemas.openstack.org/instance/credentials#public_key"] == "egi"
    assert owners["org.openstack.compute.user_data"] == "egi"
    assert owners["http://schemas.ogf.org/occi/infrastructure/compute/template/1.0#small"] == "crtp"
    assert owners["occi.compute.user_data"] == "infrastructure"
    assert owners["deffered"] == "infrastructure"
    assert owners["pending"] == "sla"
