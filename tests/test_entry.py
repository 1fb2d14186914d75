"""gateway.entry: ``serve`` with HS256 device tokens only imports PyJWT without cryptography,
and verifies and refuses every token as a process with cryptography does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.api.auth import DeviceTokens
from tests.api.test_device_auth import JWT_SECRET, _bad_tokens, claims, hs256

#: Run in a fresh interpreter: ``lean_jwt`` for argv, then the server's imports; prints
#: whether PyJWT was imported lean, whether cryptography is loaded, and each token's
#: verdict (the tokens come on stdin).
_PROBE = """
import json, sys
from gateway.entry import lean_jwt
lean = lean_jwt(json.loads(sys.argv[1]))
import gateway.cli, gateway.app, gateway.server
from gateway.api.auth import DeviceTokens
from gateway.settings import Settings
tokens = DeviceTokens.from_settings(Settings.from_environ())
verdicts = {}
for name, token in json.load(sys.stdin).items():
    found = tokens.verify(token)
    verdicts[name] = None if found is None else [found.kind, found.subject]
print(json.dumps({"lean": lean, "cryptography": "cryptography" in sys.modules,
                  "verdicts": verdicts}))
"""


def _probe(argv: list[str], environ: dict[str, str], tokens: dict[str, str]) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_DEVICE_JWT_")}
    env.update(environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(argv)],
        input=json.dumps(tokens),
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parent,  # no .env of the repository's
        check=True,
        timeout=120,
    )
    found: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def _verdicts(tokens: DeviceTokens, given: dict[str, str]) -> dict[str, object]:
    found = {name: tokens.verify(token) for name, token in given.items()}
    return {k: None if p is None else [p.kind, p.subject] for k, p in found.items()}


def test_serve_with_a_secret_only_loads_no_cryptography_and_decides_every_token_the_same() -> None:
    given = {name: make() for name, make in _bad_tokens().items()}
    given["good"] = hs256(claims("alice"))
    given["good-with-number"] = hs256(claims("bob", phone_number="+12025550143"))
    expected = _verdicts(DeviceTokens(secret=JWT_SECRET), given)
    assert expected["good"] == ["device", "alice"]
    assert sum(v is not None for v in expected.values()) == 2
    found = _probe(["serve"], {"GATEWAY_DEVICE_JWT_SECRET": JWT_SECRET}, given)
    assert found == {"lean": True, "cryptography": False, "verdicts": expected}


def test_a_public_key_or_another_command_imports_pyjwt_as_before() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signed = DeviceTokens(
        public_key=pem.decode(),
        private_key=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
    ).mint("alice", 300)
    with_key = _probe(["serve"], {"GATEWAY_DEVICE_JWT_PUBLIC_KEY": pem.decode()}, {"rs": signed})
    assert with_key == {
        "lean": False,
        "cryptography": True,
        "verdicts": {"rs": ["device", "alice"]},
    }
    other = _probe(["token", "--aeui", "x"], {"GATEWAY_DEVICE_JWT_SECRET": JWT_SECRET}, {})
    assert other["lean"] is False and other["cryptography"] is True
