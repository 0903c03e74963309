"""Per-principal rate limits (issue 8): 429 Too Many Requests with Retry-After (RFC 6585 §4).

The pipeline asks `RateLimits` right after authentication, before anything else is done for the
request: `admit(principal, method, peer)` counts the request against every configured limit of
its principal (writes also against the write limits) and raises `errors.TooManyRequests` when one
is exhausted. Requests whose credentials are refused count against a limit per client address
(`refused`), which is checked before authentication is tried (`check_peer`): guessing passwords
costs the guesser, not the bcrypt threads. Counting is the `limits` library's moving window, in
process memory: with several server processes each counts its own requests.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Final

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from occipy.errors import TooManyRequests
from occipy.identity.base import ANONYMOUS, Principal
from occipy.service.options import RateLimitSettings

READS: Final = frozenset({"GET", "HEAD", "OPTIONS"})


def parse(setting: str, value: str) -> tuple[RateLimitItem, ...]:
    """The limits of one setting; ValueError naming the setting when the notation is wrong."""
    if not value.strip():
        return ()
    try:
        return tuple(parse_many(value))
    except ValueError:
        raise ValueError(f"setting {setting}: {value!r} is not a rate limit such as '20/second;600/minute'") from None


class RateLimits:
    """Moving-window counters per principal and per client address; `None` settings: no limits."""

    def __init__(self, settings: RateLimitSettings) -> None:
        self.requests = parse("rate_limit", settings.requests)
        self.writes = parse("rate_limit_writes", settings.writes)
        self.auth_failures = parse("rate_limit_auth_failures", settings.auth_failures)
        self.enabled = bool(self.requests or self.writes or self.auth_failures)
        # MemoryStorage starts a timer thread to expire keys: only made when something is limited.
        self._limiter = MovingWindowRateLimiter(MemoryStorage()) if self.enabled else None

    @staticmethod
    def key_of(principal: Principal, peer: str | None) -> str:
        """Whose counter a request counts against: the principal's, or for anonymous callers
        (every anonymous request is the same principal) the client address's."""
        if principal == ANONYMOUS or principal.method == "anonymous":
            return f"peer:{peer or '-'}"
        return f"principal:{principal.method}:{principal.tenant}:{principal.user}"

    def admit(self, principal: Principal, method: str, peer: str | None) -> None:
        """Count one request of `principal`; TooManyRequests (429) when a limit is exhausted."""
        if self._limiter is None:
            return
        key = self.key_of(principal, peer)
        items = self.requests if method in READS else (*self.requests, *self.writes)
        self._hit(items, key, f"{principal.user} has made too many requests")

    def check_peer(self, peer: str | None) -> None:
        """Before authentication: 429 when this address has had too many credentials refused."""
        if self._limiter is None or not self.auth_failures:
            return
        key = f"failures:{peer or '-'}"
        for item in self.auth_failures:
            if not self._limiter.test(item, key):
                raise TooManyRequests(
                    f"too many refused credentials from this address: at most {item}; try again later",
                    self._retry_after(item, key))

    def refused(self, peer: str | None) -> None:
        """Count a request whose credentials were refused (401) against its client address."""
        if self._limiter is None:
            return
        key = f"failures:{peer or '-'}"
        for item in self.auth_failures:
            self._limiter.hit(item, key)

    def _hit(self, items: Sequence[RateLimitItem], key: str, who: str) -> None:
        assert self._limiter is not None
        # Test every limit first, so that a refused request does not use up the others.
        for item in items:
            if not self._limiter.test(item, key):
                raise TooManyRequests(f"{who}: at most {item}; try again later", self._retry_after(item, key))
        for item in items:
            self._limiter.hit(item, key)

    def _retry_after(self, item: RateLimitItem, key: str) -> int:
        assert self._limiter is not None
        stats = self._limiter.get_window_stats(item, key)
        return max(1, math.ceil(stats.reset_time - time.time()))
