"""A real OpenID Connect provider for the tests: Debian's glewlwyd, in a temp dir on 127.0.0.1.

`Glewlwyd.start(directory)` loads glewlwyd's SQLite schema, writes a config with a free port,
runs the daemon, logs in as its admin and creates the OIDC plugin (RS256 access tokens, the JWKS
published), a scope, and an extra user property `groups` copied into access tokens. Tests then add
users and clients and get real tokens with the password and client_credentials grants;
`rotate_key()` switches the signing key (the JWKS then publishes the new key only). Installed by
`scripts/bootstrap.sh oidc` (test-services.md).
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import shutil
import sqlite3
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.services._process import free_port

BINARY = "/usr/bin/glewlwyd"
SCHEMA = Path("/usr/share/doc/glewlwyd/database/init.sqlite3.sql.gz")
BASE_CONFIG = Path("/etc/glewlwyd/glewlwyd.conf")
SCOPE = "occi"
OTHER_SCOPE = "other"  # tokens for another service: their `aud` is "other"


def available() -> bool:
    return Path(BINARY).exists() and SCHEMA.exists() and BASE_CONFIG.exists()


def rsa_key_pem() -> tuple[str, str]:
    """A new RSA key and a self-signed certificate for it, both PEM (PKCS#8 key)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "glewlwyd-test")])
    now = time.time()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(dt.datetime.fromtimestamp(now - 3600, dt.UTC))
            .not_valid_after(dt.datetime.fromtimestamp(now + 86400, dt.UTC))
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode()


@dataclass
class Glewlwyd:
    """A running glewlwyd; `issuer` is what occipy's --oidc-issuer names."""

    directory: Path
    port: int
    process: subprocess.Popen[bytes]
    admin: httpx.Client
    plugin: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return f"{self.url}/api/oidc"

    # ---- life cycle --------------------------------------------------------------------------

    @classmethod
    def start(cls, directory: Path) -> Glewlwyd:
        directory.mkdir(parents=True, exist_ok=True)
        database = directory / "glewlwyd.db"
        with sqlite3.connect(database) as connection:
            connection.executescript(gzip.decompress(SCHEMA.read_bytes()).decode())
            # `groups`, a user property, is copied into access tokens (the tenant claim); the user
            # module reads its data format at start-up, so it is declared before glewlwyd runs.
            (raw,) = connection.execute(
                "SELECT gumi_parameters FROM g_user_module_instance WHERE gumi_name='database'").fetchone()
            parameters = json.loads(raw)
            for name, multiple in (("groups", False), ("roles", True)):
                parameters["data-format"][name] = {
                    "multiple": multiple, "read": True, "write": True, "profile-read": True, "profile-write": False}
            connection.execute("UPDATE g_user_module_instance SET gumi_parameters=? WHERE gumi_name='database'",
                               (json.dumps(parameters),))
        port = free_port()
        lines = []
        for line in BASE_CONFIG.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith("port"):
                line = f"port={port}"
            elif stripped.startswith("external_url"):
                line = f'external_url="http://127.0.0.1:{port}"\nbind_address="127.0.0.1"'
            elif stripped.startswith("log_file"):
                line = f'log_file="{directory / "glewlwyd.log"}"'
            elif stripped.startswith("@include"):
                line = f'database = {{ type = "sqlite3" path = "{database}" }};'
            lines.append(line)
        config = directory / "glewlwyd.conf"
        config.write_text("\n".join(lines) + "\n")
        log = (directory / "stderr.log").open("wb")
        process = subprocess.Popen([BINARY, "-c", str(config)], stdout=log, stderr=subprocess.STDOUT,
                                   cwd=directory)
        admin = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
        server = cls(directory=directory, port=port, process=process, admin=admin)
        try:
            server._wait_up()
            server._configure()
        except BaseException:
            server.stop()
            raise
        return server

    def _wait_up(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"glewlwyd exited: {(self.directory / 'stderr.log').read_text()[-2000:]}")
            try:
                self.admin.get("/api/")
                return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("glewlwyd did not come up")

    def _check(self, response: httpx.Response) -> httpx.Response:
        if response.status_code >= 300:
            raise RuntimeError(f"glewlwyd {response.request.method} {response.request.url}: "
                               f"{response.status_code} {response.text[:500]}")
        return response

    def _configure(self) -> None:
        self._check(self.admin.post("/api/auth/", json={"username": "admin", "password": "password"}))
        key, cert = rsa_key_pem()
        self.plugin = {
            "module": "oidc", "name": "oidc", "display_name": "OIDC", "enabled": True,
            "parameters": {
                "iss": self.issuer, "jwt-type": "rsa", "jwt-key-size": "256", "key": key, "cert": cert,
                "jwks-show": True, "allow-non-oidc": True, "auth-type-client-enabled": True,
                "auth-type-password-enabled": True, "auth-type-code-enabled": True,
                "auth-type-refresh-enabled": True, "access-token-duration": 3600,
                "refresh-token-duration": 1209600, "code-duration": 600, "refresh-token-rolling": True,
                "additional-parameters": [
                    {"user-parameter": "username", "token-parameter": "preferred_username"},
                    {"user-parameter": "groups", "token-parameter": "groups"},
                    {"user-parameter": "roles", "token-parameter": "roles"},
                ],
                "scope": [],
            },
        }
        self._check(self.admin.post("/api/mod/plugin/", json=self.plugin))
        for scope in (SCOPE, OTHER_SCOPE):
            self._check(self.admin.post("/api/scope/", json={
                "name": scope, "display_name": scope, "description": scope, "password_required": False,
                "scheme": {}}))

    def stop(self) -> None:
        self.admin.close()
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

    # ---- accounts and tokens -----------------------------------------------------------------

    def add_user(self, username: str, password: str, groups: str | None = None,
                 roles: list[str] | None = None) -> None:
        body: dict[str, Any] = {"username": username, "password": password, "scope": ["openid", SCOPE, OTHER_SCOPE],
                                "enabled": True}
        if groups is not None:
            body["groups"] = groups
        if roles is not None:
            body["roles"] = roles
        self._check(self.admin.post("/api/user/", json=body))

    def add_client(self, client_id: str, secret: str) -> None:
        self._check(self.admin.post("/api/client/", json={
            "client_id": client_id, "name": client_id, "confidential": True, "password": secret,
            "enabled": True, "scope": [SCOPE, OTHER_SCOPE, "openid"], "redirect_uri": ["http://127.0.0.1/cb"],
            "authorization_type": ["password", "client_credentials", "refresh_token"],
            "token_endpoint_auth_method": ["client_secret_basic", "client_secret_post"],
        }))

    def password_token(self, client_id: str, secret: str, username: str, password: str, scope: str = SCOPE) -> str:
        response = self._check(httpx.post(f"{self.issuer}/token", auth=(client_id, secret), data={
            "grant_type": "password", "username": username, "password": password, "scope": scope}))
        return str(response.json()["access_token"])

    def client_token(self, client_id: str, secret: str) -> str:
        response = self._check(httpx.post(f"{self.issuer}/token", auth=(client_id, secret), data={
            "grant_type": "client_credentials", "scope": SCOPE}))
        return str(response.json()["access_token"])

    @property
    def private_key(self) -> Any:
        """The key glewlwyd signs with now (tests sign expired tokens with it)."""
        return serialization.load_pem_private_key(self.plugin["parameters"]["key"].encode(), None)

    def kid(self) -> str:
        """The key id of the published signing key."""
        keys = self._check(httpx.get(f"{self.issuer}/jwks")).json()["keys"]
        return str(keys[0]["kid"])

    def rotate_key(self) -> None:
        """Sign new tokens with a new key; the JWKS then lists only that key."""
        key, cert = rsa_key_pem()
        self.plugin["parameters"].update({"key": key, "cert": cert})
        self._check(self.admin.put("/api/mod/plugin/oidc", json=self.plugin))
        # the running instance keeps its key until it is restarted
        self._check(self.admin.put("/api/mod/plugin/oidc/disable"))
        self._check(self.admin.put("/api/mod/plugin/oidc/enable"))
