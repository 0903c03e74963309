"""EGI / rOCCI infrastructure extensions, the OpenStack aliases, the CRTP claim, infrastructure link ends.

The EGI categories have no checklist ids (monitoring-and-extensions.md §4-§6 are vendor
conventions); the OpenStack contextualisation aliases are INF-R9, the claim CRTP-R0401..R0405.
Model level, rendering level (every EGI category, a security group with rules, a link and an IP
reservation in text/plain, text/occi and JSON, parsed back, JSON against the schema) and a live
server. The issue's link-end refusals (a networkinterface from a storage, a storagelink to a
compute or a network) are declared in the model and wait for the service to call the check.
"""

from __future__ import annotations

import json

import pytest

from occipy.errors import InvalidAttribute
from occipy.model.catalogue import (
    COMPUTE,
    NETWORK,
    NETWORK_ACTION,
    NETWORKINTERFACE,
    SSH_KEY,
    STORAGE,
    STORAGELINK,
)
from occipy.model.entity import Entity
from occipy.model.extensions import ALL, ExtensionSet, crtp, egi
from occipy.model.registry import LINK, RESOURCE
from occipy.model.standard import standard_registry
from tests.conformance.conftest import JSON, PLAIN, Occi, discovered
from tests.conformance.extension_helpers import (
    MEDIA,
    attributes_of,
    check_categories,
    check_entity,
    ext_server,  # noqa: F401
)

REGISTRY = standard_registry()
EVERYTHING = ExtensionSet(ALL)
RULES = [{"type": "inbound", "protocol": "tcp", "port": "22", "range": "0.0.0.0/0"},
         {"type": "outbound", "protocol": "udp", "port": "1000-2000", "range": "10.0.0.0/24", "ipversion": "IPv4"}]
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGl0IHdvcmtzIGZvciB0ZXN0cw tester@example"


# --- model level ------------------------------------------------------------------------------
def test_kinds_and_parent_mixins() -> None:
    assert REGISTRY.kind(egi.SECURITYGROUP).parent == RESOURCE
    assert REGISTRY.kind(egi.SECURITYGROUPLINK).parent == LINK
    assert REGISTRY.kind(egi.IPRESERVATION).parent == NETWORK
    for parent in (egi.AVAILABILITY_ZONE, egi.REGION, egi.FLOATINGIPPOOL):
        assert REGISTRY.is_mixin(parent)


@pytest.mark.spec("INF-R9")
def test_openstack_contextualisation_aliases() -> None:
    assert REGISTRY.canonical("http://schemas.openstack.org/instance/credentials#public_key") == SSH_KEY
    assert REGISTRY.canonical_attribute("org.openstack.compute.user_data") == "occi.compute.userdata"


@pytest.mark.spec("CRTP-CLAIM")
@pytest.mark.spec("CRTP-R0401")
@pytest.mark.spec("CRTP-R0402")
@pytest.mark.spec("CRTP-R0403")
@pytest.mark.spec("CRTP-R0404")
@pytest.mark.spec("CRTP-R0405")
def test_crtp_claim_tokens() -> None:
    assert EVERYTHING.claims() == crtp.CLAIMS == ("OCCI-CRTP/1.1", "OCCI-CRTP-EP/1.1")
    # the extended claim holds: all six templates, mem_* included, are served
    for term in ("small", "medium", "large", "mem_small", "mem_medium", "mem_large"):
        assert REGISTRY.is_mixin("http://schemas.ogf.org/occi/infrastructure/compute/template/1.1#" + term)


@pytest.mark.parametrize(("link", "source", "target"), [
    (NETWORKINTERFACE, STORAGE, NETWORK),
    (STORAGELINK, COMPUTE, COMPUTE),
    (STORAGELINK, COMPUTE, NETWORK),
    (egi.SECURITYGROUPLINK, COMPUTE, NETWORK),
])
def test_link_ends_the_issue_names_are_refused(link: str, source: str, target: str) -> None:
    with pytest.raises(InvalidAttribute):
        EVERYTHING.check_link(REGISTRY, link, source, target)


# --- rendering level --------------------------------------------------------------------------
@pytest.mark.parametrize("media", MEDIA)
def test_every_egi_category_renders_and_parses_back(media: str) -> None:
    check_categories(egi.CATEGORIES, REGISTRY, media)


@pytest.mark.parametrize("media", MEDIA)
def test_egi_entities_render_and_parse_back(media: str) -> None:
    group = Entity(kind=egi.SECURITYGROUP, entity_id="sg1", location="/securitygroup/sg1",
                   attributes={egi.RULES: RULES, "occi.securitygroup.state": "active"})
    link = Entity(kind=egi.SECURITYGROUPLINK, entity_id="sgl1", location="/securitygrouplink/sgl1",
                  attributes={"occi.core.source": "/compute/vm1", "occi.core.source.kind": COMPUTE,
                              "occi.core.target": "/securitygroup/sg1", "occi.core.target.kind": egi.SECURITYGROUP,
                              "occi.securitygrouplink.state": "inactive"})
    reservation = Entity(kind=egi.IPRESERVATION, entity_id="ip1", location="/ipreservation/ip1",
                         mixins=[egi.FLOATINGIPPOOL],
                         attributes={egi.ADDRESS: "192.0.2.10", "occi.ipreservation.used": False,
                                     "occi.ipreservation.state": "active"},
                         actions=(NETWORK_ACTION + "down",))
    for entity in (group, link, reservation):
        check_entity(entity, REGISTRY, media)


# --- live server --------------------------------------------------------------------------------
@pytest.mark.parametrize("media", MEDIA)
def test_discovery_lists_the_egi_categories(ext_server: Occi, media: str) -> None:  # noqa: F811
    found = discovered(ext_server.get("/-/", accept=media))
    for kind in (egi.SECURITYGROUP, egi.SECURITYGROUPLINK, egi.IPRESERVATION):
        assert found[kind] == "kind"
    for mixin in (egi.AVAILABILITY_ZONE, egi.REGION, egi.FLOATINGIPPOOL):
        assert found[mixin] == "mixin"
    # aliases are input only: the OpenStack mixins never show up
    assert "http://schemas.openstack.org/instance/credentials#public_key" not in found


@pytest.mark.parametrize("media", MEDIA)
def test_security_group_lifecycle(ext_server: Occi, media: str) -> None:  # noqa: F811
    occi = ext_server
    group = occi.create(egi.SECURITYGROUP, media, attributes={egi.RULES: RULES, "occi.core.title": "ssh"})
    view = occi.view(group, media)
    assert view.kind == egi.SECURITYGROUP
    # realised by the simulated cloud: the backend makes it active (D-EXT-EGI-STATE)
    assert view.attributes["occi.securitygroup.state"] == "active"
    rules = view.attributes[egi.RULES]
    assert (rules if isinstance(rules, list) else json.loads(rules)) == RULES  # text carries it as JSON text
    vm = occi.compute()
    link = occi.link(egi.SECURITYGROUPLINK, vm, group, media)
    assert occi.view(link, media).attributes["occi.securitygrouplink.state"] == "active"
    assert group in occi.locations("/securitygroup/", accept=JSON)
    assert occi.delete(group).status_code == 200
    assert occi.get(link).status_code == 404
    assert occi.delete(vm).status_code == 200


def test_security_group_needs_rules(ext_server: Occi) -> None:  # noqa: F811
    response = ext_server.create_response(egi.SECURITYGROUP, attributes={"occi.core.title": "empty"})
    assert response.status_code == 400 and egi.RULES in response.text


def test_bad_rule_is_refused(ext_server: Occi) -> None:  # noqa: F811
    response = ext_server.create_response(egi.SECURITYGROUP, attributes={
        egi.RULES: [{"type": "inbound", "protocol": "tcp", "port": "99999"}]})
    assert response.status_code == 400


@pytest.mark.parametrize(("scheme", "media"), [(NETWORK_ACTION, JSON), (egi.IPRESERVATION_ACTION, JSON),
                                               (NETWORK_ACTION, PLAIN), (egi.IPRESERVATION_ACTION, PLAIN)])
def test_ipreservation_actions_in_both_schemes(ext_server: Occi, scheme: str, media: str) -> None:  # noqa: F811
    occi = ext_server
    reservation = occi.create(egi.IPRESERVATION, mixins=[egi.FLOATINGIPPOOL], attributes={egi.ADDRESS: "192.0.2.7"})
    view = occi.view(reservation)
    assert view.attributes["occi.ipreservation.state"] == "inactive"
    assert view.attributes["occi.ipreservation.used"] is False
    assert view.actions == [NETWORK_ACTION + "up"]
    assert occi.invoke(reservation, scheme + "up", media).status_code == 200
    assert attributes_of(occi, reservation)["occi.ipreservation.state"] == "active"
    assert occi.invoke(reservation, scheme + "up", media).status_code == 409
    assert occi.invoke(reservation, scheme + "down", media).status_code == 200
    assert attributes_of(occi, reservation)["occi.ipreservation.state"] == "inactive"
    assert occi.delete(reservation).status_code == 200


def test_floating_ip_is_attached_by_a_networkinterface(ext_server: Occi) -> None:  # noqa: F811
    occi = ext_server
    reservation = occi.create(egi.IPRESERVATION)
    vm = occi.compute()
    nic = occi.link(NETWORKINTERFACE, vm, reservation)
    assert occi.view(nic).attributes["occi.core.target.kind"] == egi.IPRESERVATION
    assert occi.delete(vm).status_code == 200
    assert occi.delete(reservation).status_code == 200


@pytest.mark.spec("INF-R9")
@pytest.mark.parametrize("media", MEDIA)
def test_openstack_public_key_mixin_becomes_ssh_key(ext_server: Occi, media: str) -> None:  # noqa: F811
    vm = ext_server.compute(media=media, mixins=["http://schemas.openstack.org/instance/credentials#public_key"],
                            attributes={"org.openstack.credentials.publickey.data": KEY})
    view = ext_server.view(vm, media)
    assert SSH_KEY in view.mixins
    assert view.attributes["occi.credentials.ssh.publickey"] == KEY
    assert ext_server.delete(vm).status_code == 200


@pytest.mark.spec("INF-R9")
def test_openstack_key_pair_name_is_accepted_and_dropped(ext_server: Occi) -> None:  # noqa: F811
    response = ext_server.create_response(COMPUTE, mixins=["http://schemas.openstack.org/instance/credentials#public_key"],
                                          attributes={"org.openstack.credentials.publickey.data": KEY,
                                                      "org.openstack.credentials.publickey.name": "mykey"})
    assert response.status_code == 201


@pytest.mark.spec("CRTP-R0401")
def test_every_response_carries_the_crtp_claim(ext_server: Occi) -> None:  # noqa: F811
    assert "OCCI-CRTP/1.1" in ext_server.get("/-/").headers.get("server", "")


@pytest.mark.parametrize(("link", "source_kind", "target_kind"), [
    (NETWORKINTERFACE, STORAGE, NETWORK),
    (STORAGELINK, COMPUTE, COMPUTE),
    (STORAGELINK, COMPUTE, NETWORK),
])
def test_wrong_link_ends_are_refused_live(ext_server: Occi, link: str, source_kind: str,  # noqa: F811
                                          target_kind: str) -> None:
    def make(kind: str) -> str:
        return ext_server.storage() if kind == STORAGE else ext_server.create(kind)

    source, target = make(source_kind), make(target_kind)
    if source_kind == target_kind == COMPUTE:
        target = source  # "a storagelink from a compute to itself"
    response = ext_server.create_response(link, attributes={"occi.core.source": source, "occi.core.target": target})
    assert response.status_code == 400
