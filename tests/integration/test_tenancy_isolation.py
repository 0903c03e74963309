"""The cross-tenant suite (issue 8): every operation, as one tenant against another's objects.

A live server with Basic authentication (htpasswd, groups and roles files written here). For each
direction (bob of tenant-b against alice of tenant-a, and the other way round), the owner holds a
network, a compute with a network interface to it, a storage, a user mixin (tag) the compute
carries, and the operation that created the compute. The intruder runs every operation type on
them in all three renderings. Checked each time:

- the answer is what the same request gets for an object that does not exist (status and message,
  the names aside): another tenant's object is 404, never 403, and nothing tells it exists;
  a PUT at another tenant's location is 409, as D-TENANT-PATHS decides;
- listings, filters, pages, discovery, operations and the OpenAPI document show none of it;
- nothing of the owner's changed (every entity's JSON rendering and ETag, the tag's members,
  the operation record and the owner's operation list, the tag in the owner's discovery).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import LiveServer
from .tenancy_helpers import (
    COMPUTE,
    MEDIA,
    NETWORK,
    NETWORKINTERFACE,
    STOP,
    STORAGE,
    action_body,
    basic_server,
    client,
    created_location,
    entity_body,
    listed,
    locations_body,
    mixin_body,
)

JSON = "application/occi+json"
DIRECTIONS = {"b-against-a": ("alice", "bob"), "a-against-b": ("bob", "alice")}


@dataclass(frozen=True)
class Holdings:
    user: str
    network: str
    compute: str
    storage: str
    link: str
    tag_scheme: str
    tag_term: str
    tag_location: str
    operation: str
    title: str

    @property
    def tag(self) -> str:
        return self.tag_scheme + self.tag_term

    @property
    def entities(self) -> tuple[str, ...]:
        return (self.network, self.compute, self.storage, self.link)


def build(server: LiveServer, user: str, label: str) -> Holdings:
    with client(server, user) as occi:
        def create(path: str, kind: str, attributes: dict[str, Any]) -> httpx.Response:
            return occi.request(**entity_body(JSON, kind, attributes).request("POST", path, media=JSON))

        network = created_location(create("/network/", NETWORK, {"occi.core.title": f"{label}-net"}))
        made = create("/compute/", COMPUTE, {"occi.core.title": f"{label}-secret", "occi.compute.cores": 1})
        compute = created_location(made)
        storage = created_location(create("/storage/", STORAGE, {"occi.storage.size": 1.0}))
        link = created_location(create("/networkinterface/", NETWORKINTERFACE,
                                       {"occi.core.source": compute, "occi.core.target": network}))
        term = "secrettag" if label == "owned" else "tag"
        scheme, location = f"http://example.org/{label}/tags#", f"/tags/{label}/"
        defined = occi.request(**mixin_body(JSON, scheme, term, location).request("POST", "/-/", media=JSON))
        assert defined.status_code == 200, defined.text
        associated = occi.request(**locations_body(JSON, [compute]).request("POST", location, media=JSON))
        assert associated.status_code == 200, associated.text
        operation = made.headers.get("x-occi-operation", "")
        if not operation:
            ops = occi.get("/-/operations/", headers={"Accept": "text/uri-list"})
            operation = ops.text.split()[0]
        operation = operation[operation.index("/-/operations/"):]
    return Holdings(user, network, compute, storage, link, scheme, term, location, operation, f"{label}-secret")


def snapshot(server: LiveServer, owner: Holdings) -> dict[str, Any]:
    """Everything of the owner's that an intruder must not change, as the owner sees it."""
    state: dict[str, Any] = {}
    with client(server, owner.user) as occi:
        for path in owner.entities:
            response = occi.get(path, headers={"Accept": JSON})
            state[path] = (response.status_code, response.headers.get("etag"), response.json())
        members = occi.get(owner.tag_location, headers={"Accept": "text/uri-list"})
        state["tag members"] = (members.status_code, sorted(members.text.split()))
        state["operation"] = occi.get(owner.operation, headers={"Accept": JSON}).json()
        state["operations"] = occi.get("/-/operations/", headers={"Accept": "text/uri-list"}).text
        discovery = occi.get("/-/", params={"category": owner.tag}, headers={"Accept": JSON}).json()
        state["tag"] = [m for m in discovery.get("mixins", []) if m["term"] == owner.tag_term]
    assert state["tag"], "the owner sees its own tag"
    return state


@dataclass
class World:
    server: LiveServer
    owner: Holdings
    before: dict[str, Any]
    intruder_name: str


@pytest.fixture(scope="module", params=list(DIRECTIONS))
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    owner_name, intruder_name = DIRECTIONS[request.param]
    server = basic_server(tmp_path_factory.mktemp(f"tenancy-{request.param}"))
    try:
        owner = build(server, owner_name, "owned")
        yield World(server, owner, snapshot(server, owner), intruder_name)
    finally:
        server.stop()


@pytest.fixture
def intruder(world: World) -> Iterator[tuple[httpx.Client, Holdings]]:
    """The intruder's client and its own holdings (made afresh for each test)."""
    own = build(world.server, world.intruder_name, f"intruding-{next(_counter)}")
    with client(world.server, world.intruder_name) as occi:
        yield occi, own
    # nothing the intruder did reached the owner
    assert snapshot(world.server, world.owner) == world.before


_counter = iter(range(1_000_000))

# ---- operations on one of the owner's objects, each beside the same request on one that is not there ----

ABSENT = {"compute": "/compute/0d9c7c55-0000-4000-8000-000000000000",
          "network": "/network/0d9c7c55-0000-4000-8000-000000000000",
          "storage": "/storage/0d9c7c55-0000-4000-8000-000000000000",
          "link": "/networkinterface/0d9c7c55-0000-4000-8000-000000000000",
          "operation": "/-/operations/0d9c7c55-0000-4000-8000-000000000000",
          "tag_location": "/tags/nobody/", "tag_scheme": "http://example.org/nobody/tags#"}

# name -> (request maker(media, target holdings, intruder holdings), expected status)
Maker = Callable[[str, Any, Holdings], dict[str, Any]]


def _on(path_of: Callable[[Any], str], method: str, body: Callable[[str, Any, Holdings], Any] | None = None,
        **params: Any) -> Maker:
    def make(media: str, target: Any, own: Holdings) -> dict[str, Any]:
        path = path_of(target)
        if body is None:
            return {"method": method, "url": path, "headers": {"Accept": media}, **params}
        return body(media, target, own).request(method, path, media=media, **params)

    return make


class Absent:
    """Stands for the owner's holdings with every object replaced by one that does not exist."""

    network = ABSENT["network"]
    compute = ABSENT["compute"]
    storage = ABSENT["storage"]
    link = ABSENT["link"]
    operation = ABSENT["operation"]
    tag_location = ABSENT["tag_location"]
    tag_scheme = ABSENT["tag_scheme"]
    tag_term = "secrettag"
    title = "nobody-secret"

    @property
    def tag(self) -> str:
        return self.tag_scheme + self.tag_term


ONE_OBJECT: dict[str, tuple[Maker, int]] = {
    "GET compute": (_on(lambda t: t.compute, "GET"), 404),
    "GET network": (_on(lambda t: t.network, "GET"), 404),
    "GET storage": (_on(lambda t: t.storage, "GET"), 404),
    "GET link": (_on(lambda t: t.link, "GET"), 404),
    "HEAD compute": (_on(lambda t: t.compute, "HEAD"), 404),
    "OPTIONS compute": (_on(lambda t: t.compute, "OPTIONS"), 200),
    "POST update compute": (_on(lambda t: t.compute, "POST",
                                lambda m, t, o: entity_body(m, COMPUTE, {"occi.core.title": "mine now"})), 404),
    "POST action on compute": (_on(lambda t: t.compute, "POST", lambda m, t, o: action_body(m, STOP),
                                   params={"action": "stop"}), 404),
    "POST update link": (_on(lambda t: t.link, "POST",
                             lambda m, t, o: entity_body(m, NETWORKINTERFACE, {"occi.core.title": "x"})), 404),
    "DELETE compute": (_on(lambda t: t.compute, "DELETE"), 404),
    "DELETE link": (_on(lambda t: t.link, "DELETE"), 404),
    "DELETE storage": (_on(lambda t: t.storage, "DELETE"), 404),
    "GET operation": (_on(lambda t: t.operation, "GET"), 404),
    "GET tag collection": (_on(lambda t: t.tag_location, "GET"), 404),
    "POST tag collection (associate)": (_on(lambda t: t.tag_location, "POST",
                                            lambda m, t, o: locations_body(m, [o.compute])), 405),
    "PUT tag collection (replace members)": (_on(lambda t: t.tag_location, "PUT",
                                                 lambda m, t, o: locations_body(m, [o.compute])), 405),
    "DELETE tag collection (dissociate)": (_on(lambda t: t.tag_location, "DELETE"), 404),
    "POST action on tag collection": (_on(lambda t: t.tag_location, "POST", lambda m, t, o: action_body(m, STOP),
                                          params={"action": "stop"}), 405),
    "DELETE /-/ the tag": (_on(lambda t: "/-/", "DELETE", lambda m, t, o: mixin_body(m, t.tag_scheme, t.tag_term)),
                           404),
    "create with the tag": (_on(lambda t: "/compute/", "POST",
                                lambda m, t, o: entity_body(m, COMPUTE, mixins=[t.tag])), 400),
    "associate the compute to own tag": (_on(lambda t: "/", "POST", lambda m, t, o: locations_body(m, [t.compute])),
                                         404),
    "link from own compute to the network": (
        _on(lambda t: "/networkinterface/", "POST", lambda m, t, o: entity_body(
            m, NETWORKINTERFACE, {"occi.core.source": o.compute, "occi.core.target": t.network})), 404),
    "link from the compute to own network": (
        _on(lambda t: "/networkinterface/", "POST", lambda m, t, o: entity_body(
            m, NETWORKINTERFACE, {"occi.core.source": t.compute, "occi.core.target": o.network})), 404),
    "inline link to the network": (
        _on(lambda t: "/compute/", "POST", lambda m, t, o: entity_body(
            m, COMPUTE, links=[(NETWORKINTERFACE, t.network, NETWORK)])), 404),
    "retarget own link to the network": (
        _on(lambda t: "/", "POST", lambda m, t, o: entity_body(
            m, NETWORKINTERFACE, {"occi.core.target": t.network})), 404),
    "PUT on the compute": (_on(lambda t: t.compute, "PUT",
                               lambda m, t, o: entity_body(m, COMPUTE, {"occi.core.title": "mine"})), 409),
}
# The two operations whose path is the intruder's own object.
_OWN_PATH = {"associate the compute to own tag": lambda own: own.tag_location,
             "retarget own link to the network": lambda own: own.link}


def _normalise(text: str, names: dict[str, str]) -> str:
    for real, placeholder in names.items():
        text = text.replace(real, placeholder)
    return text


@pytest.mark.parametrize("media", MEDIA)
@pytest.mark.parametrize("operation", list(ONE_OBJECT))
@pytest.mark.spec("C-45")
@pytest.mark.spec("H-38")
def test_another_tenants_object_is_not_there(world: World, intruder: tuple[httpx.Client, Holdings],
                                             operation: str, media: str) -> None:
    occi, own = intruder
    make, expected = ONE_OBJECT[operation]
    real = make(media, world.owner, own)
    twin = make(media, Absent(), own)
    if operation in _OWN_PATH:
        real["url"] = twin["url"] = _OWN_PATH[operation](own)
    answer = occi.request(**real)
    assert answer.status_code == expected, (operation, answer.text)
    if expected == 409:
        # D-TENANT-PATHS: the location is taken; the answer says nothing about who holds it
        assert "already taken" in answer.text or "already taken" in answer.headers.get("x-occi-error", "")
        assert world.owner.user not in answer.text and world.owner.title not in answer.text
        return
    absent = occi.request(**twin)
    assert absent.status_code == expected, (operation, absent.text)
    names = {getattr(world.owner, field): f"<{field}>" for field in
             ("compute", "network", "storage", "link", "operation", "tag_location", "tag_scheme")}
    names.update({getattr(Absent, field): f"<{field}>" for field in
                  ("compute", "network", "storage", "link", "operation", "tag_location", "tag_scheme")})
    names[world.server.url] = ""
    names[world.owner.operation.rpartition("/")[2]] = "<operation id>"
    names[Absent.operation.rpartition("/")[2]] = "<operation id>"
    assert _normalise(answer.text, names) == _normalise(absent.text, names)
    shown = {k: _normalise(v, names) for k, v in answer.headers.items() if k.lower() not in (
        "x-request-id", "content-length", "date")}
    hidden = {k: _normalise(v, names) for k, v in absent.headers.items() if k.lower() not in (
        "x-request-id", "content-length", "date")}
    assert shown == hidden


# ---- listings: the owner's objects are not in them --------------------------------------------------------


def _not_listed(world: World, paths: list[str]) -> None:
    assert not set(paths) & set(world.owner.entities), paths


@pytest.mark.parametrize("media", MEDIA)
def test_kind_and_root_listings_filters_and_pages(world: World, intruder: tuple[httpx.Client, Holdings],
                                                  media: str) -> None:
    occi, own = intruder
    computes = listed(occi.get("/compute/", headers={"Accept": media}))
    assert own.compute in computes
    everything = listed(occi.get("/", headers={"Accept": media}))
    assert set(own.entities) <= set(everything)
    links = listed(occi.get("/networkinterface/", headers={"Accept": media}))
    assert own.link in links
    by_title = occi.get("/compute/", params={"attribute": "occi.core.title", "value": world.owner.title},
                        headers={"Accept": media})
    assert listed(by_title) == []
    by_header = occi.get("/compute/", headers={"Accept": media,
                                               "X-OCCI-Attribute": f'occi.core.title="{world.owner.title}"'})
    assert listed(by_header) == []
    by_category = occi.get("/", params={"category": "compute"}, headers={"Accept": media})
    assert listed(by_category) == computes
    # the term of the other tenant's tag is as unknown as one nobody defined
    by_tag = occi.get("/", params={"category": world.owner.tag_term}, headers={"Accept": media})
    unknown = occi.get("/", params={"category": "nosuchterm"}, headers={"Accept": media})
    assert by_tag.status_code == unknown.status_code == 400
    assert by_tag.text.replace(world.owner.tag_term, "nosuchterm") == unknown.text
    # pages count only the caller's entities: one page holds them all, the next is empty
    count = len(computes)
    assert listed(occi.get("/compute/", params={"page": 1, "number": count}, headers={"Accept": media})) == computes
    assert listed(occi.get("/compute/", params={"page": 2, "number": count}, headers={"Accept": media})) == []
    _not_listed(world, computes + everything + links)


@pytest.mark.parametrize("media", MEDIA)
def test_discovery_operations_and_openapi_show_nothing_of_the_other_tenant(
        world: World, intruder: tuple[httpx.Client, Holdings], media: str) -> None:
    occi, own = intruder
    discovery = occi.get("/-/", headers={"Accept": media})
    assert discovery.status_code == 200
    shown = discovery.text + " ".join(v for k, v in discovery.headers.multi_items() if k.lower() == "category")
    assert own.tag_scheme in shown
    assert world.owner.tag_scheme not in shown and world.owner.tag_location not in shown
    filtered = occi.get("/-/", params={"category": world.owner.tag}, headers={"Accept": media})
    assert world.owner.tag_scheme not in filtered.text + str(filtered.headers)
    operations = occi.get("/-/operations/", headers={"Accept": media})
    assert operations.status_code == 200
    assert world.owner.operation not in operations.text + str(operations.headers)
    openapi = occi.get("/-/openapi.json")
    assert openapi.status_code == 200
    assert own.tag_location in openapi.text
    assert world.owner.tag_location not in openapi.text and world.owner.tag_scheme not in openapi.text


@pytest.mark.parametrize("media", MEDIA)
def test_collection_actions_and_deletes_reach_only_the_callers_entities(
        world: World, intruder: tuple[httpx.Client, Holdings], media: str) -> None:
    occi, own = intruder
    stopped = occi.request(**action_body(media, STOP).request("POST", "/compute/", media=media,
                                                              params={"action": "stop"}))
    assert stopped.status_code == 200, stopped.text
    _not_listed(world, listed(stopped) if media != "text/occi" else [])
    tag = world.owner.tag_location
    # the intruder's own tag collection: membership changes touch only its entities
    assert occi.request(**locations_body(media, [own.network]).request("PUT", own.tag_location,
                                                                      media=media)).status_code == 200
    assert occi.delete(own.tag_location, headers={"Accept": media}).status_code == 200
    assert occi.delete("/networkinterface/", headers={"Accept": media}).status_code == 200
    assert occi.delete("/compute/", headers={"Accept": media}).status_code == 200
    assert listed(occi.get("/compute/", headers={"Accept": media})) == []
    assert occi.get(tag, headers={"Accept": media}).status_code == 404


@pytest.mark.parametrize("media", MEDIA)
def test_defining_the_other_tenants_mixin_again_is_a_conflict_that_changes_nothing(
        world: World, intruder: tuple[httpx.Client, Holdings], media: str) -> None:
    occi, _ = intruder
    owner = world.owner
    same = occi.request(**mixin_body(media, owner.tag_scheme, owner.tag_term, "/elsewhere/").request(
        "POST", "/-/", media=media))
    # Type ids are one namespace, like locations (D-TENANT-PATHS): 409, naming only the type id.
    assert same.status_code == 409, same.text
    assert owner.user not in same.text


def test_the_suite_can_fail(tmp_path: Path) -> None:
    """A server that let tenants see each other's entities would fail the suite: here the admin
    (who sees every tenant) gets 200 where the intruders get 404."""
    server = basic_server(tmp_path)
    try:
        owner = build(server, "alice", "alice-x")
        with client(server, "root") as admin, client(server, "bob") as bob:
            assert admin.get(owner.compute, headers={"Accept": JSON}).status_code == 200
            assert bob.get(owner.compute, headers={"Accept": JSON}).status_code == 404
    finally:
        server.stop()
