"""Federation: a front occipy with `--driver occi` in front of a second occipy (the remote, on the
simulated cloud), driven through the SDK, once per rendering the front speaks to the remote.

Everything made through the front is made on the remote, one to one (matched by the ownership tag
the driver writes on the remote objects); actions, links, save and updates pass through; a change
made on the remote reaches the front; deletes leave nothing behind. Then what happens around it:
objects a crash left on the remote are swept at start-up, an unreachable remote, credentials
(Basic, X.509 client certificates).
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import pytest

from occipy.backends import _occi_map as occi
from occipy.client import BasicAuth, Client, Entity, LinkSpec
from occipy.errors import BackendError

from .conftest import LiveServer, free_port, start_server

RENDERINGS = ("json", "text", "occi")
INFRA = "http://schemas.ogf.org/occi/infrastructure#"
KINDS = ("compute", "storage", "network", "storagelink", "networkinterface")
TAG = "front-test"


def front_options(remote_url: str, **more: str) -> dict[str, str]:
    return {"url": remote_url, "interval": "0.05", "poll": "0.3", "tag": TAG, **more}


def eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """The check's value once it stops raising AssertionError (or its last failure)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.1)


def remote_objects(remote: Client) -> dict[str, dict[str, Entity]]:
    """Every object on the remote, per kind term, by the front entity id its tag names ("" untagged)."""
    found: dict[str, dict[str, Entity]] = {}
    for term in KINDS:
        by_id: dict[str, Entity] = {}
        for location in remote.list_locations(term):
            entity = remote.get(location)
            by_id[occi.tagged_entity_id(TAG, entity) or f"untagged {location}"] = entity
        found[term] = by_id
    return found


def front_entities(front: Client) -> dict[str, dict[str, Entity]]:
    return {term: {e.entity_id: e for e in (front.get(loc) for loc in front.list_locations(term))}
            for term in KINDS}


def assert_mirrored(front: Client, remote: Client) -> tuple[dict[str, dict[str, Entity]], dict[str, dict[str, Entity]]]:
    """The remote holds exactly what the front shows, with the same states and reported facts."""
    shown, held = front_entities(front), remote_objects(remote)
    for term in KINDS:
        assert set(shown[term]) == set(held[term]), f"{term}: front {sorted(shown[term])} remote {sorted(held[term])}"
        for entity_id, entity in shown[term].items():
            there = held[term][entity_id]
            for name in (f"occi.{term}.state", "occi.compute.cores", "occi.compute.memory", "occi.storage.size",
                         "occi.network.address", "occi.storagelink.deviceid", "occi.networkinterface.mac",
                         "occi.networkinterface.address"):
                if name in there.attributes:
                    assert entity.attributes.get(name) == there.attributes[name], f"{entity.location} {name}"
    return shown, held


@pytest.fixture(params=RENDERINGS)
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[LiveServer, LiveServer]]:
    remote = start_server(tmp_path / "remote")
    front = start_server(tmp_path / "front", driver="occi",
                         driver_options=front_options(remote.url, media_type=request.param))
    yield remote, front
    front.stop()
    remote.stop()


def test_the_front_federates_the_remote(pair: tuple[LiveServer, LiveServer]) -> None:
    remote_server, front_server = pair
    with Client(front_server.url) as front, Client(remote_server.url) as remote:
        # The remote's templates are the front's (its names; CRTP's own templates stay occipy's).
        model = front.discover()
        assert front.model.mixin("os_tpl#debian-12").title == "Debian GNU/Linux 12 (bookworm)"
        assert "http://occipy.org/occi/resource_tpl#tiny" in model.mixins

        net = front.create("network", mixins=["ipnetwork"], title="lan",
                           attributes={"occi.network.address": "10.77.0.0/24", "occi.network.gateway": "10.77.0.1"})
        disk = front.create("storage", title="data", attributes={"occi.storage.size": 2.0})
        vm = front.create("compute", mixins=["debian-12", "tiny"], title="web",
                          links=[LinkSpec(net), LinkSpec(disk, attributes={"occi.storagelink.mountpoint": "/srv"})])
        shown = front.wait_for(vm, state="active", timeout=20, interval=0.1)
        assert (shown.attributes["occi.compute.cores"], shown.attributes["occi.compute.memory"]) == (1, 0.5)
        assert len(shown.links) == 2
        _, held = eventually(lambda: assert_mirrored(front, remote))
        vm_id = front.get(vm).entity_id
        # The remote's compute wears the remote's templates the front chose, and the links join
        # the remote objects that stand for the front's ends.
        there = held["compute"][vm_id]
        assert {"http://occipy.org/occi/os_tpl#debian-12", "http://occipy.org/occi/resource_tpl#tiny"} <= set(
            there.mixins)
        assert there.attributes["occi.core.title"].startswith("web-")
        link = next(iter(held["storagelink"].values()))
        assert link.attributes["occi.core.source"] == _path(there.location)
        assert link.attributes["occi.core.target"] == _path(next(iter(held["storage"].values())).location)
        nic = next(e for e in front.get(vm).links if e.kind == INFRA + "networkinterface")
        assert str(nic.attributes["occi.networkinterface.address"]).startswith("10.77.0.")

        # Actions pass through, in both directions of the state diagram.
        for action, state in (("stop", "inactive"), ("start", "active"), ("suspend", "suspended"),
                              ("start", "active"), ("restart", "active")):
            front.trigger(vm, action)
            assert front.wait_for(vm, state=state, timeout=20, interval=0.1).attributes["occi.compute.state"] == state
            eventually(lambda: assert_mirrored(front, remote))
        front.trigger(net, "down")
        front.wait_for(net, state="inactive", timeout=20, interval=0.1)
        front.trigger(disk, "offline")
        front.wait_for(disk, state="offline", timeout=20, interval=0.1)
        eventually(lambda: assert_mirrored(front, remote))

        # A live update: the volume grows on the remote.
        front.update(disk, attributes={"occi.storage.size": 3.0})
        eventually(lambda: (assert_mirrored(front, remote),
                            _equal(remote_objects(remote)["storage"][front.get(disk).entity_id]
                                   .attributes["occi.storage.size"], 3.0)))

        # save: the remote's new OS template becomes the front's, and a compute boots from it.
        front.trigger(vm, "save", {"name": "golden"})
        front.wait_for(vm, state="active", timeout=20, interval=0.1)
        golden = front.discover(refresh=True).mixin("os_tpl#golden")
        assert "http://occipy.org/occi/os_tpl#golden" in remote.discover(refresh=True).mixins
        clone = front.create("compute", mixins=[golden.type_id], title="clone")
        front.wait_for(clone, state="active", timeout=20, interval=0.1)
        _, held = eventually(lambda: assert_mirrored(front, remote))
        assert "http://occipy.org/occi/os_tpl#golden" in held["compute"][front.get(clone).entity_id].mixins

        # A change made on the remote reaches the front (the driver's poll).
        remote.trigger(there.location, "stop", {"method": "poweroff"})
        eventually(lambda: _equal(front.get(vm).attributes["occi.compute.state"], "inactive"))

        # Deleting through the front leaves nothing on the remote.
        for location in (clone, vm, disk, net):
            front.delete(location)
        eventually(lambda: _equal({t: list(v) for t, v in remote_objects(remote).items()},
                                  {t: [] for t in KINDS}))
        assert all(not locations for locations in front_entities(front).values())


def _path(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def _equal(actual: object, expected: object) -> None:
    assert actual == expected, f"{actual!r} != {expected!r}"


def test_objects_a_crash_left_on_the_remote_are_swept_at_start(tmp_path: Path) -> None:
    remote_server = start_server(tmp_path / "remote")
    options = front_options(remote_server.url)
    try:
        with Client(remote_server.url) as remote:
            # As if the front had crashed between the remote create and its own write: tagged with
            # this front's tag and an entity id the front never stored.
            lost = remote.create("compute", title="lost", attributes={
                "occi.core.summary": f"managed by occipy {occi.tag_text(TAG, 'urn:uuid:never-stored')}"})
            others = remote.create("compute", title="theirs", attributes={
                "occi.core.summary": f"managed by occipy {occi.tag_text('another-front', 'urn:uuid:x')}"})
            untagged = remote.create("compute", title="someone else's")
            front = start_server(tmp_path / "front", driver="occi", driver_options=options)
            try:
                with Client(front.url) as client:
                    kept = client.create("compute", title="kept")
                    client.wait_for(kept, state="active", timeout=20, interval=0.1)
                front.stop()
                front = start_server(tmp_path / "front", driver="occi", driver_options=options)
                remaining = set(remote.list_locations("compute"))
                assert lost not in remaining
                assert {others, untagged} <= remaining
                with Client(front.url) as client:
                    # The restarted front (on a new port) still has its own compute.
                    assert client.get(_path(kept)).attributes["occi.compute.state"] == "active"
                    client.delete(_path(kept))
                assert len(remote.list_locations("compute")) == 2
            finally:
                front.stop()
    finally:
        remote_server.stop()


def test_an_unreachable_remote(tmp_path: Path) -> None:
    remote_server = start_server(tmp_path / "remote")
    front = start_server(tmp_path / "front", driver="occi",
                         driver_options=front_options(remote_server.url, timeout="2"))
    try:
        remote_server.stop()
        with Client(front.url) as client:
            vm = client.create("compute", title="nowhere")
            with pytest.raises(BackendError, match=f"cannot reach the OCCI server at {remote_server.url}/"):
                client.wait_for(vm, state="active", timeout=20, interval=0.1)
            shown = client.get(vm)
            assert shown.attributes["occi.compute.state"] == "error"
            assert remote_server.url in str(shown.attributes["occi.compute.state.message"])
    finally:
        front.stop()
    # `occipy serve` in front of a site that is not there stops at once, naming it.
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    result = subprocess.run(
        [sys.executable, "-m", "occipy", "serve", "--port", str(free_port()), "--data-dir", str(tmp_path / "solo"),
         "--driver", "occi", "--driver-opt", f"url={url}", "--driver-opt", "timeout=2"],
        check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"cannot start: cannot reach the OCCI server at {url}" in result.stderr


# ---------------------------------------------------------------------------- credentials


def test_basic_credentials_reach_the_remote(tmp_path: Path) -> None:
    htpasswd = tmp_path / "htpasswd"
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode().replace("$2b$", "$2y$")
    htpasswd.write_text(f"federator:{hashed}\n")
    remote_server = start_server(tmp_path / "remote", auth="basic", htpasswd=str(htpasswd))
    try:
        front = start_server(tmp_path / "front", driver="occi",
                             driver_options=front_options(remote_server.url, username="federator", password="s3cret"))
        try:
            with Client(front.url) as client:
                vm = client.create("compute", title="authed")
                client.wait_for(vm, state="active", timeout=20, interval=0.1)
            with Client(remote_server.url, auth=BasicAuth("federator", "s3cret")) as remote:
                assert len(remote.list_locations("compute")) == 1
        finally:
            front.stop()
        # A wrong password: the front does not start, and says why.
        result = subprocess.run(
            [sys.executable, "-m", "occipy", "serve", "--port", str(free_port()), "--data-dir",
             str(tmp_path / "wrong"), "--driver", "occi", "--driver-opt", f"url={remote_server.url}",
             "--driver-opt", "username=federator"],
            check=False, capture_output=True, text=True, timeout=60, env={**_env(), "OCCIPY_OCCI_PASSWORD": "wrong"})
        assert result.returncode == 1
        assert f"the OCCI site at {remote_server.url}/ refused occipy's credentials" in result.stderr
    finally:
        remote_server.stop()


def _env() -> dict[str, str]:
    return dict(os.environ)


def test_x509_client_certificate_reaches_the_remote(tmp_path: Path) -> None:
    from .test_edge_limits import start_edge_server
    from .test_tls_x509 import CA

    ca = CA(tmp_path, "ca", "Federation CA")
    server_cert = ca.issue("server", "localhost", "Example", server=True)
    front_cert = ca.issue("front", "front", "Federation")
    x509_map = tmp_path / "x509.toml"
    x509_map.write_text('[derive]\nuser = "CN"\ntenant = "O"\nroles = ["member"]\n'
                        'issuers = ["CN=Federation CA, O=Example"]\n')
    context = ssl.create_default_context(cafile=str(ca.files.cert))
    context.load_cert_chain(str(front_cert.cert), str(front_cert.key))
    remote = start_edge_server(
        tmp_path / "remote", "--tls-cert", str(server_cert.cert), "--tls-key", str(server_cert.key),
        "--tls-client-ca", str(ca.files.cert), "--tls-client-cert", "required", "--x509-map", str(x509_map),
        "--auth", "x509", scheme="https", verify=context)
    try:
        front = start_server(tmp_path / "front", driver="occi", driver_options=front_options(
            remote.url, cert=str(front_cert.cert), key=str(front_cert.key), verify=str(ca.files.cert)))
        try:
            with Client(front.url) as client:
                vol = client.create("storage", title="tls", attributes={"occi.storage.size": 1.0})
                client.wait_for(vol, state="online", timeout=20, interval=0.1)
            listed = httpx.get(remote.url + "/storage/", headers={"Accept": "text/uri-list"}, verify=context)
            assert listed.status_code == 200 and len(listed.text.split()) == 1
        finally:
            front.stop()
    finally:
        remote.stop()


def _one_compute_through(front_url: str) -> None:
    with Client(front_url) as client:
        vm = client.create("compute", title="authed")
        client.wait_for(vm, state="active", timeout=30, interval=0.1)
        client.delete(vm)


@pytest.mark.oidc
def test_a_bearer_token_reaches_the_remote(tmp_path: Path) -> None:
    from tests.services import glewlwyd

    if not glewlwyd.available():
        raise RuntimeError("glewlwyd is not installed: run scripts/bootstrap.sh oidc (make test does)")
    provider = glewlwyd.Glewlwyd.start(tmp_path / "glewlwyd")
    try:
        provider.add_client("federator", "client-secret-0123456789")
        provider.add_user("fed", "fed-password")
        token = provider.password_token("federator", "client-secret-0123456789", "fed", "fed-password")
        token_file = tmp_path / "token"
        token_file.write_text(token + "\n")
        remote_server = start_server(tmp_path / "remote", auth="oidc", oidc_issuer=provider.issuer,
                                     oidc_audience=glewlwyd.SCOPE)
        try:
            front = start_server(tmp_path / "front", driver="occi",
                                 driver_options=front_options(remote_server.url, token_file=str(token_file)))
            try:
                _one_compute_through(front.url)
            finally:
                front.stop()
        finally:
            remote_server.stop()
    finally:
        provider.cleanup()


@pytest.mark.keystone
@pytest.mark.timeout(300)
def test_keystone_credentials_reach_the_remote(tmp_path: Path) -> None:
    from tests.services import keystone

    if not keystone.available():
        raise RuntimeError("Keystone is not installed: run scripts/bootstrap.sh keystone (make test does)")
    ks = keystone.Keystone.start(tmp_path / "keystone")
    try:
        ks.user("occipy", "occipy-service-pw", grants={"service": "service"})
        ks.user("federator", "federator-pw", grants={"demo": "member"})
        remote_server = start_server(tmp_path / "remote", auth="keystone", keystone_url=ks.url,
                                     keystone_user="occipy", keystone_password="occipy-service-pw",
                                     keystone_project="service")
        try:
            # The Keystone endpoint is found from the remote's 401 (WWW-Authenticate: Keystone uri=...).
            front = start_server(tmp_path / "front", driver="occi", driver_options=front_options(
                remote_server.url, auth="keystone", username="federator", password="federator-pw", project="demo"))
            try:
                _one_compute_through(front.url)
            finally:
                front.stop()
        finally:
            remote_server.stop()
    finally:
        ks.cleanup()
