"""A cinder volume driver that keeps nothing: create, attach, detach and delete only log.

Subclass of the fake that Debian ships in cinder/tests/fake_driver.py, with no-op image copies so
that volumes made from images (boot from volume) and uploads to images work too, and a no-op
extend (the fake's LVM stand-in has none, so a resize would end in error_extending).
"""

from cinder.tests import fake_driver


class FakeVolumeDriver(fake_driver.FakeLoggingVolumeDriver):
    """FakeLoggingVolumeDriver plus image copies that copy nothing and an extend that grows nothing."""

    def copy_image_to_volume(self, context, volume, image_service, image_id):
        pass

    def copy_volume_to_image(self, context, volume, image_service, image_meta):
        pass

    def extend_volume(self, volume, new_size):
        pass
