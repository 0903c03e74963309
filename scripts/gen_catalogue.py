"""Generate src/occipy/model/_catalogue_data.py from the spec catalogue.

The model does no I/O, so the parts of `../shared/spec/catalogue.json` the server serves are
frozen into Python literals:

* `CATALOGUE`: Infrastructure (GFD.224) and the CRTP profile (GFD.222), read by
  `occipy.model.catalogue`; its `aliases` are every catalogue alias, each tagged with the
  extension module that serves it (`served_by`).
* `EXTENSIONS`: per extension module of `occipy.model.extensions` (platform, sla, monitoring,
  egi), the kinds, mixins, actions and state machines it serves (docs/extensions.md).

A test (tests/unit/model/extensions/test_catalogue_data.py) checks that the file is in sync.
Usage: python scripts/gen_catalogue.py [path/to/catalogue.json]
"""

from __future__ import annotations

import json
import pprint
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT.parent / "shared" / "spec" / "catalogue.json"
OUT = ROOT / "src" / "occipy" / "model" / "_catalogue_data.py"
SERVED = {"infrastructure", "crtp"}
STATUSES = {"normative", "profile"}

OGF_INFRA = "http://schemas.ogf.org/occi/infrastructure#"
# EGI / rOCCI infrastructure extensions (monitoring-and-extensions.md §4, §6): only these are
# served; the FedCloud network tags, AppDB attributes and OpenStack mixins are not.
EGI_IDS = frozenset({
    OGF_INFRA + "securitygroup",
    OGF_INFRA + "securitygrouplink",
    OGF_INFRA + "ipreservation",
    OGF_INFRA + "availability_zone",
    OGF_INFRA + "region",
    "http://schemas.openstack.org/network#floatingippool",
    "http://schemas.ogf.org/occi/infrastructure/ipreservation/action#up",
    "http://schemas.ogf.org/occi/infrastructure/ipreservation/action#down",
})

Category = dict[str, Any]
# extension module -> which catalogue categories it serves. The OGF documents win over the
# vendor variants of the same categories (MoDMaCAO platform, OCCIware monitoring ext).
EXTENSION_FILTERS: dict[str, Callable[[Category], bool]] = {
    "platform": lambda c: c.get("extension") == "platform" and c.get("status") == "normative",
    "sla": lambda c: c.get("extension") == "sla" and c.get("status") == "normative",
    "monitoring": lambda c: c.get("extension") == "monitoring" and c.get("status") == "draft",
    "egi": lambda c: c["id"] in EGI_IDS,
}


def served_by(alias: dict[str, Any], owners: dict[str, str]) -> str:
    """The extension module that registers one catalogue alias."""
    name = alias["alias"]
    # The OpenStack contextualisation mixins and attributes (EGI's pre-1.2 convention) are
    # aliases of ssh_key/user_data: they come with the EGI module (monitoring-and-extensions.md §5).
    if name.startswith(("http://schemas.openstack.org/", "org.openstack.")):
        return "egi"
    if alias["kind"] == "category":
        return owners.get(alias["canonical"], "infrastructure")
    if alias["kind"] == "enum_value" and ("agreement" in alias["attribute"] or "term" in alias["attribute"]):
        return "sla"
    return "infrastructure"


def extract(catalogue: dict[str, Any]) -> dict[str, Any]:
    def served(cat: Category) -> bool:
        return cat.get("extension") in SERVED and cat.get("status") in STATUSES

    kinds = [k for k in catalogue["kinds"] if served(k)]
    mixins = [m for m in catalogue["mixins"] if served(m)]
    # docs/decisions.md D-LEGACY-STORAGE: the OCCI 1.1 actions (status legacy) a served kind lists
    # as optional are served too (storage backup, snapshot, resize), never the 1.1 states. The
    # non-standard link actions (networkinterface up/down, storagelink online/offline) are not.
    optional = {action_id for k in kinds for action_id in k.get("optional_actions", ())}
    actions = [a for a in catalogue["actions"]
               if served(a) or (a["id"] in optional and a.get("status") == "legacy")]
    kind_ids = {k["id"] for k in kinds}
    # Only the 1.2 diagrams: the OCCI 1.1 storage machine (status legacy) is not served.
    machines = [s for s in catalogue["state_machines"] if s["entity"] in kind_ids and s["status"] in STATUSES]
    owners = {c["id"]: c["extension"] for c in kinds + mixins + actions}
    extensions: dict[str, Any] = {}
    for name, keep in EXTENSION_FILTERS.items():
        own = {key: [c for c in catalogue[key] if keep(c)] for key in ("kinds", "mixins", "actions")}
        ids = {c["id"] for key in own for c in own[key]}
        for c in own["kinds"] + own["mixins"] + own["actions"]:
            owners[c["id"]] = name
        own["state_machines"] = [s for s in catalogue["state_machines"] if s["entity"] in ids]
        extensions[name] = own
    aliases = [{**alias, "served_by": served_by(alias, owners)} for alias in catalogue["aliases"]]
    return {
        "catalogue": {"kinds": kinds, "mixins": mixins, "actions": actions, "state_machines": machines,
                      "aliases": aliases},
        "extensions": extensions,
    }


def render(data: dict[str, Any]) -> str:
    return (
        '"""Generated by scripts/gen_catalogue.py from the spec catalogue: do not edit."""\n\n'
        "from typing import Any\n\n"
        f"CATALOGUE: dict[str, Any] = {pprint.pformat(data['catalogue'], width=110, sort_dicts=False)}\n\n"
        f"EXTENSIONS: dict[str, Any] = {pprint.pformat(data['extensions'], width=110, sort_dicts=False)}\n"
    )


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    data = extract(json.loads(source.read_text()))
    OUT.write_text(render(data))
    counts = ", ".join(f"{name} {sum(len(v[k]) for k in ('kinds', 'mixins', 'actions'))}"
                       for name, v in data["extensions"].items())
    core = data["catalogue"]
    print(f"wrote {OUT} ({len(core['kinds'])} kinds, {len(core['mixins'])} mixins, {len(core['actions'])} actions; "
          f"extensions: {counts})")


if __name__ == "__main__":
    main()
