"""What the EC2 driver's parts share: the boto3 client, calls in worker threads, errors, tags, waits.

Every blocking boto3 call goes through `_Ec2Base._call`, which runs it under
`anyio.to_thread.run_sync` and turns botocore's exceptions into OcciErrors: the cloud refused
(BackendError), the endpoint cannot be reached or is failing (BackendUnavailable, naming the cloud).
Transitions (pending -> running, attaching -> attached) are waited for here, in the event loop,
with `asyncio.sleep` between describes, so no worker thread sleeps. Imports boto3/botocore,
backends.base, errors and the settings module; only the EC2 driver's modules import boto3.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeVar

import anyio.to_thread
import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
    ProxyConnectionError,
    ReadTimeoutError,
    SSLError,
)
from botocore.parsers import ResponseParserError

from occipy.backends import base as b
from occipy.backends._ec2_settings import Settings
from occipy.backends.base import Observed, Ref, Template
from occipy.errors import BackendError, BackendUnavailable, OcciError

if TYPE_CHECKING:
    from mypy_boto3_ec2.client import EC2Client
    from mypy_boto3_ec2.type_defs import TagSpecificationTypeDef, TagTypeDef
else:
    EC2Client = Any

T = TypeVar("T")
X = TypeVar("X")

# ---- tags: how occipy finds its objects again --------------------------------------------------------

TAG_NAME: Final = "Name"
TAG_OWNER: Final = "occipy:owner"  # on every object occipy makes: the `owner` setting
TAG_ENTITY: Final = "occipy:entity"  # the OCCI entity id of the object itself
TAG_LINK_ENTITY: Final = "occipy:link-entity"  # on a volume: the entity id of its storagelink
TAG_MOUNTPOINT: Final = "occipy:mountpoint"  # on a volume: its storagelink's mountpoint
TAG_INTERFACE: Final = "occipy:interface"  # on an ENI: the interface name the client chose
TAG_ALLOCATION: Final = "occipy:allocation"  # on an ENI: static or dynamic
TAG_HOSTNAME: Final = "occipy:hostname"  # on an instance: occi.compute.hostname as asked
TAG_HIBERNATED: Final = "occipy:hibernated"  # on an instance: occipy hibernated it (suspend)
TAG_CIDR: Final = "occipy:cidr-association"  # on a subnet: the VPC CIDR block occipy added for it
TAG_LABEL: Final = "occipy:label"  # on a subnet: occi.network.label
TAG_SAVED_FROM: Final = "occipy:saved-from"  # on an AMI: the instance it was saved from
TAG_GROUP_LINK: Final = "occipy:link:"  # on a security group, + instance id: its securitygrouplink's entity id
MAX_TAG_VALUE: Final = 256  # EC2's limit; longer entity ids are not recorded

# ---- ids -------------------------------------------------------------------------------------------

INSTANCE_RE: Final = re.compile(r"^i-[0-9a-f]{8,17}$")
VOLUME_RE: Final = re.compile(r"^vol-[0-9a-f]{8,17}$")
SUBNET_RE: Final = re.compile(r"^subnet-[0-9a-f]{8,17}$")
ENI_RE: Final = re.compile(r"^eni-[0-9a-f]{8,17}$")
AMI_RE: Final = re.compile(r"^ami-[0-9a-f]{8,17}$")
# A storagelink is an attachment, which has no id of its own in EC2: "<instance>/<volume>".
ATTACHMENT_RE: Final = re.compile(r"^(i-[0-9a-f]{8,17})/(vol-[0-9a-f]{8,17})$")

# ---- states -------------------------------------------------------------------------------------------

GONE_INSTANCE: Final = frozenset({"shutting-down", "terminated"})
GONE_VOLUME: Final = frozenset({"deleting", "deleted"})
ARCHITECTURES: Final[Mapping[str, str]] = {"x86_64": "x64", "i386": "x86"}  # EC2 -> GFD.224 §3.1
HIBERNATE_REASON: Final = "Client.UserInitiatedHibernate"

# Error codes that mean "the cloud is failing or busy", not "the cloud refused this request".
_UNAVAILABLE: Final = frozenset({
    "InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable", "RequestLimitExceeded",
    "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeoutException",
})
# ResponseParserError: an answer that is not EC2's XML (a proxy's or a failing server's HTML page).
_BOTO_ERRORS: Final = (BotoCoreError, ClientError, ResponseParserError)
_CONNECTION_ERRORS: Final = (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError,
                             ProxyConnectionError, SSLError, HTTPClientError)


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def is_missing(exc: BaseException) -> bool:
    """The request named an object that does not exist (or an id that cannot name one)."""
    code = error_code(exc)
    return code.endswith((".NotFound", ".Malformed")) or code in ("InvalidID", "InvalidInstanceID")


def translate(exc: BaseException, what: str, where: str) -> OcciError:
    """botocore's exception as the OcciError the contract names (backends/base.py)."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code, message = str(error.get("Code", "")), str(error.get("Message", "")).strip()
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        detail = f"{code}: {message}" if message else code
        if code in _UNAVAILABLE or status >= 500:
            return BackendUnavailable(f"Amazon EC2 at {where} is unavailable ({what}): {detail}")
        return BackendError(f"{what} failed: Amazon EC2 answered {detail}")
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return BackendError(f"{what} failed: no usable AWS credentials ({exc}); set the ec2 driver options "
                            "access_key_id and secret_access_key, or configure boto3 (AWS_ACCESS_KEY_ID, "
                            "AWS_PROFILE, an instance role)")
    if isinstance(exc, _CONNECTION_ERRORS):
        return BackendUnavailable(f"cannot reach Amazon EC2 at {where} ({what}): {exc}")
    if isinstance(exc, ResponseParserError):
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return BackendUnavailable(f"Amazon EC2 at {where} answered something that is not EC2's ({what}): {first}")
    return BackendError(f"{what} failed: {exc}")


def tags_of(obj: Mapping[str, Any]) -> dict[str, str]:
    """An EC2 object's tags as a dict (`Tags`, or `TagSet` on network interfaces)."""
    listed = obj.get("Tags") or obj.get("TagSet") or []
    return {str(tag.get("Key", "")): str(tag.get("Value", "")) for tag in listed}


def tag_list(tags: Mapping[str, str | None]) -> list[TagTypeDef]:
    """Tags for an EC2 call; values that are None or too long for EC2 are left out."""
    return [{"Key": key, "Value": value} for key, value in tags.items()
            if value is not None and len(value) <= MAX_TAG_VALUE]


def tag_spec(resource_type: str, tags: Mapping[str, str | None]) -> TagSpecificationTypeDef:
    return {"ResourceType": resource_type, "Tags": tag_list(tags)}  # type: ignore[typeddict-item]


def gateway_of(cidr: str) -> str:
    """EC2 puts the VPC router on the first host address of every subnet."""
    return str(ipaddress.ip_network(cidr, strict=False).network_address + 1)


@dataclass(frozen=True, slots=True)
class TypeInfo:
    """What one instance type gives (describe_instance_types)."""

    name: str
    vcpus: int
    memory_gib: float
    hibernation: bool
    max_interfaces: int

    def template(self) -> Template:
        return Template(b.FLAVOUR, self.name, f"{self.name}: {self.vcpus} vCPU, {self.memory_gib:g} GiB",
                        cores=self.vcpus, memory_gib=self.memory_gib)


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What the driver needs to know about one AMI."""

    image_id: str
    name: str
    architecture: str  # EC2's word: x86_64, i386, arm64, ...
    root_device: str | None
    root_size: int | None  # GiB of the root volume's snapshot

    def template(self) -> Template:
        return Template(b.IMAGE, self.image_id, self.name or self.image_id,
                        architecture=ARCHITECTURES.get(self.architecture))


def type_info(item: Mapping[str, Any]) -> TypeInfo:
    return TypeInfo(
        name=str(item["InstanceType"]),
        vcpus=int(item.get("VCpuInfo", {}).get("DefaultVCpus", 1)),
        memory_gib=round(int(item.get("MemoryInfo", {}).get("SizeInMiB", 1024)) / 1024, 3),
        hibernation=bool(item.get("HibernationSupported", False)),
        max_interfaces=int(item.get("NetworkInfo", {}).get("MaximumNetworkInterfaces", 2)),
    )


def image_info(item: Mapping[str, Any]) -> ImageInfo:
    name = str(item.get("Name") or item.get("Description") or item["ImageId"]).strip()
    root = item.get("RootDeviceName")
    size = next((m.get("Ebs", {}).get("VolumeSize") for m in item.get("BlockDeviceMappings", [])
                 if m.get("DeviceName") == root), None)
    return ImageInfo(str(item["ImageId"]), name, str(item.get("Architecture", "x86_64")), root,
                     int(size) if size else None)


@functools.cache
def _loader() -> botocore.loaders.Loader:
    """botocore's model loader, shared: loading EC2's API model costs about 0.4 s per session."""
    return botocore.loaders.create_loader()


def make_client(settings: Settings) -> EC2Client:
    """A boto3 EC2 client from the settings (blocking: boto3 reads its config files)."""
    core = botocore.session.get_session()
    core.register_component("data_loader", _loader())
    session = boto3.session.Session(
        aws_access_key_id=settings.access_key_id, aws_secret_access_key=settings.secret_access_key,
        aws_session_token=settings.session_token, profile_name=settings.profile, region_name=settings.region,
        botocore_session=core)
    config = Config(
        connect_timeout=settings.connect_timeout, read_timeout=settings.read_timeout,
        retries={"mode": "standard", "max_attempts": settings.max_attempts},
        user_agent_extra="occipy",
    )
    return session.client("ec2", endpoint_url=settings.endpoint_url, config=config)


class _Ec2Base:
    """The client, the resolved placement and the plumbing shared by the driver's parts."""

    def __init__(self, settings: Settings, client_factory: Callable[[Settings], EC2Client] | None = None) -> None:
        self.settings = settings
        self._client_factory = client_factory or make_client
        self._client: EC2Client | None = None
        self._where = settings.endpoint_url or f"region {settings.region or '(boto3 default)'}"
        # Resolved by open(): the VPC, the availability zone and the subnet of primary interfaces.
        self.vpc_id = ""
        self.vpc_cidrs: list[str] = []
        self.zone = ""
        self.subnet_id = ""
        self.security_groups: list[str] = []
        self.types: dict[str, TypeInfo] = {}  # every instance type seen (offered or not)
        self.offered_types: list[str] = []
        self.images: dict[str, ImageInfo] = {}  # offered AMIs, configured and saved
        self.saved: set[str] = set()
        self.default_image: str | None = None
        self._locks: dict[str, asyncio.Lock] = {}
        self._busy: Counter[str] = Counter()
        self._last: dict[Ref, Observed] = {}  # what occipy last reported, for changes()

    @property
    def client(self) -> EC2Client:
        if self._client is None:
            raise BackendUnavailable("the ec2 driver is not open")
        return self._client

    async def _connect(self) -> None:
        """Make the client (boto3 reads its configuration files and environment here)."""
        try:
            client = await anyio.to_thread.run_sync(self._client_factory, self.settings)
        except NoRegionError:
            raise BackendError("no AWS region: set ec2 driver option region (OCCIPY_EC2_REGION) or configure "
                               "boto3 (AWS_DEFAULT_REGION, the profile's region)") from None
        except ProfileNotFound as exc:
            raise BackendError(f"ec2 driver option profile: {exc}") from None
        except _BOTO_ERRORS as exc:
            raise translate(exc, "setting up the EC2 client", self._where) from None
        self._client = client
        if self.settings.region is None and self.settings.endpoint_url is None:
            self._where = f"region {client.meta.region_name}"

    # ---- calls ---------------------------------------------------------------------------------------

    async def _call(self, what: str, fn: Callable[..., T], /, **kwargs: Any) -> T:
        """One blocking boto3 call in a worker thread; botocore errors become OcciErrors."""
        try:
            return await anyio.to_thread.run_sync(functools.partial(fn, **kwargs))
        except _BOTO_ERRORS as exc:
            raise translate(exc, what, self._where) from None

    async def _find(self, what: str, fn: Callable[..., T], /, **kwargs: Any) -> T | None:
        """Like `_call`, but None when the request names an object that does not exist."""
        try:
            return await anyio.to_thread.run_sync(functools.partial(fn, **kwargs))
        except _BOTO_ERRORS as exc:
            if is_missing(exc):
                return None
            raise translate(exc, what, self._where) from None

    async def _quietly(self, what: str, fn: Callable[..., object], /, **kwargs: Any) -> None:
        """Clean-up after a failure: an error here must not hide the first one."""
        with contextlib.suppress(OcciError):
            await self._find(what, fn, **kwargs)

    async def _pages(self, what: str, operation: str, key: str, **kwargs: Any) -> list[Any]:
        """Every item of a paginated describe call."""

        def read() -> list[Any]:
            paginator = self.client.get_paginator(operation)  # type: ignore[call-overload]
            items: list[Any] = []
            for page in paginator.paginate(**kwargs):
                if key == "Reservations":
                    items.extend(i for r in page.get("Reservations", []) for i in r.get("Instances", []))
                else:
                    items.extend(page.get(key, []))
            return items

        try:
            return await anyio.to_thread.run_sync(read)
        except _BOTO_ERRORS as exc:
            raise translate(exc, what, self._where) from None

    async def _wait(self, what: str, read: Callable[[], Awaitable[X]], done: Callable[[X], bool],
                    timeout: float | None = None) -> X:
        """Describe until `done` (which may raise BackendError for a failure state) or the timeout."""
        limit = self.settings.wait_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while True:
            value = await read()
            if done(value):
                return value
            if time.monotonic() >= deadline:
                raise BackendError(f"{what}: not done after {limit:g} s (ec2 driver option wait_timeout)")
            await asyncio.sleep(self.settings.wait_interval)

    # ---- describes of one object (None: it does not exist) --------------------------------------------

    async def _instance(self, instance_id: str) -> Any | None:
        if not INSTANCE_RE.match(instance_id):
            return None
        reply = await self._find(f"reading instance {instance_id}", self.client.describe_instances,
                                 InstanceIds=[instance_id])
        found = [i for r in (reply.get("Reservations", []) if reply else []) for i in r.get("Instances", [])]
        return found[0] if found else None

    async def _live_instance(self, instance_id: str) -> Any | None:
        """The instance unless it is gone or going (terminated, shutting-down)."""
        instance = await self._instance(instance_id)
        if instance is None or instance["State"]["Name"] in GONE_INSTANCE:
            return None
        return instance

    async def _volume(self, volume_id: str) -> Any | None:
        if not VOLUME_RE.match(volume_id):
            return None
        reply = await self._find(f"reading volume {volume_id}", self.client.describe_volumes, VolumeIds=[volume_id])
        found = (reply.get("Volumes", []) if reply else [])
        if not found or found[0]["State"] in GONE_VOLUME:
            return None
        return found[0]

    async def _subnet(self, subnet_id: str) -> Any | None:
        if not SUBNET_RE.match(subnet_id):
            return None
        reply = await self._find(f"reading subnet {subnet_id}", self.client.describe_subnets, SubnetIds=[subnet_id])
        found = (reply.get("Subnets", []) if reply else [])
        return found[0] if found else None

    async def _eni(self, eni_id: str) -> Any | None:
        if not ENI_RE.match(eni_id):
            return None
        reply = await self._find(f"reading network interface {eni_id}", self.client.describe_network_interfaces,
                                 NetworkInterfaceIds=[eni_id])
        found = (reply.get("NetworkInterfaces", []) if reply else [])
        return found[0] if found else None

    async def _type(self, name: str) -> TypeInfo | None:
        """An instance type's sizes (looked up once; None when EC2 does not know it)."""
        if name not in self.types:
            reply = await self._find(f"reading instance type {name}", self.client.describe_instance_types,
                                     InstanceTypes=[name])
            for item in (reply.get("InstanceTypes", []) if reply else []):
                self.types[str(item["InstanceType"])] = type_info(item)
        return self.types.get(name)

    async def _linked_groups(self, instance_id: str) -> list[str]:
        """The security groups occipy linked the instance to (securitygrouplink)."""
        groups = await self._pages("listing the instance's security groups", "describe_security_groups",
                                   "SecurityGroups",
                                   Filters=[{"Name": "tag-key", "Values": [TAG_GROUP_LINK + instance_id]}])
        return [str(g["GroupId"]) for g in groups]

    # ---- tags -------------------------------------------------------------------------------------------

    def owned(self, **tags: str | None) -> dict[str, str | None]:
        """The tags of an object occipy makes: its owner and name, plus these."""
        return {TAG_OWNER: self.settings.owner, **tags}

    def owner_filter(self) -> list[Any]:
        return [{"Name": f"tag:{TAG_OWNER}", "Values": [self.settings.owner]}]

    async def _tag(self, resource_id: str, tags: Mapping[str, str | None]) -> None:
        listed = tag_list(tags)
        if listed:
            await self._call(f"tagging {resource_id}", self.client.create_tags, Resources=[resource_id], Tags=listed)

    async def _untag(self, resource_id: str, keys: Sequence[str]) -> None:
        await self._quietly(f"untagging {resource_id}", self.client.delete_tags, Resources=[resource_id],
                            Tags=[{"Key": key} for key in keys])

    # ---- serialising and following -----------------------------------------------------------------------

    def _lock(self, backend_id: str) -> asyncio.Lock:
        return self._locks.setdefault(backend_id, asyncio.Lock())

    @contextlib.contextmanager
    def _working(self, *backend_ids: str) -> Iterator[None]:
        """Mark objects as being changed by occipy: changes() does not report them meanwhile."""
        self._busy.update(backend_ids)
        try:
            yield
        finally:
            self._busy.subtract(backend_ids)
            for backend_id in backend_ids:
                if self._busy[backend_id] <= 0:
                    del self._busy[backend_id]

    def _remember(self, resource: str, observed: Observed) -> Observed:
        self._last[Ref(resource, observed.backend_id)] = observed
        return observed

    def _forget(self, resource: str, backend_id: str) -> None:
        self._last.pop(Ref(resource, backend_id), None)
