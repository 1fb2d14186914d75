"""``/v1/webhooks`` and ``/v1/events`` end to end: a real gateway and store, the simulator as
the carrier, a real receiver on 127.0.0.1 verifying every delivery as Standard Webhooks."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import replace
from datetime import datetime
from typing import Any

import httpx
import pytest
from starlette.datastructures import Secret

from gateway.api.auth import DeviceTokens
from gateway.events.service import Events
from gateway.store.deliveries import MAX_SECRETS
from gateway.store.outbox import MAX_WEBHOOKS
from tests.api.test_coordinates import LOS_ANGELES, NEW_YORK
from tests.api.test_emergency_query import PASSWORD, PATH, USER, fresh_report
from tests.api.test_history_truth import REFUSING
from tests.events.receiver import Receiver
from tests.harness import (
    EMPIRE_STATE,
    JWT_SECRET,
    WHITE_HOUSE,
    Gateway,
    gateway,
    gateway_settings,
    report,
)

TYPES = ["emergency_call", "test_call"]


def _settings(**changes: Any) -> Any:
    base: dict[str, Any] = {
        "emergency_query_username": USER,
        "emergency_query_password": Secret(PASSWORD),
        "event_retry_base": 0.05,
        "event_retry_max": 0.2,
        # The receiver is on loopback, which webhooks may not reach unless it is listed.
        "webhook_allowed_hosts": ("127.0.0.1",),
    }
    return gateway_settings(**(base | changes))


def _events(gw: Gateway) -> Events:
    found: Events = gw.app.state.events
    return found


async def _call(gw: Gateway, caller: str, to: str = "911") -> httpx.Response:
    pair = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    return await gw.http.get(
        PATH, params={"to": to, "from": caller}, headers={"Authorization": f"Basic {pair}"}
    )


async def _subscribe(gw: Gateway, url: str = "https://127.0.0.1:9/x", **fields: Any) -> Any:
    """A subscription made through the API (201): its answer (its secret with it)."""
    created = await gw.http.post("/v1/webhooks", json={"url": url, "eventTypes": TYPES, **fields})
    assert created.status_code == 201, created.text
    return created.json()


async def _written(gw: Gateway) -> None:
    await _events(gw).emitter.idle()


def test_subscribe_then_a_911_call_is_delivered_signed_with_the_location() -> None:
    async def main() -> None:
        async with gateway(_settings()) as gw:
            receiver = Receiver()
            hook = await _subscribe(gw, receiver.url)
            assert hook["secret"].startswith("whsec_") and hook["eventTypes"] == TYPES
            receiver.secret = hook["secret"]
            # Never shown again.
            listed = (await gw.http.get("/v1/webhooks")).json()["webhooks"]
            assert [h["id"] for h in listed] == [hook["id"]] and "secret" not in listed[0]
            shown = (await gw.http.get(f"/v1/webhooks/{hook['id']}")).json()
            assert "secret" not in shown

            report = fresh_report("desk-1", WHITE_HOUSE, phone="+12025550143")
            assert (await gw.report(report)).status_code == 200
            answer = await _call(gw, "+12025550143")
            assert answer.status_code == 200
            test = await _call(gw, "+12025550143", to="933")
            assert test.status_code == 200
            await _written(gw)
            receiver.up()
            try:
                await asyncio.to_thread(receiver.wait_for, 2)
            finally:
                receiver.down()
            assert receiver.unverified == 0
            by_type = {e["type"]: e for e in receiver.events().values()}
            call = by_type["emergency_call"]["data"]
            assert call["callbackNumber"] == "+12025550143" and call["calledNumber"] == "911"
            assert call["device"]["aeui"] == "desk-1"
            assert call["location"]["locationId"] == answer.json()["location_id"]
            assert "PENNSYLVANIA" in call["location"]["addressText"]
            assert by_type["test_call"]["data"]["calledNumber"] == "933"

            page = (await gw.http.get("/v1/events", params={"type": "emergency_call"})).json()
            (listed_event,) = page["events"]
            assert listed_event["id"] == by_type["emergency_call"]["id"]
            ((delivery,),) = [listed_event["deliveries"]]
            assert delivery["state"] == "delivered" and delivery["target"] == hook["id"]

    asyncio.run(main())


def test_an_unknown_caller_is_still_an_emergency_call_event() -> None:
    async def main() -> None:
        async with gateway(_settings()) as gw:
            assert (await _call(gw, "+13035550100")).status_code == 404
            await _written(gw)
            (event,) = (await gw.http.get("/v1/events")).json()["events"]
            assert event["type"] == "emergency_call"
            odd = await gw.http.get("/v1/events", params={"cursor": "0~0", "": "null"})
            assert odd.status_code == 422 and odd.json()["errors"][0]["field"] == ""
            assert event["data"]["answer"] == "not_found" and event["data"]["device"] is None
            # Built after the answer, its id still says when the call was queried.
            queried = datetime.fromisoformat(event["data"]["queriedAt"])
            assert event["id"][4:16] == f"{int(queried.timestamp() * 1000):012x}"

    asyncio.run(main())


def test_rotation_returns_a_new_secret_once_and_both_sign_for_a_day() -> None:
    async def main() -> None:
        async with gateway(_settings()) as gw:
            hook = await _subscribe(gw)
            rotated = await gw.http.post(f"/v1/webhooks/{hook['id']}/secret")
            assert rotated.status_code == 200
            body = rotated.json()
            assert body["secret"] != hook["secret"] and "previousSecretValidUntil" in body
            stored = await _events(gw).outbox.webhook(hook["id"])
            assert stored is not None
            assert set(stored.secrets(stored.updated_at)) == {hook["secret"], body["secret"]}

    asyncio.run(main())


def test_rotations_within_a_day_keep_every_secret_signing_up_to_the_bound() -> None:
    """A rotation retried (its answer lost) dropped the first secret at once; each now signs
    for its day, and a rotation past ``MAX_SECRETS`` is refused with when to come back."""

    async def main() -> None:
        async with gateway(_settings()) as gw:
            hook = await _subscribe(gw)
            path = f"/v1/webhooks/{hook['id']}/secret"
            answers = [await gw.http.post(path) for _ in range(MAX_SECRETS - 1)]
            assert {a.status_code for a in answers} == {200}
            made = [hook["secret"], *(a.json()["secret"] for a in answers)]
            stored = await _events(gw).outbox.webhook(hook["id"])
            assert stored is not None
            assert stored.secrets(stored.updated_at) == tuple(reversed(made))
            refused = await gw.http.post(path)
            assert refused.status_code == 409
            problem = refused.json()
            assert problem["type"] == "/problems/webhook-secret-limit"
            assert f"{MAX_SECRETS} secrets" in problem["detail"] and "whsec_" not in refused.text
            assert answers[0].json()["previousSecretValidUntil"] in problem["detail"]
            kept = await _events(gw).outbox.webhook(hook["id"])
            assert kept is not None and kept.secret == made[-1]

    asyncio.run(main())


def test_the_rotated_out_secrets_can_be_ended_at_once() -> None:
    """A secret rotated out went on signing for its day, and nothing ended it sooner: one
    that had leaked still signed every delivery, a forger's verified as the gateway's.
    ``DELETE .../secrets/previous`` leaves the current secret the only one signing."""

    async def main() -> None:
        async with gateway(_settings()) as gw:
            hook = await _subscribe(gw)
            path = f"/v1/webhooks/{hook['id']}"
            answers = [await gw.http.post(f"{path}/secret") for _ in range(MAX_SECRETS - 1)]
            assert {a.status_code for a in answers} == {200}
            assert (await gw.http.post(f"{path}/secret")).status_code == 409  # at the bound
            ended = await gw.http.delete(f"{path}/secrets/previous")
            assert ended.status_code == 204, ended.text
            stored = await _events(gw).outbox.webhook(hook["id"])
            assert stored is not None
            assert stored.secrets(stored.updated_at) == (answers[-1].json()["secret"],)
            assert (await gw.http.post(f"{path}/secret")).status_code == 200  # taken again
            missing = await gw.http.delete("/v1/webhooks/wh_none/secrets/previous")
            assert missing.status_code == 404
            anonymous = await gw.http.delete(
                f"{path}/secrets/previous", headers={"Authorization": ""}
            )
            assert anonymous.status_code == 401

    asyncio.run(main())


def test_update_disable_and_delete_a_subscription() -> None:
    async def main() -> None:
        async with gateway(_settings()) as gw:
            hook = await _subscribe(gw, "http://127.0.0.1:9/x", eventTypes=["device_stale"])
            path = f"/v1/webhooks/{hook['id']}"
            patched = await gw.http.patch(
                path, json={"eventTypes": ["provisioning_failed"], "enabled": False}
            )
            assert patched.status_code == 200
            assert patched.json()["eventTypes"] == ["provisioning_failed"]
            assert patched.json()["enabled"] is False
            assert (await gw.http.delete(path)).status_code == 204
            assert (await gw.http.get(path)).status_code == 404
            assert (await gw.http.delete(path)).status_code == 404

    asyncio.run(main())


def test_a_null_description_removes_it_and_a_null_else_is_422() -> None:
    """Regression: ``{"description": null}`` answered 200 and kept the description; a null
    URL, event types or ``enabled`` was taken as "unchanged" without a word."""

    async def main() -> None:
        async with gateway(_settings()) as gw:
            created = await _subscribe(gw, "http://127.0.0.1:9/x", description="desk")
            path = f"/v1/webhooks/{created['id']}"
            kept = await gw.http.patch(path, json={"enabled": True})
            assert kept.json()["description"] == "desk"
            removed = await gw.http.patch(path, json={"description": None})
            assert removed.status_code == 200
            assert removed.json().get("description") is None
            assert (await gw.http.get(path)).json().get("description") is None
            for name in ("url", "eventTypes", "enabled"):
                refused = await gw.http.patch(path, json={name: None})
                assert refused.status_code == 422, refused.text
                assert [e["field"] for e in refused.json()["errors"]] == [name]

    asyncio.run(main())


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://127.0.0.1/x", "eventTypes": TYPES}, "url"),
        ({"url": "file:///etc/passwd", "eventTypes": TYPES}, "url"),
        ({"url": "http://user:pw@127.0.0.1/x", "eventTypes": TYPES}, "url"),
        ({"url": "http://127.0.0.1:99999/x", "eventTypes": TYPES}, "url"),
        ({"url": "/relative", "eventTypes": TYPES}, "url"),
        # Hosts no connection can be made to, each failing every delivery (UnicodeError,
        # ClientConnectorDNSError), and port 0.
        ({"url": "http://.../x", "eventTypes": TYPES}, "url"),
        ({"url": "http://a..b/x", "eventTypes": TYPES}, "url"),
        ({"url": "http://-/x", "eventTypes": TYPES}, "url"),
        ({"url": "http://~/x", "eventTypes": TYPES}, "url"),
        ({"url": "http://-hooks.example.org/x", "eventTypes": TYPES}, "url"),
        ({"url": f"http://{'a' * 64}.example.org/x", "eventTypes": TYPES}, "url"),
        ({"url": f"http://{'a.' * 127}org/x", "eventTypes": TYPES}, "url"),
        ({"url": "http://hooks.example.org:0/x", "eventTypes": TYPES}, "url"),
        ({"url": "http://127.0.0.1/" + "a" * 3000, "eventTypes": TYPES}, "url"),
        ({"url": "http://127.0.0.1/x", "eventTypes": []}, "eventTypes"),
        ({"url": "http://127.0.0.1/x", "eventTypes": ["nope"]}, "eventTypes"),
        ({"url": "http://127.0.0.1/x", "eventTypes": TYPES, "secret": "mine"}, "secret"),
        ({"eventTypes": TYPES}, "url"),
    ],
)
def test_a_bad_subscription_is_a_422_naming_the_field(body: dict[str, Any], field: str) -> None:
    async def main() -> None:
        async with gateway(_settings()) as gw:
            answer = await gw.http.post("/v1/webhooks", json=body)
            assert answer.status_code == 422
            assert answer.headers["content-type"] == "application/problem+json"
            assert field in {e["field"] for e in answer.json()["errors"]}

    asyncio.run(main())


def test_only_an_admin_key_may_use_webhooks_and_events() -> None:
    async def main() -> None:
        async with gateway(_settings()) as gw:
            device = DeviceTokens(secret=JWT_SECRET).mint("dev-1", 60)
            for method, path in (
                ("GET", "/v1/webhooks"),
                ("POST", "/v1/webhooks"),
                ("GET", "/v1/events"),
                ("POST", "/v1/events/evt_x/retry"),
            ):
                as_device = await gw.http.request(
                    method, path, headers={"Authorization": f"Bearer {device}"}
                )
                assert as_device.status_code == 403, (method, path)
                anonymous = await gw.http.request(method, path, headers={"Authorization": ""})
                assert anonymous.status_code == 401, (method, path)

    asyncio.run(main())


def test_events_page_by_cursor_and_a_failed_delivery_is_retried() -> None:
    async def main() -> None:
        async with gateway(_settings(event_delivery_max_age=0.3)) as gw:
            receiver = Receiver(status=500).up()
            try:
                hook = await _subscribe(gw, receiver.url)
                receiver.secret = hook["secret"]
                for n in range(3):
                    await _call(gw, f"+1303555010{n}")
                await _written(gw)
                first = (await gw.http.get("/v1/events", params={"limit": 2})).json()
                assert len(first["events"]) == 2 and first["next"]
                second = (
                    await gw.http.get("/v1/events", params={"limit": 2, "cursor": first["next"]})
                ).json()
                assert len(second["events"]) == 1 and second["next"] is None
                ids = [e["id"] for e in first["events"] + second["events"]]
                assert len(set(ids)) == 3
                # Failing past their 0.3 s, the deliveries are given up...
                for _ in range(200):
                    page = (await gw.http.get("/v1/events")).json()["events"]
                    if all(e["deliveries"][0]["state"] == "failed" for e in page):
                        break
                    await asyncio.sleep(0.05)
                assert page[0]["deliveries"][0]["lastError"] == "HTTP 500"
                # ... until an admin retries one, the receiver now well.
                receiver.status = None
                retried = await gw.http.post(f"/v1/events/{ids[0]}/retry")
                assert retried.status_code == 202 and retried.json()["retried"] == 1
                await asyncio.to_thread(receiver.wait_for, 1)
                assert receiver.ids() == [ids[0]]
            finally:
                receiver.down()
            assert (await gw.http.post("/v1/events/evt_unknown/retry")).status_code == 404
            bad = await gw.http.get("/v1/events", params={"cursor": "garbage"})
            assert bad.status_code == 422
            assert (await gw.http.get("/v1/events", params={"limit": "0"})).status_code == 422
            assert (await gw.http.get("/v1/events", params={"type": "x"})).status_code == 422

    asyncio.run(main())


def test_hosts_outside_the_allow_list_are_refused() -> None:
    async def main() -> None:
        settings = _settings(webhook_allowed_hosts=("127.0.0.1",))
        async with gateway(settings) as gw:
            body = {"url": "https://hooks.example.org/x", "eventTypes": TYPES}
            refused = await gw.http.post("/v1/webhooks", json=body)
            assert refused.status_code == 403
            assert refused.json()["type"] == "/problems/webhook-host-not-allowed"
            ok = await gw.http.post(
                "/v1/webhooks", json={"url": "http://127.0.0.1:9/x", "eventTypes": TYPES}
            )
            assert ok.status_code == 201

    asyncio.run(main())


def test_subscriptions_are_bounded_and_a_deleted_one_frees_its_place() -> None:
    async def main() -> None:
        async with gateway(_settings()) as gw:
            body = {"url": "http://127.0.0.1:9/x", "eventTypes": ["device_stale"]}
            made = [await gw.http.post("/v1/webhooks", json=body) for _ in range(MAX_WEBHOOKS)]
            assert {r.status_code for r in made} == {201}
            refused = await gw.http.post("/v1/webhooks", json=body)
            assert refused.status_code == 409
            assert refused.json()["type"] == "/problems/webhook-limit"
            assert "secret" not in refused.text
            listed = (await gw.http.get("/v1/webhooks")).json()["webhooks"]
            assert len(listed) == MAX_WEBHOOKS
            assert (await gw.http.delete(f"/v1/webhooks/{listed[0]['id']}")).status_code == 204
            assert (await gw.http.post("/v1/webhooks", json=body)).status_code == 201

    asyncio.run(main())


def test_a_refused_report_is_provisioning_failed_and_a_contradicting_fix_a_conflict() -> None:
    async def main() -> None:
        async with gateway(_settings()) as gw:
            ok = await gw.report(report("steady", EMPIRE_STATE, 0, geo=NEW_YORK))
            assert ok.status_code == 200
            conflict = await gw.report(report("moved", EMPIRE_STATE, 0, geo=LOS_ANGELES))
            assert conflict.status_code == 200
            sim_app = gw.sim_app
            await _written(gw)
            events = (await gw.http.get("/v1/events")).json()["events"]
            (found,) = [e for e in events if e["type"] == "location_conflict"]
            assert found["data"]["aeui"] == "moved"
            assert found["data"]["locationId"] == conflict.json()["locationId"]
            assert found["data"]["distanceMeters"] > 3_000_000
        async with gateway(_settings(), sim_app=sim_app, wrap=REFUSING) as gw:
            refused = await gw.report(report("new", WHITE_HOUSE, 1))
            assert refused.status_code == 422
            await _written(gw)
            events = (await gw.http.get("/v1/events")).json()["events"]
            (failed,) = [e for e in events if e["type"] == "provisioning_failed"]
            data = failed["data"]
            assert data["aeui"] == "new" and data["outcomeUnknown"] is False
            assert data["operation"] and "not ours" in data["reason"]
            assert data["callbackNumber"] == report("new", WHITE_HOUSE, 1)["telephoneNumber"]

    asyncio.run(main())


def test_events_past_the_retention_are_purged_when_the_gateway_starts(tmp_path: Any) -> None:
    """A contradicting fix is an event on every report; the outbox keeps them
    GATEWAY_HISTORY_RETENTION_DAYS once delivered, as the history, not for ever."""
    stored = _settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")

    async def listed(gw: Gateway) -> list[str]:
        return [e["type"] for e in (await gw.http.get("/v1/events")).json()["events"]]

    async def main() -> None:
        async with gateway(stored) as gw:
            await gw.report(report("steady", EMPIRE_STATE, 0, geo=NEW_YORK))
            await gw.report(report("moved", EMPIRE_STATE, 0, geo=LOS_ANGELES))
            await _written(gw)
            sim_app = gw.sim_app
        async with gateway(stored, sim_app=sim_app) as gw:
            assert await listed(gw) == ["location_conflict"]  # within the retention: kept
        async with gateway(replace(stored, history_retention_days=0), sim_app=sim_app) as gw:
            for _ in range(100):
                if not await listed(gw):
                    break
                await asyncio.sleep(0.02)
            assert await listed(gw) == []

    asyncio.run(main())


@pytest.mark.parametrize(
    "cursor",
    ["99999999999999999999~evt_x", "9223372036854775807~evt_x", "10000000000000000~evt_x"],
)
def test_a_forged_cursor_past_any_time_is_a_422_not_a_500(cursor: str) -> None:
    """The cursor's microseconds are bound as a 64-bit integer: a larger forged one was an
    OverflowError in the store (a 500)."""

    async def main() -> None:
        async with gateway(_settings()) as gw:
            answer = await gw.http.get("/v1/events", params={"cursor": cursor})
            assert answer.status_code == 422
            assert answer.json()["errors"][0]["field"] == "cursor"
            # The largest a cursor may be still pages (from the newest event).
            largest = await gw.http.get("/v1/events", params={"cursor": "9999999999999999~a"})
            assert largest.status_code == 200

    asyncio.run(main())


def test_an_id_postgresql_cannot_compare_is_a_404_not_a_500(postgres_url: str) -> None:
    """PostgreSQL refuses a NUL in text: a webhook or event ID with one was a 500."""

    async def main() -> None:
        async with gateway(_settings(database_url=postgres_url)) as gw:
            for method, path in (
                ("GET", "/v1/webhooks/wh_%00"),
                ("PATCH", "/v1/webhooks/wh_%00"),
                ("DELETE", "/v1/webhooks/%00"),
                ("POST", "/v1/webhooks/%00/secret"),
                ("DELETE", "/v1/webhooks/%00/secrets/previous"),
                ("POST", "/v1/events/evt_%00/retry"),
            ):
                answer = await gw.http.request(method, path, json={"enabled": False})
                assert answer.status_code == 404, (method, path, answer.text)
                assert answer.headers["content-type"] == "application/problem+json"

    asyncio.run(main())


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/hook",
        "http://017700000001/hook",
        "http://0x7f000001/hook",
        "http://127.1:8080/hook",
        "http://2852039166/latest/meta-data",  # 169.254.169.254
        "http://localhost./hook",
        "http://0/hook",
        "http://100.100.100.200/latest/meta-data",  # metadata in the shared 100.64.0.0/10
    ],
)
def test_a_loopback_or_metadata_address_in_another_form_is_refused_when_subscribing(
    url: str,
) -> None:
    async def main() -> None:
        async with gateway(_settings(webhook_allowed_hosts=())) as gw:
            made = await gw.http.post("/v1/webhooks", json={"url": url, "eventTypes": TYPES})
            assert made.status_code == 403, made.text
            assert made.json()["type"] == "/problems/webhook-host-not-allowed"
            assert (await gw.http.get("/v1/webhooks")).json()["webhooks"] == []

    asyncio.run(main())
