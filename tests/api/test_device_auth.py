"""Device tokens (JWT, ``sub`` = AEUI, ``exp`` required) and admin keys on the device routes.

A device reports and reads only its own AEUI (403 otherwise, nothing written upstream) and may
validate addresses; admin keys act for any AEUI; anything else is a 401 with a challenge.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from starlette.datastructures import Secret
from starlette.requests import Request

from gateway.api import auth as auth_module
from gateway.api.auth import AdminKeys, DeviceTokens, require_admin
from gateway.api.problems import Problem
from gateway.dlr.ids import endpoint_id_for
from gateway.settings import Settings, SettingsError
from tests.harness import (
    ADMIN_KEY,
    EMPIRE_STATE,
    JWT_SECRET,
    WHITE_HOUSE,
    Gateway,
    gateway,
    gateway_settings,
    report,
)

OTHER_SECRET = "another-device-secret-0123456789abcdef"
AUDIENCE = "dlr-devices"
ISSUER = "https://idp.example.test"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def claims(sub: Any = "alice", ttl: int = 300, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": sub, "iat": now, "exp": now + ttl, **extra}


def hs256(payload: dict[str, Any], secret: str = JWT_SECRET) -> str:
    return jwt.encode(payload, secret, algorithm="HS256")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_signed(payload: dict[str, Any], secret: bytes, algorithm: str) -> str:
    """An HMAC token signed with any bytes (PyJWT refuses a PEM as a secret, and warns on
    short HS512 keys)."""
    digest = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}[algorithm]
    header = b64url(json.dumps({"alg": algorithm, "typ": "JWT"}).encode())
    body = b64url(json.dumps(payload).encode())
    signature = hmac.new(secret, f"{header}.{body}".encode(), digest).digest()
    return f"{header}.{body}.{b64url(signature)}"


def unsigned(payload: dict[str, Any]) -> str:
    """An ``alg: none`` token, built by hand: header, payload, empty signature."""
    header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{b64url(json.dumps(payload).encode())}."


@functools.cache
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@functools.cache
def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@functools.cache
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def private_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def asymmetric_settings(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> Settings:
    return gateway_settings(device_jwt_secret=None, device_jwt_public_key=public_pem(key))


def assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["status"] == 401


def assert_forbidden(response: httpx.Response) -> None:
    assert response.status_code == 403, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/forbidden"


def anonymous(gw: Gateway) -> httpx.AsyncClient:
    """A client to the gateway that sends no credentials at all."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=gw.app), base_url="http://gateway")


# -- what a device may do --------------------------------------------------------------------


def test_device_reports_and_reads_its_own_location() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            token = bearer(hs256(claims("alice")))
            sent = await gw.report(report("alice", WHITE_HOUSE, 0), **token)
            assert sent.status_code == 200, sent.text
            assert sent.json()["endpointId"] == endpoint_id_for("alice")
            assert gw.operations() == ["createLocation", "updateEndpoint", "createEndpoint"]

            read = await gw.http.get("/v1/devices/alice/location", headers=token)
            assert read.status_code == 200, read.text
            assert read.json()["locationId"] == sent.json()["locationId"]

    run(scenario())


#: AEUIs the carrier takes that a path segment cannot hold as they are.
PATHLIKE_AEUIS = ["dept/alice", "a/../b", "..", ".", "/lead", "trail/", "a%2Fb", "x/location"]


def test_a_device_whose_aeui_holds_a_slash_reads_its_own_location_and_history() -> None:
    """Sent percent-encoded (``%2F``, ``%2E``), every AEUI is one path parameter."""

    async def scenario() -> None:
        async with gateway() as gw:
            for n, aeui in enumerate(PATHLIKE_AEUIS):
                token = bearer(hs256(claims(aeui)))
                phone = f"+120255502{n:02d}"
                sent = await gw.report(report(aeui, WHITE_HOUSE, 0, phone=phone), **token)
                assert sent.status_code == 200, (aeui, sent.text)
                path = "/v1/devices/" + quote(aeui, safe="").replace(".", "%2E")
                read = await gw.http.get(f"{path}/location", headers=token)
                assert read.status_code == 200, (aeui, read.text)
                assert read.json()["alternateEndUserId"] == aeui
                history = await gw.http.get(f"{path}/history", headers=token)
                assert history.status_code == 200, (aeui, history.text)
                assert history.json()["alternateEndUserId"] == aeui
            # Still only its own: "a/../b" is not "b", nor "dept/alice" "alice".
            other = bearer(hs256(claims("b")))
            assert_forbidden(await gw.http.get("/v1/devices/a%2F..%2Fb/location", headers=other))

    run(scenario())


def test_a_minted_token_is_accepted() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            token = DeviceTokens(secret=JWT_SECRET).mint("dev-7", 60)
            sent = await gw.report(report("dev-7", WHITE_HOUSE, 0), **bearer(token))
            assert sent.status_code == 200, sent.text

    run(scenario())


def test_a_401_says_a_device_token_expired_or_was_revoked_only_when_it_is_ours() -> None:
    """A token an hour old (``dlr-gateway token``'s default lifetime) was answered "The
    credentials are not valid.", like garbage: a new user minted, checked the secret, and
    never learned why. A token this gateway signed says it expired, or was revoked; any
    other credential (another key's token, an expired one included) learns nothing."""

    async def scenario() -> None:
        async with gateway() as gw:
            old = claims("dev-1", ttl=3600) | {"iat": int(time.time()) - 7200}
            old["exp"] = old["iat"] + 3600
            path = "/v1/devices/dev-1/location"
            for route in (path, "/v1/endpoints"):
                answer = await gw.http.get(route, headers=bearer(hs256(old)))
                assert_unauthorized(answer)
                assert answer.json()["detail"].startswith("The device token has expired"), route
            foreign = await gw.http.get(path, headers=bearer(hs256(old, OTHER_SECRET)))
            assert_unauthorized(foreign)
            assert foreign.json()["detail"] == "The credentials are not valid."
            wrong = await gw.http.get(path, headers=bearer("not-a-key-at-all-0123"))
            assert wrong.json()["detail"] == "The credentials are not valid."
            token = hs256(claims("dev-1") | {"iat": int(time.time()) - 10})
            revoked = await gw.http.post("/v1/devices/dev-1/token-revocation")
            assert revoked.status_code == 200, revoked.text
            answer = await gw.http.get(path, headers=bearer(token))
            assert_unauthorized(answer)
            assert "revoked" in answer.json()["detail"]

    run(scenario())


def test_a_verified_token_is_remembered_until_its_expiry_and_no_longer() -> None:
    """The second use of a token skips the signature check (remembered), and a remembered
    token is refused from its ``exp`` on, exactly as PyJWT refuses it."""
    tokens = DeviceTokens(secret=JWT_SECRET)
    now = time.time()
    short = tokens.mint("dev-8", 60, now=now - 58)  # exp within 2 s from now
    long = tokens.mint("dev-9", 600)
    first_short, first_long = tokens.verify(short), tokens.verify(long)
    assert first_short is not None and first_short.subject == "dev-8"
    assert first_long is not None and first_long.subject == "dev-9"
    assert short in tokens._verified and long in tokens._verified
    calls = 0
    decode = jwt.decode

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return decode(*args, **kwargs)

    jwt.decode = counting  # type: ignore[assignment]
    try:
        assert tokens.verify(long) == first_long and tokens.verify(short) == first_short
        assert calls == 0  # both remembered from their first use above
        expires = jwt.decode(short, options={"verify_signature": False})["exp"]
        calls = 0
        time.sleep(max(0.0, expires - time.time()) + 0.05)
        assert tokens.verify(short) is None  # expired: refused, and forgotten
        assert short not in tokens._verified
        assert calls == 1  # checked again, by PyJWT, which refused it
    finally:
        jwt.decode = decode  # type: ignore[assignment]
    # A token whose signature is wrong is never remembered.
    forged = long[:-4] + ("AAAA" if not long.endswith("AAAA") else "BBBB")
    assert tokens.verify(forged) is None and forged not in tokens._verified


def test_cross_device_report_is_forbidden_and_writes_nothing() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            token = bearer(hs256(claims("alice")))
            for aeui in ["bob", "Alice", "alice2"]:
                response = await gw.report(report(aeui, WHITE_HOUSE, 0), **token)
                assert_forbidden(response)
            assert gw.operations() == []
            assert gw.simulator.state["endpoints"] == {}
            assert gw.simulator.state["locations"] == {}

    run(scenario())


def test_cross_device_read_is_forbidden() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            assert (await gw.report(report("bob", EMPIRE_STATE, 0))).status_code == 200
            seq = gw.last_seq()
            token = bearer(hs256(claims("alice")))
            response = await gw.http.get("/v1/devices/bob/location", headers=token)
            assert_forbidden(response)
            assert "locationId" not in response.json()
            # An unknown device is forbidden too: whether it exists is not a device's business.
            unknown = await gw.http.get("/v1/devices/nobody/location", headers=token)
            assert_forbidden(unknown)
            assert gw.operations(seq) == []

    run(scenario())


def test_admin_key_acts_for_any_device() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            admin = bearer(ADMIN_KEY)
            for aeui, place in [("alice", WHITE_HOUSE), ("bob", EMPIRE_STATE)]:
                sent = await gw.report(report(aeui, place, 0), **admin)
                assert sent.status_code == 200, sent.text
                read = await gw.http.get(f"/v1/devices/{aeui}/location", headers=admin)
                assert read.status_code == 200
                assert read.json()["locationId"] == sent.json()["locationId"]

    run(scenario())


def test_device_token_may_validate_addresses() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            response = await gw.http.post(
                "/v1/addresses/validate",
                json={"address": WHITE_HOUSE},
                headers=bearer(hs256(claims("anyone"))),
            )
            assert response.status_code == 200, response.text
            assert response.json()["valid"] is True
            assert gw.operations() == []

    run(scenario())


def _admin_only_operations() -> list[tuple[str, str]]:
    """Every operation the API document says takes an admin key only, its path's parameters
    filled with a plausible value."""
    document = json.loads((Path(auth_module.__file__).parents[1] / "openapi.json").read_text())
    found = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if isinstance(operation, dict) and operation.get("security") == [{"adminKey": []}]:
                found.append((method.upper(), re.sub(r"\{[^}]+\}", "x1", path)))
    return found


ADMIN_ONLY = _admin_only_operations()


def test_a_device_token_is_refused_the_same_way_on_every_admin_route() -> None:
    """A device token is known but may not use the admin API: 403 on each admin-only route
    (the carrier's, numbers, imports, revocations, webhooks, events, the wiremap alike), as
    the document says; a credential that is neither is 401, with its challenge."""
    assert len(ADMIN_ONLY) > 40

    async def scenario() -> None:
        async with gateway() as gw:
            token = bearer(hs256(claims("alice")))
            for method, path in ADMIN_ONLY:
                body = {} if method in ("POST", "PUT", "PATCH") else None
                device = await gw.http.request(method, path, json=body, headers=token)
                assert device.status_code == 403, (method, path, device.text)
                assert device.headers["content-type"] == "application/problem+json"
                other = await gw.http.request(method, path, json=body, headers=bearer("x"))
                assert other.status_code == 401, (method, path, other.text)
                assert other.headers["www-authenticate"].startswith("Bearer")
            assert gw.operations() == []

    run(scenario())


def test_require_admin_tells_a_device_token_from_a_bad_credential() -> None:
    keys = AdminKeys([ADMIN_KEY])
    tokens = DeviceTokens(secret=JWT_SECRET)

    def request(credential: str) -> Request:
        headers = [(b"authorization", f"Bearer {credential}".encode())]
        return Request({"type": "http", "method": "GET", "path": "/", "headers": headers})

    assert require_admin(request(ADMIN_KEY), keys, tokens).is_admin
    with pytest.raises(Problem) as device:
        require_admin(request(hs256(claims("alice"))), keys, tokens)
    assert device.value.status == 403
    with pytest.raises(Problem) as forged:
        require_admin(request(hs256(claims("alice"), OTHER_SECRET)), keys, tokens)
    assert forged.value.status == 401
    assert "WWW-Authenticate" in forged.value.headers


# -- what is refused ---------------------------------------------------------------------------


def _bad_tokens() -> dict[str, Callable[[], str]]:
    now = int(time.time())
    return {
        "expired": lambda: hs256({"sub": "alice", "iat": now - 600, "exp": now - 60}),
        "forged-wrong-secret": lambda: hs256(claims("alice"), OTHER_SECRET),
        "alg-none": lambda: unsigned(claims("alice")),
        "alg-none-uppercase": lambda: unsigned(claims("alice")).replace(
            b64url(b'{"alg": "none", "typ": "JWT"}'), b64url(b'{"alg": "NONE", "typ": "JWT"}')
        ),
        "missing-sub": lambda: hs256({"exp": now + 300}),
        "missing-exp": lambda: hs256({"sub": "alice"}),
        "sub-not-a-string": lambda: hs256(claims(12345)),
        "sub-a-list": lambda: hs256(claims(["alice"])),
        "sub-empty": lambda: hs256(claims("")),
        "sub-too-long": lambda: hs256(claims("a" * 31)),
        "sub-with-spaces": lambda: hs256(claims(" alice")),
        "exp-not-a-number": lambda: hs256({"sub": "alice", "exp": "tomorrow"}),
        "not-yet-valid": lambda: hs256(claims("alice", nbf=now + 3600)),
        "rs256-against-hs256": lambda: jwt.encode(claims("alice"), rsa_key(), algorithm="RS256"),
        "hs512-same-secret": lambda: hand_signed(claims("alice"), JWT_SECRET.encode(), "HS512"),
        "tampered-payload": lambda: _tampered(hs256(claims("bob")), claims("alice")),
        "malformed-abc": lambda: "abc",
        "malformed-a.b.c": lambda: "a.b.c",
        "malformed-dots": lambda: "..",
        "four-parts": lambda: hs256(claims("alice")) + ".x",
        "huge": lambda: "a." + "b" * 10_000 + ".c",
        "admin-key-prefix": lambda: ADMIN_KEY[:-1],
    }


def _tampered(token: str, payload: dict[str, Any]) -> str:
    header, _, signature = token.split(".")
    return f"{header}.{b64url(json.dumps(payload).encode())}.{signature}"


@pytest.mark.parametrize("kind", sorted(_bad_tokens()))
def test_bad_tokens_are_refused(kind: str) -> None:
    token = _bad_tokens()[kind]()

    async def scenario() -> None:
        async with gateway() as gw:
            headers = bearer(token)
            assert_unauthorized(await gw.report(report("alice", WHITE_HOUSE, 0), **headers))
            assert_unauthorized(await gw.http.get("/v1/devices/alice/location", headers=headers))
            assert_unauthorized(
                await gw.http.post(
                    "/v1/addresses/validate", json={"address": WHITE_HOUSE}, headers=headers
                )
            )
            assert gw.operations() == []

    run(scenario())


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", f"Basic {ADMIN_KEY}", f"Token {ADMIN_KEY}", ADMIN_KEY],
)
def test_missing_credentials_are_refused(authorization: str | None) -> None:
    async def scenario() -> None:
        async with gateway() as gw, anonymous(gw) as http:
            headers = {} if authorization is None else {"Authorization": authorization}
            for response in [
                await http.post(
                    "/v1/location-reports", json=report("alice", WHITE_HOUSE), headers=headers
                ),
                await http.get("/v1/devices/alice/location", headers=headers),
                await http.post(
                    "/v1/addresses/validate", json={"address": WHITE_HOUSE}, headers=headers
                ),
            ]:
                assert_unauthorized(response)
            assert gw.operations() == []

    run(scenario())


def test_audience_is_checked_when_configured() -> None:
    async def scenario() -> None:
        async with gateway(gateway_settings(device_jwt_audience=AUDIENCE)) as gw:
            for bad in [
                hs256(claims("alice")),  # no aud at all
                hs256(claims("alice", aud="someone-else")),
                hs256(claims("alice", aud=["someone-else", "another"])),
            ]:
                assert_unauthorized(await gw.report(report("alice", WHITE_HOUSE), **bearer(bad)))
            assert gw.operations() == []
            for good in [
                hs256(claims("alice", aud=AUDIENCE)),
                hs256(claims("alice", aud=["other", AUDIENCE])),
            ]:
                response = await gw.report(report("alice", WHITE_HOUSE), **bearer(good))
                assert response.status_code == 200, response.text

    run(scenario())


def test_a_token_for_an_audience_is_refused_when_none_is_configured() -> None:
    """RFC 7519 4.1.3: an identity provider's token for another app carries that app's
    ``aud``; a gateway that names no audience is not it."""
    key = rsa_key()

    async def scenario() -> None:
        async with gateway(asymmetric_settings(key)) as gw:
            for aud in ["another-app", ["another-app", "a-third"], "", []]:
                token = jwt.encode(claims("alice", aud=aud), key, algorithm="RS256")
                assert_unauthorized(await gw.report(report("alice", WHITE_HOUSE), **bearer(token)))
            assert gw.operations() == []
            plain = jwt.encode(claims("alice"), key, algorithm="RS256")
            response = await gw.report(report("alice", WHITE_HOUSE), **bearer(plain))
            assert response.status_code == 200, response.text

    run(scenario())


def test_issuer_is_checked_when_configured() -> None:
    async def scenario() -> None:
        async with gateway(gateway_settings(device_jwt_issuer=ISSUER)) as gw:
            for bad in [
                hs256(claims("alice")),  # no iss at all
                hs256(claims("alice", iss="https://evil.example.test")),
                hs256(claims("alice", iss=ISSUER + "/")),
            ]:
                assert_unauthorized(await gw.report(report("alice", WHITE_HOUSE), **bearer(bad)))
            assert gw.operations() == []
            good = hs256(claims("alice", iss=ISSUER))
            response = await gw.report(report("alice", WHITE_HOUSE), **bearer(good))
            assert response.status_code == 200, response.text

    run(scenario())


def test_minted_tokens_carry_the_configured_audience_and_issuer() -> None:
    tokens = DeviceTokens(secret=JWT_SECRET, audience=AUDIENCE, issuer=ISSUER)
    token = tokens.mint("dev-1", 60)
    decoded = jwt.decode(token, JWT_SECRET, algorithms=["HS256"], audience=AUDIENCE)
    assert decoded["iss"] == ISSUER
    principal = tokens.verify(token)
    assert principal is not None
    assert principal.subject == "dev-1"
    assert not principal.is_admin


# -- asymmetric keys -------------------------------------------------------------------------


@pytest.mark.parametrize(("algorithm", "make_key"), [("RS256", rsa_key), ("ES256", ec_key)])
def test_asymmetric_configs_accept_their_tokens(
    algorithm: str, make_key: Callable[[], rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey]
) -> None:
    key = make_key()

    async def scenario() -> None:
        async with gateway(asymmetric_settings(key)) as gw:
            token = jwt.encode(claims("alice"), key, algorithm=algorithm)
            sent = await gw.report(report("alice", WHITE_HOUSE, 0), **bearer(token))
            assert sent.status_code == 200, sent.text
            read = await gw.http.get("/v1/devices/alice/location", headers=bearer(token))
            assert read.status_code == 200
            cross = await gw.report(report("bob", WHITE_HOUSE, 0), **bearer(token))
            assert_forbidden(cross)

            # Minting with the private key gives tokens the gateway accepts.
            minted = DeviceTokens(public_key=public_pem(key), private_key=private_pem(key)).mint(
                "alice", 60
            )
            assert jwt.get_unverified_header(minted)["alg"] == algorithm
            again = await gw.report(report("alice", EMPIRE_STATE, 10), **bearer(minted))
            assert again.status_code == 200, again.text

    run(scenario())


def test_asymmetric_config_refuses_other_tokens() -> None:
    key = rsa_key()
    pem = public_pem(key)

    async def scenario() -> None:
        async with gateway(asymmetric_settings(key)) as gw:
            for bad in [
                # The classic confusion: HS256 signed with the public key as the HMAC secret.
                hand_signed(claims("alice"), pem.encode(), "HS256"),
                hs256(claims("alice")),  # a shared-secret token
                jwt.encode(claims("alice"), other_rsa_key(), algorithm="RS256"),  # another key
                jwt.encode(claims("alice"), key, algorithm="PS256"),  # same key, other alg
                jwt.encode(claims("alice"), ec_key(), algorithm="ES256"),
                jwt.encode({"sub": "alice"}, key, algorithm="RS256"),  # no exp
                unsigned(claims("alice")),
            ]:
                assert_unauthorized(await gw.report(report("alice", WHITE_HOUSE), **bearer(bad)))
            assert gw.operations() == []

    run(scenario())


def test_es256_config_refuses_rs256_tokens() -> None:
    async def scenario() -> None:
        async with gateway(asymmetric_settings(ec_key())) as gw:
            token = jwt.encode(claims("alice"), rsa_key(), algorithm="RS256")
            assert_unauthorized(await gw.report(report("alice", WHITE_HOUSE), **bearer(token)))
            assert gw.operations() == []

    run(scenario())


@pytest.mark.parametrize(
    "pem",
    [
        pytest.param(lambda: "not a key", id="garbage"),
        pytest.param(lambda: private_pem(rsa_key()), id="a-private-key"),
        pytest.param(
            lambda: public_pem(ec.generate_private_key(ec.SECP384R1())),  # type: ignore[arg-type]
            id="ec-p384",
        ),
        pytest.param(
            lambda: (
                ed25519.Ed25519PrivateKey.generate()
                .public_key()
                .public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
                .decode()
            ),
            id="ed25519",
        ),
    ],
)
def test_an_unusable_public_key_is_a_configuration_error(pem: Callable[[], str]) -> None:
    # Refused at start, rather than answering every request 401 (or 500).
    with pytest.raises(SettingsError, match="GATEWAY_DEVICE_JWT_PUBLIC_KEY"):
        DeviceTokens(public_key=pem())


def test_minting_with_a_mismatched_private_key_is_refused() -> None:
    tokens = DeviceTokens(
        public_key=public_pem(rsa_key()), private_key=private_pem(other_rsa_key())
    )
    with pytest.raises(ValueError, match="does not match"):
        tokens.mint("dev-1", 60)


def test_minting_refuses_what_the_gateway_would_refuse() -> None:
    tokens = DeviceTokens(secret=JWT_SECRET)
    for aeui in ["", " dev", "a" * 31]:
        with pytest.raises(ValueError, match="AEUI"):
            tokens.mint(aeui, 60)
    with pytest.raises(ValueError, match="positive"):
        tokens.mint("dev-1", 0)
    with pytest.raises(ValueError, match="GATEWAY_DEVICE_JWT_SECRET"):
        DeviceTokens().mint("dev-1", 60)


def test_without_device_token_config_only_admin_keys_work() -> None:
    async def scenario() -> None:
        settings = gateway_settings(device_jwt_secret=None, admin_keys=(Secret(ADMIN_KEY),))
        async with gateway(settings) as gw:
            token = hs256(claims("alice"))
            assert_unauthorized(await gw.report(report("alice", WHITE_HOUSE), **bearer(token)))
            assert (await gw.report(report("alice", WHITE_HOUSE))).status_code == 200

    run(scenario())


@pytest.mark.parametrize(
    ("payload", "accepted"),
    [
        pytest.param(lambda: claims(exp=str(int(time.time()) + 300)), False, id="exp-a-string"),
        pytest.param(lambda: claims(exp=True), False, id="exp-a-boolean"),
        pytest.param(lambda: claims(iat="0"), False, id="iat-a-string"),
        pytest.param(lambda: claims(nbf=[1]), False, id="nbf-a-list"),
        pytest.param(
            lambda: claims(ttl=7 * 86_400 + 3600), False, id="longer-than-the-max-lifetime"
        ),
        pytest.param(
            lambda: {"sub": "alice", "exp": int(time.time()) + 8 * 86_400},
            False,
            id="no-iat-too-long",
        ),
        pytest.param(lambda: claims(ttl=6 * 86_400), True, id="within-the-max-lifetime"),
        pytest.param(lambda: claims(iat=int(time.time()) + 20), True, id="iat-within-the-leeway"),
        pytest.param(lambda: claims(iat=int(time.time()) + 120), False, id="iat-beyond-the-leeway"),
        pytest.param(lambda: claims(nbf=int(time.time()) + 20), True, id="nbf-within-the-leeway"),
        pytest.param(lambda: claims(nbf=int(time.time()) + 120), False, id="nbf-beyond-the-leeway"),
        pytest.param(lambda: claims(ttl=-5), False, id="expired-no-leeway-for-exp"),
        pytest.param(lambda: claims(phone_number="+12025550143"), True, id="a-phone-number-claim"),
        pytest.param(lambda: claims(phone_number="2025550143"), False, id="phone-number-not-e164"),
        pytest.param(lambda: claims(phone_number=12025550143), False, id="phone-number-a-number"),
        pytest.param(lambda: claims(sub="al\u0007ice"), False, id="sub-with-a-control-character"),
    ],
)
def test_token_times_lifetime_and_claims_are_checked(
    payload: Callable[[], dict[str, Any]], accepted: bool
) -> None:
    # The claims are made when the test runs: times taken at collection go stale on a busy
    # machine (an iat 120 s ahead is within the leeway a minute later).
    claimed = payload()
    tokens = DeviceTokens(secret=JWT_SECRET)
    found = tokens.verify(hs256(claimed))
    assert (found is not None) == accepted, claimed


def test_lifetime_and_leeway_are_settings() -> None:
    short = DeviceTokens(secret=JWT_SECRET, max_lifetime=600, leeway=0)
    assert short.verify(hs256(claims(ttl=600))) is not None
    assert short.verify(hs256(claims(ttl=700))) is None
    assert short.verify(hs256(claims(iat=int(time.time()) + 5))) is None
    with pytest.raises(ValueError, match="GATEWAY_DEVICE_JWT_MAX_LIFETIME"):
        short.mint("dev-1", 601)
    settings = Settings.from_environ(
        {"GATEWAY_DEVICE_JWT_MAX_LIFETIME": "3600", "GATEWAY_DEVICE_JWT_LEEWAY": "5"},
        env_file=None,
    )
    from_settings = DeviceTokens.from_settings(settings)
    assert (from_settings.max_lifetime, from_settings.leeway) == (3600.0, 5.0)
    with pytest.raises(SettingsError, match="GATEWAY_DEVICE_JWT_LEEWAY"):
        Settings.from_environ({"GATEWAY_DEVICE_JWT_LEEWAY": "-1"}, env_file=None)


def test_a_minted_phone_number_claim_is_read_back() -> None:
    tokens = DeviceTokens(secret=JWT_SECRET)
    principal = tokens.verify(tokens.mint("dev-1", 60, phone_number="+12025550143"))
    assert principal is not None
    assert (principal.phone_number, principal.attested) == ("+12025550143", True)
    with pytest.raises(ValueError, match=r"E\.164"):
        tokens.mint("dev-1", 60, phone_number="202-555-0143")


def test_two_authorization_headers_are_refused() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            token = DeviceTokens(secret=JWT_SECRET).mint("alice", 60)
            # The right one first: a server reading only the first would take it.
            headers = [("Authorization", f"Bearer {token}"), ("Authorization", "Bearer wrong")]
            answer = await gw.http.post(
                "/v1/location-reports", json=report("alice", WHITE_HOUSE), headers=headers
            )
            assert_unauthorized(answer)
            assert gw.simulator.calls == []

    run(scenario())
