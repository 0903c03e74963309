"""HTTP Basic authentication (RFC 7617) against Apache htpasswd, group and role files.

GFD.223 §12: "Authentication SHOULD use HTTP authentication ... Basic as default". Passwords are
bcrypt hashes (`htpasswd -B`), verified with the `bcrypt` library in worker threads, never on the
event loop; a successful verification is remembered for `cache_ttl` seconds under an HMAC of the
credentials. The files are re-read when they change. Imports bcrypt, anyio, `occipy.errors` and
this package.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import anyio
import anyio.to_thread
import bcrypt

from occipy import errors
from occipy.identity import _files
from occipy.identity._roles import roles_from
from occipy.identity.base import DEFAULT_TENANT, ROLES, Credentials, Principal

REALM: Final = "occipy"
# bcrypt looks at the first 72 bytes of a password; Apache's htpasswd truncates there too
# (the bcrypt library refuses longer input instead).
_BCRYPT_MAX: Final = 72
# Verified against when the user does not exist and the file has no hash to borrow, so that the
# answer takes about as long either way (cost 5 is `htpasswd -B`'s default).
_DUMMY_HASH: Final = b"$2b$05$khgsu.eQPHXsPt9zwZJyoelx/VbhS7zKTQGpagN0KYlpPXHJ8MxjC"


def _roles_file(text: str, origin: str) -> dict[str, list[str]]:
    groups = _files.parse_groups(text, origin)
    unknown = sorted(set(groups) - ROLES)
    if unknown:
        raise _files.FileFormatError(
            f"{origin}: unknown role {', '.join(unknown)} (roles are {', '.join(sorted(ROLES))})")
    return _files.membership(groups)


def _groups_file(text: str, origin: str) -> dict[str, list[str]]:
    return _files.membership(_files.parse_groups(text, origin))


@dataclass(frozen=True, slots=True)
class _Verified:
    hashed: bytes  # the htpasswd entry it was verified against (a changed entry invalidates it)
    until: float


class BasicAuthenticator:
    """`Authorization: Basic` checked against an htpasswd file.

    The tenant is the first group of the groups file that lists the user; with a groups file, a
    user in no group is refused (401, as for a wrong password). Without one every user is in the
    `default` tenant. Roles come from the roles file (`admin: alice`); users it does not list
    are `member`.
    """

    name = "basic"

    def __init__(self, htpasswd: str | os.PathLike[str], *, groups: str | os.PathLike[str] | None = None,
                 roles: str | os.PathLike[str] | None = None, realm: str = REALM,
                 cache_ttl: float = 60.0, max_threads: int = 4) -> None:
        self._passwords = _files.WatchedFile(htpasswd, _files.parse_htpasswd)
        self._groups = _files.WatchedFile(groups, _groups_file) if groups is not None else None
        self._roles = _files.WatchedFile(roles, _roles_file) if roles is not None else None
        self._challenge = f'Basic realm="{realm}", charset="UTF-8"'
        self._cache_ttl = cache_ttl
        self._cache: dict[bytes, _Verified] = {}
        self._cache_key = os.urandom(32)  # the cache holds HMACs, never passwords or plain digests
        self._max_threads = max_threads
        self._limiter: anyio.CapacityLimiter | None = None

    def challenges(self) -> Sequence[str]:
        return (self._challenge,)

    async def authenticate(self, credentials: Credentials) -> Principal | None:
        header = credentials.header("authorization")
        if header is None:
            return None
        scheme, _, encoded = header.strip().partition(" ")
        if scheme.lower() != "basic":
            return None
        user, password = _decode(encoded.strip())
        if user is None or password is None:
            raise errors.Unauthorized("wrong user name or password", self.challenges())
        hashes = self._passwords.value.hashes
        hashed = hashes.get(user)
        # An unknown user costs a bcrypt check too (against another entry's hash, so at its cost).
        decoy = next(iter(hashes.values()), _DUMMY_HASH)
        if not await self._verify(user, password, hashed, decoy):
            raise errors.Unauthorized("wrong user name or password", self.challenges())
        return self._principal(user)

    async def _verify(self, user: str, password: str, hashed: bytes | None, decoy: bytes) -> bool:
        key = hmac.digest(self._cache_key, user.encode() + b"\0" + password.encode(), hashlib.sha256)
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hashed is not None and hit.hashed == hashed and hit.until > now:
            return True
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self._max_threads)
        candidate = password.encode()[:_BCRYPT_MAX]
        ok = await anyio.to_thread.run_sync(_checkpw, candidate, hashed or decoy, limiter=self._limiter)
        if not ok or hashed is None:
            return False
        if len(self._cache) >= 10_000:
            self._cache = {k: v for k, v in self._cache.items() if v.until > now}
            if len(self._cache) >= 10_000:
                self._cache.clear()
        self._cache[key] = _Verified(hashed=hashed, until=now + self._cache_ttl)
        return True

    def _principal(self, user: str) -> Principal:
        tenant = DEFAULT_TENANT
        if self._groups is not None:
            groups = self._groups.value.get(user)
            if not groups:
                # Documented rule (docs/security.md): with a groups file, no group means no access.
                raise errors.Unauthorized("wrong user name or password", self.challenges())
            tenant = groups[0]
        roles = roles_from(self._roles.value.get(user, ()) if self._roles is not None else ())
        return Principal(user=user, tenant=tenant, roles=roles, method=self.name)

    async def close(self) -> None:
        self._cache.clear()


def _checkpw(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:  # a malformed hash in the file
        return False


def _decode(encoded: str) -> tuple[str | None, str | None]:
    """user and password of `base64(user:password)`; UTF-8 (RFC 7617 §2.1), else ISO-8859-1."""
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None, None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    user, sep, password = text.partition(":")
    if not sep or not user:
        return None, None
    return user, password

