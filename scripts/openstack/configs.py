"""The configuration files of the test cloud that scripts/openstack/cloud.py runs (OpenStack Zed).

`write_configs()` writes keystone.conf, placement/placement.conf, glance-api.conf, neutron.conf,
nova.conf, nova-compute.conf and cinder.conf into DIR/etc, and the entry point of our ML2 driver into
DIR/python. Standard library only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

REGION = "RegionOne"


class MissingPasteFiles(Exception):
    """The api-paste files of bootstrap profile `openstack` are not where they should be."""


def ini(sections: dict[str, dict[str, Any]]) -> str:
    out = []
    for name, values in sections.items():
        out.append(f"[{name}]")
        out += [f"{key} = {value}" for key, value in values.items()]
        out.append("")
    return "\n".join(out)


class Settings:
    """Ports, passwords and paths that every configuration file draws from."""

    def __init__(self, directory: Path, port: dict[str, int], service_password: str, paste_cache: Path) -> None:
        self.dir = directory
        self.port = port
        self.service_password = service_password
        self.paste = paste_cache / "etc"

    def db_url(self, name: str) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port['postgres']}/{name}"

    def auth_section(self, user: str) -> dict[str, str]:
        return {
            "auth_url": f"http://127.0.0.1:{self.port['keystone']}/v3", "auth_type": "password",
            "project_domain_name": "Default", "user_domain_name": "Default", "project_name": "service",
            "username": user, "password": self.service_password, "region_name": REGION,
        }

    def authtoken(self, user: str) -> dict[str, str]:
        return {"www_authenticate_uri": f"http://127.0.0.1:{self.port['keystone']}/v3",
                "service_token_roles_required": "true", **self.auth_section(user)}

    def write_all(self) -> None:
        etc = self.dir / "etc"
        rabbit = f"rabbit://guest:guest@127.0.0.1:{self.port['amqp']}/"
        common: dict[str, dict[str, Any]] = {"oslo_concurrency": {"lock_path": self.dir / "lock"},
                  "oslo_messaging_notifications": {"driver": "noop"}}
        for service in ("nova", "glance", "neutron", "cinder"):
            paste = self.paste / service
            if not paste.is_dir():
                raise MissingPasteFiles(f"api-paste files missing in {paste} (bash scripts/bootstrap.sh openstack)")
        (etc / "keystone.conf").write_text(ini({
            "database": {"connection": self.db_url("keystone")},
            "token": {"provider": "fernet"},
            "fernet_tokens": {"key_repository": self.dir / "keystone" / "fernet-keys"},
            "fernet_receipts": {"key_repository": self.dir / "keystone" / "fernet-keys"},
            "credential": {"key_repository": self.dir / "keystone" / "credential-keys"},
            "identity": {"password_hash_rounds": 4},  # tests only: bcrypt's cost would dominate auth
            # In-process cache: token validation drops from ~250 ms to ~15 ms a request
            "cache": {"enabled": "true", "backend": "dogpile.cache.memory"},
        }))
        (etc / "placement").mkdir(exist_ok=True)
        (etc / "placement" / "placement.conf").write_text(ini({
            "placement_database": {"connection": self.db_url("placement")},
            "api": {"auth_strategy": "keystone"},
            "keystone_authtoken": self.authtoken("placement"),
        }))
        (self.dir / "glance").mkdir(exist_ok=True)
        (etc / "glance-api.conf").write_text(ini({
            "DEFAULT": {"bind_host": "127.0.0.1", "bind_port": self.port["glance"], "workers": 1,
                        "enabled_backends": "fs:file", "graceful_shutdown_timeout": 2},
            "database": {"connection": self.db_url("glance")},
            "keystone_authtoken": self.authtoken("glance"),
            "paste_deploy": {"flavor": "keystone", "config_file": self.paste / "glance/glance-api-paste.ini"},
            "glance_store": {"default_backend": "fs"},
            "fs": {"filesystem_store_datadir": self.dir / "glance" / "images"},
            "os_glance_staging_store": {"filesystem_store_datadir": self.dir / "glance" / "staging"},
            "os_glance_tasks_store": {"filesystem_store_datadir": self.dir / "glance" / "tasks"},
            **common,
        }))
        (etc / "neutron.conf").write_text(ini({
            "DEFAULT": {
                "bind_host": "127.0.0.1", "bind_port": self.port["neutron"], "core_plugin": "ml2",
                "service_plugins": "router", "auth_strategy": "keystone", "transport_url": rabbit,
                "api_workers": 1, "rpc_workers": 1, "rpc_state_report_workers": 0,
                "notify_nova_on_port_status_changes": "false", "notify_nova_on_port_data_changes": "false",
                "dhcp_agent_notification": "false", "allow_overlapping_ips": "true",
                "api_paste_config": self.paste / "neutron/api-paste.ini", "state_path": self.dir / "neutron",
                "graceful_shutdown_timeout": 2,
            },
            "database": {"connection": self.db_url("neutron")},
            "keystone_authtoken": self.authtoken("neutron"),
            "nova": self.auth_section("nova"),
            "ml2": {"type_drivers": "flat,vlan,vxlan", "tenant_network_types": "vxlan",
                    "mechanism_drivers": "occipy_bindall", "extension_drivers": "port_security"},
            "ml2_type_vxlan": {"vni_ranges": "1:1000"},
            "ml2_type_flat": {"flat_networks": "*"},
            "ml2_type_vlan": {"network_vlan_ranges": "physnet1:100:199"},
            # Members may choose a floating IP's address (Neutron's default: admins only), as an
            # EGI site that serves occi.ipreservation.address would allow.
            "oslo_policy": {"policy_file": etc / "neutron-policy.yaml"},
            **common,
        }))
        (etc / "neutron-policy.yaml").write_text(
            '"create_floatingip:floating_ip_address": "role:member or role:admin"\n')
        nova: dict[str, dict[str, Any]] = {
            "DEFAULT": {
                # fake.FakeDriver whose snapshots upload a tiny image (occipy_os_fakes/nova.py)
                "compute_driver": "occipy_fake.SnapshotFakeDriver",
                "transport_url": rabbit, "my_ip": "127.0.0.1",
                "host": "occipy-compute", "enabled_apis": "osapi_compute", "osapi_compute_listen": "127.0.0.1",
                "osapi_compute_listen_port": self.port["nova"], "osapi_compute_workers": 1,
                "periodic_fuzzy_delay": 0,  # else the first host discovery waits up to a minute
                "state_path": self.dir / "nova", "instances_path": self.dir / "nova" / "instances",
                "allow_resize_to_same_host": "true", "heal_instance_info_cache_interval": -1,
                "graceful_shutdown_timeout": 2,  # else nova-scheduler outlives SIGTERM by a minute
            },
            "api": {"auth_strategy": "keystone"},
            "wsgi": {"api_paste_config": self.paste / "nova/api-paste.ini"},
            "api_database": {"connection": self.db_url("nova_api")},
            "database": {"connection": self.db_url("nova")},
            "conductor": {"workers": 1},
            "scheduler": {"workers": 1, "discover_hosts_in_cells_interval": 5},
            "keystone_authtoken": self.authtoken("nova"),
            "placement": self.auth_section("placement"),
            "neutron": self.auth_section("neutron"),
            "cinder": {**self.auth_section("cinder"), "os_region_name": REGION},
            "glance": {"api_servers": f"http://127.0.0.1:{self.port['glance']}"},
            "service_user": {"send_service_user_token": "true", **self.auth_section("nova")},
            "vnc": {"enabled": "false"},
            **common,
        }
        (etc / "nova.conf").write_text(ini(nova))
        # nova-compute talks to the database only through the conductor: give it no database lines.
        (etc / "nova-compute.conf").write_text(ini({k: v for k, v in nova.items()
                                                    if k not in ("database", "api_database")}))
        (etc / "cinder.conf").write_text(ini({
            "DEFAULT": {
                "transport_url": rabbit, "auth_strategy": "keystone", "enabled_backends": "fake",
                "osapi_volume_listen": "127.0.0.1", "osapi_volume_listen_port": self.port["cinder"],
                "osapi_volume_workers": 1, "my_ip": "127.0.0.1", "host": "occipy-cinder",
                "glance_api_servers": f"http://127.0.0.1:{self.port['glance']}",
                "api_paste_config": self.paste / "cinder/api-paste.ini", "state_path": self.dir / "cinder",
                "graceful_shutdown_timeout": 2,
                # cinder-volume sends its capabilities to the scheduler at start and then every
                # periodic_interval (60 s by default): one lost at start must not cost a minute.
                "periodic_interval": 5,
            },
            "database": {"connection": self.db_url("cinder")},
            "keystone_authtoken": self.authtoken("cinder"),
            "nova": self.auth_section("nova"),
            "fake": {"volume_driver": "occipy_os_fakes.cinder.FakeVolumeDriver", "volume_backend_name": "fake",
                     "target_helper": "fake"},
            **common,
        }))
        # The entry point under which neutron's ML2 finds our mechanism driver (stevedore reads it).
        info = self.dir / "python" / "occipy_os_fakes-0.dist-info"
        info.mkdir(exist_ok=True)
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: occipy-os-fakes\nVersion: 0\n")
        (info / "entry_points.txt").write_text(
            "[neutron.ml2.mechanism_drivers]\noccipy_bindall = occipy_os_fakes.ml2:BindAllMechanismDriver\n")
        for sub in ("nova/instances", "neutron", "cinder", "keystone"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)


def write_configs(directory: Path, port: dict[str, int], service_password: str, paste_cache: Path) -> None:
    """Every configuration file of the cloud in `directory` (raises MissingPasteFiles)."""
    Settings(directory, port, service_password, paste_cache).write_all()
