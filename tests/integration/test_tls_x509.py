"""occipy serves HTTPS itself and reads verified client certificates (issue 8).

The tests make their own CAs and certificates (cryptography), then run a live HTTPS server:
`occipy serve --tls-*` in a subprocess for what a client sees (a good certificate is served; none,
one from another CA, an expired one fail the handshake), and the edge in a thread around a
recording app for what the app sees (the ASGI TLS extension, `OcciRequest.client_subject` and
`client_issuer`), mapped to a Principal by identity/x509.py.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from occipy.config import Settings
from occipy.errors import Unauthorized
from occipy.http.app import create_app
from occipy.identity.base import ANONYMOUS, Credentials, Principal
from occipy.identity.x509 import X509Authenticator, from_settings
from occipy.server import uvicorn_config
from occipy.service.messages import OcciRequest, OcciResponse
from occipy.service.pipeline import Admission
from tests.integration.conftest import free_port
from tests.integration.test_edge_limits import start_edge_server

NOW = datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path


def _name(common: str, org: str) -> x509.Name:
    # ASN.1 order, most general first, as CAs write them; RFC 4514 reverses it: "CN=...,O=...".
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                      x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write(directory: Path, stem: str, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Issued:
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return Issued(cert_path, key_path)


class CA:
    def __init__(self, directory: Path, stem: str, common: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = _name(common, "Example")
        self.certificate = (
            x509.CertificateBuilder().subject_name(self.name).issuer_name(self.name)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - datetime.timedelta(days=1)).not_valid_after(NOW + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256()))
        self.directory = directory
        self.files = _write(directory, stem, self.certificate, self.key)

    def issue(self, stem: str, common: str, org: str, *, server: bool = False,
              expired: bool = False) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        before, after = NOW - datetime.timedelta(days=1), NOW + datetime.timedelta(days=30)
        if expired:
            before, after = NOW - datetime.timedelta(days=30), NOW - datetime.timedelta(days=1)
        builder = (
            x509.CertificateBuilder().subject_name(_name(common, org)).issuer_name(self.name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(before).not_valid_after(after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        return _write(self.directory, stem, builder.sign(self.key, hashes.SHA256()), key)


@dataclass(frozen=True)
class Pki:
    ca: CA
    server: Issued
    alice: Issued  # listed in the map
    bob: Issued  # not listed: derived (user = CN, tenant = O)
    expired: Issued
    stranger: Issued  # signed by another CA
    x509_map: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = CA(directory, "ca", "Test CA")
    other = CA(directory, "other-ca", "Other CA")
    x509_map = directory / "x509.toml"
    x509_map.write_text(
        '[subjects."CN=alice,O=Example"]\nuser = "alice"\ntenant = "t1"\nroles = ["member"]\n'
        'issuer = "CN=Test CA,O=Example"\n\n'
        '[derive]\nuser = "CN"\ntenant = "O"\nroles = ["reader"]\nissuers = ["CN=Test CA, O=Example"]\n')
    return Pki(ca=ca, server=ca.issue("server", "localhost", "Example", server=True),
               alice=ca.issue("alice", "alice", "Example"), bob=ca.issue("bob", "bob", "Acme"),
               expired=ca.issue("expired", "carol", "Example", expired=True),
               stranger=other.issue("stranger", "alice", "Example"), x509_map=x509_map)


def client_context(pki: Pki, identity: Issued | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca.files.cert))
    if identity is not None:
        context.load_cert_chain(str(identity.cert), str(identity.key))
    return context


def tls_flags(pki: Pki, client_cert: str) -> tuple[str, ...]:
    return ("--tls-cert", str(pki.server.cert), "--tls-key", str(pki.server.key),
            "--tls-client-ca", str(pki.ca.files.cert), "--tls-client-cert", client_cert,
            "--x509-map", str(pki.x509_map))


# ---- occipy serve over HTTPS, client certificates required -------------------------------------

@pytest.fixture(scope="module")
def https_required(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = start_edge_server(tmp_path_factory.mktemp("tls"), *tls_flags(pki, "required"), scheme="https",
                               verify=client_context(pki, pki.alice))
    yield server.url
    server.stop()


@pytest.mark.spec("H-36")
def test_a_good_client_certificate_is_served(pki: Pki, https_required: str) -> None:
    with httpx.Client(verify=client_context(pki, pki.alice), timeout=10) as client:
        response = client.get(https_required + "/-/")
    assert response.status_code == 200
    assert response.url.scheme == "https"


@pytest.mark.parametrize("who", ["none", "expired", "stranger"])
def test_other_clients_fail_the_handshake(pki: Pki, https_required: str, who: str) -> None:
    identity = {"none": None, "expired": pki.expired, "stranger": pki.stranger}[who]
    with (httpx.Client(verify=client_context(pki, identity), timeout=10) as client,
          pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError))):
        client.get(https_required + "/-/")


def test_plain_http_to_the_https_port_gets_nothing(https_required: str) -> None:
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError)):
        httpx.get(https_required.replace("https://", "http://") + "/-/", timeout=5)


def test_client_certificates_without_a_ca_are_refused_at_start(pki: Pki, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "occipy", "serve", "--port", str(free_port()), "--data-dir", str(tmp_path),
         "--tls-cert", str(pki.server.cert), "--tls-key", str(pki.server.key), "--tls-client-cert", "required"],
        check=False, capture_output=True, timeout=60)
    assert result.returncode == 1
    assert b"tls_client_cert: needs tls_client_ca" in result.stderr


# ---- what the app sees: the edge in a thread around a recording app -------------------------------

class Recorder:
    """Stands in for the Service: answers with what the adapter put into the OcciRequest."""

    def __init__(self) -> None:
        self.requests: list[OcciRequest] = []

    async def admit(self, request: OcciRequest) -> Admission:
        """Step 1 of the pipeline (issue 8: the adapter asks it before reading the body)."""
        return Admission(request, ANONYMOUS)

    async def handle(self, request: OcciRequest, admission: Admission | None = None) -> OcciResponse:
        self.requests.append(request)
        body = json.dumps({"subject": request.client_subject, "issuer": request.client_issuer,
                           "request_id": request.request_id, "base_url": request.base_url}).encode()
        return OcciResponse(200, [("Content-Type", "application/json")], body)

    def render_error(self, error: Any, media: str) -> OcciResponse:
        return OcciResponse(error.status, [], error.message.encode())


async def scope_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A bare ASGI app answering with the scope's extensions (the ASGI TLS extension)."""
    # occipy's extension also carries the server's shutdown event (issue 12), which is not data.
    body = json.dumps(scope.get("extensions", {}), default=lambda value: None).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


@dataclass
class ThreadServer:
    url: str
    server: uvicorn.Server
    thread: threading.Thread


def serve_in_thread(pki: Pki, app: Any, client_cert: str, loop: str = "asyncio") -> ThreadServer:
    settings = replace(Settings(), port=free_port(), tls_cert=pki.server.cert, tls_key=pki.server.key,
                       tls_client_ca=pki.ca.files.cert, tls_client_cert=client_cert, x509_map=pki.x509_map)
    config = uvicorn_config(settings, app, loop=loop, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"https://127.0.0.1:{settings.port}"
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    return ThreadServer(url, server, thread)


@pytest.fixture(scope="module")
def optional_recorder(pki: Pki) -> Iterator[tuple[str, Recorder]]:
    recorder = Recorder()
    running = serve_in_thread(pki, create_app(recorder), "optional")  # type: ignore[arg-type]
    yield running.url, recorder
    running.server.should_exit = True
    running.thread.join(timeout=10)


@pytest.fixture(scope="module", params=["asyncio", "uvloop"])  # occipy serve runs on uvloop
def optional_scope(pki: Pki, request: pytest.FixtureRequest) -> Iterator[str]:
    running = serve_in_thread(pki, scope_app, "optional", loop=request.param)
    yield running.url
    running.server.should_exit = True
    running.thread.join(timeout=10)


def _seen(pki: Pki, url: str, identity: Issued | None) -> dict[str, Any]:
    with httpx.Client(verify=client_context(pki, identity), timeout=10) as client:
        response = client.get(url + "/-/", headers={"X-Request-ID": "tls-1"})
    assert response.status_code == 200, response.text
    document = response.json()
    assert isinstance(document, dict)
    return document


def test_the_asgi_tls_extension_carries_the_client_certificate(pki: Pki, optional_scope: str) -> None:
    extensions = _seen(pki, optional_scope, pki.alice)
    tls = extensions["tls"]
    assert tls["client_cert_name"] == "CN=alice,O=Example"  # RFC 4514, most specific first
    assert tls["client_cert_error"] is None
    assert tls["tls_version"] in (0x0303, 0x0304)
    assert len(tls["client_cert_chain"]) == 1
    assert tls["client_cert_chain"][0] == pki.alice.cert.read_text()
    assert tls["server_cert"] == pki.server.cert.read_text()
    assert extensions["occipy"]["client_cert_issuer"] == "CN=Test CA,O=Example"


def test_without_a_certificate_the_extension_says_none(pki: Pki, optional_scope: str) -> None:
    tls = _seen(pki, optional_scope, None)["tls"]
    assert tls["client_cert_name"] is None and tls["client_cert_chain"] == []


def test_an_expired_certificate_fails_even_when_optional(pki: Pki, optional_scope: str) -> None:
    with (httpx.Client(verify=client_context(pki, pki.expired), timeout=10) as client,
          pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError))):
        client.get(optional_scope + "/-/")


def _authenticate(pki: Pki, seen: dict[str, Any]) -> Principal | None:
    settings = replace(Settings(), tls_client_ca=pki.ca.files.cert, tls_client_cert="optional",
                       x509_map=pki.x509_map)
    authenticator: X509Authenticator = from_settings(settings)
    credentials = Credentials(client_subject=seen["subject"], client_issuer=seen["issuer"])
    return asyncio.run(authenticator.authenticate(credentials))


def test_a_listed_certificate_is_mapped_to_its_principal(pki: Pki,
                                                         optional_recorder: tuple[str, Recorder]) -> None:
    url, recorder = optional_recorder
    seen = _seen(pki, url, pki.alice)
    assert seen == {"subject": "CN=alice,O=Example", "issuer": "CN=Test CA,O=Example",
                    "request_id": "tls-1", "base_url": url}
    assert recorder.requests[-1].client_subject == "CN=alice,O=Example"
    principal = _authenticate(pki, seen)
    assert principal == Principal(user="alice", tenant="t1", roles=frozenset({"member"}), method="x509")


def test_an_unlisted_certificate_is_derived_from_its_subject(pki: Pki,
                                                             optional_recorder: tuple[str, Recorder]) -> None:
    seen = _seen(pki, optional_recorder[0], pki.bob)
    assert seen["subject"] == "CN=bob,O=Acme"
    principal = _authenticate(pki, seen)
    assert principal == Principal(user="bob", tenant="Acme", roles=frozenset({"reader"}), method="x509")


def test_no_certificate_is_no_x509_principal(pki: Pki, optional_recorder: tuple[str, Recorder]) -> None:
    """The x509 method says None: the chain (identity/chain.py) goes on to the next method or 401s."""
    seen = _seen(pki, optional_recorder[0], None)
    assert seen["subject"] is None and seen["issuer"] is None
    assert _authenticate(pki, seen) is None


def test_a_certificate_with_the_wrong_issuer_is_unauthorized(pki: Pki) -> None:
    """A listed subject from a CA the map does not name (both CAs trusted by the TLS layer) is a 401."""
    seen = {"subject": "CN=alice,O=Example", "issuer": "CN=Other CA,O=Example"}
    with pytest.raises(Unauthorized) as raised:
        _authenticate(pki, seen)
    assert raised.value.message == "the client certificate is not accepted here"
