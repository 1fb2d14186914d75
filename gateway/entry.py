"""The program's entry (``dlr-gateway``, ``python -m gateway``): the command line, and for
``serve`` PyJWT imported first, without cryptography when device tokens are HS256 only.

PyJWT loads cryptography whenever it is installed, for its RSA and EC algorithms, and
cryptography's Rust extension alone is a sizeable part of a process's resident set
(docs/benchmarks.md, "Peak RSS at 100 000 devices, again"). A server whose settings name no
device-token public or private key accepts HS256 tokens only, for its whole life, and never
needs them; imported without cryptography (``gateway.lean``), PyJWT verifies HS256 as before
and knows no RSA or EC algorithm, which the server's fixed algorithm list refused anyway.
This runs before ``gateway.cli`` is imported, so that everything else is imported as before
(in particular before ``main`` sets up logging). Any other command, and any process that
imports ``gateway.cli`` itself (tests), loads PyJWT as it always did.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def lean_jwt(argv: Sequence[str]) -> bool:
    """For ``serve`` with HS256 device tokens only, import PyJWT without cryptography;
    whether it was."""
    if list(argv[:1]) != ["serve"] or "jwt" in sys.modules:
        return False
    from gateway.lean import without
    from gateway.settings import Settings, SettingsError

    try:
        settings = Settings.from_environ()
    except SettingsError:
        return False  # ``serve`` reports it
    if settings.device_jwt_public_key or settings.device_jwt_private_key:
        return False
    with without("cryptography"):
        import jwt  # noqa: F401
    return True


def run(argv: Sequence[str] | None = None) -> int:
    lean_jwt(sys.argv[1:] if argv is None else argv)
    from gateway.cli import main

    return main(argv)
