"""The OCCI driver's mapping: driver values <-> a remote OCCI site's categories and attributes.

Pure functions over what the remote's query interface announced (`occipy.client.Model`) and the
entities it renders: which resource types, actions, live updates and templates the remote
offers, the request that creates an object for a spec, the state word and typed facts an entity
stands for, and the ownership tag written on remote objects. No I/O; `backends/occi.py` does the
calls. docs/drivers/occi.md has the mapping table. Imports backends.base, errors and the SDK's
value types (the driver is the SDK's only user among the drivers).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Final

from occipy.backends import base as b
from occipy.client import Entity, Model
from occipy.errors import BackendError, NotSupported

INFRA: Final = "http://schemas.ogf.org/occi/infrastructure#"
# The Infrastructure kinds (GFD.224 §3), the same type ids in OCCI 1.1 (GFD.184) and 1.2.
KINDS: Final[Mapping[str, str]] = {
    b.COMPUTE: INFRA + "compute",
    b.STORAGE: INFRA + "storage",
    b.NETWORK: INFRA + "network",
    b.STORAGELINK: INFRA + "storagelink",
    b.NETWORKINTERFACE: INFRA + "networkinterface",
}
LINKS: Final = frozenset({b.STORAGELINK, b.NETWORKINTERFACE})
OS_TPL: Final = INFRA + "os_tpl"
RESOURCE_TPL: Final = INFRA + "resource_tpl"
FAMILY_PARENT: Final[Mapping[str, str]] = {b.IMAGE: OS_TPL, b.FLAVOUR: RESOURCE_TPL}
IPNETWORK: Final = "http://schemas.ogf.org/occi/infrastructure/network#ipnetwork"
IPNETWORKINTERFACE: Final = "http://schemas.ogf.org/occi/infrastructure/networkinterface#ipnetworkinterface"
SSH_KEY: Final = "http://schemas.ogf.org/occi/infrastructure/credentials#ssh_key"
USER_DATA: Final = "http://schemas.ogf.org/occi/infrastructure/compute#user_data"

# The actions of each type (GFD.224 §3.1-3.3), by driver action name, and the state each leads to.
ACTION_SCHEMES: Final[Mapping[str, str]] = {
    b.COMPUTE: "http://schemas.ogf.org/occi/infrastructure/compute/action#",
    b.STORAGE: "http://schemas.ogf.org/occi/infrastructure/storage/action#",
    b.NETWORK: "http://schemas.ogf.org/occi/infrastructure/network/action#",
}
ACTIONS: Final[Mapping[str, frozenset[str]]] = {
    b.COMPUTE: frozenset({"start", "stop", "restart", "suspend", "save"}),
    b.STORAGE: frozenset({"online", "offline"}),
    b.NETWORK: frozenset({"up", "down"}),
}
TARGET_STATE: Final[Mapping[str, str]] = {
    "start": b.ACTIVE, "stop": b.INACTIVE, "restart": b.ACTIVE, "suspend": b.SUSPENDED,
    "up": b.ACTIVE, "down": b.INACTIVE, "online": b.ONLINE, "offline": b.OFFLINE,
}
CREATED_STATE: Final[Mapping[str, str]] = {
    b.COMPUTE: b.ACTIVE, b.STORAGE: b.ONLINE, b.NETWORK: b.ACTIVE,
    b.STORAGELINK: b.ACTIVE, b.NETWORKINTERFACE: b.ACTIVE,
}
STATE_ATTRIBUTE: Final[Mapping[str, str]] = {resource: f"occi.{resource}.state" for resource in KINDS}
STATES: Final[Mapping[str, frozenset[str]]] = {
    b.COMPUTE: frozenset({b.ACTIVE, b.INACTIVE, b.SUSPENDED, b.ERROR}),
    b.STORAGE: frozenset({b.ONLINE, b.OFFLINE, b.ERROR}),
    b.NETWORK: frozenset({b.ACTIVE, b.INACTIVE, b.ERROR}),
    b.STORAGELINK: frozenset({b.ACTIVE, b.INACTIVE, b.ERROR}),
    b.NETWORKINTERFACE: frozenset({b.ACTIVE, b.INACTIVE, b.ERROR}),
}
# OCCI 1.1 storage states (GFD.184 §3.3) that 1.2 dropped, read as the nearest 1.2 state; the
# remote's own word goes into the message. Any other unknown word is read as the type's
# "not running" state (inactive, offline), also with the word in the message.
_NEAREST: Final[Mapping[str, Mapping[str, str]]] = {
    b.STORAGE: {"backup": b.ONLINE, "snapshot": b.ONLINE, "resize": b.ONLINE, "degraded": b.ERROR},
}
_IDLE: Final[Mapping[str, str]] = {
    b.COMPUTE: b.INACTIVE, b.STORAGE: b.OFFLINE, b.NETWORK: b.INACTIVE,
    b.STORAGELINK: b.INACTIVE, b.NETWORKINTERFACE: b.INACTIVE,
}

# ---- the ownership tag -------------------------------------------------------------------------------

# `[occipy:<installation tag>:<entity id>]` at the end of the remote object's occi.core.summary
# (resources) or occi.core.title (links, which have no summary): it says which occipy installation
# made the object and for which entity, so that `inventory()` finds objects a crash left behind
# and never claims another installation's.
TAG_RE: Final = re.compile(r"\[occipy:([A-Za-z0-9_.-]+):([^\]\s]+)\]\s*\Z")
SUMMARY: Final = "occi.core.summary"
TITLE: Final = "occi.core.title"


def tag_text(tag: str, entity_id: str) -> str:
    return f"[occipy:{tag}:{entity_id}]"


def tagged_entity_id(tag: str, entity: Entity) -> str | None:
    """The local entity id a remote object carries in this installation's tag, if any."""
    for name in (SUMMARY, TITLE):
        value = entity.attributes.get(name)
        if isinstance(value, str):
            match = TAG_RE.search(value)
            if match is not None and match.group(1) == tag:
                return match.group(2)
    return None


# ---- what the remote offers --------------------------------------------------------------------------


def supports_of(model: Model, templates: Collection[b.Template]) -> dict[str, b.Support]:
    """The resource types, actions and live updates the remote announces (GFD.223 §9 discovery).

    A type is supported when the remote has its kind with a collection; an action when the kind
    lists it; a live update when the remote declares the attribute mutable (resize) or offers a
    template of the family (template replacement, GFD.224 §3.5). Links need both kinds of ends.
    """
    supports: dict[str, b.Support] = {}
    for resource, kind_id in KINDS.items():
        kind = model.kinds.get(kind_id)
        if kind is None or not kind.location:
            continue
        offered = set(model.action_ids(kind_id))
        scheme = ACTION_SCHEMES.get(resource, "")
        actions = frozenset(name for name in ACTIONS.get(resource, ()) if scheme + name in offered)
        supports[resource] = b.Support(actions=actions, updates=_updates(model, resource, templates))
    for link, target in ((b.STORAGELINK, b.STORAGE), (b.NETWORKINTERFACE, b.NETWORK)):
        if link in supports and not {b.COMPUTE, target} <= set(supports):
            del supports[link]
    return supports


def _updates(model: Model, resource: str, templates: Collection[b.Template]) -> frozenset[str]:
    defs = model.attribute_defs(KINDS[resource])

    def mutable(name: str) -> bool:
        adef = defs.get(name)
        return adef is not None and adef.mutable

    if resource == b.STORAGE:
        return frozenset({"size_gib"} if mutable("occi.storage.size") else ())
    if resource != b.COMPUTE:
        return frozenset()
    fields = {field_name for name, field_name in (("occi.compute.cores", "cores"),
                                                  ("occi.compute.memory", "memory_gib"),
                                                  ("occi.compute.architecture", "architecture"))
              if mutable(name)}
    families = {t.family for t in templates}
    if b.IMAGE in families:
        fields.add("image")
    if b.FLAVOUR in families:
        fields.add("flavour")
    return frozenset(fields)


@dataclass(frozen=True, slots=True)
class Offered:
    """The remote's templates as driver templates, with the remote mixin each stands for."""

    templates: tuple[b.Template, ...] = ()
    mixins: Mapping[tuple[str, str], str] = field(default_factory=dict)  # (family, name) -> type id

    def mixin(self, family: str, name: str) -> str:
        try:
            return self.mixins[(family, name)]
        except KeyError:
            what = "image" if family == b.IMAGE else "flavour"
            offered = ", ".join(t.name for t in self.templates if t.family == family) or "none"
            raise BackendError(f"the OCCI site offers no {what} {name!r} (it offers: {offered})") from None


def templates_of(model: Model, skip: Collection[str] = ()) -> Offered:
    """The remote's os_tpl and resource_tpl children (GFD.224 §3.5) as images and flavours.

    The name is the remote's term (unique per family: a term two schemes share gets `-2`, `-3`
    in type id order); sizes come from the mixin's attribute defaults, which only the JSON
    rendering carries. Mixins in `skip` (the templates occipy defines itself, e.g. CRTP's
    `small`) are left out: the local server sizes those and sends the sizes.
    """
    templates: list[b.Template] = []
    mixins: dict[tuple[str, str], str] = {}
    for type_id in sorted(model.mixins):
        mixin = model.mixins[type_id]
        if type_id in skip or type_id in FAMILY_PARENT.values():
            continue
        closure = model.depends_closure([type_id])[1:]
        family = next((f for f, parent in FAMILY_PARENT.items() if parent in closure), None)
        if family is None:
            continue
        name = mixin.term
        n = 2
        while (family, name) in mixins:
            name = f"{mixin.term}-{n}"
            n += 1
        defaults = {a.name: a.default for a in mixin.attributes if a.default is not None}
        templates.append(b.Template(
            family=family, name=name, title=(mixin.title or mixin.term).strip() or mixin.term,
            cores=_positive_int(defaults.get("occi.compute.cores")),
            memory_gib=_positive_float(defaults.get("occi.compute.memory")),
            architecture=_text(defaults.get("occi.compute.architecture")),
            disk_gib=_positive_float(defaults.get("occi.compute.ephemeral_storage.size")),
        ))
        mixins[(family, name)] = type_id
    return Offered(tuple(templates), mixins)


# ---- creating ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Creation:
    """What to POST to the remote for a spec: kind, mixins, attributes, and a link's ends."""

    resource: str
    kind: str
    mixins: tuple[str, ...] = ()
    attributes: Mapping[str, str | int | float | bool] = field(default_factory=dict)
    source: str | None = None  # links: backend ids of the ends
    target: str | None = None


def creation(spec: object, model: Model, offered: Offered, tag: str) -> Creation:
    """The remote request that creates the object `spec` describes.

    Only attributes the remote defines as mutable are sent (it ignores or refuses the others,
    GFD.223 §11.1); a value needing a mixin the remote lacks is dropped, except credentials and
    contextualisation data, which are refused (NotSupported): a machine must not boot without
    the key it was asked to carry.
    """
    resource = b.resource_of(spec)
    kind = KINDS[resource]
    mixins: list[str] = []
    values: dict[str, str | int | float | bool | None] = {}
    source = target = None
    match spec:
        case b.ComputeSpec():
            if spec.image is not None:
                mixins.append(offered.mixin(b.IMAGE, spec.image))
            if spec.flavour is not None:
                mixins.append(offered.mixin(b.FLAVOUR, spec.flavour))
            values.update({"occi.compute.cores": spec.cores, "occi.compute.memory": spec.memory_gib,
                           "occi.compute.architecture": spec.architecture,
                           "occi.compute.hostname": spec.hostname, "occi.compute.share": spec.share})
            if spec.ssh_public_key is not None:
                mixins.append(_required_mixin(model, SSH_KEY, "SSH keys"))
                values["occi.credentials.ssh.publickey"] = spec.ssh_public_key
            if spec.user_data is not None:
                mixins.append(_required_mixin(model, USER_DATA, "contextualisation data (user_data)"))
                values["occi.compute.userdata"] = base64.b64encode(spec.user_data).decode("ascii")
        case b.StorageSpec():
            values["occi.storage.size"] = spec.size_gib
        case b.NetworkSpec():
            values.update({"occi.network.vlan": spec.vlan, "occi.network.label": spec.label})
            ip = {"occi.network.address": spec.address, "occi.network.gateway": spec.gateway,
                  "occi.network.allocation": spec.allocation}
            if any(v is not None for v in ip.values()) and IPNETWORK in model.mixins:
                mixins.append(IPNETWORK)
                values.update(ip)
        case b.StorageLinkSpec():
            source, target = spec.compute_id, spec.storage_id
            values.update({"occi.storagelink.deviceid": spec.device,
                           "occi.storagelink.mountpoint": spec.mountpoint})
        case b.NetworkInterfaceSpec():
            source, target = spec.compute_id, spec.network_id
            values.update({"occi.networkinterface.interface": spec.interface,
                           "occi.networkinterface.mac": spec.mac})
            ip = {"occi.networkinterface.address": spec.address,
                  "occi.networkinterface.allocation": spec.allocation}
            if any(v is not None for v in ip.values()) and IPNETWORKINTERFACE in model.mixins:
                mixins.append(IPNETWORKINTERFACE)
                values.update(ip)
        case _:  # pragma: no cover - resource_of() accepted a type KINDS does not list
            raise NotSupported(f"the OCCI driver cannot create a {resource}")
    defs = model.attribute_defs(kind, mixins)
    name = str(getattr(spec, "name", "")) or resource
    entity_id = str(getattr(spec, "entity_id", ""))
    tag_in = SUMMARY if resource not in LINKS and _mutable(defs, SUMMARY) else TITLE
    values[TITLE] = name
    if entity_id:
        mark = tag_text(tag, entity_id)
        values[tag_in] = f"{name} {mark}" if tag_in == TITLE else f"managed by occipy {mark}"
    sent = {key: value for key, value in values.items() if value is not None and _mutable(defs, key)}
    return Creation(resource, kind, tuple(mixins), sent, source, target)


def _mutable(defs: Mapping[str, object], name: str) -> bool:
    adef = defs.get(name)
    return adef is not None and bool(getattr(adef, "mutable", False))


def _required_mixin(model: Model, type_id: str, what: str) -> str:
    if type_id not in model.mixins:
        raise NotSupported(f"the OCCI site does not take {what}: it has no mixin {type_id}")
    return type_id


def action_request(resource: str, action: b.Action, model: Model) -> tuple[str, dict[str, str]]:
    """The remote action's type id and parameters (only those the remote's action defines)."""
    type_id = ACTION_SCHEMES.get(resource, "") + action.name
    found = model.actions.get(type_id)
    if found is None or action.name not in ACTIONS.get(resource, ()):
        raise NotSupported(f"the OCCI site has no action {action.name!r} on a {resource}")
    params: dict[str, str] = {}
    method = getattr(action, "method", None)
    if isinstance(method, str) and any(a.name == "method" for a in found.attributes):
        params["method"] = method
    name = getattr(action, "image_name", None)
    if isinstance(name, str) and any(a.name == "name" for a in found.attributes):
        params["name"] = name
    return type_id, params


def update_request(change: b.Update, offered: Offered) -> tuple[dict[str, str | int | float], list[str]]:
    """The attributes and the template mixins a live update sends (GFD.223 §10.3.1 partial update)."""
    attributes: dict[str, str | int | float] = {}
    mixins: list[str] = []
    match change:
        case b.ComputeUpdate():
            for name, value in (("occi.compute.cores", change.cores), ("occi.compute.memory", change.memory_gib),
                                ("occi.compute.architecture", change.architecture)):
                if value is not None:
                    attributes[name] = value
            if change.image is not None:
                mixins.append(offered.mixin(b.IMAGE, change.image))
            if change.flavour is not None:
                mixins.append(offered.mixin(b.FLAVOUR, change.flavour))
        case b.StorageUpdate():
            if change.size_gib is not None:
                attributes["occi.storage.size"] = change.size_gib
    return attributes, mixins


def update_fields(change: b.Update) -> frozenset[str]:
    """The fields an update value sets (the others are None: unchanged)."""
    return frozenset(name for name in change.__dataclass_fields__ if getattr(change, name) is not None)


# ---- reading -----------------------------------------------------------------------------------------


def observed_of(resource: str, backend_id: str, entity: Entity) -> b.Observed:
    """The state word, message and typed facts a remote entity stands for."""
    attributes = entity.attributes
    word = attributes.get(STATE_ATTRIBUTE[resource])
    message = _text(attributes.get(STATE_ATTRIBUTE[resource] + ".message"))
    if not isinstance(word, str) or not word:
        # OCCI 1.1 links and some providers render no state: an object that exists is up.
        state = CREATED_STATE[resource]
    elif word in STATES[resource]:
        state = word
    else:
        state = _NEAREST.get(resource, {}).get(word, _IDLE[resource])
        message = f"the OCCI site reports state {word!r}" + (f": {message}" if message else "")
    return b.Observed(backend_id, state, message, facts_of(resource, attributes))


def facts_of(resource: str, a: Mapping[str, object]) -> object:
    """The typed facts of a remote entity's attributes (numbers may arrive as text from 1.1 sites)."""
    if resource == b.COMPUTE:
        return b.ComputeFacts(cores=_positive_int(a.get("occi.compute.cores")),
                              memory_gib=_positive_float(a.get("occi.compute.memory")),
                              architecture=_text(a.get("occi.compute.architecture")),
                              hostname=_text(a.get("occi.compute.hostname")))
    if resource == b.STORAGE:
        return b.StorageFacts(size_gib=_positive_float(a.get("occi.storage.size")))
    if resource == b.NETWORK:
        return b.NetworkFacts(address=_text(a.get("occi.network.address")),
                              gateway=_text(a.get("occi.network.gateway")),
                              allocation=_text(a.get("occi.network.allocation")))
    if resource == b.STORAGELINK:
        return b.StorageLinkFacts(device=_text(a.get("occi.storagelink.deviceid")),
                                  mountpoint=_text(a.get("occi.storagelink.mountpoint")))
    return b.NetworkInterfaceFacts(interface=_text(a.get("occi.networkinterface.interface")),
                                   mac=_text(a.get("occi.networkinterface.mac")),
                                   address=_text(a.get("occi.networkinterface.address")),
                                   gateway=_text(a.get("occi.networkinterface.gateway")),
                                   allocation=_text(a.get("occi.networkinterface.allocation")))


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _positive_float(value: object) -> float | None:
    number = _number(value)
    return number if number is not None and number > 0 else None


def _positive_int(value: object) -> int | None:
    number = _number(value)
    return int(number) if number is not None and number >= 1 and number.is_integer() else None
