"""The in-process half of bench/probes/write_syscalls.sh: writes while strace counts.

    .venv/bin/python bench/probes/write_syscalls.py create|action MARKS_DIR
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).parent))
from service_cpu import ACTION, CREATE, create_group, durable_service, json_request


async def main(what: str, marks: Path) -> None:
    async with durable_service() as service:
        for _ in range(300):
            await create_group(service)
        created = await service.handle(json_request("POST", "/compute/", CREATE))
        location = dict(created.headers)["Location"][len("http://x"):]
        (marks / "ready").touch()
        await asyncio.sleep(2)  # strace attaches
        if what == "create":
            for _ in range(100):
                await create_group(service)
            writes = 3200
        else:
            for turn in range(2000):
                term = ("stop", "start")[turn % 2]
                await service.handle(json_request("POST", location, (ACTION % term).encode(), {"action": term}))
            writes = 2000
        (marks / "writes").write_text(str(writes))
        (marks / "done").touch()
        await asyncio.sleep(1)  # strace detaches


if __name__ == "__main__":
    uvloop.run(main(sys.argv[1], Path(sys.argv[2])))
