"""What making one request-path value costs: an `Entity` (a frozen msgspec Struct) against the same
ten fields as a frozen slotted dataclass (what it was before D-STRUCTS), and the ids a create makes
(`model.ids` against `str(uuid.uuid4())`). Nanoseconds per call, best of five timeit runs.

    .venv/bin/python bench/probes/value_costs.py
"""

from __future__ import annotations

import json
import timeit
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from occipy.model.entity import Entity
from occipy.model.ids import random_bytes, uuid4_text, uuid7_text


@dataclass(frozen=True, slots=True)
class FrozenEntity:
    """Entity's fields as the frozen dataclass it was."""

    kind: str
    entity_id: str
    location: str
    mixins: tuple[str, ...] = ()
    attributes: Mapping[str, Any] = field(default_factory=dict)
    tenant: str = "default"
    owner: str = "anonymous"
    backend_id: str | None = None
    links: tuple[Any, ...] = ()
    actions: tuple[str, ...] = ()


def ns(call: Callable[[], object], number: int = 200_000) -> float:
    return round(min(timeit.repeat(call, number=number, repeat=5)) / number * 1e9)


ARGS: tuple[Any, ...] = ("kind", "urn:uuid:x", "/compute/x", (), {}, "default", "anonymous", None, (), ())

if __name__ == "__main__":
    print(json.dumps({
        "Entity (frozen Struct)": ns(lambda: Entity(*ARGS)),
        "the same fields, frozen dataclass": ns(lambda: FrozenEntity(*ARGS)),
        "str(uuid.uuid4())": ns(lambda: str(uuid.uuid4())),
        "uuid4_text()": ns(uuid4_text),
        "uuid7_text()": ns(uuid7_text),
        "request id: random_bytes(16).hex()": ns(lambda: random_bytes(16).hex()),
    }, indent=1))
