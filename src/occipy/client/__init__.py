"""The occipy SDK: a typed OCCI 1.2 client (sync and async) for any OCCI server.

Front door only: re-exports the public names of the private modules and the error classes of
`occipy.errors` (one per OCCI error, each carrying the server's message). See docs/sdk.md.
Imports httpx, `occipy.model`, `occipy.rendering` and `occipy.errors`; never the server side.
"""

from occipy.client._auth import (
    BasicAuth,
    BearerToken,
    ClientCertificate,
    CredentialRefused,
    KeystoneAuth,
    KeystoneToken,
)
from occipy.client._client import AsyncClient, Client, LinkSpec, ServerUnreachable
from occipy.client._events import ServerEvent
from occipy.client._model import AmbiguousCategory, Model
from occipy.client._wait import OperationStatus, Progress, WaitTimeout
from occipy.errors import (
    ActionNotAllowed,
    BackendError,
    BackendUnavailable,
    BadRequest,
    Conflict,
    Forbidden,
    ImmutableAttribute,
    InvalidAttribute,
    MethodNotAllowed,
    MixinNotApplicable,
    NotAcceptable,
    NotFound,
    NotSupported,
    OcciError,
    ParseError,
    PayloadTooLarge,
    ServerError,
    Unauthorized,
    UnknownCategory,
    UnsupportedMediaType,
)
from occipy.model.category import Action, AttributeDef, Kind, Mixin
from occipy.model.entity import Entity

__all__ = [
    "Action",
    "ActionNotAllowed",
    "AmbiguousCategory",
    "AsyncClient",
    "AttributeDef",
    "BackendError",
    "BackendUnavailable",
    "BadRequest",
    "BasicAuth",
    "BearerToken",
    "Client",
    "ClientCertificate",
    "Conflict",
    "CredentialRefused",
    "Entity",
    "Forbidden",
    "ImmutableAttribute",
    "InvalidAttribute",
    "KeystoneAuth",
    "KeystoneToken",
    "Kind",
    "LinkSpec",
    "MethodNotAllowed",
    "Mixin",
    "MixinNotApplicable",
    "Model",
    "NotAcceptable",
    "NotFound",
    "NotSupported",
    "OcciError",
    "OperationStatus",
    "ParseError",
    "PayloadTooLarge",
    "Progress",
    "ServerError",
    "ServerEvent",
    "ServerUnreachable",
    "Unauthorized",
    "UnknownCategory",
    "UnsupportedMediaType",
    "WaitTimeout",
]
