"""What the edge does with requests it lets in (issue 8): content codings, OCCI fields that are not
UTF-8, a client that goes away mid-body, X-Request-ID, the audit line and JSON log lines.

Against `occipy serve` in a subprocess (test_edge_limits.py's helpers), whose log file is read.
"""

from __future__ import annotations

import gzip
import json
import re
import socket
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.test_edge_limits import EdgeServer, start_edge_server

INFRA = "http://schemas.ogf.org/occi/infrastructure#"
JSON = "application/occi+json"
KIND_COMPUTE = f'compute; scheme="{INFRA}"; class="kind"'
MiB = 1 << 20


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeServer]:
    server = start_edge_server(tmp_path_factory.mktemp("edge-requests"), "--body-timeout", "2")
    yield server
    server.stop()


@pytest.fixture
def client(edge: EdgeServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=edge.url, timeout=20) as client:
        yield client


def create_body(title: str = "edge") -> bytes:
    return json.dumps({"kind": INFRA + "compute", "title": title}).encode()


def wait_for_log(server: EdgeServer, pattern: str, timeout: float = 5.0) -> list[str]:
    """The log lines that match `pattern` once at least one does (the server logs asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [line for line in server.log_lines() if re.search(pattern, line)]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


# ---- Content-Encoding -------------------------------------------------------------------------

def _codings() -> Iterator[object]:
    yield pytest.param("gzip", gzip.compress, id="gzip")
    yield pytest.param("x-gzip", gzip.compress, id="x-gzip")
    yield pytest.param("deflate", zlib.compress, id="deflate-zlib")
    yield pytest.param("deflate", lambda data: zlib.compress(data)[2:-4], id="deflate-raw")
    yield pytest.param("gzip, identity", gzip.compress, id="with-identity")
    yield pytest.param("deflate, gzip", lambda data: gzip.compress(zlib.compress(data)), id="two-codings")


@pytest.mark.parametrize(("coding", "encode"), list(_codings()))
def test_an_encoded_body_is_decoded(client: httpx.Client, coding: str, encode: object) -> None:
    assert callable(encode)
    body = encode(create_body(f"encoded {coding}"))
    response = client.post("/compute/", content=body, headers={
        "Content-Type": JSON, "Accept": JSON, "Content-Encoding": coding})
    assert response.status_code == 201, response.text
    created = client.get(response.headers["location"], headers={"Accept": JSON}).json()
    assert created["title"] == f"encoded {coding}"


def test_a_gzip_body_of_many_members_is_decoded(client: httpx.Client) -> None:
    document = create_body("two members")
    body = gzip.compress(document[:10]) + gzip.compress(document[10:])
    response = client.post("/compute/", content=body, headers={
        "Content-Type": JSON, "Content-Encoding": "gzip"})
    assert response.status_code == 201, response.text


def test_a_gzip_bomb_is_413_without_memory_growth(edge: EdgeServer, client: httpx.Client) -> None:
    """100 MiB of zeros in 100 KB of gzip: decoding stops at the 1 MiB body limit."""
    bomb = gzip.compress(b"\0" * (100 * MiB), compresslevel=9)
    assert len(bomb) < MiB
    peak_before = edge.peak_rss_mib()
    response = client.post("/compute/", content=bomb, headers={
        "Content-Type": JSON, "Accept": JSON, "Content-Encoding": "gzip"})
    assert response.status_code == 413, response.text
    assert "once its gzip coding is decoded" in response.json()["message"]
    assert edge.peak_rss_mib() - peak_before < 20


def test_an_unknown_coding_is_415_naming_it(client: httpx.Client) -> None:
    response = client.post("/compute/", content=create_body(), headers={
        "Content-Type": JSON, "Accept": JSON, "Content-Encoding": "br"})
    assert response.status_code == 415
    assert "Content-Encoding br is not supported" in response.json()["message"]
    assert response.headers["accept-encoding"] == "gzip, x-gzip, deflate"


@pytest.mark.parametrize(("body", "mentions"), [
    (b"\x1f\x8b\x08\x00garbage-that-is-not-deflate", "cannot be decoded"),
    (gzip.compress(create_body())[:-12], "truncated"),
], ids=["corrupt", "truncated"])
def test_a_broken_gzip_body_is_400(client: httpx.Client, body: bytes, mentions: str) -> None:
    response = client.post("/compute/", content=body, headers={
        "Content-Type": JSON, "Accept": JSON, "Content-Encoding": "gzip"})
    assert response.status_code == 400, response.text
    assert mentions in response.json()["message"]


# ---- OCCI header fields must be UTF-8 -----------------------------------------------------------

@pytest.mark.parametrize(("field", "value"), [
    ("Category", b"compute\xff; scheme=\"" + INFRA.encode() + b"\"; class=\"kind\""),
    ("X-OCCI-Attribute", b'occi.core.title="caf\xe9"'),
    ("Link", b'</network/x>; rel="' + INFRA.encode() + b'network"; title="\xc3\x28"'),
    ("X-OCCI-Location", b"/compute/\xfe"),
])
def test_an_occi_field_that_is_not_utf8_is_400_naming_it(client: httpx.Client, field: str, value: bytes) -> None:
    headers: list[tuple[str, str | bytes]] = [("Content-Type", "text/occi"), ("Accept", "text/plain")]
    if field != "Category":
        headers.append(("Category", KIND_COMPUTE))
    headers.append((field, value))
    response = client.post("/compute/", headers=[(k, v if isinstance(v, bytes) else v.encode()) for k, v in headers])
    assert response.status_code == 400, response.text
    assert f"the {field} header field is not valid UTF-8" in response.text


def test_other_fields_may_still_be_latin1(client: httpx.Client) -> None:
    response = client.get("/-/", headers=[(b"X-Note", b"caf\xe9")])
    assert response.status_code == 200


# ---- a client that goes away mid-body -----------------------------------------------------------

def test_a_client_that_disconnects_mid_body_is_one_info_line(edge: EdgeServer) -> None:
    before = len(edge.log_lines())
    with socket.create_connection(("127.0.0.1", edge.port), timeout=5) as sock:
        sock.sendall(b"POST /compute/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/occi+json\r\n"
                     b"Content-Length: 5000\r\n\r\n" + b"{" * 100)
        time.sleep(0.2)
    assert wait_for_log(edge, "went away before its request body was complete")
    time.sleep(0.3)
    new = edge.log_lines()[before:]
    assert len(new) == 1, "\n".join(new)
    assert " INFO occipy.http: POST /compute/: the client went away" in new[0]
    assert "Traceback" not in edge.log() and "Exception in ASGI application" not in edge.log()


# ---- X-Request-ID and the audit line --------------------------------------------------------------

def test_a_valid_request_id_is_echoed(client: httpx.Client) -> None:
    response = client.get("/-/", headers={"X-Request-ID": "abc-123_X.y"})
    assert response.headers["x-request-id"] == "abc-123_X.y"


@pytest.mark.parametrize("given", ["has space", "a" * 129, "semi;colon", "caf\u00e9", ""])
def test_an_unsafe_request_id_is_replaced(client: httpx.Client, given: str) -> None:
    response = client.get("/-/", headers=[(b"X-Request-ID", given.encode())])
    made = response.headers["x-request-id"]
    assert made != given and re.fullmatch(r"[0-9a-f]{32}", made), made


def test_every_response_has_a_request_id(client: httpx.Client) -> None:
    first = client.get("/-/").headers["x-request-id"]
    second = client.get("/nothing-here").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", first) and re.fullmatch(r"[0-9a-f]{32}", second)
    assert first != second


def test_a_write_is_one_audit_line(edge: EdgeServer, client: httpx.Client) -> None:
    response = client.post("/compute/", content=create_body("audited"),
                           headers={"Content-Type": JSON, "X-Request-ID": "audit-create-1"})
    assert response.status_code == 201
    location = response.headers["location"].removeprefix(edge.url)
    lines = wait_for_log(edge, r"occipy\.audit: .*request_id=audit-create-1 ")
    assert len(lines) == 1, lines
    assert re.search(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO occipy\.audit: POST /compute/ 201 "
                     r"request_id=audit-create-1 principal=\S+ tenant=\S+ operation=\S+$", lines[0]), lines[0]
    client.delete(location, headers={"X-Request-ID": "audit-delete-1"})
    deleted = wait_for_log(edge, r"occipy\.audit: DELETE .* request_id=audit-delete-1 ")
    assert len(deleted) == 1 and f"DELETE {location} " in deleted[0], deleted
    # reads are not audited
    client.get("/-/", headers={"X-Request-ID": "audit-read-1"})
    time.sleep(0.2)
    assert not [line for line in edge.log_lines() if "audit-read-1" in line]


def test_a_refused_write_is_audited_too(edge: EdgeServer, client: httpx.Client) -> None:
    response = client.post("/compute/", content=b"{", headers={"Content-Type": JSON, "X-Request-ID": "audit-bad-1"})
    assert response.status_code == 400
    lines = wait_for_log(edge, r"occipy\.audit: POST /compute/ 400 request_id=audit-bad-1 ")
    assert len(lines) == 1, lines


# ---- --log-format json ---------------------------------------------------------------------------

def test_json_log_lines(tmp_path: Path) -> None:
    server = start_edge_server(tmp_path / "data", "--log-format", "json")
    try:
        with httpx.Client(base_url=server.url, timeout=20) as client:
            response = client.post("/compute/", content=create_body("json"),
                                   headers={"Content-Type": JSON, "X-Request-ID": "json-1"})
            assert response.status_code == 201
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(b"POST /compute/ HTTP/1.1\r\nHost: x\r\nX-Request-ID: json-gone\r\n"
                         b"Content-Length: 50\r\n\r\nab")
            time.sleep(0.2)
        assert wait_for_log(server, "went away")
    finally:
        server.stop()
    lines = server.log_lines()
    assert lines[0].startswith("occipy 0.1.0: OCCI 1.2 on http://")  # the banner, for a person
    documents = [json.loads(line) for line in lines[1:]]  # every log line is one JSON object
    assert all({"time", "level", "logger", "message"} <= set(d) for d in documents)
    assert any(d["logger"].startswith("uvicorn") for d in documents)
    audits = [d for d in documents if d["logger"] == "occipy.audit"]
    assert len(audits) == 1
    audit = audits[0]
    assert {k: audit[k] for k in ("request_id", "method", "path", "status")} == {
        "request_id": "json-1", "method": "POST", "path": "/compute/", "status": 201}
    assert {"principal", "tenant", "operation"} <= set(audit)
    gone = [d for d in documents if "went away" in d["message"]]
    assert len(gone) == 1 and gone[0]["request_id"] == "json-gone" and gone[0]["level"] == "info"
