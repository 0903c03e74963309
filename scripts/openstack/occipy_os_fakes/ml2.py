"""An ML2 mechanism driver that binds every port on every segment, as if a switch had wired it.

Registered as `occipy_bindall` under the `neutron.ml2.mechanism_drivers` entry point. Ports go
ACTIVE with an OVS VIF type; nothing is plugged anywhere (nova's fake.FakeDriver plugs nothing).
"""

from neutron_lib import constants
from neutron_lib.api.definitions import portbindings
from neutron_lib.plugins.ml2 import api


class BindAllMechanismDriver(api.MechanismDriver):
    """Bind each port to the first segment offered, for any host and any network type."""

    def initialize(self):
        pass

    def bind_port(self, context):
        for segment in context.segments_to_bind:
            context.set_binding(segment[api.ID], portbindings.VIF_TYPE_OVS,
                                {portbindings.CAP_PORT_FILTER: True},
                                status=constants.PORT_STATUS_ACTIVE)
            return
