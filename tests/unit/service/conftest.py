"""The service on MemoryStore + the simulated cloud, no HTTP (style.md §6 Unit)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from occipy.backends.simulated import SimulatedDriver
from occipy.model.standard import standard_registry
from occipy.service.messages import OcciRequest, OcciResponse
from occipy.service.options import ServiceOptions
from occipy.service.pipeline import Service
from occipy.store.base import Store
from occipy.store.memory import MemoryStore

BASE = "http://test.example"
INFRA = "http://schemas.ogf.org/occi/infrastructure#"
COMPUTE_KIND = f'Category: compute; scheme="{INFRA}"; class="kind"'
STORAGE_KIND = f'Category: storage; scheme="{INFRA}"; class="kind"'
NETWORK_KIND = f'Category: network; scheme="{INFRA}"; class="kind"'


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def location(self) -> str:
        value = self.header("Location")
        assert value is not None, (self.status, self.text)
        return value[len(BASE):] if value.startswith(BASE) else value


class Harness:
    def __init__(self, service: Service, driver: SimulatedDriver) -> None:
        self.service = service
        self.driver = driver

    async def call(self, method: str, path: str, body: str | bytes = b"", *, ctype: str | None = None,
                   accept: str | None = None, headers: Sequence[tuple[str, str]] = (),
                   query: Mapping[str, str] | None = None) -> Answer:
        raw = body.encode() if isinstance(body, str) else body
        all_headers = [(k.lower(), v) for k, v in headers]
        if ctype:
            all_headers.append(("content-type", ctype))
        if accept:
            all_headers.append(("accept", accept))
        if "?" in path:
            path, _, qs = path.partition("?")
            query = dict(part.split("=", 1) for part in qs.split("&") if part)
        result: OcciResponse = await self.service.handle(OcciRequest(
            method=method, path=path, query=query or {}, headers=all_headers, body=raw, base_url=BASE))
        return Answer(result.status, result.headers, result.body)

    async def text(self, method: str, path: str, *lines: str, accept: str = "text/plain") -> Answer:
        return await self.call(method, path, "\n".join(lines), ctype="text/plain", accept=accept)

    async def json(self, method: str, path: str, document: Any, accept: str = "application/occi+json") -> Answer:
        return await self.call(method, path, json.dumps(document), ctype="application/occi+json", accept=accept)

    async def get_json(self, path: str) -> Any:
        answer = await self.call("GET", path, accept="application/occi+json")
        assert answer.status == 200, answer.text
        return answer.json()

    async def create_compute(self, *extra: str) -> str:
        answer = await self.text("POST", "/compute/", COMPUTE_KIND, *extra)
        assert answer.status == 201, answer.text
        return answer.location


@contextlib.asynccontextmanager
async def running(store: Store, driver: SimulatedDriver) -> AsyncIterator[Harness]:
    """The service on this store and driver, opened and started; stopped and closed after."""
    service = Service(standard_registry(), store, driver, ServiceOptions(sync_wait=1.0, reconcile_interval=0))
    await store.open()
    await service.start()
    try:
        yield Harness(service, driver)
    finally:
        await service.stop()
        await driver.close()
        await store.close()


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    async with running(MemoryStore(), SimulatedDriver.from_options({"delay": "0", "seed": "1"}, tmp_path)) as started:
        yield started
