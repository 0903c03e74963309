"""A large JSON collection is streamed (respond.py): piece by piece, the same document as the whole
rendering, and sent again from memory, whole, only while nothing it depends on has changed."""

from __future__ import annotations

import json
from typing import Any

from occipy.service import respond
from occipy.service.messages import OcciRequest
from tests.unit.service.conftest import BASE, Harness

JSON = "application/occi+json"


async def _get(h: Harness, path: str = "/compute/") -> tuple[bool, bytes]:
    result = await h.service.handle(OcciRequest(method="GET", path=path, headers=[("accept", JSON)], base_url=BASE))
    assert result.status == 200
    if result.stream is None:
        return False, result.body
    return True, b"".join([piece async for piece in result.stream])


def _titles(body: bytes) -> dict[str, Any]:
    return {r["id"]: r["attributes"].get("occi.core.title") for r in json.loads(body)["resources"]}


async def test_a_large_collection_streams_and_changes_are_seen_at_once(harness: Harness) -> None:
    h = harness
    count = respond.STREAM_MEMBERS + 5
    created = [await h.create_compute() for _ in range(count)]
    streamed, first = await _get(h)
    assert streamed and len(json.loads(first)["resources"]) == count
    again = await _get(h)
    # Nothing changed: the same document, sent whole from memory (with its length, unchunked).
    assert again == (False, first)
    # An update, a delete and a new entity are in the very next answer.
    answer = await h.json("POST", created[7], {"attributes": {"occi.core.title": "renamed"}})
    assert answer.status == 200, answer.text
    _, updated = await _get(h)
    titles = _titles(updated)
    assert list(titles.values()).count("renamed") == 1 and len(titles) == count
    assert (await h.call("DELETE", created[8])).status == 200
    extra = await h.create_compute()
    _, changed = await _get(h)
    ids = {r["id"].removeprefix("urn:uuid:") for r in json.loads(changed)["resources"]}
    assert len(ids) == count and extra.rpartition("/")[2] in ids and created[8].rpartition("/")[2] not in ids
    # The streamed document is the one a whole rendering gives.
    original = respond.STREAM_MEMBERS
    respond.STREAM_MEMBERS = 10 * count
    try:
        streamed, whole = await _get(h)
    finally:
        respond.STREAM_MEMBERS = original
    assert not streamed and json.loads(whole) == json.loads(changed)
