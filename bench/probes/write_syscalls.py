"""The in-process half of bench/probes/write_syscalls.sh: writes while strace counts.

    .venv/bin/python bench/probes/write_syscalls.py create|action MARKS_DIR
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).parent))
from service_cpu import create_group, create_one, durable_service, flip_request


async def main(what: str, marks: Path) -> None:
    async with durable_service() as service:
        for _ in range(300):
            await create_group(service)
        location = await create_one(service)
        (marks / "ready").touch()
        await asyncio.sleep(2)  # strace attaches
        if what == "create":
            for _ in range(100):
                await create_group(service)
            writes = 3200
        else:
            for turn in range(2000):
                await service.handle(flip_request(location, turn))
            writes = 2000
        (marks / "writes").write_text(str(writes))
        (marks / "done").touch()
        await asyncio.sleep(1)  # strace detaches


if __name__ == "__main__":
    uvloop.run(main(sys.argv[1], Path(sys.argv[2])))
