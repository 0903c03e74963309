"""The enabled authentication methods as one Authenticator, built from the settings.

`build_authenticator(settings)` reads `settings.auth` ("basic,oidc,keystone,x509"), builds each
method from its factory in `FACTORIES` (name -> function of the settings; another module may
`register()` one) and chains them. With no method it is `Anonymous()`. `check_exposure()` refuses
an anonymous server on a non-loopback address. Only `server.py` imports this module; the methods
are imported when enabled, so their libraries load only when used.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Sequence
from typing import Final

from occipy import errors
from occipy.config import ConfigError, Settings
from occipy.identity.base import Anonymous, Authenticator, Credentials, Principal

log = logging.getLogger("occipy.identity")

Factory = Callable[[Settings], Authenticator]


class Chain:
    """Several methods in the order given: the first principal wins.

    A request whose credentials every method ignores is None (the pipeline answers 401 with all
    challenges). If no method accepted and any refused, Unauthorized is raised again with the
    challenges of every enabled method (RFC 7235 §4.1: one WWW-Authenticate per scheme). A method
    whose provider is down (503) only decides the answer when no other method accepted or refused.
    """

    name = "chain"

    def __init__(self, methods: Sequence[Authenticator]) -> None:
        self.methods = tuple(methods)
        self._challenges = tuple(c for method in self.methods for c in method.challenges())

    def challenges(self) -> Sequence[str]:
        return self._challenges

    async def authenticate(self, credentials: Credentials) -> Principal | None:
        refused: errors.Unauthorized | None = None
        unavailable: errors.OcciError | None = None
        for method in self.methods:
            try:
                principal = await method.authenticate(credentials)
            except errors.Unauthorized as error:
                refused = refused or error
                continue
            except (errors.BackendUnavailable, errors.BackendError) as error:
                unavailable = unavailable or error
                continue
            if principal is not None:
                return principal
        if refused is not None:
            raise errors.Unauthorized(refused.message, self._challenges)
        if unavailable is not None:
            raise unavailable
        return None

    async def close(self) -> None:
        for method in self.methods:
            await method.close()


def methods(settings: Settings) -> list[str]:
    """The enabled method names, in order, without repeats ("" and "none" enable nothing)."""
    names: list[str] = []
    for part in settings.auth.split(","):
        name = part.strip().lower()
        if name and name not in ("none", "anonymous") and name not in names:
            names.append(name)
    return names


def _need(settings: Settings, method: str, *names: str) -> None:
    missing = [name for name in names if not getattr(settings, name)]
    if missing:
        flags = ", ".join("--" + name.replace("_", "-") for name in missing)
        envs = ", ".join("OCCIPY_" + name.upper() for name in missing)
        raise ConfigError(f"--auth {method} needs {flags} (env {envs})")


def _basic(settings: Settings) -> Authenticator:
    _need(settings, "basic", "htpasswd")
    from occipy.identity._files import FileFormatError
    from occipy.identity.basic import BasicAuthenticator

    assert settings.htpasswd is not None
    try:
        return BasicAuthenticator(settings.htpasswd, groups=settings.groups, roles=settings.roles)
    except FileFormatError as error:
        raise ConfigError(str(error)) from None


def _oidc(settings: Settings) -> Authenticator:
    _need(settings, "oidc", "oidc_issuer", "oidc_audience")
    from occipy.identity.oidc import OidcAuthenticator, OidcOptions

    assert settings.oidc_issuer is not None and settings.oidc_audience is not None
    if not settings.oidc_issuer.startswith(("https://", "http://")):
        raise ConfigError(f"--oidc-issuer must be an https:// URL, not {settings.oidc_issuer!r}")
    audiences = tuple(a.strip() for a in settings.oidc_audience.split(",") if a.strip())
    if not audiences:
        raise ConfigError("--oidc-audience names no audience")
    if settings.oidc_tenant_prefix and not settings.oidc_tenant_claim:
        raise ConfigError("--oidc-tenant-prefix needs --oidc-tenant-claim")
    return OidcAuthenticator(OidcOptions(
        issuer=settings.oidc_issuer, audiences=audiences, user_claim=settings.oidc_user_claim,
        tenant_claim=settings.oidc_tenant_claim or None, tenant_prefix=settings.oidc_tenant_prefix or None,
        roles_claim=settings.oidc_roles_claim or None, jwks_min_interval=settings.oidc_jwks_min_interval,
    ))


def _keystone(settings: Settings) -> Authenticator:
    _need(settings, "keystone", "keystone_url")
    from occipy.identity.keystone import KeystoneAuthenticator, KeystoneOptions

    assert settings.keystone_url is not None
    if not settings.keystone_url.startswith(("https://", "http://")):
        raise ConfigError(f"--keystone-url must be an http(s):// URL, not {settings.keystone_url!r}")
    if settings.keystone_user:
        _need(settings, "keystone", "keystone_password", "keystone_project")
    return KeystoneAuthenticator(KeystoneOptions(
        url=settings.keystone_url, user=settings.keystone_user or None, password=settings.keystone_password,
        project=settings.keystone_project, user_domain=settings.keystone_user_domain,
        project_domain=settings.keystone_project_domain, cache_ttl=settings.keystone_cache_ttl,
    ))


def _x509(settings: Settings) -> Authenticator:
    """X.509 client certificates (`occipy.identity.x509`)."""
    from occipy.identity import x509

    return x509.from_settings(settings)


FACTORIES: Final[dict[str, Factory]] = {
    "basic": _basic,
    "oidc": _oidc,
    "keystone": _keystone,
    "x509": _x509,
}


def register(name: str, factory: Factory) -> None:
    """Make `--auth <name>` build its authenticator with `factory(settings)`."""
    FACTORIES[name] = factory


def build_authenticator(settings: Settings) -> Authenticator:
    """The authenticator for the settings: `Anonymous()` without --auth, else the chain."""
    names = methods(settings)
    if not names:
        return Anonymous()
    unknown = [name for name in names if name not in FACTORIES]
    if unknown:
        raise ConfigError(f"unknown --auth method {', '.join(unknown)} (known: {', '.join(FACTORIES)})")
    built: list[Authenticator] = []
    for name in names:
        try:
            built.append(FACTORIES[name](settings))
        except ValueError as error:
            raise ConfigError(f"--auth {name}: {error}") from None
    log.info("authentication: %s", ", ".join(names))
    return Chain(built)


def is_loopback(host: str) -> bool:
    """Whether a listen address only accepts connections from this machine."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name may resolve to anything


def check_exposure(settings: Settings) -> None:
    """Refuse to serve anonymously on an address other machines can reach (issue 8)."""
    if methods(settings) or settings.allow_anonymous or is_loopback(settings.host):
        return
    raise ConfigError(
        f"refusing to serve {settings.host} without authentication: give --auth (docs/security.md), "
        "or --allow-anonymous to let anyone in")
