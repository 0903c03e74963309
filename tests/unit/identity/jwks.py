"""Signing keys and tokens for the OIDC tests: a key the provider publishes, and ones it does not."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm


@dataclass
class SigningKey:
    kid: str
    alg: str = "RS256"
    private: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.private is None:
            if self.alg.startswith("ES"):
                self.private = ec.generate_private_key(ec.SECP256R1())
            else:
                self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwk(self) -> dict[str, Any]:
        algorithm = ECAlgorithm if self.alg.startswith("ES") else RSAAlgorithm
        public: dict[str, Any] = algorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**public, "kid": self.kid, "use": "sig", "alg": self.alg}

    def sign(self, claims: dict[str, Any], *, kid: str | None = "same", headers: dict[str, Any] | None = None) -> str:
        extra = {"typ": "at+jwt", **(headers or {})}
        if kid is not None:
            extra["kid"] = self.kid if kid == "same" else kid
        return jwt.encode(claims, self.private, algorithm=self.alg, headers=extra)


def claims(issuer: str, audience: str | list[str] = "occipy", **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": issuer, "aud": audience, "sub": "user-1", "iat": now, "nbf": now, "exp": now + 600, **extra}
