"""SDK unit tests: Client and AsyncClient against the in-memory fake server (httpx.MockTransport)."""

from __future__ import annotations

import httpx
import pytest

from occipy import errors
from occipy.client import (
    AmbiguousCategory,
    AsyncClient,
    BasicAuth,
    BearerToken,
    Client,
    LinkSpec,
    Progress,
    ServerUnreachable,
    WaitTimeout,
)
from occipy.model.catalogue import COMPUTE, NETWORKINTERFACE, STORAGELINK
from occipy.rendering import text

from .fake import BASE, DEBIAN, JSON_T, OCCI_T, PLAIN_T, FakeServer

MEDIA = [JSON_T, PLAIN_T, OCCI_T]


def make(server: FakeServer, **options: object) -> Client:
    return Client(BASE, transport=httpx.MockTransport(server), **options)  # type: ignore[arg-type]


@pytest.fixture(params=MEDIA, ids=["json", "text-plain", "text-occi"])
def server(request: pytest.FixtureRequest) -> FakeServer:
    """A server that offers only one media type: the client must find and use it."""
    return FakeServer(offers=(request.param,))


# ---- discovery and negotiation -------------------------------------------------------------


def test_discovery_falls_back_to_the_media_type_the_server_offers(server: FakeServer) -> None:
    with make(server) as occi:
        model = occi.discover()
        assert occi.media_type == server.offers[0]
        assert COMPUTE in model.kinds
        assert model.mixin("os_tpl#debian-12").type_id == DEBIAN
        assert model.mixin("debian-12").type_id == DEBIAN
        assert model.action("stop", COMPUTE).term == "stop"
        # JSON discovery carries types; the text renderings only names and flags (GFD.229 §5.2).
        assert model.typed is (server.offers[0] == JSON_T)


def test_json_is_preferred_when_the_server_offers_everything() -> None:
    server = FakeServer()
    with make(server) as occi:
        occi.discover()
        assert occi.media_type == JSON_T
        assert len([r for r in server.requests if r.url.path == "/-/"]) == 1


def test_discovery_is_cached_and_refreshable() -> None:
    server = FakeServer()
    with make(server) as occi:
        occi.discover()
        occi.discover()
        assert len(server.requests) == 1
        occi.discover(refresh=True)
        assert len(server.requests) == 2


def test_forced_media_type_is_used() -> None:
    server = FakeServer()
    with make(server, media_type="occi") as occi:
        occi.create("compute")
        assert occi.media_type == OCCI_T
        post = server.requests[-1]
        assert post.headers["content-type"] == OCCI_T
        assert "compute" in post.headers["category"]


@pytest.mark.spec("H-11")
def test_user_agent_names_the_occi_version() -> None:
    server = FakeServer()
    with make(server) as occi:
        occi.discover()
    assert "OCCI/1.2" in server.requests[0].headers["user-agent"]


# ---- every operation in every media type ---------------------------------------------------


def test_create_get_update_delete(server: FakeServer) -> None:
    with make(server) as occi:
        location = occi.create("compute", mixins=["os_tpl#debian-12"], title="web1",
                               attributes={"occi.compute.cores": 2, "occi.compute.memory": 4.0})
        assert location.startswith(BASE + "/compute/")
        entity = occi.get(location)
        assert entity.kind == COMPUTE
        assert entity.location == location
        assert DEBIAN in entity.mixins
        assert entity.title == "web1"
        assert entity.attributes["occi.compute.cores"] == 2
        assert entity.attributes["occi.compute.memory"] == 4.0
        assert any(a.endswith("#stop") for a in entity.actions)

        updated = occi.update(location, attributes={"occi.compute.cores": 4})
        assert updated.attributes["occi.compute.cores"] == 4
        assert updated.title == "web1"  # partial: the rest stays

        replaced = occi.replace(location, attributes={"occi.core.title": "renamed"})
        assert replaced.title == "renamed"
        assert "occi.compute.cores" not in replaced.attributes  # full: what is not sent goes

        occi.delete(location)
        with pytest.raises(errors.NotFound):
            occi.get(location)


def test_create_with_inline_links_and_read_them_back(server: FakeServer) -> None:
    with make(server) as occi:
        net = occi.create("network", title="lan")
        disk = occi.create("storage", attributes={"occi.storage.size": 10.0})
        vm = occi.create("compute", links=[net, LinkSpec(disk, attributes={"occi.storagelink.deviceid": "/dev/vdb"})])
        entity = occi.get(vm)
        kinds = sorted(link.kind for link in entity.links)
        assert kinds == sorted([NETWORKINTERFACE, STORAGELINK])
        storagelink = next(link for link in entity.links if link.kind == STORAGELINK)
        assert storagelink.target == "/storage/" + disk.rsplit("/", 1)[1]
        assert storagelink.attributes["occi.storagelink.deviceid"] == "/dev/vdb"
        assert storagelink.location.startswith(BASE + "/storagelink/")
        # the link's location is usable
        occi.unlink(storagelink.location)
        assert [link.kind for link in occi.get(vm).links] == [NETWORKINTERFACE]


def test_direct_link_creation(server: FakeServer) -> None:
    with make(server) as occi:
        vm = occi.create("compute")
        disk = occi.create("storage", attributes={"occi.storage.size": 1.0})
        link = occi.link(vm, disk, attributes={"occi.storagelink.deviceid": "/dev/vdc"})
        assert link.startswith(BASE + "/storagelink/")
        got = occi.get(link)
        assert got.kind == STORAGELINK
        assert got.source == "/compute/" + vm.rsplit("/", 1)[1]
        assert got.target == "/storage/" + disk.rsplit("/", 1)[1]


@pytest.mark.spec("T-05")
def test_actions_follow_the_state_machine(server: FakeServer) -> None:
    with make(server) as occi:
        vm = occi.create("compute")
        stopped = occi.trigger(vm, "stop", {"method": "graceful"})
        assert stopped.attributes["occi.compute.state"] == "inactive"
        post = next(r for r in reversed(server.requests) if r.method == "POST")
        assert post.url.params["action"] == "stop"
        if post.headers["content-type"] != JSON_T:
            # T-05: action_definition = 1( Category CRLF ) *( Attribute CRLF ), class "action"
            fields = (text.fields_from_headers(list(post.headers.multi_items()))
                      if post.headers["content-type"] == OCCI_T else text.fields_from_body(post.content))
            categories = [value for name, value in fields if name == "Category"]
            assert len(categories) == 1 and 'class="action"' in categories[0]
            assert [value for name, value in fields if name == "X-OCCI-Attribute"] == ['method="graceful"']
        started = occi.trigger(vm, "http://schemas.ogf.org/occi/infrastructure/compute/action#start")
        assert started.attributes["occi.compute.state"] == "active"


def test_mixin_add_remove_and_list_by_mixin(server: FakeServer) -> None:
    with make(server) as occi:
        vm = occi.create("compute")
        occi.add_mixin(vm, "tiny")
        assert "http://occi.test/occi/resource_tpl#tiny" in occi.get(vm).mixins
        assert occi.list_locations("resource_tpl#tiny") == [vm]
        occi.remove_mixin(vm, "tiny")
        assert occi.get(vm).mixins == ()


@pytest.mark.spec("C-44")
def test_user_mixins_define_and_undefine(server: FakeServer) -> None:
    with make(server) as occi:
        mixin = occi.define_mixin("my_stuff", "http://example.com/occi/users/alice#", title="Alice's VMs")
        assert mixin.location == "/my_stuff/"
        assert occi.model.mixin("my_stuff").title == "Alice's VMs"
        vm = occi.create("compute")
        occi.add_mixin(vm, "my_stuff")
        assert occi.list_locations("my_stuff") == [vm]
        occi.undefine_mixin("my_stuff")
        with pytest.raises(errors.UnknownCategory):
            occi.model.mixin("my_stuff")


@pytest.mark.spec("H-12")
def test_listing_pages_through_the_collection(server: FakeServer) -> None:
    with make(server, page_size=2) as occi:
        created = [occi.create("compute", title=f"vm{i}") for i in range(5)]
        assert occi.list_locations("compute") == created
        pages = [r for r in server.requests if r.url.path == "/compute/" and r.method == "GET"]
        assert [r.url.params["page"] for r in pages] == ["1", "2", "3"]
        entities = occi.list_entities("compute")
        assert [e.title for e in entities] == [f"vm{i}" for i in range(5)]
        assert [e.location for e in entities] == created


@pytest.mark.spec("H-15")
def test_listing_filters_travel_as_headers(server: FakeServer) -> None:
    with make(server) as occi:
        occi.create("compute", title="a", attributes={"occi.compute.hostname": "a"})
        b = occi.create("compute", title="b", attributes={"occi.compute.hostname": "b"})
        found = occi.list_locations("compute", attributes={"occi.compute.hostname": "b"})
        assert found == [b]
        last = [r for r in server.requests if r.url.path == "/compute/"][-1]
        assert last.headers["x-occi-attribute"] == 'occi.compute.hostname="b"'


@pytest.mark.spec("H-12")
def test_page_size_above_the_provider_limit_is_halved() -> None:
    server = FakeServer(page_limit=3)
    with make(server, page_size=10) as occi:
        created = [occi.create("compute") for _ in range(4)]
        assert occi.list_locations("compute") == created


def test_a_server_ignoring_pagination_does_not_loop() -> None:
    server = FakeServer()
    with make(server, page_size=2) as occi:
        created = [occi.create("compute") for _ in range(2)]
        real = server._collection

        def no_paging(request: httpx.Request, type_id: str) -> httpx.Response:
            url = request.url.copy_remove_param("page").copy_remove_param("number")
            return real(httpx.Request(request.method, url, headers=request.headers), type_id)

        server._collection = no_paging  # type: ignore[method-assign]
        assert occi.list_locations("compute") == created


@pytest.mark.spec("H-05")
@pytest.mark.spec("H-06")
def test_every_request_states_accept_and_every_payload_its_content_type(server: FakeServer) -> None:
    with make(server) as occi:
        vm = occi.create("compute", title="x")
        occi.trigger(vm, "stop")
        occi.update(vm, attributes={"occi.core.title": "y"})
        occi.add_mixin(vm, "tiny")
        occi.remove_mixin(vm, "tiny")
        occi.define_mixin("tag", "http://example.com/tags#")
        occi.undefine_mixin("tag")
        occi.delete(vm)
    for request in server.requests:
        assert request.headers.get("accept"), request
        if request.method in ("POST", "PUT") or request.content:
            assert request.headers["content-type"] == server.offers[0], request


# ---- validation before sending --------------------------------------------------------------


def test_unknown_attribute_is_reported_by_name(server: FakeServer) -> None:
    with make(server) as occi:
        occi.discover()
        sent = len(server.requests)
        with pytest.raises(errors.InvalidAttribute, match="occi.compute.colour"):
            occi.create("compute", attributes={"occi.compute.colour": "red"})
        assert len(server.requests) == sent  # nothing went out


def test_wrong_type_is_reported_by_name_with_json_discovery() -> None:
    with make(FakeServer()) as occi:
        with pytest.raises(errors.InvalidAttribute, match="occi.compute.cores"):
            occi.create("compute", attributes={"occi.compute.cores": "two"})
        with pytest.raises(errors.InvalidAttribute, match="occi.compute.cores"):
            occi.create("compute", attributes={"occi.compute.cores": 0})  # pattern: minimum 1
        with pytest.raises(errors.InvalidAttribute, match="occi.compute.architecture"):
            occi.create("compute", attributes={"occi.compute.architecture": "x 64"})


@pytest.mark.spec("C-04")
def test_immutable_attribute_is_refused_but_an_unchanged_value_passes(server: FakeServer) -> None:
    with make(server) as occi:
        vm = occi.create("compute")
        with pytest.raises(errors.ImmutableAttribute, match="occi.compute.state"):
            occi.update(vm, attributes={"occi.compute.state": "inactive"})
        with pytest.raises(errors.ImmutableAttribute, match="occi.compute.state"):
            occi.create("compute", attributes={"occi.compute.state": "active"})
        current = occi.get(vm)
        # GET-modify-PUT: re-sending immutables unchanged is fine (core.md §2.1)
        occi.replace(vm, attributes={**current.attributes, "occi.core.title": "x"})


def test_unknown_action_parameter_and_action(server: FakeServer) -> None:
    with make(server) as occi:
        vm = occi.create("compute")
        with pytest.raises(errors.InvalidAttribute, match="speed"):
            occi.trigger(vm, "stop", {"speed": "fast"})
        with pytest.raises(errors.UnknownCategory):
            occi.trigger(vm, "explode")
        with pytest.raises(errors.BadRequest, match="not defined for compute"):
            occi.trigger(vm, "http://schemas.ogf.org/occi/infrastructure/network/action#up")


def test_validation_can_be_switched_off() -> None:
    server = FakeServer()
    with make(server, validate=False) as occi:
        occi.create("compute", attributes={"occi.compute.colour": "red"})
    post = server.requests[-1]
    assert post.method == "POST" and b"occi.compute.colour" in post.content  # the server decides


def test_unknown_and_ambiguous_names() -> None:
    server = FakeServer()
    with make(server) as occi:
        with pytest.raises(errors.UnknownCategory, match="nope"):
            occi.create("nope")
        occi.define_mixin("debian-12", "http://example.com/tags#")
        with pytest.raises(AmbiguousCategory, match="os_tpl#debian-12"):
            occi.model.mixin("debian-12")
        assert occi.model.mixin("os_tpl#debian-12").type_id == DEBIAN
        assert occi.model.mixin("tags#debian-12").type_id == "http://example.com/tags#debian-12"


# ---- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "cls"), [
    (400, errors.BadRequest), (401, errors.Unauthorized), (403, errors.Forbidden), (404, errors.NotFound),
    (405, errors.MethodNotAllowed), (406, errors.NotAcceptable), (409, errors.Conflict),
    (413, errors.PayloadTooLarge), (415, errors.UnsupportedMediaType), (500, errors.ServerError),
    (501, errors.NotSupported), (502, errors.BackendError), (503, errors.BackendUnavailable),
])
@pytest.mark.parametrize("carrier", ["json", "plain", "header"])
@pytest.mark.spec("H-04")
def test_each_status_becomes_its_error_class_with_the_server_message(
        status: int, cls: type[errors.OcciError], carrier: str) -> None:
    """The client reads errors.HTTP_STATUS backwards (GFD.223 §5.4: a client MUST understand them)."""
    message = f"the server says {status}"

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/-/":
            return FakeServer()(request)
        if carrier == "json":
            return httpx.Response(status, json={"code": status, "message": message})
        if carrier == "plain":
            return httpx.Response(status, text=message, headers={"Content-Type": "text/plain"})
        return httpx.Response(status, text="", headers={"Content-Type": "text/occi", "X-OCCI-Error": message})

    with Client(BASE, transport=httpx.MockTransport(handler)) as occi, pytest.raises(cls) as caught:
        occi.get("/compute/1")
    assert type(caught.value) is cls
    assert caught.value.message == message


def test_405_carries_the_allowed_methods() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/-/":
            return FakeServer()(request)
        return httpx.Response(405, text="no", headers={"Allow": "GET, POST"})

    with Client(BASE, transport=httpx.MockTransport(handler)) as occi, \
            pytest.raises(errors.MethodNotAllowed) as caught:
        occi.delete("/compute/")
    assert caught.value.allowed == ("GET", "POST")


def test_server_down_is_its_own_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    with Client(BASE, transport=httpx.MockTransport(handler)) as occi, \
            pytest.raises(ServerUnreachable, match="cannot reach the OCCI server"):
        occi.discover()


def test_bad_endpoint_is_refused() -> None:
    with pytest.raises(errors.BadRequest):
        Client("ftp://example.com")


# ---- waiting --------------------------------------------------------------------------------


def test_wait_follows_the_operation_resource() -> None:
    server = FakeServer(op_polls=2)
    seen: list[Progress] = []
    with make(server) as occi:
        vm = occi.create("compute")
        final = occi.wait_for(vm, state="active", interval=0, progress=seen.append)
    assert final.attributes["occi.compute.state"] == "active"
    op_polls = [r for r in server.requests if r.url.path.startswith("/-/operations/")]
    assert len(op_polls) == 3
    assert [p.state for p in seen if p.operation is not None] == ["running", "running", "succeeded"]
    assert seen[-1].state == "active"


def test_wait_reports_a_failed_operation_with_its_message() -> None:
    server = FakeServer(op_polls=0)
    with make(server) as occi:
        vm = occi.create("compute")
        server.ops[next(iter(server.ops))]["location"] += "-fail"
        with pytest.raises(errors.BackendError, match="simulated failure"):
            occi.wait_for(vm, interval=0)


def test_wait_polls_the_state_without_operation_tracking() -> None:
    server = FakeServer(operations=False)
    with make(server) as occi:
        vm = occi.create("compute")
        occi.trigger(vm, "stop")
        path = "/compute/" + vm.rsplit("/", 1)[1]
        polls = {"n": 0}
        real = server._render

        def render(entity, media):  # type: ignore[no-untyped-def]
            # stays "inactive" with a transition message for two polls, then becomes active
            polls["n"] += 1
            if entity.location == path:
                if polls["n"] <= 2:
                    entity.attributes["occi.compute.state.message"] = "starting"
                else:
                    entity.attributes.pop("occi.compute.state.message", None)
                    entity.attributes["occi.compute.state"] = "active"
            return real(entity, media)

        server._render = render  # type: ignore[method-assign]
        final = occi.wait_for(vm, state="active", interval=0)
    assert final.attributes["occi.compute.state"] == "active"
    assert polls["n"] == 3


def test_wait_times_out() -> None:
    server = FakeServer(operations=False)
    with make(server) as occi:
        vm = occi.create("compute")
        with pytest.raises(WaitTimeout, match="waiting for state suspended"):
            occi.wait_for(vm, state="suspended", timeout=0.05, interval=0.01)


def test_wait_stops_on_the_error_state() -> None:
    server = FakeServer(operations=False)
    with make(server) as occi:
        vm = occi.create("compute")
        entity = server.entities["/compute/" + vm.rsplit("/", 1)[1]]
        entity.attributes["occi.compute.state"] = "error"
        entity.attributes["occi.compute.state.message"] = "disk on fire"
        with pytest.raises(errors.BackendError, match="disk on fire"):
            occi.wait_for(vm, state="active", interval=0)


# ---- authentication -------------------------------------------------------------------------


def test_basic_and_bearer_authentication_headers() -> None:
    server = FakeServer()
    with make(server, auth=BasicAuth("alice", "s3cret")) as occi:
        occi.discover()
    assert server.requests[-1].headers["authorization"] == "Basic YWxpY2U6czNjcmV0"
    with make(server, auth=BearerToken("tok")) as occi:
        occi.discover()
    assert server.requests[-1].headers["authorization"] == "Bearer tok"


# ---- async twin -----------------------------------------------------------------------------


async def test_async_client_runs_the_same_operations(server: FakeServer) -> None:
    async with AsyncClient(BASE, transport=httpx.MockTransport(server)) as occi:
        vm = await occi.create("compute", mixins=["debian-12"], title="async")
        entity = await occi.get(vm)
        assert entity.title == "async"
        stopped = await occi.trigger(vm, "stop")
        assert stopped.attributes["occi.compute.state"] == "inactive"
        final = await occi.wait_for(vm, state="inactive", interval=0)
        assert final.attributes["occi.compute.state"] == "inactive"
        assert await occi.list_locations("compute") == [vm]
        await occi.delete(vm)
        with pytest.raises(errors.NotFound):
            await occi.get(vm)
