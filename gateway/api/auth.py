"""Who is calling: admin API keys, compared in constant time, or device JWTs.

Both come as ``Authorization: Bearer <credential>``.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Sequence
from dataclasses import dataclass

import jwt
from starlette.requests import HTTPConnection

from gateway.api.problems import Problem
from gateway.settings import Settings

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="dlr-gateway"'}


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: an admin, or a device acting for one AEUI."""

    kind: str  # "admin" | "device"
    subject: str  # the key's index for admins, the AEUI for devices

    @property
    def is_admin(self) -> bool:
        return self.kind == "admin"

    def may_act_for(self, alternate_end_user_id: str) -> bool:
        return self.is_admin or self.subject == alternate_end_user_id


def bearer_token(conn: HTTPConnection) -> str:
    header = conn.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(
            401, "Send credentials as 'Authorization: Bearer <token>'.", headers=_CHALLENGE
        )
    return token.strip()


class AdminKeys:
    def __init__(self, keys: Sequence[str]) -> None:
        self._keys = tuple(k.encode("utf-8") for k in keys if k)

    def match(self, token: str) -> Principal | None:
        """The admin principal for ``token``; every key is compared, so timing tells nothing."""
        candidate = token.encode("utf-8")
        found: int | None = None
        for index, key in enumerate(self._keys):
            if hmac.compare_digest(candidate, key) and found is None:
                found = index
        return Principal("admin", f"admin-key-{found}") if found is not None else None


def require_admin(conn: HTTPConnection, keys: AdminKeys) -> Principal:
    principal = keys.match(bearer_token(conn))
    if principal is None:
        raise Problem(401, "The credentials are not valid.", headers=_CHALLENGE)
    return principal


class DeviceTokens:
    """Device JWTs: ``sub`` is the AEUI and ``exp`` is required.

    HS256 with a shared secret, or RS256/ES256 with a public key; the algorithm list is
    fixed by the configuration, never taken from the token (so ``alg: none`` and
    algorithm-confusion tokens fail).
    """

    def __init__(
        self,
        *,
        secret: str | None = None,
        public_key: str | None = None,
        private_key: str | None = None,
        audience: str | None = None,
        issuer: str | None = None,
    ) -> None:
        self.secret = secret
        self.public_key = public_key
        self.private_key = private_key
        self.audience = audience
        self.issuer = issuer
        if public_key:
            self.algorithms = ["ES256"] if _is_ec(public_key) else ["RS256"]
        else:
            self.algorithms = ["HS256"]

    @classmethod
    def from_settings(cls, settings: Settings) -> DeviceTokens:
        secret, private = settings.device_jwt_secret, settings.device_jwt_private_key
        return cls(
            secret=str(secret) if secret else None,
            public_key=settings.device_jwt_public_key,
            private_key=str(private) if private else None,
            audience=settings.device_jwt_audience,
            issuer=settings.device_jwt_issuer,
        )

    @property
    def enabled(self) -> bool:
        return bool(self.secret or self.public_key)

    def verify(self, token: str) -> Principal | None:
        if not self.enabled or token.count(".") != 2:
            return None
        key = self.public_key or self.secret
        assert key is not None
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "sub"], "verify_aud": self.audience is not None},
            )
        except jwt.PyJWTError:
            return None
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject or len(subject) > 30:
            return None
        return Principal("device", subject)

    def mint(self, alternate_end_user_id: str, ttl: float, *, now: float | None = None) -> str:
        """A device token, signed with the secret or the private key."""
        key = self.private_key if self.public_key else self.secret
        if not key:
            raise ValueError(
                "set GATEWAY_DEVICE_JWT_SECRET (or GATEWAY_DEVICE_JWT_PRIVATE_KEY with the "
                "public key) to mint device tokens"
            )
        issued = int(now if now is not None else time.time())
        claims: dict[str, object] = {
            "sub": alternate_end_user_id,
            "iat": issued,
            "exp": issued + int(ttl),
        }
        if self.audience:
            claims["aud"] = self.audience
        if self.issuer:
            claims["iss"] = self.issuer
        return jwt.encode(claims, key, algorithm=self.algorithms[0])


def _is_ec(pem: str) -> bool:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        return isinstance(load_pem_public_key(pem.encode()), ec.EllipticCurvePublicKey)
    except ValueError:
        return False


def authenticate(conn: HTTPConnection, keys: AdminKeys, tokens: DeviceTokens) -> Principal:
    """An admin key or a device token; 401 otherwise."""
    token = bearer_token(conn)
    principal = keys.match(token) or tokens.verify(token)
    if principal is None:
        raise Problem(401, "The credentials are not valid.", headers=_CHALLENGE)
    return principal
