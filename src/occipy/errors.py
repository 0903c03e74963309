"""The OcciError tree and the one table that maps each error to an HTTP status.

Imports nothing from occipy. Tree (GFD.223 §5.4, http-protocol.md §5.3)::

    OcciError
    ├── BadRequest (400)
    │   ├── ParseError            a rendering that does not follow its grammar
    │   ├── UnknownCategory       a type identifier the registry does not know
    │   ├── InvalidAttribute      unknown attribute, wrong type, pattern, enum, missing required
    │   └── UriListNotListing     text/uri-list asked for something that is not a listing
    ├── Unauthorized (401)        carries the WWW-Authenticate challenges
    ├── Forbidden (403)
    │   ├── ImmutableAttribute    a client tried to change a server-managed attribute
    │   ├── MixinNotApplicable    a mixin whose `applies` excludes the entity's Kind
    │   └── QuotaExceeded         a tenant quota would be exceeded (names quota, limit, usage)
    ├── NotFound (404)
    ├── MethodNotAllowed (405)    carries the allowed methods
    ├── NotAcceptable (406)
    ├── Conflict (409)
    │   └── ActionNotAllowed      action not allowed in the entity's current state
    ├── PreconditionFailed (412)  If-Match / If-None-Match did not hold
    ├── PayloadTooLarge (413)
    │   └── PageTooLarge          pagination `number` above the provider's limit
    ├── UnsupportedMediaType (415)
    ├── TooManyRequests (429)     a rate limit; carries Retry-After seconds
    ├── HeaderTooLarge (431)      the request header section is too large
    ├── BackendError (502)        the cloud behind a driver failed
    ├── NotSupported (501)        not implemented, or a client OCCI version above 1.2
    └── BackendUnavailable (503)

Anything that is not an OcciError is a bug and becomes a 500.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final


class OcciError(Exception):
    """Base of every error the service reports to a client; never raised directly."""

    def __init__(self, message: str) -> None:
        if type(self) is OcciError:
            raise TypeError("raise a subclass of OcciError, not OcciError itself")
        super().__init__(message)
        self.message = message

    @property
    def status(self) -> int:
        return status_for(type(self))


class BadRequest(OcciError):
    """400: the request is malformed or inconsistent with the model."""


class ParseError(BadRequest):
    """400: a rendering does not follow its grammar (GFD.229 §4, GFD.226)."""


class UnknownCategory(BadRequest):
    """400: a Kind, Mixin or Action type identifier that the registry does not know."""


class InvalidAttribute(BadRequest):
    """400: unknown attribute, wrong value type, pattern or enum violation, missing required value."""


class UriListNotListing(BadRequest):
    """400: text/uri-list was the only acceptable type for a non-listing (GFD.229 §8 MUST)."""


class Unauthorized(OcciError):
    """401: missing or invalid credentials; `challenges` become WWW-Authenticate headers (RFC 7235)."""

    def __init__(self, message: str, challenges: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.challenges = tuple(challenges)


class Forbidden(OcciError):
    """403: the caller may not do this."""


class ImmutableAttribute(Forbidden):
    """403: a client tried to change an immutable attribute (GFD.221 §5.2, GFD.185 §3.6.8)."""


class MixinNotApplicable(Forbidden):
    """403: the mixin's `applies` does not cover the entity's Kind (core.md §2.5 decision)."""


class QuotaExceeded(Forbidden):
    """403: the request would take a tenant over one of its quotas (the message names it, as Nova does)."""


class NotFound(OcciError):
    """404: the URL, or a location named in the payload, does not exist."""


class MethodNotAllowed(OcciError):
    """405: the method is not defined for this path."""

    def __init__(self, message: str, allowed: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.allowed = tuple(allowed)


class NotAcceptable(OcciError):
    """406: nothing in Accept can be produced."""


class Conflict(OcciError):
    """409: the request conflicts with the current state (duplicate id, ambiguous action, ...)."""


class ActionNotAllowed(Conflict):
    """409: the action is defined for the entity but not allowed in its current state."""


class PreconditionFailed(OcciError):
    """412: a conditional request (If-Match, If-None-Match) did not hold (RFC 9110 §13)."""


class PayloadTooLarge(OcciError):
    """413: body or header section larger than the server accepts."""


class PageTooLarge(PayloadTooLarge):
    """413: pagination `number` larger than the provider allows (GFD.223 §6 MUST)."""


class UnsupportedMediaType(OcciError):
    """415: the request Content-Type is not one we parse."""


class TooManyRequests(OcciError):
    """429: a rate limit was hit; `retry_after` (seconds) becomes the Retry-After header (RFC 6585)."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class HeaderTooLarge(OcciError):
    """431: the request header section is larger than the server reads (RFC 6585 §5)."""


class NotSupported(OcciError):
    """501: not implemented here (GFD.185 §3.6.8), or a client OCCI version above ours (GFD.223 §5.3)."""


class BackendError(OcciError):
    """502: the cloud behind the driver answered with an error."""


class BackendUnavailable(OcciError):
    """503: the cloud behind the driver cannot be reached, or the service is in maintenance."""


HTTP_STATUS: Final[Mapping[type[OcciError], int]] = {
    BadRequest: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    MethodNotAllowed: 405,
    NotAcceptable: 406,
    Conflict: 409,
    PreconditionFailed: 412,
    PayloadTooLarge: 413,
    UnsupportedMediaType: 415,
    TooManyRequests: 429,
    HeaderTooLarge: 431,
    NotSupported: 501,
    BackendError: 502,
    BackendUnavailable: 503,
}


def status_for(error_type: type[BaseException]) -> int:
    """The HTTP status of an error class, found by MRO; 500 for anything unlisted."""
    for cls in error_type.__mro__:
        status = HTTP_STATUS.get(cls)
        if status is not None:
            return status
    return 500


def error_for_status(status: int) -> type[OcciError]:
    """The most general OcciError class for an HTTP status (the client reads the table backwards)."""
    for cls, code in HTTP_STATUS.items():
        if code == status:
            return cls
    if 400 <= status < 500:
        return BadRequest
    return BackendError if status == 502 else BackendUnavailable if status == 503 else ServerError


class ServerError(OcciError):
    """500 as seen by a client: the server failed unexpectedly."""
