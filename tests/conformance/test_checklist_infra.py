"""Checklist INF-* (OCCI Infrastructure, GFD.224; conformance-extensions.md part A and INF-R*).

The simulated cloud runs with delay=0 (instant transitions) on the session server; the tests that
must see an entity while the cloud is still working use a fresh server with a delay. A title
containing `simulate-failure` makes the simulated cloud fail a creation (state `error`).
"""

from __future__ import annotations

import time

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conformance.conftest import (
    ALL_MEDIA,
    COMPUTE,
    COMPUTE_ACTION,
    CORE,
    DEBIAN,
    IPNETWORK,
    IPNETWORKINTERFACE,
    JSON,
    LARGE,
    MEDIUM,
    NETWORK,
    NETWORK_ACTION,
    NETWORKINTERFACE,
    OCCI,
    OS_TPL,
    PLAIN,
    RESOURCE_TPL,
    SMALL,
    SSH_KEY,
    STORAGE,
    STORAGE_ACTION,
    STORAGELINK,
    TEXT_MEDIA,
    TINY,
    UBUNTU,
    USER_DATA,
    XLARGE,
    Occi,
    media_type,
    send_entity,
    text_categories,
)
from tests.integration.conftest import start_server

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGl0IHdvcmtzIGZvciB0ZXN0cw tester@example"
COMPUTE_STATES = {"active", "inactive", "suspended", "error"}
LINK_STATES = NETWORK_STATES = {"active", "inactive", "error"}
STORAGE_STATES = {"online", "offline", "error"}
LEGACY_STORAGE = ("backup", "snapshot", "resize")  # OCCI 1.1 storage actions (D-LEGACY-STORAGE)
APPLICABLE = {  # INF-R2 / infrastructure.md §4.4
    "inactive": {"start", "save"},
    "active": {"stop", "restart", "suspend", "save"},
    "suspended": {"start"},
    "error": set(),
}


@pytest.fixture
def slow(tmp_path: Path) -> Iterator[Occi]:
    """A fresh server whose simulated cloud takes a second for every change."""
    server = start_server(tmp_path / "data", driver_options={"delay": "1"})
    client = Occi(server.url)
    yield client
    client.close()
    server.stop()


def failed_compute(occi: Occi) -> str:
    location = occi.compute(attributes={"occi.core.title": f"simulate-failure {uuid.uuid4().hex[:6]}"})
    assert occi.wait_state(location, "error").state == "error"
    return location


def running(occi: Occi, **kw: Any) -> str:
    location = occi.compute(**kw)
    assert occi.wait_state(location, "active").state == "active"
    return location


# --- INF-01 .. INF-04: kinds ----------------------------------------------------------------------
@pytest.mark.spec("INF-01")
@pytest.mark.spec("INF-05")
@pytest.mark.spec("INF-13")
@pytest.mark.spec("INF-19")
@pytest.mark.spec("INF-23")
@pytest.mark.spec("INF-30")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_every_instance_exposes_its_kind(occi: Occi, media: str) -> None:
    compute, network, storage = occi.compute(media=media), occi.network(media=media), occi.storage(media=media)
    nic = occi.link(NETWORKINTERFACE, compute, network, media)
    disk = occi.link(STORAGELINK, compute, storage, media)
    for location, kind in ((compute, COMPUTE), (network, NETWORK), (storage, STORAGE), (nic, NETWORKINTERFACE),
                           (disk, STORAGELINK)):
        assert occi.view(location, media).kind == kind


@pytest.mark.spec("INF-02")
@pytest.mark.spec("INF-04")
@pytest.mark.spec("INF-24")
@pytest.mark.spec("INF-31")
def test_infrastructure_kind_parents(occi: Occi) -> None:
    model = occi.discover()
    for kind in (COMPUTE, STORAGE, NETWORK):
        assert model.category(kind)["parent"] == CORE + "resource"
    for kind in (NETWORKINTERFACE, STORAGELINK):
        assert model.category(kind)["parent"] == CORE + "link"


# --- INF-05 .. INF-12: compute ------------------------------------------------------------------
@pytest.mark.spec("INF-06")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_compute_state_is_always_exposed(occi: Occi, media: str) -> None:
    for location in (occi.compute(), failed_compute(occi)):
        assert occi.view(location, media).attributes["occi.compute.state"] in COMPUTE_STATES


@pytest.mark.spec("INF-07")
@pytest.mark.spec("INF-15")
@pytest.mark.spec("INF-21")
@pytest.mark.parametrize("kind,scheme,terms", [
    (COMPUTE, COMPUTE_ACTION, {"start", "stop", "restart", "suspend", "save"}),
    (NETWORK, NETWORK_ACTION, {"up", "down"}),
    # backup, snapshot, resize: the OCCI 1.1 actions, kept for 1.1 clients (D-LEGACY-STORAGE)
    (STORAGE, STORAGE_ACTION, {"online", "offline", "backup", "snapshot", "resize"}),
])
def test_kind_actions(occi: Occi, kind: str, scheme: str, terms: set[str]) -> None:
    assert set(occi.model.category(kind)["actions"]) == {scheme + t for t in terms}
    for term in terms:
        assert occi.model.cls[scheme + term] == "action"
    text = next(c for c in text_categories(occi.get("/-/")) if c.type_id == kind)
    assert set(str(text.params["actions"]).split()) == {scheme + t for t in terms}


METHODS = {"stop": ["graceful", "acpioff", "poweroff"], "restart": ["graceful", "warm", "cold"],
           "suspend": ["hibernate", "suspend"], "save": ["hot", "deferred"]}


@pytest.mark.spec("INF-08")
@pytest.mark.parametrize("action", sorted(METHODS))
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_action_methods_outside_the_enum_are_refused(occi: Occi, action: str, media: str) -> None:
    compute = running(occi)
    response = occi.act(compute, action, media, attributes={"method": "sideways"})
    assert response.status_code == 400, response.text
    assert occi.view(compute).state == "active"


@pytest.mark.spec("INF-08")
@pytest.mark.parametrize("action,method", [(a, m) for a, ms in sorted(METHODS.items()) for m in ms])
def test_action_methods_in_the_enum_are_accepted(occi: Occi, action: str, method: str) -> None:
    compute = running(occi)
    response = occi.act(compute, action, JSON, attributes={"method": method})
    assert response.status_code == 200, response.text


@pytest.mark.spec("INF-08")
def test_unknown_action_attribute_is_refused(occi: Occi) -> None:
    compute = running(occi)
    response = occi.act(compute, "stop", JSON, attributes={"speed": "fast"})
    assert response.status_code == 400, response.text


@pytest.mark.spec("INF-10")
@pytest.mark.spec("INF-09")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_save_answers_the_new_os_template(occi: Occi, media: str) -> None:
    compute = running(occi, mixins=[DEBIAN])
    name = "inf10-" + uuid.uuid4().hex[:6]
    response = occi.act(compute, "save", media, attributes={"name": name})
    assert response.status_code == 200, response.text
    assert media_type(response) == media
    if media == JSON:
        (mixin,) = response.json()["mixins"]
        type_id, depends = mixin["scheme"] + mixin["term"], mixin["depends"]
    else:
        (category,) = text_categories(response)
        assert category.cls == "mixin"
        type_id, depends = category.type_id, [category.params["rel"]]
    assert OS_TPL in depends
    assert type_id.rpartition("#")[2] == name   # INF-09 (MAY): occipy honours the requested name
    model = occi.discover()
    assert OS_TPL in model.category(type_id)["depends"]
    # The saved template creates new computes like any OS template.
    copy = occi.compute(mixins=[type_id])
    assert type_id in occi.view(copy).mixins
    assert occi.view(compute).state == "active"


@pytest.mark.spec("INF-12")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_compute_state_diagram(occi: Occi, media: str) -> None:
    compute = running(occi)
    steps = [("stop", "inactive"), ("start", "active"), ("suspend", "suspended"), ("start", "active"),
             ("restart", "active"), ("save", "active"), ("stop", "inactive"), ("save", "inactive")]
    for action, state in steps:
        response = occi.act(compute, action, media)
        assert response.status_code == 200, (action, response.text)
        assert occi.wait_state(compute, state).state == state, action


@pytest.mark.spec("INF-12")
@pytest.mark.spec("INF-R1")
@pytest.mark.parametrize("state,refused", [("inactive", ["stop", "restart", "suspend"]),
                                           ("suspended", ["stop", "restart", "suspend", "save"]),
                                           ("active", ["start"])])
def test_transitions_not_in_the_diagram_are_conflicts(occi: Occi, state: str, refused: list[str]) -> None:
    compute = running(occi)
    if state != "active":
        occi.act(compute, {"inactive": "stop", "suspended": "suspend"}[state])
        occi.wait_state(compute, state)
    for action in refused:
        response = occi.act(compute, action, PLAIN)
        assert response.status_code == 409, (action, response.text)
    assert occi.view(compute).state == state


@pytest.mark.spec("INF-12")
@pytest.mark.spec("INF-R5")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_failure_leads_to_error_with_a_message(occi: Occi, media: str) -> None:
    compute = failed_compute(occi)
    seen = occi.view(compute, media)
    assert seen.attributes["occi.compute.state"] == "error"
    assert seen.attributes.get("occi.compute.state.message")


# --- INF-13 .. INF-18: network ------------------------------------------------------------------
@pytest.mark.spec("INF-14")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_network_state_and_actions(occi: Occi, media: str) -> None:
    network = occi.network(media=media)
    assert occi.wait_state(network, "active").attributes["occi.network.state"] in NETWORK_STATES
    assert occi.act(network, "down", media).status_code == 200
    assert occi.wait_state(network, "inactive").state == "inactive"
    assert occi.act(network, "down", media).status_code == 409
    assert occi.act(network, "up", media).status_code == 200
    assert occi.wait_state(network, "active").state == "active"


@pytest.mark.spec("INF-16")
@pytest.mark.spec("INF-17")
@pytest.mark.spec("INF-18")
@pytest.mark.spec("INF-26")
@pytest.mark.spec("INF-27")
def test_ip_mixins(occi: Occi) -> None:
    ipnetwork = occi.model.category(IPNETWORK)
    assert (ipnetwork["scheme"], ipnetwork["term"]) == ("http://schemas.ogf.org/occi/infrastructure/network#",
                                                       "ipnetwork")
    assert ipnetwork["applies"] == [NETWORK]
    assert set(ipnetwork["attributes"]) == {"occi.network.address", "occi.network.gateway",
                                            "occi.network.allocation"}
    ipnic = occi.model.category(IPNETWORKINTERFACE)
    assert (ipnic["scheme"], ipnic["term"]) == ("http://schemas.ogf.org/occi/infrastructure/networkinterface#",
                                                "ipnetworkinterface")
    assert ipnic["applies"] == [NETWORKINTERFACE]
    assert set(ipnic["attributes"]) == {"occi.networkinterface.address", "occi.networkinterface.gateway",
                                        "occi.networkinterface.allocation"}


@pytest.mark.spec("INF-18")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_network_with_ipnetwork_exposes_its_attributes(occi: Occi, media: str) -> None:
    network = occi.network(media=media, mixins=[IPNETWORK], attributes={
        "occi.network.address": "10.77.0.0/24", "occi.network.gateway": "10.77.0.1",
        "occi.network.allocation": "static"})
    seen = occi.view(network, media)
    assert IPNETWORK in seen.mixins
    assert seen.attributes["occi.network.address"] == "10.77.0.0/24"
    assert seen.attributes["occi.network.gateway"] == "10.77.0.1"
    assert seen.attributes["occi.network.allocation"] == "static"


@pytest.mark.spec("INF-17")
def test_ipnetwork_does_not_apply_to_compute(occi: Occi) -> None:
    response = occi.create_response(COMPUTE, JSON, mixins=[IPNETWORK])
    assert response.status_code == 403, response.text   # core.md §2.5 [decision]; INF-R8 says 400


@pytest.mark.spec("INF-18")
@pytest.mark.parametrize("attributes", [{"occi.network.address": "not-a-network"},
                                        {"occi.network.gateway": "300.1.1.1"},
                                        {"occi.network.allocation": "sometimes"}])
def test_ipnetwork_values_are_checked(occi: Occi, attributes: dict[str, str]) -> None:
    response = occi.create_response(NETWORK, JSON, mixins=[IPNETWORK], attributes=attributes)
    assert response.status_code == 400, response.text


# --- INF-19 .. INF-22: storage ------------------------------------------------------------------
@pytest.mark.spec("INF-20")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_storage_size_and_state(occi: Occi, media: str) -> None:
    storage = occi.storage(2.5, media=media)
    seen = occi.wait_state(storage, "online")
    assert seen.attributes["occi.storage.size"] == 2.5
    assert seen.attributes["occi.storage.state"] in STORAGE_STATES
    assert occi.act(storage, "offline", media).status_code == 200
    assert occi.wait_state(storage, "offline").state == "offline"
    assert occi.act(storage, "offline", media).status_code == 409
    assert occi.act(storage, "online", media).status_code == 200


@pytest.mark.spec("INF-20")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_storage_is_resized_by_updating_its_size(occi: Occi, media: str) -> None:
    storage = occi.storage(1.0)
    response = send_entity(occi, "POST", storage, media, None, attributes={"occi.storage.size": 4.0})
    assert response.status_code == 200, response.text
    assert occi.view(storage).attributes["occi.storage.size"] == 4.0


@pytest.mark.spec("INF-20")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_the_legacy_resize_action_updates_the_size(occi: Occi, media: str) -> None:
    # D-LEGACY-STORAGE: "map a resize action to an update of occi.storage.size" (infrastructure.md §6)
    storage = occi.storage(1.0)
    occi.wait_state(storage, "online")
    response = occi.act(storage, "resize", media, attributes={"size": 3.0})
    assert response.status_code == 200, response.text
    seen = occi.view(storage)
    assert (seen.attributes["occi.storage.size"], seen.state) == (3.0, "online")


@pytest.mark.parametrize("term", ["backup", "snapshot"])
def test_the_legacy_backup_and_snapshot_keep_the_state(occi: Occi, term: str) -> None:
    storage = occi.storage(1.0)
    occi.wait_state(storage, "online")
    assert occi.act(storage, "offline").status_code == 200
    occi.wait_state(storage, "offline")
    response = occi.act(storage, term, PLAIN)
    assert response.status_code == 200, response.text
    assert occi.view(storage).state == "offline"
    assert STORAGE_STATES >= {occi.view(storage).state}  # never a 1.1 state (backup, snapshot)


# --- INF-23 .. INF-32: links --------------------------------------------------------------------
@pytest.mark.spec("INF-25")
@pytest.mark.spec("INF-28")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_networkinterface_attributes_are_exposed(occi: Occi, media: str) -> None:
    compute, network = occi.compute(), occi.network()
    nic = occi.link(NETWORKINTERFACE, compute, network, media)
    seen = occi.view(nic, media)
    for name in ("occi.networkinterface.interface", "occi.networkinterface.mac", "occi.networkinterface.state"):
        assert name in seen.attributes, name
    assert seen.attributes["occi.networkinterface.state"] in LINK_STATES
    if IPNETWORKINTERFACE in seen.mixins:
        assert "occi.networkinterface.address" in seen.attributes
        assert seen.attributes["occi.networkinterface.allocation"] in ("dynamic", "static")


@pytest.mark.spec("INF-28")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_static_ipnetworkinterface(occi: Occi, media: str) -> None:
    compute = occi.compute()
    network = occi.network(mixins=[IPNETWORK], attributes={"occi.network.address": "10.88.0.0/24"})
    nic = occi.link(NETWORKINTERFACE, compute, network, media, mixins=[IPNETWORKINTERFACE], attributes={
        "occi.networkinterface.address": "10.88.0.50", "occi.networkinterface.gateway": "10.88.0.1",
        "occi.networkinterface.allocation": "static", "occi.networkinterface.mac": "52:54:00:12:34:56"})
    seen = occi.view(nic, media)
    assert IPNETWORKINTERFACE in seen.mixins
    assert seen.attributes["occi.networkinterface.address"] == "10.88.0.50"
    assert seen.attributes["occi.networkinterface.allocation"] == "static"
    assert seen.attributes["occi.networkinterface.mac"] == "52:54:00:12:34:56"


@pytest.mark.spec("INF-32")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_storagelink_attributes_are_exposed(occi: Occi, media: str) -> None:
    compute, storage = occi.compute(), occi.storage()
    disk = occi.link(STORAGELINK, compute, storage, media, attributes={"occi.storagelink.mountpoint": "/srv"})
    seen = occi.view(disk, media)
    assert seen.attributes["occi.storagelink.deviceid"]
    assert seen.attributes["occi.storagelink.state"] in LINK_STATES
    assert seen.attributes["occi.storagelink.mountpoint"] == "/srv"


@pytest.mark.spec("INF-25")
@pytest.mark.spec("INF-32")
def test_link_attributes_are_exposed_while_the_cloud_works(slow: Occi) -> None:
    compute, network, storage = slow.compute(), slow.network(), slow.storage()
    nic = slow.link(NETWORKINTERFACE, compute, network)
    disk = slow.link(STORAGELINK, compute, storage)
    nic_attributes = slow.view(nic).attributes
    disk_attributes = slow.view(disk).attributes
    assert {"occi.networkinterface.interface", "occi.networkinterface.mac"} <= set(nic_attributes)
    assert "occi.storagelink.deviceid" in disk_attributes


# --- INF-33 .. INF-48: templates ----------------------------------------------------------------
@pytest.mark.spec("INF-33")
@pytest.mark.spec("INF-37")
@pytest.mark.spec("INF-38")
@pytest.mark.spec("INF-46")
@pytest.mark.spec("INF-47")
def test_template_families(occi: Occi) -> None:
    model = occi.discover()
    assert model.cls[OS_TPL] == "mixin" and model.cls[RESOURCE_TPL] == "mixin"
    os_templates = model.children_of(OS_TPL)
    assert any(m["scheme"] + m["term"] == DEBIAN for m in os_templates)
    for mixin in model.mixins:
        location = mixin["location"]
        if location.startswith("/mixin/os_tpl/") and location != model.category(OS_TPL)["location"]:
            assert OS_TPL in mixin.get("depends", []), mixin["term"]
        if location.startswith("/mixin/resource_tpl/") and location != model.category(RESOURCE_TPL)["location"]:
            assert RESOURCE_TPL in mixin.get("depends", []), mixin["term"]
    for template in (SMALL, MEDIUM, LARGE, TINY, XLARGE):
        assert RESOURCE_TPL in model.category(template)["depends"]


@pytest.mark.spec("INF-44")
def test_resource_templates_carry_defaults(occi: Occi) -> None:
    templates = occi.discover().children_of(RESOURCE_TPL)
    assert templates
    for template in templates:
        if template["scheme"].startswith("http://example.com/"):
            continue   # user mixins of other tests
        defaults = [d for d in template.get("attributes", {}).values() if "default" in d]
        assert defaults, template["term"]


@pytest.mark.spec("INF-40")
@pytest.mark.spec("INF-39")
@pytest.mark.parametrize("media", ALL_MEDIA)
@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_os_template_replacement(occi: Occi, media: str, method: str) -> None:
    compute = running(occi, mixins=[DEBIAN, TINY])
    response = send_entity(occi, method, compute, media, COMPUTE if method == "PUT" else None,
                           mixins=[UBUNTU, TINY] if method == "PUT" else [UBUNTU])
    assert response.status_code == 200, response.text
    seen = occi.view(compute)
    os_templates = [m for m in seen.mixins if OS_TPL in occi.model.category(m).get("depends", [])]
    assert os_templates == [UBUNTU]
    assert compute in occi.locations(occi.model.category(UBUNTU)["location"])
    assert compute not in occi.locations(occi.model.category(DEBIAN)["location"])


@pytest.mark.spec("INF-43")
def test_default_configuration_without_resource_template(occi: Occi) -> None:
    seen = occi.view(occi.compute())
    assert isinstance(seen.attributes["occi.compute.cores"], int) and seen.attributes["occi.compute.cores"] >= 1
    assert seen.attributes["occi.compute.memory"] > 0


@pytest.mark.spec("INF-48")
@pytest.mark.parametrize("how", ["POST entity", "POST mixin collection", "PUT entity"])
def test_resource_template_replacement_takes_effect(occi: Occi, how: str) -> None:
    compute = running(occi, mixins=[TINY])
    if how == "POST entity":
        response = send_entity(occi, "POST", compute, JSON, None, mixins=[XLARGE])
    elif how == "PUT entity":
        response = send_entity(occi, "PUT", compute, JSON, COMPUTE, mixins=[XLARGE])
    else:
        response = occi.associate(occi.model.category(XLARGE)["location"], compute)
    assert response.status_code == 200, response.text
    seen = occi.view(compute)
    templates = [m for m in seen.mixins if RESOURCE_TPL in occi.model.category(m).get("depends", [])]
    assert templates == [XLARGE]
    defaults = occi.model.category(XLARGE)["attributes"]
    assert seen.attributes["occi.compute.cores"] == defaults["occi.compute.cores"]["default"]
    assert seen.attributes["occi.compute.memory"] == defaults["occi.compute.memory"]["default"]


@pytest.mark.spec("INF-48")
def test_two_resource_templates_at_creation_are_refused(occi: Occi) -> None:
    # CRTP R0302: never more than one profile template; core.md §2.8 leaves the choice to us.
    response = occi.create_response(COMPUTE, JSON, mixins=[SMALL, MEDIUM])
    assert response.status_code == 400, response.text


# --- INF-49 .. INF-55: credentials and contextualization ----------------------------------------
@pytest.mark.spec("INF-49")
@pytest.mark.spec("INF-51")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_ssh_key(occi: Occi, media: str) -> None:
    model = occi.discover()
    assert model.category(SSH_KEY)["applies"] == [COMPUTE]
    compute = occi.compute(media=media, mixins=[SSH_KEY], attributes={"occi.credentials.ssh.publickey": KEY})
    seen = occi.view(compute, media)
    assert SSH_KEY in seen.mixins
    assert seen.attributes["occi.credentials.ssh.publickey"] == KEY


@pytest.mark.spec("INF-50")
@pytest.mark.spec("INF-54")
@pytest.mark.spec("INF-R8")
@pytest.mark.parametrize("media", ALL_MEDIA)
@pytest.mark.parametrize("mixin,attribute,value", [(SSH_KEY, "occi.credentials.ssh.publickey", KEY),
                                                   (USER_DATA, "occi.compute.userdata", "#!/bin/sh\necho hi\n")])
def test_credentials_and_contextualization_apply_to_compute_only(occi: Occi, media: str, mixin: str,
                                                                  attribute: str, value: str) -> None:
    before = occi.locations("/storage/")
    response = occi.create_response(STORAGE, media, mixins=[mixin],
                                    attributes={"occi.storage.size": 1.0, attribute: value})
    # core.md §2.5 [decision] (GFD.185 §3.6.8): not applicable -> 403 (INF-R8 suggested 400).
    assert response.status_code == 403, response.text
    assert occi.locations("/storage/") == before


@pytest.mark.spec("INF-53")
@pytest.mark.spec("INF-55")
@pytest.mark.spec("INF-R10")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_user_data_is_write_once(occi: Occi, media: str) -> None:
    script = "#cloud-config\nruncmd:\n  - echo hello, world\n"
    assert occi.discover().category(USER_DATA)["applies"] == [COMPUTE]
    compute = occi.compute(media=media, mixins=[USER_DATA], attributes={"occi.compute.userdata": script})
    seen = occi.view(compute, media)
    assert seen.attributes["occi.compute.userdata"] == script
    response = send_entity(occi, "POST", compute, media, None, attributes={"occi.compute.userdata": "other"})
    assert response.status_code == 409, response.text
    assert occi.view(compute).attributes["occi.compute.userdata"] == script
    # The unchanged value may be echoed back (GET-modify-PUT).
    response = send_entity(occi, "POST", compute, media, None, attributes={"occi.compute.userdata": script,
                                                                            "occi.core.title": "echoed"})
    assert response.status_code == 200, response.text


# --- INF-R*: reconstructed behaviours -----------------------------------------------------------
@pytest.mark.spec("INF-R1")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_action_status_codes(occi: Occi, media: str) -> None:
    compute = running(occi)
    assert occi.act(compute, "fly", media).status_code == 400                        # unknown term
    assert occi.invoke(compute, NETWORK_ACTION + "up", media).status_code == 400       # another kind's
    assert occi.act(compute, "start", media).status_code == 409                       # not now
    assert occi.act(compute, "stop", media).status_code == 200                        # fine


@pytest.mark.spec("INF-R2")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_only_applicable_actions_are_rendered(occi: Occi, media: str) -> None:
    compute = running(occi)
    for action, state in [(None, "active"), ("suspend", "suspended"), ("start", "active"), ("stop", "inactive")]:
        if action:
            assert occi.act(compute, action).status_code == 200
        occi.wait_state(compute, state)
        seen = occi.view(compute, media)
        assert seen.state == state
        assert {a.rpartition("#")[2] for a in seen.actions} == APPLICABLE[state], state
    assert occi.view(failed_compute(occi), media).actions == []
    network = occi.network()
    occi.wait_state(network, "active")
    assert occi.view(network, media).actions == [NETWORK_ACTION + "down"]
    storage = occi.storage()
    occi.wait_state(storage, "online")
    assert occi.view(storage, media).actions == [STORAGE_ACTION + t for t in ("offline", *LEGACY_STORAGE)]


@pytest.mark.spec("INF-R3")
@pytest.mark.spec("INF-R5")
def test_states_at_creation(slow: Occi) -> None:
    # While the cloud works the entity keeps its initial state; progress goes to *.state.message.
    def check(location: str, wanted: str) -> str:
        seen = slow.view(location)
        assert seen.state == wanted, location
        assert seen.attributes.get(f"occi.{seen.kind.rpartition('#')[2]}.state.message")
        return location

    compute = check(slow.compute(), "inactive")
    network = check(slow.network(), "inactive")
    storage = check(slow.storage(), "offline")
    check(slow.link(NETWORKINTERFACE, compute, network), "inactive")
    check(slow.link(STORAGELINK, compute, storage), "inactive")
    assert slow.wait_state(compute, "active").state == "active"


@pytest.mark.spec("INF-R4")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_from_error_only_delete(occi: Occi, media: str) -> None:
    compute = failed_compute(occi)
    for action in ("start", "stop", "restart", "suspend", "save"):
        assert occi.act(compute, action, media).status_code == 409, action
    response = occi.request("DELETE", compute, media=media, accept=media)
    assert response.status_code == 200
    assert occi.get(compute).status_code == 404


@pytest.mark.spec("INF-R4")
@pytest.mark.parametrize("state", ["active", "inactive", "suspended"])
def test_delete_in_every_state(occi: Occi, state: str) -> None:
    compute = running(occi)
    if state != "active":
        occi.act(compute, {"inactive": "stop", "suspended": "suspend"}[state])
        occi.wait_state(compute, state)
    assert occi.delete(compute).status_code == 200
    assert occi.get(compute).status_code == 404


@pytest.mark.spec("INF-R5")
def test_no_non_standard_states_anywhere(occi: Occi) -> None:
    allowed = {COMPUTE: COMPUTE_STATES, NETWORK: NETWORK_STATES, STORAGE: STORAGE_STATES,
               NETWORKINTERFACE: LINK_STATES, STORAGELINK: LINK_STATES}
    for key, path in (("resources", "/resource/"), ("links", "/link/")):
        for entity in occi.get(path, accept=JSON).json()[key]:
            if entity["kind"] in allowed:
                term = entity["kind"].rpartition("#")[2]
                assert entity["attributes"][f"occi.{term}.state"] in allowed[entity["kind"]]


@pytest.mark.spec("INF-R6")
def test_os_template_replacement_while_busy_is_queued(slow: Occi) -> None:
    # D-QUEUE: not refused while the creation runs (INF-R6 allows 409 "not in this state"; the
    # replacement is possible once the compute exists, so it waits its turn instead).
    compute = slow.compute(mixins=[DEBIAN])   # still being created
    response = send_entity(slow, "POST", compute, JSON, None, mixins=[UBUNTU])
    assert response.status_code == 200, response.text
    operation = response.headers["X-OCCI-Operation"]
    deadline = time.monotonic() + 10
    while slow.http.get(operation, headers={"Accept": JSON}).json()["state"] in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    mixins = slow.view(compute).mixins
    assert UBUNTU in mixins and DEBIAN not in mixins


@pytest.mark.spec("INF-R7")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_immutable_values_from_clients(occi: Occi, media: str) -> None:
    # Deviation from INF-R7 (400), see docs/conformance.md: ignored at creation (core.md §2.1),
    # 403 on update (http-protocol.md §5.3).
    compute = occi.compute(media=media, attributes={"occi.compute.state": "error"})
    assert occi.view(compute).state != "error"
    response = send_entity(occi, "POST", compute, media, None, attributes={"occi.compute.state": "error"})
    assert response.status_code == 403, response.text


LEGACY_CATEGORIES = [
    ("http://schemas.ogf.org/occi/credentials#ssh_key", "occi.credentials.ssh.publickey", SSH_KEY,
     "occi.credentials.ssh.publickey", KEY),
    (SSH_KEY, "occi.crendentials.ssh.publickey", SSH_KEY, "occi.credentials.ssh.publickey", KEY),
    ("http://schemas.openstack.org/instance/credentials#public_key", "org.openstack.credentials.publickey.data",
     SSH_KEY, "occi.credentials.ssh.publickey", KEY),
    ("http://schemas.ogf.org/occi/compute#user_data", "occi.compute.userdata", USER_DATA,
     "occi.compute.userdata", "echo legacy"),
    (USER_DATA, "occi.compute.user_data", USER_DATA, "occi.compute.userdata", "echo legacy"),
    ("http://schemas.openstack.org/compute/instance#user_data", "org.openstack.compute.user_data", USER_DATA,
     "occi.compute.userdata", "echo legacy"),
]


@pytest.mark.spec("INF-R9")
@pytest.mark.parametrize("media", ALL_MEDIA)
@pytest.mark.parametrize("mixin,attribute,canonical_mixin,canonical_attribute,value", LEGACY_CATEGORIES,
                         ids=["draft-credentials-scheme", "crendentials-typo", "openstack-public-key",
                              "draft-compute-scheme", "user_data-attribute", "openstack-user-data"])
def test_legacy_aliases_are_accepted_and_never_emitted(occi: Occi, media: str, mixin: str, attribute: str,
                                                       canonical_mixin: str, canonical_attribute: str,
                                                       value: str) -> None:
    response = occi.create_response(COMPUTE, media, mixins=[mixin], attributes={attribute: value})
    assert response.status_code == 201, response.text
    for accept in (PLAIN, OCCI, JSON):
        seen = occi.view(response.headers["location"], accept)
        assert seen.mixins == [canonical_mixin], accept
        assert seen.attributes[canonical_attribute] == value
        assert attribute == canonical_attribute or attribute not in seen.attributes
    rendered = occi.get("/-/").text + occi.get("/-/", accept=JSON).text
    assert mixin == canonical_mixin or mixin.rpartition("#")[0] + "#\"" not in rendered


@pytest.mark.spec("INF-R9")
@pytest.mark.parametrize("media", TEXT_MEDIA + (JSON,))
def test_deffered_save_method_alias(occi: Occi, media: str) -> None:
    compute = running(occi)
    response = occi.act(compute, "save", media, attributes={"method": "deffered"})
    assert response.status_code == 200, response.text
    assert "deffered" not in occi.get("/-/", accept=JSON).text
