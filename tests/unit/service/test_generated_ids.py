"""D-UUID7: an operation's id is a version-7 UUID; a generated entity id stays uuid4 (core.md §4.1)."""

from __future__ import annotations

import uuid

from tests.unit.service.conftest import Harness


async def test_operation_ids_are_version_7_and_entity_ids_version_4(harness: Harness) -> None:
    created = await harness.create_compute()
    generated = uuid.UUID(created.rpartition("/")[2])
    assert generated.version == 4
    assert (await harness.get_json(created))["id"] == f"urn:uuid:{generated}"
    operations = []
    for term in ("stop", "start"):
        answer = await harness.json("POST", created + f"?action={term}",
                                    {"action": f"http://schemas.ogf.org/occi/infrastructure/compute/action#{term}"})
        operation = answer.header("X-OCCI-Operation")
        assert operation is not None, answer.text
        operations.append(uuid.UUID(operation.rpartition("/")[2]))
    assert [op.version for op in operations] == [7, 7]
    assert str(operations[0]) < str(operations[1]) or operations[0].int >> 80 == operations[1].int >> 80
