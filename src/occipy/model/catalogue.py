"""OCCI Core and Infrastructure 1.2 categories, built from the spec catalogue (GFD.221, GFD.224, GFD.222).

`standard_registry()` gives a registry with the three Core kinds and the categories and input
aliases of the chosen extensions (`occipy.model.extensions`: Infrastructure, CRTP, Platform,
SLA, Monitoring, EGI). Provider templates (os_tpl, resource_tpl children) come from the driver.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from occipy.model._catalogue_data import CATALOGUE
from occipy.model.category import Action, AttributeDef, Kind, Mixin
from occipy.model.registry import CORE, ENTITY, LINK, RESOURCE

INFRA = "http://schemas.ogf.org/occi/infrastructure#"
COMPUTE = INFRA + "compute"
STORAGE = INFRA + "storage"
NETWORK = INFRA + "network"
STORAGELINK = INFRA + "storagelink"
NETWORKINTERFACE = INFRA + "networkinterface"
OS_TPL = INFRA + "os_tpl"
RESOURCE_TPL = INFRA + "resource_tpl"
IPNETWORK = "http://schemas.ogf.org/occi/infrastructure/network#ipnetwork"
IPNETWORKINTERFACE = "http://schemas.ogf.org/occi/infrastructure/networkinterface#ipnetworkinterface"
SSH_KEY = "http://schemas.ogf.org/occi/infrastructure/credentials#ssh_key"
USER_DATA = "http://schemas.ogf.org/occi/infrastructure/compute#user_data"
COMPUTE_ACTION = "http://schemas.ogf.org/occi/infrastructure/compute/action#"
NETWORK_ACTION = "http://schemas.ogf.org/occi/infrastructure/network/action#"
STORAGE_ACTION = "http://schemas.ogf.org/occi/infrastructure/storage/action#"
DRAFT_04 = "http://json-schema.org/draft-04/schema#"

# OCCI 1.1 attributes that 1.2 removed and that are accepted on input and dropped
# (infrastructure.md §10). Empty since D-SPEED: `occi.compute.speed` is declared instead.
LEGACY_IGNORED_ATTRIBUTES: frozenset[str] = frozenset()
# docs/decisions.md D-SPEED: OCCI 1.1 attributes the compute kind still declares, from the
# catalogue's `optional_attributes` (status legacy): rOCCI-core 5, OCCIware and erocci declare
# `occi.compute.speed` (optional, mutable, Float GHz), and 1.1 clients look for it in discovery.
LEGACY_DECLARED_ATTRIBUTES = frozenset({"occi.compute.speed"})

# docs/decisions.md D-LEGACY-STORAGE: the OCCI 1.1 storage actions (GFD.184 §3.3) that 1.2 dropped,
# served with their 1.1 identifiers (infrastructure.md §6 "legacy profile"). They are allowed in
# `online` and `offline` and leave the state as it is: the 1.1 states (backup, snapshot, resize,
# degraded) are never shown.
STORAGE_BACKUP = STORAGE_ACTION + "backup"
STORAGE_SNAPSHOT = STORAGE_ACTION + "snapshot"
STORAGE_RESIZE = STORAGE_ACTION + "resize"
LEGACY_STORAGE_ACTIONS = (STORAGE_BACKUP, STORAGE_SNAPSHOT, STORAGE_RESIZE)
# Actions that are an update of the entity: action parameter -> attribute it sets. "map a
# `resize` action to an update of `occi.storage.size`" (infrastructure.md §6): it runs as that
# update would (same checks, same 501 from a cloud that cannot resize).
ACTION_UPDATES: Mapping[str, Mapping[str, str]] = {STORAGE_RESIZE: {"size": "occi.storage.size"}}

GIB_PER_PIB = 1024 * 1024
# docs/decisions.md D-RANGES: the spec's ranges and sane maxima, as draft-04 JSON-Schema keywords
# added to the catalogue's pattern. Values outside -> 400 naming the attribute. Maxima keep
# numbers within what clouds accept and what every rendering writes as a plain decimal.
RANGES: Mapping[str, Mapping[str, Any]] = {
    # GFD.224 §3.1 "number of virtual CPU cores"; > 0 (OCCIware `Core` type); 4096 vCPUs is above
    # what any hypervisor offers one guest today.
    "occi.compute.cores": {"type": "integer", "minimum": 1, "maximum": 4096},
    # GFD.224 §3.1 RAM in GiB, > 0; at most 1 PiB.
    "occi.compute.memory": {"minimum": 0, "exclusiveMinimum": True, "maximum": GIB_PER_PIB},
    # GFD.184 §3.1 clock in GHz, > 0; the maximum also lets through a value given in MHz by mistake.
    "occi.compute.speed": {"minimum": 0, "exclusiveMinimum": True, "maximum": 1_000_000},
    # GFD.224 §3.1 relative CPU shares, >= 0; at most a signed 32-bit integer (libvirt, cgroups).
    "occi.compute.share": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
    # GFD.224 §3.3 size in GiB, > 0; at most 1 PiB for one volume.
    "occi.storage.size": {"minimum": 0, "exclusiveMinimum": True, "maximum": GIB_PER_PIB},
    "occi.compute.ephemeral_storage.size": {"minimum": 0, "exclusiveMinimum": True, "maximum": GIB_PER_PIB},
    # IEEE 802.1Q: a 12-bit VLAN id.
    "occi.network.vlan": {"type": "integer", "minimum": 0, "maximum": 4095},
}

# core.md §3.4: the attribute definitions of the three Core kinds.
CORE_KINDS = (
    Kind(
        scheme=CORE, term="entity", title="Entity",
        attributes=(
            AttributeDef("occi.core.id", mutable=False, required=True,
                         description="Unique identifier of the entity"),
            AttributeDef("occi.core.title", description="Display name of the entity"),
        ),
    ),
    Kind(
        scheme=CORE, term="resource", title="Resource", parent=ENTITY, location="/resource/",
        attributes=(AttributeDef("occi.core.summary", description="Summary of the resource"),),
    ),
    Kind(
        scheme=CORE, term="link", title="Link", parent=ENTITY, location="/link/",
        attributes=(
            AttributeDef("occi.core.source", required=True, description="Location of the source resource"),
            AttributeDef("occi.core.target", required=True, description="Location of the target"),
            AttributeDef("occi.core.target.kind", description="Kind of the target"),
        ),
    ),
)


def attribute_from_catalogue(spec: Mapping[str, Any]) -> AttributeDef:
    """Translate one catalogue attribute into a definition with a JSON-Schema `pattern`."""
    kind = spec["type"]
    schema: dict[str, Any] = {"$schema": DRAFT_04}
    if kind == "integer":
        schema["type"] = "integer"
    elif spec["json_type"] == "string":
        schema["type"] = "string"
    if spec.get("enum"):
        schema["enum"] = list(spec["enum"])
    elif spec.get("pattern"):
        schema["pattern"] = spec["pattern"]
    if kind == "ip_address":
        schema["format"] = "ip-address"
    elif kind == "ip_network":
        schema["format"] = "ip-network"
    elif kind == "datetime":
        schema["format"] = "date-time"
    elif kind in ("uri", "url"):
        schema["format"] = "uri"
    if spec.get("minimum") is not None:
        schema["minimum"] = spec["minimum"]
    if spec.get("maximum") is not None:
        schema["maximum"] = spec["maximum"]
    schema.update(RANGES.get(spec["name"], {}))
    # A pattern is kept when it says more than "$schema" and the string type the definition
    # already has (a Float's minimum used to be lost here).
    said = {key for key in schema if key != "$schema" and not (key == "type" and schema[key] == "string")}
    pattern = schema if said else None
    default = spec.get("default")
    if default is not None and kind == "float" and isinstance(default, int):
        default = float(default)
    return AttributeDef(
        name=spec["name"],
        type=spec["json_type"],
        mutable=bool(spec["mutable"]),
        required=bool(spec["required"]),
        pattern=pattern,
        default=default,
        description=spec.get("description"),
        write_once=bool(spec.get("write_once")),
    )


# docs/decisions.md D-ARCH: GFD.224 names two architectures (x86, x64), but clouds run others
# (aarch64, ppc64le, s390x) and clients send what their provider offers (pOCCI sends "arch").
# The attribute is therefore an open token: any single word; the driver refuses what it cannot run.
OPEN_ENUMS: Mapping[str, Mapping[str, Any]] = {
    "occi.compute.architecture": {"$schema": DRAFT_04, "type": "string", "pattern": "^\\S+$"},
}


def _attributes(specs: list[Mapping[str, Any]]) -> tuple[AttributeDef, ...]:
    result = []
    for spec in specs:
        adef = attribute_from_catalogue(spec)
        override = OPEN_ENUMS.get(adef.name)
        if override is not None:
            adef = AttributeDef(name=adef.name, type=adef.type, mutable=adef.mutable, required=adef.required,
                                pattern=override, default=adef.default,
                                description=(adef.description or "") + " (x86 or x64 per GFD.224; other provider architectures by name)",
                                write_once=adef.write_once)
        result.append(adef)
    return tuple(result)


def infrastructure_categories() -> list[Kind | Mixin | Action]:
    """Every served category of the catalogue, in an order the registry can add them."""
    result: list[Kind | Mixin | Action] = []
    served_actions: set[str] = set()
    for spec in CATALOGUE["actions"]:
        served_actions.add(spec["id"])
        result.append(Action(scheme=spec["scheme"], term=spec["term"], title=spec.get("title"),
                             attributes=_attributes(spec["attributes"])))
    for spec in CATALOGUE["kinds"]:
        legacy = [a for a in spec.get("optional_attributes", ()) if a["name"] in LEGACY_DECLARED_ATTRIBUTES]
        # D-LEGACY-STORAGE: the optional actions the catalogue data serves (storage's 1.1 ones).
        optional = tuple(a for a in spec.get("optional_actions", ()) if a in served_actions)
        result.append(Kind(
            scheme=spec["scheme"], term=spec["term"], title=spec.get("title"),
            attributes=_attributes([*spec["attributes"], *legacy]),
            actions=(*spec.get("actions", ()), *optional),
            parent=spec["parent"], location=spec["location"],
        ))
    mixins = [spec for spec in CATALOGUE["mixins"]]
    # Parents first: a mixin can only depend on mixins already registered.
    mixins.sort(key=lambda spec: len(spec.get("depends", ())))
    for spec in mixins:
        result.append(Mixin(
            scheme=spec["scheme"], term=spec["term"], title=spec.get("title"),
            attributes=_attributes(spec.get("attributes", [])), actions=tuple(spec.get("actions", ())),
            depends=tuple(spec.get("depends", ())), applies=tuple(spec.get("applies", ())),
            location=spec["location"],
        ))
    return result


__all__ = [
    "ACTION_UPDATES",
    "COMPUTE",
    "ENTITY",
    "IPNETWORK",
    "IPNETWORKINTERFACE",
    "LEGACY_DECLARED_ATTRIBUTES",
    "LEGACY_IGNORED_ATTRIBUTES",
    "LEGACY_STORAGE_ACTIONS",
    "LINK",
    "NETWORK",
    "NETWORKINTERFACE",
    "OS_TPL",
    "RANGES",
    "RESOURCE",
    "RESOURCE_TPL",
    "SSH_KEY",
    "STORAGE",
    "STORAGELINK",
    "STORAGE_BACKUP",
    "STORAGE_RESIZE",
    "STORAGE_SNAPSHOT",
    "USER_DATA",
]
