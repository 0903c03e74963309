"""The registry (GFD.221 §5.3.9, core.md §2.8, §8): strict building, lookups, kind chains, mixin
closures, the one attribute-merge precedence, and the tolerant `Registry.from_discovery`."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from occipy.errors import BadRequest, Conflict, Forbidden, NotFound, UnknownCategory
from occipy.model.catalogue import CORE_KINDS
from occipy.model.category import Action, AttributeDef, Kind, Mixin
from occipy.model.registry import ENTITY, LINK, RESOURCE, Registry
from occipy.model.standard import standard_registry

EX = "http://example.com/occi#"
THING = EX + "thing"
SUB = EX + "subthing"
GO = "http://example.com/occi/thing/action#go"
BASE = EX + "base"
TOP = EX + "top"


def _registry() -> Registry:
    """Core, a kind `thing` (with an action) and its sub-kind, and two mixins: top depends on base."""
    registry = Registry()
    registry.add_all(CORE_KINDS)
    registry.add(Action(scheme="http://example.com/occi/thing/action#", term="go"))
    registry.add(Kind(scheme=EX, term="thing", parent=RESOURCE, location="/thing/", actions=(GO,),
                      attributes=(AttributeDef("com.example.size", type="number", default=1),
                                  AttributeDef("com.example.colour", default="red"))))
    registry.add(Kind(scheme=EX, term="subthing", parent=THING, location="/subthing/",
                      attributes=(AttributeDef("com.example.colour", mutable=False, default="blue"),)))
    registry.add(Mixin(scheme=EX, term="base", location="/base/",
                       attributes=(AttributeDef("com.example.mode", mutable=False, required=True, default="a"),
                                   AttributeDef("com.example.size", type="number", default=2))))
    registry.add(Mixin(scheme=EX, term="top", location="/top/", depends=(BASE,),
                       attributes=(AttributeDef("com.example.mode", mutable=True, required=False, default="b"),)))
    return registry


# ---- building ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("category", "error", "message"), [
    (Kind(scheme="http://x", term="k", parent=RESOURCE, location="/k/"), BadRequest, "must end with '#'"),
    (Kind(scheme=EX, term="-k", parent=RESOURCE, location="/k/"), BadRequest, "invalid term"),
    (Kind(scheme=EX, term="thing", parent=RESOURCE, location="/other/"), Conflict, "already defined"),
    (Kind(scheme=EX, term="k", parent=RESOURCE, location="/thing/"), Conflict, "already bound"),
    (Kind(scheme=EX, term="k", parent=RESOURCE, location="/-/"), Conflict, "already bound"),
    (Kind(scheme=EX, term="k", parent=RESOURCE, location="k/"), BadRequest, "starts and ends with '/'"),
    (Kind(scheme=EX, term="k", parent=EX + "nope", location="/k/"), BadRequest, "unknown parent"),
    (Kind(scheme=EX, term="k", location="/k/"), BadRequest, "needs a parent"),
    (Kind(scheme=EX, term="k", parent=RESOURCE), BadRequest, "needs a location"),
    (Kind(scheme=EX, term="k", parent=RESOURCE, location="/k/", actions=(EX + "nope",)), BadRequest,
     "unknown action"),
    (Mixin(scheme=EX, term="m", location="/m/", depends=(EX + "nope",)), BadRequest, "unknown mixin"),
    (Mixin(scheme=EX, term="m", location="/m/", applies=(EX + "nope",)), BadRequest, "unknown kind"),
    (Mixin(scheme=EX, term="m"), BadRequest, "needs a location"),
])
def test_add_refuses_inconsistent_categories(category: Kind | Mixin, error: type[Exception], message: str) -> None:
    registry = _registry()
    version = registry.version
    with pytest.raises(error, match=message):
        registry.add(category)
    assert registry.version == version
    assert registry.find(category.type_id) is None or category.term == "thing"


def test_a_user_mixin_may_depend_on_an_unknown_mixin() -> None:
    # docs/decisions.md D-DANGLING-REL: kept, rendered, contributes nothing.
    registry = _registry()
    dangling = "http://example.com/occi/something_else#mixin"
    tag = Mixin(scheme="http://example.com/occi/my_stuff#", term="my_stuff", location="/my_stuff/",
                depends=(dangling,), user_defined=True)
    registry.add(tag)
    assert registry.mixin(tag.type_id).depends == (dangling,)
    assert registry.depends_closure([tag.type_id]) == [tag.type_id, dangling]
    assert registry.attribute_defs(THING, [tag.type_id]) == registry.attribute_defs(THING)
    assert registry.action_ids(THING, [tag.type_id]) == [GO]
    assert registry.remove_mixin(tag.type_id) == tag


def test_remove_mixin_rules() -> None:
    registry = _registry()
    with pytest.raises(Forbidden):
        registry.remove_mixin(BASE)
    with pytest.raises(NotFound):
        registry.remove_mixin(EX + "nope")
    registry.add(Mixin(scheme=EX, term="t1", location="/t1/", user_defined=True))
    registry.add(Mixin(scheme=EX, term="t2", location="/t2/", depends=(EX + "t1",), user_defined=True))
    with pytest.raises(Conflict, match="depends on"):
        registry.remove_mixin(EX + "t1")
    registry.remove_mixin(EX + "t2")
    registry.remove_mixin(EX + "t1")
    assert registry.by_location("/t1/") is None


# ---- lookups ----------------------------------------------------------------------------------

def test_lookups_and_aliases() -> None:
    registry = _registry()
    registry.add_alias(EX + "old-thing", THING)
    assert registry.kind(EX + "old-thing").type_id == THING
    assert registry.is_kind(EX + "old-thing") and not registry.is_mixin(THING)
    assert registry.is_action(GO) and registry.action(GO).term == "go"
    assert registry.by_location("/base/") == registry.mixin(BASE)
    for lookup in (registry.kind, registry.mixin, registry.action):
        with pytest.raises(UnknownCategory):
            lookup(EX + "nope")
    registry.add_attribute_alias("com.example.colour2", "com.example.colour")
    registry.add_value_alias("crimson", "red")
    assert registry.canonical_attribute("com.example.colour2") == "com.example.colour"
    assert registry.canonical_value("crimson") == "red"
    assert registry.canonical_value("blue") == "blue"


def test_kind_chain_and_link_kinds() -> None:
    registry = _registry()
    assert registry.ancestors(SUB) == (SUB, THING, RESOURCE, ENTITY)
    assert registry.is_resource_kind(SUB) and not registry.is_link_kind(SUB)
    assert registry.is_link_kind(LINK)
    assert registry.applies_to(BASE, SUB)
    assert registry.depends_on(TOP, BASE) and not registry.depends_on(BASE, TOP)


def test_applies_covers_sub_kinds() -> None:
    registry = _registry()
    registry.add(Mixin(scheme=EX, term="only-things", location="/only/", applies=(THING,)))
    assert registry.applies_to(EX + "only-things", SUB)
    assert not registry.applies_to(EX + "only-things", LINK)


# ---- the one attribute precedence (core.md §2.8) ---------------------------------------------------

def test_definitions_come_from_the_first_category_in_effective_order() -> None:
    registry = _registry()
    # A kind beats its parents for the definition; its own default too.
    colour = registry.attribute_defs(SUB)["com.example.colour"]
    assert (colour.mutable, colour.default) == (False, "blue")


def test_a_mixin_beats_the_mixin_it_depends_on() -> None:
    """Regression: the server registry and the SDK's copy disagreed here.

    `top` depends on `base`; both define com.example.mode. In core.md §8 order (a mixin, then
    depth first what it depends on) `top` comes first, so its flags win: mutable and optional.
    The SDK walked the closure backwards and took `base`'s flags (immutable, required), so it
    refused a value the server accepts.
    """
    registry = _registry()
    mode = registry.attribute_defs(THING, [TOP])["com.example.mode"]
    assert (mode.mutable, mode.required, mode.default) == (True, False, "b")
    alone = registry.attribute_defs(THING, [BASE])["com.example.mode"]
    assert (alone.mutable, alone.required, alone.default) == (False, True, "a")


def test_defaults_most_specific_wins() -> None:
    registry = _registry()
    # kind default 1, base mixin default 2: any mixin beats the kind
    assert registry.attribute_defs(THING)["com.example.size"].default == 1
    assert registry.attribute_defs(THING, [BASE])["com.example.size"].default == 2
    assert registry.attribute_defs(THING, [TOP])["com.example.size"].default == 2
    # but the definition (type, flags) stays the kind's
    assert registry.attribute_defs(THING, [BASE])["com.example.size"].mutable
    # a later mixin beats an earlier one
    registry.add(Mixin(scheme=EX, term="other", location="/other/",
                       attributes=(AttributeDef("com.example.mode", default="c"),)))
    assert registry.attribute_defs(THING, [TOP, EX + "other"])["com.example.mode"].default == "c"
    assert registry.attribute_defs(THING, [EX + "other", TOP])["com.example.mode"].default == "b"


def test_render_order_is_entity_first_then_sub_types_then_mixins() -> None:
    names = list(_registry().attribute_defs(SUB, [TOP]))
    assert names[:3] == ["occi.core.id", "occi.core.title", "occi.core.summary"]
    assert names.index("com.example.size") < names.index("com.example.mode")


def test_action_ids_follow_the_chain_and_the_closure() -> None:
    registry = _registry()
    registry.add(Action(scheme=EX + "a#", term="poke"))
    registry.add(Mixin(scheme=EX, term="poker", location="/poker/", actions=(EX + "a#poke",), depends=(TOP,)))
    assert registry.action_ids(SUB) == [GO]
    assert registry.action_ids(SUB, [EX + "poker"]) == [GO, EX + "a#poke"]


def test_the_standard_registry_is_consistent() -> None:
    registry = standard_registry()
    assert registry.dangling_references() == []
    assert registry.discovery_notes == []
    compute = "http://schemas.ogf.org/occi/infrastructure#compute"
    assert "occi.compute.speed" in registry.kind_attribute_defs(compute)


# ---- from discovery: tolerant ---------------------------------------------------------------------

def test_from_discovery_tolerates_what_real_servers_send() -> None:
    categories = [
        # a kind before its parent, a parent never listed, a duplicate, no locations
        Kind(scheme=EX, term="sub", parent=THING, location="/sub/"),
        Kind(scheme=EX, term="thing", parent=RESOURCE, actions=(GO,),
             attributes=(AttributeDef("com.example.size"),)),
        Kind(scheme=EX, term="thing", parent=RESOURCE, location="/dup/"),
        Mixin(scheme=EX, term="tpl", depends=(EX + "never-listed",), applies=(EX + "sub",)),
        Mixin(scheme=EX, term="tpl2", location="/sub/"),  # location already bound
    ]
    registry = Registry.from_discovery(categories)
    assert registry.ancestors(EX + "sub") == (EX + "sub", THING, RESOURCE)
    assert registry.is_resource_kind(EX + "sub")
    assert registry.kind(THING).location is None  # the first definition is kept
    assert list(registry.attribute_defs(EX + "sub", [EX + "tpl"])) == ["com.example.size"]
    assert registry.action_ids(EX + "sub") == [GO]
    assert registry.by_location("/sub/") == registry.kind(EX + "sub")
    assert registry.dangling_references() == [GO, RESOURCE, EX + "never-listed"]
    assert len(registry.discovery_notes) == 2
    assert any("listed twice" in note for note in registry.discovery_notes)


def test_from_discovery_survives_a_parent_cycle() -> None:
    registry = Registry.from_discovery([
        Kind(scheme=EX, term="a", parent=EX + "b"), Kind(scheme=EX, term="b", parent=EX + "a")])
    assert registry.ancestors(EX + "a") == (EX + "a", EX + "b")


@given(st.permutations([*CORE_KINDS, *standard_registry().categories()]))
def test_from_discovery_does_not_depend_on_order(categories: list[Kind | Mixin | Action]) -> None:
    registry = Registry.from_discovery(categories)
    reference = standard_registry()
    compute = "http://schemas.ogf.org/occi/infrastructure#compute"
    assert registry.attribute_defs(compute) == reference.attribute_defs(compute)
    assert registry.action_ids(compute) == reference.action_ids(compute)
