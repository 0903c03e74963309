"""Generated ids: operation ids are UUIDs of version 7 (RFC 9562 §5.7), ordered by their creation
time (D-UUID7); entity ids stay random UUIDs of version 4 (core.md §4.1).

A version-7 UUID is the Unix time in milliseconds (48 bits), the version, 12 random bits, the
variant and 62 random bits (74 random bits in all, against uuid4's 122: still unguessable, and
unique without coordination). Ids made one after the other sort next to each other, so a new
operation record goes to the end of the unique index of operation ids instead of to a random page
of it. Python 3.14's `uuid.uuid7` is the same layout.

The random bits (and those of request ids) come from `os.urandom`, read 4 KiB at a time
(`random_bytes`): one `getrandom` call per 256 ids instead of one per id. With the text made
without a `uuid.UUID` object, `uuid4_text()` took 0.86 µs here against 2.6 µs for
`str(uuid.uuid4())`, and `uuid7_text()` 1.1 µs (`bench/probes/value_costs.py`). A forked child starts with an empty pool, so two
workers never hand out the same bytes. Imports only the standard library.
"""

from __future__ import annotations

import os
import time

_POOL_SIZE = 4096
_pool = b""
_used = 0


def _empty_pool() -> None:
    global _pool, _used
    _pool, _used = b"", 0


os.register_at_fork(after_in_child=_empty_pool)


def random_bytes(n: int) -> bytes:
    """`n` bytes from the operating system's CSPRNG, as `os.urandom(n)` gives them, read ahead."""
    global _pool, _used
    end = _used + n
    if end > len(_pool):
        _pool, _used, end = os.urandom(max(_POOL_SIZE, n)), 0, n
    chunk = _pool[_used:end]
    _used = end
    return chunk


def _text(raw: bytearray) -> str:
    """16 bytes as a UUID's 36-character text, after setting the RFC 9562 variant bits."""
    raw[8] = raw[8] & 0x3F | 0x80
    hexed = raw.hex()
    return f"{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:]}"


def uuid4_text() -> str:
    """A new random (version 4) UUID, as `str(uuid.uuid4())`."""
    raw = bytearray(random_bytes(16))
    raw[6] = raw[6] & 0x0F | 0x40
    return _text(raw)


def uuid7_text() -> str:
    """A new version-7 UUID for the current time."""
    raw = bytearray((time.time_ns() // 1_000_000 & 0xFFFF_FFFF_FFFF).to_bytes(6, "big"))
    raw += random_bytes(10)
    raw[6] = raw[6] & 0x0F | 0x70
    return _text(raw)
