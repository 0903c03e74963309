"""D-UUID7: operation ids are RFC 9562 version-7 UUIDs, in the order they were made."""

from __future__ import annotations

import time
import uuid

from occipy.model.ids import uuid7


def test_a_uuid7_has_the_layout_of_rfc_9562() -> None:
    before = time.time_ns() // 1_000_000
    made = uuid7()
    after = time.time_ns() // 1_000_000
    assert made.version == 7 and made.variant == uuid.RFC_4122
    assert before <= made.int >> 80 <= after  # the first 48 bits: Unix time in milliseconds
    assert uuid.UUID(str(made)) == made


def test_uuid7s_are_unique_and_sort_in_the_order_of_their_milliseconds() -> None:
    made = [uuid7() for _ in range(20_000)]
    assert len(set(made)) == len(made)
    stamps = [u.int >> 80 for u in made]
    assert stamps == sorted(stamps)
    # Apart from the version and variant bits, 74 bits are random: they differ within one millisecond.
    assert len({u.int & ((1 << 62) - 1) for u in made}) == len(made)
    time.sleep(0.002)
    assert str(uuid7()) > str(made[-1])  # as text too: a later id sorts after (the index order)
