"""Who may use a callback number, and so which device a 911 call from it is answered with.

The first device to hold a number owns it; another device reporting it is refused (409
``number-owned``) until an admin releases it or marks it shared; a device token's
``phone_number`` claim holds the device to that number and vouches for it; among the
devices sharing a number the call-time query answers the one the gateway heard from last
(by its own clock); ``observedAt`` may be only minutes ahead.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
from starlette.datastructures import Secret

from gateway.api.auth import DeviceTokens
from gateway.settings import Settings
from tests.harness import (
    EMPIRE_STATE,
    JWT_SECRET,
    WHITE_HOUSE,
    Gateway,
    gateway,
    gateway_settings,
    report,
)

NUMBER = "+12125550199"
CALIFORNIA = "1 Infinite Loop, Cupertino, CA 95014"
QUERY_TOKEN = "query-token-abcdef0123456789"
QUERY = "/v1/emergency-calls/location"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def settings(**changes: Any) -> Settings:
    return gateway_settings(emergency_query_token=Secret(QUERY_TOKEN), **changes)


def device(aeui: str, phone_number: str | None = None, verified: bool = True) -> dict[str, str]:
    tokens = DeviceTokens(secret=JWT_SECRET)
    if phone_number is None or verified:
        token = tokens.mint(aeui, 300, phone_number=phone_number)
    else:
        now = int(time.time())
        claims = {
            "sub": aeui,
            "iat": now,
            "exp": now + 300,
            "phone_number": phone_number,
            "phone_number_verified": False,
        }
        token = jwt.encode(claims, JWT_SECRET, algorithm="HS256")
    return {"Authorization": f"Bearer {token}"}


def now_plus(minutes: float = 0.0) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()


def at_now(aeui: str, address: str, minutes: float = 0.0, **extra: Any) -> dict[str, Any]:
    extra.setdefault("phone", NUMBER)
    return report(aeui, address, **extra) | {"observedAt": now_plus(minutes)}


async def answered(gw: Gateway, number: str = NUMBER) -> httpx.Response:
    headers = {"Authorization": ""}  # not the harness's admin key
    return await gw.http.get(
        QUERY, params={"to": "911", "from": number, "token": QUERY_TOKEN}, headers=headers
    )


def test_another_device_token_cannot_hijack_a_numbers_911_answer() -> None:
    """The issue's attack: mallory, with a valid token of its own, reports the victim's
    number far away and an hour ahead; the victim reports again a minute later."""

    async def scenario() -> None:
        async with gateway(settings()) as gw:
            first = await gw.report(at_now("victim", WHITE_HOUSE), **device("victim"))
            assert first.status_code == 200, first.text
            washington = first.json()["locationId"]
            # An hour ahead is refused outright (minutes are allowed, not an hour)...
            ahead = await gw.report(at_now("mallory", CALIFORNIA, 59), **device("mallory"))
            assert ahead.status_code == 422
            assert ahead.json()["errors"][0]["field"] == "observedAt"
            # ... and so is the victim's number at any time: it is the victim's.
            taken = await gw.report(at_now("mallory", CALIFORNIA, 1), **device("mallory"))
            assert taken.status_code == 409, taken.text
            problem = taken.json()
            assert problem["type"] == "/problems/number-owned"
            assert problem["telephoneNumber"] == NUMBER
            assert "owner" not in problem  # a device learns no other device's AEUI
            again = await gw.report(at_now("victim", WHITE_HOUSE, 1), **device("victim"))
            assert again.status_code == 200, again.text
            located = (await answered(gw)).json()
            assert (located["aeui"], located["location_id"]) == ("victim", washington)
            assert (
                gw.metrics.registry.get_sample_value(
                    "dlr_reports_total", {"result": "number_owned"}
                )
                == 1
            )
            # Nothing of mallory's reached the carrier.
            endpoints = gw.simulator.state["endpoints"].values()
            assert {e["alternateEndUserId"] for e in endpoints} == {"victim"}

    run(scenario())


def test_the_number_stays_the_owners_after_a_restart_and_on_every_replica(tmp_path: Any) -> None:
    async def scenario() -> None:
        shared = settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}")
        async with gateway(shared) as one:
            assert (await one.report(at_now("victim", WHITE_HOUSE))).status_code == 200
        async with gateway(shared) as two:
            refused = await two.report(at_now("mallory", CALIFORNIA, 1))
            assert refused.status_code == 409
            assert refused.json()["owner"] == "victim"  # an admin key is told whose it is
            # The victim's unchanged report costs nothing, as before.
            seq = two.last_seq()
            assert (await two.report(at_now("victim", WHITE_HOUSE, 1))).status_code == 200
            assert two.operations(seq) == []

    run(scenario())


def test_admin_release_and_share_are_recorded_and_decide_who_may_use_it() -> None:
    async def scenario() -> None:
        async with gateway(settings()) as gw:
            assert (await gw.report(at_now("desk", WHITE_HOUSE, -5))).status_code == 200
            state = (await gw.http.get(f"/v1/numbers/{NUMBER}")).json()
            assert (state["owner"], state["shared"]) == ("desk", False)
            assert state["devices"] == [
                {"alternateEndUserId": "desk", "mayUse": True, "attested": False}
            ]
            # Shared: the laptop may use it too. It says it observed its place an hour ago,
            # the desk says just now; the laptop is the one heard from last: it is answered.
            shared = await gw.http.put(f"/v1/numbers/{NUMBER}", json={"shared": True})
            assert shared.status_code == 200 and shared.json()["shared"] is True
            assert (await gw.report(at_now("desk", WHITE_HOUSE, 1))).status_code == 200
            laptop = await gw.report(at_now("laptop", EMPIRE_STATE, -60))
            assert laptop.status_code == 200, laptop.text
            assert (await answered(gw)).json()["aeui"] == "laptop"
            # Given back to the desk alone: the laptop may not use it any more.
            owned = await gw.http.put(f"/v1/numbers/{NUMBER}", json={"owner": "desk"})
            assert owned.status_code == 200
            assert {d["alternateEndUserId"]: d["mayUse"] for d in owned.json()["devices"]} == {
                "desk": True,
                "laptop": False,
            }
            assert (await answered(gw)).json()["aeui"] == "desk"
            refused = await gw.report(at_now("laptop", EMPIRE_STATE, -59))
            assert refused.status_code == 409
            # Released: the next device to report it owns it.
            released = await gw.http.delete(f"/v1/numbers/{NUMBER}")
            assert released.status_code == 200 and released.json()["owner"] is None
            assert (await gw.report(at_now("laptop", WHITE_HOUSE, 2))).status_code == 200
            assert (await gw.http.get(f"/v1/numbers/{NUMBER}")).json()["owner"] == "laptop"
            history = (await gw.http.get(f"/v1/numbers/{NUMBER}/history")).json()
            assert [(e["kind"], e["credential"]) for e in reversed(history["entries"])] == [
                ("number_owned", "admin-key-0"),  # the desk's report, by the admin key
                ("number_shared", "admin-key-0"),
                ("number_assigned", "admin-key-0"),
                ("number_released", "admin-key-0"),
                ("number_owned", "admin-key-0"),
            ]
            assert history["entries"][1]["before"] == {"owner": "desk", "shared": False}
            # Bad input is a clear 422 or 404, and devices may not touch numbers.
            bad = await gw.http.put(f"/v1/numbers/{NUMBER}", json={"owner": " x", "extra": 1})
            assert bad.status_code == 422
            assert {e["field"] for e in bad.json()["errors"]} == {"owner", "extra"}
            assert (await gw.http.put(f"/v1/numbers/{NUMBER}", json={})).status_code == 422
            # An owner and shared at once: an owned number is not shared (the owner was
            # stored and then had no effect); refused, and the number left as it was.
            before = (await gw.http.get(f"/v1/numbers/{NUMBER}")).json()
            both = await gw.http.put(f"/v1/numbers/{NUMBER}", json={"owner": "a", "shared": True})
            assert both.status_code == 422, both.text
            assert [e["field"] for e in both.json()["errors"]] == ["shared"]
            assert (await gw.http.get(f"/v1/numbers/{NUMBER}")).json() == before
            assert (await gw.http.get("/v1/numbers/911")).status_code == 404
            forbidden = await gw.http.get(f"/v1/numbers/{NUMBER}", headers=device("desk"))
            assert forbidden.status_code == 403

    run(scenario())


def test_a_phone_number_claim_binds_the_token_to_its_number_and_vouches_for_it() -> None:
    async def scenario() -> None:
        async with gateway(settings()) as gw:
            assert (await gw.report(at_now("squatter", WHITE_HOUSE))).status_code == 200
            # A token issued for the number: it may report that number only...
            wrong = await gw.report(
                at_now("phone", EMPIRE_STATE, phone="+13125550100"), **device("phone", NUMBER)
            )
            assert wrong.status_code == 403
            assert wrong.json()["errors"][0]["field"] == "telephoneNumber"
            # ... and uses it whoever got there first: the issuer vouches for it.
            vouched = await gw.report(at_now("phone", EMPIRE_STATE, 1), **device("phone", NUMBER))
            assert vouched.status_code == 200, vouched.text
            assert (await answered(gw)).json()["aeui"] == "phone"
            # The squatter reporting again, heard from last, does not outshout it.
            assert (await gw.report(at_now("squatter", WHITE_HOUSE, 1))).status_code == 200
            assert (await answered(gw)).json()["aeui"] == "phone"
            state = (await gw.http.get(f"/v1/numbers/{NUMBER}")).json()
            assert state["owner"] == "squatter"
            assert {d["alternateEndUserId"]: d["attested"] for d in state["devices"]} == {
                "phone": True,
                "squatter": False,
            }
            # An unverified claim still binds the token, but does not vouch.
            unverified = device("other", NUMBER, verified=False)
            assert (
                await gw.report(at_now("other", EMPIRE_STATE, phone="+13125550100"), **unverified)
            ).status_code == 403
            assert (await gw.report(at_now("other", EMPIRE_STATE), **unverified)).status_code == 409

    run(scenario())


def test_an_admin_endpoint_holds_its_number_like_a_device() -> None:
    async def scenario() -> None:
        async with gateway(settings()) as gw:
            location = (await gw.report(at_now("owner", WHITE_HOUSE))).json()["locationId"]
            body = {
                "alternateEndUserId": "alice-laptop",
                "callerName": "ALICE SMITH",
                "telephoneNumber": NUMBER,
                "locationId": location,
            }
            refused = await gw.http.post("/v1/endpoints", json=body)
            assert refused.status_code == 409, refused.text
            assert refused.json()["type"] == "/problems/number-owned"
            assert refused.json()["owner"] == "owner"
            assert "alice-laptop" not in {
                e["alternateEndUserId"] for e in gw.simulator.state["endpoints"].values()
            }
            # With another number it is created, and owns that number.
            created = await gw.http.post(
                "/v1/endpoints", json=body | {"telephoneNumber": "+12025550101"}
            )
            assert created.status_code == 201, created.text
            taken = await gw.report(at_now("sandbox-device-1", EMPIRE_STATE, phone="+12025550101"))
            assert taken.status_code == 409
            # Deleting the endpoint releases the numbers it owned (recorded).
            deleted = await gw.http.delete(f"/v1/endpoints/{created.json()['endpointId']}")
            assert deleted.status_code == 200
            again = await gw.report(at_now("sandbox-device-1", EMPIRE_STATE, phone="+12025550101"))
            assert again.status_code == 200, again.text
            history = (await gw.http.get("/v1/numbers/+12025550101/history")).json()["entries"]
            assert [e["kind"] for e in history] == [
                "number_owned",
                "number_released",
                "number_owned",
            ]

    run(scenario())


def test_how_far_ahead_observed_at_may_be_is_configurable() -> None:
    async def scenario() -> None:
        async with gateway(settings()) as gw:
            assert (await gw.report(at_now("a", WHITE_HOUSE, 1))).status_code == 200
            late = await gw.report(at_now("a", WHITE_HOUSE, 3))
            assert late.status_code == 422
            assert "120 s ahead of the gateway's clock" in late.json()["errors"][0]["message"]
            assert late.json()["type"] == "/problems/clock-skew"
        async with gateway(settings(observed_at_max_future=600.0)) as gw:
            assert (await gw.report(at_now("a", WHITE_HOUSE, 9))).status_code == 200
            assert (await gw.report(at_now("a", WHITE_HOUSE, 11))).status_code == 422

    run(scenario())
