"""The Docker driver's Platform half (GFD.227, docs/platform.md): applications, components, links.

An application is a user-defined bridge network of its own; a component is a container (its
runtime: a built-in busybox web server or toy database, or any offered image); a component link
from an application connects the component to the application's network, and one from a
component re-creates the source container with the target's address (and, for a database, its
credentials) in its environment. Synchronous, like `_docker_engine`; runs in worker threads.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

import docker.errors

from occipy.backends import base as b
from occipy.backends._docker_engine import (
    APP,
    BUSYBOX_IMAGE,
    ENTITY,
    EP_ENTITY,
    EP_KIND,
    KIND,
    MANAGED,
    Desired,
    Engine,
    Gone,
    Use,
    endpoints_of,
    state_of,
    translate,
)
from occipy.backends.platform_types import (
    APPLICATION,
    COMPONENT,
    COMPONENTLINK,
    ApplicationFacts,
    ComponentFacts,
    ComponentLinkFacts,
    ComponentLinkSpec,
)
from occipy.errors import BackendError

# A web page and a CGI script that asks the linked database for its greeting, for the busybox
# web runtime; the toy database answers "OK <version>" to the right credentials.
_INDEX: Final = "<!doctype html><title>occipy</title><h1>Hello from an occipy web component</h1>\n"
_DB_CGI: Final = """#!/bin/sh
echo "Content-Type: text/plain"
echo
if [ -z "$DATABASE_HOST" ]; then echo "no database linked"; exit 0; fi
echo "database $DATABASE_HOST:$DATABASE_PORT says:"
echo "AUTH $DATABASE_USER $DATABASE_PASSWORD" | nc -w 3 "$DATABASE_HOST" "$DATABASE_PORT"
"""
_TOYDB: Final = """#!/bin/sh
read -r line
if [ "$line" = "AUTH $DB_USER $DB_PASSWORD" ]; then echo "OK toydb $DB_VERSION"; else echo "DENIED"; fi
"""
TOYDB_VERSION: Final = "1.0"


@dataclass(frozen=True, slots=True)
class Runtime:
    """What a runtime template runs: an image, its command and files, the port it serves."""

    name: str
    title: str
    image: str
    command: tuple[str, ...] | None = None
    port: int | None = None
    files: Mapping[str, str] | None = None
    database: str | None = None  # URI scheme when it is a database


BUILTIN: Final[tuple[Runtime, ...]] = (
    Runtime("busybox-httpd", "Web server (busybox httpd, port 8080, /cgi-bin/db asks a linked database)",
            BUSYBOX_IMAGE, ("httpd", "-f", "-p", "8080", "-h", "/www"), 8080,
            {"/www/index.html": _INDEX, "/www/cgi-bin/db": _DB_CGI}),
    Runtime("busybox-toydb", "Toy database (busybox nc, port 5432, answers AUTH user password)",
            BUSYBOX_IMAGE, ("nc", "-ll", "-p", "5432", "-e", "/bin/sh", "/toydb.sh"), 5432, {"/toydb.sh": _TOYDB},
            database="toydb"),
)
DEFAULT_RUNTIME: Final = "busybox-httpd"
DEFAULT_DATABASE: Final = "busybox-toydb"  # a database component without a runtime


def image_runtime(name: str, ref: str, client: Any) -> Runtime:
    """An offered image as a runtime: its own command, the first TCP port it exposes."""
    port = None
    try:
        exposed = client.images.get(ref).attrs.get("Config", {}).get("ExposedPorts") or {}
        ports = sorted(int(p.split("/")[0]) for p in exposed if p.endswith("/tcp"))
        port = ports[0] if ports else None
    except docker.errors.DockerException:
        pass
    return Runtime(name, f"Image {name}", ref, None, port)


def component_desired(entity: str, runtime: Runtime, cores: int, memory_gib: float, database: bool) -> Desired:
    env: dict[str, str] = {}
    db: dict[str, str] | None = None
    if database or runtime.database:
        if runtime.database is None:
            raise BackendError(f"runtime {runtime.name!r} is not a database (choose busybox-toydb)")
        password = secrets.token_hex(12)
        db = {"scheme": runtime.database, "user": "occipy", "password": password, "version": TOYDB_VERSION}
        env = {"DB_USER": "occipy", "DB_PASSWORD": password, "DB_VERSION": TOYDB_VERSION}
    return Desired(kind=COMPONENT, entity=entity, image=runtime.image, command=runtime.command, cores=cores,
                   memory_gib=memory_gib, env=env, files=dict(runtime.files or {}), runtime=runtime.name,
                   port=runtime.port, database=db)


def component_facts(container: Any) -> ComponentFacts:
    desired = Desired.from_labels(container.labels)
    version = (desired.database or {}).get("version")
    return ComponentFacts(address=container.name, port=desired.port, version=version)


# ---- applications -------------------------------------------------------------------------------


def application_network(engine: Engine, backend_id: str) -> Any:
    try:
        network = engine.client.networks.get(backend_id)
    except Exception as exc:  # noqa: BLE001 - translated
        raise translate(exc, f"find application network {backend_id}") from None
    if network.attrs.get("Labels", {}).get(KIND) != APPLICATION:
        raise Gone(backend_id)
    return network


def create_application(engine: Engine, name: str, entity: str, record: Mapping[str, str | None]) -> Any:
    labels = {MANAGED: "1", KIND: APPLICATION, ENTITY: entity, APP: json.dumps(dict(record), sort_keys=True)}
    try:
        return engine.client.networks.create(name, driver="bridge", labels=labels, check_duplicate=True)
    except Exception as exc:  # noqa: BLE001 - translated
        raise translate(exc, f"create the network of application {name}") from None


def hosted(engine: Engine, network: Any) -> list[Any]:
    """The component containers on an application's network, by name, stopped ones included (the
    network lists only running containers; a container's settings keep its networks)."""
    containers = engine.client.containers.list(all=True, filters={"label": [f"{MANAGED}=1", f"{KIND}={COMPONENT}"]})
    found = [c for c in containers if any(e.network == network.id for e in endpoints_of(c))]
    return sorted(found, key=lambda c: c.name)


def application_observed(engine: Engine, backend_id: str) -> b.Observed:
    network = application_network(engine, backend_id)
    members = hosted(engine, network)
    states = [state_of(c) for c in members]
    # GFD.227 §4: an application without components is active; one whose components all stopped
    # is inactive.
    state = b.INACTIVE if states and all(s == b.INACTIVE for s in states) else b.ACTIVE
    url = None
    # The application answers where its first component that serves and is not a database does
    # (by container name): a database does not answer a browser.
    for container in members:
        desired = Desired.from_labels(container.labels)
        if desired.database is not None:
            continue
        port = desired.port
        settings = (container.attrs.get("NetworkSettings", {}).get("Networks") or {}).get(network.name) or {}
        address = settings.get("IPAddress")
        if port and address:
            url = f"http://{address}:{port}/"
            break
    return b.Observed(backend_id, state, None, ApplicationFacts(url=url, context=f"docker network {network.name}"))


def delete_application(engine: Engine, backend_id: str) -> None:
    try:
        network = application_network(engine, backend_id)
    except Gone:
        return
    network.reload()
    members = set(network.attrs.get("Containers") or {}) | {c.id for c in hosted(engine, network)}
    for container in members:
        try:
            network.disconnect(container, force=True)
        except (docker.errors.NotFound, docker.errors.APIError):
            pass  # gone, or not connected any more
    network.remove()


# ---- component links ----------------------------------------------------------------------------

HOST: Final = "host"  # application -> component: the component joins the application's network
USE: Final = "use"  # component -> component: the source gets the target's address in its environment


def link_id(way: str, source: str, target: str) -> str:
    return f"{way}:{source}:{target}"


def parse_link(backend_id: str) -> tuple[str, str, str] | None:
    way, _, rest = backend_id.partition(":")
    source, _, target = rest.partition(":")
    if way not in (HOST, USE) or not source or not target:
        return None
    return way, source, target


def _prefix(runtime: str | None, database: bool) -> str:
    if database:
        return "DATABASE"
    return re.sub(r"[^A-Z0-9]+", "_", (runtime or "SERVICE").upper()).strip("_") or "SERVICE"


def link_facts(target: Any) -> tuple[ComponentLinkFacts, dict[str, str]]:
    """What a link to `target` hands over: the facts it reports and the environment it gives."""
    desired = Desired.from_labels(target.labels)
    db = desired.database
    host = target.name
    prefix = _prefix(desired.runtime, db is not None)
    env = {f"{prefix}_HOST": host}
    if desired.port:
        env[f"{prefix}_PORT"] = str(desired.port)
    if db is None:
        if desired.port:
            env[f"{prefix}_URL"] = f"tcp://{host}:{desired.port}"
        return ComponentLinkFacts(), env
    uri = f"{db['scheme']}://{host}:{desired.port}/"
    env.update({"DATABASE_URL": f"{db['scheme']}://{db['user']}:{db['password']}@{host}:{desired.port}/",
                "DATABASE_USER": db["user"], "DATABASE_PASSWORD": db["password"]})
    return ComponentLinkFacts(uri=uri, username=db["user"], token=db["password"]), env


def component(engine: Engine, name: str) -> Any:
    return engine.managed_container(name, (COMPONENT,))


def create_link(engine: Engine, spec: ComponentLinkSpec) -> tuple[str, ComponentLinkFacts, str | None]:
    """Realise a component link; returns its backend id, facts, and the application it changed."""
    try:
        target = component(engine, spec.target_id)
    except Gone:
        raise BackendError(f"Docker has no component container {spec.target_id}") from None
    facts, env = link_facts(target)
    if spec.database and facts.uri is None:
        raise BackendError(f"component {target.name} is not a database: a database link needs one")
    try:
        network = application_network(engine, spec.source_id)
    except Gone:
        network = None
    if network is not None:
        options = {EP_ENTITY: spec.entity_id, EP_KIND: COMPONENTLINK}
        if any(e.network == network.id for e in endpoints_of(target)):
            raise BackendError(f"component {target.name} is already part of this application")
        try:
            engine.client.api.connect_container_to_network(target.id, network.id, aliases=[target.name],
                                                           driver_opt=options)
        except Exception as exc:  # noqa: BLE001 - translated
            error = translate(exc, f"connect {target.name} to its application")
            if isinstance(error, Gone):  # one of the two was removed meanwhile, outside occipy
                raise BackendError(f"Docker no longer has component container {target.name} or application "
                                   f"network {network.name}") from None
            raise error from None
        return link_id(HOST, network.id, target.name), facts, network.id
    try:
        source = component(engine, spec.source_id)
    except Gone:
        raise BackendError(f"Docker has no application network or component {spec.source_id}") from None
    if source.name == target.name:
        raise BackendError("a component cannot use itself")
    desired = Desired.from_labels(source.labels)
    if any(u.target == target.name for u in desired.uses):
        raise BackendError(f"component {source.name} already uses {target.name}")
    use = Use(target.name, spec.entity_id, env)
    engine.recreate(source.name, lambda d: replace(d, uses=(*d.uses, use)))
    return link_id(USE, source.name, target.name), facts, None


def link_observed(engine: Engine, backend_id: str) -> b.Observed | None:
    parsed = parse_link(backend_id)
    if parsed is None:
        return None
    way, source, target_name = parsed
    try:
        target = component(engine, target_name)
        if way == HOST:
            if not any(e.network == source and e.options.get(EP_KIND) == COMPONENTLINK for e in endpoints_of(target)):
                return None
        elif not any(u.target == target_name for u in Desired.from_labels(component(engine, source).labels).uses):
            return None
    except Gone:
        return None
    facts, _ = link_facts(target)
    return b.Observed(backend_id, b.ACTIVE, None, facts)


def delete_link(engine: Engine, backend_id: str) -> str | None:
    """Undo a component link; returns the application whose members changed, if any."""
    parsed = parse_link(backend_id)
    if parsed is None:
        return None
    way, source, target = parsed
    try:
        if way == HOST:
            try:
                engine.client.api.disconnect_container_from_network(target, source, force=True)
            except docker.errors.NotFound:
                pass
            return source
        container = component(engine, source)
    except Gone:
        return None
    if any(u.target == target for u in Desired.from_labels(container.labels).uses):
        engine.recreate(source, lambda d: replace(d, uses=tuple(u for u in d.uses if u.target != target)))
    return None


def applications_of(container: Any) -> list[str]:
    """The application networks a component container is on (their backend ids)."""
    return [e.network for e in endpoints_of(container) if e.options.get(EP_KIND) == COMPONENTLINK]


def start_stop(engine: Engine, containers: Sequence[Any], start: bool) -> None:
    for container in containers:
        if start:
            if container.status == "paused":
                container.unpause()
            elif state_of(container) != b.ACTIVE:
                container.start()
        else:
            engine.stop(container, "graceful")
