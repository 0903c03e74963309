"""OCCI 1.1 clients against a live server: the requests the OCCI working group's own 1.1
compliance script sends (written alongside GFD.184/185), which occipy used to refuse.

Each test is one such request, in our words: categories sent without `class`, a user mixin whose
`rel` names a mixin the server does not know, `occi.compute.speed` in the compute kind, quoted
commas in `X-OCCI-Attribute`, and terms a strict 1.1 parser accepts. Plus the typed-value edge
(issue 8): ranges answered 400 naming the attribute. And the script's collection flow on the
default (slow) simulated cloud: a collection start with active members, a user mixin's members
changed while the computes are being created (D-COLLECTION-NOOP, D-TAGS-AT-ONCE). Requests are
raw headers, as 1.1 clients send them (text/occi: everything in headers, one header per field).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conformance.conftest import (
    COMPUTE,
    COMPUTE_ACTION,
    INFRA,
    JSON,
    NETWORKINTERFACE,
    OCCI,
    PLAIN,
    Occi,
    discovered,
    parse_attribute,
    text_categories,
    text_fields,
    text_locations,
)
from tests.integration.conftest import start_server

TEXT_OCCI = {"Content-Type": OCCI, "Accept": OCCI}
CLASSLESS_COMPUTE = f'compute;scheme="{INFRA}"'
MY_STUFF = 'my_stuff; scheme="http://example.com/occi/my_stuff#"'
DANGLING = "http://example.com/occi/something_else#mixin"
MY_STUFF_DEFINITION = f'{MY_STUFF}; class="mixin"; rel="{DANGLING}"; location="/my_stuff/"'
STRICT_TERM_RE = re.compile(r"[a-z][a-z0-9_-]*\Z")


@pytest.fixture
def http(occi: Occi) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=occi.url, timeout=20) as client:
        yield client


def _create(http: httpx.Client, path: str = "/", **headers: str) -> str:
    response = http.post(path, headers={**TEXT_OCCI, **headers})
    assert response.status_code == 201, (response.status_code, response.text)
    return response.headers["location"]


def _user_mixin(http: httpx.Client, scheme: str = "http://example.com/occi/my_stuff#", term: str = "my_stuff",
                location: str = "/my_stuff/") -> None:
    category = f'{term}; scheme="{scheme}"; class="mixin"; rel="{DANGLING}"; location="{location}"'
    response = http.post("/-/", headers={**TEXT_OCCI, "Category": category})
    assert response.status_code == 200, response.text


# ---- categories without class (GFD.185 §3.4.4 requests) ---------------------------------------------

def test_create_with_a_category_without_class_at_the_root(http: httpx.Client) -> None:
    location = _create(http, Category=CLASSLESS_COMPUTE)
    assert "/compute/" in location
    categories = text_categories(http.get(location, headers={"Accept": OCCI}))
    assert [(c.type_id, c.cls) for c in categories] == [(COMPUTE, "kind")]  # renderings keep class


def test_create_without_class_in_the_kind_collection_with_an_attribute(http: httpx.Client) -> None:
    hostname = f"foo {uuid.uuid4()} bar"  # the 1.1 script's unique hostname has spaces
    location = _create(http, "/compute/", Category=CLASSLESS_COMPUTE,
                       **{"X-OCCI-Attribute": f'occi.compute.hostname="{hostname}"'})
    found = http.get("/compute/", headers={"Accept": OCCI, "X-OCCI-Attribute": f'occi.compute.hostname="{hostname}"'})
    assert text_locations(found) == [location]


def test_a_category_without_class_may_name_a_mixin(http: httpx.Client) -> None:
    small = "http://schemas.ogf.org/occi/infrastructure/compute/template/1.1#"
    location = _create(http, Category=f'{CLASSLESS_COMPUTE}, small; scheme="{small}"')
    mixins = [c.type_id for c in text_categories(http.get(location, headers={"Accept": PLAIN})) if c.cls == "mixin"]
    assert mixins == [small + "small"]


def test_full_update_with_a_category_without_class(http: httpx.Client) -> None:
    location = _create(http, Category=CLASSLESS_COMPUTE)
    response = http.put(location, headers={**TEXT_OCCI, "Category": CLASSLESS_COMPUTE,
                                           "X-OCCI-Attribute": 'occi.core.title="My Compute instance"'})
    assert response.status_code == 200, response.text
    attributes = dict(parse_attribute(v) for n, v in text_fields(response) if n == "X-OCCI-Attribute")
    assert attributes["occi.core.title"] == "My Compute instance"


def test_put_create_without_class_and_with_an_unknown_attribute_is_400(http: httpx.Client) -> None:
    # The 1.1 script accepts a 400 here ("a server is allowed to refuse", GFD.185 §3.4.4).
    response = http.put("/123", headers={**TEXT_OCCI, "Category": CLASSLESS_COMPUTE,
                                         "X-OCCI-Attribute": 'example.test="foo"'})
    assert response.status_code == 400
    assert http.get("/123", headers={"Accept": OCCI}).status_code == 404


def test_links_with_categories_without_class(http: httpx.Client) -> None:
    compute = _create(http, Category=CLASSLESS_COMPUTE)
    network = _create(http, Category=f'network;scheme="{INFRA}"')
    link = _create(http, Category=f'networkinterface;scheme="{INFRA}"',
                   **{"X-OCCI-Attribute": f'occi.core.source="{compute}", occi.core.target="{network}"'})
    attributes = dict(parse_attribute(v) for n, v in text_fields(http.get(link, headers={"Accept": OCCI}))
                      if n == "X-OCCI-Attribute")
    assert attributes["occi.core.target"].endswith(httpx.URL(network).path)
    # inline creation: a Link whose category= is a type id, with a class-less resource category
    inline = _create(http, Category=CLASSLESS_COMPUTE,
                     Link=f'<{network}>; rel="{INFRA}network"; category="{NETWORKINTERFACE}";')
    links = [v for n, v in text_fields(http.get(inline, headers={"Accept": OCCI})) if n == "Link" and "?action=" not in v]
    assert len(links) == 1 and httpx.URL(network).path in links[0]


def test_action_with_a_category_without_class(http: httpx.Client) -> None:
    location = _create(http, Category=CLASSLESS_COMPUTE)
    http.post(location, params={"action": "stop"},
              headers={**TEXT_OCCI, "Category": f'stop; scheme="{COMPUTE_ACTION}"'})
    response = http.post(location, params={"action": "start"},
                         headers={**TEXT_OCCI, "Category": f'start; scheme="{COMPUTE_ACTION}"'})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(("category", "message"), [
    ('nothing; scheme="http://example.com/occi#"', "unknown category"),
    (f'start; scheme="{COMPUTE_ACTION}"', "action"),
    (f'{CLASSLESS_COMPUTE}, storage; scheme="{INFRA}"', "more than one Kind"),
])
def test_a_category_without_class_that_names_nothing_usable_is_400(http: httpx.Client, category: str,
                                                                   message: str) -> None:
    response = http.post("/", headers={**TEXT_OCCI, "Category": category})
    assert response.status_code == 400
    assert message in response.headers.get("x-occi-error", response.text)


def test_query_interface_answers_keep_class(http: httpx.Client) -> None:
    for accept in (PLAIN, OCCI):
        categories = text_categories(http.get("/-/", headers={"Accept": accept}))
        assert categories and all(c.cls in ("kind", "mixin", "action") for c in categories)


# ---- a user mixin whose rel names an unknown mixin (D-DANGLING-REL) ------------------------------------

def test_user_mixin_with_a_dangling_rel_is_kept_and_rendered(http: httpx.Client) -> None:
    response = http.post("/.well-known/org/ogf/occi/-/", headers={**TEXT_OCCI, "Category": MY_STUFF_DEFINITION})
    assert response.status_code == 200, response.text
    listed = http.get("/-/", headers={"Accept": PLAIN, "Category": MY_STUFF})
    [mine] = text_categories(listed)
    assert (mine.cls, mine.params["rel"], mine.params["location"]) == ("mixin", DANGLING, "/my_stuff/")
    deleted = http.request("DELETE", "/.well-known/org/ogf/occi/-/",
                           headers={**TEXT_OCCI, "Category": f'{MY_STUFF}; class="mixin";'})
    assert deleted.status_code == 200, deleted.text
    assert http.get("/-/", headers={"Accept": OCCI, "Category": MY_STUFF}).headers.get("category") is None


def test_a_mixin_with_a_dangling_rel_collects_entities(http: httpx.Client) -> None:
    _user_mixin(http, scheme="http://example.com/occi/other_stuff#", term="other_stuff", location="/other_stuff/")
    tag = 'other_stuff; scheme="http://example.com/occi/other_stuff#"'
    first, second = _create(http, Category=CLASSLESS_COMPUTE), _create(http, Category=CLASSLESS_COMPUTE)
    added = http.post("/other_stuff/", headers={**TEXT_OCCI, "X-OCCI-Location": first})
    assert added.status_code == 200, added.text
    assert "other_stuff" in http.get(first, headers={"Accept": OCCI}).headers["category"]
    replaced = http.put("/other_stuff/", headers={**TEXT_OCCI, "X-OCCI-Location": second})
    assert replaced.status_code == 200, replaced.text
    assert text_locations(http.get("/other_stuff/", headers={"Accept": OCCI})) == [second]
    # a collection filter with a class-less category (GFD.185 §3.4.2)
    assert text_locations(http.get("/compute/", headers={"Accept": OCCI, "Category": tag})) == [second]
    removed = http.request("DELETE", "/other_stuff/", headers={**TEXT_OCCI, "X-OCCI-Location": second})
    assert removed.status_code == 200
    assert text_locations(http.get("/other_stuff/", headers={"Accept": OCCI})) == []
    gone = http.request("DELETE", "/-/", headers={**TEXT_OCCI, "Category": f'{tag}; class="mixin"'})
    assert gone.status_code == 200


def test_a_rel_naming_a_kind_is_still_refused(http: httpx.Client) -> None:
    category = f'bad_rel; scheme="http://example.com/occi/bad#"; class="mixin"; rel="{COMPUTE}"; location="/bad_rel/"'
    response = http.post("/-/", headers={**TEXT_OCCI, "Category": category})
    assert response.status_code == 400


def test_a_dangling_rel_survives_a_restart(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data")
    try:
        with httpx.Client(base_url=server.url, timeout=20) as http:
            _user_mixin(http)
    finally:
        server.stop()
    again = start_server(tmp_path / "data")
    try:
        with httpx.Client(base_url=again.url, timeout=20) as http:
            [mine] = text_categories(http.get("/-/", headers={"Accept": PLAIN, "Category": MY_STUFF}))
            assert mine.params["rel"] == DANGLING
    finally:
        again.stop()


# ---- occi.compute.speed (D-SPEED) ---------------------------------------------------------------------------

def test_the_compute_kind_declares_speed(http: httpx.Client) -> None:
    [compute] = [c for c in text_categories(http.get("/-/", headers={"Accept": PLAIN}))
                 if c.type_id == COMPUTE]
    assert "occi.compute.speed" in compute.attribute_flags()
    assert compute.attribute_flags()["occi.compute.speed"] == set()  # optional and mutable
    kinds = http.get("/-/", headers={"Accept": JSON}).json()["kinds"]
    speed = next(k for k in kinds if k["term"] == "compute")["attributes"]["occi.compute.speed"]
    assert (speed["type"], speed["mutable"], speed["required"]) == ("number", True, False)


def test_speed_is_stored_and_rendered(http: httpx.Client) -> None:
    location = _create(http, Category=CLASSLESS_COMPUTE, **{"X-OCCI-Attribute": "occi.compute.speed=2.4"})
    attributes = dict(parse_attribute(v) for n, v in text_fields(http.get(location, headers={"Accept": PLAIN}))
                      if n == "X-OCCI-Attribute")
    assert attributes["occi.compute.speed"] == 2.4
    assert http.get(location, headers={"Accept": JSON}).json()["attributes"]["occi.compute.speed"] == 2.4


# ---- quoting -------------------------------------------------------------------------------------------------

def test_a_quoted_comma_does_not_split_attributes(http: httpx.Client) -> None:
    value = 'occi.compute.memory=3.6, occi.core.title="How\'s your quotes escaping? \\", occi.compute.memory=1.0"'
    location = _create(http, Category=CLASSLESS_COMPUTE, **{"X-OCCI-Attribute": value})
    attributes = dict(parse_attribute(v) for n, v in text_fields(http.get(location, headers={"Accept": PLAIN}))
                      if n == "X-OCCI-Attribute")
    assert attributes["occi.compute.memory"] == 3.6
    assert attributes["occi.core.title"] == 'How\'s your quotes escaping? ", occi.compute.memory=1.0'


# ---- strict terms (D-STRICT-TERMS) ---------------------------------------------------------------------------

def test_every_term_in_discovery_is_a_strict_term(fresh: Occi) -> None:
    # A fresh server: only what occipy itself emits (catalogue, driver templates), no user mixins.
    for accept in (PLAIN, OCCI, JSON):
        found = discovered(fresh.get("/-/", accept=accept))
        terms = [type_id.rpartition("#")[2] for type_id in found]
        assert len(terms) > 30
        assert [term for term in terms if not STRICT_TERM_RE.match(term)] == []
    templates = [c.params.get("title") for c in text_categories(fresh.get("/-/", accept=PLAIN))
                 if c.scheme == "http://occipy.org/occi/os_tpl#"]
    assert "Ubuntu 24.04 LTS (Noble Numbat)" in templates  # the title keeps the provider's name


def test_input_still_accepts_gfd229_terms(http: httpx.Client) -> None:
    # GFD.229 term = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-" / "_" / "."): accepted from clients
    category = 'My.Tag-1; scheme="http://example.com/occi/dots#"; class="mixin"; location="/dots/"'
    assert http.post("/-/", headers={**TEXT_OCCI, "Category": category}).status_code == 200
    assert http.request("DELETE", "/-/", headers={**TEXT_OCCI, "Category": category}).status_code == 200


# ---- typed values at the edge (issue 8, D-RANGES) ---------------------------------------------------------------

@pytest.mark.parametrize(("kind", "attribute"), [
    ("compute", "occi.compute.memory=-1"),
    ("compute", "occi.compute.memory=0"),
    ("compute", "occi.compute.memory=-0.0"),
    ("compute", "occi.compute.cores=1e308"),
    ("compute", "occi.compute.cores=0"),
    ("compute", "occi.compute.share=-1"),
    ("storage", "occi.storage.size=-5"),
    ("network", "occi.network.vlan=4096"),
])
def test_out_of_range_values_are_400_naming_the_attribute(http: httpx.Client, kind: str, attribute: str) -> None:
    response = http.post(f"/{kind}/", headers={**TEXT_OCCI, "Category": f'{kind}; scheme="{INFRA}"; class="kind"',
                                               "X-OCCI-Attribute": attribute})
    assert response.status_code == 400, response.text
    assert attribute.split("=")[0] in response.headers["x-occi-error"]


@pytest.mark.parametrize("memory", [-1, 0, 10**400, 1e308])
def test_out_of_range_json_values_are_400(http: httpx.Client, memory: float) -> None:
    body = f'{{"kind": "{COMPUTE}", "attributes": {{"occi.compute.memory": {memory}}}}}'
    response = http.post("/compute/", content=body, headers={"Content-Type": JSON, "Accept": JSON})
    assert response.status_code == 400, response.text
    assert "occi.compute.memory" in response.text


def test_integers_never_render_in_exponent_form(http: httpx.Client) -> None:
    location = _create(http, Category=CLASSLESS_COMPUTE,
                       **{"X-OCCI-Attribute": "occi.compute.cores=4.0, occi.compute.memory=1048576"})
    text = http.get(location, headers={"Accept": PLAIN}).text
    assert "occi.compute.cores=4\r\n" in text or "occi.compute.cores=4\n" in text
    assert re.search(r"occi\.compute\.memory=1048576(\.0)?\r?\n", text)
    assert "e+" not in text.lower()


# ---- the script's collection flow on the default simulated cloud (one second per cloud operation) ------

@pytest.fixture(scope="module")
def default_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A server as `occipy serve` starts it: the simulated cloud takes `delay=1.0` s per operation, so
    the script's requests reach computes that are still being created."""
    server = start_server(tmp_path_factory.mktemp("default-cloud"), driver_options={"delay": "1.0"})
    try:
        with httpx.Client(base_url=server.url, timeout=20) as client:
            yield client
    finally:
        server.stop()


def _state(http: httpx.Client, location: str) -> str:
    attributes = dict(parse_attribute(v) for n, v in text_fields(http.get(location, headers={"Accept": OCCI}))
                      if n == "X-OCCI-Attribute")
    return str(attributes["occi.compute.state"])


def _wait_active(http: httpx.Client, location: str) -> None:
    for _ in range(100):
        if _state(http, location) == "active":
            return
        time.sleep(0.1)
    raise AssertionError(f"{location} never became active")


@pytest.mark.spec("H-33")
def test_starting_the_compute_collection_with_an_active_member_is_200(default_cloud: httpx.Client) -> None:
    # D-COLLECTION-NOOP. The script creates two computes at the root and starts /compute/ at once.
    active = _create(default_cloud, Category=CLASSLESS_COMPUTE)
    _wait_active(default_cloud, active)
    creating = _create(default_cloud, Category=CLASSLESS_COMPUTE)
    response = default_cloud.post("/compute/", params={"action": "start"},
                                  headers={**TEXT_OCCI, "Category": f'start; scheme="{COMPUTE_ACTION}"'})
    assert response.status_code == 200, response.text
    _wait_active(default_cloud, creating)
    assert _state(default_cloud, active) == "active"


@pytest.mark.spec("H-30")
@pytest.mark.spec("H-32")
@pytest.mark.spec("H-35")
def test_a_user_mixin_applies_at_once_to_computes_being_created(default_cloud: httpx.Client) -> None:
    # D-TAGS-AT-ONCE: association, full update and removal of a user mixin's members right after
    # the creates, each seen by the next GET, as the script checks them.
    _user_mixin(default_cloud, scheme="http://example.com/occi/soon#", term="soon", location="/soon/")
    tag = 'soon; scheme="http://example.com/occi/soon#"'
    first, second = _create(default_cloud, Category=CLASSLESS_COMPUTE), _create(default_cloud, Category=CLASSLESS_COMPUTE)
    added = default_cloud.post("/soon/", headers={**TEXT_OCCI, "X-OCCI-Location": first})
    assert added.status_code == 200, added.text
    assert "soon" in default_cloud.get(first, headers={"Accept": OCCI}).headers["category"]
    replaced = default_cloud.put("/soon/", headers={**TEXT_OCCI, "X-OCCI-Location": second})
    assert replaced.status_code == 200, replaced.text
    assert text_locations(default_cloud.get("/soon/", headers={"Accept": OCCI})) == [second]
    assert text_locations(default_cloud.get("/compute/", headers={"Accept": OCCI, "Category": tag})) == [second]
    # the creates end and keep the membership
    _wait_active(default_cloud, first)
    _wait_active(default_cloud, second)
    assert text_locations(default_cloud.get("/soon/", headers={"Accept": OCCI})) == [second]
    assert "soon" not in default_cloud.get(first, headers={"Accept": OCCI}).headers["category"]
    # removal while a stop runs is seen at once, and the stop does not bring it back
    stopped = default_cloud.post(second, params={"action": "stop"},
                                 headers={**TEXT_OCCI, "Category": f'stop; scheme="{COMPUTE_ACTION}"'})
    assert stopped.status_code == 200, stopped.text
    removed = default_cloud.request("DELETE", "/soon/", headers={**TEXT_OCCI, "X-OCCI-Location": second})
    assert removed.status_code == 200, removed.text
    assert text_locations(default_cloud.get("/soon/", headers={"Accept": OCCI})) == []
    for _ in range(100):
        if _state(default_cloud, second) == "inactive":
            break
        time.sleep(0.1)
    assert text_locations(default_cloud.get("/soon/", headers={"Accept": OCCI})) == []
    gone = default_cloud.request("DELETE", "/-/", headers={**TEXT_OCCI, "Category": f'{tag}; class="mixin"'})
    assert gone.status_code == 200
