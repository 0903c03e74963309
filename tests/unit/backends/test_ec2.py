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
from collections.abc import AsyncIterator
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
    POOL,
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
    groups = [g["GroupId"] for g in client.describe_security_groups(Filters=tag)["SecurityGroups"]]
    addresses = [a["AllocationId"] for a in client.describe_addresses(Filters=tag)["Addresses"]]
    return {"instances": instances, "volumes": volumes, "subnets": subnets, "enis": enis, "keys": keys,
            "groups": groups, "addresses": addresses}


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


# ---------------------------------------------------------------- settings


def test_the_registry_loads_the_driver() -> None:
    assert load_driver_class("ec2") is EC2Driver


def test_without_boto3_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from occipy import backends

    monkeypatch.setattr(backends, "_extras", lambda: frozenset({"ec2"}))
    monkeypatch.setitem(sys.modules, "boto3", None)
    for module in [m for m in sys.modules if m.startswith("occipy.backends.") and "ec2" in m]:
        monkeypatch.delitem(sys.modules, module)
    with pytest.raises(ValueError) as caught:
        load_driver_class("ec2")
    assert str(caught.value).startswith("the ec2 driver needs the ec2 extra: pip install 'occipy[ec2]'")
    assert "'boto3' is not installed" in str(caught.value)


def test_defaults() -> None:
    settings = parse_settings({})
    assert settings == Settings()
    assert settings.region is None and settings.endpoint_url is None  # boto3's own chain decides
    assert settings.default_instance_type in settings.instance_types == DEFAULT_INSTANCE_TYPES
    assert not settings.hibernation and settings.owner == "occipy"


def test_options_are_parsed() -> None:
    settings = parse_settings({
        "region": "eu-west-1", "endpoint_url": "http://127.0.0.1:5000", "vpc_id": "vpc-0abc1234",
        "subnet_id": "subnet-0abc1234", "security_group_ids": "sg-01, sg-02", "images": "ami-0123abcd,ami-0123abcd",
        "instance_types": "t3.micro, m5.large", "default_instance_type": "m5.large", "hibernation": "yes",
        "poll_interval": "0", "wait_timeout": "30", "subnet_prefix": "26", "volume_type": "io2", "owner": "team:a",
    })
    assert settings.region == "eu-west-1" and settings.endpoint_url == "http://127.0.0.1:5000"
    assert settings.security_group_ids == ("sg-01", "sg-02")
    assert settings.images == ("ami-0123abcd",)  # duplicates dropped
    assert settings.instance_types == ("t3.micro", "m5.large") and settings.default_instance_type == "m5.large"
    assert settings.hibernation and settings.poll_interval == 0 and settings.wait_timeout == 30
    assert settings.subnet_prefix == 26 and settings.volume_type == "io2" and settings.owner == "team:a"


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ({"colour": "blue"}, "unknown ec2 driver option(s) colour"),
        ({"access_key_id": "AKIA"}, "access_key_id and secret_access_key go together"),
        ({"session_token": "x"}, "session_token needs"),
        ({"endpoint_url": "moto"}, "endpoint_url"),
        ({"vpc_id": "default"}, "vpc_id"),
        ({"subnet_id": "vpc-0abc"}, "subnet_id"),
        ({"security_group_ids": "default"}, "security_group_ids"),
        ({"images": "ubuntu"}, "images: 'ubuntu' is not an AMI id"),
        ({"default_image": "debian"}, "default_image"),
        ({"instance_types": "huge"}, "instance_types"),
        ({"default_instance_type": "m5.24xlarge"}, "default_instance_type"),
        ({"volume_type": "ssd"}, "volume_type"),
        ({"hibernation": "maybe"}, "hibernation"),
        ({"owner": "aws:me"}, "owner"),
        ({"subnet_prefix": "8"}, "subnet_prefix: must be between 16 and 28"),
        ({"subnet_prefix": "24.5"}, "subnet_prefix: expected a whole number"),
        ({"poll_interval": "-1"}, "poll_interval"),
        ({"wait_timeout": "nan"}, "wait_timeout"),
        ({"max_attempts": "0"}, "max_attempts"),
        ({"images_per_name": "0"}, "images_per_name"),
    ],
)
def test_bad_options_name_the_option(given: dict[str, str], named: str) -> None:
    with pytest.raises(ValueError, match="ec2 driver option") as caught:
        parse_settings(given)
    assert named in str(caught.value)


def test_suspend_only_with_hibernation() -> None:
    assert "suspend" not in EC2Driver(Settings()).supports[COMPUTE].actions
    assert "suspend" in EC2Driver(Settings(hibernation=True)).supports[COMPUTE].actions
    # Neither has a storage or network action: EC2 has no online/offline or up/down.
    assert not EC2Driver(Settings()).supports[STORAGE].actions


# ---------------------------------------------------------------- errors


def _client_error(code: str, status: int = 400) -> Exception:
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": "because"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "RunInstances")


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (_client_error("InvalidAMIID.NotFound"), BackendError),
        (_client_error("UnauthorizedOperation", 403), BackendError),
        (_client_error("InsufficientInstanceCapacity", 500), BackendUnavailable),
        (_client_error("RequestLimitExceeded", 503), BackendUnavailable),
        (_client_error("Unavailable", 503), BackendUnavailable),
    ],
)
def test_errors_map_to_the_contract(exc: Exception, kind: type) -> None:
    error = translate(exc, "launching instance 'a'", "region eu-west-1")
    assert type(error) is kind
    assert "launching instance 'a'" in error.message and "because" in error.message
    if kind is BackendUnavailable:
        assert "Amazon EC2 at region eu-west-1" in error.message  # 503 names the cloud


def test_connection_and_credential_errors() -> None:
    from botocore.exceptions import EndpointConnectionError, NoCredentialsError
    from botocore.parsers import ResponseParserError

    unreachable = translate(EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), "listing", "http://127.0.0.1:9")
    assert isinstance(unreachable, BackendUnavailable)
    assert unreachable.message.startswith("cannot reach Amazon EC2 at http://127.0.0.1:9")
    html = translate(ResponseParserError("Unable to parse response\n<html>"), "listing", "http://x")
    assert isinstance(html, BackendUnavailable) and "<html>" not in html.message
    credentials = translate(NoCredentialsError(), "listing", "region x")
    assert isinstance(credentials, BackendError) and "access_key_id" in credentials.message


async def test_unreachable_endpoint_is_503_naming_the_cloud() -> None:
    port = free_port()
    driver = EC2Driver(parse_settings({"endpoint_url": f"http://127.0.0.1:{port}", "region": REGION,
                                       "access_key_id": "a", "secret_access_key": "b", "max_attempts": "1"}))
    with pytest.raises(BackendUnavailable, match=rf"cannot reach Amazon EC2 at http://127.0.0.1:{port}"):
        await driver.open()
    await driver.close()


async def test_no_region_and_an_unknown_profile_are_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    with pytest.raises(BackendError, match=r"no AWS region: set ec2 driver option region \(OCCIPY_EC2_REGION\)"):
        await EC2Driver(parse_settings({})).open()
    with pytest.raises(BackendError, match="ec2 driver option profile: .*no-such-profile"):
        await EC2Driver(parse_settings({"profile": "no-such-profile", "region": REGION})).open()


async def test_calls_before_open_are_unavailable() -> None:
    with pytest.raises(BackendUnavailable, match="not open"):
        await EC2Driver(Settings()).observe(Ref(COMPUTE, "i-0123456789abcdef0"))


# ---------------------------------------------------------------- against moto: what only EC2 does


@pytest.fixture
async def drv(ec2: MotoServer) -> AsyncIterator[EC2Driver]:
    driver = await opened(ec2)
    made = Made(driver)
    driver.made = made  # type: ignore[attr-defined]
    yield driver
    await made.cleanup()
    await driver.close()


def made(driver: EC2Driver) -> Made:
    return driver.made  # type: ignore[attr-defined,no-any-return]


def describe_instance(client: Any, instance_id: str) -> Any:
    return client.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


async def test_templates_are_a_small_filtered_set(drv: EC2Driver, ec2: MotoServer) -> None:
    images = [t for t in drv.templates() if t.family == IMAGE]
    # moto lists 1,366 AMIs; the default offers the newest per name pattern: two.
    assert len(images) == 2
    names = {drv.images[t.name].name for t in images}
    assert any(n.startswith("al2023-ami-2023.") for n in names) and any(n.startswith("amzn2-ami-hvm-") for n in names)
    assert all(t.name.startswith("ami-") and t.architecture == "x64" for t in images)
    flavours = {t.name: t for t in drv.templates() if t.family == FLAVOUR}
    assert list(flavours) == list(DEFAULT_INSTANCE_TYPES)
    assert (flavours["t2.nano"].cores, flavours["t2.nano"].memory_gib) == (1, 0.5)
    assert (flavours["m5.large"].cores, flavours["m5.large"].memory_gib) == (2, 8.0)


async def test_configured_images_and_types(ec2: MotoServer) -> None:
    client = ec2.client()
    ami = client.describe_images(Owners=["amazon"], Filters=[{"Name": "name", "Values": ["suse-sles-12-*"]}])
    image_id = ami["Images"][0]["ImageId"]
    driver = await opened(ec2, images=image_id, instance_types="t3.small,m5.large")
    try:
        assert [(t.family, t.name) for t in driver.templates()] == [
            (IMAGE, image_id), (FLAVOUR, "t3.small"), (FLAVOUR, "m5.large"), (POOL, "amazon")]
        assert driver.settings.default_instance_type == "t3.small"  # t3.micro is not offered
    finally:
        await driver.close()
    with pytest.raises(BackendError, match="ec2 driver option images: no AMI ami-0123456789abcdef0"):
        await opened(ec2, images="ami-0123456789abcdef0")
    with pytest.raises(BackendError, match="ec2 driver option instance_types"):
        await opened(ec2, instance_types="t3.micro,zz9.plural")


async def test_placement_settings_are_checked(ec2: MotoServer) -> None:
    with pytest.raises(BackendError, match="vpc_id: no VPC vpc-0123456789abcdef0"):
        await opened(ec2, vpc_id="vpc-0123456789abcdef0")
    with pytest.raises(BackendError, match="subnet_id: no subnet subnet-0123456789abcdef0"):
        await opened(ec2, subnet_id="subnet-0123456789abcdef0")
    with pytest.raises(BackendError, match="availability_zone: us-east-1z is not an available zone"):
        await opened(ec2, availability_zone="us-east-1z")
    driver = await opened(ec2, availability_zone="us-east-1c")
    try:
        subnet = ec2.client().describe_subnets(SubnetIds=[driver.subnet_id])["Subnets"][0]
        assert driver.zone == "us-east-1c" == subnet["AvailabilityZone"] and subnet["DefaultForAz"]
    finally:
        await driver.close()


async def test_a_compute_carries_its_entity_id_and_nothing_else_does(drv: EC2Driver, ec2: MotoServer) -> None:
    client = ec2.client()
    vm = await made(drv).create(ComputeSpec(name="web", entity_id="urn:uuid:0e9c", flavour="t3.small",
                                            hostname="web-1"))
    instance = describe_instance(client, vm.backend_id)
    tags = tags_of(instance)
    assert tags == {"Name": "web", TAG_OWNER: drv.settings.owner, TAG_ENTITY: "urn:uuid:0e9c",
                    "occipy:hostname": "web-1"}
    assert instance["InstanceType"] == "t3.small" and instance["SubnetId"] == drv.subnet_id
    assert instance["Placement"]["AvailabilityZone"] == drv.zone
    # The root volume and the primary interface belong to the instance: the inventory must never
    # list them as objects of their own (the start-up sweep would delete them).
    root = client.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [vm.backend_id]}])
    assert [tags_of(v) for v in root["Volumes"]] == [{"Name": "web-root"}]
    assert [tags_of(n) for n in instance["NetworkInterfaces"]] == [{}]
    assert {t.ref for t in await drv.inventory()} == {Ref(COMPUTE, vm.backend_id)}
    facts = vm.facts
    assert facts is not None and (facts.cores, facts.memory_gib, facts.hostname) == (2, 2.0, "web-1")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("spec", "instance_type"),
    [
        ({}, "t3.micro"),  # the default
        ({"cores": 1, "memory_gib": 0.5}, "t2.nano"),  # the smallest that fits
        ({"cores": 2}, "t3.micro"),
        ({"memory_gib": 8}, "m5.large"),
        ({"flavour": "medium"}, "t3.small"),  # a CRTP resource template, by its sizes
        ({"flavour": "c5.large", "cores": 8}, "c5.large"),  # the template's sizes win (GFD.224 §3.5.2)
    ],
)
async def test_instance_type_choice(drv: EC2Driver, ec2: MotoServer, spec: dict[str, Any], instance_type: str) -> None:
    vm = await made(drv).create(ComputeSpec(name=unique("vm"), **spec))
    assert describe_instance(ec2.client(), vm.backend_id)["InstanceType"] == instance_type


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"flavour": "m9.huge"}, "no instance type 'm9.huge'; offered: t2.nano"),
        ({"cores": 64}, "no offered instance type has 64 vCPUs"),
        ({"image": "debian-12"}, "no image 'debian-12' in EC2: an image is an AMI id"),
        ({"image": "ami-0123456789abcdef0"}, "no available AMI ami-0123456789abcdef0"),
        ({"architecture": "x86"}, "is x86_64, not x86"),
        ({"user_data": b"x" * 16385}, "user data is 16385 bytes; EC2 takes at most 16 KiB"),
    ],
)
async def test_computes_ec2_cannot_make(drv: EC2Driver, ec2: MotoServer, spec: dict[str, Any], message: str) -> None:
    with pytest.raises(BackendError, match=message):
        await made(drv).create(ComputeSpec(name=unique("vm"), **spec))
    assert nothing(owned(ec2.client(), drv.settings.owner))


async def test_ssh_key_and_user_data(drv: EC2Driver, ec2: MotoServer) -> None:
    client = ec2.client()
    key = ssh_key()
    user_data = b"#cloud-config\nruncmd: [echo hi]\n\x00binary"
    vm = await made(drv).create(ComputeSpec(name="keyed", ssh_public_key=key, user_data=user_data))
    instance = describe_instance(client, vm.backend_id)
    pair = client.describe_key_pairs(KeyNames=[instance["KeyName"]])["KeyPairs"][0]
    assert pair["KeyName"].startswith("occipy-") and tags_of(pair)[TAG_OWNER] == drv.settings.owner
    import base64

    given = client.describe_instance_attribute(InstanceId=vm.backend_id, Attribute="userData")["UserData"]["Value"]
    assert base64.b64decode(given) == user_data
    # The key pair goes with the instance.
    await drv.delete(Ref(COMPUTE, vm.backend_id))
    assert not client.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [instance["KeyName"]]}])["KeyPairs"]
    with pytest.raises(BackendError, match="importing the SSH key"):
        await made(drv).create(ComputeSpec(name="bad-key", ssh_public_key="ssh-rsa not-a-key"))
    assert nothing(owned(client, drv.settings.owner))


async def test_open_deletes_key_pairs_of_gone_instances(ec2: MotoServer) -> None:
    client = ec2.client()
    owner = unique("gc")
    tags = [{"ResourceType": "key-pair", "Tags": [{"Key": TAG_OWNER, "Value": owner}]}]
    # A crash between the import and the launch, and one between the terminate and the key's delete.
    client.import_key_pair(KeyName="occipy-lost", PublicKeyMaterial=ssh_key().encode(), TagSpecifications=tags)
    client.import_key_pair(KeyName="occipy-used", PublicKeyMaterial=ssh_key().encode(), TagSpecifications=tags)
    client.import_key_pair(KeyName="occipy-someone", PublicKeyMaterial=ssh_key().encode())  # not ours
    image = client.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    running = client.run_instances(ImageId=image, MinCount=1, MaxCount=1, KeyName="occipy-used")
    driver = await opened(ec2, owner=owner)
    try:
        names = {k["KeyName"] for k in client.describe_key_pairs()["KeyPairs"]}
        assert "occipy-lost" not in names and {"occipy-used", "occipy-someone"} <= names
    finally:
        await driver.close()
        client.terminate_instances(InstanceIds=[running["Instances"][0]["InstanceId"]])
        for name in ("occipy-used", "occipy-someone"):
            client.delete_key_pair(KeyName=name)


async def test_network_ranges(drv: EC2Driver, ec2: MotoServer) -> None:
    client = ec2.client()
    vpc_blocks = list(drv.vpc_cidrs)
    first = await made(drv).create(NetworkSpec(name="a", entity_id="urn:uuid:n1", label="backend"))
    subnet = client.describe_subnets(SubnetIds=[first.backend_id])["Subnets"][0]
    # moto's default VPC is 172.31.0.0/16 with six /20 default subnets: the first free /24 follows them.
    assert subnet["CidrBlock"] == "172.31.96.0/24" and subnet["AvailabilityZone"] == drv.zone
    assert tags_of(subnet) == {"Name": "a", TAG_OWNER: drv.settings.owner, TAG_ENTITY: "urn:uuid:n1",
                               "occipy:label": "backend"}
    assert first.facts is not None and first.facts.gateway == "172.31.96.1"  # type: ignore[attr-defined]
    # A range outside the VPC: the driver adds it to the VPC, and removes it with the subnet.
    outside = await made(drv).create(NetworkSpec(name="b", address="192.168.44.0/24", gateway="192.168.44.1"))
    blocks = {a["CidrBlock"] for a in client.describe_vpcs(VpcIds=[drv.vpc_id])["Vpcs"][0]["CidrBlockAssociationSet"]
              if a["CidrBlockState"]["State"] == "associated"}
    assert "192.168.44.0/24" in blocks
    await drv.delete(Ref(NETWORK, outside.backend_id))
    blocks = {a["CidrBlock"] for a in client.describe_vpcs(VpcIds=[drv.vpc_id])["Vpcs"][0]["CidrBlockAssociationSet"]
              if a["CidrBlockState"]["State"] == "associated"}
    assert blocks == set(vpc_blocks)


@pytest.mark.parametrize(
    ("spec", "kind", "message"),
    [
        ({"vlan": 7}, NotSupported, "no VLAN"),
        ({"allocation": "static"}, NotSupported, "DHCP"),
        ({"address": "10.1.2.0/24", "gateway": "10.1.2.254"}, BackendError, "puts the gateway of 10.1.2.0/24 at 10.1.2.1"),
        ({"address": "not-a-range"}, BackendError, "is not a CIDR range"),
        ({"address": "10.0.0.0/30"}, BackendError, "from /16 to /28"),
        ({"address": "172.31.0.0/24"}, BackendError, "InvalidSubnet.Conflict"),  # a default subnet has it
    ],
)
async def test_networks_ec2_cannot_make(drv: EC2Driver, ec2: MotoServer, spec: dict[str, Any], kind: type,
                                        message: str) -> None:
    with pytest.raises(kind, match=message):
        await made(drv).create(NetworkSpec(name=unique("net"), **spec))
    assert nothing(owned(ec2.client(), drv.settings.owner))


async def test_interfaces(drv: EC2Driver, ec2: MotoServer) -> None:
    client = ec2.client()
    vm = await made(drv).create(ComputeSpec(name="vm", flavour="m5.large"))
    net = await made(drv).create(NetworkSpec(name="net", address="172.31.200.0/24"))
    fixed = await made(drv).create(NetworkInterfaceSpec(
        name="fixed", compute_id=vm.backend_id, network_id=net.backend_id, address="172.31.200.10/24",
        entity_id="urn:uuid:i1"))
    named = await made(drv).create(NetworkInterfaceSpec(
        name="named", compute_id=vm.backend_id, network_id=net.backend_id, interface="data"))
    f, n = fixed.facts, named.facts
    assert f is not None and n is not None
    assert (f.interface, f.address, f.gateway, f.allocation) == ("eth1", "172.31.200.10", "172.31.200.1", "static")  # type: ignore[attr-defined]
    assert (n.interface, n.allocation) == ("data", "dynamic")  # type: ignore[attr-defined]
    enis = {e["NetworkInterfaceId"]: e for e in client.describe_network_interfaces(
        NetworkInterfaceIds=[fixed.backend_id, named.backend_id])["NetworkInterfaces"]}
    assert enis[fixed.backend_id]["Attachment"]["DeviceIndex"] == 1
    assert enis[named.backend_id]["Attachment"]["DeviceIndex"] == 2
    assert tags_of(enis[fixed.backend_id])[TAG_ENTITY] == "urn:uuid:i1"
    assert (await drv.observe(Ref(NETWORKINTERFACE, named.backend_id))) == named
    for spec, message in [
        ({"interface": "eth0"}, "eth0 is the instance's primary interface"),
        ({"interface": "eth1"}, "already has an interface eth1"),
        ({"address": "10.9.9.9"}, "not a usable address of subnet 172.31.200.0/24"),
        ({"address": "172.31.200.1"}, "not a usable address"),  # EC2 reserves it (the router)
        ({"address": "nonsense"}, "is not an IP address"),
        ({"allocation": "sometimes"}, "dynamic or static"),
    ]:
        with pytest.raises(BackendError, match=message):
            await made(drv).create(NetworkInterfaceSpec(name="bad", compute_id=vm.backend_id,
                                                        network_id=net.backend_id, **spec))
    # Deleting the compute takes its interfaces with it; the subnet stays.
    await drv.delete(Ref(COMPUTE, vm.backend_id))
    assert await drv.observe(Ref(NETWORKINTERFACE, fixed.backend_id)) is None
    assert await drv.observe(Ref(NETWORKINTERFACE, named.backend_id)) is None
    assert await drv.observe(Ref(NETWORK, net.backend_id)) is not None


async def test_interface_in_another_zone_is_refused(drv: EC2Driver, ec2: MotoServer) -> None:
    client = ec2.client()
    vm = await made(drv).create(ComputeSpec(name="vm"))
    other = client.create_subnet(VpcId=drv.vpc_id, CidrBlock="172.31.250.0/24",
                                 AvailabilityZone="us-east-1f" if drv.zone != "us-east-1f" else "us-east-1e")
    try:
        with pytest.raises(BackendError, match="different availability zones"):
            await made(drv).create(NetworkInterfaceSpec(name="x", compute_id=vm.backend_id,
                                                        network_id=other["Subnet"]["SubnetId"]))
    finally:
        client.delete_subnet(SubnetId=other["Subnet"]["SubnetId"])


async def test_deleting_a_network_deletes_its_interfaces(drv: EC2Driver, ec2: MotoServer) -> None:
    vm = await made(drv).create(ComputeSpec(name="vm"))
    net = await made(drv).create(NetworkSpec(name="net"))
    nic = await made(drv).create(NetworkInterfaceSpec(name="n", compute_id=vm.backend_id, network_id=net.backend_id))
    await drv.delete(Ref(NETWORK, net.backend_id))
    assert await drv.observe(Ref(NETWORK, net.backend_id)) is None
    assert await drv.observe(Ref(NETWORKINTERFACE, nic.backend_id)) is None


async def test_storagelinks(drv: EC2Driver, ec2: MotoServer) -> None:
    client = ec2.client()
    vm = await made(drv).create(ComputeSpec(name="vm"))
    volume = await made(drv).create(StorageSpec(name="data", size_gib=1.5, entity_id="urn:uuid:v1"))
    assert volume.facts is not None and volume.facts.size_gib == 2.0  # type: ignore[attr-defined]  # whole GiB
    described = client.describe_volumes(VolumeIds=[volume.backend_id])["Volumes"][0]
    assert described["VolumeType"] == "gp3" and described["AvailabilityZone"] == drv.zone
    link = await made(drv).create(StorageLinkSpec(name="l", compute_id=vm.backend_id, storage_id=volume.backend_id,
                                                  device="sdg", mountpoint="/srv", entity_id="urn:uuid:l1"))
    assert link.backend_id == f"{vm.backend_id}/{volume.backend_id}"
    assert link.facts is not None and (link.facts.device, link.facts.mountpoint) == ("/dev/sdg", "/srv")  # type: ignore[attr-defined]
    tags = tags_of(client.describe_volumes(VolumeIds=[volume.backend_id])["Volumes"][0])
    assert tags["occipy:link-entity"] == "urn:uuid:l1" and tags["occipy:mountpoint"] == "/srv"
    found = {t.ref: t.entity_id for t in await drv.inventory()}
    assert found[Ref(STORAGELINK, link.backend_id)] == "urn:uuid:l1"
    assert found[Ref(STORAGE, volume.backend_id)] == "urn:uuid:v1"
    other = await made(drv).create(StorageSpec(name="other", size_gib=1))
    for spec, message in [
        ({"storage_id": volume.backend_id}, "already attached"),
        ({"storage_id": other.backend_id, "device": "/dev/sdg"}, "already has a device /dev/sdg"),
        ({"storage_id": other.backend_id, "device": "vdb"}, "EC2 cannot attach a volume as 'vdb'"),
    ]:
        with pytest.raises(BackendError, match=message):
            await made(drv).create(StorageLinkSpec(name="bad", compute_id=vm.backend_id, **spec))
    # Detaching drops the link's tags; the volume stays.
    await drv.delete(Ref(STORAGELINK, link.backend_id))
    tags = tags_of(client.describe_volumes(VolumeIds=[volume.backend_id])["Volumes"][0])
    assert "occipy:link-entity" not in tags and "occipy:mountpoint" not in tags
    assert Ref(STORAGELINK, link.backend_id) not in {t.ref for t in await drv.inventory()}
    # Deleting a volume detaches it first.
    again = await made(drv).create(StorageLinkSpec(name="l2", compute_id=vm.backend_id, storage_id=volume.backend_id))
    assert again.facts is not None and again.facts.device == "/dev/sdf"  # type: ignore[attr-defined]
    await drv.delete(Ref(STORAGE, volume.backend_id))
    assert await drv.observe(Ref(STORAGELINK, again.backend_id)) is None
    assert await drv.observe(Ref(STORAGE, volume.backend_id)) is None


async def test_proposals(drv: EC2Driver) -> None:
    from occipy.backends.base import NetworkInterfaceFacts, StorageLinkFacts

    disk = StorageLinkSpec(name="d", compute_id="i-0", storage_id="vol-0")
    assert drv.propose(disk, []) == StorageLinkFacts(device="/dev/sdf")
    assert drv.propose(disk, [StorageLinkFacts(device="/dev/sdf"), StorageLinkFacts(device="sdg"),
                              StorageLinkFacts(device="disk0")]) == StorageLinkFacts(device="/dev/sdh")
    nic = NetworkInterfaceSpec(name="n", compute_id="i-0", network_id="subnet-0")
    # eth0 is the primary interface; EC2 picks MACs, so none is proposed.
    assert drv.propose(nic, []) == NetworkInterfaceFacts(interface="eth1")
    assert drv.propose(nic, [NetworkInterfaceFacts(interface="eth1")]) == NetworkInterfaceFacts(interface="eth2")


async def test_storage_resize(drv: EC2Driver, ec2: MotoServer) -> None:
    volume = await made(drv).create(StorageSpec(name="v", size_gib=1))
    from occipy.backends.base import StorageUpdate

    grown = await drv.update(Ref(STORAGE, volume.backend_id), StorageUpdate(size_gib=2.2))
    assert grown.facts is not None and grown.facts.size_gib == 3.0  # type: ignore[attr-defined]
    assert ec2.client().describe_volumes(VolumeIds=[volume.backend_id])["Volumes"][0]["Size"] == 3
    with pytest.raises(BackendError, match="EBS volumes cannot shrink"):
        await drv.update(Ref(STORAGE, volume.backend_id), StorageUpdate(size_gib=1))


async def test_flavour_change_stops_and_starts(drv: EC2Driver, ec2: MotoServer) -> None:
    vm = await made(drv).create(ComputeSpec(name="vm", flavour="t2.micro"))
    ref = Ref(COMPUTE, vm.backend_id)
    observed = await drv.update(ref, ComputeUpdate(flavour="m5.large"))
    assert observed.state == "active"
    assert observed.facts is not None and (observed.facts.cores, observed.facts.memory_gib) == (2, 8.0)  # type: ignore[attr-defined]
    assert describe_instance(ec2.client(), vm.backend_id)["InstanceType"] == "m5.large"
    # A stopped compute stays stopped.
    await drv.act(ref, Stop())
    stopped = await drv.update(ref, ComputeUpdate(flavour="t2.nano"))
    assert stopped.state == "inactive" and describe_instance(ec2.client(), vm.backend_id)["InstanceType"] == "t2.nano"
    with pytest.raises(NotSupported, match="cannot change cores"):
        await drv.update(ref, ComputeUpdate(cores=4))
    with pytest.raises(BackendError, match="no instance type 'm9.huge'"):
        await drv.update(ref, ComputeUpdate(flavour="m9.huge"))


async def test_save_names_and_reopen(drv: EC2Driver, ec2: MotoServer) -> None:
    vm = await made(drv).create(ComputeSpec(name="web"))
    ref = Ref(COMPUTE, vm.backend_id)
    first = await drv.save(ref, Save())
    second = await drv.save(ref, Save(method="deferred"))
    named = await drv.save(ref, Save(image_name="golden image", method="hot"))
    again = await drv.save(ref, Save(image_name="golden image"))
    titles = [first.title, second.title, named.title, again.title]
    assert titles[:2] == ["web-snapshot-1", "web-snapshot-2"] and titles[2:] == ["golden image", "golden image-2"]
    image = ec2.client().describe_images(ImageIds=[named.name])["Images"][0]
    assert tags_of(image)["occipy:saved-from"] == vm.backend_id
    # After a restart the saved images are offered again (they carry the owner tag).
    other = await opened(ec2, owner=drv.settings.owner)
    try:
        assert {first.name, second.name, named.name, again.name} <= {t.name for t in other.templates()}
    finally:
        await other.close()
    acted = await drv.act(ref, Save(image_name="by act"))
    assert acted.state == "active" and acted.message is not None and acted.message.startswith("saved as image ami-")


async def test_suspend_needs_hibernation(drv: EC2Driver, ec2: MotoServer) -> None:
    vm = await made(drv).create(ComputeSpec(name="vm"))
    with pytest.raises(NotSupported):
        await drv.act(Ref(COMPUTE, vm.backend_id), Suspend())
    instance = describe_instance(ec2.client(), vm.backend_id)
    assert not instance.get("HibernationOptions", {}).get("Configured")


async def test_hibernation(ec2: MotoServer) -> None:
    driver = await opened(ec2, hibernation="true")
    client = ec2.client()
    try:
        vm = await driver.create(ComputeSpec(name="sleepy"))
        ref = Ref(COMPUTE, vm.backend_id)
        instance = describe_instance(client, vm.backend_id)
        assert instance["HibernationOptions"] == {"Configured": True}
        suspended = await driver.act(ref, Suspend(method="hibernate"))
        assert (suspended.state, suspended.message) == ("suspended", "hibernated")
        observed = await driver.observe(ref)
        assert observed is not None and observed.state == "suspended"
        # Started outside occipy: the mark goes at the next look.
        await asyncio.to_thread(client.start_instances, InstanceIds=[vm.backend_id])
        observed = await driver.observe(ref)
        assert observed is not None and observed.state == "active"
        assert "occipy:hibernated" not in tags_of(describe_instance(client, vm.backend_id))
        await driver.act(ref, Suspend())
        assert (await driver.act(ref, Start())).state == "active"
        # Stop on a hibernated instance: reported stopped, no longer suspended.
        await driver.act(ref, Suspend())
        assert (await driver.act(ref, Stop())).state == "inactive"
        await driver.delete(ref)
    finally:
        await driver.close()


async def test_real_ec2_reports_hibernation_by_its_reason(drv: EC2Driver) -> None:
    observed = await drv._observed_instance({
        "InstanceId": "i-0123456789abcdef0", "State": {"Name": "stopped"}, "InstanceType": "t3.micro",
        "StateReason": {"Code": "Client.UserInitiatedHibernate", "Message": "User initiated hibernate"},
        "Architecture": "x86_64", "PrivateDnsName": "ip-10-0-0-5.ec2.internal"})
    assert (observed.state, observed.message) == ("suspended", "hibernated")
    assert observed.facts is not None and observed.facts.hostname == "ip-10-0-0-5"  # type: ignore[attr-defined]


async def test_act_on_unknown_names_it(drv: EC2Driver) -> None:
    with pytest.raises(BackendError, match="no instance i-0123456789abcdef0"):
        await drv.act(Ref(COMPUTE, "i-0123456789abcdef0"), Start())
    vm = await made(drv).create(ComputeSpec(name="vm"))
    with pytest.raises(NotSupported, match="has no stop method 'hard'; it has acpioff, graceful, poweroff"):
        await drv.act(Ref(COMPUTE, vm.backend_id), Stop(method="hard"))


# ---------------------------------------------------------------- following the cloud (Watches, by polling)


async def next_changes(stream: AsyncIterator[Any], refs: set[Ref], timeout: float = 10.0) -> dict[Ref, Any]:
    """The first change the stream reports for each of `refs`."""
    seen: dict[Ref, Any] = {}

    async def collect() -> None:
        async for change in stream:
            if change.ref in refs and change.ref not in seen:
                seen[change.ref] = change
                if len(seen) == len(refs):
                    return

    await asyncio.wait_for(collect(), timeout)
    return seen


async def test_changes_outside_occipy_are_reported(drv: EC2Driver, ec2: MotoServer) -> None:
    client = ec2.client()
    vm = await made(drv).create(ComputeSpec(name="vm"))
    volume = await made(drv).create(StorageSpec(name="v", size_gib=1))
    link = await made(drv).create(StorageLinkSpec(name="l", compute_id=vm.backend_id, storage_id=volume.backend_id))
    net = await made(drv).create(NetworkSpec(name="n"))
    nic = await made(drv).create(NetworkInterfaceSpec(name="i", compute_id=vm.backend_id, network_id=net.backend_id))
    stream = drv.changes()
    try:
        # Nothing changed yet: a first round reports nothing of ours.
        quiet = await drv._poll()
        assert not [c for c in quiet if c.ref.backend_id in {vm.backend_id, volume.backend_id, net.backend_id}]
        await asyncio.to_thread(client.stop_instances, InstanceIds=[vm.backend_id])
        await asyncio.to_thread(client.detach_volume, VolumeId=volume.backend_id, InstanceId=vm.backend_id)
        eni = client.describe_network_interfaces(NetworkInterfaceIds=[nic.backend_id])["NetworkInterfaces"][0]
        await asyncio.to_thread(client.detach_network_interface, AttachmentId=eni["Attachment"]["AttachmentId"])
        refs = {Ref(COMPUTE, vm.backend_id), Ref(STORAGELINK, link.backend_id), Ref(NETWORKINTERFACE, nic.backend_id)}
        seen = await next_changes(stream, refs)
        assert seen[Ref(COMPUTE, vm.backend_id)].observed.state == "inactive"
        assert seen[Ref(STORAGELINK, link.backend_id)].observed is None
        detached = seen[Ref(NETWORKINTERFACE, nic.backend_id)].observed
        assert detached.state == "inactive" and detached.message == "the interface is not attached to an instance"
        await asyncio.to_thread(client.delete_volume, VolumeId=volume.backend_id)
        seen = await next_changes(stream, {Ref(STORAGE, volume.backend_id)})
        assert seen[Ref(STORAGE, volume.backend_id)].observed is None
    finally:
        await stream.aclose()  # type: ignore[attr-defined]


async def test_changes_skip_what_occipy_is_changing(drv: EC2Driver, ec2: MotoServer) -> None:
    vm = await made(drv).create(ComputeSpec(name="vm"))
    ref = Ref(COMPUTE, vm.backend_id)
    with drv._working(vm.backend_id):
        await asyncio.to_thread(ec2.client().stop_instances, InstanceIds=[vm.backend_id])
        assert ref not in {c.ref for c in await drv._poll()}
    await asyncio.to_thread(ec2.client().start_instances, InstanceIds=[vm.backend_id])
    await asyncio.to_thread(ec2.client().stop_instances, InstanceIds=[vm.backend_id])
    again = await drv._poll()
    assert [c.observed.state for c in again if c.ref == ref] in ([], ["inactive"])


async def test_after_a_restart_each_object_is_reported_once(drv: EC2Driver, ec2: MotoServer) -> None:
    vm = await made(drv).create(ComputeSpec(name="vm"))
    volume = await made(drv).create(StorageSpec(name="v", size_gib=1))
    restarted = await opened(ec2, owner=drv.settings.owner)
    try:
        first = {c.ref: c.observed for c in await restarted._poll()}
        assert first[Ref(COMPUTE, vm.backend_id)] == vm and first[Ref(STORAGE, volume.backend_id)] == volume
        assert await restarted._poll() == []
    finally:
        await restarted.close()


async def test_an_object_of_another_owner_is_not_taken_for_gone(drv: EC2Driver, ec2: MotoServer) -> None:
    client = ec2.client()
    foreign = client.create_volume(AvailabilityZone=drv.zone, Size=1)["VolumeId"]
    try:
        assert await drv.observe(Ref(STORAGE, foreign)) is not None
        assert Ref(STORAGE, foreign) not in {c.ref for c in await drv._poll()}
        client.delete_volume(VolumeId=foreign)
        assert [c.observed for c in await drv._poll() if c.ref == Ref(STORAGE, foreign)] == [None]
    finally:
        with __import__("contextlib").suppress(Exception):
            client.delete_volume(VolumeId=foreign)


async def test_no_polling_with_a_zero_interval(ec2: MotoServer) -> None:
    driver = await opened(ec2, poll_interval="0")
    stream = driver.changes()
    waiter = asyncio.ensure_future(stream.__anext__())
    await asyncio.sleep(0.3)
    assert not waiter.done()
    await driver.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiter, 5)


# ---------------------------------------------------------------- EC2's own pace (a slow fake around moto)


class SlowClient:
    """moto's client with EC2's pace: an instance stays pending (or stopping) for `delay` seconds
    after the call that started the transition, a volume stays attaching; `fate` turns the launch
    into a failure EC2 reports later. Every call records the thread it ran on."""

    def __init__(self, real: Any, delay: float, fate: str | None = None) -> None:
        self._real = real
        self.delay = delay
        self.fate = fate
        self.transient: dict[str, tuple[str, float]] = {}
        self.threads: list[str] = []
        self.describes = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._real, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            import threading

            self.threads.append(threading.current_thread().name)
            return attr(*args, **kwargs)

        return call

    def _hold(self, instance_id: str, state: str) -> None:
        self.transient[instance_id] = (state, time.monotonic() + self.delay)

    def run_instances(self, **kwargs: Any) -> Any:
        reply = self.__getattr__("run_instances")(**kwargs)
        for instance in reply["Instances"]:
            self._hold(instance["InstanceId"], "pending")
        return reply

    def stop_instances(self, **kwargs: Any) -> Any:
        reply = self.__getattr__("stop_instances")(**kwargs)
        for instance_id in kwargs["InstanceIds"]:
            self._hold(instance_id, "stopping")
        return reply

    def attach_volume(self, **kwargs: Any) -> Any:
        reply = self.__getattr__("attach_volume")(**kwargs)
        self._hold(kwargs["VolumeId"], "attaching")
        return reply

    def describe_instances(self, **kwargs: Any) -> Any:
        reply = self.__getattr__("describe_instances")(**kwargs)
        self.describes += 1
        for reservation in reply["Reservations"]:
            for instance in reservation["Instances"]:
                state, until = self.transient.get(instance["InstanceId"], ("", 0.0))
                if time.monotonic() < until:
                    instance["State"] = {"Code": 0, "Name": state}
                elif state == "pending" and self.fate is not None:
                    instance["State"] = {"Code": 48, "Name": "terminated"}
                    instance["StateReason"] = {"Code": self.fate, "Message": f"{self.fate}: no capacity"}
        return reply

    def describe_volumes(self, **kwargs: Any) -> Any:
        reply = self.__getattr__("describe_volumes")(**kwargs)
        for volume in reply["Volumes"]:
            state, until = self.transient.get(volume["VolumeId"], ("", 0.0))
            if time.monotonic() < until:
                for attachment in volume["Attachments"]:
                    attachment["State"] = state
        return reply


async def slow_driver(ec2: MotoServer, delay: float, fate: str | None = None, **extra: str) -> tuple[EC2Driver, SlowClient]:
    clients: list[SlowClient] = []

    def factory(settings: Settings) -> Any:
        clients.append(SlowClient(make_client(settings), delay, fate))
        return clients[-1]

    driver = EC2Driver(parse_settings(options(ec2, wait_interval="0.05", **extra)), client_factory=factory)
    await driver.open()
    return driver, clients[0]


async def ticking(during: Any) -> tuple[Any, int]:
    """Run `during` while a ticker counts 10 ms ticks: a blocked event loop would count none."""
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.ensure_future(tick())
    try:
        return await during, ticks
    finally:
        ticker.cancel()


async def test_create_waits_for_a_slow_pending_without_blocking(ec2: MotoServer) -> None:
    import threading

    driver, client = await slow_driver(ec2, delay=0.6)
    try:
        started = time.monotonic()
        vm, ticks = await ticking(driver.create(ComputeSpec(name="slow")))
        elapsed = time.monotonic() - started
        assert vm.state == "active" and elapsed >= 0.6
        assert client.describes >= 3, "the driver polled while the instance was pending"
        assert ticks >= 20, f"the event loop was blocked (only {ticks} ticks in {elapsed:.2f} s)"
        assert threading.current_thread().name not in client.threads  # every boto3 call in a worker thread
        # Observed while pending: not active yet, and the message says why.
        client._hold(vm.backend_id, "pending")
        pending = await driver.observe(Ref(COMPUTE, vm.backend_id))
        assert pending is not None and (pending.state, pending.message) == ("inactive",
                                                                            "EC2 reports the instance pending")
        stopped, _ = await ticking(driver.act(Ref(COMPUTE, vm.backend_id), Stop()))
        assert stopped.state == "inactive"
        await driver.delete(Ref(COMPUTE, vm.backend_id))
    finally:
        await driver.close()
    assert nothing(owned(ec2.client(), driver.settings.owner))


async def test_slow_attach(ec2: MotoServer) -> None:
    driver, _ = await slow_driver(ec2, delay=0.4)
    try:
        vm = await driver.create(ComputeSpec(name="vm"))
        volume = await driver.create(StorageSpec(name="v", size_gib=1))
        started = time.monotonic()
        link = await driver.create(StorageLinkSpec(name="l", compute_id=vm.backend_id, storage_id=volume.backend_id))
        assert link.state == "active" and time.monotonic() - started >= 0.4
        await driver.delete(Ref(COMPUTE, vm.backend_id))
        await driver.delete(Ref(STORAGE, volume.backend_id))
    finally:
        await driver.close()


async def test_a_launch_that_times_out_leaves_nothing(ec2: MotoServer) -> None:
    driver, _ = await slow_driver(ec2, delay=30, wait_timeout="0.5")
    try:
        with pytest.raises(BackendError, match=r"starting the instance \(instance i-[0-9a-f]+\): not done after 0.5 s"):
            await driver.create(ComputeSpec(name="stuck", ssh_public_key=ssh_key()))
    finally:
        await driver.close()
    assert nothing(owned(ec2.client(), driver.settings.owner))


async def test_a_launch_ec2_gives_up_is_a_backend_error(ec2: MotoServer) -> None:
    driver, _ = await slow_driver(ec2, delay=0.2, fate="Server.InsufficientInstanceCapacity")
    try:
        with pytest.raises(BackendError, match="EC2 terminated instance i-[0-9a-f]+ .*no capacity"):
            await driver.create(ComputeSpec(name="unlucky"))
    finally:
        await driver.close()
