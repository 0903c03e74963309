"""The metrics' route templates (http/app.py): remembered per path, forgotten when the registry changes."""

from __future__ import annotations

from types import SimpleNamespace

from occipy.http.app import _RouteTemplates, route_template
from occipy.model.category import Mixin
from occipy.model.standard import standard_registry


def test_a_remembered_template_follows_a_registry_change() -> None:
    registry = standard_registry()
    templates = _RouteTemplates(SimpleNamespace(registry=registry))
    assert templates("/my_stuff/") == "/{unbound}/" == route_template(registry, "/my_stuff/")
    assert templates("/compute/abc") == "/compute/{id}"
    registry.add(Mixin(scheme="http://example.com/occi/my_stuff#", term="my_stuff", location="/my_stuff/",
                       user_defined=True))
    assert templates("/my_stuff/") == "/{mixin}/" == route_template(registry, "/my_stuff/")
    assert templates("/compute/abc") == "/compute/{id}"
