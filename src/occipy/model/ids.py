"""Operation ids: UUIDs of version 7 (RFC 9562 §5.7), ordered by their creation time (D-UUID7).

The first 48 bits are the Unix time in milliseconds, then the version, 12 random bits, the variant
and 62 random bits (74 random bits in all, against uuid4's 122: still unguessable, and unique
without coordination). Ids made one after the other sort next to each other, so a new operation
record goes to the end of the unique index of operation ids instead of to a random page of it.
Generated entity ids stay uuid4 (core.md §4.1). Python 3.14's `uuid.uuid7` is the same layout.
Imports only the standard library.
"""

from __future__ import annotations

import os
import time
import uuid

_RANDOM_B = (1 << 62) - 1


def uuid7() -> uuid.UUID:
    """A new version-7 UUID for the current time."""
    random = int.from_bytes(os.urandom(10), "big")  # 80 bits: 12 for rand_a, 62 for rand_b
    value = ((time.time_ns() // 1_000_000) & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 \
        | (random >> 68) << 64 | 0b10 << 62 | (random & _RANDOM_B)
    return uuid.UUID(int=value)
