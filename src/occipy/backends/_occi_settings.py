"""Settings of the OCCI driver: string options (--driver-opt, OCCIPY_OCCI_*, [drivers.occi]) to typed values.

`parse()` checks every option and names the bad one in a ValueError; the authentication options
become the SDK's own values (`BasicAuth`, `BearerToken`, `KeystoneAuth`, `KeystoneToken`,
`ClientCertificate`). docs/drivers/occi.md lists them. Imports the SDK's auth values only.
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from occipy.client import BasicAuth, BearerToken, ClientCertificate, KeystoneAuth, KeystoneToken, OcciError

Auth = BasicAuth | BearerToken | KeystoneAuth | KeystoneToken

AUTH_METHODS: Final = ("none", "basic", "token", "keystone", "keystone-token", "x509")
MEDIA_TYPES: Final = ("auto", "json", "text", "occi")
OPTIONS: Final = frozenset({
    "url", "auth", "username", "password", "token", "token_file", "keystone_url", "project",
    "user_domain", "project_domain", "cert", "key", "verify", "media_type", "timeout", "wait",
    "interval", "poll", "tag",
})
# The installation tag is kept in the data directory, so that it survives restarts (docs/drivers/occi.md).
TAG_FILE: Final = "occi-driver-tag"
_TAG: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}\Z")  # what _occi_map.TAG_RE reads back


@dataclass(frozen=True, slots=True)
class OcciSettings:
    """Where the remote OCCI site is and how to talk to it."""

    url: str
    auth: Auth | None = None
    cert: ClientCertificate | None = None
    verify: bool | str = True
    media_type: str | None = None  # json | text | occi; None: the best the remote offers
    timeout: float = 30.0  # seconds for one HTTP request
    wait: float = 600.0  # seconds a remote operation may take (create, action, delete)
    interval: float = 1.0  # seconds between two polls of a remote operation
    poll: float = 15.0  # seconds between two looks for changes made outside occipy (0: never)
    tag: str = "occipy"  # this installation's mark on the remote objects it makes

    @property
    def origin(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"


def parse(options: Mapping[str, str], data_dir: Path | None) -> OcciSettings:
    """Typed settings from string options; ValueError naming the option that is wrong.

    Without `tag`, the tag is read from (or first written to) `<data_dir>/occi-driver-tag`.
    """
    unknown = sorted(set(options) - OPTIONS)
    if unknown:
        raise ValueError(f"unknown occi driver option(s) {', '.join(unknown)}; known: {', '.join(sorted(OPTIONS))}")
    url = options.get("url", "").strip()
    if not url:
        raise ValueError("occi driver option url is required: the OCCI endpoint to federate, e.g. https://occi.example.org:11443/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"occi driver option url: expected an http:// or https:// URL, got {url!r}")
    media = options.get("media_type", "auto").strip().lower() or "auto"
    if media not in MEDIA_TYPES:
        raise ValueError(f"occi driver option media_type: use one of {', '.join(MEDIA_TYPES)}, got {media!r}")
    tag = options.get("tag", "").strip() or _installation_tag(data_dir)
    if not _TAG.match(tag):
        raise ValueError(f"occi driver option tag: 1-64 letters, digits, '.', '_' or '-', got {tag!r}")
    auth, cert = _auth(options)
    return OcciSettings(
        url=url if url.endswith("/") else url + "/",
        auth=auth,
        cert=cert,
        verify=_verify(options.get("verify", "true")),
        media_type=None if media == "auto" else media,
        timeout=_seconds(options, "timeout", 30.0, minimum=0.1),
        wait=_seconds(options, "wait", 600.0, minimum=0.1),
        interval=_seconds(options, "interval", 1.0, minimum=0.01),
        poll=_seconds(options, "poll", 15.0, minimum=0.0),
        tag=tag,
    )


def _installation_tag(data_dir: Path | None) -> str:
    if data_dir is None:
        return "occipy"
    path = data_dir / TAG_FILE
    try:
        existing = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        existing = ""
    except OSError as error:
        raise ValueError(f"occi driver: cannot read {path}: {error}") from None
    if existing:
        return existing
    tag = "occipy-" + secrets.token_hex(4)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(tag + "\n", encoding="utf-8")
    except OSError as error:
        raise ValueError(f"occi driver: cannot write {path}: {error}") from None
    return tag


def _seconds(options: Mapping[str, str], name: str, default: float, *, minimum: float) -> float:
    raw = options.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"occi driver option {name}: expected seconds, got {raw!r}") from None
    if not math.isfinite(value) or value < minimum:
        raise ValueError(f"occi driver option {name}: must be {minimum:g} or more seconds, got {raw!r}")
    return value


def _verify(raw: str) -> bool | str:
    value = raw.strip()
    if value.lower() in ("true", "yes", "1", "on", ""):
        return True
    if value.lower() in ("false", "no", "0", "off"):
        return False
    if not Path(value).expanduser().is_file():
        raise ValueError(f"occi driver option verify: true, false or a CA bundle file; {value!r} is no file")
    return str(Path(value).expanduser())


def _need(options: Mapping[str, str], name: str, method: str) -> str:
    value = options.get(name, "")
    if not value:
        raise ValueError(f"occi driver option {name} is required with auth={method}")
    return value


def _token(options: Mapping[str, str], method: str) -> str:
    if options.get("token"):
        return options["token"].strip()
    path = options.get("token_file", "")
    if not path:
        raise ValueError(f"occi driver: auth={method} needs option token or token_file")
    try:
        return BearerToken.from_file(path).token
    except OcciError as error:
        raise ValueError(f"occi driver option token_file: {error.message}") from None


def _auth(options: Mapping[str, str]) -> tuple[Auth | None, ClientCertificate | None]:
    method = options.get("auth", "").strip().lower()
    if not method:  # inferred from the credentials given
        if options.get("username"):
            method = "basic"
        elif options.get("token") or options.get("token_file"):
            method = "token"
        elif options.get("cert"):
            method = "x509"
        else:
            method = "none"
    if method not in AUTH_METHODS:
        raise ValueError(f"occi driver option auth: use one of {', '.join(AUTH_METHODS)}, got {method!r}")
    cert = None
    if options.get("cert") or method == "x509":
        cert_path = Path(_need(options, "cert", method)).expanduser()
        key = options.get("key")
        for path in (cert_path, Path(key).expanduser() if key else None):
            if path is not None and not path.is_file():
                raise ValueError(f"occi driver: the certificate or key file {path} does not exist")
        cert = ClientCertificate(cert=cert_path, key=Path(key).expanduser() if key else None)
    elif options.get("key"):
        raise ValueError("occi driver option key needs option cert")
    auth: Auth | None = None
    if method == "basic":
        auth = BasicAuth(_need(options, "username", method), _need(options, "password", method))
    elif method == "token":
        auth = BearerToken(_token(options, method))
    elif method == "keystone-token":
        auth = KeystoneToken(_token(options, method))
    elif method == "keystone":
        auth = KeystoneAuth(
            username=_need(options, "username", method), password=_need(options, "password", method),
            project=options.get("project") or None, user_domain=options.get("user_domain") or "Default",
            project_domain=options.get("project_domain") or "Default", url=options.get("keystone_url") or None)
    return auth, cert
