"""A real OpenStack Keystone for the tests: Debian's python3-keystone on SQLite, on 127.0.0.1.

`Keystone.start(directory)` writes keystone.conf, runs `keystone-manage` (db_sync, fernet and
credential keys, bootstrap of the admin user) and serves `keystone-wsgi-public` on a free port
(about 15 s in all). Tests then create projects, users and role assignments over the v3 API and
get real tokens. Installed by `scripts/bootstrap.sh keystone` (test-services.md). Keystone runs
under /usr/bin/python3 (Debian's packages do not import in the project's Python).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.services._process import free_port

MANAGE = "/usr/bin/keystone-manage"
SERVE = "/usr/bin/keystone-wsgi-public"
ADMIN_PASSWORD = "admin-secret"


def available() -> bool:
    return Path(MANAGE).exists() and Path(SERVE).exists()


@dataclass
class Keystone:
    directory: Path
    port: int
    process: subprocess.Popen[bytes]
    admin_token: str = ""
    roles: dict[str, str] = field(default_factory=dict)
    projects: dict[str, str] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api(self) -> str:
        return f"{self.url}/v3"

    @classmethod
    def start(cls, directory: Path) -> Keystone:
        directory.mkdir(parents=True, exist_ok=True)
        port = free_port()
        config = directory / "keystone.conf"
        config.write_text(f"""[DEFAULT]
log_file = {directory / "keystone.log"}
[database]
connection = sqlite:///{directory / "keystone.db"}
[token]
provider = fernet
[fernet_tokens]
key_repository = {directory / "fernet-keys"}
[fernet_receipts]
key_repository = {directory / "fernet-keys"}
[credential]
key_repository = {directory / "credential-keys"}
[identity]
password_hash_rounds = 4
""")
        manage = [MANAGE, "--config-file", str(config)]
        steps = [
            ["db_sync"],
            ["fernet_setup", "--keystone-user", "root", "--keystone-group", "root"],
            ["credential_setup", "--keystone-user", "root", "--keystone-group", "root"],
            ["bootstrap", "--bootstrap-password", ADMIN_PASSWORD, "--bootstrap-public-url",
             f"http://127.0.0.1:{port}/v3/", "--bootstrap-region-id", "RegionOne"],
        ]
        for step in steps:
            done = subprocess.run([*manage, *step], check=False, capture_output=True, timeout=180, cwd=directory)
            if done.returncode != 0:
                raise RuntimeError(f"keystone-manage {step[0]} failed: {done.stderr.decode()[-2000:]}")
        log = (directory / "serve.log").open("wb")
        process = subprocess.Popen([SERVE, "--host", "127.0.0.1", "--port", str(port), "--", "--config-file",
                                    str(config)], stdout=log, stderr=subprocess.STDOUT, cwd=directory)
        server = cls(directory=directory, port=port, process=process)
        try:
            server._wait_up()
            server.admin_token = server.password_token("admin", ADMIN_PASSWORD, "admin")
            # Keystone on SQLite answers "database is locked" to a role created after other writes
            # (seen with Debian's 22.0.2): the role a service user needs is created first.
            server.role("service")
            for project in httpx.get(f"{server.api}/projects", headers=server._admin()).json()["projects"]:
                server.projects[project["name"]] = project["id"]
        except BaseException:
            server.stop()
            raise
        return server

    def _wait_up(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"keystone exited: {(self.directory / 'serve.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.api}/", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("keystone did not come up")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    # ---- administration over the v3 API -----------------------------------------------------

    def _admin(self) -> dict[str, str]:
        return {"X-Auth-Token": self.admin_token}

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(f"{self.api}{path}", json=body, headers=self._admin(), timeout=30)
        if response.status_code >= 300:
            raise RuntimeError(f"keystone POST {path}: {response.status_code} {response.text[:300]}")
        result: dict[str, Any] = response.json()
        return result

    def role(self, name: str) -> str:
        if not self.roles:
            self.roles.update({r["name"]: r["id"] for r in httpx.get(
                f"{self.api}/roles", headers=self._admin(), timeout=30).json()["roles"]})
        if name not in self.roles:
            self.roles[name] = self._post("/roles", {"role": {"name": name}})["role"]["id"]
        return self.roles[name]

    def project(self, name: str) -> str:
        if name not in self.projects:
            self.projects[name] = self._post(
                "/projects", {"project": {"name": name, "domain_id": "default"}})["project"]["id"]
        return self.projects[name]

    def user(self, name: str, password: str, *, grants: dict[str, str] | None = None) -> str:
        """A user with `grants` (project -> role), created once."""
        if name not in self.users:
            self.users[name] = self._post("/users", {"user": {
                "name": name, "password": password, "domain_id": "default", "enabled": True}})["user"]["id"]
        for project, role in (grants or {}).items():
            response = httpx.put(f"{self.api}/projects/{self.project(project)}/users/{self.users[name]}/roles/"
                                 f"{self.role(role)}", headers=self._admin(), timeout=30)
            if response.status_code >= 300:
                raise RuntimeError(f"keystone role assignment: {response.status_code} {response.text[:300]}")
        return self.users[name]

    def password_token(self, user: str, password: str, project: str | None) -> str:
        body: dict[str, Any] = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": password}}}}}
        if project is not None:
            body["auth"]["scope"] = {"project": {"name": project, "domain": {"id": "default"}}}
        response = httpx.post(f"{self.api}/auth/tokens?nocatalog", json=body, timeout=30)
        if response.status_code != 201:
            raise RuntimeError(f"keystone token for {user}: {response.status_code} {response.text[:300]}")
        return str(response.headers["x-subject-token"])

    def revoke(self, token: str) -> None:
        response = httpx.delete(f"{self.api}/auth/tokens", headers={**self._admin(), "X-Subject-Token": token})
        if response.status_code != 204:
            raise RuntimeError(f"keystone revoke: {response.status_code} {response.text[:300]}")
