"""D-UUID7: operation ids are RFC 9562 version-7 UUIDs, in the order they were made; entity ids
are version-4 UUIDs; both from a pool of the OS's random bytes that a forked child does not share."""

from __future__ import annotations

import os
import time
import uuid

from occipy.model.ids import random_bytes, uuid4_text, uuid7_text


def test_a_uuid7_has_the_layout_of_rfc_9562() -> None:
    before = time.time_ns() // 1_000_000
    text = uuid7_text()
    after = time.time_ns() // 1_000_000
    made = uuid.UUID(text)
    assert made.version == 7 and made.variant == uuid.RFC_4122
    assert before <= made.int >> 80 <= after  # the first 48 bits: Unix time in milliseconds
    assert str(made) == text


def test_uuid7s_are_unique_and_sort_in_the_order_of_their_milliseconds() -> None:
    made = [uuid.UUID(uuid7_text()) for _ in range(20_000)]
    assert len(set(made)) == len(made)
    stamps = [u.int >> 80 for u in made]
    assert stamps == sorted(stamps)
    # Apart from the version and variant bits, 74 bits are random: they differ within one millisecond.
    assert len({u.int & ((1 << 62) - 1) for u in made}) == len(made)
    time.sleep(0.002)
    assert uuid7_text() > str(made[-1])  # as text too: a later id sorts after (the index order)


def test_a_uuid4_is_random_with_the_layout_of_rfc_9562() -> None:
    texts = [uuid4_text() for _ in range(20_000)]  # several refills of the pool
    assert len(set(texts)) == len(texts)
    for text in texts:
        made = uuid.UUID(text)
        assert made.version == 4 and made.variant == uuid.RFC_4122 and str(made) == text
    # Every one of the 122 random bits takes both values somewhere.
    ones = 0
    zeros = 0
    for text in texts:
        value = uuid.UUID(text).int
        ones |= value
        zeros |= ~value
    fixed = 0xF << 76 | 0x3 << 62  # version and variant
    assert (ones & zeros & ((1 << 128) - 1)) == ((1 << 128) - 1) & ~fixed


def test_a_forked_child_does_not_hand_out_the_parents_pool() -> None:
    random_bytes(16)  # the parent's pool holds bytes it has not used yet
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        os.write(write, random_bytes(64))
        os._exit(0)
    os.waitpid(child, 0)
    theirs = os.read(read, 64)
    os.close(read)
    os.close(write)
    assert theirs != random_bytes(64)
