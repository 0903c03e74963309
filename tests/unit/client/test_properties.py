"""Property tests: whatever a server answers, and whatever a user types, the SDK raises only
OcciError subclasses; command-line values round-trip through their definitions."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from occipy import errors
from occipy.cli.main import _link_spec
from occipy.client import Client, ClientCertificate, Model
from occipy.client._auth import tls_verify
from occipy.model.catalogue import COMPUTE
from occipy.model.category import AttributeDef
from occipy.rendering.messages import CategoryDefinition

from .fake import BASE, FakeServer

MEDIA = ["application/occi+json", "text/plain", "text/occi", "text/uri-list", "", "text/html"]
_DISCOVERY = FakeServer()


def _client_answering(status: int, media: str, body: bytes, header_value: str) -> Client:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/-/":
            return _DISCOVERY(request)
        headers = [("Content-Type", media)] if media else []
        if media == "text/occi":
            headers.append(("Category", header_value))
            headers.append(("X-OCCI-Attribute", header_value))
        return httpx.Response(status, content=body, headers=headers)

    return Client(BASE, transport=httpx.MockTransport(handler))


header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=80)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(status=st.sampled_from([200, 201, 204, 400, 404, 409, 500, 503]), media=st.sampled_from(MEDIA),
       body=st.one_of(st.binary(max_size=200), header_text.map(str.encode),
                      st.sampled_from([b'{"kind": 1}', b"[1, 2]", b"Category: x", b"X-OCCI-Location: ::",
                                       b'{"resources": [{"kind": null}]}', b"\xff\xfe"])),
       header_value=header_text)
def test_any_answer_gives_an_entity_or_an_occi_error(status: int, media: str, body: bytes,
                                                     header_value: str) -> None:
    with _client_answering(status, media, body, header_value) as occi:
        for call in (lambda: occi.get("/compute/1"), lambda: occi.list_locations("compute", page_size=0),
                     lambda: occi.list_entities("compute", page_size=0),
                     lambda: occi.create("network")):
            try:
                call()
            except errors.OcciError:
                pass


@settings(max_examples=100, deadline=None)
@given(body=st.binary(max_size=300), media=st.sampled_from(MEDIA))
def test_any_discovery_answer_gives_a_model_or_an_occi_error(body: bytes, media: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"Content-Type": media} if media else {})

    with Client(BASE, transport=httpx.MockTransport(handler)) as occi:
        try:
            occi.discover()
        except errors.OcciError:
            pass


_MODEL = Model.from_definitions([], typed=True)
DEFS = [AttributeDef("s"), AttributeDef("n", type="number"), AttributeDef("b", type="boolean"),
        AttributeDef("a", type="array"), AttributeDef("o", type="object"), None]


@given(text=st.text(max_size=40), adef=st.sampled_from(DEFS), typed=st.booleans())
def test_command_line_values_never_crash(text: str, adef: AttributeDef | None, typed: bool) -> None:
    model = _MODEL if typed else Model.from_definitions([], typed=False)
    try:
        model.value_from_text(adef, text)
    except errors.InvalidAttribute as exc:
        assert adef is not None and adef.name in exc.message


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=6,
)


@given(value=st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.booleans(),
                       st.lists(json_values, max_size=3), st.dictionaries(st.text(max_size=5), json_values,
                                                                         max_size=3)))
def test_typed_values_round_trip_through_their_text(value: object) -> None:
    kind = ("boolean" if isinstance(value, bool) else "number" if isinstance(value, (int, float))
            else "array" if isinstance(value, list) else "object")
    adef = AttributeDef("x", type=kind)
    parsed = _MODEL.value_from_text(adef, json.dumps(value))
    if isinstance(value, float):
        assert isinstance(parsed, (int, float)) and math.isclose(parsed, value, rel_tol=0, abs_tol=0)
    else:
        assert parsed == value
    assert _MODEL.value_from_text(AttributeDef("s"), json.dumps(value)) == json.dumps(value)  # strings stay


def test_untyped_values_are_guessed() -> None:
    untyped = Model.from_definitions([], typed=False)
    assert untyped.value_from_text(None, "2") == 2
    assert untyped.value_from_text(None, "2.5") == 2.5
    assert untyped.value_from_text(None, "true") is True
    assert untyped.value_from_text(None, '"2"') == "2"
    assert untyped.value_from_text(None, '["a"]') == ["a"]
    assert untyped.value_from_text(None, "debian") == "debian"


@given(path=st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=":"), min_size=1,
                    max_size=20),
       kind=st.one_of(st.none(), st.from_regex(r"[a-z][a-z_]{0,10}", fullmatch=True)))
def test_link_option_splits_target_and_kind(path: str, kind: str | None) -> None:
    target = "/storage/" + path
    spec = _link_spec(target if kind is None else f"{target}:{kind}")
    assert (spec.target, spec.kind) == (target, kind)
    url = _link_spec("http://host:8080/storage/1")
    assert (url.target, url.kind) == ("http://host:8080/storage/1", None)


@pytest.mark.spec("C-04")
@pytest.mark.spec("C-11")
def test_attribute_checks_name_the_attribute() -> None:
    with Client(BASE, transport=httpx.MockTransport(FakeServer())) as occi:
        model = occi.model
    defs = model.attribute_defs(COMPUTE)
    assert defs["occi.core.id"].required and not defs["occi.core.id"].mutable
    with pytest.raises(errors.InvalidAttribute, match="occi.compute.memory"):
        model.check_attributes(COMPUTE, [], {"occi.compute.memory": "lots"}, creating=True)
    with pytest.raises(errors.ImmutableAttribute, match="occi.compute.state"):
        model.check_attributes(COMPUTE, [], {"occi.compute.state": "active"}, creating=True)
    # a proposed id is fine on create (core.md §2.1), never on update
    assert model.check_attributes(COMPUTE, [], {"occi.core.id": "x"}, creating=True) == {"occi.core.id": "x"}
    with pytest.raises(errors.ImmutableAttribute):
        model.check_attributes(COMPUTE, [], {"occi.core.id": "y"}, creating=False, current={"occi.core.id": "x"})
    assert model.check_attributes(COMPUTE, [], {"occi.core.id": "x"}, creating=False,
                                  current={"occi.core.id": "x"}) == {}
    # C-11: a {required} attribute without a default must be given at creation
    strict = Model.from_definitions([
        CategoryDefinition("http://example.com/occi#", "thing", "kind", location="/thing/",
                           attributes=(AttributeDef("com.example.size", type="number", required=True),)),
    ], typed=True)
    with pytest.raises(errors.InvalidAttribute, match="com.example.size: required"):
        strict.check_attributes("http://example.com/occi#thing", [], {}, creating=True)
    assert strict.check_attributes("http://example.com/occi#thing", [], {"com.example.size": 2},
                                   creating=True) == {"com.example.size": 2}


def test_client_certificate_is_loaded_into_the_tls_context(tmp_path: Path) -> None:
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    made = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=alice",
                           "-days", "1", "-keyout", str(key), "-out", str(cert)], capture_output=True, check=False)
    if made.returncode != 0:  # pragma: no cover - openssl is part of Debian's base system
        pytest.fail(f"openssl could not make a test certificate: {made.stderr.decode()}")
    context = tls_verify(True, ClientCertificate(cert, key))
    assert not isinstance(context, bool)
    Client("https://occi.test", cert=ClientCertificate(cert, key)).close()
    with pytest.raises(FileNotFoundError):
        Client("https://occi.test", cert=ClientCertificate(tmp_path / "missing.pem"))
