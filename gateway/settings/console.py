"""The operator console."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.datastructures import Secret

from gateway.settings.reader import SettingsError, setting


def _check_tile_url(env: str, url: str | None) -> None:
    if url is None:
        return
    if not url.startswith(("https://", "http://")) or not all(f"{{{k}}}" in url for k in "zxy"):
        raise SettingsError(f"{env} must be an http(s) URL with {{z}}, {{x}} and {{y}} in it")


@dataclass(frozen=True)
class ConsoleSettings:
    """Whether the console is served, its map tiles and sign-in sessions."""

    console: bool = setting(
        "GATEWAY_CONSOLE",
        False,
        "serve the operator console at `/console/` (sign-in with an admin key); on in sandbox mode",
    )
    console_tile_url: str | None = setting(
        "GATEWAY_CONSOLE_TILE_URL",
        None,
        "the console map's tiles, e.g. `https://tile.example.org/{z}/{x}/{y}.png`; without it, "
        "points on a plain background and no request to any other host",
        clean=str.strip,
        check=_check_tile_url,
    )
    console_session_minutes: float = setting(
        "GATEWAY_CONSOLE_SESSION_MINUTES",
        480.0,
        "a console sign-in lasts this long",
        gt=0,
    )
    console_session_secret: Secret | None = setting(
        "GATEWAY_CONSOLE_SESSION_SECRET",
        None,
        "signs console session cookies, shared by every replica (secret; at least 32 characters); "
        "unset: a random one per process (a restart signs everyone out)",
    )
