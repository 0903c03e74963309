"""The dashboard's files: what `occipy.dashboard.asset` gives, and how /dashboard/ serves them."""

from __future__ import annotations

import re

import httpx
import pytest

from occipy import dashboard
from tests.integration.conftest import LiveServer

JS_IMPORT = re.compile(r"""from\s+'\./([A-Za-z0-9_-]+\.js)'""")


def test_every_shipped_file_has_a_type_and_the_index_is_the_default() -> None:
    names = dashboard.names()
    assert "index.html" in names and "js/app.js" in names
    for name in names:
        found = dashboard.asset(name)
        assert found is not None, name
        assert found.etag.startswith('"') and found.body
    assert dashboard.asset("") == dashboard.asset("index.html")
    assert dashboard.asset("js/app.js").media_type == "text/javascript; charset=utf-8"  # type: ignore[union-attr]


def test_every_module_import_resolves() -> None:
    for name in dashboard.names():
        if name.endswith(".js"):
            source = dashboard.asset(name).body.decode()  # type: ignore[union-attr]
            for imported in JS_IMPORT.findall(source):
                assert f"js/{imported}" in dashboard.names(), f"{name} imports {imported}"


@pytest.mark.parametrize("name", [
    "../pyproject.toml", "js/../../server.py", ".hidden", "js/.x.js", "/etc/passwd", "js//app.js", "a\\b.js",
    "__init__.py", "static/index.html", "nothing.html", "index.html/", "index.html\x00.js",
])
def test_names_outside_static_or_unknown_are_refused(name: str) -> None:
    assert dashboard.asset(name) is None


def test_served_with_type_csp_etag_and_304(slow_server: LiveServer) -> None:
    live_server = slow_server
    page = httpx.get(live_server.url + "/dashboard/")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    again = httpx.get(live_server.url + "/dashboard/", headers={"If-None-Match": page.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    redirect = httpx.get(live_server.url + "/dashboard")
    assert redirect.status_code == 308 and redirect.headers["location"] == "/dashboard/"
    style = httpx.get(live_server.url + "/dashboard/style.css")
    assert style.headers["content-type"] == "text/css; charset=utf-8"
    head = httpx.head(live_server.url + "/dashboard/js/app.js")
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == len(dashboard.asset("js/app.js").body)  # type: ignore[union-attr]
    # Encoded dot segments reach the handler as '..' and are refused; a POST goes to the OCCI service.
    with httpx.Client() as client:
        raw = client.send(client.build_request("GET", live_server.url + "/dashboard/%2e%2e/pyproject.toml"))
    assert raw.status_code == 404
    assert httpx.post(live_server.url + "/dashboard/x").status_code == 404
