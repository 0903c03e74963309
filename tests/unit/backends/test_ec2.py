"""The EC2 driver against moto_server (tests/services/moto_ec2.py), started by the suite.

First the shared driver contract suite (with hibernation on, so suspend is covered), then what
only this driver does: settings, the templates it offers, tags and the inventory, the mapping of
specs to EC2 calls, polling for outside changes, error mapping, and slow transitions. moto's
transitions are instant, so a wrapper around the boto3 client (`SlowClient`) makes EC2 report
pending/stopping/attaching for a while: the driver must wait without blocking the event loop.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("boto3", reason="boto3 is the ec2 extra: uv sync --extra ec2")

from occipy.backends import load_driver_class
from occipy.backends._ec2_base import TAG_ENTITY, TAG_OWNER, make_client, tags_of, translate
from occipy.backends._ec2_settings import DEFAULT_INSTANCE_TYPES, Settings, parse_settings
from occipy.backends.base import (
    COMPUTE,
    FLAVOUR,
    IMAGE,
    NETWORK,
    NETWORKINTERFACE,
    STORAGE,
    STORAGELINK,
    ComputeSpec,
    ComputeUpdate,
    Driver,
    NetworkInterfaceSpec,
    NetworkSpec,
    Ref,
    Save,
    Start,
    Stop,
    StorageLinkSpec,
    StorageSpec,
    Suspend,
)
from occipy.backends.ec2 import EC2Driver
from occipy.errors import BackendError, BackendUnavailable, NotSupported
from tests.services._process import free_port
from tests.services.moto_ec2 import ACCESS_KEY, REGION, SECRET_KEY, MotoServer

from .contract import DriverContract, Made, unique

SSH_KEY_TYPE = "ssh-ed25519"


def ssh_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    public = ed25519.Ed25519PrivateKey.generate().public_key()
    return public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode() + " t@x"


def options(server: MotoServer, **extra: str) -> dict[str, str]:
    values = {
        "endpoint_url": server.endpoint_url, "region": REGION, "access_key_id": ACCESS_KEY,
        "secret_access_key": SECRET_KEY, "owner": unique("ct"), "wait_interval": "0.02",
        "poll_interval": "0.2", "wait_timeout": "20", "max_attempts": "2",
    }
    values.update(extra)
    return values


@pytest.fixture(scope="module")
def ec2(moto_server: MotoServer) -> Iterator[MotoServer]:
    """The session's moto_server, shared by this module's tests (each uses its own owner tag) and
    reset at the end. A reset per test would cost moto's 2 s AMI load every time."""
    moto_server.reset()
    yield moto_server
    moto_server.reset()


async def opened(server: MotoServer, **extra: str) -> EC2Driver:
    driver = EC2Driver.from_options(options(server, **extra), Path("/nonexistent"))
    await driver.open()
    return driver


def owned(client: Any, owner: str) -> dict[str, list[str]]:
    """The objects of one owner still in the cloud (terminated instances and deleted volumes aside)."""
    tag = [{"Name": f"tag:{TAG_OWNER}", "Values": [owner]}]
    instances = [i["InstanceId"] for r in client.describe_instances(Filters=tag)["Reservations"]
                 for i in r["Instances"] if i["State"]["Name"] != "terminated"]
    volumes = [v["VolumeId"] for v in client.describe_volumes(Filters=tag)["Volumes"]]
    subnets = [s["SubnetId"] for s in client.describe_subnets(Filters=tag)["Subnets"]]
    enis = [n["NetworkInterfaceId"] for n in client.describe_network_interfaces(Filters=tag)["NetworkInterfaces"]]
    keys = [k["KeyName"] for k in client.describe_key_pairs(Filters=tag)["KeyPairs"]]
    return {"instances": instances, "volumes": volumes, "subnets": subnets, "enis": enis, "keys": keys}


def nothing(found: dict[str, list[str]]) -> bool:
    return not any(found.values())


# ---------------------------------------------------------------- the contract


class TestEC2Contract(DriverContract):
    @pytest.fixture
    async def driver(self, ec2: MotoServer) -> AsyncIterator[Driver]:
        drv = await opened(ec2, hibernation="true")
        yield drv
        # Whatever the test made went through `Made`, which deleted it: nothing of this owner is left.
        # (Saved AMIs stay, as in EC2: occipy never deregisters an image.)
        left = owned(ec2.client(), drv.settings.owner)
        await drv.close()
        assert nothing(left), f"left in the cloud: {left}"

    async def change_outside(self, driver: Driver, ref: Ref, state: str | None) -> None:
        assert isinstance(driver, EC2Driver)
        client = driver.client
        if state is None:
            await asyncio.to_thread(client.terminate_instances, InstanceIds=[ref.backend_id])
        elif state == "inactive":
            await asyncio.to_thread(client.stop_instances, InstanceIds=[ref.backend_id])
        else:
            raise AssertionError(f"no hook for {state}")

    async def unreachable(self) -> Driver | None:
        return EC2Driver.from_options(
            {"endpoint_url": f"http://127.0.0.1:{free_port()}", "region": REGION, "access_key_id": ACCESS_KEY,
             "secret_access_key": SECRET_KEY, "max_attempts": "1", "connect_timeout": "1"}, Path("/nonexistent"))
