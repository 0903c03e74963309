#!/usr/bin/env python3
"""A small, real OpenStack (Zed, from Debian 12) for tests: keystone, placement, glance, nova, neutron
and cinder on PostgreSQL and rabbitmq, with nova's fake.FakeDriver, an ML2 driver that binds every
port and a cinder driver that stores nothing (scripts/openstack/occipy_os_fakes). Everything listens
on 127.0.0.1 and free ports and lives in one directory; shared/design/test-services.md is the recipe.

    cloud.py run DIR [--timeout S]   bring it all up in DIR (new or empty), print `READY <seconds>`,
                                     then serve until SIGTERM/SIGINT (Ctrl-C) and stop everything
    cloud.py down DIR                kill what a `run` left behind (if it was itself SIGKILLed)

DIR then holds clouds.yaml (clouds `occipy` and `occipy-admin`), cloud.json (the same plus the ids of
the seeded image, flavors, network and subnet, and the set-up timings) and log/*.log. Try it by hand:
    python3 scripts/openstack/cloud.py run /tmp/os &
    OS_CLIENT_CONFIG_FILE=/tmp/os/clouds.yaml openstack --os-cloud occipy server list

Standard library only; it runs the services with Debian's /usr/bin/python3 (bootstrap profile
`openstack` installs them). Env: OCCIPY_OPENSTACK_CACHE (the api-paste files, see install.sh).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from configs import REGION, MissingPasteFiles, write_configs
from supervisor import STOP_GRACE, Failure, Stopped, Supervisor, expect, free_port, http, port_open, sweep

HERE = Path(__file__).resolve().parent
PYTHON = "/usr/bin/python3"
UWSGI = "/usr/bin/uwsgi"
SERVICES = ("nova", "neutron", "glance", "cinder", "placement")
DATABASES = ("keystone", "glance", "placement", "nova_api", "nova", "nova_cell0", "neutron", "cinder")
PASTE_CACHE = Path(os.environ.get("OCCIPY_OPENSTACK_CACHE")
                   or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "occipy" / "openstack")
# Runs `module:function` as a console script would, with argv[0] = the service's name.
LAUNCH = ("import importlib, sys; name, target = sys.argv[1], sys.argv[2]; mod, fn = target.split(':'); "
          "sys.argv = [name] + sys.argv[3:]; sys.exit(getattr(importlib.import_module(mod), fn)())")
IMAGE_BYTES = b"occipy fake disk\n" * 256  # a 4 KiB raw "disk": the fake hypervisor never reads it


class Cloud(Supervisor):
    """The set-up sequence: infrastructure, keystone, migrations, services, readiness, seed data."""

    def __init__(self, directory: Path, timeout: float) -> None:
        super().__init__(directory, timeout, env={
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(directory / "home"), "LANG": "C.UTF-8",
            "PYTHONPATH": f"{HERE}:{directory / 'python'}", "PYTHONDONTWRITEBYTECODE": "1",
        })
        self.port = {name: free_port() for name in (
            "postgres", "amqp", "epmd", "dist", "keystone", "placement", "glance", "neutron", "nova", "cinder")}
        self.admin_password = secrets.token_hex(10)
        self.service_password = secrets.token_hex(10)
        self.user_password = secrets.token_hex(10)
        self.suffix = secrets.token_hex(3)
        self.pool: ThreadPoolExecutor | None = None
        for sub in ("etc", "home", "python", "lock"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)

    def python(self, name: str, target: str, *args: str) -> list[str]:
        """Run `module:function` of Debian's OpenStack as its console script would."""
        return [PYTHON, "-c", LAUNCH, name, target, *args]

    # --- infrastructure ----------------------------------------------------------------------
    def db_url(self, name: str) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port['postgres']}/{name}"

    def start_postgres(self) -> None:
        bindir = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
        if not bindir:
            raise Failure("PostgreSQL server binaries are missing (bash scripts/bootstrap.sh openstack)")
        bindir_path = bindir[-1].parent
        pgdir = self.dir / "postgres"
        pgdir.mkdir()
        user = None
        if os.geteuid() == 0:
            shutil.chown(pgdir, "postgres", "postgres")
            user = "postgres"
        self.step("initdb", [str(bindir_path / "initdb"), "-D", str(pgdir / "data"), "-U", "postgres", "-A",
                             "trust", "--no-sync", "--locale=C.UTF-8", "-E", "UTF8"], user=user, timeout=60)
        process = self.spawn("postgres", [
            str(bindir_path / "postgres"), "-D", str(pgdir / "data"), "-p", str(self.port["postgres"]),
            "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={pgdir}", "-c", "fsync=off",
            "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=300",
        ], user=user)
        psql = [str(bindir_path / "psql"), "-h", "127.0.0.1", "-p", str(self.port["postgres"]), "-U", "postgres",
                "-v", "ON_ERROR_STOP=1", "-q"]

        def up() -> bool:
            return subprocess.run([*psql, "-c", "SELECT 1"], capture_output=True, timeout=5,
                                  check=False).returncode == 0
        self.wait("PostgreSQL", up, process=process, log="postgres")
        creates = [arg for db in DATABASES for arg in ("-c", f"CREATE DATABASE {db}")]
        self.step("createdb", [*psql, *creates], timeout=60)
        self.psql = psql
        self.timings["postgres ready"] = round(time.monotonic() - self.t0, 1)
        self.note(f"PostgreSQL on 127.0.0.1:{self.port['postgres']} with {len(DATABASES)} databases")

    def start_rabbit(self) -> None:
        base = self.dir / "rabbit"
        base.mkdir()
        (base / "enabled_plugins").write_text("[].\n")
        (base / "rabbitmq-env.conf").write_text("")
        (base / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port['amqp']}\n")
        env = {
            "HOME": str(base), "ERL_EPMD_PORT": str(self.port["epmd"]), "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODENAME": f"occipy{self.suffix}@localhost", "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port["amqp"]), "RABBITMQ_DIST_PORT": str(self.port["dist"]),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"), "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_LOGS": str(self.dir / "log" / "rabbitmq-server.log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"), "RABBITMQ_PID_FILE": str(base / "rabbit.pid"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }
        epmd = self.spawn("epmd", ["epmd", "-port", str(self.port["epmd"]), "-address", "127.0.0.1"], env)
        self.wait("epmd", lambda: port_open(self.port["epmd"]), process=epmd, log="epmd")
        process = self.spawn("rabbitmq", ["/usr/lib/rabbitmq/bin/rabbitmq-server"], env)
        # The AMQP listener opens at the end of rabbit's boot steps: then it takes connections.
        self.wait("rabbitmq", lambda: port_open(self.port["amqp"]), process=process, log="rabbitmq")
        self.timings["rabbitmq ready"] = round(time.monotonic() - self.t0, 1)
        self.note(f"rabbitmq on 127.0.0.1:{self.port['amqp']}")

    # --- services ------------------------------------------------------------------------------
    def uwsgi(self, name: str, port: int, wsgi_file: str, env: str) -> subprocess.Popen[bytes]:
        # http-socket has no keep-alive: `Connection: close` stops python-requests from reusing
        # sockets that uwsgi has already closed (test-services.md).
        return self.spawn(name, [
            UWSGI, "--plugin", "python3", "--http-socket", f"127.0.0.1:{port}", "--wsgi-file", wsgi_file,
            "--master", "--processes", "1", "--threads", "4", "--die-on-term", "--need-app",
            "--buffer-size", "65535", "--add-header", "Connection: close", "--env", env,
        ])

    def keystone(self) -> None:
        conf = str(self.dir / "etc" / "keystone.conf")
        manage = ["keystone-manage", "--config-file", conf]
        self.step("keystone-db-sync", [*manage, "db_sync"])
        # What `keystone-manage fernet_setup` and `credential_setup` write (a primary key "1" and a
        # staged key "0", each a urlsafe-base64 32-byte Fernet key), without two more 5 s starts.
        for repository in ("fernet-keys", "credential-keys"):
            keys = self.dir / "keystone" / repository
            keys.mkdir(mode=0o700, parents=True, exist_ok=True)
            for index in ("0", "1"):
                (keys / index).write_bytes(base64.urlsafe_b64encode(os.urandom(32)))
                (keys / index).chmod(0o600)
        url = f"http://127.0.0.1:{self.port['keystone']}/v3/"
        self.step("keystone-bootstrap", [*manage, "bootstrap", "--bootstrap-password", self.admin_password,
                                         "--bootstrap-admin-url", url, "--bootstrap-internal-url", url,
                                         "--bootstrap-public-url", url, "--bootstrap-region-id", REGION])
        self.timings["keystone bootstrapped"] = round(time.monotonic() - self.t0, 1)
        process = self.uwsgi("keystone", self.port["keystone"], "/usr/bin/keystone-wsgi-public",
                             f"OS_KEYSTONE_CONFIG_FILES={conf}")
        self.wait_http("keystone", url, process)
        self.register()

    def token(self, user: str = "admin", password: str | None = None, project: str = "admin") -> str:
        status, head, body = http("POST", f"http://127.0.0.1:{self.port['keystone']}/v3/auth/tokens", {
            "auth": {"identity": {"methods": ["password"], "password": {"user": {
                "name": user, "domain": {"id": "default"}, "password": password or self.admin_password}}},
                "scope": {"project": {"name": project, "domain": {"id": "default"}}}}})
        if status != 201:
            raise Failure(f"keystone token for {user}: HTTP {status}: {body}")
        self.catalog = body["token"]["catalog"]
        return head["X-Subject-Token"]

    def register(self) -> None:
        """Service project, users and endpoints (before nova starts: it caches the catalogue)."""
        base = f"http://127.0.0.1:{self.port['keystone']}/v3"
        token = self.token()
        roles = {r["name"]: r["id"] for r in expect(http("GET", f"{base}/roles", token=token), "roles")["roles"]}
        if "service" not in roles:
            roles["service"] = expect(http("POST", f"{base}/roles", {"role": {"name": "service"}}, token),
                                      "create role")["role"]["id"]
        projects = {}
        for name in ("service", "occipy"):
            projects[name] = expect(http("POST", f"{base}/projects", {"project": {
                "name": name, "domain_id": "default", "description": "occipy tests"}}, token),
                f"project {name}")["project"]["id"]
        users = [(name, self.service_password, "service", ("admin", "service")) for name in SERVICES]
        users.append(("occipy", self.user_password, "occipy", ("member", "reader")))
        for name, password, project, user_roles in users:
            user_id = expect(http("POST", f"{base}/users", {"user": {
                "name": name, "password": password, "domain_id": "default",
                "default_project_id": projects[project]}}, token), f"user {name}")["user"]["id"]
            for role in user_roles:
                expect(http("PUT", f"{base}/projects/{projects[project]}/users/{user_id}/roles/{roles[role]}",
                            token=token), f"role {role} for {name}")
        endpoints = [
            ("nova", "compute", f"http://127.0.0.1:{self.port['nova']}/v2.1"),
            ("placement", "placement", f"http://127.0.0.1:{self.port['placement']}"),
            ("glance", "image", f"http://127.0.0.1:{self.port['glance']}"),
            ("neutron", "network", f"http://127.0.0.1:{self.port['neutron']}"),
            ("cinderv3", "volumev3", f"http://127.0.0.1:{self.port['cinder']}/v3/%(project_id)s"),
        ]
        for name, kind, url in endpoints:
            service_id = expect(http("POST", f"{base}/services", {"service": {"name": name, "type": kind}},
                                     token), f"service {name}")["service"]["id"]
            for interface in ("public", "internal"):
                expect(http("POST", f"{base}/endpoints", {"endpoint": {
                    "service_id": service_id, "interface": interface, "url": url, "region_id": REGION}}, token),
                    f"endpoint {name}")
        self.project_id = projects["occipy"]
        self.timings["keystone registered"] = round(time.monotonic() - self.t0, 1)
        self.note("keystone: service users, endpoints, project/user occipy")

    def migrate_nova(self) -> None:
        # The four nova-manage commands in one interpreter (occipy_os_fakes/nova_manage.py).
        self.step("nova-manage", [PYTHON, "-m", "occipy_os_fakes.nova_manage", str(self.dir / "etc" / "nova.conf"),
                                  self.db_url("nova_cell0")])
        self.timings["nova migrated"] = round(time.monotonic() - self.t0, 1)
        self.note("nova databases migrated, cell0 and cell1 mapped")

    def migrate(self, name: str, target: str, conf: str, *args: str,
                then: Callable[[], list[subprocess.Popen[bytes]]]) -> list[subprocess.Popen[bytes]]:
        """Migrate a database, then start its service(s) (returned)."""
        # niced: keystone's and nova's chains are the critical path; these finish well before
        self.step(name, ["nice", "-n", "10", *self.python(name, target, "--config-file",
                                                            str(self.dir / "etc" / conf), *args)])
        self.timings[f"{name} done"] = round(time.monotonic() - self.t0, 1)
        self.note(f"{name} done")
        return then()

    def service(self, name: str, target: str, conf: str, *extra: str) -> subprocess.Popen[bytes]:
        return self.spawn(name, self.python(name, target, "--config-file", str(self.dir / "etc" / conf),
                                            "--log-file", str(self.dir / "log" / f"{name}.oslo.log"), *extra))

    # --- the whole thing -----------------------------------------------------------------------
    def up(self) -> dict[str, Any]:
        try:
            write_configs(self.dir, self.port, self.service_password, PASTE_CACHE)
        except MissingPasteFiles as exc:
            raise Failure(str(exc)) from None
        # The pool's threads live until `run` ends: PR_SET_PDEATHSIG fires when the *thread* that
        # started a child exits, so a thread that ended would take its services with it.
        self.pool = ThreadPoolExecutor(max_workers=8)
        self.start_all(self.pool)
        self.wait_for_computes_and_volumes()
        seeded = self.seed()
        self.timings["ready"] = round(time.monotonic() - self.t0, 1)
        return self.describe(seeded)

    def start_all(self, pool: ThreadPoolExecutor) -> None:
        infra = [pool.submit(self.start_postgres), pool.submit(self.start_rabbit)]
        _result(infra[0])
        keystone = pool.submit(self.keystone)
        placement_env = f"OS_PLACEMENT_CONFIG_DIR={self.dir / 'etc' / 'placement'}"
        # Each migration's thread starts its service(s) as soon as the schema is there: they need
        # keystone only at their first request. nova waits for keystone (it caches the catalogue).
        chains: dict[str, Future[Any]] = {  # nova's is the longest chain: first in the queue
            "nova": pool.submit(self.migrate_nova),
            "placement": pool.submit(self.migrate, "placement-db-sync", "placement.cmd.manage:main",
                                     "placement/placement.conf", "db", "sync", then=lambda: [
                                         self.uwsgi("placement", self.port["placement"], "/usr/bin/placement-api",
                                                    placement_env)]),
            "glance": pool.submit(self.migrate, "glance-db-sync", "glance.cmd.manage:main", "glance-api.conf",
                                  "db_sync", then=lambda: [
                                      self.service("glance-api", "glance.cmd.api:main", "glance-api.conf")]),
            "neutron": pool.submit(self.migrate, "neutron-db-manage", "neutron.db.migration.cli:main",
                                   "neutron.conf", "upgrade", "heads", then=lambda: [
                                       self.service("neutron-server", "neutron.cmd.eventlet.server:main",
                                                    "neutron.conf")]),
            "cinder": pool.submit(self.migrate, "cinder-db-sync", "cinder.cmd.manage:main", "cinder.conf",
                                  "db", "sync", then=lambda: [
                                      self.service("cinder-api", "cinder.cmd.api:main", "cinder.conf"),
                                      self.service("cinder-scheduler", "cinder.cmd.scheduler:main", "cinder.conf"),
                                      self.service("cinder-volume", "cinder.cmd.volume:main", "cinder.conf")]),
        }
        _result(infra[1])
        _result(keystone)
        _result(chains["nova"])
        nova = self.service("nova-api", "nova.cmd.api:main", "nova.conf")
        self.service("nova-conductor", "nova.cmd.conductor:main", "nova.conf")
        self.service("nova-scheduler", "nova.cmd.scheduler:main", "nova.conf")
        placement = _result(chains["placement"])[0]
        self.wait_http("placement", f"http://127.0.0.1:{self.port['placement']}/", placement)
        # nova-compute reports its resources to placement once at start: placement must be up.
        self.service("nova-compute", "occipy_os_fakes.nova:main_compute", "nova-compute.conf")
        self.wait_http("glance-api", f"http://127.0.0.1:{self.port['glance']}/versions", _result(chains["glance"])[0])
        self.wait_http("neutron-server", f"http://127.0.0.1:{self.port['neutron']}/", _result(chains["neutron"])[0])
        self.wait_http("cinder-api", f"http://127.0.0.1:{self.port['cinder']}/", _result(chains["cinder"])[0])
        self.wait_http("nova-api", f"http://127.0.0.1:{self.port['nova']}/", nova)

    def wait_for_computes_and_volumes(self) -> None:
        token = self.token()
        admin_project = self.admin_project_id(token)
        cinder = f"http://127.0.0.1:{self.port['cinder']}/v3/{admin_project}/os-services"

        def volume_up() -> bool:
            services = expect(http("GET", cinder, token=token, timeout=10), "cinder services")["services"]
            return any(s["binary"] == "cinder-volume" and s["state"] == "up" and s["status"] == "enabled"
                       for s in services) and any(s["binary"] == "cinder-scheduler" and s["state"] == "up"
                                                  for s in services)
        self.wait("cinder-volume service", volume_up, log="cinder-volume.oslo")
        self.timings["cinder-volume up"] = round(time.monotonic() - self.t0, 1)

        def scheduler_knows_the_backend() -> bool:
            # A service that is "up" has sent its heartbeat; the scheduler places volumes only once
            # the volume service's capabilities reached it (at its start, then periodically): before
            # that a create ends in `error` ("No valid backend was found").
            pools = expect(http("GET", f"http://127.0.0.1:{self.port['cinder']}/v3/{admin_project}"
                                       "/scheduler-stats/get_pools", token=token, timeout=10), "cinder pools")
            return bool(pools.get("pools"))
        self.wait("cinder-scheduler knowing the volume backend", scheduler_knows_the_backend,
                  log="cinder-scheduler.oslo")
        self.timings["cinder pools"] = round(time.monotonic() - self.t0, 1)

        def host_mapped() -> bool:  # the scheduler's periodic discovery maps the compute host (<= 5 s)
            out = subprocess.run([*self.psql, "-d", "nova_api", "-tAc", "SELECT count(*) FROM host_mappings"],
                                 capture_output=True, text=True, timeout=10, check=False).stdout.strip()
            return out not in ("", "0")
        self.wait("nova-compute host discovery", host_mapped, log="nova-compute.oslo", interval=0.5)
        nova = f"http://127.0.0.1:{self.port['nova']}/v2.1"

        def compute_up() -> bool:
            services = expect(http("GET", f"{nova}/os-services?binary=nova-compute", token=token, timeout=10),
                              "nova services")["services"]
            return any(s["state"] == "up" and s["status"] == "enabled" for s in services)
        self.wait("nova-compute service", compute_up, log="nova-compute.oslo")
        self.timings["nova-compute up"] = round(time.monotonic() - self.t0, 1)
        self.note("nova-compute and cinder-volume are up")

    def admin_project_id(self, token: str) -> str:
        base = f"http://127.0.0.1:{self.port['keystone']}/v3"
        return str(expect(http("GET", f"{base}/projects?name=admin", token=token), "admin project")
                   ["projects"][0]["id"])

    def seed(self) -> dict[str, Any]:
        """An image, two flavors, a network with a subnet, an external network (the floating IP
        pool) and a router from the network to it: something for drivers to use."""
        token = self.token()
        nova = f"http://127.0.0.1:{self.port['nova']}/v2.1"
        flavors = []
        for name, vcpus, ram, disk in (("m1.tiny", 1, 256, 1), ("m1.small", 2, 512, 2)):
            flavor = expect(http("POST", f"{nova}/flavors", {"flavor": {
                "name": name, "vcpus": vcpus, "ram": ram, "disk": disk}}, token), f"flavor {name}")["flavor"]
            flavors.append({"id": flavor["id"], "name": name, "vcpus": vcpus, "ram": ram, "disk": disk})
        glance = f"http://127.0.0.1:{self.port['glance']}/v2"
        image = expect(http("POST", f"{glance}/images", {
            "name": "occipy-tiny", "disk_format": "raw", "container_format": "bare", "visibility": "public",
            "min_disk": 0, "min_ram": 0}, token), "image create")
        expect(http("PUT", f"{glance}/images/{image['id']}/file", token=token, raw=IMAGE_BYTES), "image upload")
        image = expect(http("GET", f"{glance}/images/{image['id']}", token=token), "image")
        if image["status"] != "active":
            raise Failure(f"image {image['id']} is {image['status']} after upload")
        neutron = f"http://127.0.0.1:{self.port['neutron']}/v2.0"
        network = expect(http("POST", f"{neutron}/networks", {"network": {
            "name": "occipy-net", "project_id": self.project_id}}, token), "network")["network"]
        subnet = expect(http("POST", f"{neutron}/subnets", {"subnet": {
            "name": "occipy-subnet", "network_id": network["id"], "ip_version": 4, "cidr": "10.20.0.0/24",
            "project_id": self.project_id}}, token), "subnet")["subnet"]
        # The floating IP pool: an external flat network with a subnet from TEST-NET-3 (RFC 5737),
        # made by the admin as on a real site, and the project's router from occipy-net to it
        # (Neutron associates a floating IP only with a port whose subnet a router connects to
        # the pool). No L3 agent runs: the association is API-level, the addresses route nowhere.
        public = expect(http("POST", f"{neutron}/networks", {"network": {
            "name": "public", "router:external": True, "provider:network_type": "flat",
            "provider:physical_network": "public"}}, token), "external network")["network"]
        public_subnet = expect(http("POST", f"{neutron}/subnets", {"subnet": {
            "name": "public-subnet", "network_id": public["id"], "ip_version": 4, "cidr": "203.0.113.0/24",
            "enable_dhcp": False, "gateway_ip": "203.0.113.1",
            "allocation_pools": [{"start": "203.0.113.10", "end": "203.0.113.250"}]}}, token),
            "external subnet")["subnet"]
        router = expect(http("POST", f"{neutron}/routers", {"router": {
            "name": "occipy-router", "project_id": self.project_id,
            "external_gateway_info": {"network_id": public["id"]}}}, token), "router")["router"]
        expect(http("PUT", f"{neutron}/routers/{router['id']}/add_router_interface",
                    {"subnet_id": subnet["id"]}, token), "router interface")
        self.note("seeded image occipy-tiny, flavors m1.tiny/m1.small, network occipy-net 10.20.0.0/24, "
                  "external network public 203.0.113.0/24 with router occipy-router")
        return {
            "image": {"id": image["id"], "name": image["name"], "size": image["size"]},
            "flavors": flavors,
            "network": {"id": network["id"], "name": network["name"]},
            "subnet": {"id": subnet["id"], "name": subnet["name"], "cidr": subnet["cidr"]},
            "external_network": {"id": public["id"], "name": public["name"], "subnet_id": public_subnet["id"],
                                 "cidr": public_subnet["cidr"]},
            "router": {"id": router["id"], "name": router["name"]},
        }

    def describe(self, seeded: dict[str, Any]) -> dict[str, Any]:
        auth_url = f"http://127.0.0.1:{self.port['keystone']}/v3"
        clouds = {
            "occipy": {"username": "occipy", "password": self.user_password, "project_name": "occipy"},
            "occipy-admin": {"username": "admin", "password": self.admin_password, "project_name": "admin"},
        }
        lines = ["clouds:"]
        for name, auth in clouds.items():
            lines += [f"  {name}:", "    auth:", f"      auth_url: {auth_url}"]
            lines += [f"      {key}: {json.dumps(value)}" for key, value in auth.items()]
            lines += ["      user_domain_name: Default", "      project_domain_name: Default",
                      f"    region_name: {REGION}", "    identity_api_version: 3", "    interface: public"]
        (self.dir / "clouds.yaml").write_text("\n".join(lines) + "\n")
        described = {
            "auth_url": auth_url, "region_name": REGION, "user_domain_name": "Default",
            "project_domain_name": "Default", "project_id": self.project_id, **clouds["occipy"],
            "admin": clouds["occipy-admin"], "endpoints": {k: f"http://127.0.0.1:{v}" for k, v in self.port.items()
                                                           if k in ("keystone", "nova", "neutron", "glance",
                                                                    "cinder", "placement")},
            "directory": str(self.dir), "timings": self.timings, **seeded,
        }
        (self.dir / "cloud.json").write_text(json.dumps(described, indent=2) + "\n")
        return described


def _result(future: Future[Any]) -> Any:
    return future.result()


def run(directory: Path, timeout: float) -> int:
    if directory.exists() and any(directory.iterdir()):
        print(f"cloud.py: {directory} is not empty: it must start from an empty directory", file=sys.stderr)
        return 2
    directory.mkdir(parents=True, exist_ok=True)
    for tool in (PYTHON, UWSGI, "/usr/lib/rabbitmq/bin/rabbitmq-server", "/usr/bin/keystone-manage"):
        if not Path(tool).exists():
            print(f"cloud.py: {tool} is missing: run `bash scripts/bootstrap.sh openstack`", file=sys.stderr)
            return 2
    cloud = Cloud(directory, timeout)

    def on_signal(signum: int, _frame: Any) -> None:
        if not cloud.stopping.is_set():
            cloud.stopping.set()
            if threading.current_thread() is threading.main_thread() and not ready.is_set():
                raise Stopped()

    ready = threading.Event()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    status = 0
    try:
        described = cloud.up()
        ready.set()
        cloud.note(f"READY in {described['timings']['ready']} s: {directory / 'clouds.yaml'}")
        print(f"READY {described['timings']['ready']}", flush=True)
        while not cloud.stopping.wait(0.5):
            dead = [name for name, process in cloud.processes if process.poll() is not None
                    and not name.startswith(("initdb", "createdb", "keystone-", "nova-manage",
                                             "placement-db", "glance-db",
                                             "neutron-db", "cinder-db"))]
            if dead:
                cloud.note(f"FAILED: {', '.join(dead)} exited while serving; stopping")
                status = 1
                break
    except Stopped:
        cloud.note("stopping on a signal during set-up")
        status = 130
    except Failure as exc:
        cloud.note(f"FAILED: {exc}")
        status = 1
    except Exception as exc:  # noqa: BLE001 - report, then stop everything we started
        cloud.note(f"FAILED: {type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        status = 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        started = time.monotonic()
        cloud.stop()
        if cloud.pool is not None:
            cloud.pool.shutdown(wait=True, cancel_futures=True)
        cloud.note(f"stopped {len(cloud.processes)} process groups in {time.monotonic() - started:.1f} s")
    return status


def down(directory: Path) -> int:
    """Kill the process groups a `run` recorded (for a supervisor that was itself SIGKILLed)."""
    try:
        pgids = [int(line) for line in (directory / "run" / "pgids").read_text().split()]
    except OSError:
        return 0
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pgid in pgids:
            try:
                os.killpg(pgid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        if sig == signal.SIGTERM:
            time.sleep(STOP_GRACE)
    sweep(directory)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="bring up a cloud in DIR and serve until SIGTERM/SIGINT")
    run_parser.add_argument("directory", type=Path)
    run_parser.add_argument("--timeout", type=float, default=300.0, help="set-up deadline in seconds")
    down_parser = sub.add_parser("down", help="kill the process groups a run left in DIR")
    down_parser.add_argument("directory", type=Path)
    args = parser.parse_args()
    if args.command == "run":
        return run(args.directory.resolve(), args.timeout)
    return down(args.directory.resolve())


if __name__ == "__main__":
    sys.exit(main())
