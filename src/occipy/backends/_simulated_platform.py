"""The simulated cloud's Platform offer (GFD.227): runtimes, plans and the facts it makes up.

Pure values and functions used by `simulated.py`: which runtimes (app_tpl children) and plans
(res_tpl children) the simulated cloud offers, the URL and context it gives an application, the
address a component answers at, and the credentials a database link hands over. Deterministic
given the random source. Imports only the driver contract.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final

from occipy.backends import base as b
from occipy.backends.platform_types import (
    ApplicationFacts,
    ComponentFacts,
    ComponentLinkFacts,
)


@dataclass(frozen=True, slots=True)
class Runtime:
    """What a runtime template stands for in the simulated cloud."""

    name: str
    title: str
    port: int
    database: str | None = None  # URI scheme of a database runtime
    version: str | None = None


RUNTIMES: Final[tuple[Runtime, ...]] = (
    Runtime("python-3.12", "Python 3.12 web runtime", 8000),
    Runtime("nodejs-20", "Node.js 20 web runtime", 3000),
    Runtime("static-web", "Static web server", 8080),
    Runtime("postgresql-16", "PostgreSQL 16 database", 5432, database="postgresql", version="16.4"),
    Runtime("redis-7", "Redis 7 key-value store", 6379, database="redis", version="7.2.5"),
)
DEFAULT_RUNTIME: Final = "static-web"
DEFAULT_DATABASE: Final = "postgresql-16"  # a database component without a runtime
PLANS: Final[tuple[b.Template, ...]] = (
    b.Template(b.PLAN, "starter", "Starter: 1 core, 0.5 GiB", cores=1, memory_gib=0.5),
    b.Template(b.PLAN, "standard", "Standard: 2 cores, 2 GiB", cores=2, memory_gib=2.0),
    b.Template(b.PLAN, "performance", "Performance: 4 cores, 8 GiB", cores=4, memory_gib=8.0),
)
TEMPLATES: Final[tuple[b.Template, ...]] = (
    *(b.Template(b.RUNTIME, r.name, r.title) for r in RUNTIMES),
    *PLANS,
)
# Reserved for documentation (RFC 6761): nothing answers there, as nothing runs in this cloud.
DOMAIN: Final = "simulated.invalid"


def runtime(name: str | None, database: bool = False) -> Runtime | None:
    wanted = name or (DEFAULT_DATABASE if database else DEFAULT_RUNTIME)
    return next((r for r in RUNTIMES if r.name == wanted), None)


def plan_known(name: str | None) -> bool:
    return name is None or any(p.name == name for p in PLANS)


def application_facts(name: str) -> ApplicationFacts:
    return ApplicationFacts(url=f"http://{name}.apps.{DOMAIN}/", context=f"git@git.{DOMAIN}:{name}.git")


def component_facts(name: str, chosen: Runtime) -> ComponentFacts:
    return ComponentFacts(address=f"{name}.components.{DOMAIN}", port=chosen.port, version=chosen.version)


def link_facts(target: ComponentFacts, chosen: Runtime | None, rng: random.Random) -> ComponentLinkFacts:
    """A database link hands over a URI and fresh credentials; other links hand over nothing."""
    if chosen is None or chosen.database is None:
        return ComponentLinkFacts()
    user = f"app{rng.getrandbits(16):04x}"
    token = f"{rng.getrandbits(64):016x}"
    return ComponentLinkFacts(uri=f"{chosen.database}://{target.address}:{target.port}/{user}", username=user,
                              token=token)
