"""Bad input against the live server: every category of malformed or invalid request gets its 4xx.

One table per category of bad input named by the issue (malformed renderings, unknown categories,
wrong attribute types, patterns, enums, immutable attributes, missing required attributes, bad
UTF-8, oversized bodies, too many headers), each sent as text/plain, text/occi and
application/occi+json. Each case asserts the exact status (http-protocol.md §5.3), a message that
names the problem, the negotiated Content-Type, `Server: ... OCCI/1.2`, and that the stored data
(snapshot: GET / in JSON, GET of every entity, the mixins of /-/) did not change.

The helpers at the top (`seed`, `snapshot`, `settle`, `text_request`) are shared with
test_fuzz_live.py, test_durability.py and test_restart.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import LiveServer, start_server

INFRA = "http://schemas.ogf.org/occi/infrastructure#"
COMPUTE_ACTION = "http://schemas.ogf.org/occi/infrastructure/compute/action#"
IPNETWORK = "http://schemas.ogf.org/occi/infrastructure/network#ipnetwork"
OS_TPL = "http://occipy.org/occi/os_tpl#debian-12"  # a template of the simulated driver
RESOURCE_TPL = "http://occipy.org/occi/resource_tpl#tiny"
USER_MIXIN = "http://example.com/occi/robustness#my_stuff"
USER_MIXIN_LOCATION = "/my_stuff/"

TEXT_PLAIN = "text/plain"
TEXT_OCCI = "text/occi"
JSON = "application/occi+json"
MEDIA = (TEXT_PLAIN, TEXT_OCCI, JSON)

KIND_COMPUTE = f'compute; scheme="{INFRA}"; class="kind"'
KIND_STORAGE = f'storage; scheme="{INFRA}"; class="kind"'
KIND_NETWORK = f'network; scheme="{INFRA}"; class="kind"'
KIND_STORAGELINK = f'storagelink; scheme="{INFRA}"; class="kind"'
MIXIN_IPNETWORK = 'ipnetwork; scheme="http://schemas.ogf.org/occi/infrastructure/network#"; class="mixin"'

Fields = Sequence[tuple[str, str | bytes]]


# ---- helpers shared with the other live-server test modules ------------------------------------

@dataclass(frozen=True)
class World:
    """What `seed` created: entity paths, the user mixin, the operation of the action it ran."""

    compute: str
    storage: str
    network: str
    storagelink: str
    networkinterface: str
    operation: str  # /-/operations/<id> of the `restart` action ("" when seed ran none)

    @property
    def entities(self) -> tuple[str, ...]:
        return (self.compute, self.storage, self.network, self.storagelink, self.networkinterface)


def path_of(client: httpx.Client, url: str) -> str:
    """A location as a path (the server answers absolute URLs of itself)."""
    return url.removeprefix(str(client.base_url).rstrip("/"))


def _created(response: httpx.Response, client: httpx.Client) -> str:
    assert response.status_code == 201, response.text
    return path_of(client, response.headers["location"])


def seed(client: httpx.Client, *, run_action: bool = True) -> World:
    """One entity of every kind, a user mixin with an association, and (unless told not to) an action."""
    headers = {"Content-Type": JSON, "Accept": JSON}
    compute = _created(client.post("/compute/", headers=headers, json={
        "kind": INFRA + "compute", "mixins": [OS_TPL, RESOURCE_TPL], "title": "seeded vm",
        "attributes": {"occi.compute.hostname": "seeded"},
    }), client)
    storage = _created(client.post("/storage/", headers=headers, json={
        "kind": INFRA + "storage", "title": "seeded disk", "attributes": {"occi.storage.size": 2.0},
    }), client)
    network = _created(client.post("/network/", headers=headers, json={
        "kind": INFRA + "network", "mixins": [IPNETWORK], "title": "seeded net",
        "attributes": {"occi.network.address": "10.77.0.0/24", "occi.network.label": "seeded"},
    }), client)
    storagelink = _created(client.post("/storagelink/", headers=headers, json={
        "kind": INFRA + "storagelink", "source": {"location": compute}, "target": {"location": storage},
        "attributes": {"occi.storagelink.deviceid": "/dev/vdb"},
    }), client)
    networkinterface = _created(client.post("/networkinterface/", headers=headers, json={
        "kind": INFRA + "networkinterface", "source": {"location": compute}, "target": {"location": network},
    }), client)
    scheme, _, term = USER_MIXIN.partition("#")
    response = client.post("/-/", headers=headers, json={"mixins": [
        {"term": term, "scheme": scheme + "#", "title": "robustness tag", "location": USER_MIXIN_LOCATION},
    ]})
    assert response.status_code == 200, response.text
    settle(client)
    response = client.post(USER_MIXIN_LOCATION, headers=headers, json={"resources": [{"location": compute}]})
    assert response.status_code == 200, response.text
    operation = ""
    if run_action:
        operation = path_of(client, restart_action(client, compute).headers["x-occi-operation"])
    settle(client)
    return World(compute, storage, network, storagelink, networkinterface, operation)


def restart_action(client: httpx.Client, compute: str) -> httpx.Response:
    """POST <compute>?action=restart (method warm): 200, and an operation record."""
    response = client.post(f"{compute}?action=restart", headers={"Content-Type": JSON, "Accept": JSON}, json={
        "action": COMPUTE_ACTION + "restart", "attributes": {"method": "warm"},
    })
    assert response.status_code == 200, response.text
    return response


def _get_json(client: httpx.Client, path: str) -> Any:
    response = client.get(path, headers={"Accept": JSON})
    assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
    # Absolute URLs of the server become paths, so snapshots compare across ports (restarts).
    return json.loads(response.text.replace(str(client.base_url).rstrip("/"), ""))


def locations(client: httpx.Client, path: str = "/") -> list[str]:
    response = client.get(path, headers={"Accept": "text/uri-list"})
    assert response.status_code == 200, response.text
    lines = [line.strip() for line in response.text.splitlines()]
    return sorted(path_of(client, line) for line in lines if line and not line.startswith("#"))


def snapshot(client: httpx.Client) -> dict[str, Any]:
    """The stored data as a client sees it: GET / (JSON), every entity, and the mixins of /-/."""
    root = _get_json(client, "/")
    for key in ("resources", "links"):
        root[key] = sorted(root.get(key, []), key=lambda item: str(item.get("id")))
    mixins = sorted(_get_json(client, "/-/").get("mixins", []), key=lambda m: m["scheme"] + m["term"])
    return {
        "root": root,
        "entities": {location: _get_json(client, location) for location in locations(client)},
        "mixins": mixins,
    }


def _in_progress(snap: dict[str, Any]) -> bool:
    text = json.dumps(snap["entities"])
    return "in progress" in text or '"creating"' in text or '"updating"' in text or '"deleting"' in text


def settle(client: httpx.Client, timeout: float = 15.0) -> dict[str, Any]:
    """Wait until no operation is running (two equal snapshots, nothing 'in progress'); return it."""
    deadline = time.monotonic() + timeout
    previous = snapshot(client)
    while True:
        time.sleep(0.05)
        current = snapshot(client)
        if current == previous and not _in_progress(current):
            return current
        if time.monotonic() > deadline:
            raise AssertionError(f"the server did not settle within {timeout} s: {json.dumps(current)[:2000]}")
        previous = current


def text_request(media: str, fields: Fields) -> tuple[list[tuple[str, str | bytes]], bytes]:
    """Headers and body carrying OCCI text fields: the body for text/plain, headers for text/occi."""
    if media == TEXT_OCCI:
        return [(name, value) for name, value in fields], b""
    lines = []
    for name, value in fields:
        raw = value if isinstance(value, bytes) else value.encode()
        lines.append(name.encode() + b": " + raw + b"\n")
    return [], b"".join(lines)


def wire(headers: Sequence[tuple[str, str | bytes]]) -> list[tuple[bytes, bytes]]:
    """Header fields as bytes (some tests send bytes that are not UTF-8)."""
    return [(name.encode(), value if isinstance(value, bytes) else value.encode()) for name, value in headers]


def error_message(response: httpx.Response) -> str:
    """The message of an error answer, read the way its media type carries it."""
    media = response.headers.get("content-type", "").split(";")[0].strip()
    if media in (JSON, "application/json"):
        document = response.json()
        assert isinstance(document, dict) and document.get("code") == response.status_code, response.text
        return str(document.get("message", ""))
    if media == TEXT_OCCI:
        return str(response.headers.get("x-occi-error", "")) + " " + response.text
    return response.text


# ---- the table ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    """One bad request. `fields` is the text rendering (text/plain and text/occi), `json` the JSON."""

    category: str
    name: str
    method: str
    target: str  # a path, or "{compute}" style placeholders filled from the World
    status: int
    mentions: tuple[str, ...]  # what the message must name (case-insensitive substrings)
    fields: Fields | None = None
    json: Any = None
    json_mentions: tuple[str, ...] | None = None  # when the JSON message names it differently
    spec: tuple[str, ...] = ()
    xfail: str | None = None


def _stop(method: str) -> Fields:
    return [("Category", f'stop; scheme="{COMPUTE_ACTION}"; class="action"'),
            ("X-OCCI-Attribute", f'method="{method}"')]


TABLE: tuple[Case, ...] = (
    # -- malformed renderings (400) --
    Case("malformed", "unterminated quoted-string in the Kind", "POST", "/compute/", 400, ("unterminated",),
         fields=[("Category", f'compute; scheme="{INFRA}; class="kind"')],
         json=b'{"kind": "http://schemas.ogf.org/occi/infrastructure#compute", "attributes": {',
         json_mentions=("truncated",)),
    Case("malformed", "Category without a scheme", "POST", "/compute/", 400, ("scheme",),
         fields=[("Category", 'compute; class="kind"')],
         json={"kind": "compute"}, json_mentions=("kind",)),
    Case("malformed", "attribute without a value", "POST", "/compute/", 400, ("occi.compute.cores",),
         fields=[("Category", KIND_COMPUTE), ("X-OCCI-Attribute", "occi.compute.cores")],
         json={"kind": INFRA + "compute", "attributes": [["occi.compute.cores", 2]]},
         json_mentions=("attributes",)),
    Case("malformed", "action invocation without ';'", "POST", "{compute}?action=stop", 400, ("stop",),
         fields=[("Category", f'stop scheme="{COMPUTE_ACTION}"; class="action"')],
         json={"action": 5}, json_mentions=("action",)),
    Case("malformed", "user mixin whose scheme lacks '#'", "POST", "/-/", 400, ("scheme",),
         fields=[("Category", 'mine; scheme="http://example.com/x"; class="mixin"; location="/mine/"')],
         json={"mixins": [{"term": "mine", "scheme": "http://example.com/x", "location": "/mine/"}]}),
    Case("malformed", "mixin association naming a non-URI", "POST", USER_MIXIN_LOCATION, 400, ("location",),
         fields=[("X-OCCI-Location", "http://ex ample/")],
         json={"resources": [{"location": 5}]}),
    # -- unknown categories (400; a location inside the payload that does not exist: 404) --
    Case("unknown category", "unknown Kind", "POST", "/compute/", 400, ("nope",),
         fields=[("Category", f'nope; scheme="{INFRA}"; class="kind"')],
         json={"kind": INFRA + "nope"}),
    Case("unknown category", "unknown Mixin on create", "POST", "/compute/", 400, ("nomixin",),
         fields=[("Category", KIND_COMPUTE), ("Category", 'nomixin; scheme="http://example.com/x#"; class="mixin"')],
         json={"kind": INFRA + "compute", "mixins": ["http://example.com/x#nomixin"]}),
    Case("unknown category", "unknown Mixin on update", "POST", "{compute}", 400, ("nomixin",),
         fields=[("Category", 'nomixin; scheme="http://example.com/x#"; class="mixin"')],
         json={"mixins": ["http://example.com/x#nomixin"]}),
    Case("unknown category", "unknown Action", "POST", "{compute}?action=explode", 400, ("explode",),
         fields=[("Category", f'explode; scheme="{COMPUTE_ACTION}"; class="action"')],
         json={"action": COMPUTE_ACTION + "explode"}),
    Case("unknown category", "association with an unknown entity", "POST", USER_MIXIN_LOCATION, 404,
         ("/compute/nothing",),
         fields=[("X-OCCI-Location", "/compute/nothing")],
         json={"resources": [{"location": "/compute/nothing"}]}),
    # -- wrong attribute types (400) --
    Case("wrong type", "string for an integer", "POST", "/compute/", 400, ("occi.compute.cores",),
         fields=[("Category", KIND_COMPUTE), ("X-OCCI-Attribute", 'occi.compute.cores="two"')],
         json={"kind": INFRA + "compute", "attributes": {"occi.compute.cores": "two"}}),
    Case("wrong type", "boolean for a number", "POST", "/compute/", 400, ("occi.compute.memory",),
         fields=[("Category", KIND_COMPUTE), ("X-OCCI-Attribute", "occi.compute.memory=true")],
         json={"kind": INFRA + "compute", "attributes": {"occi.compute.memory": True}}),
    Case("wrong type", "fraction for an integer on update", "POST", "{compute}", 400, ("occi.compute.cores",),
         fields=[("X-OCCI-Attribute", "occi.compute.cores=2.5")],
         json={"attributes": {"occi.compute.cores": 2.5}}),
    Case("wrong type", "unknown attribute", "POST", "{storage}", 400, ("occi.storage.colour",),
         fields=[("X-OCCI-Attribute", 'occi.storage.colour="red"')],
         json={"attributes": {"occi.storage.colour": "red"}}),
    # -- pattern violations (400) --
    Case("pattern", "label with a space", "POST", "/network/", 400, ("occi.network.label",),
         fields=[("Category", KIND_NETWORK), ("X-OCCI-Attribute", 'occi.network.label="a b"')],
         json={"kind": INFRA + "network", "attributes": {"occi.network.label": "a b"}}),
    Case("pattern", "MAC address on update", "POST", "{networkinterface}", 400, ("occi.networkinterface.mac",),
         fields=[("X-OCCI-Attribute", 'occi.networkinterface.mac="zz:zz"')],
         json={"attributes": {"occi.networkinterface.mac": "zz:zz"}}),
    Case("pattern", "IP network on update", "POST", "{network}", 400, ("occi.network.address",),
         fields=[("X-OCCI-Attribute", 'occi.network.address="not-a-network"')],
         json={"attributes": {"occi.network.address": "not-a-network"}}),
    # -- enum violations (400) --
    Case("enum", "allocation not dynamic/static", "POST", "{network}", 400, ("occi.network.allocation",),
         fields=[("X-OCCI-Attribute", 'occi.network.allocation="sometimes"')],
         json={"attributes": {"occi.network.allocation": "sometimes"}}),
    Case("enum", "stop method not in the enum (INF-08)", "POST", "{compute}?action=stop", 400, ("method", "bogus"),
         fields=_stop("bogus"),
         json={"action": COMPUTE_ACTION + "stop", "attributes": {"method": "bogus"}}, spec=("INF-08",)),
    # -- immutable attributes (403) --
    Case("immutable", "state set by a partial update", "POST", "{compute}", 403, ("occi.compute.state",),
         fields=[("X-OCCI-Attribute", 'occi.compute.state="inactive"')],
         json={"attributes": {"occi.compute.state": "inactive"}}, spec=("C-04",)),
    Case("immutable", "id changed by a replace", "PUT", "{compute}", 403, ("occi.core.id",),
         fields=[("Category", KIND_COMPUTE),
                 ("X-OCCI-Attribute", 'occi.core.id="urn:uuid:00000000-0000-4000-8000-000000000000"')],
         json={"kind": INFRA + "compute", "id": "urn:uuid:00000000-0000-4000-8000-000000000000"}, spec=("C-04",)),
    Case("immutable", "interface name of a link", "POST", "{networkinterface}", 403,
         ("occi.networkinterface.interface",),
         fields=[("X-OCCI-Attribute", 'occi.networkinterface.interface="eth9"')],
         json={"attributes": {"occi.networkinterface.interface": "eth9"}}, spec=("C-04",)),
    # -- missing required attributes (400) --
    Case("missing required", "storage without a size", "POST", "/storage/", 400, ("occi.storage.size",),
         fields=[("Category", KIND_STORAGE)],
         json={"kind": INFRA + "storage"}, spec=("C-11",)),
    Case("missing required", "link without a target", "POST", "/storagelink/", 400, ("occi.core.target",),
         fields=[("Category", KIND_STORAGELINK), ("X-OCCI-Attribute", 'occi.core.source="{compute}"')],
         json={"kind": INFRA + "storagelink", "source": {"location": "{compute}"}}, spec=("C-11", "L-15")),
    Case("missing required", "ssh_key mixin without its key", "POST", "/compute/", 400,
         ("occi.credentials.ssh.publickey",),
         fields=[("Category", KIND_COMPUTE),
                 ("Category", 'ssh_key; scheme="http://schemas.ogf.org/occi/infrastructure/credentials#"; class="mixin"')],
         json={"kind": INFRA + "compute", "mixins": ["http://schemas.ogf.org/occi/infrastructure/credentials#ssh_key"]},
         spec=("C-11",)),
    Case("missing required", "user mixin without a location", "POST", "/-/", 400, ("location",),
         fields=[("Category", 'mine; scheme="http://example.com/x#"; class="mixin"')],
         json={"mixins": [{"term": "mine", "scheme": "http://example.com/x#"}]}, spec=("L-02",)),
    # -- other refusals of §5.3 --
    Case("other", "Kind does not match the collection", "POST", "/compute/", 400, ("storage", "/compute/"),
         fields=[("Category", KIND_STORAGE), ("X-OCCI-Attribute", "occi.storage.size=1")],
         json={"kind": INFRA + "storage", "attributes": {"occi.storage.size": 1}}),
    Case("other", "mixin not applicable to the Kind", "POST", "/storage/", 403, ("debian-12", "storage"),
         fields=[("Category", KIND_STORAGE), ("Category", 'debian-12; scheme="http://occipy.org/occi/os_tpl#"; class="mixin"'),
                 ("X-OCCI-Attribute", "occi.storage.size=1")],
         json={"kind": INFRA + "storage", "mixins": [OS_TPL], "attributes": {"occi.storage.size": 1}}),
    Case("other", "duplicate id on create", "POST", "/compute/", 409, ("{compute_id}",),
         fields=[("Category", KIND_COMPUTE), ("X-OCCI-Attribute", 'occi.core.id="{compute_id}"')],
         json={"kind": INFRA + "compute", "id": "{compute_id}"}),
    Case("other", "user mixin on a Kind location", "POST", "/-/", 409, ("/compute/",),
         fields=[("Category", 'mine; scheme="http://example.com/x#"; class="mixin"; location="/compute/"')],
         json={"mixins": [{"term": "mine", "scheme": "http://example.com/x#", "location": "/compute/"}]}),
    Case("other", "PUT on a Kind collection", "PUT", "/compute/", 405, ("PUT",),
         fields=[("Category", KIND_COMPUTE)], json={"kind": INFRA + "compute"}, spec=("H-19",)),
)


def _fill(value: Any, world: World) -> Any:
    """Replace {compute}-style placeholders in strings, bytes, lists and dicts."""
    names = {
        "compute": world.compute, "storage": world.storage, "network": world.network,
        "storagelink": world.storagelink, "networkinterface": world.networkinterface,
        "compute_id": "urn:uuid:" + world.compute.rpartition("/")[2],
    }
    if isinstance(value, str):
        for name, replacement in names.items():
            value = value.replace("{" + name + "}", replacement)
        return value
    if isinstance(value, bytes):
        return value
    if isinstance(value, (list, tuple)):
        return type(value)(_fill(item, world) for item in value)
    if isinstance(value, dict):
        return {key: _fill(item, world) for key, item in value.items()}
    return value


def _cases() -> Iterator[Any]:
    for case in TABLE:
        for media in MEDIA:
            marks = [pytest.mark.spec(item) for item in case.spec]
            if case.xfail:
                marks.append(pytest.mark.xfail(strict=True, reason=case.xfail))
            yield pytest.param(case, media, id=f"{case.category}-{case.name}-{media}".replace(" ", "_"), marks=marks)


@dataclass
class Target:
    server: LiveServer
    client: httpx.Client
    world: World
    baseline: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    server = start_server(tmp_path_factory.mktemp("bad-input"))
    client = httpx.Client(base_url=server.url, timeout=10)
    try:
        world = seed(client)
        yield Target(server, client, world, settle(client))
    finally:
        client.close()
        server.stop()


def check_refusal(target: Target, response: httpx.Response, status: int, media: str,
                  mentions: Sequence[str]) -> None:
    """The common assertions: exact status, named problem, negotiated type, Server, data unchanged."""
    assert response.status_code == status, f"expected {status}, got {response.status_code}: {response.text[:500]}"
    content_type = response.headers.get("content-type", "").split(";")[0].strip()
    assert content_type == media, f"Content-Type {content_type!r}, the client asked for {media}"
    # H-09: "The server MUST advertise its OCCI version in every response" (GFD.223 §5.3)
    assert "OCCI/1.2" in response.headers.get("server", ""), response.headers
    message = error_message(response)
    assert message.strip(), "the error carries no message"
    for word in mentions:
        assert word.lower() in message.lower(), f"the message {message!r} does not name {word!r}"
    after = snapshot(target.client)
    assert after == target.baseline, "a refused request changed the stored data"


@pytest.mark.spec("H-09")
@pytest.mark.parametrize(("case", "media"), list(_cases()))
def test_bad_request_is_refused(target: Target, case: Case, media: str) -> None:
    world = target.world
    headers: list[tuple[str, str | bytes]] = [("Accept", media)]
    if media == JSON:
        assert case.json is not None
        body = case.json if isinstance(case.json, bytes) else json.dumps(_fill(case.json, world)).encode()
        headers.append(("Content-Type", JSON))
        mentions = case.json_mentions or case.mentions
    else:
        assert case.fields is not None
        extra, body = text_request(media, _fill(case.fields, world))
        headers += [("Content-Type", media), *extra]
        mentions = case.mentions
    response = target.client.request(case.method, _fill(case.target, world), headers=wire(headers), content=body)
    check_refusal(target, response, case.status, media, [_fill(word, world) for word in mentions])


# ---- bad UTF-8, sizes, header counts, media types --------------------------------------------

def _bad_utf8_cases() -> Iterator[Any]:
    hostname = b'occi.compute.hostname="caf\xe9 \xff\xfe"'
    yield pytest.param(TEXT_PLAIN, [("Content-Type", TEXT_PLAIN)],
                       b"Category: " + KIND_COMPUTE.encode() + b"\nX-OCCI-Attribute: " + hostname + b"\n",
                       ("UTF-8",), id="text/plain-body")
    yield pytest.param(
        JSON, [("Content-Type", JSON)],
        b'{"kind": "http://schemas.ogf.org/occi/infrastructure#compute", "title": "caf\xe9 \xff\xfe"}',
        ("UTF-8",), id="json-body")
    # text/occi decodes header bytes as UTF-8 falling back to ISO-8859-1 (text-rendering.md §3), so
    # non-UTF-8 bytes in a *value* are read as Latin-1 text; in a term or a number they are refused.
    yield pytest.param(TEXT_OCCI, [("Content-Type", TEXT_OCCI),
                                   ("Category", b"compute\xff; scheme=\"" + INFRA.encode() + b'"; class="kind"')],
                       b"", ("compute",), id="text/occi-term")
    yield pytest.param(TEXT_OCCI, [("Content-Type", TEXT_OCCI), ("Category", KIND_COMPUTE),
                                   ("X-OCCI-Attribute", b"occi.compute.cores=\xff\xfe")],
                       b"", ("occi.compute.cores",), id="text/occi-number")


@pytest.mark.parametrize(("media", "headers", "body", "mentions"), list(_bad_utf8_cases()))
def test_bad_utf8_is_refused(target: Target, media: str, headers: list[tuple[str, str | bytes]],
                             body: bytes, mentions: tuple[str, ...]) -> None:
    response = target.client.post("/compute/", headers=wire([("Accept", media), *headers]), content=body)
    check_refusal(target, response, 400, media, mentions)


def _big_body(media: str) -> bytes:
    """A syntactically valid create request larger than the 1 MiB limit (the limit, not the parser, refuses)."""
    title = "x" * ((1 << 20) + 10)
    if media == JSON:
        return json.dumps({"kind": INFRA + "compute", "title": title}).encode()
    return f'Category: {KIND_COMPUTE}\nX-OCCI-Attribute: occi.core.title="{title}"\n'.encode()


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("media", MEDIA)
def test_oversized_body_is_413(target: Target, media: str, streamed: bool) -> None:
    body = _big_body(media)
    headers = [("Accept", media), ("Content-Type", media)]
    if media == TEXT_OCCI:
        headers.append(("Category", KIND_COMPUTE))
    content: bytes | Iterator[bytes] = body
    if streamed:  # no Content-Length: the limit must hold while reading the stream
        content = iter([body[i:i + 65536] for i in range(0, len(body), 65536)])
    response = target.client.post("/compute/", headers=headers, content=content)
    check_refusal(target, response, 413, media, ("larger",))


def test_oversized_text_occi_headers_are_refused(tmp_path: Path) -> None:
    """text/occi carries the payload in headers: 2 MiB of them must not get past the header limit.

    The edge (http/protocol.py) refuses them while reading, before the app: 431 in text/plain
    (no Accept was negotiated yet), past `max_header_bytes` (64 KiB), not the 1 MiB body limit.
    """
    server = start_server(tmp_path / "data")  # its own server: a regression would create an entity
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            isolated = Target(server, client, World("", "", "", "", "", ""), snapshot(client))
            title = "x" * (2 << 20)
            headers = [("Accept", TEXT_OCCI), ("Content-Type", TEXT_OCCI), ("Category", KIND_COMPUTE),
                       ("X-OCCI-Attribute", f'occi.core.title="{title}"')]
            response = client.post("/compute/", headers=headers)
            check_refusal(isolated, response, 431, TEXT_PLAIN, ("header",))
    finally:
        server.stop()


@pytest.mark.parametrize("media", MEDIA)
def test_too_many_headers_is_refused(target: Target, media: str) -> None:
    """More header fields than the server accepts (100): 400 naming the limit, nothing created."""
    fields: Fields = [("Category", KIND_COMPUTE)] + [
        ("X-OCCI-Attribute", f'occi.core.title="t{i}"') for i in range(150)
    ]
    if media == JSON:
        headers: list[tuple[str, str | bytes]] = [(f"X-Padding-{i}", "x") for i in range(150)]
        body = json.dumps({"kind": INFRA + "compute"}).encode()
    else:
        headers, body = text_request(TEXT_OCCI, fields)
        if media == TEXT_PLAIN:
            headers = [(f"X-Padding-{i}", "x") for i in range(150)]
            body = text_request(TEXT_PLAIN, fields[:1])[1]
    response = target.client.post("/compute/", headers=wire([("Accept", media), ("Content-Type", media), *headers]),
                                  content=body)
    check_refusal(target, response, 400, media, ("header",))


@pytest.mark.spec("H-06")
@pytest.mark.parametrize("media", MEDIA)
def test_unsupported_content_type_is_415(target: Target, media: str) -> None:
    response = target.client.post("/compute/", headers={"Accept": media, "Content-Type": "application/xml"},
                                  content=b"<compute/>")
    check_refusal(target, response, 415, media, ("application/xml",))


@pytest.mark.spec("H-10")
@pytest.mark.parametrize("media", MEDIA)
def test_higher_client_version_is_501_and_changes_nothing(target: Target, media: str) -> None:
    """Not a 4xx, but the same promises: a message, the negotiated type, nothing stored."""
    headers, body = text_request(media, [("Category", KIND_COMPUTE)]) if media != JSON else (
        [], json.dumps({"kind": INFRA + "compute"}).encode())
    response = target.client.post("/compute/", content=body, headers=wire([
        ("Accept", media), ("Content-Type", media), ("User-Agent", "robust/1 OCCI/1.3"), *headers]))
    check_refusal(target, response, 501, media, ("OCCI/1.3",))


def test_refusals_left_the_seeded_world_intact(target: Target) -> None:
    """After every case above (module order), each seeded entity still answers 200 as it did."""
    snap = snapshot(target.client)
    assert sorted(snap["entities"]) == sorted(target.world.entities)
    assert any(m["scheme"] + m["term"] == USER_MIXIN for m in snap["mixins"])
    members = locations(target.client, USER_MIXIN_LOCATION)
    assert members == [target.world.compute]



@pytest.mark.parametrize(("media", "body"), [
    pytest.param(TEXT_PLAIN, b"Category: " + KIND_COMPUTE.encode() + b'\nX-OCCI-Attribute: occi.core.title="a\x01b"\n',
                 id="text/plain-raw-byte"),
    pytest.param(JSON, b'{"kind": "' + INFRA.encode() + b'compute", "title": "a\\u0001b"}',
                 id="json-escape"),
])
def test_control_characters_are_refused(tmp_path: Path, media: str, body: bytes) -> None:
    """A control character in a value is refused with 400 (no rendering could carry it: RFC 7230
    §3.2 forbids it in text/occi headers), and nothing is created."""
    server = start_server(tmp_path / "data")
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            response = client.post("/compute/", headers={"Content-Type": media, "Accept": media}, content=body)
            assert response.status_code == 400, response.text
            listed = client.get("/compute/", headers={"Accept": "text/uri-list"})
            assert listed.status_code == 200 and listed.text.strip() == ""
    finally:
        server.stop()


_HUGE = str(10**19)  # past any 64-bit integer


@pytest.mark.spec("H-12")
@pytest.mark.parametrize(("query", "status"), [
    ("page=1&number=1001", 413),
    pytest.param(f"page=1&number={_HUGE}", 413, id="huge-number"),
    ("page=1000000&number=1", 200),
    pytest.param(f"page={_HUGE}&number=1", 200, id="huge-page"),
    ("page=0&number=1", 400),
    ("page=1&number=x", 400),
    ("page=1", 400),
])
def test_pagination_bounds(target: Target, query: str, status: int) -> None:
    """Pagination limits: too large a page size is 413, past the end is an empty 200, nonsense is 400."""
    response = target.client.get(f"/compute/?{query}", headers={"Accept": JSON})
    assert response.status_code == status, response.text
    if status == 200:
        assert response.json().get("resources", []) == []
    else:
        assert error_message(response).strip()
