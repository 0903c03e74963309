"""Hypothesis against the live server: random bytes, random header values, mutated valid renderings.

Every request goes to one seeded server (an entity of every kind, a user mixin with a member, an
operation) as a create, update, action or mixin request, in text/plain, text/occi or JSON, to
every kind of path (query interface, Kind, Mixin, entity, unbound, unknown). For each answer:
status below 500, `Server` with OCCI/1.2, an answer within the timeout, and the stored data
(test_bad_input.snapshot) unchanged unless the answer was 2xx.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.integration.conftest import LiveServer, start_server
from tests.integration.test_bad_input import (
    COMPUTE_ACTION,
    INFRA,
    JSON,
    KIND_COMPUTE,
    KIND_STORAGELINK,
    MEDIA,
    OS_TPL,
    TEXT_OCCI,
    TEXT_PLAIN,
    USER_MIXIN,
    USER_MIXIN_LOCATION,
    World,
    locations,
    seed,
    settle,
    snapshot,
    wire,
)

TIMEOUT = 10.0  # seconds; a request that gets no answer in this time is a hang
# Examples per test: the default keeps the file well under a minute on 2 shared cores; set
# OCCIPY_FUZZ_EXAMPLES for a longer hunt.
EXAMPLES = int(os.environ.get("OCCIPY_FUZZ_EXAMPLES", "250"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# Entities beyond the seeded ones that successful fuzz requests may leave before they are removed,
# so that the per-request snapshot stays cheap.
MAX_EXTRA_ENTITIES = 6
# String values with control characters are refused (400), so every stored entity must render in
# text/occi too; the render check below covers every entity.
CONTROL_CHARACTERS_BREAK_TEXT_OCCI = False

OCCI_FIELDS = ("Category", "X-OCCI-Attribute", "Link", "X-OCCI-Location")
ACCEPTS = (*MEDIA, *MEDIA, "text/uri-list", "*/*", "application/json", "text/occi+plain", "text/*;q=0.5",
           "application/xml", "text/plain;q=abc, text/occi;q=0")


@dataclass
class Fuzzed:
    server: LiveServer
    client: httpx.Client
    world: World
    baseline: dict[str, Any]


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    # The periodic reconcile is pushed past the run so that the data only changes by requests.
    server = start_server(tmp_path_factory.mktemp("fuzz"), reconcile_interval=3600.0)
    client = httpx.Client(base_url=server.url, timeout=TIMEOUT)
    try:
        world = seed(client)
        yield Fuzzed(server, client, world, settle(client))
    finally:
        client.close()
        server.stop()


# ---- valid renderings to mutate ------------------------------------------------------------------

@dataclass(frozen=True)
class Template:
    """A valid request: where it naturally goes, its text fields and its JSON body."""

    name: str
    method: str
    path: str  # may hold {compute}-style placeholders
    fields: tuple[tuple[str, str], ...]
    json: Any


TEMPLATES: tuple[Template, ...] = (
    Template("create", "POST", "/compute/", (
        ("Category", KIND_COMPUTE),
        ("Category", 'debian-12; scheme="http://occipy.org/occi/os_tpl#"; class="mixin"'),
        ("X-OCCI-Attribute", 'occi.core.title="fuzz \\"vm\\", one"'),
        ("X-OCCI-Attribute", "occi.compute.cores=2, occi.compute.memory=1.5"),
    ), {"kind": INFRA + "compute", "mixins": [OS_TPL], "title": "fuzz \"vm\", one",
        "attributes": {"occi.compute.cores": 2, "occi.compute.memory": 1.5}}),
    Template("create-inline-link", "POST", "/compute/", (
        ("Category", KIND_COMPUTE),
        ("Link", (f'<{{network}}>; rel="{INFRA}network"; category="{INFRA}networkinterface"; '
                  'occi.networkinterface.mac="52:54:00:00:00:01"')),
    ), {"kind": INFRA + "compute", "links": [{"kind": INFRA + "networkinterface",
                                               "target": {"location": "{network}"},
                                               "attributes": {"occi.networkinterface.mac": "52:54:00:00:00:01"}}]}),
    Template("create-link", "POST", "/storagelink/", (
        ("Category", KIND_STORAGELINK),
        ("X-OCCI-Attribute", 'occi.core.source="{compute}", occi.core.target="{storage}"'),
        ("X-OCCI-Attribute", 'occi.storagelink.deviceid="/dev/vdc"'),
    ), {"kind": INFRA + "storagelink", "source": {"location": "{compute}"}, "target": {"location": "{storage}"},
        "attributes": {"occi.storagelink.deviceid": "/dev/vdc"}}),
    Template("update", "POST", "{compute}", (
        ("X-OCCI-Attribute", 'occi.core.title="renamed; by fuzz"'),
        ("X-OCCI-Attribute", 'occi.compute.hostname="fuzzed"'),
    ), {"title": "renamed; by fuzz", "attributes": {"occi.compute.hostname": "fuzzed"}}),
    Template("replace", "PUT", "{storage}", (
        ("Category", f'storage; scheme="{INFRA}"; class="kind"'),
        ("X-OCCI-Attribute", "occi.storage.size=2.0"),
        ("X-OCCI-Attribute", 'occi.core.title="seeded disk"'),
    ), {"kind": INFRA + "storage", "title": "seeded disk", "attributes": {"occi.storage.size": 2.0}}),
    Template("action", "POST", "{compute}?action=restart", (
        ("Category", f'restart; scheme="{COMPUTE_ACTION}"; class="action"'),
        ("X-OCCI-Attribute", 'method="warm"'),
    ), {"action": COMPUTE_ACTION + "restart", "attributes": {"method": "warm"}}),
    Template("associate", "POST", USER_MIXIN_LOCATION, (
        ("X-OCCI-Location", "{storage}"),
    ), {"resources": [{"location": "{storage}"}]}),
    Template("replace-members", "PUT", USER_MIXIN_LOCATION, (
        ("X-OCCI-Location", "{compute}"),
    ), {"resources": [{"location": "{compute}"}]}),
    Template("dissociate", "DELETE", USER_MIXIN_LOCATION, (
        ("X-OCCI-Location", "{network}"),
    ), {"resources": [{"location": "{network}"}]}),
    Template("define-mixin", "POST", "/-/", (
        ("Category", ('fuzz_tag; scheme="http://example.com/occi/fuzz#"; class="mixin"; '
                      'location="/fuzz_tag/"; title="a \\"fuzz\\" tag"')),
    ), {"mixins": [{"term": "fuzz_tag", "scheme": "http://example.com/occi/fuzz#", "location": "/fuzz_tag/",
                    "title": "a \"fuzz\" tag"}]}),
    Template("remove-mixin", "DELETE", "/-/", (
        ("Category", 'fuzz_tag; scheme="http://example.com/occi/fuzz#"; class="mixin"'),
    ), {"mixins": [{"term": "fuzz_tag", "scheme": "http://example.com/occi/fuzz#"}]}),
)

# Every kind of path (http-protocol.md §1): query interface, Kind and Mixin collections (provider
# and user), entities (resources and links), an operation, unbound paths, unknown paths.
PATHS: tuple[str, ...] = (
    "/-/", "/.well-known/org/ogf/occi/-/", "/compute/", "/storage/", "/network/", "/storagelink/",
    "/networkinterface/", "/resource/", "/link/", "/mixin/os_tpl/debian-12/", "/mixin/ipnetwork/",
    USER_MIXIN_LOCATION, "{compute}", "{storage}", "{network}", "{storagelink}", "{networkinterface}",
    "{operation}", "/", "/mixin/", "/unbound/below/", "/compute/no-such-entity", "/nowhere", "/no/where/",
    "/compute", "{compute}/", "/%ff%fe", "/-/operations/nothing",
)
ACTION_QUERIES = ("", "", "?action=restart", "?action=stop", "?action=explode", "?action=", "?action=a;b=c",
                  "?page=1&number=2", "?page=x")


def _fill(text: str, world: World) -> str:
    for name in ("compute", "storage", "network", "storagelink", "networkinterface", "operation"):
        text = text.replace("{" + name + "}", getattr(world, name))
    return text


def _fill_json(value: Any, world: World) -> Any:
    if isinstance(value, str):
        return _fill(value, world)
    if isinstance(value, list):
        return [_fill_json(item, world) for item in value]
    if isinstance(value, dict):
        return {key: _fill_json(item, world) for key, item in value.items()}
    return value


# ---- mutations -------------------------------------------------------------------------------------

INSERTIONS = (b";", b",", b'"', b"\\", b"\xff", b"\xc3", b"\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
              b"\\u0000", b"\\ud800", b"=", b"<", b">", b"#", b" ", b"\t", b"\n", b"{", b"}", b"[", b"]")
OPS = ("drop", "duplicate", "swap", "truncate", "flip-quote", "insert")


@st.composite
def mutations(draw: st.DrawFn) -> list[tuple[str, float, bytes]]:
    return draw(st.lists(st.tuples(st.sampled_from(OPS), st.floats(0, 1), st.sampled_from(INSERTIONS)),
                         min_size=1, max_size=4))


def mutate(data: bytes, steps: Sequence[tuple[str, float, bytes]]) -> bytes:
    """Apply drop/duplicate/swap/truncate/flip-quote/insert steps at relative positions."""
    buffer = bytearray(data)
    for op, where, insertion in steps:
        i = min(int(where * len(buffer)), max(len(buffer) - 1, 0))
        if op == "insert":
            buffer[i:i] = insertion
        elif not buffer:
            continue
        elif op == "drop":
            del buffer[i]
        elif op == "duplicate":
            buffer[i:i] = buffer[i:i + 1]
        elif op == "swap" and i + 1 < len(buffer):
            buffer[i], buffer[i + 1] = buffer[i + 1], buffer[i]
        elif op == "truncate":
            del buffer[i:]
        elif op == "flip-quote":
            quotes = [j for j, byte in enumerate(buffer) if byte in b"\"'"]
            if quotes:
                j = quotes[i % len(quotes)]
                buffer[j] = ord("'") if buffer[j] == ord('"') else ord('"')
    return bytes(buffer)


def header_safe(value: bytes) -> bytes:
    """What HTTP/1.1 can carry in a header value: no CR, LF, NUL or other controls except TAB."""
    return bytes(byte for byte in value if byte == 9 or 32 <= byte != 127).strip(b" \t")


# ---- sending and checking ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Sent:
    method: str
    path: str
    headers: list[tuple[str, bytes]]
    body: bytes


def _request(fuzzed: Fuzzed, sent: Sent) -> httpx.Response:
    try:
        return fuzzed.client.request(sent.method, sent.path, headers=wire(sent.headers), content=sent.body)
    except httpx.TimeoutException:
        pytest.fail(f"no answer within {TIMEOUT} s: {sent}")


def _tidy(fuzzed: Fuzzed) -> None:
    """Keep the world small and complete: drop surplus entities, re-create the user mixin if removed."""
    client = fuzzed.client
    extra = [location for location in locations(client) if location not in fuzzed.world.entities]
    if len(extra) > MAX_EXTRA_ENTITIES:
        for location in extra:
            client.delete(location, headers={"Accept": TEXT_PLAIN})
    mixins = snapshot(client)["mixins"]
    if not any(m["scheme"] + m["term"] == USER_MIXIN for m in mixins):
        scheme, _, term = USER_MIXIN.partition("#")
        client.post("/-/", headers={"Content-Type": JSON}, json={"mixins": [
            {"term": term, "scheme": scheme + "#", "location": USER_MIXIN_LOCATION}]})


def send_and_check(fuzzed: Fuzzed, sent: Sent) -> None:
    """status < 500, Server carries OCCI/1.2, and the data changed only if the answer was 2xx."""
    response = _request(fuzzed, sent)
    event(f"status {response.status_code}")
    assert response.status_code < 500, f"{response.status_code} {response.text[:300]!r} for {sent}"
    assert "OCCI/1.2" in response.headers.get("server", ""), f"no OCCI/1.2 in Server for {sent}"
    if response.status_code >= 400:
        assert response.content.strip(), f"{response.status_code} without a message for {sent}"
    if 200 <= response.status_code < 300:
        _tidy(fuzzed)
        fuzzed.baseline = settle(fuzzed.client)
        check_renderable(fuzzed, sent)
        return
    after = snapshot(fuzzed.client)
    assert after == fuzzed.baseline, (
        f"{response.status_code} answer changed the stored data: {sent}\n{describe_change(fuzzed.baseline, after)}")


def _has_control_characters(document: Any) -> bool:
    if isinstance(document, str):
        return any(ord(c) < 32 or 127 <= ord(c) < 160 for c in document)
    if isinstance(document, list):
        return any(_has_control_characters(item) for item in document)
    if isinstance(document, dict):
        return any(_has_control_characters(item) for item in document.values())
    return False


def check_renderable(fuzzed: Fuzzed, sent: Sent) -> None:
    """After a successful write, every entity still renders in text/plain and text/occi."""
    for location, document in fuzzed.baseline["entities"].items():
        for media in (TEXT_PLAIN, TEXT_OCCI):
            if media == TEXT_OCCI and CONTROL_CHARACTERS_BREAK_TEXT_OCCI and _has_control_characters(document):
                continue
            try:
                response = fuzzed.client.get(location, headers={"Accept": media})
            except httpx.HTTPError as error:
                pytest.fail(f"GET {location} as {media} failed ({error!r}) after {sent}")
            assert response.status_code == 200, f"GET {location} as {media}: {response.status_code} after {sent}"


def describe_change(before: dict[str, Any], after: dict[str, Any]) -> str:
    """The entities and mixins that differ between two snapshots, compactly."""
    lines = []
    for location in sorted(set(before["entities"]) | set(after["entities"])):
        old, new = before["entities"].get(location), after["entities"].get(location)
        if old != new:
            lines.append(f"{location}: {json.dumps(old)[:600]} -> {json.dumps(new)[:600]}")
    if before["mixins"] != after["mixins"]:
        lines.append(f"mixins: {[m['term'] for m in before['mixins']]} -> {[m['term'] for m in after['mixins']]}")
    return "\n".join(lines) or "(only the root listing differs)"


@st.composite
def targets(draw: st.DrawFn, natural: str) -> str:
    """The template's own path most of the time, else any kind of path; sometimes an odd query."""
    path = natural if draw(st.integers(0, 3)) else draw(st.sampled_from(PATHS))  # 3 in 4: its own path
    if "?" not in path:
        path += draw(st.sampled_from(ACTION_QUERIES))
    return path


@st.composite
def mutated_requests(draw: st.DrawFn, world: World) -> Sent:
    template = draw(st.sampled_from(TEMPLATES))
    media = draw(st.sampled_from(MEDIA))
    accept = draw(st.sampled_from(ACCEPTS))
    method = draw(st.sampled_from((template.method, template.method, "POST", "PUT")))
    path = _fill(draw(targets(template.path)), world)
    headers: list[tuple[str, bytes]] = [("Accept", accept.encode()), ("Content-Type", media.encode())]
    steps = draw(mutations())
    if media == JSON:
        body = mutate(json.dumps(_fill_json(template.json, world)).encode(), steps)
        return Sent(method, path, headers, body)
    fields = [(name, _fill(value, world).encode()) for name, value in template.fields]
    if media == TEXT_PLAIN:
        body = b"".join(name.encode() + b": " + value + b"\n" for name, value in fields)
        return Sent(method, path, headers, mutate(body, steps))
    # text/occi: mutate the value of one header (the names must stay HTTP tokens)
    index = draw(st.integers(0, len(fields) - 1))
    name, value = fields[index]
    fields[index] = (name, header_safe(mutate(value, steps)))
    if draw(st.booleans()):  # repeated fields may also arrive comma-joined (GFD.229 §7)
        joined: dict[str, list[bytes]] = {}
        for field_name, field_value in fields:
            joined.setdefault(field_name, []).append(field_value)
        fields = [(field_name, b", ".join(v for v in values if v)) for field_name, values in joined.items()]
    return Sent(method, path, headers + [(n, v) for n, v in fields if v], draw(st.sampled_from((b"", b"OK"))))


@pytest.mark.spec("H-09")
@SETTINGS
@given(data=st.data())
def test_mutated_renderings(fuzzed: Fuzzed, data: st.DataObject) -> None:
    send_and_check(fuzzed, data.draw(mutated_requests(fuzzed.world)))


CONTENT_TYPES = (*MEDIA, "application/json", "text/occi+plain", "text/uri-list", "", "application/xml",
                 "text/plain; charset=latin-1", "multipart/form-data; boundary=\"x\"", "text/occi;;;")


@SETTINGS
@given(data=st.data(), body=st.binary(max_size=400), content_type=st.sampled_from(CONTENT_TYPES),
       method=st.sampled_from(("POST", "PUT", "DELETE")))
def test_random_bytes(fuzzed: Fuzzed, data: st.DataObject, body: bytes, content_type: str, method: str) -> None:
    path = _fill(data.draw(targets(data.draw(st.sampled_from(PATHS)))), fuzzed.world)
    if method == "DELETE" and not path.startswith(("/-/", USER_MIXIN_LOCATION)):
        method = "POST"  # DELETE of a collection or an entity would legitimately empty the world
    headers = [("Accept", data.draw(st.sampled_from(ACCEPTS)).encode())]
    if content_type:
        headers.append(("Content-Type", content_type.encode()))
    send_and_check(fuzzed, Sent(method, path, headers, body))


HEADER_NAMES = (*OCCI_FIELDS, "X-OCCI-Category", "X-OCCI-Link", "Accept", "Content-Type", "User-Agent",
                "Prefer", "Host", "Content-Encoding")


@SETTINGS
@given(data=st.data(),
       fields=st.lists(st.tuples(st.sampled_from(HEADER_NAMES), st.binary(max_size=200)), min_size=1, max_size=6),
       method=st.sampled_from(("POST", "PUT")))
def test_random_header_values(fuzzed: Fuzzed, data: st.DataObject, fields: list[tuple[str, bytes]],
                              method: str) -> None:
    path = _fill(data.draw(targets(data.draw(st.sampled_from(PATHS)))), fuzzed.world)
    headers = [("Accept", data.draw(st.sampled_from(ACCEPTS)).encode()), ("Content-Type", b"text/occi")]
    for name, value in fields:
        value = header_safe(value)
        if name.lower() in ("accept", "content-type", "host"):  # replace rather than repeat these
            headers = [(n, v) for n, v in headers if n.lower() != name.lower()]
        if value:
            headers.append((name, value))
    send_and_check(fuzzed, Sent(method, path, headers, b""))


@settings(max_examples=max(EXAMPLES // 4, 10), deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_json_with_non_utf8_bytes(fuzzed: Fuzzed, data: st.DataObject) -> None:
    """Every example carries at least one byte that is not UTF-8 (400, never 500)."""
    template = data.draw(st.sampled_from(TEMPLATES))
    steps = data.draw(mutations()) + [("insert", data.draw(st.floats(0, 1)), data.draw(st.sampled_from(
        (b"\xff", b"\xc3", b"\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"))))]
    body = mutate(json.dumps(_fill_json(template.json, fuzzed.world)).encode(), steps)
    path = _fill(data.draw(targets(template.path)), fuzzed.world)
    send_and_check(fuzzed, Sent(template.method, path, [("Content-Type", JSON.encode()),
                                                        ("Accept", JSON.encode())], body))
