"""``dlr-gateway token --aeui ID --ttl S``: a device token from the configured key.

Each test runs in an empty directory (``Settings`` also reads a ``.env`` in the working
directory) with every device-token variable cleared first.
"""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.api.auth import DeviceTokens
from gateway.cli import main
from gateway.settings import Settings

SECRET = "cli-test-device-secret-0123456789abcdef"
VARIABLES = (
    "GATEWAY_DEVICE_JWT_SECRET",
    "GATEWAY_DEVICE_JWT_PUBLIC_KEY",
    "GATEWAY_DEVICE_JWT_PRIVATE_KEY",
    "GATEWAY_DEVICE_JWT_AUDIENCE",
    "GATEWAY_DEVICE_JWT_ISSUER",
    "GATEWAY_DEVICE_JWT_MAX_LIFETIME",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


def mint(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["token", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def last_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert lines, "nothing printed"
    return lines[-1].strip()


def pem_pair(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> tuple[str, str]:
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def test_mints_an_hs256_token_from_the_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GATEWAY_DEVICE_JWT_SECRET", SECRET)
    before = time.time()
    code, out, err = mint(capsys, "--aeui", "dev-1", "--ttl", "60")
    assert code == 0, err
    token = last_line(out)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert claims["sub"] == "dev-1"
    assert before + 60 - 2 <= claims["exp"] <= time.time() + 60 + 1
    # The gateway, configured from the same environment, accepts it as device dev-1.
    principal = DeviceTokens.from_settings(Settings.from_environ()).verify(token)
    assert principal is not None
    assert principal.subject == "dev-1"
    assert not principal.is_admin


def test_default_ttl_is_an_hour(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GATEWAY_DEVICE_JWT_SECRET", SECRET)
    code, out, _ = mint(capsys, "--aeui", "dev-1")
    assert code == 0
    claims = jwt.decode(last_line(out), SECRET, algorithms=["HS256"])
    assert abs(claims["exp"] - (time.time() + 3600)) <= 5


def test_reads_the_secret_from_a_dot_env_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / ".env").write_text(f"GATEWAY_DEVICE_JWT_SECRET={SECRET}\n")
    code, out, err = mint(capsys, "--aeui", "dev-2", "--ttl", "60")
    assert code == 0, err
    assert jwt.decode(last_line(out), SECRET, algorithms=["HS256"])["sub"] == "dev-2"


def test_carries_the_configured_audience_and_issuer(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GATEWAY_DEVICE_JWT_SECRET", SECRET)
    monkeypatch.setenv("GATEWAY_DEVICE_JWT_AUDIENCE", "dlr-devices")
    monkeypatch.setenv("GATEWAY_DEVICE_JWT_ISSUER", "https://idp.example.test")
    code, out, _ = mint(capsys, "--aeui", "dev-1", "--ttl", "60")
    assert code == 0
    claims = jwt.decode(
        last_line(out),
        SECRET,
        algorithms=["HS256"],
        audience="dlr-devices",
        issuer="https://idp.example.test",
    )
    assert claims["sub"] == "dev-1"


def test_without_a_secret_exits_2_and_says_what_to_set(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = mint(capsys, "--aeui", "dev-1", "--ttl", "60")
    assert code == 2
    assert out == ""
    assert "GATEWAY_DEVICE_JWT_SECRET" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("algorithm", "key"),
    [
        ("RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        ("ES256", ec.generate_private_key(ec.SECP256R1())),
    ],
)
def test_mints_with_an_asymmetric_key_pair(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    algorithm: str,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
) -> None:
    private, public = pem_pair(key)
    monkeypatch.setenv("GATEWAY_DEVICE_JWT_PUBLIC_KEY", public)
    monkeypatch.setenv("GATEWAY_DEVICE_JWT_PRIVATE_KEY", private)
    code, out, err = mint(capsys, "--aeui", "dev-1", "--ttl", "60")
    assert code == 0, err
    token = last_line(out)
    assert jwt.get_unverified_header(token)["alg"] == algorithm
    claims = jwt.decode(token, key.public_key(), algorithms=[algorithm])
    assert claims["sub"] == "dev-1"
    assert abs(claims["exp"] - (time.time() + 60)) <= 5
    # The verifying side needs only the public key.
    monkeypatch.delenv("GATEWAY_DEVICE_JWT_PRIVATE_KEY")
    principal = DeviceTokens.from_settings(Settings.from_environ()).verify(token)
    assert principal is not None
    assert principal.subject == "dev-1"


def test_public_key_without_the_private_key_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _, public = pem_pair(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    monkeypatch.setenv("GATEWAY_DEVICE_JWT_PUBLIC_KEY", public)
    code, out, err = mint(capsys, "--aeui", "dev-1", "--ttl", "60")
    assert code == 2
    assert out == ""
    assert "GATEWAY_DEVICE_JWT_PRIVATE_KEY" in err


def test_private_key_without_the_public_key_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    private, _ = pem_pair(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    monkeypatch.setenv("GATEWAY_DEVICE_JWT_PRIVATE_KEY", private)
    code, out, err = mint(capsys, "--aeui", "dev-1", "--ttl", "60")
    assert code == 2
    assert out == ""
    assert "GATEWAY_DEVICE_JWT_" in err


def test_mismatched_key_pair_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    private, _ = pem_pair(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    _, public = pem_pair(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    monkeypatch.setenv("GATEWAY_DEVICE_JWT_PUBLIC_KEY", public)
    monkeypatch.setenv("GATEWAY_DEVICE_JWT_PRIVATE_KEY", private)
    code, out, err = mint(capsys, "--aeui", "dev-1", "--ttl", "60")
    assert code == 2
    assert out == ""
    assert "does not match" in err


@pytest.mark.parametrize(
    ("public", "private"),
    [
        ("not a key", "not a key either"),
        ("rsa-public", "garbage"),
    ],
)
def test_unusable_keys_exit_2_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], public: str, private: str
) -> None:
    if public == "rsa-public":
        _, public = pem_pair(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    monkeypatch.setenv("GATEWAY_DEVICE_JWT_PUBLIC_KEY", public)
    monkeypatch.setenv("GATEWAY_DEVICE_JWT_PRIVATE_KEY", private)
    code, out, err = mint(capsys, "--aeui", "dev-1", "--ttl", "60")
    assert code == 2
    assert out == ""
    assert "GATEWAY_DEVICE_JWT_" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "args",
    [
        ["--aeui", "a" * 31],
        ["--aeui", ""],
        ["--aeui", "dev-1", "--ttl", "0"],
        ["--aeui", "dev-1", "--ttl", "-5"],
    ],
)
def test_bad_arguments_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    monkeypatch.setenv("GATEWAY_DEVICE_JWT_SECRET", SECRET)
    code, out, err = mint(capsys, *args)
    assert code == 2
    assert out == ""
    assert err.strip()


def test_aeui_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["token"])
    assert exited.value.code == 2
    assert "--aeui" in capsys.readouterr().err


def test_mints_a_token_for_one_callback_number(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GATEWAY_DEVICE_JWT_SECRET", SECRET)
    code, out, err = mint(capsys, "--aeui", "dev-1", "--phone-number", "+12025550143")
    assert code == 0, err
    claims = jwt.decode(last_line(out), SECRET, algorithms=["HS256"])
    assert (claims["phone_number"], claims["phone_number_verified"]) == ("+12025550143", True)
    code, _, err = mint(capsys, "--aeui", "dev-1", "--phone-number", "2025550143")
    assert code == 2 and "E.164" in err and "Traceback" not in err


def test_a_ttl_beyond_the_maximum_lifetime_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GATEWAY_DEVICE_JWT_SECRET", SECRET)
    monkeypatch.setenv("GATEWAY_DEVICE_JWT_MAX_LIFETIME", "600")
    code, _, err = mint(capsys, "--aeui", "dev-1", "--ttl", "601")
    assert code == 2 and "GATEWAY_DEVICE_JWT_MAX_LIFETIME" in err
    assert mint(capsys, "--aeui", "dev-1", "--ttl", "600")[0] == 0
