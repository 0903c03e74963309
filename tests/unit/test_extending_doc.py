"""docs/extending.md stays true: its code builds a new kind and a new driver that the server serves."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from occipy.backends.base import Driver, Inventories
from occipy.model.extensions import ALL, ExtensionSet
from occipy.model.standard import standard_registry
from occipy.service.messages import OcciRequest
from occipy.service.options import ServiceOptions
from occipy.service.pipeline import Service
from occipy.store.memory import MemoryStore

DOC = Path(__file__).resolve().parents[2] / "docs" / "extending.md"


@pytest.fixture(scope="module")
def example() -> SimpleNamespace:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 3, "the doc shows the model, the binding and the driver"
    module = sys.modules.setdefault("extending_example", ModuleType("extending_example"))
    if not hasattr(module, "EXAMPLE"):  # the bindings and spec types register once per process
        for block in blocks:
            exec(compile(block, str(DOC), "exec"), module.__dict__)  # noqa: S102  (our own documentation)
    return SimpleNamespace(**module.__dict__)


async def _call(service: Service, method: str, path: str, body: object = None, query: dict[str, str] | None = None
                ) -> tuple[int, Any]:
    headers = [("accept", "application/occi+json")]
    raw = b""
    if body is not None:
        headers.append(("content-type", "application/occi+json"))
        raw = json.dumps(body).encode()
    answer = await service.handle(OcciRequest(method=method, path=path, headers=headers, body=raw,
                                              query=query or {}))
    return answer.status, json.loads(answer.body) if answer.body else None


async def test_the_documented_kind_and_driver_work(example: SimpleNamespace) -> None:
    extensions = (*ALL, example.EXAMPLE)
    driver: Driver = example.BucketDriver()
    assert isinstance(driver, Inventories)
    service = Service(standard_registry(extensions=extensions), MemoryStore(), driver,
                      ServiceOptions(sync_wait=1.0, reconcile_interval=0), extensions=ExtensionSet(extensions))
    await service.start()
    try:
        status, discovery = await _call(service, "GET", "/-/")
        assert status == 200 and any(kind["term"] == "bucket" for kind in discovery["kinds"])
        bucket = {"kind": example.BUCKET, "attributes": {"org.example.bucket.name": "photos"}}
        status, _ = await _call(service, "PUT", "/bucket/b1", bucket)
        assert status == 201
        status, shown = await _call(service, "GET", "/bucket/b1")
        assert shown["attributes"]["org.example.bucket.objects"] == 3  # reported by the driver
        assert shown["attributes"]["org.example.bucket.state"] == "active"
        assert [b["name"] for b in driver.buckets.values()] == ["photos"]  # type: ignore[attr-defined]
        status, shown = await _call(service, "POST", "/bucket/b1", {"action": example.EMPTY},
                                    query={"action": "empty"})
        assert status == 200 and shown["attributes"]["org.example.bucket.objects"] == 0
        # The validate hook: 400 naming the attribute.
        status, error = await _call(service, "PUT", "/bucket/b2",
                                    {"kind": example.BUCKET, "attributes": {"org.example.bucket.name": "-x"}})
        assert status == 400 and "org.example.bucket.name" in error["message"]
        status, _ = await _call(service, "DELETE", "/bucket/b1")
        assert status == 200 and driver.buckets == {}  # type: ignore[attr-defined]
    finally:
        await service.stop()
