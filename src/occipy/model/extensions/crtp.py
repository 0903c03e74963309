"""OCCI Compute Resource Templates Profile 1.1 (GFD.222): the six templates and the claim.

The templates (small ... mem_large) depend on `infrastructure#resource_tpl`, so this extension
requires `infrastructure`. The 1.0 and EGI-flavour schemes printed in the profile are input
aliases (monitoring-and-extensions.md §3.4). Every response advertises the claim (R0401-R0405).
"""

from __future__ import annotations

from occipy.model._catalogue_data import CATALOGUE
from occipy.model.extensions import _build
from occipy.model.extensions.base import Extension, frozen
from occipy.model.extensions.infrastructure import CRTP_CATEGORIES

# GFD.222 §5.1: the claim is `token/version` in the profile version field of every response.
# All six templates are offered, so the extended claim (R0404) holds; the base token is listed
# too, since extended conformance includes base conformance and EGI tools look for either
# (docs/extensions.md D-EXT-CRTP-CLAIM).
CLAIMS = ("OCCI-CRTP/1.1", "OCCI-CRTP-EP/1.1")

EXTENSION = Extension(
    name="crtp",
    title="OCCI Compute Resource Templates Profile 1.1",
    document="GFD.222",
    status="profile",
    categories=CRTP_CATEGORIES,
    requires=("infrastructure",),
    category_aliases=frozen(_build.aliases(CATALOGUE["aliases"], "crtp", "category")),
    claims=CLAIMS,
)
