"""Helpers for the checklist suites: a plain-HTTP OCCI client, an independent text parser, constants.

The checklist tests drive a live server with httpx only: the SDK and the project's own parsers
are what other suites test, so responses are read here by a small parser written from GFD.229
(quote-aware splitting, text-rendering.md §3). Imports: httpx, jsonschema and the live-server
fixtures of tests/integration (re-exported so pytest finds them).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from tests.integration.conftest import LiveServer, fresh_server, live_server, start_server  # noqa: F401

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
SCHEMA = json.loads((SHARED / "spec" / "occi-1.2.schema.json").read_text(encoding="utf-8"))

# --- type identifiers -------------------------------------------------------------------------
CORE = "http://schemas.ogf.org/occi/core#"
INFRA = "http://schemas.ogf.org/occi/infrastructure#"
OGF_BASE = "http://schemas.ogf.org/occi/"
ENTITY, RESOURCE, LINK = CORE + "entity", CORE + "resource", CORE + "link"
COMPUTE, STORAGE, NETWORK = INFRA + "compute", INFRA + "storage", INFRA + "network"
STORAGELINK, NETWORKINTERFACE = INFRA + "storagelink", INFRA + "networkinterface"
OS_TPL, RESOURCE_TPL = INFRA + "os_tpl", INFRA + "resource_tpl"
IPNETWORK = "http://schemas.ogf.org/occi/infrastructure/network#ipnetwork"
IPNETWORKINTERFACE = "http://schemas.ogf.org/occi/infrastructure/networkinterface#ipnetworkinterface"
SSH_KEY = "http://schemas.ogf.org/occi/infrastructure/credentials#ssh_key"
USER_DATA = "http://schemas.ogf.org/occi/infrastructure/compute#user_data"
COMPUTE_ACTION = "http://schemas.ogf.org/occi/infrastructure/compute/action#"
NETWORK_ACTION = "http://schemas.ogf.org/occi/infrastructure/network/action#"
STORAGE_ACTION = "http://schemas.ogf.org/occi/infrastructure/storage/action#"
DEBIAN = "http://occipy.org/occi/os_tpl#debian-12"
# D-STRICT-TERMS: provider names become strict terms (model.category.strict_term)
UBUNTU = "http://occipy.org/occi/os_tpl#ubuntu-24_04-84f82563"
ALPINE = "http://occipy.org/occi/os_tpl#alpine-3_20-804658e2"
CRTP = "http://schemas.ogf.org/occi/infrastructure/compute/template/1.1#"
SMALL, MEDIUM, LARGE = CRTP + "small", CRTP + "medium", CRTP + "large"
TINY, XLARGE = "http://occipy.org/occi/resource_tpl#tiny", "http://occipy.org/occi/resource_tpl#xlarge"

# --- media types ------------------------------------------------------------------------------
PLAIN, OCCI, OCCI_PLAIN = "text/plain", "text/occi", "text/occi+plain"
JSON, URI_LIST = "application/occi+json", "text/uri-list"
TEXT_MEDIA = (PLAIN, OCCI)
ALL_MEDIA = (PLAIN, OCCI, JSON)
FIELD_NAMES = ("Category", "Link", "X-OCCI-Attribute", "X-OCCI-Location")


def split_type_id(type_id: str) -> tuple[str, str]:
    """(scheme, term): cut after the last '#' (core.md §2.2)."""
    scheme, _, term = type_id.rpartition("#")
    return scheme + "#", term


def media_type(response: httpx.Response) -> str:
    return str(response.headers.get("content-type", "")).split(";")[0].strip().lower()


# --- text rendering: writing -----------------------------------------------------------------
def quote(value: str) -> str:
    """quoted-string; CR, LF, TAB cannot appear raw and are written \\r \\n \\t (text-rendering.md §3)."""
    value = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + value.replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t") + '"'


def render_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | dict):
        return quote(json.dumps(value, separators=(",", ":")))
    return quote(str(value))


def category_value(type_id: str, cls: str, **params: str) -> str:
    scheme, term = split_type_id(type_id)
    text = f'{term}; scheme="{scheme}"; class="{cls}"'
    for name, value in params.items():
        text += f"; {name}={quote(value)}"
    return text


def attribute_value(name: str, value: Any) -> str:
    return f"{name}={render_value(value)}"


def link_value(target: str, rel: str, category: str, attributes: Mapping[str, Any] | None = None) -> str:
    text = f'<{target}>; rel="{rel}"; category="{category}"'
    for name, value in (attributes or {}).items():
        text += f"; {name}={render_value(value)}"
    return text


@dataclass
class TextMessage:
    """OCCI text fields in request order, carried as a body (text/plain) or as headers (text/occi)."""

    fields: list[tuple[str, str]] = field(default_factory=list)

    def add(self, name: str, value: str) -> TextMessage:
        self.fields.append((name, value))
        return self

    def encode(self, media: str, *, joined: bool = True) -> tuple[dict[str, str] | list[tuple[str, str]], bytes]:
        """(headers, body). text/occi joins repeated fields with ', ' unless `joined` is False."""
        if media == OCCI:
            if not joined:
                return [("Content-Type", OCCI), *self.fields], b""
            merged: dict[str, list[str]] = {}
            for name, value in self.fields:
                merged.setdefault(name, []).append(value)
            headers = {name: ", ".join(values) for name, values in merged.items()}
            headers["Content-Type"] = OCCI
            return headers, b""
        body = "".join(f"{name}: {value}\r\n" for name, value in self.fields)
        return {"Content-Type": media}, body.encode("utf-8")


def entity_message(kind: str | None, *, mixins: Sequence[str] = (), attributes: Mapping[str, Any] | None = None,
                   links: Sequence[str] = ()) -> TextMessage:
    message = TextMessage()
    if kind:
        message.add("Category", category_value(kind, "kind"))
    for mixin in mixins:
        message.add("Category", category_value(mixin, "mixin"))
    for link in links:
        message.add("Link", link)
    for name, value in (attributes or {}).items():
        message.add("X-OCCI-Attribute", attribute_value(name, value))
    return message


def entity_json(kind: str | None, *, mixins: Sequence[str] = (), attributes: Mapping[str, Any] | None = None,
                **members: Any) -> dict[str, Any]:
    document: dict[str, Any] = {}
    if kind:
        document["kind"] = kind
    if mixins:
        document["mixins"] = list(mixins)
    if attributes:
        document["attributes"] = dict(attributes)
    document.update(members)
    return document


# --- text rendering: reading -----------------------------------------------------------------
def split_outside_quotes(text: str, sep: str) -> list[str]:
    """Split on `sep` outside quoted-strings and outside a leading `<...>` (text-rendering.md §3)."""
    out: list[str] = []
    buf: list[str] = []
    in_quote = escaped = in_angle = False
    for ch in text:
        if in_quote:
            buf.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_quote = False
        elif ch == '"':
            in_quote = True
            buf.append(ch)
        elif ch == "<" and not "".join(buf).strip():
            in_angle = True
            buf.append(ch)
        elif ch == ">" and in_angle:
            in_angle = False
            buf.append(ch)
        elif ch == sep and not in_angle:
            out.append("".join(buf).strip())
            buf = []
        else:
            buf.append(ch)
    assert not in_quote, f"unterminated quoted-string in {text!r}"
    out.append("".join(buf).strip())
    return [part for part in out if part]


def unquote(value: str) -> str:
    body = value[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            out.append({"n": "\n", "r": "\r", "t": "\t"}.get(body[i + 1], body[i + 1]))
            i += 2
        else:
            out.append(body[i])
            i += 1
    return "".join(out)


NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def parse_value(raw: str) -> Any:
    raw = raw.strip()
    if raw.startswith('"'):
        return unquote(raw)
    if raw in ("true", "false"):
        return raw == "true"
    if NUMBER.match(raw):
        return float(raw) if "." in raw else int(raw)
    return raw


def parse_params(parts: Iterable[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for part in parts:
        name, eq, value = part.partition("=")
        assert eq, f"parameter without '=': {part!r}"
        params[name.strip()] = parse_value(value)
    return params


@dataclass
class CategoryRendering:
    term: str
    params: dict[str, Any]
    raw: str

    @property
    def scheme(self) -> str:
        return str(self.params.get("scheme", ""))

    @property
    def cls(self) -> str:
        return str(self.params.get("class", ""))

    @property
    def type_id(self) -> str:
        return self.scheme + self.term

    def attribute_flags(self) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for match in re.finditer(r"([^\s{}]+)(\{([^}]*)\})?", str(self.params.get("attributes", ""))):
            found[match.group(1)] = set((match.group(3) or "").split())
        return found


@dataclass
class LinkRendering:
    target: str
    params: dict[str, Any]
    raw: str

    @property
    def rel(self) -> str:
        return str(self.params.get("rel", ""))

    @property
    def is_action(self) -> bool:
        return "?action=" in self.target

    @property
    def categories(self) -> list[str]:
        return str(self.params.get("category", "")).split()

    @property
    def attributes(self) -> dict[str, Any]:
        return {k: v for k, v in self.params.items() if k not in ("rel", "self", "category")}


def parse_category(value: str) -> CategoryRendering:
    parts = split_outside_quotes(value, ";")
    return CategoryRendering(parts[0].strip(), parse_params(parts[1:]), value)


def parse_link(value: str) -> LinkRendering:
    parts = split_outside_quotes(value, ";")
    head = parts[0].strip()
    assert head.startswith("<") and head.endswith(">"), f"Link without <URI>: {value!r}"
    return LinkRendering(head[1:-1], parse_params(parts[1:]), value)


def parse_attribute(value: str) -> tuple[str, Any]:
    name, eq, raw = value.partition("=")
    assert eq, f"X-OCCI-Attribute without '=': {value!r}"
    return name.strip(), parse_value(raw)


def text_fields(response: httpx.Response) -> list[tuple[str, str]]:
    """OCCI fields of a text/plain body or text/occi headers, comma-joined values split."""
    out: list[tuple[str, str]] = []
    if media_type(response) == OCCI:
        for name in FIELD_NAMES:
            for value in response.headers.get_list(name):
                out.extend((name, part) for part in split_outside_quotes(value, ","))
        return out
    for line in response.text.splitlines():
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        assert colon, f"text/plain line without a field name: {line!r}"
        canonical = next((n for n in FIELD_NAMES if n.lower() == name.strip().lower()), None)
        assert canonical is not None, f"not an OCCI field: {line!r}"
        out.extend((canonical, part) for part in split_outside_quotes(value.strip(), ","))
    return out


def text_categories(response: httpx.Response) -> list[CategoryRendering]:
    return [parse_category(v) for n, v in text_fields(response) if n == "Category"]


def text_locations(response: httpx.Response) -> list[str]:
    if media_type(response) == URI_LIST:
        return [line.strip() for line in response.text.splitlines() if line.strip() and not line.startswith("#")]
    return [v for n, v in text_fields(response) if n == "X-OCCI-Location"]


# --- a media-independent view of an entity ------------------------------------------------------
@dataclass
class View:
    """What a client learns from an entity rendering, whatever the media type."""

    kind: str
    mixins: list[str]
    attributes: dict[str, Any]
    actions: list[str]
    links: list[dict[str, Any]]  # each: target, kind (link Kind), mixins, attributes, location (text only)
    raw: httpx.Response

    @property
    def state(self) -> Any:
        term = self.kind.rpartition("#")[2]
        return self.attributes.get(f"occi.{term}.state")


def view_of(response: httpx.Response) -> View:
    assert response.status_code == 200, (response.status_code, response.text)
    if media_type(response) in (JSON, "application/json"):
        doc = response.json()
        attributes = dict(doc.get("attributes", {}))
        for member, name in (("id", "occi.core.id"), ("title", "occi.core.title"), ("summary", "occi.core.summary")):
            if member in doc:
                attributes.setdefault(name, doc[member])
        links = []
        for link in doc.get("links", []):
            links.append({"target": link["target"]["location"], "kind": link["kind"],
                          "mixins": link.get("mixins", []), "attributes": link.get("attributes", {}),
                          "location": None})
        return View(doc["kind"], list(doc.get("mixins", [])), attributes, list(doc.get("actions", [])), links,
                    response)
    categories = text_categories(response)
    kinds = [c.type_id for c in categories if c.cls == "kind"]
    assert len(kinds) == 1, f"expected one Kind category, got {kinds}"
    attributes = dict(parse_attribute(v) for n, v in text_fields(response) if n == "X-OCCI-Attribute")
    actions: list[str] = []
    links = []
    for name, value in text_fields(response):
        if name != "Link":
            continue
        link = parse_link(value)
        if link.is_action:
            actions.append(link.rel)
        else:
            cats = link.categories
            links.append({"target": link.target, "kind": cats[0] if cats else None, "mixins": cats[1:],
                          "attributes": link.attributes, "location": link.params.get("self")})
    mixins = [c.type_id for c in categories if c.cls == "mixin"]
    return View(kinds[0], mixins, attributes, actions, links, response)


# --- the client -------------------------------------------------------------------------------
def path_of(url: str) -> str:
    return httpx.URL(url).path if "://" in url else url


class Occi:
    """Plain HTTP requests to one live server, with the few conveniences every checklist test needs."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=20)

    def close(self) -> None:
        self.http.close()

    # raw requests
    def request(self, method: str, path: str, *, media: str | None = None, accept: str | None = None,
                message: TextMessage | None = None, document: Any = None, headers: Mapping[str, str] | None = None,
                content: bytes | str | None = None, joined: bool = True,
                params: Mapping[str, str] | None = None) -> httpx.Response:
        """One request. The payload is a TextMessage (sent as `media`), a JSON document, or raw content."""
        hdrs: list[tuple[str, str]] = []
        body: bytes | str | None = content
        if message is not None:
            encoded, body = message.encode(media or PLAIN, joined=joined)
            hdrs.extend(encoded.items() if isinstance(encoded, dict) else encoded)
        elif document is not None:
            body = json.dumps(document)
            hdrs.append(("Content-Type", media or JSON))
        elif media is not None and content is not None:
            hdrs.append(("Content-Type", media))
        default = media or (JSON if document is not None else PLAIN)
        hdrs.append(("Accept", accept if accept is not None else default))
        for name, value in (headers or {}).items():
            hdrs = [(n, v) for n, v in hdrs if n.lower() != name.lower()]
            hdrs.append((name, value))
        return self.http.request(method, path_of(path), headers=hdrs, content=body, params=params)

    def get(self, path: str, accept: str = PLAIN, **kw: Any) -> httpx.Response:
        return self.request("GET", path, accept=accept, **kw)

    # discovery (JSON, the complete form)
    @cached_property
    def model(self) -> Model:
        return self.discover()

    def discover(self) -> Model:
        response = self.get("/-/", accept=JSON)
        assert response.status_code == 200, response.text
        return Model(response.json())

    def location_of(self, type_id: str) -> str:
        return str(self.discover().category(type_id)["location"])

    # entities
    def create_response(self, kind: str, media: str = JSON, *, mixins: Sequence[str] = (),
                        attributes: Mapping[str, Any] | None = None, links: Sequence[str] = (),
                        json_links: Sequence[dict[str, Any]] = (), at: str | None = None,
                        **members: Any) -> httpx.Response:
        target = at or self.model.category(kind)["location"]
        if media in (JSON, "application/json"):
            doc = entity_json(kind, mixins=mixins, attributes=attributes, **members)
            if json_links:
                doc["links"] = list(json_links)
            return self.request("POST", target, media=media, document=doc)
        return self.request("POST", target, media=media,
                            message=entity_message(kind, mixins=mixins, attributes=attributes, links=links))

    def create(self, kind: str, media: str = JSON, **kw: Any) -> str:
        """Create an entity and return its absolute location."""
        response = self.create_response(kind, media, **kw)
        assert response.status_code == 201, (response.status_code, response.text)
        return response.headers["location"]

    def compute(self, **kw: Any) -> str:
        return self.create(COMPUTE, **kw)

    def storage(self, size: float = 1.0, **kw: Any) -> str:
        attributes = {"occi.storage.size": size, **kw.pop("attributes", {})}
        return self.create(STORAGE, attributes=attributes, **kw)

    def network(self, **kw: Any) -> str:
        return self.create(NETWORK, **kw)

    def link(self, kind: str, source: str, target: str, media: str = JSON,
             attributes: Mapping[str, Any] | None = None, **kw: Any) -> str:
        attrs = {"occi.core.source": source, "occi.core.target": target, **(attributes or {})}
        return self.create(kind, media, attributes=attrs, **kw)

    def view(self, location: str, media: str = JSON) -> View:
        return view_of(self.get(location, accept=media))

    def act(self, location: str, term: str, media: str = JSON, scheme: str | None = None,
            attributes: Mapping[str, Any] | None = None) -> httpx.Response:
        if scheme is None:
            scheme = {"compute": COMPUTE_ACTION, "network": NETWORK_ACTION, "storage": STORAGE_ACTION}[
                path_of(location).strip("/").split("/")[0]]
        return self.invoke(location, scheme + term, media=media, attributes=attributes)

    def invoke(self, location: str, action: str, media: str = JSON,
               attributes: Mapping[str, Any] | None = None) -> httpx.Response:
        term = action.rpartition("#")[2]
        if media in (JSON, "application/json"):
            doc: dict[str, Any] = {"action": action}
            if attributes:
                doc["attributes"] = dict(attributes)
            return self.request("POST", location, media=media, document=doc, params={"action": term})
        message = TextMessage().add("Category", category_value(action, "action"))
        for name, value in (attributes or {}).items():
            message.add("X-OCCI-Attribute", attribute_value(name, value))
        return self.request("POST", location, media=media, message=message, params={"action": term})

    def locations(self, path: str, accept: str = PLAIN, **kw: Any) -> list[str]:
        response = self.get(path, accept=accept, **kw)
        assert response.status_code == 200, (response.status_code, response.text)
        if accept == JSON:
            doc = response.json()
            return [self.url + self.location_from_json(e) for e in doc.get("resources", []) + doc.get("links", [])]
        return text_locations(response)

    def location_from_json(self, entity: Mapping[str, Any]) -> str:
        """The path of an entity rendered in JSON: `<kind location><id tail>` (core.md §4.2)."""
        ident = str(entity["id"])
        tail = ident.removeprefix("urn:uuid:")
        return str(self.model.category(entity["kind"])["location"]) + tail

    def delete(self, location: str) -> httpx.Response:
        return self.request("DELETE", location)

    # user mixins
    def user_mixin(self, term: str | None = None, *, location: str | None = None, rel: str | None = None,
                   scheme: str = "http://example.com/occi/tests#") -> str:
        term = term or "t" + uuid.uuid4().hex[:10]
        params = {"location": location or f"/tests/{term}/"}
        if rel:
            params["rel"] = rel
        message = TextMessage().add("Category", category_value(scheme + term, "mixin", **params))
        response = self.request("POST", "/-/", media=PLAIN, message=message)
        assert response.status_code == 200, (response.status_code, response.text)
        self.__dict__.pop("model", None)
        return scheme + term

    def associate(self, mixin_location: str, *locations: str, method: str = "POST",
                  media: str = PLAIN) -> httpx.Response:
        message = TextMessage()
        for location in locations:
            message.add("X-OCCI-Location", location)
        return self.request(method, mixin_location, media=media, message=message)

    def wait_state(self, location: str, wanted: str, timeout: float = 10.0) -> View:
        import time

        deadline = time.monotonic() + timeout
        while True:
            current = self.view(location)
            if current.state == wanted or time.monotonic() > deadline:
                return current
            time.sleep(0.05)


class Model:
    """The JSON query interface, indexed by type identifier."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document
        self.by_id: dict[str, dict[str, Any]] = {}
        self.cls: dict[str, str] = {}
        for key, cls in (("kinds", "kind"), ("mixins", "mixin"), ("actions", "action")):
            for category in document.get(key, []):
                type_id = category["scheme"] + category["term"]
                self.by_id[type_id] = category
                self.cls[type_id] = cls

    def category(self, type_id: str) -> dict[str, Any]:
        assert type_id in self.by_id, f"{type_id} is not in the query interface"
        return self.by_id[type_id]

    @property
    def kinds(self) -> list[dict[str, Any]]:
        return list(self.document.get("kinds", []))

    @property
    def mixins(self) -> list[dict[str, Any]]:
        return list(self.document.get("mixins", []))

    @property
    def actions(self) -> list[dict[str, Any]]:
        return list(self.document.get("actions", []))

    def children_of(self, parent_mixin: str) -> list[dict[str, Any]]:
        return [m for m in self.mixins if parent_mixin in m.get("depends", [])]


def validate(instance: Any, definition: str) -> None:
    """Validate against one definition of occi-1.2.schema.json (GFD.226 Appendix B, errata fixed)."""
    schema = {"$ref": f"#/definitions/{definition}", "definitions": SCHEMA["definitions"]}
    jsonschema.Draft4Validator(schema).validate(instance)


# --- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def occi(live_server: LiveServer) -> Iterator[Occi]:  # noqa: F811
    client = Occi(live_server.url)
    yield client
    client.close()


@pytest.fixture
def fresh(fresh_server: LiveServer) -> Iterator[Occi]:  # noqa: F811
    client = Occi(fresh_server.url)
    yield client
    client.close()


# --- more reading helpers ---------------------------------------------------------------------
def discovered(response: httpx.Response) -> dict[str, str]:
    """type id -> class of every category in a query-interface response (any media type)."""
    assert response.status_code == 200, (response.status_code, response.text)
    if media_type(response) in (JSON, "application/json"):
        return dict(Model(response.json()).cls)
    return {c.type_id: c.cls for c in text_categories(response)}


def echo_message(current: View, *, links: bool = False, **changes: Any) -> TextMessage:
    """The full rendering of `current` as a request (GET-modify-PUT), with attribute `changes`."""
    attributes = {**current.attributes, **changes}
    message = entity_message(current.kind, mixins=current.mixins, attributes=attributes)
    if links:
        for name, value in text_fields(current.raw):
            if name == "Link":
                message.add("Link", value)
    return message


def echo_json(current: View, **changes: Any) -> dict[str, Any]:
    return entity_json(current.kind, mixins=current.mixins, attributes={**current.attributes, **changes})


def send_entity(occi: Occi, method: str, location: str, media: str, kind: str | None, *,
                mixins: Sequence[str] = (), attributes: Mapping[str, Any] | None = None) -> httpx.Response:
    """PUT/POST an entity rendering in any media type."""
    if media in (JSON, "application/json"):
        return occi.request(method, location, media=media,
                            document=entity_json(kind, mixins=mixins, attributes=attributes))
    return occi.request(method, location, media=media,
                        message=entity_message(kind, mixins=mixins, attributes=attributes))


def define_mixin(occi: Occi, media: str, type_id: str, location: str, rel: str | None = None,
                 method: str = "POST") -> httpx.Response:
    """POST (or DELETE) a user mixin definition on /-/ in any media type."""
    scheme, term = split_type_id(type_id)
    if media in (JSON, "application/json"):
        mixin: dict[str, Any] = {"term": term, "scheme": scheme, "location": location}
        if rel:
            mixin["depends"] = [rel]
        return occi.request(method, "/-/", media=media, document={"mixins": [mixin]})
    params = {"location": location}
    if rel:
        params["rel"] = rel
    return occi.request(method, "/-/", media=media,
                        message=TextMessage().add("Category", category_value(type_id, "mixin", **params)))
