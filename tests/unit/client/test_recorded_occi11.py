"""The SDK against recorded answers of OCCI 1.1 servers (rOCCI dummy, OpenNebula, EC2).

The pOCCI fixtures (`shared/conformance/pocci-tests`, captured from real servers; see its
`expectations.tsv`) are replayed through httpx.MockTransport: `text-` files as text/plain
bodies, `http-` files as text/occi header sections, `uri-` files as text/uri-list. These
servers know no JSON: the client must fall back, parse what they say, and turn every file
pOCCI rejects into a ParseError (an OcciError), never another exception.
"""

from __future__ import annotations

import csv
from pathlib import Path

import httpx
import pytest

from occipy import errors
from occipy.client import Client
from occipy.model.catalogue import COMPUTE, NETWORKINTERFACE, STORAGELINK

FIXTURES = Path(__file__).resolve().parents[3] / ".." / "shared" / "conformance" / "pocci-tests"
BASE = "https://example.com:11443"
CATEGORIES_OK = "category-collection/text-ok-opennebula.txt"


def _expectations() -> list[tuple[str, str, str, str]]:
    with (FIXTURES / "expectations.tsv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return [(r["file"], r["media_type"], r["message"], r["pOCCI_1.0.3_parser"]) for r in rows]


EXPECTATIONS = _expectations()


def _ids(rows: list[tuple[str, str, str, str]]) -> list[str]:
    return [row[0] for row in rows]


def recorded_response(name: str, media_type: str) -> httpx.Response:
    """The fixture as the HTTP answer a 1.1 server gave: headers for text/occi, else the body."""
    raw = (FIXTURES / name).read_bytes()
    if media_type != "text/occi":
        return httpx.Response(200, content=raw, headers={"Content-Type": media_type})
    headers: list[tuple[str, str]] = [("Content-Type", "text/occi")]
    for line in raw.decode("utf-8").splitlines():
        if not line.strip() or line.startswith("HTTP/"):
            continue
        if line[0] in " \t" and headers:  # obsolete folding
            headers[-1] = (headers[-1][0], headers[-1][1] + " " + line.strip())
            continue
        name_part, _, value = line.partition(":")
        if name_part.lower() == "content-type":
            continue
        headers.append((name_part.strip(), value.strip()))
    return httpx.Response(200, content=b"OK", headers=headers)


class RecordedServer:
    """A 1.1 server: answers /-/ with a recorded category collection, GET of anything else with
    the recorded entity or listing. `refuse_json`: 406 to a JSON-only Accept (else it ignores
    Accept and answers its own type, as many 1.1 servers did)."""

    def __init__(self, categories: tuple[str, str], other: tuple[str, str] | None = None,
                 refuse_json: bool = False) -> None:
        self.categories = categories
        self.other = other
        self.refuse_json = refuse_json
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.refuse_json and request.headers.get("accept", "").startswith("application/"):
            return httpx.Response(406, text="Not Acceptable", headers={"Content-Type": "text/plain"})
        if request.url.path == "/-/":
            return recorded_response(*self.categories)
        assert self.other is not None
        return recorded_response(*self.other)


def client_for(server: RecordedServer) -> Client:
    return Client(BASE, transport=httpx.MockTransport(server))


@pytest.mark.parametrize("refuse_json", [False, True], ids=["ignores-accept", "refuses-json"])
@pytest.mark.parametrize(
    ("name", "media_type", "message", "verdict"),
    [row for row in EXPECTATIONS if row[2] == "categories"],
    ids=_ids([row for row in EXPECTATIONS if row[2] == "categories"]),
)
def test_discovery_from_recorded_category_collections(
        name: str, media_type: str, message: str, verdict: str, refuse_json: bool) -> None:
    server = RecordedServer((name, media_type), refuse_json=refuse_json)
    with client_for(server) as occi:
        if verdict == "reject":
            with pytest.raises(errors.ParseError):
                occi.discover()
            return
        model = occi.discover()
        assert occi.media_type == ("text/occi" if media_type == "text/occi" else "text/plain")
        assert not model.typed  # 1.1 text discovery: names and flags only
        assert model.kind("entity").scheme == "http://schemas.ogf.org/occi/core#"
        if "compute;" not in (FIXTURES / name).read_text(encoding="utf-8"):
            return  # the capitalization fixtures hold a few categories only
        compute = model.kind("compute")
        assert compute.type_id == COMPUTE and compute.location == "/compute/"
        assert any(a.endswith("#start") for a in model.action_ids(COMPUTE))
        # flags survive: occi.core.id is immutable everywhere
        assert not model.attribute_defs(COMPUTE)["occi.core.id"].mutable
        assert model.state_attribute(COMPUTE) == "occi.compute.state"


def test_terms_resolve_on_a_recorded_opennebula_model() -> None:
    server = RecordedServer(("category-collection/text-ok-opennebula.txt", "text/plain"))
    with client_for(server) as occi:
        model = occi.discover()
        templates = [m for m in model.mixins.values() if "os_tpl" in m.scheme]
        assert templates
        first = templates[0]
        assert model.mixin(first.term).type_id == first.type_id
        assert model.mixin(f"os_tpl#{first.term}").type_id == first.type_id
        # "compute" names both the kind and OpenNebula's compute mixin: the kind wins for lists
        assert model.category("compute").type_id == COMPUTE


@pytest.mark.parametrize(
    ("name", "media_type", "message", "verdict"),
    [row for row in EXPECTATIONS if row[2] == "resource"],
    ids=_ids([row for row in EXPECTATIONS if row[2] == "resource"]),
)
def test_get_recorded_compute_renderings(name: str, media_type: str, message: str, verdict: str) -> None:
    server = RecordedServer((CATEGORIES_OK, "text/plain"), (name, media_type))
    with client_for(server) as occi:
        if verdict == "reject":
            with pytest.raises(errors.ParseError):
                occi.get("/compute/103")
            return
        entity = occi.get("/compute/103")
    assert entity.kind == COMPUTE
    assert entity.location == BASE + "/compute/103"
    assert entity.entity_id == entity.attributes["occi.core.id"]
    assert entity.attributes["occi.compute.state"] == "active"
    assert all("/action#" in a for a in entity.actions)
    link_kinds = {link.kind for link in entity.links}
    assert link_kinds <= {STORAGELINK, NETWORKINTERFACE}
    assert STORAGELINK in link_kinds
    for link in entity.links:
        # a 1.1 link names itself with self=: its location is usable
        assert link.location.startswith(BASE + "/link/")
        assert link.attributes["occi.core.source"]
        assert link.target


def test_recorded_opennebula_values_are_typed() -> None:
    server = RecordedServer((CATEGORIES_OK, "text/plain"), ("resource/text-ok-opennebula-compute.txt", "text/plain"))
    with client_for(server) as occi:
        entity = occi.get("/compute/103")
    assert entity.attributes["occi.compute.memory"] == 0.125
    assert entity.attributes["occi.compute.cores"] == 1
    assert entity.title == "one-103"
    nic = next(link for link in entity.links if link.kind == NETWORKINTERFACE)
    assert nic.attributes["occi.networkinterface.mac"] == "02:00:c0:a8:00:4f"
    assert nic.target == "/network/0"
    assert nic.location == BASE + "/link/networkinterface/compute_103_nic_0"


@pytest.mark.parametrize(
    ("name", "media_type", "message", "verdict"),
    [row for row in EXPECTATIONS if row[2] == "entities"],
    ids=_ids([row for row in EXPECTATIONS if row[2] == "entities"]),
)
def test_list_recorded_entity_collections(name: str, media_type: str, message: str, verdict: str) -> None:
    server = RecordedServer((CATEGORIES_OK, "text/plain"), (name, media_type))
    with client_for(server) as occi:
        if name == "entity-collection/invalid-uri.txt":
            # pOCCI rejects a relative location in a listing (P-02 is a server rule); the SDK is
            # deliberately lenient and resolves it against the endpoint.
            assert occi.list_locations("compute")[1] == BASE + "/compute/17679ebd-975f-4ea0-b42b-47405178c360"
            return
        if verdict == "reject":
            with pytest.raises(errors.ParseError):
                occi.list_locations("compute")
            return
        locations = occi.list_locations("compute")
    assert locations
    assert all(loc.startswith(BASE + "/compute/") for loc in locations)
    assert len(set(locations)) == len(locations)
    # 1.1 servers ignore `page`/`number` and answer everything: the SDK must not loop
    listing_requests = [r for r in server.requests if r.url.path == "/compute/"]
    assert len(listing_requests) <= 2
