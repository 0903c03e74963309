"""OCCI Platform 1.2 (GFD.227): applications, components, component links and their templates.

Kinds `application`, `component`, `componentlink`; mixins `app_tpl`, `res_tpl`, `database`,
`databaselink`; start/stop on both resource kinds with the GFD.227 state model (platform.md §4).
The OGF `platform#` categories are served, not the MoDMaCAO vendor variant (platform.md §7,
docs/extensions.md D-EXT-PLATFORM-OGF).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from occipy.errors import InvalidAttribute
from occipy.model._catalogue_data import EXTENSIONS
from occipy.model.category import AttributeDef, AttributeValue
from occipy.model.extensions import _build
from occipy.model.extensions.base import Extension, Feature, LinkEnds, frozen, with_pattern
from occipy.model.registry import Registry

PLATFORM = "http://schemas.ogf.org/occi/platform#"
APPLICATION = PLATFORM + "application"
COMPONENT = PLATFORM + "component"
COMPONENTLINK = PLATFORM + "componentlink"
APP_TPL = PLATFORM + "app_tpl"
RES_TPL = PLATFORM + "res_tpl"
DATABASE = PLATFORM + "database"
DATABASELINK = PLATFORM + "databaselink"
APPLICATION_ACTION = "http://schemas.ogf.org/occi/platform/application/action#"
COMPONENT_ACTION = "http://schemas.ogf.org/occi/platform/component/action#"

_DATA = EXTENSIONS["platform"]


def _plain_string(adef: AttributeDef) -> AttributeDef:
    # platform.md §2: the spec's own examples (`git@git.example.com`, `myapp.example.com`) are not
    # RFC 3986 absolute URLs, "so do not reject scheme-less values".
    return with_pattern(adef, None)


CATEGORIES = _build.categories(_DATA, attribute_fixes={
    "occi.app.context": _plain_string,
    "occi.app.url": _plain_string,
})


def validate(kind_id: str, mixin_ids: Sequence[str], attributes: Mapping[str, AttributeValue],
             registry: Registry) -> None:
    """An application needs a name that is not blank (GFD.227 §3.1: occi.app.name, multiplicity 1)."""
    if not registry.is_kind(kind_id) or APPLICATION not in registry.ancestors(kind_id):
        return
    name = attributes.get("occi.app.name")
    if isinstance(name, str) and not name.strip():
        raise InvalidAttribute("attribute occi.app.name: the name of an application cannot be blank")


_PLATFORM_IDS = tuple(c.type_id for c in CATEGORIES if c.scheme == PLATFORM)

EXTENSION = Extension(
    name="platform",
    title="OCCI Platform 1.2",
    document="GFD.227",
    status="normative",
    categories=CATEGORIES,
    machines=_build.machines(_DATA, {APPLICATION, COMPONENT}),
    link_ends=frozen({
        # platform.md §5: an application links to the components hosting it, a component to
        # the components it needs; "Applications and components linked this way form acyclic graphs".
        COMPONENTLINK: LinkEnds(sources=(APPLICATION, COMPONENT), targets=(COMPONENT,), acyclic=True),
    }),
    # Nothing runs an application or a component until a driver can (e.g. on containers).
    needs=frozen({type_id: Feature.PLATFORM for type_id in _PLATFORM_IDS}),
    validate=validate,
)
