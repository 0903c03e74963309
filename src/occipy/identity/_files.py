"""Apache's htpasswd and AuthGroupFile formats, and a file re-read when it changes.

Pure parsing plus one `stat` per look-up; imports only the standard library.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

log = logging.getLogger("occipy.identity")

T = TypeVar("T")

# bcrypt as Apache's htpasswd -B writes it ($2y$) and as other tools do ($2a$, $2b$).
BCRYPT_PREFIXES = ("$2y$", "$2a$", "$2b$")


class FileFormatError(ValueError):
    """A file that cannot be used; the message names the file and the line."""


@dataclass(frozen=True, slots=True)
class Htpasswd:
    """User name -> bcrypt hash; `unusable` names users whose hash is not bcrypt."""

    hashes: Mapping[str, bytes]
    unusable: frozenset[str] = frozenset()


def parse_htpasswd(text: str, origin: str) -> Htpasswd:
    """`user:hash` lines (Apache's htpasswd); blank lines and `#` comments are skipped.

    Only bcrypt hashes (`htpasswd -B`) are accepted: Apache's MD5 (`$apr1$`), SHA-1 (`{SHA}`),
    crypt(3) and plain text are too weak to keep, so such users cannot log in (logged once).
    """
    hashes: dict[str, bytes] = {}
    unusable: set[str] = set()
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not user or not hashed:
            raise FileFormatError(f"{origin}, line {number}: expected user:hash")
        hashed = hashed.strip()
        if hashed.startswith(BCRYPT_PREFIXES):
            hashes[user] = hashed.encode("ascii", "replace")
            unusable.discard(user)
        else:
            unusable.add(user)
            hashes.pop(user, None)
    if unusable:
        log.warning("%s: users %s have no bcrypt hash (htpasswd -B) and cannot log in",
                    origin, ", ".join(sorted(unusable)))
    return Htpasswd(hashes=hashes, unusable=frozenset(unusable))


def parse_groups(text: str, origin: str) -> dict[str, list[str]]:
    """`group: user1 user2` lines (Apache's AuthGroupFile) as group -> members, in file order.

    A group on several lines collects the members of all of them.
    """
    groups: dict[str, list[str]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        group, sep, members = line.partition(":")
        group = group.strip()
        if not sep or not group or any(c.isspace() for c in group):
            raise FileFormatError(f"{origin}, line {number}: expected 'group: user1 user2 ...'")
        listed = groups.setdefault(group, [])
        listed.extend(member for member in members.split() if member not in listed)
    return groups


def membership(groups: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """User -> the groups that list them, in file order."""
    result: dict[str, list[str]] = {}
    for group, members in groups.items():
        for member in members:
            result.setdefault(member, []).append(group)
    return result


class WatchedFile(Generic[T]):
    """The parsed content of a file, parsed again when its size, mtime or inode changes.

    A file that becomes unreadable or malformed keeps its last good content (and logs why);
    at construction it must be readable and well formed.
    """

    def __init__(self, path: str | os.PathLike[str], parse: Callable[[str, str], T]) -> None:
        self.path = Path(path)
        self._parse = parse
        self._stamp: tuple[int, int, int] | None = None
        try:
            self._value = self._load()
        except OSError as error:
            raise FileFormatError(f"cannot read {self.path}: {error.strerror or error}") from None

    def _load(self) -> T:
        stat = self.path.stat()
        text = self.path.read_text(encoding="utf-8", errors="replace")
        value = self._parse(text, str(self.path))
        self._stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        return value

    @property
    def value(self) -> T:
        """The current content (a `stat` per call; a changed file is parsed again)."""
        try:
            stat = self.path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        except OSError as error:
            if self._stamp is not None:
                log.error("cannot read %s (%s): keeping its last content", self.path, error.strerror or error)
                self._stamp = None
            return self._value
        if stamp != self._stamp:
            try:
                self._value = self._load()
                log.info("re-read %s", self.path)
            except (OSError, FileFormatError) as error:
                log.error("%s: keeping its last good content", error)
                self._stamp = stamp  # do not parse the same broken version again
        return self._value
