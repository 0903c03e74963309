"""text/uri-list (RFC 2483), the third text rendering of GFD.229 §8: listings only.

One URI per line, CRLF-separated; lines starting with '#' are comments. Imports only
`occipy.errors` and the grammar helpers; no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from occipy.errors import ParseError
from occipy.rendering._abnf import is_absolute_uri


def render(urls: Sequence[str]) -> bytes:
    """One URI per line, CRLF-terminated, UTF-8 (RFC 2483 §5)."""
    for url in urls:
        if "\r" in url or "\n" in url:
            raise ValueError(f"a URI cannot contain a line break: {url[:200]!r}")
    return "".join(f"{url}\r\n" for url in urls).encode("utf-8")


def parse(body: bytes) -> list[str]:
    """The URIs of a text/uri-list body; comment and blank lines skipped.

    RFC 2483 §5: "The remaining non-comment lines shall be URIs" - absolute ones, so a bare path
    is a ParseError (the pOCCI fixture uri-invalid-uri.txt is rejected for exactly this).
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(f"text/uri-list body is not valid UTF-8: {exc.reason} at byte {exc.start}") from None
    urls: list[str] = []
    for raw in text.removeprefix("\ufeff").split("\n"):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not is_absolute_uri(line):
            raise ParseError(f"text/uri-list: not an absolute URI: {line[:200]!r}")
        urls.append(line)
    return urls


__all__ = ["parse", "render"]
