"""Checklists H-* (OCCI HTTP Protocol, GFD.223) and L-* (GFD.185 behaviour kept for 1.1 clients).

Every operation of http-protocol.md §6 is driven over plain HTTP in text/plain, text/occi and
JSON where the item is about operations. Tests that change the whole server (collection-wide
actions and deletes, DELETE /) run on a fresh server; the others share the session server.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conformance.conftest import (
    ALL_MEDIA,
    COMPUTE,
    COMPUTE_ACTION,
    DEBIAN,
    ENTITY,
    JSON,
    NETWORK,
    NETWORKINTERFACE,
    OCCI,
    OCCI_PLAIN,
    PLAIN,
    STORAGE,
    STORAGELINK,
    TEXT_MEDIA,
    URI_LIST,
    Occi,
    TextMessage,
    category_value,
    define_mixin,
    discovered,
    echo_message,
    entity_message,
    link_value,
    media_type,
    path_of,
    send_entity,
    text_categories,
    text_fields,
    text_locations,
    view_of,
)
from tests.integration.conftest import start_server

ABSOLUTE = re.compile(r"^https?://[^/]+/")


def listing(occi: Occi, path: str, media: str) -> list[str]:
    return occi.locations(path, accept=media)


# --- H-01, H-02, L-01: locations ------------------------------------------------------------------
@pytest.mark.spec("H-01")
@pytest.mark.spec("H-02")
@pytest.mark.spec("L-01")
@pytest.mark.spec("P-03")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_category_locations(occi: Occi, media: str) -> None:
    response = occi.get("/-/", accept=media)
    if media == JSON:
        doc = response.json()
        categories = [(k["scheme"] + k["term"], "kind", k.get("location")) for k in doc["kinds"]]
        categories += [(m["scheme"] + m["term"], "mixin", m.get("location")) for m in doc["mixins"]]
    else:
        categories = [(c.type_id, c.cls, c.params.get("location")) for c in text_categories(response)
                      if c.cls != "action"]
    for type_id, _cls, location in categories:
        if type_id == ENTITY:
            assert location is None  # "MUST NOT be bound to a URL" (GFD.223 §4)
            continue
        assert isinstance(location, str), type_id
        assert location.startswith("/") and location.endswith("/"), (type_id, location)
    locations = [location for _, _, location in categories if location]
    assert len(locations) == len(set(locations))


@pytest.mark.spec("H-03")
@pytest.mark.spec("L-05")
@pytest.mark.parametrize("media", [PLAIN, OCCI, JSON, URI_LIST])
def test_root_lists_everything(occi: Occi, media: str) -> None:
    compute, storage = occi.compute(), occi.storage()
    link = occi.link(STORAGELINK, compute, storage)
    everything = listing(occi, "/", media)
    assert {compute, storage, link} <= set(everything)


@pytest.mark.spec("L-05")
def test_unbound_namespace_path_is_a_listing(occi: Occi) -> None:
    occi.compute(mixins=[DEBIAN])
    response = occi.get("/mixin/")
    assert response.status_code == 200, response.text


@pytest.mark.spec("L-05")
def test_unbound_path_that_names_nothing_is_not_found(occi: Occi) -> None:
    assert occi.get(f"/nothing-{uuid.uuid4().hex[:6]}/").status_code == 404


@pytest.mark.spec("L-05")
def test_delete_on_the_root_is_refused_unless_enabled(occi: Occi) -> None:
    location = occi.compute()
    response = occi.request("DELETE", "/")
    assert response.status_code == 403, response.text
    assert occi.get(location).status_code == 200


@pytest.mark.spec("L-05")
def test_delete_on_the_root_deletes_everything_when_enabled(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", allow_delete_root=True)
    client = Occi(server.url)
    try:
        compute, network = client.compute(), client.network()
        link = client.link(NETWORKINTERFACE, compute, network)
        response = client.request("DELETE", "/")
        assert response.status_code == 200, response.text
        for location in (compute, network, link):
            assert client.get(location).status_code == 404
        assert client.locations("/") == []
    finally:
        client.close()
        server.stop()


# --- H-04 .. H-11: headers, negotiation, versions -------------------------------------------------
def assorted_responses(occi: Occi) -> dict[int, httpx.Response]:
    compute = occi.compute()
    occi.wait_state(compute, "active")
    responses = {
        200: occi.get("/-/"),
        201: occi.create_response(COMPUTE, PLAIN),
        400: occi.create_response(STORAGE, PLAIN),
        403: occi.request("DELETE", "/-/", media=PLAIN,
                          message=TextMessage().add("Category", category_value(DEBIAN, "mixin"))),
        404: occi.get("/compute/does-not-exist"),
        405: occi.request("PUT", "/-/"),
        406: occi.get("/-/", accept="application/xml"),
        409: occi.act(compute, "start", PLAIN),
        413: occi.get("/compute/", params={"page": "1", "number": "100000"}),
        415: occi.request("POST", "/compute/", media="application/xml", accept=PLAIN, content=b"<compute/>"),
        501: occi.get("/-/", headers={"User-Agent": "conformance-test/1.0 OCCI/1.3"}),
    }
    return responses


@pytest.mark.spec("H-04")
@pytest.mark.spec("H-09")
@pytest.mark.spec("H-11")
@pytest.mark.spec("L-18")
def test_every_response_has_the_mandatory_headers(occi: Occi) -> None:
    for status, response in assorted_responses(occi).items():
        assert response.status_code == status, (status, response.status_code, response.text)
        server = response.headers.get("server", "")
        assert "OCCI/1.2" in server.split(), (status, server)   # GFD.223 §5.3
        assert "OCCI/1.1" in server.split(), (status, server)   # OGF 1.1 test_versioning
        assert response.headers.get("content-type"), status
    assert "allow" in {k.lower() for k in assorted_responses(occi)[405].headers}


@pytest.mark.spec("H-08")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_errors_are_rendered_in_the_negotiated_type(occi: Occi, media: str) -> None:
    for status, response in assorted_responses_in(occi, media).items():
        assert response.status_code == status, (status, response.text)
        assert media_type(response) == media, status
        if media == JSON:
            assert response.json()["code"] == status and response.json()["message"]
        elif media == OCCI:
            assert response.headers.get("x-occi-error"), status
        else:
            assert response.text.strip(), status


def assorted_responses_in(occi: Occi, media: str) -> dict[int, httpx.Response]:
    compute = occi.compute()
    occi.wait_state(compute, "active")
    return {
        400: occi.create_response(STORAGE, media),
        403: define_mixin(occi, media, DEBIAN, occi.model.category(DEBIAN)["location"], method="DELETE"),
        404: occi.get("/compute/does-not-exist", accept=media),
        405: occi.request("PUT", "/-/", accept=media),
        409: occi.act(compute, "start", media),
        413: occi.get("/compute/", accept=media, params={"page": "1", "number": "100000"}),
    }


@pytest.mark.spec("H-04")
def test_options_and_head(occi: Occi) -> None:
    options = occi.request("OPTIONS", "/compute/")
    assert options.status_code == 200
    assert {"GET", "POST", "DELETE"} <= {m.strip() for m in options.headers["allow"].split(",")}
    for accept in (PLAIN, JSON):
        head = occi.request("HEAD", "/compute/", accept=accept)
        assert head.status_code == 200 and head.content == b""
        assert media_type(head) == accept
    assert occi.request("PATCH", "/compute/").status_code == 405


@pytest.mark.spec("H-05")
@pytest.mark.spec("L-19")
@pytest.mark.parametrize("accept", [None, "*/*", "text/*"])
def test_default_media_type_is_text_plain(occi: Occi, accept: str | None) -> None:
    headers = {} if accept is None else {"Accept": accept}
    response = occi.http.get("/-/", headers=headers)
    assert response.status_code == 200
    assert media_type(response) == PLAIN
    assert text_categories(response)


@pytest.mark.spec("H-06")
def test_request_content_type(occi: Occi) -> None:
    _, body = entity_message(COMPUTE).encode(PLAIN)
    # No Content-Type: the OCCI body is still understood (http-protocol.md §2 [decision]).
    response = occi.http.post("/compute/", content=body, headers={"Accept": PLAIN})
    assert response.status_code == 201, response.text
    # An unsupported Content-Type is refused.
    response = occi.http.post("/compute/", content=body, headers={"Content-Type": "application/xml",
                                                                  "Accept": PLAIN})
    assert response.status_code == 415, response.text


@pytest.mark.spec("H-07")
def test_response_lists_supported_media_types(occi: Occi) -> None:
    accept = occi.get("/-/").headers.get("accept", "")
    for media in (PLAIN, OCCI, JSON, URI_LIST):
        assert media in accept


@pytest.mark.spec("H-08")
@pytest.mark.spec("P-01")
@pytest.mark.parametrize("media", [PLAIN, OCCI, OCCI_PLAIN, JSON, "application/json"])
def test_content_type_is_the_requested_type(occi: Occi, media: str) -> None:
    created = occi.create_response(COMPUTE, media)
    assert created.status_code == 201, created.text
    assert media_type(created) == media
    location = created.headers["location"]
    for response in (occi.get("/-/", accept=media), occi.get(location, accept=media),
                     occi.get("/compute/", accept=media), occi.act(location, "stop", media)):
        assert response.status_code == 200, response.text
        assert media_type(response) == media


@pytest.mark.spec("H-10")
@pytest.mark.spec("L-24")
@pytest.mark.parametrize("agent", ["client/1 OCCI/1.3", "client/1 OCCI/2.0", "a/1 OCCI/1.1 OCCI/1.5"])
def test_higher_client_version_is_not_implemented(occi: Occi, agent: str) -> None:
    assert occi.get("/-/", headers={"User-Agent": agent}).status_code == 501


@pytest.mark.spec("H-10")
@pytest.mark.spec("H-08")
@pytest.mark.parametrize("media", [OCCI, JSON])
def test_version_error_in_the_negotiated_type(occi: Occi, media: str) -> None:
    response = occi.get("/-/", accept=media, headers={"User-Agent": "client/1 OCCI/1.3"})
    assert response.status_code == 501
    assert media_type(response) == media
    if media == JSON:
        assert response.json()["code"] == 501
    else:
        assert response.headers.get("x-occi-error")


@pytest.mark.spec("H-10")
@pytest.mark.parametrize("agent", ["client/1 OCCI/1.2", "client/1 OCCI/1.1", "client/1 OCCI/1.0", "curl/8"])
def test_supported_client_versions_are_served(occi: Occi, agent: str) -> None:
    assert occi.get("/-/", headers={"User-Agent": agent}).status_code == 200


# --- H-12: pagination ---------------------------------------------------------------------------
@pytest.mark.spec("H-12")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_pagination(occi: Occi, media: str) -> None:
    tag = occi.user_mixin()
    where = occi.model.category(tag)["location"]
    members = [occi.compute() for _ in range(3)]
    assert occi.associate(where, *members).status_code == 200
    pages = [occi.locations(where, accept=media, params={"page": str(p), "number": "2"}) for p in (1, 2, 3)]
    assert [len(p) for p in pages] == [2, 1, 0]                 # past the end: 200 + empty (MUST)
    assert sorted(pages[0] + pages[1]) == sorted(members)
    assert occi.locations(where, accept=media, params={"page": "1", "number": "2"}) == pages[0]  # stable


@pytest.mark.spec("H-12")
@pytest.mark.parametrize("params,status", [({"page": "1", "number": "1001"}, 413),
                                           ({"page": "1"}, 400), ({"number": "5"}, 400),
                                           ({"page": "0", "number": "5"}, 400),
                                           ({"page": "x", "number": "5"}, 400)])
def test_bad_pagination(occi: Occi, params: dict[str, str], status: int) -> None:
    assert occi.get("/compute/", params=params).status_code == status


@pytest.mark.spec("H-12")
def test_pagination_with_semicolon_separator(occi: Occi) -> None:
    response = occi.http.get("/compute/?page=1;number=1", headers={"Accept": PLAIN})
    assert response.status_code == 200
    assert len(text_locations(response)) == 1


# --- H-13 .. H-15: filtering --------------------------------------------------------------------
@pytest.mark.spec("H-13")
@pytest.mark.spec("H-14")
@pytest.mark.spec("P-06")
@pytest.mark.parametrize("accept", ALL_MEDIA)
def test_query_interface_filter(occi: Occi, accept: str) -> None:
    headers = {"Content-Type": OCCI,
               "Category": 'compute; scheme="http://schemas.ogf.org/occi/infrastructure#"; class="kind"'}
    found = discovered(occi.get("/-/", accept=accept, headers=headers))
    assert found == {COMPUTE: "kind"}
    unknown = {"Category": 'nothing; scheme="http://example.com/none#"'}
    assert discovered(occi.get("/-/", accept=accept, headers=unknown)) == {}


@pytest.mark.spec("H-14")
def test_query_filter_without_class_gives_exactly_one_header_value(occi: Occi) -> None:
    # OGF 1.1 test_query_interface: filter without class, Accept text/occi, splits on every comma.
    response = occi.get("/-/", accept=OCCI,
                        headers={"Category": 'compute; scheme="http://schemas.ogf.org/occi/infrastructure#"'})
    assert response.status_code == 200
    values = [part for value in response.headers.get_list("category") for part in value.split(",")]
    assert len(values) == 1, values


@pytest.mark.spec("H-13")
@pytest.mark.spec("H-15")
@pytest.mark.parametrize("accept", ALL_MEDIA)
def test_entity_collection_filters(occi: Occi, accept: str) -> None:
    hostname = f"h15-{uuid.uuid4().hex[:8]}.example.org"
    tagged = occi.compute(attributes={"occi.compute.hostname": hostname})
    other = occi.compute(attributes={"occi.compute.hostname": "other-" + hostname})
    tag = occi.user_mixin()
    assert occi.associate(occi.model.category(tag)["location"], tagged).status_code == 200
    by_attribute = occi.locations("/compute/", accept=accept,
                                  headers={"X-OCCI-Attribute": f'occi.compute.hostname="{hostname}"'})
    assert by_attribute == [tagged]
    scheme, term = tag.rsplit("#", 1)
    by_category = occi.locations("/compute/", accept=accept,
                                 headers={"Content-Type": OCCI,
                                          "Category": f'{term}; scheme="{scheme}#"; class="mixin"'})
    assert by_category == [tagged]
    # pOCCI READ/002 filters a Kind collection with its own Kind: everything matches.
    own = occi.locations("/compute/", accept=accept, headers={
        "Category": 'compute; scheme="http://schemas.ogf.org/occi/infrastructure#"; class="kind"'})
    assert {tagged, other} <= set(own)


@pytest.mark.spec("H-15")
def test_filter_syntax_error_is_a_bad_request(occi: Occi) -> None:
    response = occi.get("/compute/", headers={"Category": 'compute; scheme="unterminated'})
    assert response.status_code == 400


# --- H-16 .. H-21: the query interface ----------------------------------------------------------
@pytest.mark.spec("H-16")
@pytest.mark.spec("H-18")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_query_interface(occi: Occi, media: str) -> None:
    response = occi.get("/-/", accept=media)
    assert response.status_code == 200
    found = discovered(response)
    assert found[COMPUTE] == "kind" and found[COMPUTE_ACTION + "start"] == "action"


@pytest.mark.spec("H-17")
@pytest.mark.spec("L-22")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_well_known_path_mirrors_the_query_interface(occi: Occi, media: str) -> None:
    plain = occi.get("/-/", accept=media)
    well_known = occi.get("/.well-known/org/ogf/occi/-/", accept=media)
    assert well_known.status_code == 200
    assert well_known.content == plain.content
    assert well_known.headers.get_list("category") == plain.headers.get_list("category")


@pytest.mark.spec("H-19")
def test_put_on_the_query_interface_is_not_allowed(occi: Occi) -> None:
    response = occi.request("PUT", "/-/", media=PLAIN, message=TextMessage().add(
        "Category", category_value("http://example.com/x#y", "mixin", location="/y/")))
    assert response.status_code == 405
    allowed = {m.strip() for m in response.headers["allow"].split(",")}
    assert {"GET", "POST", "DELETE"} <= allowed and "PUT" not in allowed


@pytest.mark.spec("H-20")
@pytest.mark.spec("H-21")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_several_user_mixins_in_one_request(occi: Occi, media: str) -> None:
    ids = [f"http://example.com/occi/h20#m{uuid.uuid4().hex[:8]}" for _ in range(2)]
    if media == JSON:
        mixins = [{"term": i.rpartition("#")[2], "scheme": "http://example.com/occi/h20#",
                   "location": f"/h20/{i.rpartition('#')[2]}/"} for i in ids]
        created = occi.request("POST", "/-/", media=media, document={"mixins": mixins})
        deleted_request = {"mixins": [{"term": m["term"], "scheme": m["scheme"]} for m in mixins]}
    else:
        message = TextMessage()
        for i in ids:
            message.add("Category", category_value(i, "mixin", location=f"/h20/{i.rpartition('#')[2]}/"))
        created = occi.request("POST", "/-/", media=media, message=message)
    assert created.status_code == 200, created.text
    assert set(ids) <= set(occi.discover().by_id)
    if media == JSON:
        deleted = occi.request("DELETE", "/-/", media=media, document=deleted_request)
    else:
        message = TextMessage()
        for i in ids:
            scheme, _, term = i.rpartition("#")
            message.add("Category", f'{term}; scheme="{scheme}#"')  # class is optional here
        deleted = occi.request("DELETE", "/-/", media=media, message=message)
    assert deleted.status_code == 200, deleted.text
    assert not set(ids) & set(occi.discover().by_id)


# --- H-22 .. H-28: single entities --------------------------------------------------------------
@pytest.mark.spec("H-22")
@pytest.mark.spec("P-07")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_get_entity(occi: Occi, media: str) -> None:
    location = occi.compute()
    assert location in occi.locations("/compute/")
    response = occi.http.get(location, headers={"Accept": media})   # the listed absolute URL
    assert response.status_code == 200
    assert view_of(response).kind == COMPUTE


@pytest.mark.spec("H-23")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_put_creates_at_a_new_path(occi: Occi, media: str) -> None:
    path = f"/compute/{uuid.uuid4()}"
    response = send_entity(occi, "PUT", path, media, COMPUTE, attributes={"occi.core.title": "put-created"})
    assert response.status_code == 201, response.text  # GFD.185 §3.6.8: a new resource is 201
    assert response.headers["location"] == occi.url + path
    seen = occi.view(path)
    assert seen.kind == COMPUTE and seen.attributes["occi.core.title"] == "put-created"


@pytest.mark.spec("H-23")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_put_create_derives_the_id_from_the_path(occi: Occi, media: str) -> None:
    segment = str(uuid.uuid4())
    response = send_entity(occi, "PUT", f"/compute/{segment}", media, COMPUTE)
    assert response.status_code == 201, response.text
    assert occi.view(f"/compute/{segment}").attributes["occi.core.id"] == f"urn:uuid:{segment}"


@pytest.mark.spec("H-23")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_put_create_with_an_id_that_contradicts_the_path(occi: Occi, media: str) -> None:
    path, other = f"/compute/{uuid.uuid4()}", str(uuid.uuid4())
    response = send_entity(occi, "PUT", path, media, COMPUTE, attributes={"occi.core.id": f"urn:uuid:{other}"})
    # http-protocol.md §6.3 [decision]: an id that conflicts with the path is a 400; in no case
    # may a PUT create something at a URL other than its own.
    assert response.status_code == 400, response.text
    assert occi.get(f"/compute/{other}").status_code == 404


@pytest.mark.spec("H-23")
@pytest.mark.spec("P-20")
@pytest.mark.parametrize("path", ["/123", "/somewhere/else/vm1", f"/storage/{uuid.uuid4()}"])
def test_put_create_at_a_path_the_provider_refuses(occi: Occi, path: str) -> None:
    response = send_entity(occi, "PUT", path, PLAIN, COMPUTE)
    assert response.status_code == 400, response.text
    assert occi.get(path).status_code == 404


@pytest.mark.spec("H-24")
@pytest.mark.spec("H-25")
@pytest.mark.spec("L-11")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_put_replace_keeps_links_and_answers_the_rendering(occi: Occi, media: str) -> None:
    compute, network = occi.compute(attributes={"occi.core.title": "before"}), occi.network()
    link = occi.link(NETWORKINTERFACE, compute, network)
    current = occi.view(compute, PLAIN if media == JSON else media)
    if media == JSON:
        response = occi.request("PUT", compute, media=media, document={
            "kind": COMPUTE, "attributes": {**current.attributes, "occi.core.title": "after"}})
    else:
        # The whole GET rendering echoed back, Links included (pOCCI UPDATE/001, GFD.185 → GFD.223).
        response = occi.request("PUT", compute, media=media,
                                message=echo_message(current, links=True, **{"occi.core.title": "after"}))
    assert response.status_code == 200, response.text
    assert media_type(response) == media
    answered = view_of(response)
    assert answered.kind == COMPUTE and answered.attributes["occi.core.title"] == "after"
    assert [path_of(l["target"]) for l in occi.view(compute).links] == [path_of(network)]
    assert occi.get(link).status_code == 200


@pytest.mark.spec("H-25")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_put_replace_drops_what_is_not_sent(occi: Occi, media: str) -> None:
    tag = occi.user_mixin()
    compute = occi.compute(mixins=[tag, DEBIAN], attributes={"occi.core.title": "keep?",
                                                             "occi.core.summary": "dropped"})
    response = send_entity(occi, "PUT", compute, media, COMPUTE, attributes={"occi.core.title": "kept"})
    assert response.status_code == 200, response.text
    seen = occi.view(compute)
    # "missing information will result in the deletion of the same" (GFD.185 §3.4.4)
    assert tag not in seen.mixins
    assert "occi.core.summary" not in seen.attributes
    assert seen.attributes["occi.core.title"] == "kept"
    assert seen.attributes["occi.compute.state"]          # server-managed values stay
    storage = occi.storage()
    response = send_entity(occi, "PUT", storage, media, STORAGE, attributes={"occi.core.title": "no size"})
    assert response.status_code == 400, response.text    # required attribute left without a value
    assert occi.view(storage).attributes["occi.storage.size"] == 1.0


@pytest.mark.spec("H-26")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_partial_update_answers_the_full_rendering(occi: Occi, media: str) -> None:
    compute = occi.compute(attributes={"occi.core.title": "partial", "occi.compute.hostname": "h26.example.org"})
    response = send_entity(occi, "POST", compute, media, None, attributes={"occi.core.summary": "added"})
    assert response.status_code == 200, response.text
    answered = view_of(response)
    assert answered.attributes["occi.core.summary"] == "added"
    assert answered.attributes["occi.core.title"] == "partial"          # untouched
    assert answered.attributes["occi.compute.hostname"] == "h26.example.org"


@pytest.mark.spec("H-27")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_action_invocation(occi: Occi, media: str) -> None:
    compute = occi.compute()
    occi.wait_state(compute, "active")
    response = occi.act(compute, "stop", media, attributes={"method": "graceful"})
    assert response.status_code == 200, response.text
    assert view_of(response).kind == COMPUTE
    assert occi.wait_state(compute, "inactive").state == "inactive"


@pytest.mark.spec("H-27")
def test_action_term_must_match_the_body(occi: Occi) -> None:
    compute = occi.compute()
    message = TextMessage().add("Category", category_value(COMPUTE_ACTION + "stop", "action"))
    response = occi.request("POST", compute, media=PLAIN, message=message, params={"action": "restart"})
    assert response.status_code == 400, response.text


@pytest.mark.spec("H-28")
@pytest.mark.spec("P-08")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_delete_entity(occi: Occi, media: str) -> None:
    compute = occi.compute()
    response = occi.request("DELETE", compute, media=media, accept=media)
    assert response.status_code == 200, response.text
    assert occi.get(compute).status_code == 404
    assert compute not in occi.locations("/compute/")
    assert occi.request("DELETE", compute).status_code == 404


# --- H-29 .. H-35: collections ------------------------------------------------------------------
@pytest.mark.spec("H-29")
@pytest.mark.spec("P-04")
def test_get_collection_in_every_listing_type(occi: Occi) -> None:
    tag = occi.user_mixin()
    where = occi.model.category(tag)["location"]
    for media in (PLAIN, OCCI, JSON, URI_LIST):
        response = occi.get(where, accept=media)
        assert response.status_code == 200 and media_type(response) == media   # empty: 200, not 204
    members = [occi.compute(), occi.storage()]
    assert occi.associate(where, *members).status_code == 200
    listings = {media: sorted(occi.locations(where, accept=media)) for media in (PLAIN, OCCI, JSON, URI_LIST)}
    assert all(found == sorted(members) for found in listings.values()), listings


@pytest.mark.spec("H-30")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_put_replaces_mixin_membership(occi: Occi, media: str) -> None:
    tag = occi.user_mixin()
    where = occi.model.category(tag)["location"]
    first, second, third = occi.compute(), occi.compute(), occi.storage()
    assert occi.associate(where, first, second).status_code == 200
    if media == JSON:
        response = occi.request("PUT", where, media=media,
                                document={"resources": [{"location": second}, {"location": third}]})
    else:
        response = occi.associate(where, second, third, method="PUT", media=media)
    assert response.status_code == 200, response.text
    if media == JSON:
        answered = [occi.url + occi.location_from_json(e) for e in response.json().get("resources", [])]
    else:
        answered = text_locations(response)
    assert sorted(answered) == sorted([second, third])      # "MUST include a collection rendering"
    assert sorted(occi.locations(where)) == sorted([second, third])
    assert tag not in occi.view(first).mixins


@pytest.mark.spec("H-30")
@pytest.mark.parametrize("path", ["/compute/", "/resource/"])
def test_put_on_a_kind_collection_is_not_defined(occi: Occi, path: str) -> None:
    location = occi.compute()
    response = occi.associate(path, location, method="PUT")
    assert response.status_code == 405
    assert "PUT" not in response.headers.get("allow", "")


@pytest.mark.spec("H-31")
@pytest.mark.spec("L-07")
@pytest.mark.spec("P-02")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_post_creates_in_the_kind_collection(occi: Occi, media: str) -> None:
    response = occi.create_response(COMPUTE, media)
    assert response.status_code == 201, response.text
    location = response.headers["location"]
    assert ABSOLUTE.match(location)
    if media == JSON:
        assert response.json() == [location]
    else:
        assert text_locations(response) == [location]
    assert location in occi.locations("/compute/")   # rendered identically (P-02)


@pytest.mark.spec("H-31")
def test_post_creates_several_entities_at_once(occi: Occi) -> None:
    document = {"resources": [{"kind": COMPUTE, "attributes": {"occi.core.title": "batch 1"}},
                              {"kind": COMPUTE, "attributes": {"occi.core.title": "batch 2"}}]}
    response = occi.request("POST", "/compute/", media=JSON, document=document)
    assert response.status_code == 201, response.text
    created = response.json()
    assert len(created) == 2
    assert sorted(occi.view(c).attributes["occi.core.title"] for c in created) == ["batch 1", "batch 2"]


@pytest.mark.spec("H-32")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_post_associates_with_a_mixin_collection(occi: Occi, media: str) -> None:
    tag = occi.user_mixin()
    where = occi.model.category(tag)["location"]
    first, second = occi.compute(), occi.network()
    assert occi.associate(where, first).status_code == 200
    if media == JSON:
        response = occi.request("POST", where, media=media, document={"resources": [{"location": second}]})
        answered = [occi.url + occi.location_from_json(e) for e in response.json().get("resources", [])]
    else:
        response = occi.associate(where, second, media=media)
        answered = text_locations(response)
    assert response.status_code == 200, response.text
    assert sorted(answered) == sorted([first, second])   # the membership after the change
    assert tag in occi.view(second).mixins


@pytest.mark.spec("H-32")
def test_post_of_locations_on_a_kind_collection_is_a_bad_request(occi: Occi) -> None:
    location = occi.compute()
    assert occi.associate("/compute/", location).status_code == 400


@pytest.mark.spec("H-34")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_delete_kind_collection(fresh: Occi, media: str) -> None:
    computes = [fresh.compute(), fresh.compute()]
    storage = fresh.storage()
    response = fresh.request("DELETE", "/compute/", media=media, accept=media)
    assert response.status_code == 200, response.text
    assert fresh.locations("/compute/") == []
    assert all(fresh.get(c).status_code == 404 for c in computes)
    assert fresh.get(storage).status_code == 200


@pytest.mark.spec("H-35")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_delete_on_a_mixin_collection_disassociates(occi: Occi, media: str) -> None:
    tag = occi.user_mixin()
    where = occi.model.category(tag)["location"]
    first, second = occi.compute(), occi.compute()
    assert occi.associate(where, first, second).status_code == 200
    if media == JSON:
        response = occi.request("DELETE", where, media=media, document={"resources": [{"location": first}]})
    else:
        response = occi.associate(where, first, method="DELETE", media=media)
    assert response.status_code == 200, response.text
    assert occi.locations(where) == [second]
    assert occi.get(first).status_code == 200 and tag not in occi.view(first).mixins


# --- L-02 .. L-06: user mixins, collection actions ----------------------------------------------
@pytest.mark.spec("L-02")
@pytest.mark.parametrize("params", [{}, {"location": "relative/"}, {"location": "/no-slash"},
                                    {"location": "/l02/", "attributes": "com.example.size"},
                                    {"location": "/l02b/", "actions": COMPUTE_ACTION + "start"}],
                         ids=["no-location", "relative", "no-trailing-slash", "attributes", "actions"])
def test_user_mixin_definition_rules(occi: Occi, params: dict[str, str]) -> None:
    type_id = "http://example.com/occi/l02#m" + uuid.uuid4().hex[:8]
    message = TextMessage().add("Category", category_value(type_id, "mixin", **params))
    response = occi.request("POST", "/-/", media=PLAIN, message=message)
    assert response.status_code == 400, response.text
    assert type_id not in occi.discover().by_id


@pytest.mark.spec("L-02")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_user_mixin_collisions_are_conflicts(occi: Occi, media: str) -> None:
    taken = "/tests/l02-" + uuid.uuid4().hex[:8] + "/"
    first = "http://example.com/occi/l02#a" + uuid.uuid4().hex[:8]
    assert define_mixin(occi, media, first, taken).status_code == 200
    other = "http://example.com/occi/l02#b" + uuid.uuid4().hex[:8]
    assert define_mixin(occi, media, other, taken).status_code == 409             # same location
    assert define_mixin(occi, media, other, "/compute/").status_code == 409       # a Kind's location
    assert define_mixin(occi, media, first, "/tests/elsewhere/").status_code == 409  # same type id


@pytest.mark.spec("L-03")
@pytest.mark.parametrize("media", ALL_MEDIA)
@pytest.mark.parametrize("mixin", [DEBIAN, "http://schemas.ogf.org/occi/infrastructure#os_tpl"])
def test_removing_a_provider_mixin_is_forbidden(occi: Occi, media: str, mixin: str) -> None:
    location = occi.model.category(mixin)["location"]
    response = define_mixin(occi, media, mixin, location, method="DELETE")
    assert response.status_code == 403, response.text
    assert mixin in occi.discover().by_id


@pytest.mark.spec("L-03")
def test_removing_an_unknown_mixin_is_not_found(occi: Occi) -> None:
    response = define_mixin(occi, PLAIN, "http://example.com/occi/none#x" + uuid.uuid4().hex[:6], "/x/",
                            method="DELETE")
    assert response.status_code == 404, response.text


@pytest.mark.spec("L-04")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_removing_a_user_mixin_removes_its_associations(occi: Occi, media: str) -> None:
    tag = occi.user_mixin()
    where = occi.model.category(tag)["location"]
    compute = occi.compute()
    assert occi.associate(where, compute).status_code == 200
    assert define_mixin(occi, media, tag, where, method="DELETE").status_code == 200
    assert tag not in occi.view(compute).mixins
    assert occi.get(where).status_code == 404


@pytest.mark.spec("L-06")
@pytest.mark.parametrize("path,action", [("/storage/", COMPUTE_ACTION + "start"),
                                         ("/resource/", COMPUTE_ACTION + "stop"),
                                         ("/compute/", "http://schemas.ogf.org/occi/infrastructure/network/action#up")])
def test_collection_action_must_belong_to_the_collection(occi: Occi, path: str, action: str) -> None:
    compute = occi.compute()
    occi.wait_state(compute, "active")
    occi.storage()
    response = occi.invoke(path, action, media=PLAIN)
    assert response.status_code == 400, response.text
    assert occi.view(compute).state == "active"


# --- L-13 .. L-17: links, multi-value headers, atomicity ----------------------------------------
@pytest.mark.spec("L-13")
@pytest.mark.spec("L-14")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_inline_link_creation(occi: Occi, media: str) -> None:
    network, storage = occi.network(), occi.storage()
    if media == JSON:
        response = occi.create_response(COMPUTE, media, json_links=[
            {"kind": NETWORKINTERFACE, "target": {"location": path_of(network), "kind": NETWORK}},
            {"kind": STORAGELINK, "target": {"location": storage, "kind": STORAGE},
             "attributes": {"occi.storagelink.mountpoint": "/data"}}])
    else:
        response = occi.create_response(COMPUTE, media, links=[
            link_value(path_of(network), NETWORK, NETWORKINTERFACE),
            link_value(storage, STORAGE, STORAGELINK, {"occi.storagelink.mountpoint": "/data"})])
    assert response.status_code == 201, response.text
    compute = response.headers["location"]
    # "only the Resource's location is returned"
    created = response.json() if media == JSON else text_locations(response)
    assert created == [compute]
    links = occi.view(compute, media).links
    assert sorted(path_of(l["target"]) for l in links) == sorted([path_of(network), path_of(storage)])
    assert {l["kind"] for l in links} == {NETWORKINTERFACE, STORAGELINK}
    storagelink = next(l for l in links if l["kind"] == STORAGELINK)
    assert storagelink["attributes"]["occi.storagelink.mountpoint"] == "/data"
    assert path_of(storagelink["attributes"]["occi.core.source"]) == path_of(compute)


@pytest.mark.spec("L-13")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_partial_update_creates_links_inline(occi: Occi, media: str) -> None:
    compute, network = occi.compute(), occi.network()
    if media == JSON:
        response = occi.request("POST", compute, media=media, document={"links": [
            {"kind": NETWORKINTERFACE, "target": {"location": network}}]})
    else:
        response = occi.request("POST", compute, media=media, message=entity_message(
            None, links=[link_value(path_of(network), NETWORK, NETWORKINTERFACE)]))
    assert response.status_code == 200, response.text
    (link,) = occi.view(compute).links
    assert path_of(link["target"]) == path_of(network)
    assert link["attributes"]["occi.core.id"]


@pytest.mark.spec("L-13")
@pytest.mark.parametrize("media", TEXT_MEDIA)
def test_inline_link_self_names_its_location(occi: Occi, media: str) -> None:
    network = occi.network()
    wanted = f"/networkinterface/nic-{uuid.uuid4().hex[:8]}"
    link = f'<{path_of(network)}>; rel="{NETWORK}"; self="{wanted}"; category="{NETWORKINTERFACE}"'
    response = occi.create_response(COMPUTE, media, links=[link])
    assert response.status_code == 201, response.text
    assert occi.get(wanted).status_code == 200
    again = occi.create_response(COMPUTE, media, links=[link])
    assert again.status_code == 409, again.text            # http-protocol.md §6.7 [decision]


@pytest.mark.spec("L-13")
@pytest.mark.parametrize("media", TEXT_MEDIA)
def test_a_link_cannot_carry_links(occi: Occi, media: str) -> None:
    compute, network = occi.compute(), occi.network()
    nic = occi.link(NETWORKINTERFACE, compute, network)
    response = occi.request("POST", nic, media=media, message=entity_message(
        None, links=[link_value(path_of(network), NETWORK, NETWORKINTERFACE)]))
    assert response.status_code == 400, response.text   # GFD.185 §3.4.4


@pytest.mark.spec("L-13")
@pytest.mark.parametrize("media", TEXT_MEDIA)
def test_inline_link_to_a_missing_local_target(occi: Occi, media: str) -> None:
    before = occi.locations("/compute/")
    response = occi.create_response(COMPUTE, media, links=[link_value("/network/missing", NETWORK,
                                                                      NETWORKINTERFACE)])
    assert response.status_code == 404, response.text
    assert occi.locations("/compute/") == before         # nothing half-created


@pytest.mark.spec("L-14")
@pytest.mark.spec("P-14")
@pytest.mark.parametrize("media", TEXT_MEDIA)
def test_direct_link_creation_shows_on_the_source(occi: Occi, media: str) -> None:
    compute, storage = occi.compute(), occi.storage()
    link_id = "sl-" + uuid.uuid4().hex[:8]
    response = occi.create_response(STORAGELINK, media, attributes={
        "occi.core.id": link_id, "occi.core.source": compute, "occi.core.target": storage,
        "occi.storagelink.deviceid": "/dev/blk0"})
    assert response.status_code == 201, response.text
    (link,) = occi.view(compute, media).links
    assert link["target"] in (storage, path_of(storage))
    assert link["attributes"]["occi.core.id"] == link_id
    assert link["location"] is not None and path_of(link["location"]) == path_of(response.headers["location"])


@pytest.mark.spec("L-15")
@pytest.mark.parametrize("media", ALL_MEDIA)
@pytest.mark.parametrize("missing", ["occi.core.source", "occi.core.target"])
def test_direct_link_creation_needs_source_and_target(occi: Occi, media: str, missing: str) -> None:
    compute, network = occi.compute(), occi.network()
    attributes = {"occi.core.source": compute, "occi.core.target": network}
    del attributes[missing]
    response = occi.create_response(NETWORKINTERFACE, media, attributes=attributes)
    assert response.status_code == 400, response.text


@pytest.mark.spec("L-16")
@pytest.mark.spec("T-16")
@pytest.mark.parametrize("joined", [True, False], ids=["comma-joined", "repeated"])
def test_both_multi_value_header_forms(occi: Occi, joined: bool) -> None:
    tag = occi.user_mixin()
    message = entity_message(COMPUTE, mixins=[DEBIAN, tag],
                             attributes={"occi.core.title": "l16, with a comma", "occi.compute.cores": 2,
                                         "occi.compute.memory": 3.5})
    response = occi.request("POST", "/compute/", media=OCCI, message=message, joined=joined)
    assert response.status_code == 201, response.text
    seen = occi.view(response.headers["location"])
    assert set(seen.mixins) == {DEBIAN, tag}
    assert seen.attributes["occi.core.title"] == "l16, with a comma"
    assert seen.attributes["occi.compute.cores"] == 2 and seen.attributes["occi.compute.memory"] == 3.5


@pytest.mark.spec("L-16")
@pytest.mark.spec("T-16")
def test_comma_joined_values_in_text_plain(occi: Occi) -> None:
    body = ('Category: compute; scheme="http://schemas.ogf.org/occi/infrastructure#"; class="kind", '
            'debian-12; scheme="http://occipy.org/occi/os_tpl#"; class="mixin"\r\n'
            'X-OCCI-Attribute: occi.core.title="a, b", occi.compute.cores=3\r\n')
    response = occi.request("POST", "/compute/", media=PLAIN, content=body.encode())
    assert response.status_code == 201, response.text
    seen = occi.view(response.headers["location"])
    assert seen.mixins == [DEBIAN]
    assert seen.attributes["occi.core.title"] == "a, b" and seen.attributes["occi.compute.cores"] == 3


@pytest.mark.spec("L-17")
@pytest.mark.parametrize("media", TEXT_MEDIA)
def test_mixin_association_is_atomic(occi: Occi, media: str) -> None:
    tag = occi.user_mixin()
    where = occi.model.category(tag)["location"]
    good = occi.compute()
    response = occi.associate(where, good, occi.url + "/compute/does-not-exist", media=media)
    assert response.status_code == 404, response.text
    assert occi.locations(where) == []
    assert tag not in occi.view(good).mixins
    storage = occi.storage()   # applies: ssh_key cannot go on a storage -> nothing associated
    ssh_where = occi.model.category("http://schemas.ogf.org/occi/infrastructure/credentials#ssh_key")["location"]
    before = occi.locations(ssh_where)
    response = occi.associate(ssh_where, storage, media=media)
    assert response.status_code == 403, response.text  # D-APPLIES
    assert occi.locations(ssh_where) == before


@pytest.mark.spec("L-17")
@pytest.mark.spec("C-28")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_collection_action_is_all_or_nothing(fresh: Occi, media: str) -> None:
    running, suspended = fresh.compute(), fresh.compute()
    fresh.wait_state(running, "active")
    fresh.wait_state(suspended, "active")
    assert fresh.act(suspended, "suspend").status_code == 200
    fresh.wait_state(suspended, "suspended")
    # stop is not allowed on the suspended member: validate all first, then apply (http-protocol.md
    # §6.6). (A stopped member would be left alone: D-COLLECTION-NOOP.)
    response = fresh.invoke("/compute/", COMPUTE_ACTION + "stop", media=media)
    assert response.status_code == 409, response.text
    assert fresh.view(running).state == "active"
    assert fresh.view(suspended).state == "suspended"


@pytest.mark.spec("L-17")
def test_batch_create_is_atomic(occi: Occi) -> None:
    before = occi.locations("/compute/")
    document = {"resources": [{"kind": COMPUTE, "attributes": {"occi.core.title": "l17 ok"}},
                              {"kind": COMPUTE, "attributes": {"occi.compute.cores": "many"}}]}
    response = occi.request("POST", "/compute/", media=JSON, document=document)
    assert response.status_code == 400, response.text
    assert occi.locations("/compute/") == before


@pytest.mark.spec("L-19")
@pytest.mark.parametrize("accept,expected", [("text/occi;q=0.5, text/plain;q=0.9", PLAIN),
                                             ("application/occi+json;q=1, text/plain;q=0.1", JSON),
                                             ("text/occi", OCCI), ("text/uri-list", URI_LIST),
                                             ("application/xml, text/occi;q=0.2", OCCI)])
def test_accept_is_honoured(occi: Occi, accept: str, expected: str) -> None:
    response = occi.http.get("/compute/", headers={"Accept": accept})
    assert response.status_code == 200
    assert media_type(response) == expected


@pytest.mark.spec("L-20")
@pytest.mark.parametrize("path", ["/-/", "/compute/"])
def test_unproducible_media_type_is_not_acceptable(occi: Occi, path: str) -> None:
    response = occi.http.get(path, headers={"Accept": "application/xml"})
    assert response.status_code == 406


@pytest.mark.spec("L-20")
@pytest.mark.spec("T-18")
def test_text_occi_rendering_too_large_for_headers_is_not_acceptable(fresh: Occi) -> None:
    # Big user-mixin titles push the text/occi Category header of /-/ past the server's limit.
    message = TextMessage()
    for n in range(40):
        message.add("Category", category_value(f"http://example.com/occi/big#m{n}", "mixin",
                                               title="x" * 2000, location=f"/big/m{n}/"))
    assert fresh.request("POST", "/-/", media=PLAIN, message=message).status_code == 200
    assert fresh.get("/-/", accept=PLAIN).status_code == 200
    # http-protocol.md §12 [decision]: a text/occi rendering over the header limit is "incomplete or
    # faulty" (GFD.185 §3.6.6) -> 406, never a truncated header.
    response = fresh.get("/-/", accept=OCCI)
    assert response.status_code == 406, response.headers.get("category", "")[:200]


@pytest.mark.spec("L-21")
@pytest.mark.spec("T-19")
@pytest.mark.parametrize("path", ["/-/", "entity"])
def test_uri_list_for_a_non_listing_is_a_bad_request(occi: Occi, path: str) -> None:
    target = occi.compute() if path == "entity" else path
    response = occi.http.get(target, headers={"Accept": URI_LIST})
    assert response.status_code == 400


# --- P-19: POST on the root ---------------------------------------------------------------------
@pytest.mark.spec("P-19")
def test_post_on_the_root_creates_or_is_not_allowed(occi: Occi) -> None:
    response = occi.request("POST", "/", media=PLAIN, message=entity_message(COMPUTE))
    # occipy creates (the other answer P-19 allows is 405 without POST in Allow)
    assert response.status_code == 201, response.text
    assert response.headers["location"] in occi.locations("/compute/")


@pytest.mark.spec("H-29")
@pytest.mark.parametrize("media", TEXT_MEDIA)
def test_link_collection_lists_links_of_every_kind(occi: Occi, media: str) -> None:
    compute, storage, network = occi.compute(), occi.storage(), occi.network()
    links = [occi.link(STORAGELINK, compute, storage), occi.link(NETWORKINTERFACE, compute, network)]
    listed = occi.locations("/link/", accept=media)  # sub-type instances included (core.md §2.9)
    assert set(links) <= set(listed)
    assert compute not in listed
    assert links[0] in occi.locations("/storagelink/", accept=media)
    assert links[0] not in occi.locations("/networkinterface/", accept=media)
    assert all(name in ("X-OCCI-Location",) for name, _ in text_fields(occi.get("/link/", accept=media)))
