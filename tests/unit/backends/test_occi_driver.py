"""The OCCI driver: the driver contract suite against a real second occipy (the remote, on the
simulated cloud), once per rendering the driver may speak to it (JSON, text/plain, text/occi),
then what only this driver does: settings, the mapping from a remote's discovery (an OCCI 1.1
text discovery included), operations that take time on the remote, the tag, errors.

The remote is a real occipy served by uvicorn in a thread (`tests/integration/conftest.py`
`start_server`); the driver talks HTTP to it through occipy's SDK.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from occipy.backends import _occi_map as occi
from occipy.backends import load_driver_class
from occipy.backends._occi_settings import TAG_FILE, parse
from occipy.backends.base import (
    COMPUTE,
    FLAVOUR,
    IMAGE,
    NETWORK,
    NETWORKINTERFACE,
    STORAGE,
    STORAGELINK,
    ComputeFacts,
    ComputeSpec,
    Driver,
    NetworkSpec,
    Observed,
    Ref,
    Save,
    Start,
    Stop,
    StorageSpec,
    StorageUpdate,
    Suspend,
)
from occipy.backends.occi import OcciDriver
from occipy.client import (
    AsyncClient,
    BasicAuth,
    BearerToken,
    ClientCertificate,
    KeystoneAuth,
    KeystoneToken,
    Model,
)
from occipy.errors import BackendError, BackendUnavailable, NotSupported
from occipy.rendering import text
from tests.integration.conftest import LiveServer, free_port, start_server
from tests.unit.backends.contract import DriverContract, unique

RENDERINGS = ("json", "text", "occi")


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A second occipy on the simulated cloud: the OCCI site the driver federates."""
    server = start_server(tmp_path_factory.mktemp("remote"))
    yield server
    server.stop()


async def opened(remote: LiveServer, tmp_path: Path, **options: str) -> OcciDriver:
    values = {"url": remote.url, "interval": "0.05", "poll": "0.2", **options}
    driver = OcciDriver.from_options(values, tmp_path)
    await driver.open()
    return driver


async def remote_paths(remote: LiveServer, kind: str) -> set[str]:
    async with AsyncClient(remote.url) as client:
        return {"/" + url.split("/", 3)[3] for url in await client.list_locations(kind)}


class TestOcciContract(DriverContract):
    """The shared driver contract, through each rendering."""

    @pytest.fixture(params=RENDERINGS)
    async def driver(self, request: pytest.FixtureRequest, remote: LiveServer,
                     tmp_path: Path) -> AsyncIterator[Driver]:
        drv = await opened(remote, tmp_path, media_type=request.param)
        self.remote_url = remote.url
        yield drv
        await drv.close()

    async def change_outside(self, driver: Driver, ref: Ref, state: str | None) -> None:
        # Someone using the remote site directly, with their own client.
        async with AsyncClient(self.remote_url) as other:
            url = self.remote_url + ref.backend_id
            if state is None:
                await other.delete(url)
            else:
                assert state == "inactive"
                await other.trigger(url, "stop", {"method": "poweroff"})
                await other.wait_for(url, state="inactive", timeout=10, interval=0.05)

    async def unreachable(self) -> Driver | None:
        return OcciDriver.from_options({"url": f"http://127.0.0.1:{free_port()}/", "timeout": "2"}, None)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- what the remote offers


async def test_supports_and_templates_come_from_the_remote(remote: LiveServer, tmp_path: Path) -> None:
    driver = await opened(remote, tmp_path, media_type="json")
    try:
        assert set(driver.supports) == {COMPUTE, STORAGE, NETWORK, STORAGELINK, NETWORKINTERFACE}
        assert driver.supports[COMPUTE].actions == {"start", "stop", "restart", "suspend", "save"}
        assert driver.supports[STORAGE].updates == {"size_gib"}
        assert {"cores", "memory_gib", "image", "flavour"} <= driver.supports[COMPUTE].updates
        images = {t.name: t for t in driver.templates() if t.family == IMAGE}
        flavours = {t.name: t for t in driver.templates() if t.family == FLAVOUR}
        # The remote's names (its strict terms), titles and, from JSON, sizes.
        assert images["debian-12"].title == "Debian GNU/Linux 12 (bookworm)"
        assert images["debian-12"].architecture == "x64"
        assert any(name.startswith("ubuntu-24_04-") for name in images)
        assert flavours["tiny"].cores == 1 and flavours["tiny"].memory_gib == 0.5
        # CRTP's small/medium/large are occipy's own: the local server sizes them itself.
        assert not {"small", "medium", "large", "mem_small"} & set(flavours)
    finally:
        await driver.close()


async def test_text_discovery_gives_templates_without_sizes(remote: LiveServer, tmp_path: Path) -> None:
    driver = await opened(remote, tmp_path, media_type="text")
    try:
        tiny = next(t for t in driver.templates() if t.name == "tiny")
        assert (tiny.family, tiny.title, tiny.cores, tiny.memory_gib) == (FLAVOUR, "Tiny: 1 core, 0.5 GiB", None, None)
        assert driver.supports[COMPUTE].actions == {"start", "stop", "restart", "suspend", "save"}
    finally:
        await driver.close()


# An OCCI 1.1 site's query interface (GFD.185 text rendering): no save, no suspend, no storage
# size update, templates under a provider scheme, no JSON, no ipnetwork mixin.
OCCI_11_DISCOVERY = """\
Category: entity; scheme="http://schemas.ogf.org/occi/core#"; class="kind"; attributes="occi.core.id{immutable} occi.core.title"
Category: resource; scheme="http://schemas.ogf.org/occi/core#"; class="kind"; rel="http://schemas.ogf.org/occi/core#entity"; location="/resource/"; attributes="occi.core.summary"
Category: link; scheme="http://schemas.ogf.org/occi/core#"; class="kind"; rel="http://schemas.ogf.org/occi/core#entity"; location="/link/"; attributes="occi.core.source occi.core.target"
Category: compute; scheme="http://schemas.ogf.org/occi/infrastructure#"; class="kind"; rel="http://schemas.ogf.org/occi/core#resource"; location="/compute/"; attributes="occi.compute.architecture occi.compute.cores occi.compute.hostname occi.compute.speed occi.compute.memory occi.compute.state{immutable}"; actions="http://schemas.ogf.org/occi/infrastructure/compute/action#start http://schemas.ogf.org/occi/infrastructure/compute/action#stop http://schemas.ogf.org/occi/infrastructure/compute/action#restart"
Category: storage; scheme="http://schemas.ogf.org/occi/infrastructure#"; class="kind"; rel="http://schemas.ogf.org/occi/core#resource"; location="/storage/"; attributes="occi.storage.size{immutable} occi.storage.state{immutable}"; actions="http://schemas.ogf.org/occi/infrastructure/storage/action#online"
Category: start; scheme="http://schemas.ogf.org/occi/infrastructure/compute/action#"; class="action"
Category: stop; scheme="http://schemas.ogf.org/occi/infrastructure/compute/action#"; class="action"; attributes="method"
Category: restart; scheme="http://schemas.ogf.org/occi/infrastructure/compute/action#"; class="action"; attributes="method"
Category: online; scheme="http://schemas.ogf.org/occi/infrastructure/storage/action#"; class="action"
Category: os_tpl; scheme="http://schemas.ogf.org/occi/infrastructure#"; class="mixin"; location="/mixin/os_tpl/"
Category: resource_tpl; scheme="http://schemas.ogf.org/occi/infrastructure#"; class="mixin"; location="/mixin/resource_tpl/"
Category: uuid_sl6_42; scheme="http://occi.example.org/occi/infrastructure/os_tpl#"; class="mixin"; title="Scientific Linux 6"; rel="http://schemas.ogf.org/occi/infrastructure#os_tpl"; location="/mixin/os_tpl/uuid_sl6_42/"
Category: uuid_sl6_42; scheme="http://other.example.org/os_tpl#"; class="mixin"; title="SL6 (mirror)"; rel="http://schemas.ogf.org/occi/infrastructure#os_tpl"; location="/mixin/os_tpl2/uuid_sl6_42/"
Category: small; scheme="http://occi.example.org/occi/infrastructure/resource_tpl#"; class="mixin"; rel="http://schemas.ogf.org/occi/infrastructure#resource_tpl"; location="/mixin/resource_tpl/small/"
"""


def occi_11_model() -> Model:
    fields = text.fields_from_body(OCCI_11_DISCOVERY.encode())
    return Model.from_definitions(text.parse_categories(fields), typed=False)


def test_an_occi_11_site_supports_what_it_announces() -> None:
    model = occi_11_model()
    offered = occi.templates_of(model)
    supports = occi.supports_of(model, offered.templates)
    # No network kind: no network, and no link kind either.
    assert set(supports) == {COMPUTE, STORAGE}
    assert supports[COMPUTE].actions == {"start", "stop", "restart"}
    assert supports[STORAGE].actions == {"online"}
    assert supports[STORAGE].updates == frozenset()  # occi.storage.size{immutable}
    assert supports[COMPUTE].updates == {"cores", "memory_gib", "architecture", "image", "flavour"}
    names = [(t.family, t.name, t.title) for t in offered.templates]
    # A term two schemes share gets a suffix; the provider's own "small" is the remote's flavour.
    assert names == [(IMAGE, "uuid_sl6_42", "Scientific Linux 6"), (FLAVOUR, "small", "small"),
                     (IMAGE, "uuid_sl6_42-2", "SL6 (mirror)")]
    assert offered.mixin(IMAGE, "uuid_sl6_42-2") == "http://other.example.org/os_tpl#uuid_sl6_42"
    with pytest.raises(BackendError, match="no image 'debian'"):
        offered.mixin(IMAGE, "debian")


def test_creation_sends_only_what_the_remote_takes() -> None:
    model = occi_11_model()
    offered = occi.templates_of(model)
    spec = ComputeSpec(name="web", entity_id="urn:uuid:1", cores=2, memory_gib=4.0, share=3,
                       image="uuid_sl6_42", flavour="small")
    request = occi.creation(spec, model, offered, "site-a")
    assert request.kind == occi.KINDS[COMPUTE]
    assert request.mixins == ("http://occi.example.org/occi/infrastructure/os_tpl#uuid_sl6_42",
                              "http://occi.example.org/occi/infrastructure/resource_tpl#small")
    # occi.compute.share is a 1.2 attribute this site does not define: not sent.
    assert request.attributes == {"occi.compute.cores": 2, "occi.compute.memory": 4.0, "occi.core.title": "web",
                                  "occi.core.summary": "managed by occipy [occipy:site-a:urn:uuid:1]"}
    # A key the site cannot take is refused, not dropped.
    with pytest.raises(NotSupported, match="SSH keys"):
        occi.creation(ComputeSpec(name="web", ssh_public_key="ssh-ed25519 AAAA x"), model, offered, "t")
    with pytest.raises(NotSupported, match="user_data"):
        occi.creation(ComputeSpec(name="web", user_data=b"#cloud-config"), model, offered, "t")


@pytest.mark.parametrize(("resource", "word", "state", "message"), [
    (COMPUTE, "active", "active", None),
    (COMPUTE, "waiting", "inactive", "the OCCI site reports state 'waiting'"),
    (STORAGE, "snapshot", "online", "the OCCI site reports state 'snapshot'"),  # OCCI 1.1 storage states
    (STORAGE, "degraded", "error", "the OCCI site reports state 'degraded'"),
    (STORAGELINK, None, "active", None),  # 1.1 links may render no state
])
def test_remote_state_words(resource: str, word: str | None, state: str, message: str | None) -> None:
    from occipy.model.entity import Entity

    attributes: dict[str, Any] = {"occi.core.id": "x", "occi.compute.cores": "2"}
    if word is not None:
        attributes[f"occi.{resource}.state"] = word
    entity = Entity(kind=occi.KINDS[resource], entity_id="x", location="/x", attributes=attributes)
    observed = occi.observed_of(resource, "/x", entity)
    assert (observed.state, observed.message) == (state, message)
    if resource == COMPUTE:
        assert observed.facts == ComputeFacts(cores=2)  # a 1.1 site's quoted number


def test_tag_round_trip() -> None:
    from occipy.model.entity import Entity

    def entity(**attributes: str) -> Entity:
        return Entity(kind=occi.KINDS[COMPUTE], entity_id="x", location="/x", attributes=attributes)

    mark = occi.tag_text("site-a", "urn:uuid:42")
    assert occi.tagged_entity_id("site-a", entity(**{"occi.core.summary": f"managed by occipy {mark}"})) == "urn:uuid:42"
    assert occi.tagged_entity_id("site-a", entity(**{"occi.core.title": f"db-1 {mark}"})) == "urn:uuid:42"
    # Another installation's objects are not ours; neither is a mark in the middle of a text.
    assert occi.tagged_entity_id("site-b", entity(**{"occi.core.summary": mark})) is None
    assert occi.tagged_entity_id("site-a", entity(**{"occi.core.title": f"{mark} copy"})) is None


# ---------------------------------------------------------------------------- settings


def test_settings(tmp_path: Path) -> None:
    s = parse({"url": "http://h:1/occi", "username": "u", "password": "p", "media_type": "occi",
               "timeout": "5", "wait": "60", "interval": "0.5", "poll": "0", "tag": "front-1"}, tmp_path)
    assert (s.url, s.origin, s.media_type, s.timeout, s.wait, s.interval, s.poll, s.tag) == (
        "http://h:1/occi/", "http://h:1", "occi", 5.0, 60.0, 0.5, 0.0, "front-1")
    assert s.auth == BasicAuth("u", "p") and s.cert is None and s.verify is True
    token_file = tmp_path / "token"
    token_file.write_text(" tok \n")
    assert parse({"url": "https://h/", "token_file": str(token_file)}, tmp_path).auth == BearerToken("tok")
    assert parse({"url": "https://h/", "auth": "keystone-token", "token": "k"}, tmp_path).auth == KeystoneToken("k")
    keystone = parse({"url": "https://h/", "auth": "keystone", "username": "u", "password": "p",
                      "project": "demo", "keystone_url": "http://ks:5000"}, tmp_path).auth
    assert keystone == KeystoneAuth("u", "p", project="demo", url="http://ks:5000")
    cert = tmp_path / "client.pem"
    cert.write_text("PEM")
    x509 = parse({"url": "https://h/", "cert": str(cert), "verify": str(cert)}, tmp_path)
    assert (x509.auth, x509.cert, x509.verify) == (None, ClientCertificate(cert), str(cert))
    assert parse({"url": "https://h/", "verify": "false"}, tmp_path).verify is False


@pytest.mark.parametrize(("options", "message"), [
    ({}, "url is required"),
    ({"url": "ftp://h/"}, "http:// or https://"),
    ({"url": "http://h/", "colour": "red"}, "unknown occi driver option"),
    ({"url": "http://h/", "media_type": "xml"}, "media_type"),
    ({"url": "http://h/", "auth": "kerberos"}, "auth"),
    ({"url": "http://h/", "auth": "basic", "username": "u"}, "password is required with auth=basic"),
    ({"url": "http://h/", "auth": "token"}, "token or token_file"),
    ({"url": "http://h/", "auth": "x509"}, "cert is required"),
    ({"url": "http://h/", "cert": "/no/such.pem"}, "does not exist"),
    ({"url": "http://h/", "wait": "soon"}, "wait: expected seconds"),
    ({"url": "http://h/", "poll": "-1"}, "poll: must be 0 or more"),
    ({"url": "http://h/", "tag": "a b"}, "tag"),
    ({"url": "http://h/", "verify": "/no/ca.pem"}, "verify"),
])
def test_bad_settings_name_the_option(tmp_path: Path, options: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_driver_class("occi").from_options(options, tmp_path)


def test_the_installation_tag_is_kept_in_the_data_dir(tmp_path: Path) -> None:
    first = parse({"url": "http://h/"}, tmp_path).tag
    assert first.startswith("occipy-") and (tmp_path / TAG_FILE).read_text().strip() == first
    assert parse({"url": "http://h/"}, tmp_path).tag == first
    assert parse({"url": "http://h/"}, tmp_path / "other").tag != first


# ---------------------------------------------------------------------------- behaviour on a real remote


@pytest.fixture(scope="module")
def slow_remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A remote whose cloud takes 0.6 s per step: longer than its sync_wait, so work is followed."""
    server = start_server(tmp_path_factory.mktemp("slow"), driver_options={"delay": "0.6"})
    yield server
    server.stop()


@pytest.mark.parametrize("media", RENDERINGS)
async def test_operations_that_take_time_are_followed(slow_remote: LiveServer, tmp_path: Path, media: str) -> None:
    driver = await opened(slow_remote, tmp_path, media_type=media)
    try:
        created = await driver.create(ComputeSpec(name=unique("slow"), image="debian-12"))
        assert created.state == "active"
        ref = Ref(COMPUTE, created.backend_id)
        assert (await driver.act(ref, Stop(method="poweroff"))).state == "inactive"
        assert (await driver.act(ref, Start())).state == "active"
        await driver.delete(ref)
        assert await driver.observe(ref) is None
    finally:
        await driver.close()


async def test_a_failed_create_leaves_nothing_on_the_remote(remote: LiveServer, tmp_path: Path) -> None:
    driver = await opened(remote, tmp_path)
    try:
        before = await remote_paths(remote, "compute")
        # The remote's simulated cloud fails names containing simulate-failure.
        with pytest.raises(BackendError, match="simulated failure"):
            await driver.create(ComputeSpec(name=unique("simulate-failure"), entity_id=f"urn:uuid:{uuid.uuid4()}"))
        assert await remote_paths(remote, "compute") == before
    finally:
        await driver.close()


async def test_entities_are_tagged_on_the_remote(remote: LiveServer, tmp_path: Path) -> None:
    driver = await opened(remote, tmp_path, tag="front-7")
    try:
        entity_id = f"urn:uuid:{uuid.uuid4()}"
        vm = await driver.create(ComputeSpec(name="tagged-vm", entity_id=entity_id, image="debian-12"))
        vol = await driver.create(StorageSpec(name="tagged-vol", size_gib=1.0, entity_id=entity_id + "v"))
        from occipy.backends.base import StorageLinkSpec

        link = await driver.create(StorageLinkSpec(name="tagged-link", compute_id=vm.backend_id,
                                                   storage_id=vol.backend_id, entity_id=entity_id + "l"))
        async with AsyncClient(remote.url) as other:
            shown = await other.get(remote.url + vm.backend_id)
            shown_link = await other.get(remote.url + link.backend_id)
        assert shown.attributes["occi.core.title"] == "tagged-vm"
        assert shown.attributes["occi.core.summary"] == f"managed by occipy [occipy:front-7:{entity_id}]"
        assert shown_link.attributes["occi.core.title"] == f"tagged-link [occipy:front-7:{entity_id}l]"
        found = {item.ref: item.entity_id for item in await driver.inventory()}
        assert found[Ref(COMPUTE, vm.backend_id)] == entity_id
        assert found[Ref(STORAGELINK, link.backend_id)] == entity_id + "l"
        # Another installation does not claim them.
        other_driver = await opened(remote, tmp_path, tag="front-8")
        try:
            assert not {item.ref for item in await other_driver.inventory()} & set(found)
        finally:
            await other_driver.close()
        await driver.delete(Ref(COMPUTE, vm.backend_id))
        await driver.delete(Ref(STORAGE, vol.backend_id))
    finally:
        await driver.close()


async def test_user_data_and_ssh_key_reach_the_remote(remote: LiveServer, tmp_path: Path) -> None:
    driver = await opened(remote, tmp_path)
    try:
        key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGd5b1Jv occipy@test"
        vm = await driver.create(ComputeSpec(name=unique("ctx"), image="debian-12", ssh_public_key=key,
                                             user_data=b"#cloud-config\n"))
        async with AsyncClient(remote.url) as other:
            shown = await other.get(remote.url + vm.backend_id)
        assert shown.attributes["occi.credentials.ssh.publickey"] == key
        assert base64.b64decode(str(shown.attributes["occi.compute.userdata"])) == b"#cloud-config\n"
        assert set(shown.mixins) >= {occi.SSH_KEY, occi.USER_DATA}
        await driver.delete(Ref(COMPUTE, vm.backend_id))
    finally:
        await driver.close()


async def test_save_names_the_new_template(remote: LiveServer, tmp_path: Path) -> None:
    driver = await opened(remote, tmp_path)
    try:
        vm = await driver.create(ComputeSpec(name=unique("saver"), image="debian-12"))
        ref = Ref(COMPUTE, vm.backend_id)
        name = unique("golden")
        template = await driver.save(ref, Save(image_name=name))
        assert (template.family, template.name, template.architecture) == (IMAGE, name, "x64")
        # The driver's template list and the remote's agree; a compute boots from it.
        assert template in driver.templates()
        clone = await driver.create(ComputeSpec(name=unique("clone"), image=name))
        assert clone.state == "active"
        observed = await driver.act(ref, Save())
        assert observed.state == "active" and observed.message and observed.message.startswith("saved as image ")
        for backend_id in (clone.backend_id, vm.backend_id):
            await driver.delete(Ref(COMPUTE, backend_id))
    finally:
        await driver.close()


async def test_remote_refusals_become_backend_errors(remote: LiveServer, tmp_path: Path) -> None:
    driver = await opened(remote, tmp_path)
    try:
        volume = await driver.create(StorageSpec(name=unique("vol"), size_gib=2.0))
        ref = Ref(STORAGE, volume.backend_id)
        with pytest.raises(BackendError, match=f"the OCCI site at {remote.url}/"):
            await driver.update(ref, StorageUpdate(size_gib=1.0))  # volumes only grow
        vm = await driver.create(ComputeSpec(name=unique("vm")))
        with pytest.raises(BackendError, match="could not suspend"):
            await driver.act(Ref(COMPUTE, vm.backend_id), Suspend(method="nap"))  # not a GFD.224 method
        for item in (Ref(COMPUTE, vm.backend_id), ref):
            await driver.delete(item)
    finally:
        await driver.close()


async def test_an_unreachable_remote_is_backend_unavailable_naming_it(tmp_path: Path) -> None:
    server = start_server(tmp_path / "gone")
    driver = await opened(server, tmp_path, timeout="2")
    try:
        vm = await driver.create(ComputeSpec(name=unique("vm")))
        server.stop()
        for call in (driver.observe(Ref(COMPUTE, vm.backend_id)), driver.create(NetworkSpec(name="n")),
                     driver.act(Ref(COMPUTE, vm.backend_id), Start())):
            with pytest.raises(BackendUnavailable, match=f"cannot reach the OCCI server at {server.url}/"):
                await call
    finally:
        await driver.close()


async def test_watching_reports_nothing_when_nothing_changed(remote: LiveServer, tmp_path: Path) -> None:
    driver = await opened(remote, tmp_path, poll="0.1")
    try:
        vm = await driver.create(ComputeSpec(name=unique("calm")))
        stream = driver.changes()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(stream.__anext__(), timeout=0.6)
        await driver.delete(Ref(COMPUTE, vm.backend_id))
    finally:
        await driver.close()


async def test_adopted_objects_are_watched(remote: LiveServer, tmp_path: Path) -> None:
    maker = await opened(remote, tmp_path)
    vm = await maker.create(ComputeSpec(name=unique("adopted")))
    await maker.close()
    driver = await opened(remote, tmp_path, poll="0.1")
    try:
        ref = Ref(COMPUTE, vm.backend_id)
        await driver.adopt(ref, Observed(vm.backend_id, "active", None, vm.facts))
        stream = driver.changes()
        async with AsyncClient(remote.url) as other:
            await other.delete(remote.url + vm.backend_id)
        change = await asyncio.wait_for(stream.__anext__(), timeout=5)
        assert change.ref == ref and change.observed is None
    finally:
        await driver.close()
