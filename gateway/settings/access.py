"""Who may call the API: admin keys and device tokens."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.datastructures import Secret

from gateway.settings.reader import SettingsError, setting

#: The longest admin key: one the console's sign-in form (which reads no more) still takes.
MAX_ADMIN_KEY = 1024


def _key_lengths(env: str, keys: tuple[Secret, ...]) -> None:
    if any(len(str(key)) > MAX_ADMIN_KEY for key in keys):
        raise SettingsError(f"every key in {env} must be at most {MAX_ADMIN_KEY} characters")


@dataclass(frozen=True)
class AccessSettings:
    """Admin API keys and how device tokens are verified."""

    admin_keys: tuple[Secret, ...] = setting(
        "GATEWAY_ADMIN_KEYS",
        (),
        "comma-separated admin API keys, each of 16 to 1024 characters (secret)",
        shown="— (required)",
        check=_key_lengths,
    )
    device_jwt_secret: Secret | None = setting(
        "GATEWAY_DEVICE_JWT_SECRET",
        None,
        "HS256 secret that device tokens are signed with (secret)",
    )
    device_jwt_public_key: str | None = setting(
        "GATEWAY_DEVICE_JWT_PUBLIC_KEY",
        None,
        "instead of the secret: a PEM RSA or P-256 public key (RS256/ES256 device tokens)",
    )
    device_jwt_private_key: Secret | None = setting(
        "GATEWAY_DEVICE_JWT_PRIVATE_KEY",
        None,
        "the matching private key, only where `dlr-gateway token` mints asymmetric tokens "
        "(secret; the service does not need it)",
    )
    device_jwt_audience: str | None = setting(
        "GATEWAY_DEVICE_JWT_AUDIENCE",
        None,
        "when set, device tokens must carry this `aud`; unset, a token with any `aud` is refused",
    )
    device_jwt_issuer: str | None = setting(
        "GATEWAY_DEVICE_JWT_ISSUER",
        None,
        "when set, device tokens must carry this `iss`",
    )
    device_jwt_max_lifetime: float = setting(
        "GATEWAY_DEVICE_JWT_MAX_LIFETIME",
        7 * 86_400.0,
        "the longest a device token may live, `exp` after `iat` (or after now, without `iat`); "
        "`dlr-gateway token` refuses a longer `--ttl`",
        gt=0,
        finite=True,
    )
    device_jwt_leeway: float = setting(
        "GATEWAY_DEVICE_JWT_LEEWAY",
        30.0,
        "how far a device token's `iat`/`nbf` may be in the future (the issuer's clock skew)",
        ge=0,
        finite=True,
    )
