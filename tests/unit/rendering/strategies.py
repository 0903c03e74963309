"""Hypothesis strategies for the renderings: values, categories, entities, and hostile input.

Shared by every rendering test (text, JSON). Generated objects respect the model's rules (terms
and attribute names follow GFD.229 §4, schemes end in '#', every link has a target), so a
renderer must accept them and a parser must give them back.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from occipy.model.catalogue import CORE_KINDS
from occipy.model.category import Action, AttributeDef, Kind, Mixin
from occipy.model.entity import Entity
from occipy.model.registry import RESOURCE, Registry

# ---- names ----------------------------------------------------------------------------------

terms = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,12}", fullmatch=True)
_segment = st.from_regex(r"[a-z0-9][a-z0-9._~-]{0,8}", fullmatch=True)
schemes = st.builds(
    lambda host, path: f"http://{host}.example/{'/'.join(path)}#",
    _segment, st.lists(_segment, min_size=0, max_size=3),
)
type_ids = st.builds(lambda scheme, term: scheme + term, schemes, terms)
# Dotted names always contain a '.', so they never collide with the Link parameters rel/self/category.
attribute_names = st.lists(
    st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True), min_size=2, max_size=4
).map(".".join)
ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,15}", fullmatch=True)
paths = st.lists(_segment, min_size=1, max_size=3).map(lambda parts: "/" + "/".join(parts))
urls = st.builds(lambda host, path: f"https://{host}.example:8443{path}", _segment, paths)
locations = paths | urls

# ---- values ---------------------------------------------------------------------------------

# Any Unicode except lone surrogates (not encodable as UTF-8): quotes, backslashes, commas,
# semicolons, CR/LF/TAB and other controls included - the quoting must survive all of them.
strings = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
floats = st.floats(allow_nan=False, allow_infinity=False)
json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | floats | strings,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(strings, children, max_size=3),
    max_leaves=8,
)
scalar_values = strings | st.booleans() | st.integers() | floats
complex_values = st.lists(json_values, max_size=4) | st.dictionaries(strings, json_values, max_size=4)
attribute_values = scalar_values | complex_values
attribute_dicts = st.dictionaries(attribute_names, attribute_values, max_size=6)

# ---- categories -----------------------------------------------------------------------------

titles = st.none() | strings.filter(bool)
attribute_defs = st.builds(AttributeDef, name=attribute_names, mutable=st.booleans(), required=st.booleans())


def _unique_defs() -> st.SearchStrategy[tuple[AttributeDef, ...]]:
    return st.lists(attribute_defs, max_size=5, unique_by=lambda adef: adef.name).map(tuple)


actions = st.builds(Action, scheme=schemes, term=terms, title=titles, attributes=_unique_defs())


@st.composite
def category_sets(draw: st.DrawFn) -> tuple[Registry, list[Kind | Mixin | Action]]:
    """A registry (Core kinds plus generated ones) and the generated kinds, mixins and actions."""
    drawn_actions = draw(st.lists(actions, max_size=3, unique_by=lambda a: a.type_id))
    action_ids = [action.type_id for action in drawn_actions]
    taken = {kind.type_id for kind in CORE_KINDS} | set(action_ids)
    categories: list[Kind | Mixin | Action] = list(drawn_actions)
    kinds: list[Kind] = []
    for _ in range(draw(st.integers(0, 2))):
        scheme, term = draw(schemes), draw(terms)
        if scheme + term in taken:
            continue
        taken.add(scheme + term)
        kinds.append(Kind(
            scheme=scheme, term=term, title=draw(titles), attributes=draw(_unique_defs()),
            actions=tuple(draw(st.lists(st.sampled_from(action_ids), unique=True, max_size=2)))
            if action_ids else (),
            parent=RESOURCE, location=f"/k{len(kinds)}/{term}/",
        ))
    mixins: list[Mixin] = []
    for _ in range(draw(st.integers(0, 3))):
        scheme, term = draw(schemes), draw(terms)
        if scheme + term in taken:
            continue
        taken.add(scheme + term)
        depends = tuple(draw(st.lists(st.sampled_from([m.type_id for m in mixins]), unique=True, max_size=2))
                        ) if mixins else ()
        mixins.append(Mixin(
            scheme=scheme, term=term, title=draw(titles), attributes=draw(_unique_defs()),
            actions=tuple(draw(st.lists(st.sampled_from(action_ids), unique=True, max_size=2)))
            if action_ids else (),
            depends=depends, location=f"/m{len(mixins)}/{term}/",
        ))
    registry = Registry()
    registry.add_all(CORE_KINDS)
    registry.add_all(categories)
    registry.add_all(kinds)
    registry.add_all(mixins)
    return registry, [*kinds, *mixins, *categories]


# ---- entities -------------------------------------------------------------------------------


@st.composite
def links(draw: st.DrawFn, source: str) -> Entity:
    """A Link instance owned by `source`, with target, optional target kind and extra attributes."""
    entity_id = draw(ids)
    attributes: dict[str, Any] = {
        "occi.core.id": entity_id,
        "occi.core.source": source,
        "occi.core.target": draw(locations),
    }
    if draw(st.booleans()):
        attributes["occi.core.target.kind"] = draw(type_ids)
    if draw(st.booleans()):
        attributes["occi.core.title"] = draw(strings)
    attributes.update(draw(attribute_dicts))
    return Entity(kind=draw(type_ids), entity_id=entity_id, location=f"/link/{entity_id}",
                  mixins=tuple(draw(st.lists(type_ids, unique=True, max_size=2))), attributes=attributes)


@st.composite
def entities(draw: st.DrawFn, *, with_links: bool = True) -> Entity:
    """A Resource with mixins, attribute values, action links and owned links."""
    entity_id = draw(ids)
    location = f"/{draw(_segment)}/{entity_id}"
    attributes: dict[str, Any] = {}
    if draw(st.booleans()):
        attributes["occi.core.id"] = entity_id
    if draw(st.booleans()):
        attributes["occi.core.title"] = draw(strings)
    attributes.update(draw(attribute_dicts))
    return Entity(kind=draw(type_ids), entity_id=entity_id, location=location,
                  mixins=tuple(draw(st.lists(type_ids, unique=True, max_size=3))), attributes=attributes,
                  actions=tuple(draw(st.lists(type_ids, unique=True, max_size=3))),
                  links=tuple(draw(st.lists(links(location), max_size=3))) if with_links else ())


# ---- hostile input --------------------------------------------------------------------------

# Fragments of the text grammar, so that random values get past the first checks.
_FRAGMENTS = [
    "compute", "; ", ";", ",", "=", '"', "\\", "<", ">", "{", "}", "[", "]", " ", "\t", "#",
    'scheme="http://schemas.ogf.org/occi/infrastructure#"', "class=", '"kind"', "kind", "mixin",
    "action", "title=", "rel=", "location=", "attributes=", "actions=", "self=", "category=",
    "occi.core.id", "{immutable required}", "{bogus}", "http://a.example/x#y", "/compute/1",
    "?action=start", "1", "-2.5", ".5", "1e999", "true", "false", "OK", "\u00e9", "\u2028",
]
grammar_soup = st.lists(st.sampled_from(_FRAGMENTS) | st.text(max_size=3), max_size=25).map("".join)
field_names = st.sampled_from(["Category", "Link", "X-OCCI-Attribute", "X-OCCI-Location"])
hostile_fields = st.lists(st.tuples(field_names, grammar_soup | st.text(max_size=60)), max_size=8)
