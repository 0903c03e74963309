"""X.509 client certificates: the subject DN of a verified TLS client certificate -> a Principal.

The TLS handshake (http/protocol.py) has verified the certificate against `--tls-client-ca`; this
method only maps its subject, read from `Credentials.client_subject` (RFC 4514), through a TOML
mapping file (`--x509-map`, docs/security.md)::

    [subjects."CN=alice,O=Example"]          # one table per subject DN
    user = "alice"
    tenant = "t1"                            # default: "default"
    roles = ["member"]                       # default: ["member"]; admin, member, reader
    issuer = "CN=Example CA,O=Example"       # optional: only when this CA issued it

    [derive]                                 # optional: subjects not listed above
    user = "CN"                              # the DN attribute that names the user (required)
    tenant = "O"                             # the attribute that names the tenant (default tenant if absent)
    roles = ["member"]
    issuers = ["CN=Example CA,O=Example"]    # optional: only certificates of these CAs

DNs compare after parsing: attribute types without regard to case, values exactly (escapes
undone, spaces around separators ignored). Imports `occipy.errors`, `occipy.config`,
`occipy.identity.base` and the standard library.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from occipy.config import ConfigError, Settings
from occipy.errors import Unauthorized
from occipy.identity.base import DEFAULT_TENANT, MEMBER, ROLES, Credentials, Principal

NAME: Final = "x509"

# A parsed DN: its RDNs in the order written, each a sorted tuple of (TYPE, value) pairs.
DN = tuple[tuple[tuple[str, str], ...], ...]

_HEX: Final = frozenset("0123456789abcdefABCDEF")


class DnError(ValueError):
    """A string that is not an RFC 4514 distinguished name."""


def _split(text: str, separators: str) -> list[str]:
    """Split at the unescaped separators (RFC 4514 §3: `\\,` and `\\2C` are not separators)."""
    parts: list[str] = []
    current: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            current.append(text[index:index + 2])
            index += 2
            continue
        if char in separators:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        index += 1
    parts.append("".join(current))
    return parts


def _unescape(value: str) -> str:
    """RFC 4514 §3 value: `\\` + a special character, or `\\` + two hex digits (UTF-8 bytes)."""
    out = bytearray()
    index = 0
    while index < len(value):
        char = value[index]
        if char != "\\":
            out += char.encode()
            index += 1
            continue
        pair = value[index + 1:index + 3]
        if len(pair) == 2 and set(pair) <= _HEX:
            out.append(int(pair, 16))
            index += 3
        elif index + 1 < len(value):
            out += value[index + 1].encode()
            index += 2
        else:
            raise DnError(f"a value ends with a lone backslash: {value!r}")
    try:
        return out.decode()
    except UnicodeDecodeError:
        raise DnError(f"an escaped value is not UTF-8: {value!r}") from None


def _strip(value: str) -> str:
    """Spaces around a value go; an escaped trailing space (`\\ `) stays."""
    value = value.lstrip(" ")
    while value.endswith(" ") and not value.endswith("\\ "):
        value = value[:-1]
    return value


def parse_dn(text: str) -> DN:
    """An RFC 4514 string (as cryptography's `Name.rfc4514_string()` writes it) as comparable tuples."""
    if not text.strip():
        raise DnError("an empty distinguished name")
    rdns: list[tuple[tuple[str, str], ...]] = []
    for rdn in _split(text, ","):
        pairs: list[tuple[str, str]] = []
        for ava in _split(rdn, "+"):
            kind, sep, value = ava.partition("=")
            kind = kind.strip()
            if not sep or not kind:
                raise DnError(f"{ava.strip()!r} is not TYPE=value")
            pairs.append((kind.upper(), _unescape(_strip(value))))
        rdns.append(tuple(sorted(pairs)))
    return tuple(rdns)


def attribute(dn: DN, kind: str) -> str | None:
    """The value of an attribute type in a DN (the most specific, i.e. first written, occurrence)."""
    wanted = kind.upper()
    for rdn in dn:
        for name, value in rdn:
            if name == wanted:
                return value
    return None


@dataclass(frozen=True, slots=True)
class Mapped:
    """One `[subjects."DN"]` entry."""

    user: str
    tenant: str = DEFAULT_TENANT
    roles: frozenset[str] = frozenset({MEMBER})
    issuer: DN | None = None


@dataclass(frozen=True, slots=True)
class Derive:
    """The `[derive]` rule: user (and tenant) from attributes of the subject."""

    user_attribute: str
    tenant_attribute: str | None = None
    roles: frozenset[str] = frozenset({MEMBER})
    issuers: frozenset[DN] | None = None


@dataclass(frozen=True, slots=True)
class X509Map:
    subjects: Mapping[DN, Mapped]
    derive: Derive | None = None


def _roles(where: str, value: object) -> frozenset[str]:
    if value is None:
        return frozenset({MEMBER})
    if not isinstance(value, list) or not all(isinstance(role, str) for role in value):
        raise ConfigError(f"{where}: roles must be a list of strings")
    unknown = set(value) - ROLES
    if unknown:
        raise ConfigError(f"{where}: unknown roles {', '.join(sorted(unknown))} (known: {', '.join(sorted(ROLES))})")
    return frozenset(value)


def _text(where: str, table: Mapping[str, object], key: str, *, required: bool = False) -> str | None:
    value = table.get(key)
    if value is None:
        if required:
            raise ConfigError(f"{where}: {key} is required")
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: {key} must be a non-empty string")
    return value


def _dn(where: str, text: str) -> DN:
    try:
        return parse_dn(text)
    except DnError as error:
        raise ConfigError(f"{where}: {error}") from None


def parse_map(document: Mapping[str, object], source: str = "the x509 map") -> X509Map:
    """The mapping from a parsed TOML document (ConfigError naming the entry that is wrong)."""
    unknown = set(document) - {"subjects", "derive"}
    if unknown:
        raise ConfigError(f"{source}: unknown tables {', '.join(sorted(unknown))} (expected subjects, derive)")
    subjects: dict[DN, Mapped] = {}
    table = document.get("subjects", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: subjects must be a table of DNs")
    for text, entry in table.items():
        where = f'{source}, subjects."{text}"'
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: must be a table")
        extra = set(entry) - {"user", "tenant", "roles", "issuer"}
        if extra:
            raise ConfigError(f"{where}: unknown keys {', '.join(sorted(extra))}")
        issuer = _text(where, entry, "issuer")
        subjects[_dn(where, text)] = Mapped(
            user=_text(where, entry, "user", required=True) or "",
            tenant=_text(where, entry, "tenant") or DEFAULT_TENANT,
            roles=_roles(where, entry.get("roles")),
            issuer=_dn(where, issuer) if issuer else None,
        )
    derive = None
    rule = document.get("derive")
    if rule is not None:
        where = f"{source}, derive"
        if not isinstance(rule, dict):
            raise ConfigError(f"{where}: must be a table")
        extra = set(rule) - {"user", "tenant", "roles", "issuers"}
        if extra:
            raise ConfigError(f"{where}: unknown keys {', '.join(sorted(extra))}")
        issuers = rule.get("issuers")
        if issuers is not None and (not isinstance(issuers, list) or not all(isinstance(i, str) for i in issuers)):
            raise ConfigError(f"{where}: issuers must be a list of DNs")
        derive = Derive(
            user_attribute=_text(where, rule, "user", required=True) or "",
            tenant_attribute=_text(where, rule, "tenant"),
            roles=_roles(where, rule.get("roles")),
            issuers=frozenset(_dn(where, i) for i in issuers) if issuers is not None else None,
        )
    return X509Map(subjects=subjects, derive=derive)


def load_map(path: Path) -> X509Map:
    try:
        document = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"cannot read the x509 map {path}: {error}") from None
    return parse_map(document, str(path))


# The message of every refusal: it must not say which part was wrong (identity/base.py).
REFUSED: Final = "the client certificate is not accepted here"


@dataclass(frozen=True, slots=True)
class X509Authenticator:
    """The `x509` method: a verified client certificate's subject, mapped to a Principal."""

    mapping: X509Map
    name: str = NAME

    def challenges(self) -> Sequence[str]:
        return ()  # a certificate is asked for in the TLS handshake, not by a 401

    async def authenticate(self, credentials: Credentials) -> Principal | None:
        if credentials.client_subject is None:
            return None
        try:
            subject = parse_dn(credentials.client_subject)
            issuer = parse_dn(credentials.client_issuer) if credentials.client_issuer else None
        except DnError:
            raise Unauthorized(REFUSED) from None
        entry = self.mapping.subjects.get(subject)
        if entry is not None:
            if entry.issuer is not None and entry.issuer != issuer:
                raise Unauthorized(REFUSED)
            return Principal(user=entry.user, tenant=entry.tenant, roles=entry.roles, method=NAME)
        rule = self.mapping.derive
        if rule is None or (rule.issuers is not None and issuer not in rule.issuers):
            raise Unauthorized(REFUSED)
        user = attribute(subject, rule.user_attribute)
        if not user:
            raise Unauthorized(REFUSED)
        tenant = attribute(subject, rule.tenant_attribute) if rule.tenant_attribute else None
        return Principal(user=user, tenant=tenant or DEFAULT_TENANT, roles=rule.roles, method=NAME)

    async def close(self) -> None:
        return None


def from_settings(settings: Settings) -> X509Authenticator:
    """The `x509` authenticator for these settings (identity/chain.py's factory by name "x509")."""
    if settings.x509_map is None:
        raise ConfigError("x509 authentication needs a mapping file: --x509-map (OCCIPY_X509_MAP)")
    if settings.tls_client_cert == "none" or settings.tls_client_ca is None:
        raise ConfigError("x509 authentication needs client certificates: --tls-client-cert optional|required "
                          "and --tls-client-ca")
    return X509Authenticator(load_map(settings.x509_map))
