"""A smoke test of the EC2 driver against real Amazon EC2, skipped unless credentials are given.

It runs only when OCCIPY_EC2_ACCESS_KEY_ID, OCCIPY_EC2_SECRET_ACCESS_KEY and OCCIPY_EC2_REGION are
set (every other OCCIPY_EC2_<KEY> is passed to the driver as an option, as `occipy serve` does,
e.g. OCCIPY_EC2_VPC_ID and OCCIPY_EC2_SUBNET_ID for an account without a default VPC). It costs
a few cents: one t3.micro (or OCCIPY_EC2_DEFAULT_INSTANCE_TYPE) for a few minutes and a 1 GiB gp3
volume, both deleted at the end, also when the test fails. Everything carries a fresh owner tag,
`occipy-smoke-<hex>`, so it touches nothing else in the account:

    OCCIPY_EC2_ACCESS_KEY_ID=AKIA... OCCIPY_EC2_SECRET_ACCESS_KEY=... OCCIPY_EC2_REGION=eu-west-1 \\
        uv run pytest tests/integration/test_ec2_aws.py -v
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

pytest.importorskip("boto3", reason="boto3 is the ec2 extra: uv sync --extra ec2")

from occipy.backends.base import (
    COMPUTE,
    IMAGE,
    STORAGE,
    STORAGELINK,
    ComputeSpec,
    Ref,
    Start,
    Stop,
    StorageLinkSpec,
    StorageSpec,
)
from occipy.backends.ec2 import EC2Driver

REQUIRED = ("OCCIPY_EC2_ACCESS_KEY_ID", "OCCIPY_EC2_SECRET_ACCESS_KEY", "OCCIPY_EC2_REGION")
PREFIX = "OCCIPY_EC2_"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(1800),
    pytest.mark.skipif(any(not os.environ.get(name) for name in REQUIRED),
                       reason=f"real AWS smoke test: set {', '.join(REQUIRED)} to run it (it costs a few cents)"),
]


def options() -> dict[str, str]:
    values = {key[len(PREFIX):].lower(): value for key, value in os.environ.items() if key.startswith(PREFIX)}
    values["owner"] = f"occipy-smoke-{uuid.uuid4().hex[:8]}"
    values.setdefault("wait_timeout", "900")
    values.setdefault("poll_interval", "0")
    return values


async def test_smoke_against_aws() -> None:
    driver = EC2Driver.from_options(options(), Path("."))
    await driver.open()
    made: list[Ref] = []
    try:
        assert [t for t in driver.templates() if t.family == IMAGE], "no AMI offered in this region"
        vm = await driver.create(ComputeSpec(name="occipy-smoke", entity_id=f"urn:uuid:{uuid.uuid4()}"))
        made.append(Ref(COMPUTE, vm.backend_id))
        assert vm.state == "active"
        volume = await driver.create(StorageSpec(name="occipy-smoke", size_gib=1))
        made.append(Ref(STORAGE, volume.backend_id))
        link = await driver.create(StorageLinkSpec(name="occipy-smoke", compute_id=vm.backend_id,
                                                   storage_id=volume.backend_id))
        assert link.state == "active"
        assert {t.ref for t in await driver.inventory()} >= {Ref(COMPUTE, vm.backend_id)}
        await driver.delete(Ref(STORAGELINK, link.backend_id))
        assert (await driver.act(Ref(COMPUTE, vm.backend_id), Stop())).state == "inactive"
        assert (await driver.act(Ref(COMPUTE, vm.backend_id), Start())).state == "active"
    finally:
        for ref in reversed(made):
            await driver.delete(ref)
        for ref in made:
            assert await driver.observe(ref) is None, f"{ref} is still there"
        await driver.close()
