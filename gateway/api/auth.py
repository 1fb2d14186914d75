"""Who is calling: admin API keys, compared in constant time, or device JWTs.

Both come as ``Authorization: Bearer <credential>``, in one ``Authorization`` header.
"""

from __future__ import annotations

import dataclasses
import hmac
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import jwt
from starlette.requests import HTTPConnection

from gateway.api.problems import Problem
from gateway.api.revocations import Revocations
from gateway.dlr.identity import MAX_AEUI, aeui_problem, e164
from gateway.lru import Lru
from gateway.settings import Settings, SettingsError

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="dlr-gateway"'}
#: A 401's detail when nothing more may be said of the credentials.
NOT_VALID = "The credentials are not valid."

#: Longest credential looked at; a real device token is a few hundred bytes.
MAX_TOKEN_LENGTH = 4096
#: Longest AEUI the carrier accepts, so the longest ``sub`` a device token may carry.
MAX_SUBJECT_LENGTH = MAX_AEUI
#: Device tokens remembered as verified, until their ``exp``: a device sends the same token
#: with every report, and checking its signature costs more than the lookup (see
#: docs/benchmarks.md, "Figures that left the code's comments").
VERIFIED_TOKENS = 10_000


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: an admin, or a device acting for one AEUI."""

    kind: str  # "admin" | "device"
    subject: str  # the key's index for admins, the AEUI for devices
    #: A device token's ``phone_number`` claim (E.164): the only callback number it may
    #: report, and one it may use whoever else holds it (``attested``).
    phone_number: str | None = None
    #: The claim vouches for the number: not marked ``phone_number_verified: false``.
    attested: bool = False
    #: A device token's ``iat`` (``None``: it has none), for its device's revocation.
    issued_at: float | None = None

    @property
    def is_admin(self) -> bool:
        return self.kind == "admin"

    def may_act_for(self, alternate_end_user_id: str) -> bool:
        return self.is_admin or self.subject == alternate_end_user_id


def bearer_token(conn: HTTPConnection) -> str:
    headers = conn.headers.getlist("authorization")
    if len(headers) > 1:
        # Which one a proxy or this server would take is a guess: refuse both.
        raise Problem(401, "Send one Authorization header.", headers=_CHALLENGE)
    header = headers[0] if headers else ""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(
            401, "Send credentials as 'Authorization: Bearer <token>'.", headers=_CHALLENGE
        )
    return token.strip()


class AdminKeys:
    def __init__(self, keys: Sequence[str]) -> None:
        self._keys = tuple(k.encode("utf-8") for k in keys if k)
        #: The principal of each key, built once (frozen: every request of a key shares it).
        self._principals = tuple(
            Principal("admin", f"admin-key-{i}") for i in range(len(self._keys))
        )

    def match(self, token: str) -> Principal | None:
        """The admin principal for ``token``; every key is compared, so timing tells nothing."""
        candidate = token.encode("utf-8")
        found: int | None = None
        for index, key in enumerate(self._keys):
            if hmac.compare_digest(candidate, key) and found is None:
                found = index
        return self._principals[found] if found is not None else None


def require_admin(conn: HTTPConnection, keys: AdminKeys, tokens: DeviceTokens) -> Principal:
    """An admin key; 403 for a valid device token (the caller is known, but a device may
    not use the admin API); 401 otherwise."""
    token = bearer_token(conn)
    principal = keys.match(token)
    if principal is None:
        if tokens.verify(token) is not None:
            raise Problem(403, "A device token cannot use the admin API; use an admin key.")
        raise Problem(401, tokens.refusal(token), headers=_CHALLENGE)
    return principal


@dataclass(eq=False, repr=False, kw_only=True)  # no repr: it holds secrets
class DeviceTokens:
    """Device JWTs (``sub``: the AEUI; ``exp`` required): HS256 with a shared secret, or
    RS256/ES256 with a public key (any other refused at start: ``SettingsError``); the
    algorithms are the configuration's, never the token's. The claims' rules (``aud``, the
    lifetime, the leeway, ``phone_number``, revocations) are README.md's, "The JSON API"."""

    secret: str | None = None
    public_key: str | None = None
    private_key: str | None = None
    audience: str | None = None
    issuer: str | None = None
    max_lifetime: float = 7 * 86_400.0
    leeway: float = 30.0
    algorithms: list[str] = field(init=False)
    _verifying_key: Any = field(init=False)
    #: Token -> (its principal, its ``exp``): what ``verify`` already established. The key,
    #: audience and issuer are fixed for the process, and a verified token's ``nbf`` and
    #: ``iat`` stay passed, so only ``exp`` is checked again.
    _verified: Lru[str, tuple[Principal, float]] = field(
        init=False, default_factory=lambda: Lru(VERIFIED_TOKENS)
    )
    #: Devices whose tokens an admin revoked (the app's lifespan gives it the state store's).
    revocations: Revocations = field(default_factory=Revocations)

    def __post_init__(self) -> None:
        if self.public_key:
            self._verifying_key, algorithm = _load_public_key(self.public_key)
            self.algorithms = [algorithm]
        else:
            self._verifying_key = self.secret
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
            max_lifetime=settings.device_jwt_max_lifetime,
            leeway=settings.device_jwt_leeway,
        )

    @property
    def enabled(self) -> bool:
        return bool(self.secret or self.public_key)

    def verify(self, token: str) -> Principal | None:
        if not self.enabled or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
            return None
        known = self._verified.get(token)
        if known is not None:
            if time.time() < known[1]:  # PyJWT's rule, without leeway: valid before exp
                return self._unless_revoked(known[0])
            self._verified.pop(token)
        try:
            claims = jwt.decode(
                token,
                self._verifying_key,
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                # Times are checked below: PyJWT reads a string ``exp`` as a number, and its
                # leeway would stretch ``exp`` as well as ``iat``/``nbf``.
                options={
                    "require": ["exp", "sub"],
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except (jwt.PyJWTError, ValueError, TypeError, OverflowError):
            # OverflowError/ValueError/TypeError: claims PyJWT could not read.
            return None
        if self.audience is None and "aud" in claims:
            # RFC 7519 4.1.3: a token for a named audience is not for a gateway that names
            # none (PyJWT lets an empty ``aud`` through).
            return None
        expires = self._expiry(claims)
        subject = claims.get("sub")
        if expires is None or aeui_problem(subject) is not None:
            return None
        assert isinstance(subject, str)
        issued = claims.get("iat")  # a finite number when there is one (``_expiry``)
        principal = Principal(
            "device", subject, issued_at=None if issued is None else float(issued)
        )
        found = _with_number(principal, claims)
        if found is None:
            return None
        self._verified[token] = (found, expires)
        return self._unless_revoked(found)

    def _unless_revoked(self, principal: Principal) -> Principal | None:
        """``principal``, or ``None`` when its device's tokens issued then are revoked
        (checked at each use: a token verified before its revocation is refused after)."""
        if self.revocations.refuses(principal.subject, principal.issued_at):
            return None
        return principal

    def _expiry(self, claims: dict[str, Any]) -> float | None:
        """``exp``, when the token's times are numbers, it is valid now, and its lifetime is
        within ``max_lifetime``; else ``None``."""
        now = time.time()
        times: dict[str, float] = {}
        for name in ("exp", "iat", "nbf"):
            value = claims.get(name)
            if value is None and name != "exp":
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                return None
            times[name] = float(value)
            if not math.isfinite(times[name]):
                return None
        expires = times["exp"]
        issued = times.get("iat", now)
        if now >= expires or issued > now + self.leeway:
            return None
        if times.get("nbf", now) > now + self.leeway:
            return None
        if expires - min(issued, now) > self.max_lifetime + self.leeway:
            return None
        return expires

    def mint(
        self,
        alternate_end_user_id: str,
        ttl: float,
        *,
        now: float | None = None,
        phone_number: str | None = None,
    ) -> str:
        """A device token, signed with the secret or the private key; with ``phone_number``
        (E.164), the device may report that callback number only, and may use it whoever
        else holds it."""
        problem = aeui_problem(alternate_end_user_id)
        if problem is not None:
            raise ValueError(f"not an AEUI: {problem}")
        if ttl <= 0:
            raise ValueError("a token's time to live must be positive")
        if ttl > self.max_lifetime:
            raise ValueError(
                f"a token may live at most {self.max_lifetime:g} s "
                "(GATEWAY_DEVICE_JWT_MAX_LIFETIME)"
            )
        if phone_number is not None and e164(phone_number) != phone_number:
            raise ValueError(
                "the phone number must be in E.164: +1 and an area code of the US, its "
                "territories or Canada"
            )
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
        if phone_number is not None:
            claims["phone_number"] = phone_number
            claims["phone_number_verified"] = True
        try:
            token = jwt.encode(claims, key, algorithm=self.algorithms[0])
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            if self.public_key:
                raise ValueError(
                    f"GATEWAY_DEVICE_JWT_PRIVATE_KEY cannot sign {self.algorithms[0]} tokens: "
                    "expected the PEM private key of GATEWAY_DEVICE_JWT_PUBLIC_KEY"
                ) from None
            raise ValueError(f"GATEWAY_DEVICE_JWT_SECRET cannot sign tokens: {exc}") from None
        if self.public_key and self._signed_claims(token) is None:
            raise ValueError(
                "GATEWAY_DEVICE_JWT_PRIVATE_KEY does not match GATEWAY_DEVICE_JWT_PUBLIC_KEY: "
                "the gateway would refuse the tokens it signs"
            )
        return token

    def refusal(self, token: str) -> str:
        """The 401's detail for a token ``verify`` refused: that it expired or was revoked,
        said only of a token this gateway's key signed (to anyone else, nothing)."""
        if self.enabled and len(token) <= MAX_TOKEN_LENGTH and token.count(".") == 2:
            claims = self._signed_claims(token) or {}
            expires, subject, issued = claims.get("exp"), claims.get("sub"), claims.get("iat")
            if _finite(expires) and time.time() >= expires:
                return "The device token has expired: mint a new one (dlr-gateway token)."
            if isinstance(subject, str) and self.revocations.refuses(
                subject, float(issued) if _finite(issued) else None
            ):
                return "The device token was issued before its device's tokens were revoked."
        return NOT_VALID

    def _signed_claims(self, token: str) -> dict[str, Any] | None:
        """``token``'s claims when the configured verifying key accepts its signature (the
        claims themselves unchecked), else ``None``."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._verifying_key,
                algorithms=self.algorithms,
                options={
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                    "verify_iss": False,
                },
            )
        except (jwt.PyJWTError, ValueError, TypeError, OverflowError):
            return None
        return claims


def _finite(value: object) -> TypeGuard[float]:
    """A claim that is a finite number (``True`` is not one)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _with_number(principal: Principal, claims: dict[str, Any]) -> Principal | None:
    """``principal`` with the token's ``phone_number`` claim, when it has one; ``None`` (the
    token is refused) when the claim is not a served callback number in E.164."""
    if "phone_number" not in claims:
        return principal
    claimed = claims["phone_number"]
    number = e164(claimed) if isinstance(claimed, str) and len(claimed) <= 32 else None
    if number is None or number != claimed:
        return None
    # OIDC: ``phone_number_verified: false`` says the number was not checked: the device is
    # held to it, but it does not vouch for it against the number's owner.
    verified = claims.get("phone_number_verified", True) is not False
    return dataclasses.replace(principal, phone_number=number, attested=verified)


def _load_public_key(pem: str) -> tuple[Any, str]:
    """The parsed key and its algorithm: RS256 for RSA, ES256 for EC P-256."""
    # Imported here: a gateway with an HS256 secret only never loads cryptography
    # (``gateway.entry``: it is a large part of a process's resident set).
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(pem.strip().encode())
    except (ValueError, TypeError):
        raise SettingsError(
            "GATEWAY_DEVICE_JWT_PUBLIC_KEY is not a PEM public key "
            "('-----BEGIN PUBLIC KEY-----'; a private key belongs in "
            "GATEWAY_DEVICE_JWT_PRIVATE_KEY)"
        ) from None
    if isinstance(key, rsa.RSAPublicKey):
        return key, "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return key, "ES256"
    raise SettingsError(
        "GATEWAY_DEVICE_JWT_PUBLIC_KEY must be an RSA key (RS256) or an EC P-256 key (ES256)"
    )


def authenticate(conn: HTTPConnection, keys: AdminKeys, tokens: DeviceTokens) -> Principal:
    """An admin key or a device token; 401 otherwise."""
    token = bearer_token(conn)
    principal = keys.match(token) or tokens.verify(token)
    if principal is None:
        raise Problem(401, tokens.refusal(token), headers=_CHALLENGE)
    return principal
