"""The pOCCI fixtures (CESNET/pOCCI `tests/*/*.txt`) judged by `expectations.tsv`.

Each file is read with the parser of its message kind (categories -> parse_categories, entity
locations -> parse_locations / urilist.parse, resource -> parse_entity) through the carrier of its
media type (`text-` body, `http-` header lines, `uri-` uri-list). Accepted files must parse;
rejected ones must raise ParseError (a 400), never another exception.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from occipy.errors import ParseError
from occipy.rendering import text, urilist
from occipy.rendering.messages import CategoryDefinition, EntityMessage

POCCI = Path(__file__).resolve().parents[2] / ".." / "shared" / "conformance" / "pocci-tests"
EXPECTATIONS = POCCI / "expectations.tsv"


def _rows() -> list[dict[str, str]]:
    with EXPECTATIONS.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


ROWS = _rows()


def header_lines(data: bytes) -> list[tuple[str, str]]:
    """`Name: value` lines of a captured header block; lines without ':' (a status line) are skipped."""
    headers = []
    for line in data.decode("utf-8").splitlines():
        name, colon, value = line.partition(":")
        if colon:
            headers.append((name.strip(), value.strip()))
    return headers


def parse_fixture(file: str, message: str) -> object:
    data = (POCCI / file).read_bytes()
    name = Path(file).name
    if name.startswith("uri-"):
        return urilist.parse(data)
    if name.startswith("http-"):
        fields = text.fields_from_headers(header_lines(data), location_alias=True)
    else:
        fields = text.fields_from_body(data)
    if message == "categories":
        return text.parse_categories(fields)
    if message == "entities":
        # pOCCI reads listings and insists on absolute URLs (P-02).
        return text.parse_locations(fields, absolute=True)
    return text.parse_entity(fields)


def test_every_fixture_is_listed() -> None:
    listed = {row["file"] for row in ROWS}
    on_disk = {str(path.relative_to(POCCI)) for path in POCCI.glob("*/*.txt")
               if path.parent.name != "basic"}  # basic/: pOCCI's own parser inputs (class="myClass")
    assert on_disk == listed


@pytest.mark.spec("T-02")
@pytest.mark.parametrize("row", [r for r in ROWS if r["pOCCI_1.0.3_parser"] == "accept"], ids=lambda r: r["file"])
def test_accepted_fixture_parses(row: dict[str, str]) -> None:
    result = parse_fixture(row["file"], row["message"])
    assert isinstance(result, list | EntityMessage)
    if row["message"] == "categories":
        assert result and all(isinstance(c, CategoryDefinition) for c in result)  # type: ignore[union-attr]
    elif row["message"] == "entities":
        assert result and all(str(url).startswith("https://example.com:11443/compute/") for url in result)  # type: ignore[union-attr]
    else:
        assert isinstance(result, EntityMessage)
        assert result.kind == "http://schemas.ogf.org/occi/infrastructure#compute"


@pytest.mark.spec("T-02")
@pytest.mark.parametrize("row", [r for r in ROWS if r["pOCCI_1.0.3_parser"] == "reject"], ids=lambda r: r["file"])
def test_rejected_fixture_is_a_parse_error(row: dict[str, str]) -> None:
    with pytest.raises(ParseError):
        parse_fixture(row["file"], row["message"])


@pytest.mark.spec("T-16")
def test_header_and_body_forms_agree() -> None:
    """The same OpenNebula compute captured as text/plain and as comma-joined text/occi headers."""
    body = text.parse_entity(text.fields_from_body((POCCI / "resource/text-ok-opennebula-compute.txt").read_bytes()))
    headers = text.parse_entity(text.fields_from_headers(
        header_lines((POCCI / "resource/http-ok-opennebula-compute.txt").read_bytes())))
    assert headers.kind == body.kind
    assert headers.attributes == body.attributes
    assert [link.target for link in headers.links] == [link.target for link in body.links]


def test_opennebula_compute_details() -> None:
    message = parse_fixture("resource/text-ok-opennebula-compute.txt", "resource")
    assert isinstance(message, EntityMessage)
    assert message.mixins == (
        "http://opennebula.org/occi/infrastructure#compute",
        "http://occi.example.com/occi/infrastructure/os_tpl#uuid_ttylinux_0",
        "http://schemas.openstack.org/instance/credentials#public_key",
        "http://schemas.openstack.org/compute/instance#user_data",
    )
    assert message.action_links == (
        "http://schemas.ogf.org/occi/infrastructure/compute/action#stop",
        "http://schemas.ogf.org/occi/infrastructure/compute/action#restart",
        "http://schemas.ogf.org/occi/infrastructure/compute/action#suspend",
    )
    storage, network = message.links
    assert storage.target == "/storage/0"
    assert storage.target_kind == "http://schemas.ogf.org/occi/infrastructure#storage"
    assert storage.self_location == "/link/storagelink/compute_103_disk_0"
    assert storage.kind == "http://schemas.ogf.org/occi/infrastructure#storagelink"
    assert storage.mixins == ("http://opennebula.org/occi/infrastructure#storagelink",)
    assert storage.attributes["occi.storagelink.deviceid"] == "/dev/hda"
    assert storage.source == "/compute/103"
    assert network.mixins[0] == "http://schemas.ogf.org/occi/infrastructure/networkinterface#ipnetworkinterface"
    assert message.attributes["occi.compute.cores"] == 1
    assert message.attributes["occi.compute.memory"] == 0.125
    assert message.attributes["org.opennebula.compute.cpu"] == 1.0
    assert message.attributes["org.openstack.compute.user_data"] == "# user data"


def test_category_collection_details() -> None:
    categories = parse_fixture("category-collection/text-ok-dummy.txt", "categories")
    assert isinstance(categories, list)
    by_id = {c.type_id: c for c in categories}
    compute = by_id["http://schemas.ogf.org/occi/infrastructure#compute"]
    assert compute.cls == "kind"
    assert compute.rel == ("http://schemas.ogf.org/occi/core#resource",)
    assert compute.location == "/compute/"
    core_id = compute.attributes[0]
    assert (core_id.name, core_id.mutable, core_id.required) == ("occi.core.id", False, True)
    state = next(a for a in compute.attributes if a.name == "occi.compute.state")
    assert (state.mutable, state.required) == (False, False)
    assert "http://schemas.ogf.org/occi/infrastructure/compute/action#start" in compute.actions


def test_whitespace_inside_captured_uris_is_ignored() -> None:
    """http-ok-opennebula.txt has rel="http: //schemas.ogf.org/...#resource_tpl" (RFC 3986 App. C)."""
    categories = parse_fixture("category-collection/http-ok-opennebula.txt", "categories")
    assert isinstance(categories, list)
    medium = next(c for c in categories if c.term == "medium")
    assert medium.rel == ("http://schemas.ogf.org/occi/infrastructure#resource_tpl",)
