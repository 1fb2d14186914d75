"""Signing out of the console ends the session everywhere, for good.

The session cookie is signed with a secret every replica shares, so any replica accepts it:
a sign-out must reach them all (within a reload), and outlive a restart, or a copy of the
cookie (a shared computer's, a proxy log's) keeps working until it expires.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest
from starlette.datastructures import Secret
from starlette.responses import Response

from gateway.console.auth import SESSION_COOKIE, Session, Sessions, SignOuts
from gateway.settings import Settings
from tests.console.common import csrf_of, sign_in
from tests.harness import Gateway, gateway, new_simulator

SECRET = "console-secret-shared-by-replicas-0123456789"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def signed_in(gw: Gateway) -> tuple[str, str]:
    """Sign in: the session cookie and the CSRF token of its forms."""
    answer = await sign_in(gw.http)
    assert answer.status_code == 303
    overview = await gw.http.get("/console/")
    assert overview.status_code == 200
    return gw.http.cookies[SESSION_COOKIE], csrf_of(overview.text)


async def with_cookie(gw: Gateway, cookie: str) -> int:
    """The overview's status with ``cookie`` as the session: 200 in, 303 to sign-in out."""
    gw.http.cookies.clear()
    gw.http.cookies.set(SESSION_COOKIE, cookie, "gateway.local", "/console")
    return (await gw.http.get("/console/")).status_code


def test_a_sign_out_reaches_every_replica_and_survives_a_restart(
    shared_settings: Settings,
) -> None:
    settings = replace(shared_settings, console=True, console_session_secret=Secret(SECRET))

    async def scenario() -> None:
        sim_app = new_simulator(settings)
        async with (
            gateway(settings, sim_app=sim_app) as a,
            gateway(settings, sim_app=sim_app) as b,
        ):
            cookie, csrf = await signed_in(a)
            kept, _ = await signed_in(b)  # another session, never signed out
            assert await with_cookie(b, cookie) == 200
            a.http.cookies.set(SESSION_COOKIE, cookie, "gateway.local", "/console")
            out = await a.http.post("/console/signout", data={"csrf": csrf})
            assert out.status_code == 303
            assert await with_cookie(a, cookie) == 303
            # B learns it at its next reload.
            await b.app.state.console.sessions.signouts.refresh()
            assert await with_cookie(b, cookie) == 303
            assert await with_cookie(b, kept) == 200
        async with gateway(settings, sim_app=sim_app) as restarted:
            assert await with_cookie(restarted, cookie) == 303
            assert await with_cookie(restarted, kept) == 200

    run(scenario())


class _Down:
    """A store that cannot be reached."""

    async def load(self, now: datetime) -> dict[str, datetime]:
        raise ConnectionError("the database is down")

    async def add(self, sid: str, expires_at: datetime, now: datetime) -> None:
        raise ConnectionError("the database is down")


def test_a_sign_out_the_store_cannot_keep_is_still_refused_here_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [1_000.0]
    sessions = Sessions(SECRET, 60.0, ["admin-key"])
    sessions.signouts = SignOuts(_Down(), clock=lambda: now[0])
    session = Session("sid-1", "admin", "csrf", sessions.key_tag("admin-key"))

    async def scenario() -> None:
        response = Response()
        with caplog.at_level(logging.ERROR, logger="gateway.console"):
            await sessions.revoke(response, session)
        assert "could not be stored" in caplog.text
        assert "dlr_console=" in response.headers["set-cookie"]  # deleted all the same
        assert "sid-1" in sessions.signouts
        # A reload that fails keeps what this replica knows.
        with pytest.raises(ConnectionError):
            await sessions.signouts.refresh()
        assert "sid-1" in sessions.signouts
        # Past the session's own expiry the entry goes with the next change: the cookie's
        # signed issue time refuses it anyway.
        now[0] += 61
        sessions.signouts.store = None  # this process's only, from here
        await sessions.signouts.add("sid-2", 60.0)
        assert "sid-1" not in sessions.signouts and "sid-2" in sessions.signouts

    run(scenario())
