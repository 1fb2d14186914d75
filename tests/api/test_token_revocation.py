"""Revoking a device's tokens (``POST /v1/devices/{aeui}/token-revocation``).

A leaked token must stop working before it expires, without rotating the signing secret
(which would log out every device): tokens for the device issued before the revocation are
refused (401) on every route a device token can use; tokens minted afterwards, and other
devices' tokens, still work. The revocation is in the state store: it survives a restart,
and another replica learns it at its next reload.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
import jwt

from gateway.api.auth import DeviceTokens
from gateway.api.revocations import Revocations
from gateway.settings import NO_DATABASE, Settings
from tests.harness import (
    JWT_SECRET,
    WHITE_HOUSE,
    Gateway,
    gateway,
    gateway_settings,
    new_simulator,
    report,
)
from tests.pidf import samples

#: Long enough ago that a revocation now comes after it, within the tokens' lifetime.
BEFORE = time.time() - 120
MINTER = DeviceTokens(secret=JWT_SECRET)
PIDF = {"Content-Type": "application/pidf+xml"}
HELD = {"Content-Type": "application/held+xml"}


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def old_token(aeui: str) -> str:
    """A token issued two minutes ago: before any revocation these tests make."""
    return MINTER.mint(aeui, 3600, now=BEFORE)


def new_token(aeui: str) -> str:
    """A token minted after the revocation (its ``iat`` a second later: the revocation is
    in whole seconds, so one minted in its very second works too)."""
    return MINTER.mint(aeui, 3600, now=time.time() + 1)


def revocation_path(aeui: str) -> str:
    return f"/v1/devices/{quote(aeui, safe='')}/token-revocation"


async def revoke(gw: Gateway, aeui: str) -> httpx.Response:
    return await gw.http.post(revocation_path(aeui))


def refused(response: httpx.Response) -> bool:
    """A 401 as for any invalid token: problem+json, ``unauthorized``, with a challenge."""
    if response.status_code != 401:
        return False
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/unauthorized"
    assert response.headers["www-authenticate"].startswith("Bearer")
    return True


async def uses(gw: Gateway, aeui: str, token: str, seconds: float) -> list[httpx.Response]:
    """The token on every route a device token can use, for its own device."""
    auth = bearer(token)
    path = quote(aeui, safe="")
    return [
        await gw.http.post(
            "/v1/location-reports", json=report(aeui, WHITE_HOUSE, seconds), headers=auth
        ),
        await gw.http.get(f"/v1/devices/{path}/location", headers=auth),
        await gw.http.get(f"/v1/devices/{path}/history", headers=auth),
        await gw.http.post("/v1/addresses/validate", json={"address": WHITE_HOUSE}, headers=auth),
        await gw.http.post("/v1/held", content=samples.held_request(), headers={**HELD, **auth}),
    ]


def test_a_revoked_token_is_refused_everywhere_and_a_new_one_works() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            leaked, other = old_token("laptop"), old_token("desk")
            # Used before the revocation: verified, and remembered as verified.
            assert [r.status_code for r in await uses(gw, "laptop", leaked, 0)] == [200] * 5
            assert [r.status_code for r in await uses(gw, "desk", other, 0)] == [200] * 5

            answer = await revoke(gw, "laptop")
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["alternateEndUserId"] == "laptop"
            revoked_before = datetime.fromisoformat(body["revokedBefore"])
            assert revoked_before.tzinfo is not None
            assert BEFORE < revoked_before.timestamp() <= time.time()

            assert all(map(refused, await uses(gw, "laptop", leaked, 10)))
            # A PIDF-LO report too (its own reader, the same credential check).
            pidf_leaked = bearer(old_token("alice-laptop"))
            pidf = await gw.http.post(
                "/v1/location-reports", content=samples.CIVIC, headers={**PIDF, **pidf_leaked}
            )
            assert pidf.status_code == 200, pidf.text
            assert (await revoke(gw, "alice-laptop")).status_code == 200
            again = samples.CIVIC.replace(b"12:00:00Z", b"12:01:00Z")
            assert refused(
                await gw.http.post(
                    "/v1/location-reports", content=again, headers={**PIDF, **pidf_leaked}
                )
            )
            # Nothing the refused token sent reached the device's record.
            held = await gw.http.get("/v1/devices/laptop/location")
            assert held.json()["observedAt"] == report("laptop", None, 0)["observedAt"]

            # A token minted after the revocation works; so does the other device's old one.
            fresh = new_token("laptop")
            assert [r.status_code for r in await uses(gw, "laptop", fresh, 20)] == [200] * 5
            assert [r.status_code for r in await uses(gw, "desk", other, 20)] == [200] * 5

    run(scenario())


def test_a_token_without_iat_is_refused_once_its_device_is_revoked() -> None:
    token = jwt.encode({"sub": "laptop", "exp": int(time.time()) + 600}, JWT_SECRET, "HS256")

    async def scenario() -> None:
        async with gateway() as gw:
            read = "/v1/devices/laptop/history"
            assert (await gw.http.get(read, headers=bearer(token))).status_code == 200
            assert (await revoke(gw, "laptop")).status_code == 200
            assert refused(await gw.http.get(read, headers=bearer(token)))

    run(scenario())


def test_the_revocation_route_is_for_admins_and_reads_back() -> None:
    async def scenario() -> None:
        async with gateway() as gw:
            path = revocation_path("laptop")
            # Never revoked: 404; a device the gateway never heard of may be revoked.
            assert (await gw.http.get(path)).status_code == 404
            first = await gw.http.post(path)
            assert first.status_code == 200
            read = await gw.http.get(path)
            assert read.status_code == 200 and read.json() == first.json()
            # Idempotent, and never back: a second revocation is at the same second or later.
            second = await gw.http.post(path)
            assert second.status_code == 200
            assert second.json()["revokedBefore"] >= first.json()["revokedBefore"]
            # A body is not read (as on the other admin POSTs without one).
            with_body = await gw.http.post(path, content=b"{not json", headers=PIDF)
            assert with_body.status_code == 200
            # A device token, even the device's own: 403, as on the other admin routes.
            own = bearer(new_token("laptop"))
            for method in ("GET", "POST"):
                answer = await gw.http.request(method, path, headers=own)
                assert answer.status_code == 403, answer.text
                assert answer.headers["content-type"] == "application/problem+json"
                assert (await gw.http.request(method, path, headers=bearer("x"))).status_code == 401
            assert (await gw.http.delete(path)).status_code == 405
            # What cannot be an AEUI is no device, as on the device routes.
            for aeui in ("a" * 31, " padded", "nul\x00", ""):
                for method in ("GET", "POST"):
                    answer = await gw.http.request(method, revocation_path(aeui))
                    assert answer.status_code == 404, (aeui, answer.text)
            slashed = await gw.http.post(revocation_path("dept/alice"))
            assert slashed.json()["alternateEndUserId"] == "dept/alice"
            # Each revocation is in the device's history, with the admin credential.
            history = await gw.http.get("/v1/devices/laptop/history")
            revoked = [e for e in history.json()["entries"] if e["kind"] == "tokens_revoked"]
            assert [e["after"] for e in revoked] == [
                {"revokedBefore": r.json()["revokedBefore"]} for r in (with_body, second, first)
            ]
            assert {e["credential"] for e in revoked} == {"admin-key-0"}

    run(scenario())


def revocations_of(gw: Gateway) -> Revocations:
    found: Revocations = gw.app.state.services.device_tokens.revocations
    return found


def test_a_revocation_survives_a_restart_and_reaches_another_replica(
    shared_settings: Settings,
) -> None:
    leaked = old_token("laptop")
    read = "/v1/devices/laptop/history"

    async def scenario() -> None:
        sim_app = new_simulator(shared_settings)
        async with (
            gateway(shared_settings, sim_app=sim_app) as a,
            gateway(shared_settings, sim_app=sim_app) as b,
        ):
            assert (await b.http.get(read, headers=bearer(leaked))).status_code == 200
            assert (await revoke(a, "laptop")).status_code == 200
            assert refused(await a.http.get(read, headers=bearer(leaked)))
            # B learns it at its next reload (every REFRESH_SECONDS), not before.
            assert (await b.http.get(read, headers=bearer(leaked))).status_code == 200
            await revocations_of(b).refresh()
            assert refused(await b.http.get(read, headers=bearer(leaked)))
            # B reads the revocation as A made it.
            assert (await b.http.get(revocation_path("laptop"))).json() == (
                await a.http.get(revocation_path("laptop"))
            ).json()
        async with gateway(shared_settings, sim_app=sim_app) as restarted:
            assert refused(await restarted.http.get(read, headers=bearer(leaked)))
            fresh = bearer(new_token("laptop"))
            assert (await restarted.http.get(read, headers=fresh)).status_code == 200

    run(scenario())


def test_without_a_database_revocations_are_this_process_only() -> None:
    """``GATEWAY_DATABASE_URL=none``: kept in memory, as the devices' order is."""
    settings = gateway_settings(database_url=NO_DATABASE)
    leaked = old_token("laptop")
    read = "/v1/devices/laptop/history"

    async def scenario() -> None:
        async with gateway(settings) as gw:
            assert (await revoke(gw, "laptop")).status_code == 200
            assert (await gw.http.get(revocation_path("laptop"))).status_code == 200
            assert refused(await gw.http.get(read, headers=bearer(leaked)))
            assert (await gw.http.get(read, headers=bearer(new_token("laptop")))).status_code == 200

    run(scenario())


class _Stale:
    """A store whose loads answer what it held before a revocation this replica made."""

    def __init__(self) -> None:
        self.kept: dict[str, datetime] = {}

    async def load(self) -> dict[str, datetime]:
        return {}

    async def get(self, aeui: str) -> datetime | None:
        return self.kept.get(aeui)

    async def revoke(self, aeui: str, before: datetime) -> datetime:
        self.kept[aeui] = before
        return before


def test_a_reload_never_forgets_what_this_replica_revoked() -> None:
    """A load that began before this replica's revocation and ends after it must not undo
    it, and a reload keeps the later of two instants."""
    instant = datetime(2026, 12, 7, 13, 0, 0, 700_000, tzinfo=UTC)
    revocations = Revocations(_Stale(), clock=lambda: instant)

    async def scenario() -> None:
        stored = await revocations.revoke("laptop")
        assert stored == instant.replace(microsecond=0)  # whole seconds, as ``iat``
        await revocations.refresh()
        assert revocations.refuses("laptop", stored.timestamp() - 1)
        assert revocations.refuses("laptop", None)
        assert not revocations.refuses("laptop", stored.timestamp())
        assert not revocations.refuses("desk", None)

    run(scenario())
