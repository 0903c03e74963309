"""The four `nova-manage` commands of a new deployment in one interpreter (importing nova costs
seconds per start): api_db sync, cell_v2 map_cell0, cell_v2 create_cell --name cell1, db sync.

    python3 -m occipy_os_fakes.nova_manage NOVA_CONF CELL0_DATABASE_URL

Calls the command classes of nova/cmd/manage.py (Zed) after one configuration parse, as
`nova-manage` itself does after parsing its command line.
"""

import sys

from nova import config, objects
from nova.cmd import manage


def main():
    config_file, cell0 = sys.argv[1], sys.argv[2]
    config.parse_args(["nova-manage", "--config-file", config_file])
    objects.register_all()
    steps = [
        ("api_db sync", lambda: manage.ApiDbCommands().sync()),
        ("cell_v2 map_cell0", lambda: manage.CellV2Commands().map_cell0(database_connection=cell0)),
        ("cell_v2 create_cell --name cell1", lambda: manage.CellV2Commands().create_cell(name="cell1")),
        ("db sync", lambda: manage.DbCommands().sync()),
    ]
    for name, step in steps:
        print(f"nova-manage {name}", flush=True)
        status = step()
        if status:  # the commands return None or 0 on success, a status otherwise
            print(f"nova-manage {name} failed with {status}", flush=True)
            return status
    return 0


if __name__ == "__main__":
    sys.exit(main())
