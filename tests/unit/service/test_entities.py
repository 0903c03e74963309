"""Entity life cycle through the service: create, read, update, delete, links, templates."""

from __future__ import annotations

import pytest

from tests.unit.service.conftest import BASE, COMPUTE_KIND, INFRA, NETWORK_KIND, STORAGE_KIND, Harness

DEBIAN = 'Category: debian-12; scheme="http://occipy.org/occi/os_tpl#"; class="mixin"'
SMALL = 'Category: small; scheme="http://schemas.ogf.org/occi/infrastructure/compute/template/1.1#"; class="mixin"'
MEDIUM = 'Category: medium; scheme="http://schemas.ogf.org/occi/infrastructure/compute/template/1.1#"; class="mixin"'


@pytest.mark.spec("C-29")
async def test_create_compute_boots_and_is_listed(harness: Harness) -> None:
    location = await harness.create_compute(DEBIAN, SMALL, 'X-OCCI-Attribute: occi.core.title="web"')
    doc = await harness.get_json(location)
    assert doc["kind"] == INFRA + "compute"
    assert doc["attributes"]["occi.compute.state"] == "active"
    assert doc["attributes"]["occi.compute.cores"] == 1  # the CRTP small template's default
    assert doc["id"].startswith("urn:uuid:")
    listing = await harness.call("GET", "/compute/")
    assert f"X-OCCI-Location: {BASE}{location}" in listing.text


@pytest.mark.spec("C-30")
async def test_client_value_beats_template_default(harness: Harness) -> None:
    location = await harness.create_compute(SMALL, "X-OCCI-Attribute: occi.compute.cores=3")
    assert (await harness.get_json(location))["attributes"]["occi.compute.cores"] == 3


@pytest.mark.spec("C-11")
async def test_missing_required_attribute_is_400(harness: Harness) -> None:
    answer = await harness.text("POST", "/storage/", STORAGE_KIND)
    assert answer.status == 400
    assert "occi.storage.size" in answer.text


@pytest.mark.spec("C-04")
async def test_changing_an_immutable_attribute_is_403_and_resending_it_is_fine(harness: Harness) -> None:
    location = await harness.create_compute()
    doc = await harness.get_json(location)
    same = await harness.text("POST", location, f'X-OCCI-Attribute: occi.core.id="{doc["id"]}"')
    assert same.status == 200
    other = await harness.text("POST", location, 'X-OCCI-Attribute: occi.compute.state="suspended"')
    assert other.status == 403


@pytest.mark.spec("C-13")
async def test_kind_cannot_change(harness: Harness) -> None:
    location = await harness.create_compute()
    answer = await harness.text("PUT", location, STORAGE_KIND, "X-OCCI-Attribute: occi.storage.size=1.0")
    assert answer.status == 400


async def test_unknown_attribute_and_wrong_type_are_400(harness: Harness) -> None:
    assert (await harness.text("POST", "/compute/", COMPUTE_KIND, "X-OCCI-Attribute: com.example.x=1")).status == 400
    assert (await harness.text("POST", "/compute/", COMPUTE_KIND, 'X-OCCI-Attribute: occi.compute.cores="many"')).status == 400
    assert (await harness.json("POST", "/compute/", {"kind": INFRA + "compute",
                                                      "attributes": {"occi.compute.cores": "2"}})).status == 400


@pytest.mark.spec("H-24")
async def test_put_replaces_but_keeps_links(harness: Harness) -> None:
    compute = await harness.create_compute('X-OCCI-Attribute: occi.core.title="a", occi.core.summary="s"')
    storage = (await harness.text("POST", "/storage/", STORAGE_KIND, "X-OCCI-Attribute: occi.storage.size=1.5")).location
    link = await harness.json("POST", "/storagelink/", {
        "kind": INFRA + "storagelink", "source": {"location": compute}, "target": {"location": storage}})
    assert link.status == 201, link.text
    answer = await harness.text("PUT", compute, COMPUTE_KIND, 'X-OCCI-Attribute: occi.core.title="b"')
    assert answer.status == 200, answer.text
    doc = await harness.get_json(compute)
    assert doc["title"] == "b"
    assert "occi.core.summary" not in doc["attributes"]  # mutable, not re-sent: unset
    assert doc["attributes"]["occi.compute.memory"] == 1.0  # a fact of the running compute: kept
    assert [l["target"]["location"] for l in doc["links"]] == [storage]
    assert doc["links"][0]["attributes"]["occi.storagelink.state"] == "active"
    assert doc["links"][0]["attributes"]["occi.storagelink.deviceid"]


@pytest.mark.spec("L-13")
async def test_inline_links_are_created_with_the_resource(harness: Harness) -> None:
    network = (await harness.text("POST", "/network/", NETWORK_KIND)).location
    compute = await harness.create_compute(
        f'Link: <{network}>; rel="{INFRA}network"; category="{INFRA}networkinterface"')
    doc = await harness.get_json(compute)
    (link,) = doc["links"]
    assert link["kind"] == INFRA + "networkinterface"
    attributes = link["attributes"]
    assert attributes["occi.networkinterface.state"] == "active"
    assert attributes["occi.networkinterface.mac"]
    assert attributes["occi.networkinterface.address"]
    net = await harness.get_json(network)
    assert net["attributes"]["occi.network.address"]


@pytest.mark.spec("C-38")
async def test_delete_resource_deletes_its_links(harness: Harness) -> None:
    network = (await harness.text("POST", "/network/", NETWORK_KIND)).location
    compute = await harness.create_compute(
        f'Link: <{network}>; rel="{INFRA}network"; category="{INFRA}networkinterface"')
    link = (await harness.get_json(compute))["links"][0]["id"]
    assert (await harness.call("DELETE", compute)).status == 200
    assert (await harness.call("GET", compute)).status == 404
    links = await harness.get_json("/networkinterface/")
    assert links == {"links": []}, link


async def test_template_replacement_resizes(harness: Harness) -> None:
    compute = await harness.create_compute(SMALL)
    answer = await harness.text("POST", compute, MEDIUM)
    assert answer.status == 200, answer.text
    doc = await harness.get_json(compute)
    assert "http://schemas.ogf.org/occi/infrastructure/compute/template/1.1#small" not in doc["mixins"]
    assert doc["attributes"]["occi.compute.cores"] == 2


async def test_failure_ends_in_error_state_with_message(harness: Harness) -> None:
    compute = await harness.create_compute('X-OCCI-Attribute: occi.core.title="simulate-failure"')
    attributes = (await harness.get_json(compute))["attributes"]
    assert attributes["occi.compute.state"] == "error"
    assert "simulated failure" in attributes["occi.compute.state.message"]


async def test_storage_resize_by_update(harness: Harness) -> None:
    storage = (await harness.text("POST", "/storage/", STORAGE_KIND, "X-OCCI-Attribute: occi.storage.size=1.0")).location
    answer = await harness.text("POST", storage, "X-OCCI-Attribute: occi.storage.size=2.0")
    assert answer.status == 200
    assert (await harness.get_json(storage))["attributes"]["occi.storage.size"] == 2.0


async def test_put_creates_at_a_client_path(harness: Harness) -> None:
    answer = await harness.text("PUT", "/compute/my-vm", COMPUTE_KIND)
    assert answer.status == 201
    assert answer.location == "/compute/my-vm"
    assert (await harness.text("PUT", "/elsewhere/vm", COMPUTE_KIND)).status == 400


async def test_associating_a_template_through_its_collection_resizes(harness: Harness) -> None:
    compute = await harness.create_compute(SMALL)
    answer = await harness.text("POST", "/mixin/resource_tpl/medium/", f"X-OCCI-Location: {BASE}{compute}")
    assert answer.status == 200, answer.text
    doc = await harness.get_json(compute)
    assert doc["attributes"]["occi.compute.cores"] == 2
    assert doc["attributes"]["occi.compute.state"] == "active"
    assert "http://schemas.ogf.org/occi/infrastructure/compute/template/1.1#small" not in doc["mixins"]
