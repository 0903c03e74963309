"""A simulated cloud that several server processes share through a journal file (tests only).

The simulated driver keeps its objects in its process; the workers of a scale-out test are
several processes, so that every create and delete is also appended to one journal (a line per
call, O_APPEND writes from every process), and `inventory()` (what occipy's lost-object cleaning
asks) answers from the journal: an object made by a worker that was killed -9 is still "in the
cloud" for the others, as on a real cloud. `serve_with_journal` runs `occipy serve` with this
driver registered in `occipy.backends.DRIVERS` (the documented way to add a driver).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from occipy.backends.base import Observed, Ref, Tagged
from occipy.backends.simulated import SimulatedDriver

JOURNAL_ENV = "OCCIPY_TEST_JOURNAL"


def _append(line: str) -> None:
    fd = os.open(os.environ[JOURNAL_ENV], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def live_objects(journal: Path) -> dict[str, tuple[str, str, int]]:
    """backend id -> (resource, entity id, times created) of every object not deleted."""
    live: dict[str, tuple[str, str, int]] = {}
    created: dict[str, int] = {}
    if not journal.exists():
        return live
    for line in journal.read_text().splitlines():
        verb, resource, backend_id, *rest = line.split(" ")
        if verb == "create":
            created[backend_id] = created.get(backend_id, 0) + 1
            live[backend_id] = (resource, rest[0] if rest else "", created[backend_id])
        elif verb == "delete":
            live.pop(backend_id, None)
    return live


class JournalDriver(SimulatedDriver):
    """SimulatedDriver whose creates and deletes are journaled; inventory from the journal.

    Option `answer_delay` (seconds, 0): a create answers that long after its object is made and
    journaled (a cloud whose answer is slow to arrive): the create stays in the cloud, with its
    object made, for that long (a kill -9 can cut it there).
    """

    answer_delay: float = 0.0

    @classmethod
    def from_options(cls, options: Mapping[str, str], data_dir: Path) -> SimulatedDriver:
        rest = dict(options)
        answer_delay = float(rest.pop("answer_delay", "0") or 0)
        driver = super().from_options(rest, data_dir)
        assert isinstance(driver, JournalDriver)
        driver.answer_delay = answer_delay
        return driver

    async def create(self, spec: object) -> Observed:
        observed = await super().create(spec)
        obj = self._objects.get(observed.backend_id)
        if obj is not None:
            _append(f"create {obj.resource} {observed.backend_id} {obj.entity_id or '-'}")
        if self.answer_delay > 0:
            await asyncio.sleep(self.answer_delay)
        return observed

    async def delete(self, ref: Ref) -> None:
        await super().delete(ref)
        _append(f"delete {ref.resource} {ref.backend_id}")

    async def inventory(self) -> Sequence[Tagged]:
        return [Tagged(Ref(resource, backend_id), entity_id)
                for backend_id, (resource, entity_id, _) in live_objects(Path(os.environ[JOURNAL_ENV])).items()
                if entity_id != "-"]


def serve_with_journal() -> None:
    from occipy import backends
    from occipy.server import main

    backends.DRIVERS["journal"] = "tests.integration.journal_driver:JournalDriver"
    sys.argv = ["occipy", *sys.argv[1:]]
    main()


if __name__ == "__main__":
    serve_with_journal()
