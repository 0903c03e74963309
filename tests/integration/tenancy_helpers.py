"""Shared pieces of the tenancy suites: users in an htpasswd/groups/roles file, bodies in every rendering.

Users: alice (tenant-a, member), bob (tenant-b, member), rita (tenant-a, reader), root (ops, admin),
dora (default, member).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import httpx

from .conftest import LiveServer, start_server

INFRA = "http://schemas.ogf.org/occi/infrastructure#"
COMPUTE = INFRA + "compute"
NETWORK = INFRA + "network"
STORAGE = INFRA + "storage"
NETWORKINTERFACE = INFRA + "networkinterface"
STOP = "http://schemas.ogf.org/occi/infrastructure/compute/action#stop"
MEDIA = ("text/plain", "text/occi", "application/occi+json")
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "rita": "rita-pw", "root": "root-pw", "dora": "dora-pw"}
TENANTS = {"alice": "tenant-a", "bob": "tenant-b", "rita": "tenant-a", "root": "ops", "dora": "default"}


def htpasswd_line(user: str, password: str) -> str:
    # `htpasswd -B` writes $2y$ hashes; cost 4 keeps the test quick
    return f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode().replace('$2b$', '$2y$')}\n"


def write_identity_files(directory: Path) -> dict[str, str]:
    """The htpasswd, groups and roles files (Apache formats, docs/security.md) of the four users."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "htpasswd").write_text("".join(htpasswd_line(u, p) for u, p in PASSWORDS.items()))
    (directory / "groups").write_text("tenant-a: alice rita\ntenant-b: bob\nops: root\ndefault: dora\n")
    (directory / "roles").write_text("admin: root\nreader: rita\n")
    return {"auth": "basic", "htpasswd": str(directory / "htpasswd"), "groups": str(directory / "groups"),
            "roles": str(directory / "roles")}


def basic_server(directory: Path, **overrides: Any) -> LiveServer:
    return start_server(directory / "data", reconcile_interval=0.0, **write_identity_files(directory / "id"),
                        **overrides)


def client(server: LiveServer, user: str, **kwargs: Any) -> httpx.Client:
    return httpx.Client(base_url=server.url, auth=(user, PASSWORDS[user]), timeout=30, **kwargs)


# ---- bodies in every rendering ------------------------------------------------------------------


def _category(type_id: str, cls: str) -> str:
    scheme, _, term = type_id.partition("#")
    return f'{term}; scheme="{scheme}#"; class="{cls}"'


def _value(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str) else str(value).lower() if isinstance(value, bool) \
        else str(value)


@dataclass(frozen=True)
class Body:
    """A request body in one rendering: extra header fields and the content."""

    headers: tuple[tuple[str, str], ...]
    content: bytes

    def request(self, method: str, path: str, *, media: str, **params: Any) -> dict[str, Any]:
        headers = [("Accept", media), *self.headers]
        return {"method": method, "url": path, "headers": headers, "content": self.content, **params}


def _text(media: str, fields: Sequence[tuple[str, str]]) -> Body:
    if media == "text/occi":
        return Body((("Content-Type", "text/occi"), *fields), b"")
    content = "".join(f"{name}: {value}\n" for name, value in fields).encode()
    return Body((("Content-Type", "text/plain"),), content)


def entity_body(media: str, kind: str, attributes: Mapping[str, Any] | None = None, mixins: Sequence[str] = (),
                links: Sequence[tuple[str, str, str]] = ()) -> Body:
    """An entity rendering; `links` are (link kind, target location, target kind)."""
    attributes = dict(attributes or {})
    if media == "application/occi+json":
        document: dict[str, Any] = {"kind": kind, "attributes": attributes}
        if mixins:
            document["mixins"] = list(mixins)
        if links:
            document["links"] = [{"kind": link_kind, "target": {"location": target, "kind": target_kind}}
                                 for link_kind, target, target_kind in links]
        return Body((("Content-Type", media),), json.dumps(document).encode())
    fields = [("Category", _category(kind, "kind"))]
    fields += [("Category", _category(mixin, "mixin")) for mixin in mixins]
    fields += [("Link", f'<{target}>; rel="{target_kind}"; category="{link_kind}"') for link_kind, target, target_kind in links]
    fields += [("X-OCCI-Attribute", f"{name}={_value(value)}") for name, value in attributes.items()]
    return _text(media, fields)


def locations_body(media: str, locations: Sequence[str]) -> Body:
    """An entity collection naming entities (mixin association)."""
    if media == "application/occi+json":
        return Body((("Content-Type", media),), json.dumps(list(locations)).encode())
    return _text(media, [("X-OCCI-Location", location) for location in locations])


def action_body(media: str, action: str) -> Body:
    if media == "application/occi+json":
        return Body((("Content-Type", media),), json.dumps({"action": action}).encode())
    return _text(media, [("Category", _category(action, "action"))])


def mixin_body(media: str, scheme: str, term: str, location: str | None = None) -> Body:
    """A user mixin definition (POST /-/) or, without location, its removal (DELETE /-/)."""
    if media == "application/occi+json":
        mixin: dict[str, Any] = {"scheme": scheme, "term": term}
        if location is not None:
            mixin["location"] = location
        return Body((("Content-Type", media),), json.dumps({"mixins": [mixin]}).encode())
    value = f'{term}; scheme="{scheme}"; class="mixin"'
    if location is not None:
        value += f'; location="{location}"'
    return _text(media, [("Category", value)])


def created_location(response: httpx.Response) -> str:
    assert response.status_code == 201, response.text
    location = response.headers["location"]
    return location[location.index("/", len("http://")):]


def listed(response: httpx.Response) -> list[str]:
    """The locations (paths) of an entity collection answer in any rendering."""
    assert response.status_code == 200, response.text
    media = response.headers["content-type"]
    paths: list[str] = []
    if media.startswith("application/occi+json"):
        document = response.json()
        for key in ("resources", "links"):
            for item in document.get(key, []):
                # the JSON rendering carries ids: urn:uuid:X of a kind at /term/ is /term/X
                identifier = item.get("location") or item["id"]
                if identifier.startswith("urn:uuid:"):
                    identifier = "/" + item["kind"].rpartition("#")[2] + "/" + identifier[len("urn:uuid:"):]
                paths.append(identifier)
        return [path[path.index("/", len("http://")):] if path.startswith("http") else path for path in paths]
    if media.startswith("text/occi"):
        values = [v for k, v in response.headers.multi_items() if k.lower() == "x-occi-location"]
        values = [part.strip() for value in values for part in value.split(",")]
    else:
        values = [line.partition(":")[2].strip() for line in response.text.splitlines()
                  if line.lower().startswith("x-occi-location:")]
    return [value[value.index("/", len("http://")):] if value.startswith("http") else value for value in values]


def iterate(*groups: Sequence[str]) -> Iterator[tuple[str, ...]]:
    if not groups:
        yield ()
        return
    for first in groups[0]:
        for rest in iterate(*groups[1:]):
            yield (first, *rest)
