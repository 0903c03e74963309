"""The EC2 driver's computes: instances, the AMIs and instance types offered, key pairs, images saved.

A compute is an instance in the driver's subnet; os_tpl templates are AMIs (the AMI id is the
template name), resource_tpl templates are instance types (named as EC2 names them); an SSH key is
a key pair imported for the instance and deleted with it; user data goes to EC2 as it is. Actions
wait, in the event loop, for the state EC2 reports. Imports boto3 (through _ec2_base),
backends.base and errors.
"""

from __future__ import annotations

import fnmatch
import itertools
import uuid
from collections.abc import Mapping
from typing import Any, Final

from occipy.backends import base as b
from occipy.backends._ec2_base import (
    AMI_RE,
    ARCHITECTURES,
    GONE_INSTANCE,
    HIBERNATE_REASON,
    TAG_ENTITY,
    TAG_HIBERNATED,
    TAG_HOSTNAME,
    TAG_NAME,
    TAG_OWNER,
    TAG_SAVED_FROM,
    ImageInfo,
    TypeInfo,
    _Ec2Base,
    image_info,
    tag_spec,
    tags_of,
    type_info,
)
from occipy.backends.base import (
    Action,
    ComputeFacts,
    ComputeSpec,
    ComputeUpdate,
    Observed,
    Restart,
    Save,
    Start,
    Stop,
    Suspend,
    Template,
)
from occipy.errors import BackendError, NotSupported, OcciError

# GFD.222 §7.3-§7.8: the registry offers these resource templates itself; a compute that names one
# gets the smallest offered instance type with at least its cores and memory.
CRTP_SIZES: Final[Mapping[str, tuple[int, float]]] = {
    "small": (1, 1.0), "medium": (2, 2.0), "large": (4, 4.0),
    "mem_small": (1, 4.0), "mem_medium": (2, 8.0), "mem_large": (4, 16.0),
}
METHODS: Final[Mapping[str, frozenset[str]]] = {
    "stop": frozenset({"graceful", "acpioff", "poweroff"}),
    "restart": frozenset({"graceful", "warm", "cold"}),
    "suspend": frozenset({"hibernate", "suspend"}),
    "save": frozenset({"hot", "deferred", "deffered"}),  # rOCCI's misspelling is accepted
}
MAX_USER_DATA: Final = 16 * 1024  # EC2's limit on user data before Base64
KEY_PREFIX: Final = "occipy-"


def check_method(action: str, method: str) -> str:
    if method not in METHODS[action]:
        offered = ", ".join(sorted(m for m in METHODS[action] if m != "deffered"))
        raise NotSupported(f"the ec2 driver has no {action} method {method!r}; it has {offered}")
    return "deferred" if method == "deffered" else method


class _ComputeOps(_Ec2Base):
    """Instances, their templates and key pairs."""

    # ---- the catalogue (templates) -------------------------------------------------------------------

    async def _load_catalogue(self) -> None:
        """Read the offered instance types and AMIs (configured, filtered, saved by occipy)."""
        s = self.settings
        reply = await self._call("reading the instance types (ec2 driver option instance_types)",
                                 self.client.describe_instance_types,
                                 InstanceTypes=list(s.instance_types))
        for item in reply.get("InstanceTypes", []):
            self.types[str(item["InstanceType"])] = type_info(item)
        missing = [t for t in s.instance_types if t not in self.types]
        if missing:
            raise BackendError(f"ec2 driver option instance_types: EC2 has no {', '.join(missing)} in {self._where}")
        self.offered_types = list(s.instance_types)

        images: list[ImageInfo] = []
        if s.images:
            by_id: dict[str, ImageInfo] = {}
            # EC2 refuses the whole list when one id is unknown: then ask one by one to name it.
            for ids in [list(s.images)] if len(s.images) == 1 else [list(s.images), *([i] for i in s.images)]:
                found = await self._find("reading the AMIs of ec2 driver option images", self.client.describe_images,
                                         ImageIds=ids)
                by_id.update((str(i["ImageId"]), image_info(i)) for i in (found.get("Images", []) if found else []))
                if len(by_id) == len(s.images):
                    break
            missing = [i for i in s.images if i not in by_id]
            if missing:
                raise BackendError(f"ec2 driver option images: no AMI {', '.join(missing)} in {self._where}")
            images = [by_id[i] for i in s.images]
        else:
            listed = await self._pages(
                "listing AMIs (ec2 driver options image_owners, image_names)", "describe_images", "Images",
                Owners=list(s.image_owners),
                Filters=[{"Name": "name", "Values": list(s.image_names)},
                         {"Name": "state", "Values": ["available"]},
                         {"Name": "image-type", "Values": ["machine"]}])
            newest = sorted(listed, key=lambda i: (str(i.get("CreationDate", "")), str(i.get("Name", ""))),
                            reverse=True)
            for pattern in s.image_names:
                matching = [i for i in newest if fnmatch.fnmatchcase(str(i.get("Name", "")), pattern)]
                images.extend(image_info(i) for i in matching[: s.images_per_name])
        saved = await self._pages("listing the AMIs occipy saved", "describe_images", "Images", Owners=["self"],
                                  Filters=[*self.owner_filter(), {"Name": "tag-key", "Values": [TAG_SAVED_FROM]}])
        self.images = {}
        for info in images:
            self.images.setdefault(info.image_id, info)
        for item in saved:
            if item.get("State") in ("pending", "available"):
                info = image_info(item)
                self.images.setdefault(info.image_id, info)
                self.saved.add(info.image_id)
        if s.default_image is not None and s.default_image not in self.images:
            found_default = await self._find("reading ec2 driver option default_image", self.client.describe_images,
                                             ImageIds=[s.default_image])
            items = (found_default.get("Images", []) if found_default else [])
            if not items:
                raise BackendError(f"ec2 driver option default_image: no AMI {s.default_image} in {self._where}")
            self.images[s.default_image] = image_info(items[0])
        self.default_image = s.default_image or next(iter(self.images), None)

    def _templates(self) -> list[Template]:
        return [info.template() for info in self.images.values()] + \
               [self.types[name].template() for name in self.offered_types]

    async def _image(self, name: str | None) -> ImageInfo:
        """The AMI a compute boots: the one named (offered, or any AMI id EC2 knows) or the default."""
        image = name or self.default_image
        if image is None:
            raise BackendError("no AMI to boot: the ec2 driver offers none (ec2 driver options images, "
                               "image_names); choose an os_tpl")
        if image in self.images:
            return self.images[image]
        offered = ", ".join(list(self.images)[:6]) or "none"
        if not AMI_RE.match(image):
            raise BackendError(f"no image {image!r} in EC2: an image is an AMI id (offered: {offered})")
        reply = await self._find(f"reading AMI {image}", self.client.describe_images, ImageIds=[image])
        items = [i for i in (reply.get("Images", []) if reply else []) if i.get("State") == "available"]
        if not items:
            raise BackendError(f"no available AMI {image} in {self._where} (offered: {offered})")
        return image_info(items[0])

    def _instance_type(self, spec: ComputeSpec) -> TypeInfo:
        """GFD.224 §3.5.2: the resource template's sizes apply; without one, the smallest offered
        instance type with the cores and memory asked for; with neither, the default type."""
        if spec.flavour is not None:
            if spec.flavour in self.offered_types:
                return self.types[spec.flavour]
            if spec.flavour not in CRTP_SIZES:
                raise BackendError(f"no instance type {spec.flavour!r}; offered: {', '.join(self.offered_types)}")
            cores, memory = CRTP_SIZES[spec.flavour]
            return self._fit(cores, memory)
        if spec.cores is not None or spec.memory_gib is not None:
            return self._fit(spec.cores or 1, spec.memory_gib or 0.0)
        return self.types[self.settings.default_instance_type]

    def _fit(self, cores: int, memory_gib: float) -> TypeInfo:
        fitting = [self.types[t] for t in self.offered_types
                   if self.types[t].vcpus >= cores and self.types[t].memory_gib >= memory_gib - 1e-9]
        if not fitting:
            raise BackendError(f"no offered instance type has {cores} vCPUs and {memory_gib:g} GiB "
                               f"(ec2 driver option instance_types: {', '.join(self.offered_types)})")
        return min(fitting, key=lambda t: (t.vcpus, t.memory_gib, t.name))

    # ---- reading an instance --------------------------------------------------------------------------

    async def _observed_instance(self, instance: Any) -> Observed:
        """GFD.224 §3.1 state and facts of an instance that is not gone."""
        instance_id = str(instance["InstanceId"])
        state = str(instance["State"]["Name"])
        tags = tags_of(instance)
        reason = instance.get("StateReason") or {}
        message: str | None = None
        if state == "running":
            word = b.ACTIVE
            if TAG_HIBERNATED in tags:  # started outside occipy after a hibernation
                await self._untag(instance_id, [TAG_HIBERNATED])
        elif state == "stopped":
            hibernated = TAG_HIBERNATED in tags or reason.get("Code") == HIBERNATE_REASON
            word = b.SUSPENDED if hibernated else b.INACTIVE
            message = "hibernated" if hibernated else None
        elif state in ("pending", "stopping"):
            word, message = b.INACTIVE, f"EC2 reports the instance {state}"
        else:
            word, message = b.ERROR, f"EC2 reports the instance {state}"
        info = await self._type(str(instance.get("InstanceType", "")))
        dns = str(instance.get("PrivateDnsName") or "")
        facts = ComputeFacts(
            cores=info.vcpus if info else None,
            memory_gib=info.memory_gib if info else None,
            architecture=ARCHITECTURES.get(str(instance.get("Architecture", ""))),
            hostname=tags.get(TAG_HOSTNAME) or (dns.partition(".")[0] or None),
        )
        return self._remember(b.COMPUTE, Observed(instance_id, word, message, facts))

    async def _existing_instance(self, instance_id: str) -> Any:
        instance = await self._live_instance(instance_id)
        if instance is None:
            raise BackendError(f"no instance {instance_id} in {self._where}")
        return instance

    async def _until(self, instance_id: str, wanted: str, what: str) -> Any:
        """Wait until EC2 reports the instance `wanted` (running or stopped)."""

        async def read() -> Any:
            instance = await self._instance(instance_id)
            if instance is None:
                raise BackendError(f"{what}: instance {instance_id} disappeared")
            return instance

        def done(instance: Any) -> bool:
            state = instance["State"]["Name"]
            if state in GONE_INSTANCE:
                reason = (instance.get("StateReason") or {}).get("Message") or "no reason given"
                raise BackendError(f"{what}: EC2 terminated instance {instance_id} ({reason})")
            return bool(state == wanted)

        return await self._wait(f"{what} (instance {instance_id})", read, done)

    # ---- create --------------------------------------------------------------------------------------------

    async def _create_compute(self, spec: ComputeSpec) -> Observed:
        image = await self._image(spec.image)
        itype = self._instance_type(spec)
        if spec.architecture is not None and ARCHITECTURES.get(image.architecture) != spec.architecture:
            raise BackendError(f"AMI {image.image_id} is {image.architecture}, not {spec.architecture} "
                               "(occi.compute.architecture)")
        if spec.user_data is not None and len(spec.user_data) > MAX_USER_DATA:
            raise BackendError(f"user data is {len(spec.user_data)} bytes; EC2 takes at most 16 KiB")
        params: dict[str, Any] = {
            "ImageId": image.image_id, "InstanceType": itype.name, "MinCount": 1, "MaxCount": 1,
            "SubnetId": self.subnet_id, "SecurityGroupIds": self.security_groups,
            # Idempotent: botocore's own retries of this request never launch a second instance.
            "ClientToken": uuid.uuid4().hex,
            "TagSpecifications": [
                tag_spec("instance", self.owned(**{TAG_NAME: spec.name, TAG_ENTITY: spec.entity_id or None,
                                                   TAG_HOSTNAME: spec.hostname})),
                # The root volume is the instance's: no owner or entity tag (the inventory must not
                # list it as a storage of its own).
                tag_spec("volume", {TAG_NAME: f"{spec.name}-root"}),
            ],
        }
        if spec.user_data is not None:
            params["UserData"] = spec.user_data  # botocore Base64-encodes it
        if self.settings.hibernation and itype.hibernation:
            params["HibernationOptions"] = {"Configured": True}
            if image.root_device:  # hibernation needs an encrypted root volume
                ebs: dict[str, Any] = {"Encrypted": True}
                if image.root_size:
                    ebs["VolumeSize"] = image.root_size
                params["BlockDeviceMappings"] = [{"DeviceName": image.root_device, "Ebs": ebs}]
        key_name: str | None = None
        if spec.ssh_public_key:
            key_name = await self._import_key(spec)
            params["KeyName"] = key_name
        try:
            reply = await self._call(f"launching instance {spec.name!r}", self.client.run_instances, **params)
        except OcciError:
            if key_name is not None:
                await self._quietly("deleting key pair", self.client.delete_key_pair, KeyName=key_name)
            raise
        instance_id = str(reply["Instances"][0]["InstanceId"])
        with self._working(instance_id):
            try:
                instance = await self._until(instance_id, "running", "starting the instance")
            except BaseException:
                # A failed create leaves nothing behind (a cancelled one is found by the inventory).
                await self._terminate(instance_id, wait=False)
                raise
            return await self._observed_instance(instance)

    async def _import_key(self, spec: ComputeSpec) -> str:
        key_name = f"{KEY_PREFIX}{uuid.uuid4().hex}"
        assert spec.ssh_public_key is not None
        await self._call(
            "importing the SSH key (occi.credentials.ssh.publickey)", self.client.import_key_pair,
            KeyName=key_name, PublicKeyMaterial=spec.ssh_public_key.strip().encode(),
            TagSpecifications=[tag_spec("key-pair", self.owned(**{TAG_NAME: spec.name}))])
        return key_name

    # ---- delete ----------------------------------------------------------------------------------------------

    async def _terminate(self, instance_id: str, *, wait: bool = True) -> None:
        """Terminate the instance and delete its key pair; with `wait`, until EC2 reports it terminated."""
        instance = await self._instance(instance_id)
        if instance is None:
            return
        if instance["State"]["Name"] != "terminated":
            await self._find(f"terminating instance {instance_id}", self.client.terminate_instances,
                             InstanceIds=[instance_id])
        key_name = str(instance.get("KeyName") or "")
        if key_name.startswith(KEY_PREFIX):
            await self._delete_key(key_name)
        if wait:

            async def read() -> Any:
                return await self._instance(instance_id)

            await self._wait(f"terminating instance {instance_id}", read,
                             lambda i: i is None or i["State"]["Name"] == "terminated")

    async def _delete_key(self, key_name: str) -> None:
        reply = await self._find("reading key pair", self.client.describe_key_pairs, KeyNames=[key_name])
        for pair in (reply.get("KeyPairs", []) if reply else []):
            if tags_of(pair).get(TAG_OWNER) == self.settings.owner:
                await self._quietly(f"deleting key pair {key_name}", self.client.delete_key_pair, KeyName=key_name)

    async def _collect_keys(self) -> None:
        """Delete key pairs occipy imported for instances that are gone (a crash between import and
        launch, or during a delete)."""
        pairs = await self._call("listing key pairs", self.client.describe_key_pairs, Filters=self.owner_filter())
        ours = {str(p["KeyName"]) for p in pairs.get("KeyPairs", []) if str(p.get("KeyName", "")).startswith(KEY_PREFIX)}
        if not ours:
            return
        instances = await self._pages("listing instances", "describe_instances", "Reservations",
                                      Filters=[{"Name": "key-name", "Values": sorted(ours)}])
        used = {str(i.get("KeyName")) for i in instances if i["State"]["Name"] != "terminated"}
        for key_name in sorted(ours - used):
            await self._quietly(f"deleting key pair {key_name}", self.client.delete_key_pair, KeyName=key_name)

    # ---- actions ----------------------------------------------------------------------------------------------

    async def _act_compute(self, instance_id: str, action: Action) -> Observed:
        if isinstance(action, Save):
            template = await self._save(instance_id, action)
            observed = await self._observe_compute(instance_id)
            if observed is None:
                raise BackendError(f"instance {instance_id} disappeared while it was saved")
            return Observed(observed.backend_id, observed.state, f"saved as image {template.name}", observed.facts)
        if isinstance(action, Start):
            instance = await self._start(instance_id)
        elif isinstance(action, Stop):
            instance = await self._stop(instance_id, check_method("stop", action.method) == "poweroff")
        elif isinstance(action, Restart):
            instance = await self._restart(instance_id, check_method("restart", action.method))
        elif isinstance(action, Suspend):
            check_method("suspend", action.method)
            if not self.settings.hibernation:
                raise NotSupported("the ec2 driver suspends by hibernation, which is off (ec2 driver option "
                                   "hibernation)")
            instance = await self._hibernate(instance_id)
        else:
            raise NotSupported(f"the ec2 driver has no compute action {action.name!r}")
        return await self._observed_instance(instance)

    async def _start(self, instance_id: str) -> Any:
        instance = await self._existing_instance(instance_id)
        state = instance["State"]["Name"]
        if state == "stopping":
            instance = await self._until(instance_id, "stopped", "waiting for the instance to stop")
            state = "stopped"
        if state == "stopped":
            await self._call(f"starting instance {instance_id}", self.client.start_instances, InstanceIds=[instance_id])
        instance = await self._until(instance_id, "running", "starting the instance")
        if TAG_HIBERNATED in tags_of(instance):
            await self._untag(instance_id, [TAG_HIBERNATED])
            instance = await self._existing_instance(instance_id)
        return instance

    async def _stop(self, instance_id: str, force: bool, *, hibernate: bool = False) -> Any:
        instance = await self._existing_instance(instance_id)
        state = instance["State"]["Name"]
        if state == "pending":
            await self._until(instance_id, "running", "waiting for the instance to start")
            state = "running"
        if state == "running":
            params: dict[str, Any] = {"InstanceIds": [instance_id], "Force": force}
            if hibernate:
                params["Hibernate"] = True
            await self._call(f"stopping instance {instance_id}", self.client.stop_instances, **params)
        if not hibernate and TAG_HIBERNATED in tags_of(instance):
            # A hibernated instance asked to stop: occipy now reports it stopped (EC2 keeps its
            # memory image until it is started again).
            await self._untag(instance_id, [TAG_HIBERNATED])
        return await self._until(instance_id, "stopped", "stopping the instance")

    async def _restart(self, instance_id: str, method: str) -> Any:
        instance = await self._existing_instance(instance_id)
        if method == "cold" or instance["State"]["Name"] != "running":
            await self._stop(instance_id, force=method == "cold")
            return await self._start(instance_id)
        # graceful and warm: EC2's reboot (an ACPI reboot request; EC2 forces it after a few minutes).
        await self._call(f"rebooting instance {instance_id}", self.client.reboot_instances, InstanceIds=[instance_id])
        return await self._until(instance_id, "running", "rebooting the instance")

    async def _hibernate(self, instance_id: str) -> Any:
        instance = await self._existing_instance(instance_id)
        if not (instance.get("HibernationOptions") or {}).get("Configured"):
            raise BackendError(f"instance {instance_id} was launched without hibernation (its instance type "
                               f"{instance.get('InstanceType')} or the setting at launch did not allow it)")
        if instance["State"]["Name"] == "stopped":
            if TAG_HIBERNATED in tags_of(instance):
                return instance
            raise BackendError(f"instance {instance_id} is stopped; only a running instance can hibernate")
        # The tag first: EC2 may not say why an instance stopped (moto never does).
        await self._tag(instance_id, {TAG_HIBERNATED: "true"})
        try:
            return await self._stop(instance_id, force=False, hibernate=True)
        except OcciError:
            await self._untag(instance_id, [TAG_HIBERNATED])
            raise

    # ---- save (Saves) -----------------------------------------------------------------------------------------

    async def _save(self, instance_id: str, request: Save) -> Template:
        method = check_method("save", request.method)
        instance = await self._existing_instance(instance_id)
        base = request.image_name or f"{tags_of(instance).get(TAG_NAME) or instance_id}-snapshot"
        name = await self._free_image_name(base, numbered=request.image_name is None)
        reply = await self._call(
            f"saving instance {instance_id} as image {name!r}", self.client.create_image,
            InstanceId=instance_id, Name=name, Description=f"saved by occipy from {instance_id}",
            # hot: no reboot (crash-consistent); deferred: EC2 shuts the guest down for the image.
            NoReboot=method == "hot",
            TagSpecifications=[tag_spec("image", self.owned(**{TAG_NAME: name, TAG_SAVED_FROM: instance_id})),
])
        image_id = str(reply["ImageId"])

        async def read() -> Any:
            found = await self._find(f"reading image {image_id}", self.client.describe_images, ImageIds=[image_id])
            images = found.get("Images", []) if found else []
            return images[0] if images else None

        def done(image: Any) -> bool:
            state = image.get("State") if image else "pending"
            if state in ("failed", "invalid", "deregistered", "error"):
                reason = (image.get("StateReason") or {}).get("Message") or state
                raise BackendError(f"saving instance {instance_id}: EC2 could not make the image ({reason})")
            return bool(state == "available")

        image = await self._wait(f"saving instance {instance_id} as image {name!r}", read, done)
        info = image_info(image)
        self.images[info.image_id] = info
        self.saved.add(info.image_id)
        if method == "deferred":
            await self._until(instance_id, "running", "waiting for the instance after the image")
        return info.template()

    async def _free_image_name(self, base: str, *, numbered: bool) -> str:
        """An AMI name not yet used in this account and region (EC2 requires unique names)."""
        candidates = (f"{base}-{n}" for n in itertools.count(1)) if numbered else \
            itertools.chain([base], (f"{base}-{n}" for n in itertools.count(2)))
        for candidate in candidates:
            reply = await self._call("reading image names", self.client.describe_images, Owners=["self"],
                                     Filters=[{"Name": "name", "Values": [candidate]}])
            if not reply.get("Images"):
                return candidate
        raise AssertionError("unreachable")  # pragma: no cover

    # ---- update (Updates) --------------------------------------------------------------------------------------

    async def _update_compute(self, instance_id: str, change: ComputeUpdate) -> Observed:
        others = [f for f in ("cores", "memory_gib", "architecture", "image") if getattr(change, f) is not None]
        if others:
            raise NotSupported(f"the ec2 driver cannot change {', '.join(others)} of an instance; choose another "
                               "resource template (instance type) instead")
        instance = await self._existing_instance(instance_id)
        if change.flavour is None or change.flavour == instance.get("InstanceType"):
            return await self._observed_instance(instance)
        if change.flavour not in self.offered_types:
            raise BackendError(f"no instance type {change.flavour!r}; offered: {', '.join(self.offered_types)}")
        # EC2 changes the type of a stopped instance only: stop, change, start again if it ran.
        was_running = instance["State"]["Name"] in ("pending", "running")
        await self._stop(instance_id, force=False)
        await self._call(f"changing the instance type of {instance_id}", self.client.modify_instance_attribute,
                         InstanceId=instance_id, InstanceType={"Value": change.flavour})
        instance = await self._start(instance_id) if was_running else await self._existing_instance(instance_id)
        return await self._observed_instance(instance)

    async def _observe_compute(self, instance_id: str) -> Observed | None:
        instance = await self._live_instance(instance_id)
        if instance is None:
            self._forget(b.COMPUTE, instance_id)
            return None
        return await self._observed_instance(instance)
