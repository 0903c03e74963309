"""The SDK against a live occipy server: every operation, in every rendering, and docs/sdk.md run.

The server runs in a thread (conftest's `start_server`) with the simulated cloud taking 0.2 s per
state change, so waiting follows real operations.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from occipy import errors
from occipy.client import AsyncClient, Client, LinkSpec, Progress, ServerUnreachable
from occipy.model.catalogue import COMPUTE, NETWORKINTERFACE, STORAGELINK

from .conftest import LiveServer, free_port, start_server

DOCS = Path(__file__).resolve().parents[2] / "docs" / "sdk.md"
MEDIA = ["json", "text", "occi"]
MEDIA_TYPES = {"json": "application/occi+json", "text": "text/plain", "occi": "text/occi"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(tmp_path_factory.mktemp("sdk-live"), driver_options={"delay": "0.2"})
    yield live
    live.stop()


@pytest.fixture(params=MEDIA)
def occi(request: pytest.FixtureRequest, server: LiveServer) -> Iterator[Client]:
    with Client(server.url, media_type=request.param) as client:
        yield client


def test_discovery_prefers_json_and_knows_the_templates(server: LiveServer) -> None:
    with Client(server.url) as client:
        model = client.discover()
        assert client.media_type == "application/occi+json"
        assert model.typed
        assert model.kind("compute").location == "/compute/"
        assert model.mixin("os_tpl#debian-12").term == "debian-12"
        assert model.attribute_defs(COMPUTE)["occi.compute.cores"].type == "number"


def test_readme_walkthrough(occi: Client) -> None:
    """README: a network, a storage and a compute with links; start, stop, resize; list; delete."""
    occi.discover()
    assert occi.media_type in MEDIA_TYPES.values()
    net = occi.create("network", mixins=["ipnetwork"], title="lan",
                      attributes={"occi.network.address": "10.42.0.0/24"})
    disk = occi.create("storage", title="data", attributes={"occi.storage.size": 2.0})
    vm = occi.create("compute", mixins=["debian-12", "small"], title="web", links=[net, disk])
    seen: list[Progress] = []
    entity = occi.wait_for(vm, state="active", timeout=30, interval=0.05, progress=seen.append)
    assert entity.attributes["occi.compute.state"] == "active"
    assert seen[0].operation is not None  # the create operation (X-OCCI-Operation) was followed
    assert sorted(link.kind for link in entity.links) == sorted([NETWORKINTERFACE, STORAGELINK])
    assert all(link.location for link in entity.links)
    assert occi.get(next(l.location for l in entity.links if l.kind == STORAGELINK)).kind == STORAGELINK

    occi.trigger(vm, "stop", {"method": "graceful"})
    assert occi.wait_for(vm, state="inactive", timeout=30, interval=0.05).attributes["occi.compute.state"] == "inactive"
    occi.trigger(vm, "start")
    assert occi.wait_for(vm, state="active", timeout=30, interval=0.05).attributes["occi.compute.state"] == "active"

    occi.wait_for(disk, state="online", timeout=30, interval=0.05)
    assert occi.update(disk, attributes={"occi.storage.size": 4.0}).attributes["occi.storage.size"] == 4.0
    resized = occi.add_mixin(vm, "medium")
    assert "http://schemas.ogf.org/occi/infrastructure/compute/template/1.1#medium" in resized.mixins
    assert resized.attributes["occi.compute.cores"] == 2

    assert vm in occi.list_locations("compute")
    listed = {e.location: e for e in occi.list_entities("compute")}
    assert listed[vm].title == "web"

    for location in (vm, disk, net):
        occi.delete(location)
    with pytest.raises(errors.NotFound):
        occi.get(vm)
    assert vm not in occi.list_locations("compute")


def test_updates_links_mixins_filters_and_pages(occi: Client) -> None:
    tag = f"t-{(occi.media_type or 'x').replace('/', '-').replace('+', '-')}"
    a = occi.create("compute", title=f"{tag}-a", attributes={"occi.compute.hostname": f"{tag}-a"})
    b = occi.create("compute", title=f"{tag}-b")
    c = occi.create("compute", title=f"{tag}-c")
    # filters travel as headers; pages of 1 force several requests
    assert occi.list_locations("compute", attributes={"occi.core.title": f"{tag}-b"}) == [b]
    assert {a, b, c} <= set(occi.list_locations("compute", page_size=1))

    full = occi.replace(a, attributes={"occi.core.title": f"{tag}-a2"})
    assert full.title == f"{tag}-a2" and "occi.compute.hostname" not in full.attributes
    partial = occi.update(b, attributes={"occi.compute.hostname": "bee"})
    assert partial.attributes["occi.compute.hostname"] == "bee" and partial.title == f"{tag}-b"

    user = occi.define_mixin(tag, occi.endpoint + "occi/tags#", title="tagged")
    assert user.location == f"/{tag}/"
    occi.add_mixin(a, tag)
    occi.add_mixin(c, tag)
    assert occi.list_locations(tag) == [a, c]
    assert occi.list_locations("compute", categories=[tag], attributes={"occi.core.title": f"{tag}-c"}) == [c]
    assert user.type_id not in occi.remove_mixin(a, tag).mixins
    occi.undefine_mixin(tag)
    with pytest.raises(errors.UnknownCategory):
        occi.model.mixin(tag)

    disk = occi.create("storage", attributes={"occi.storage.size": 1.0})
    occi.wait_for(disk, state="online", timeout=30, interval=0.05)
    link = occi.link(b, disk, attributes={"occi.storagelink.deviceid": "/dev/vdc"})
    got = occi.get(link)
    assert got.kind == STORAGELINK and got.source == "/compute/" + b.rsplit("/", 1)[1]
    assert [l.location for l in occi.get(b).links] == [link]
    occi.unlink(link)
    assert occi.get(b).links == ()
    for location in (a, b, c, disk):
        occi.delete(location)


def test_errors_are_typed_with_the_server_message(occi: Client, server: LiveServer) -> None:
    vm = occi.create("compute")
    occi.wait_for(vm, state="active", timeout=30, interval=0.05)
    with pytest.raises(errors.Conflict) as conflict:
        occi.trigger(vm, "start")
    assert "start" in conflict.value.message
    with pytest.raises(errors.NotFound) as missing:
        occi.get("/compute/does-not-exist")
    assert missing.value.message
    with pytest.raises(errors.ImmutableAttribute, match="occi.compute.state"):
        occi.update(vm, attributes={"occi.compute.state": "inactive"})
    occi.delete(vm)
    # the server's own 400, not the client's check
    with Client(server.url, media_type=occi.media_type, validate=False) as unchecked, \
            pytest.raises(errors.BadRequest) as bad:
        unchecked.create("compute", attributes={"occi.compute.colour": "red"})
        assert "colour" in bad.value.message


def test_a_failing_create_ends_the_wait_with_the_message(server: LiveServer) -> None:
    with Client(server.url) as occi:
        vm = occi.create("compute", title="please simulate-failure")
        with pytest.raises(errors.BackendError, match="simulated failure"):
            occi.wait_for(vm, timeout=30, interval=0.05)
        occi.delete(vm)


def test_unreachable_server() -> None:
    with Client(f"http://127.0.0.1:{free_port()}") as occi, pytest.raises(ServerUnreachable, match="cannot reach"):
        occi.discover()


async def test_async_client_live(server: LiveServer) -> None:
    seen: list[Progress] = []
    async with AsyncClient(server.url) as occi:
        disk = await occi.create("storage", title="async", attributes={"occi.storage.size": 1.0})
        vm = await occi.create("compute", title="async-vm", links=[LinkSpec(disk)])
        entity = await occi.wait_for(vm, state="active", timeout=30, interval=0.05, progress=seen.append)
        assert entity.links[0].kind == STORAGELINK
        stopped = await occi.trigger(vm, "stop")
        assert stopped.kind == COMPUTE
        await occi.wait_for(vm, state="inactive", timeout=30, interval=0.05)
        assert vm in await occi.list_locations("compute")
        await occi.delete(vm)
        await occi.delete(disk)
    assert seen


def test_docs_sdk_examples_run(server: LiveServer, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    """Every ```python block of docs/sdk.md, in order, in one namespace (except `# not run` ones)."""
    monkeypatch.setenv("OCCI_ENDPOINT", server.url)
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) >= 8
    namespace: dict[str, object] = {}
    for block in blocks:
        if block.startswith("# not run"):
            continue
        exec(compile(block, str(DOCS), "exec"), namespace)  # noqa: S102 - our own documentation
    out = capsys.readouterr().out
    assert "application/occi+json" in out
    assert "attribute occi.compute.colour: not defined for compute" in out
    assert "gone:" in out
    assert httpx.get(server.url + "/-/").status_code == 200
