"""A nova compute driver with no hypervisor whose snapshots become real (tiny) images.

nova.virt.fake.FakeDriver.snapshot only sets the task state, so the image nova created for a
createImage stays `queued` in glance for ever and nothing can boot from it. Real drivers (libvirt's
`snapshot`) upload the disk and mark the image active: this subclass uploads a few bytes the same
way, so `save` and booting from a saved image work as on a real cloud.

nova loads its driver only from the `nova.virt` package (`compute_driver = NAME` imports
`nova.virt.NAME`), so nova-compute runs through `main_compute`, which registers this module as
`nova.virt.occipy_fake` and then runs nova's own entry point. `nova.cmd` is imported first: it
applies eventlet's monkey patching, which must come before the rest of nova is imported.
"""

import io
import sys

import nova.cmd  # noqa: F401  (eventlet monkey patching, before anything else of nova)
from nova.image import glance
from nova.virt import fake

SNAPSHOT_BYTES = b"occipy fake snapshot\n" * 64
ALIAS = "nova.virt.occipy_fake"  # compute_driver = occipy_fake.SnapshotFakeDriver


class SnapshotFakeDriver(fake.FakeDriver):
    """FakeDriver whose snapshot uploads SNAPSHOT_BYTES as a raw image (as libvirt's does)."""

    def snapshot(self, context, instance, image_id, update_task_state):
        super().snapshot(context, instance, image_id, update_task_state)
        metadata = {"status": "active", "disk_format": "raw", "container_format": "bare",
                    "properties": {"image_location": "snapshot", "image_state": "available",
                                   "owner_id": instance.project_id}}
        glance.API().update(context, image_id, metadata, io.BytesIO(SNAPSHOT_BYTES), purge_props=False)


def main_compute():
    """nova-compute, with this module importable as nova.virt.occipy_fake."""
    from nova.cmd import compute

    sys.modules[ALIAS] = sys.modules[__name__]
    return compute.main()
