"""The web dashboard in Debian's headless Chromium against a live server (slow simulated cloud).

The main journey: sign in, create a compute from an OS and a resource template with a network
and a storage, watch it become active, stop it with a parameter, delete it. Around it: lists
with filters and pages, the query-interface browser, errors as the server wrote them, 401 bringing
the sign-in form back, the event stream when the server offers one, labels and keyboard use.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from occipy.model.category import strict_term

from tests.integration.conftest import LiveServer

pytestmark = pytest.mark.slow

JSON = "application/occi+json"
INFRA = "http://schemas.ogf.org/occi/infrastructure#"
TIMEOUT = 20_000  # ms: creates take delay (1.5 s) plus polling


def occi(server: LiveServer, method: str, path: str, body: Any = None) -> httpx.Response:
    headers = {"Accept": JSON}
    if body is not None:
        headers["Content-Type"] = JSON
    return httpx.request(method, server.url + path, headers=headers,
                         content=None if body is None else json.dumps(body), timeout=10)


def wait_operation(server: LiveServer, response: httpx.Response) -> None:
    import time

    url = response.headers["X-OCCI-Operation"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if httpx.get(url, headers={"Accept": JSON}).json()["state"] in ("succeeded", "failed"):
            return
        time.sleep(0.1)
    raise AssertionError(f"operation {url} did not end")


@pytest.fixture(scope="module")
def fixtures(slow_server: LiveServer) -> dict[str, str]:
    """A network and a storage for the compute to use, and a user mixin to associate."""
    net = occi(slow_server, "POST", "/network/", {
        "kind": INFRA + "network", "title": "lan",
        "mixins": ["http://schemas.ogf.org/occi/infrastructure/network#ipnetwork"],
        "attributes": {"occi.network.address": "10.9.0.0/24"}})
    disk = occi(slow_server, "POST", "/storage/", {
        "kind": INFRA + "storage", "title": "data", "attributes": {"occi.storage.size": 2.0}})
    assert net.status_code == 201 and disk.status_code == 201, (net.text, disk.text)
    wait_operation(slow_server, net)
    wait_operation(slow_server, disk)
    mixin = occi(slow_server, "POST", "/-/", {"mixins": [{
        "term": "project_x", "scheme": "http://example.org/alice#", "title": "Project X", "location": "/project_x/"}]})
    assert mixin.status_code == 200, mixin.text
    return {"network": httpx.URL(net.headers["Location"]).path, "storage": httpx.URL(disk.headers["Location"]).path}


@pytest.fixture
def page(browser: Any, slow_server: LiveServer) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_default_timeout(TIMEOUT)
    yield page
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def unlabelled_controls(page: Any) -> list[str]:
    """Form controls without an accessible label (WCAG 1.3.1 / 4.1.2)."""
    return page.evaluate("""() => [...document.querySelectorAll('input, select, textarea')]
        .filter((el) => el.type !== 'hidden' && !el.hidden && !el.closest('[hidden]'))
        .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                        && !el.getAttribute('aria-labelledby'))
        .map((el) => el.outerHTML.slice(0, 120))""")


def test_journey_sign_in_create_watch_stop_delete(page: Any, slow_server: LiveServer, fixtures: dict[str, str],
                                                   shots: Path) -> None:
    sent: list[str | None] = []
    page.on("request", lambda request: sent.append(request.headers.get("authorization"))
            if "/dashboard/" not in request.url else None)
    page.goto(slow_server.url + "/dashboard/")
    # An anonymous server lets the dashboard in; sign in with a user anyway (Basic).
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="Sign in").wait_for()
    assert unlabelled_controls(page) == []
    page.screenshot(path=str(shots / "sign-in.png"), full_page=True)
    page.get_by_label("User name and password (HTTP Basic)").check()
    page.get_by_label("User name", exact=True).fill("alice")
    page.get_by_label("Password", exact=True).fill("s3cret")
    sent.clear()  # from here on, every request must carry the credentials
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Signed in as alice").wait_for()
    assert page.evaluate("sessionStorage.getItem('occipy.dashboard.credentials')") is not None
    page.get_by_role("heading", name="Overview").wait_for()
    page.screenshot(path=str(shots / "overview.png"), full_page=True)

    # Create a compute: templates from the query interface, links to the network and the storage.
    page.get_by_role("link", name="Create compute").click()
    page.get_by_role("heading", name=re.compile("Create a Compute")).wait_for()
    page.get_by_label("Title").fill("web-1")
    os_select = page.get_by_label("OS template")
    os_select.select_option(value="http://occipy.org/occi/os_tpl#debian-12")
    page.get_by_label("Resource template").select_option(value="http://schemas.ogf.org/occi/infrastructure/compute/template/1.1#small")
    page.get_by_label(re.compile(r"^lan \(")).check()
    page.get_by_label(re.compile(r"^data \(")).check()
    assert unlabelled_controls(page) == []
    page.screenshot(path=str(shots / "create-compute.png"), full_page=True)
    page.get_by_role("button", name="Create compute").click()

    # The entity page shows the compute; the activity log shows the operation running, then done.
    page.get_by_role("heading", name="web-1").wait_for()
    activity = page.locator("#activity")
    activity.get_by_text(re.compile(r"Create compute web-1: (queued|running)")).wait_for()
    page.screenshot(path=str(shots / "compute-creating.png"), full_page=True)
    activity.get_by_text("Create compute web-1: succeeded").wait_for()
    page.locator("#entity-state").get_by_text("active", exact=True).wait_for()
    location = page.locator("dd code").first.inner_text()
    assert location.startswith("/compute/")
    links = page.locator("table.links")
    assert fixtures["network"] in links.inner_text() and fixtures["storage"] in links.inner_text()
    rendered = occi(slow_server, "GET", location).json()
    assert set(rendered["mixins"]) >= {"http://occipy.org/occi/os_tpl#debian-12",
                                       "http://schemas.ogf.org/occi/infrastructure/compute/template/1.1#small"}
    assert rendered["attributes"]["occi.compute.state"] == "active"
    assert unlabelled_controls(page) == []
    page.screenshot(path=str(shots / "compute-active.png"), full_page=True)

    # Stop it, with the action's parameter from its attribute definitions.
    page.get_by_role("button", name="stop…").click()
    page.get_by_label("method").select_option("graceful")
    page.get_by_role("button", name="Run stop").click()
    activity.get_by_text(re.compile(r"stop compute web-1: succeeded")).wait_for()
    page.locator("#entity-state").get_by_text("inactive", exact=True).wait_for()
    assert occi(slow_server, "GET", location).json()["attributes"]["occi.compute.state"] == "inactive"
    page.get_by_role("button", name="start…").wait_for()

    # Update an attribute, associate a mixin.
    page.get_by_label("occi.core.summary", exact=True).fill("front end")
    page.get_by_role("button", name="Save attributes").click()
    page.get_by_label("occi.core.summary", exact=True).and_(page.locator("[data-original='\"front end\"']")).wait_for()
    assert occi(slow_server, "GET", location).json()["attributes"]["occi.core.summary"] == "front end"
    page.get_by_label("Mixin to associate").select_option(value="http://example.org/alice#project_x")
    page.get_by_role("button", name="Associate mixin").click()
    page.locator(".tags li", has_text="project_x").wait_for()
    assert "http://example.org/alice#project_x" in occi(slow_server, "GET", location).json()["mixins"]

    # Delete it: a confirmation first, then the list; the compute is gone once the operation ends.
    page.get_by_role("button", name="Delete…").click()
    page.get_by_role("button", name="Yes, delete").click()
    page.get_by_role("heading", name="Compute Resource").wait_for()
    activity.get_by_text(re.compile(r"Delete compute web-1: succeeded")).wait_for()
    assert occi(slow_server, "GET", location).status_code == 404
    # Every request after signing in carried the credentials.
    assert len(sent) > 10 and all(value == "Basic YWxpY2U6czNjcmV0" for value in sent), set(sent)


def test_lists_filter_and_page(page: Any, slow_server: LiveServer, fixtures: dict[str, str], shots: Path) -> None:
    created = []
    alpine = strict_term("alpine-3.20")  # D-STRICT-TERMS: the provider's name, made a strict term
    for i, template in enumerate(["debian-12", alpine, "debian-12"]):
        answer = occi(slow_server, "POST", "/compute/", {
            "kind": INFRA + "compute", "title": f"list-{i}", "mixins": [f"http://occipy.org/occi/os_tpl#{template}"],
            "links": [{"kind": INFRA + "networkinterface", "target": {"location": fixtures["network"]}}]})
        assert answer.status_code == 201, answer.text
        created.append(answer)
    for answer in created:
        wait_operation(slow_server, answer)
    page.goto(slow_server.url + "/dashboard/#/kind/%2Fcompute%2F")
    table = page.locator("table.entities")
    table.get_by_role("link", name="list-2").wait_for()
    # Links of each listed resource are shown.
    assert fixtures["network"] in table.locator("tr", has_text="list-0").inner_text()
    page.screenshot(path=str(shots / "compute-list.png"), full_page=True)

    page.get_by_label("Kind or mixin").select_option(value=f"http://occipy.org/occi/os_tpl#{alpine}")
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_url(re.compile(r"category="))
    # the hash changes at once, the filtered table comes after the answer: assertions that wait
    expect(table.get_by_role("link", name="list-0")).to_have_count(0)
    table.get_by_role("link", name="list-1").wait_for()

    page.get_by_label("Kind or mixin").select_option(value="")
    page.get_by_label("Attribute", exact=True).select_option("occi.core.title")
    page.get_by_label("has the value").fill("list-2")
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_url(re.compile(r"attribute=occi.core.title"))
    expect(table.locator("tbody tr")).to_have_count(1)
    table.get_by_role("link", name="list-2").wait_for()

    # The X-OCCI-Attribute header filter (GFD.223 §7).
    page.get_by_label("Attribute", exact=True).select_option("")
    page.get_by_label("X-OCCI-Attribute filter").fill('occi.core.title="list-1"')
    page.get_by_role("button", name="Apply filters").click()
    expect(table.get_by_role("link", name="list-2")).to_have_count(0)
    table.get_by_role("link", name="list-1").wait_for()
    expect(table.locator("tbody tr")).to_have_count(1)

    # Pages of one: next and previous follow ?page=&number=.
    page.goto(slow_server.url + "/dashboard/#/kind/%2Fcompute%2F?page=1&number=10")
    table.get_by_role("link", name="list-0").wait_for()
    page.goto(slow_server.url + "/dashboard/#/kind/%2Fcompute%2F?page=2&number=10")
    page.get_by_text("Nothing here.").wait_for()
    expect(page.get_by_role("link", name="Previous page")).to_have_count(1)
    expect(page.get_by_role("link", name="Next page")).to_have_count(0)


def test_every_served_kind_is_listed_and_the_query_browser(page: Any, slow_server: LiveServer, shots: Path) -> None:
    # A user mixin defined after the page loaded shows up in the browser (it reads /-/ again).
    page.goto(slow_server.url + "/dashboard/")
    nav = page.get_by_role("navigation", name="Kinds and tools")
    nav.get_by_role("link", name="Storage Resource").wait_for()
    kinds = occi(slow_server, "GET", "/-/").json()["kinds"]
    for kind in kinds:
        if "location" in kind:
            assert nav.get_by_role("link", name=kind["title"], exact=True).count() == 1, kind["title"]
    answer = occi(slow_server, "POST", "/-/", {"mixins": [{
        "term": "team_blue", "scheme": "http://example.org/users#", "title": "Team blue", "location": "/team_blue/"}]})
    assert answer.status_code == 200, answer.text
    nav.get_by_role("link", name="Query interface").click()
    page.get_by_label("Filter categories").fill("team_blue")
    summary = page.locator("details.category summary", has_text="http://example.org/users#team_blue")
    summary.wait_for()
    page.get_by_label("Filter categories").fill("compute/action#stop")
    stop = page.locator("details.category", has_text="compute/action#stop")
    stop.locator("summary").click()
    assert "graceful" in stop.inner_text() and "method" in stop.inner_text()
    page.get_by_label("Filter categories").fill("")
    page.locator("details.category", has_text="infrastructure#compute").first.locator("summary").click()
    assert unlabelled_controls(page) == []
    page.screenshot(path=str(shots / "query-interface.png"), full_page=True)


def test_errors_are_shown_as_the_server_wrote_them(page: Any, slow_server: LiveServer) -> None:
    page.goto(slow_server.url + "/dashboard/#/create/%2Fnetwork%2F")
    page.get_by_label("IPNetwork mixin").check()
    page.get_by_label("occi.network.address", exact=True).fill("300.1.2.3/40")
    page.get_by_role("button", name="Create network").click()
    alert = page.get_by_role("alert")
    alert.get_by_text(re.compile("400 Bad Request")).wait_for()
    expected = occi(slow_server, "POST", "/network/", {
        "kind": INFRA + "network", "mixins": ["http://schemas.ogf.org/occi/infrastructure/network#ipnetwork"],
        "attributes": {"occi.network.address": "300.1.2.3/40"}}).json()["message"]
    assert expected in alert.inner_text()
    page.goto(slow_server.url + "/dashboard/#/entity/%2Fcompute%2Fno-such-thing")
    alert.get_by_text(re.compile("404 Not Found")).wait_for()


def test_401_brings_the_sign_in_form_back_with_the_challenge(page: Any, slow_server: LiveServer) -> None:
    # The server has no authentication yet (other engineers add it): a 401 is answered here by the
    # browser's router, as a server with authentication would, with its challenge.
    def refuse(route: Any) -> None:
        route.fulfill(status=401, headers={"WWW-Authenticate": 'Bearer realm="occi"', "Content-Type": JSON},
                      body=json.dumps({"code": 401, "message": "a valid token is needed"}))

    page.route(re.compile(r".*/-/$"), refuse)
    page.goto(slow_server.url + "/dashboard/")
    page.get_by_role("heading", name="Sign in").wait_for()
    page.get_by_text("a valid token is needed").wait_for()
    assert page.get_by_label("Access token (Bearer)").is_checked()
    page.unroute(re.compile(r".*/-/$"))
    page.get_by_label("Token", exact=True).fill("t0ken")
    with page.expect_request(re.compile(r".*/-/$")) as request:
        page.get_by_role("button", name="Sign in").click()
    assert request.value.headers["authorization"] == "Bearer t0ken"
    page.get_by_text("Signed in with a token").wait_for()


def test_events_stream_is_used_when_the_server_offers_it(page: Any, slow_server: LiveServer) -> None:
    """The server's GET /-/events (issue 12): the dashboard takes updates from it instead of polling."""
    page.goto(slow_server.url + "/dashboard/")
    page.get_by_text("Live updates: server-sent events.").wait_for()
    disk = occi(slow_server, "POST", "/storage/", {
        "kind": INFRA + "storage", "title": "watched", "attributes": {"occi.storage.size": 1.0}})
    assert disk.status_code == 201, disk.text
    # The stream's events for that create arrive (created, state, operation ...).
    page.get_by_text(re.compile(r"Live updates: server-sent events\. [1-9]\d* received\.")).wait_for()
    wait_operation(slow_server, disk)
    occi(slow_server, "DELETE", httpx.URL(disk.headers["Location"]).path)


def test_a_reconnect_resumes_with_last_event_id(page: Any, slow_server: LiveServer) -> None:
    """A stream that ends is opened again after the server's `retry:` delay, with the last id it saw."""
    seen: list[dict[str, str]] = []

    def answer(route: Any) -> None:
        seen.append(dict(route.request.headers))
        route.fulfill(status=200, headers={"Content-Type": "text/event-stream"},
                      body='retry: 200\nid: 41\n\nid: 42\ndata: {"type": "created", "location": "/compute/x", '
                           '"operation": null, "state": "active"}\n\n')

    page.route(re.compile(r".*/-/events$"), answer)
    page.goto(slow_server.url + "/dashboard/")
    page.get_by_text(re.compile(r"The event stream ended after [1-9]\d* events?; reconnecting")).wait_for()
    deadline = 50
    while len(seen) < 2 and deadline:
        page.wait_for_timeout(100)
        deadline -= 1
    assert len(seen) >= 2, seen
    assert "last-event-id" not in seen[0]
    assert seen[1]["last-event-id"] == "42"


def test_without_events_the_dashboard_polls(page: Any, slow_server: LiveServer) -> None:
    # A server without the event stream (404, as before issue 12): operation records are polled.
    page.route(re.compile(r".*/-/events$"), lambda route: route.fulfill(
        status=404, headers={"Content-Type": "text/plain"}, body="nothing at /-/events\n"))
    page.goto(slow_server.url + "/dashboard/")
    page.get_by_text("Live updates: polling operation records.").wait_for()


def test_keyboard_skip_link_and_visible_focus(page: Any, slow_server: LiveServer) -> None:
    page.goto(slow_server.url + "/dashboard/")
    page.get_by_role("heading", name="Overview").wait_for()
    # The skip link comes first in the focus order: Shift+Tab from the first link reaches it.
    first = page.evaluate("document.querySelector('a[href], button, input, select, textarea').textContent")
    assert first == "Skip to content"
    page.focus(".brand a")
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    # The activity log and the errors are live regions.
    assert page.get_attribute("#activity", "role") == "log"
    assert page.get_attribute("#error", "role") == "alert"


def test_keyboard_only_navigation_moves_focus_to_the_page(page: Any, slow_server: LiveServer) -> None:
    page.goto(slow_server.url + "/dashboard/")
    page.get_by_role("heading", name="Overview").wait_for()
    page.focus(".brand a")
    for _ in range(30):  # Tab along the navigation to the storage list
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Storage Resource":
            break
    else:
        raise AssertionError("Tab never reached the Storage Resource link")
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Storage Resource").wait_for()
    # after navigation the page's heading has the focus (screen readers announce the new page)
    expect(page.locator("h2:focus")).to_have_text("Storage Resource")
    assert page.get_attribute("#nav a[aria-current='page']", "href") == "#/kind/%2Fstorage%2F"
    # the next Tab goes into the page's own controls, in reading order
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Create storage"
