"""The OCCI 1.1 storage actions backup, snapshot and resize (docs/decisions.md D-LEGACY-STORAGE).

Served on the storage kind with their 1.1 identifiers, allowed in `online` and `offline`, changing
no state: `resize` is the update of `occi.storage.size` (same checks, same 501), `backup` and
`snapshot` run on a cloud that can (the simulated one records them), else 501 naming the cloud.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import pytest

from occipy.backends.base import COMPUTE, STORAGE, Ref, Support
from occipy.backends.simulated import SUPPORTS, SimulatedDriver
from occipy.store.memory import MemoryStore
from tests.unit.service.conftest import STORAGE_KIND, Harness, running

STORAGE_ACTION = "http://schemas.ogf.org/occi/infrastructure/storage/action#"
LEGACY = ("backup", "snapshot", "resize")


class _PlainVolumes(SimulatedDriver):
    """A cloud whose volumes only go online and offline: no backup, snapshot or resize."""

    name = "plain"
    supports: Mapping[str, Support] = {**SUPPORTS, STORAGE: Support(actions=frozenset({"online", "offline"}))}


class _NoVolumes(SimulatedDriver):
    """A cloud without volumes: storage entities are only stored."""

    name = "novolumes"
    supports: Mapping[str, Support] = {resource: support for resource, support in SUPPORTS.items()
                                       if resource not in (STORAGE, "storagelink")}


@pytest.fixture
async def plain() -> AsyncIterator[Harness]:
    async with running(MemoryStore(), _PlainVolumes(delay=0, seed=1)) as harness:
        yield harness


@pytest.fixture
async def novolumes() -> AsyncIterator[Harness]:
    async with running(MemoryStore(), _NoVolumes(delay=0, seed=1)) as harness:
        yield harness


async def _storage(harness: Harness, size: float = 2.0) -> str:
    answer = await harness.text("POST", "/storage/", STORAGE_KIND, f"X-OCCI-Attribute: occi.storage.size={size}")
    assert answer.status == 201, answer.text
    return answer.location


async def _act(harness: Harness, location: str, term: str, **attributes: float) -> tuple[int, dict[str, object]]:
    document: dict[str, object] = {"action": STORAGE_ACTION + term}
    if attributes:
        document["attributes"] = attributes
    answer = await harness.json("POST", f"{location}?action={term}", document)
    body = answer.json()
    assert isinstance(body, dict)
    return answer.status, body


async def _backend(harness: Harness, location: str) -> Ref:
    entity = await harness.service.store.get(location)
    assert entity is not None and entity.backend_id is not None
    return Ref(STORAGE, entity.backend_id)


async def test_discovery_lists_the_legacy_actions_with_their_1_1_identifiers(harness: Harness) -> None:
    discovery = await harness.get_json("/-/")
    [storage] = [k for k in discovery["kinds"] if k["term"] == "storage"]
    assert storage["actions"] == [STORAGE_ACTION + t for t in ("online", "offline", *LEGACY)]
    actions = {a["term"]: a for a in discovery["actions"] if a["scheme"] == STORAGE_ACTION}
    assert set(actions) == {"online", "offline", *LEGACY}
    assert set(actions["resize"]["attributes"]) == {"size"}
    assert actions["resize"]["attributes"]["size"]["required"] is True


async def test_the_actions_are_rendered_in_online_and_offline(harness: Harness) -> None:
    storage = await _storage(harness)
    assert (await harness.get_json(storage))["actions"] == [STORAGE_ACTION + t for t in ("offline", *LEGACY)]
    assert (await _act(harness, storage, "offline"))[0] == 200
    assert (await harness.get_json(storage))["actions"] == [STORAGE_ACTION + t for t in ("online", *LEGACY)]


async def test_resize_is_the_update_of_the_size(harness: Harness) -> None:
    storage = await _storage(harness, 2.0)
    status, body = await _act(harness, storage, "resize", size=5.0)
    assert status == 200, body
    attributes = body["attributes"]
    assert isinstance(attributes, dict)
    assert (attributes["occi.storage.size"], attributes["occi.storage.state"]) == (5.0, "online")
    observed = await harness.driver.observe(await _backend(harness, storage))
    assert observed is not None and observed.facts.size_gib == 5.0  # type: ignore[attr-defined]
    # checked as the update is: a size out of range is a 400 naming the attribute, nothing changes
    status, body = await _act(harness, storage, "resize", size=-1.0)
    assert status == 400 and "occi.storage.size" in str(body["message"])
    # offline too, and the state stays
    assert (await _act(harness, storage, "offline"))[0] == 200
    status, body = await _act(harness, storage, "resize", size=8.0)
    assert status == 200
    assert isinstance(body["attributes"], dict)
    assert (body["attributes"]["occi.storage.size"], body["attributes"]["occi.storage.state"]) == (8.0, "offline")


async def test_resize_without_size_is_400(harness: Harness) -> None:
    storage = await _storage(harness)
    status, _ = await _act(harness, storage, "resize")
    assert status == 400
    assert (await harness.get_json(storage))["attributes"]["occi.storage.size"] == 2.0


@pytest.mark.parametrize("term", ["backup", "snapshot"])
async def test_backup_and_snapshot_run_on_the_simulated_cloud(harness: Harness, term: str) -> None:
    storage = await _storage(harness)
    status, body = await _act(harness, storage, term)
    assert status == 200, body
    assert isinstance(body["attributes"], dict) and body["attributes"]["occi.storage.state"] == "online"
    assert harness.driver.volume_copies == [((await _backend(harness, storage)).backend_id, term)]


async def test_a_collection_backup_runs_on_every_volume(harness: Harness) -> None:
    volumes = [await _storage(harness) for _ in range(2)]
    answer = await harness.json("POST", "/storage/?action=backup", {"action": STORAGE_ACTION + "backup"})
    assert answer.status == 200, answer.text
    ids = sorted([(await _backend(harness, v)).backend_id for v in volumes])
    assert sorted(backend for backend, _ in harness.driver.volume_copies) == ids


async def test_a_cloud_without_them_answers_501_naming_the_cloud_and_the_action(plain: Harness) -> None:
    storage = await _storage(plain)
    assert (await plain.get_json(storage))["actions"] == [STORAGE_ACTION + "offline"]
    for term in ("backup", "snapshot"):
        status, body = await _act(plain, storage, term)
        assert status == 501
        assert "plain" in str(body["message"]) and term in str(body["message"])
    # resize gives the 501 an update of the size gives
    status, body = await _act(plain, storage, "resize", size=5.0)
    update = await plain.json("POST", storage, {"kind": "http://schemas.ogf.org/occi/infrastructure#storage",
                                                "attributes": {"occi.storage.size": 5.0}})
    assert (status, body["message"]) == (update.status, update.json()["message"]) == (501, body["message"])
    assert "plain" in str(body["message"])
    assert not plain.driver.volume_copies
    document = await plain.get_json(storage)
    assert (document["attributes"]["occi.storage.size"], document["attributes"]["occi.storage.state"]) == (2.0, "online")


async def test_without_a_cloud_object_backup_is_501_never_a_success(novolumes: Harness) -> None:
    storage = await _storage(novolumes)
    for term in ("backup", "snapshot"):
        status, body = await _act(novolumes, storage, term)
        assert status == 501, body
    # resize only stores the new size, as an update does
    status, body = await _act(novolumes, storage, "resize", size=3.0)
    assert status == 200, body
    assert isinstance(body["attributes"], dict) and body["attributes"]["occi.storage.size"] == 3.0
    assert STORAGE_ACTION + "backup" not in (await novolumes.get_json(storage)).get("actions", [])
    assert COMPUTE in novolumes.driver.supports
