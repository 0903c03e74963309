"""The Platform resource types (GFD.227) in the driver contract's words: specs and facts.

An application is a group of components with an address where it is reachable; a component is
one running piece of software (a web server, a database); a component link joins an application
to a component it hosts, or a component to a component it uses (and then hands it the address,
and for a database the credentials). OCCI-free, like `base`: the service's
`bindings/platform.py` maps the OCCI attributes to these values. Imports only `backends.base`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from occipy.backends.base import resource

APPLICATION: Final = "application"
COMPONENT: Final = "component"
COMPONENTLINK: Final = "componentlink"


@resource(APPLICATION)
@dataclass(frozen=True, slots=True)
class ApplicationSpec:
    name: str
    entity_id: str = ""
    app_name: str | None = None  # the application's own name (occi.app.name)
    runtime: str | None = None  # a Template.name of family RUNTIME (recorded: components choose theirs)
    plan: str | None = None  # a Template.name of family PLAN


@resource(COMPONENT)
@dataclass(frozen=True, slots=True)
class ComponentSpec:
    name: str
    entity_id: str = ""
    runtime: str | None = None  # a Template.name of family RUNTIME (None: the cloud's default)
    plan: str | None = None  # a Template.name of family PLAN (None: the cloud's default size)
    database: bool = False  # the component is a database (it has credentials to hand out)


@resource(COMPONENTLINK)
@dataclass(frozen=True, slots=True)
class ComponentLinkSpec:
    """A link from an application (it hosts the target) or a component (it uses the target).

    `source_id` and `target_id` are backend ids; the driver tells an application from a
    component by its id.
    """

    name: str
    source_id: str
    target_id: str
    entity_id: str = ""
    database: bool = False  # the client asked for a database link (the target must be a database)


@dataclass(frozen=True, slots=True)
class ApplicationFacts:
    url: str | None = None  # where the application answers (its first hosted component with a port)
    context: str | None = None  # what the application is contextualised with (the cloud's name for it)


@dataclass(frozen=True, slots=True)
class ComponentFacts:
    address: str | None = None  # host name or address other components reach it at
    port: int | None = None  # the port it serves on, if any
    version: str | None = None  # databases: the database's version


@dataclass(frozen=True, slots=True)
class ComponentLinkFacts:
    """What the link hands over; `uri`, `username` and `token` are set when the target is a database."""

    uri: str | None = None
    username: str | None = None
    token: str | None = None
