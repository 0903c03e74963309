"""Smoke test of moto_server with boto3: instance lifecycle, a volume attachment, per-test reset."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.services.moto_ec2 import MotoServer


def state(ec2: object, instance_id: str) -> str:
    reply = ec2.describe_instances(InstanceIds=[instance_id])  # type: ignore[attr-defined]
    return str(reply["Reservations"][0]["Instances"][0]["State"]["Name"])


def test_instance_lifecycle_and_volume_attachment(moto: MotoServer) -> None:
    assert moto.endpoint_url.startswith("http://127.0.0.1:")
    session = moto.session()
    assert isinstance(session, boto3.session.Session)
    ec2 = session.client("ec2", endpoint_url=moto.endpoint_url)
    vpc = ec2.create_vpc(CidrBlock="10.10.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.10.1.0/24", AvailabilityZone="us-east-1a")
    subnet_id = subnet["Subnet"]["SubnetId"]
    image_id = ec2.describe_images(Owners=["amazon"], MaxResults=5)["Images"][0]["ImageId"]

    started = ec2.run_instances(ImageId=image_id, InstanceType="t3.micro", MinCount=1, MaxCount=1,
                                SubnetId=subnet_id, TagSpecifications=[
                                    {"ResourceType": "instance", "Tags": [{"Key": "occi", "Value": "vm1"}]}])
    instance = started["Instances"][0]
    instance_id = instance["InstanceId"]
    assert instance["SubnetId"] == subnet_id
    assert instance["PrivateIpAddress"].startswith("10.10.1.")
    assert state(ec2, instance_id) == "running"

    ec2.stop_instances(InstanceIds=[instance_id])
    assert state(ec2, instance_id) == "stopped"
    ec2.start_instances(InstanceIds=[instance_id])
    assert state(ec2, instance_id) == "running"

    volume_id = ec2.create_volume(AvailabilityZone="us-east-1a", Size=1, VolumeType="gp3")["VolumeId"]
    ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdf")
    volume = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]
    assert volume["State"] == "in-use"
    assert volume["Attachments"][0]["InstanceId"] == instance_id
    # moto needs InstanceId on detach (ecosystem.md §7: without it, a TypeError inside moto)
    ec2.detach_volume(VolumeId=volume_id, InstanceId=instance_id)
    assert ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["State"] == "available"
    ec2.delete_volume(VolumeId=volume_id)

    ec2.terminate_instances(InstanceIds=[instance_id])
    assert state(ec2, instance_id) == "terminated"
    with pytest.raises(ClientError, match="InvalidVolume.NotFound"):
        ec2.describe_volumes(VolumeIds=[volume_id])


def test_each_test_starts_from_a_reset_server(moto: MotoServer) -> None:
    ec2 = moto.client("ec2")
    tagged = ec2.describe_instances(Filters=[{"Name": "tag:occi", "Values": ["vm1"]}])
    assert tagged["Reservations"] == []
    assert [v["CidrBlock"] for v in ec2.describe_vpcs()["Vpcs"]] == ["172.31.0.0/16"]  # only the default VPC


def test_reset_forgets_everything(moto_server: MotoServer) -> None:
    ec2 = moto_server.client("ec2", region="eu-west-1")
    ec2.create_key_pair(KeyName="occi-key")
    assert [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]] == ["occi-key"]
    moto_server.reset()
    assert ec2.describe_key_pairs()["KeyPairs"] == []
