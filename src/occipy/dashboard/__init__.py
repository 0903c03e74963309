"""The web dashboard's static files (ES modules, CSS, HTML) shipped in the package, and where they are.

`asset(name)` gives the bytes and media type of one file under `static/`, or None; names are
checked so that nothing outside `static/` can be named. The files are read once and kept (they
are small). Imports only the standard library; `http/app.py` serves them at /dashboard/.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Final

# Explicit media types: the platform's mimetypes table may not know .mjs or may call JS
# application/x-javascript, and module scripts need a JavaScript type (HTML Living Standard).
MEDIA_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
}
INDEX: Final = "index.html"
# Path segments: letters, digits, '-', '_', '.', not starting with a dot ('..', hidden files).
_NAME_RE: Final = re.compile(r"(?:[A-Za-z0-9_-][A-Za-z0-9._-]*/)*[A-Za-z0-9_-][A-Za-z0-9._-]*\Z")


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


@lru_cache(maxsize=256)
def asset(name: str) -> Asset | None:
    """The file `static/<name>` ('' is the index page), or None when there is none or the name is bad."""
    name = name or INDEX
    if not _NAME_RE.match(name):
        return None
    suffix = name[name.rfind("."):] if "." in name else ""
    media_type = MEDIA_TYPES.get(suffix)
    if media_type is None:
        return None
    node = resources.files(__package__).joinpath("static", *name.split("/"))
    if not node.is_file():
        return None
    body = node.read_bytes()
    return Asset(body=body, media_type=media_type, etag='"' + hashlib.sha256(body).hexdigest()[:32] + '"')


def names() -> list[str]:
    """Every file the dashboard ships (relative to static/), for tests and packaging checks."""
    root = resources.files(__package__).joinpath("static")
    found: list[str] = []

    def walk(node: Traversable, prefix: str) -> None:
        for child in node.iterdir():
            if child.is_dir():
                walk(child, f"{prefix}{child.name}/")
            elif child.is_file():
                found.append(prefix + child.name)

    walk(root, "")
    return sorted(found)
