"""The domain rules of `occipy.model.rules`, on the standard registry: what the server and the SDK
both enforce (attribute and parameter checks, defaults, required attributes, mixin association,
action resolution, class-less categories)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from occipy.errors import (
    BadRequest,
    Conflict,
    ImmutableAttribute,
    InvalidAttribute,
    MixinNotApplicable,
    UnknownCategory,
)
from occipy.model import rules
from occipy.model.catalogue import (
    COMPUTE,
    NETWORK,
    OS_TPL,
    RESOURCE_TPL,
    SSH_KEY,
    STORAGE,
    STORAGELINK,
)
from occipy.model.category import Mixin
from occipy.model.registry import Registry
from occipy.model.standard import standard_registry

REGISTRY = standard_registry()
ACTION = "http://schemas.ogf.org/occi/infrastructure/compute/action#"
SMALL = "http://schemas.ogf.org/occi/infrastructure/compute/template/1.1#small"
LARGE = "http://schemas.ogf.org/occi/infrastructure/compute/template/1.1#large"


def _with_templates() -> Registry:
    registry = standard_registry()
    for term in ("debian", "alpine"):
        registry.add(Mixin(scheme="http://p/os_tpl#", term=term, depends=(OS_TPL,), applies=(COMPUTE,),
                           location=f"/os/{term}/"))
    return registry


def _check(values: dict[str, object], *, current: dict[str, object] | None = None, kind: str = COMPUTE,
           mixins: tuple[str, ...] = (), lenient: bool = False) -> rules.CheckedAttributes:
    return rules.check_attributes(REGISTRY, kind, mixins, values, current=current, lenient=lenient)


# ---- attributes -------------------------------------------------------------------------------

def test_valid_values_are_coerced() -> None:
    checked = _check({"occi.compute.cores": "2", "occi.compute.memory": "1.5", "occi.core.title": "vm"},
                     lenient=True)
    assert checked.values == {"occi.compute.cores": 2, "occi.compute.memory": 1.5, "occi.core.title": "vm"}
    assert checked.ignored == ()


def test_unknown_attribute_is_named() -> None:
    with pytest.raises(InvalidAttribute, match="attribute occi.compute.colour: not defined for compute"):
        _check({"occi.compute.colour": "red"})
    with pytest.raises(InvalidAttribute, match="not defined for compute with small"):
        _check({"com.example.x": 1}, mixins=(SMALL,))


@pytest.mark.spec("C-04")
def test_immutable_attributes() -> None:
    # at creation: ignored (D-IMMUTABLE), except a proposed occi.core.id
    checked = _check({"occi.compute.state": "active", "occi.core.id": "urn:uuid:1"})
    assert checked.values == {"occi.core.id": "urn:uuid:1"}
    assert checked.ignored == ("occi.compute.state",)
    # on update: unchanged is dropped, changed is 403
    current = {"occi.compute.state": "active", "occi.core.id": "x"}
    assert _check({"occi.compute.state": "active", "occi.core.id": "x"}, current=current).values == {}
    with pytest.raises(ImmutableAttribute, match="occi.compute.state"):
        _check({"occi.compute.state": "inactive"}, current=current)
    # an invalid value is refused even where it would be ignored
    with pytest.raises(InvalidAttribute, match="occi.compute.state"):
        _check({"occi.compute.state": "flying"})


def test_write_once_attribute() -> None:
    user_data = "http://schemas.ogf.org/occi/infrastructure/compute#user_data"
    assert _check({"occi.compute.userdata": "x"}, mixins=(user_data,)).values == {"occi.compute.userdata": "x"}
    current = {"occi.compute.userdata": "x"}
    assert _check({"occi.compute.userdata": "x"}, mixins=(user_data,), current=current).values == {
        "occi.compute.userdata": "x"}
    with pytest.raises(Conflict, match="only be supplied once"):
        _check({"occi.compute.userdata": "y"}, mixins=(user_data,), current=current)


def test_echoed_attributes_are_dropped() -> None:
    assert _check({"occi.core.source.kind": COMPUTE}, kind=STORAGELINK).values == {}


def test_untyped_checks_only_names_and_mutability() -> None:
    # text discovery (GFD.229) carries no types: "lots" cannot be judged, only the name
    checked = rules.check_attributes(REGISTRY, COMPUTE, (), {"occi.compute.memory": "lots"}, current=None,
                                     typed=False)
    assert checked.values == {"occi.compute.memory": "lots"}
    with pytest.raises(InvalidAttribute, match="not defined"):
        rules.check_attributes(REGISTRY, COMPUTE, (), {"x.y": 1}, current=None, typed=False)
    with pytest.raises(InvalidAttribute, match="not a JSON value"):
        rules.check_attributes(REGISTRY, COMPUTE, (), {"occi.compute.memory": None}, current=None, typed=False)


@pytest.mark.parametrize(("name", "value"), [
    ("occi.compute.memory", -1), ("occi.compute.memory", 0), ("occi.compute.memory", -0.0),
    ("occi.compute.memory", 1024**2 + 1), ("occi.compute.cores", 0), ("occi.compute.cores", 4097),
    ("occi.compute.cores", 1e308), ("occi.compute.cores", 2.5), ("occi.compute.share", -1),
    ("occi.compute.speed", 0), ("occi.storage.size", -5), ("occi.storage.size", 0),
    ("occi.network.vlan", 4096), ("occi.network.vlan", -1), ("occi.networkinterface.mac", "52:54:00"),
    ("occi.network.address", "10.0.0.0/33"), ("occi.network.gateway", "10.0.0.256"),
])
def test_ranges_and_formats_are_enforced(name: str, value: object) -> None:
    kind = {"compute": COMPUTE, "storage": STORAGE, "network": NETWORK}.get(name.split(".")[1])
    mixins: tuple[str, ...] = ()
    if kind is None:
        kind = "http://schemas.ogf.org/occi/infrastructure#networkinterface"
    if name in ("occi.network.address", "occi.network.gateway"):
        mixins = ("http://schemas.ogf.org/occi/infrastructure/network#ipnetwork",)
    with pytest.raises(InvalidAttribute, match=f"attribute {name}"):
        _check({name: value}, kind=kind, mixins=mixins)


@given(cores=st.integers(1, 4096), memory=st.floats(min_value=1e-3, max_value=1024.0**2),
       share=st.integers(0, 2**31 - 1), speed=st.floats(min_value=0.1, max_value=10.0))
def test_values_inside_the_ranges_pass(cores: int, memory: float, share: int, speed: float) -> None:
    values = {"occi.compute.cores": cores, "occi.compute.memory": memory, "occi.compute.share": share,
              "occi.compute.speed": speed}
    assert _check(values).values == values


def test_defaults_and_required() -> None:
    registry = _with_templates()
    assert rules.defaults_to_fill(registry, COMPUTE, [SMALL], {}) == {
        "occi.compute.cores": 1, "occi.compute.memory": 1.0, "occi.compute.state": "inactive",
        "occi.compute.ephemeral_storage.size": 10.0}
    assert "occi.compute.cores" not in rules.defaults_to_fill(registry, COMPUTE, [SMALL], {"occi.compute.cores": 3})
    link = "http://schemas.ogf.org/occi/core#link"
    with pytest.raises(InvalidAttribute, match="occi.core.source: required by link"):
        rules.check_required(registry, link, [], {})
    rules.check_required(registry, link, [], {}, server_set=["occi.core.source", "occi.core.target"])
    rules.check_required(registry, link, [], {"occi.core.source": "/a", "occi.core.target": "/b"})


# ---- mixins -------------------------------------------------------------------------------------

def test_template_family() -> None:
    registry = _with_templates()
    assert rules.template_family(registry, "http://p/os_tpl#debian") == OS_TPL
    assert rules.template_family(registry, SMALL) == RESOURCE_TPL
    assert rules.template_family(registry, OS_TPL) is None
    assert rules.template_family(registry, SSH_KEY) is None


def test_resolve_mixins() -> None:
    registry = _with_templates()
    debian, alpine = "http://p/os_tpl#debian", "http://p/os_tpl#alpine"
    assert rules.resolve_mixins(registry, COMPUTE, [debian, SMALL, debian], creating=True) == [debian, SMALL]
    # a new template of a family replaces the old one (GFD.224 §3.5)
    assert rules.resolve_mixins(registry, COMPUTE, [alpine, LARGE], existing=[debian, SMALL], creating=False) \
        == [alpine, LARGE]
    with pytest.raises(BadRequest, match="only one os_tpl template"):
        rules.resolve_mixins(registry, COMPUTE, [debian, alpine], creating=True)
    with pytest.raises(UnknownCategory):
        rules.resolve_mixins(registry, COMPUTE, ["http://p/os_tpl#nope"], creating=True)
    with pytest.raises(MixinNotApplicable):
        rules.resolve_mixins(registry, STORAGE, [debian], creating=True)
    with pytest.raises(BadRequest, match="only be associated when the compute is created"):
        rules.resolve_mixins(registry, COMPUTE, [SSH_KEY], existing=[debian], creating=False)
    assert rules.resolve_mixins(registry, COMPUTE, [SSH_KEY], existing=[SSH_KEY], creating=False) == [SSH_KEY]


def test_classify_categories() -> None:
    registry = _with_templates()
    assert rules.classify_categories(registry, None, (), (COMPUTE, "http://p/os_tpl#debian")) == (
        COMPUTE, ("http://p/os_tpl#debian",))
    assert rules.classify_categories(registry, COMPUTE, (SMALL,), (COMPUTE, SMALL)) == (COMPUTE, (SMALL,))
    with pytest.raises(BadRequest, match="more than one Kind"):
        rules.classify_categories(registry, COMPUTE, (), (STORAGE,))
    with pytest.raises(BadRequest, match="action"):
        rules.classify_categories(registry, None, (), (ACTION + "start",))
    with pytest.raises(UnknownCategory, match="unknown category"):
        rules.classify_categories(registry, None, (), ("http://x#y",))


# ---- actions ------------------------------------------------------------------------------------

def test_resolve_action() -> None:
    available = REGISTRY.action_ids(COMPUTE)
    assert rules.resolve_action(REGISTRY, available, "start", None) == ACTION + "start"
    assert rules.resolve_action(REGISTRY, available, "stop", ACTION + "stop") == ACTION + "stop"
    with pytest.raises(BadRequest, match="does not match"):
        rules.resolve_action(REGISTRY, available, "stop", ACTION + "start")
    with pytest.raises(BadRequest, match="no action fly"):
        rules.resolve_action(REGISTRY, available, "fly", None)
    with pytest.raises(BadRequest, match="unknown action"):
        rules.resolve_action(REGISTRY, available, "fly", "http://x#fly")
    up = "http://schemas.ogf.org/occi/infrastructure/network/action#up"
    with pytest.raises(BadRequest, match="not defined for this entity"):
        rules.resolve_action(REGISTRY, available, "up", up)
    with pytest.raises(Conflict, match="ambiguous"):
        rules.resolve_action(REGISTRY, [ACTION + "start", "http://x#start"], "start", None)


@pytest.mark.spec("INF-08")
def test_check_parameters() -> None:
    assert rules.check_parameters(REGISTRY, ACTION + "stop", {}) == {"method": "poweroff"}
    assert rules.check_parameters(REGISTRY, ACTION + "stop", {"method": "graceful"}) == {"method": "graceful"}
    with pytest.raises(InvalidAttribute, match="method"):
        rules.check_parameters(REGISTRY, ACTION + "stop", {"method": "kick"})
    with pytest.raises(InvalidAttribute, match="parameter force: not defined for action stop"):
        rules.check_parameters(REGISTRY, ACTION + "stop", {"force": True})
    assert rules.check_parameters(REGISTRY, ACTION + "start", {}) == {}


def test_same_value() -> None:
    assert rules.same_value(2, 2.0)
    assert not rules.same_value(True, 1)
    assert rules.same_value("a", "a") and not rules.same_value("a", "b")
