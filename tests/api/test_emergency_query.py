"""The carrier's call-time location query, end to end: a real gateway, its real state store
(SQLite, and PostgreSQL for the stalled-database case), the simulator as the carrier.

The query must answer within the carrier's 450 ms whatever the database does; each test
that stalls the database measures that.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url
from starlette.datastructures import Secret

from gateway.api.answers import EmergencyLocation
from gateway.api.emergency import UNKNOWN_CALLER_KEY, EmergencyQuery
from gateway.bandwidth.models import Address
from gateway.dlr.callers import age_seconds
from gateway.events.calls import call_event
from gateway.events.stale import StaleDevices
from gateway.geocoding.results import GeocodeResult, Precision
from gateway.settings import Settings
from gateway.store import StateStore, upgrade
from gateway.store.sql import SqlStateStore
from tests.api.test_history_truth import REFUSING
from tests.harness import (
    EMPIRE_STATE,
    SPACE_NEEDLE,
    WHITE_HOUSE,
    WHITE_HOUSE_ADDRESS,
    Gateway,
    from_host,
    gateway,
    gateway_settings,
    report,
)
from tests.pg import PostgresServer

PATH = "/v1/emergency-calls/location"
USER = "bandwidth-eca"
PASSWORD = "query-password-0123456789"
TOKEN = "query-token-abcdef0123456789"
PHONE = "+12025550143"
#: The carrier gives up after 450 ms; answers must come well inside it.
DEADLINE = 0.45


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def query_settings(**changes: Any) -> Settings:
    base: dict[str, Any] = {
        "emergency_query_username": USER,
        "emergency_query_password": Secret(PASSWORD),
        "emergency_query_token": Secret(TOKEN),
    }
    return gateway_settings(**(base | changes))


def recent(seconds_ago: float = 60.0) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds_ago)).isoformat()


def fresh_report(aeui: str, address: Any, seconds_ago: float = 60.0, **extra: Any) -> Any:
    """A report observed ``seconds_ago``, with the callback number ``PHONE`` unless given."""
    extra.setdefault("phone", PHONE)
    return report(aeui, address, **extra) | {"observedAt": recent(seconds_ago)}


async def ask(
    gw: Gateway,
    caller: str = PHONE,
    *,
    auth: tuple[str, str] | None = (USER, PASSWORD),
    token: str | None = None,
    url: str | None = None,
) -> httpx.Response:
    params = {"to": "911", "from": caller}
    if token is not None:
        params["token"] = token
    headers = {"Authorization": ""}  # not the harness's admin key
    if auth is not None:
        pair = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        headers["Authorization"] = f"Basic {pair}"
    if url is not None:
        return await gw.http.get(url, headers=headers)
    return await gw.http.get(PATH, params=params, headers=headers)


def emergency(gw: Gateway) -> EmergencyQuery:
    found: EmergencyQuery = gw.app.state.emergency
    return found


def counted(gw: Gateway, result: str) -> float:
    value = gw.metrics.registry.get_sample_value("dlr_emergency_queries_total", {"result": result})
    return value or 0.0


async def history(gw: Gateway, aeui: str) -> list[dict[str, Any]]:
    recorder = emergency(gw).recorder
    assert recorder is not None
    await recorder.idle()
    page = await gw.http.get(f"/v1/devices/{aeui}/history")
    assert page.status_code == 200, page.text
    return [e for e in page.json()["entries"] if e["kind"] == "emergency_query"]


class StreetGeocoder:
    """A geocoder that knows every address to the rooftop (the offline one stops at ZIPs)."""

    async def geocode(self, address: Address) -> GeocodeResult | None:
        return GeocodeResult(40.748817, -73.985428, Precision.STREET, "test")

    async def reverse(self, latitude: float, longitude: float) -> GeocodeResult | None:
        return None


# -- the calling number ----------------------------------------------------------------------


def test_every_number_format_finds_the_device() -> None:
    async def scenario() -> None:
        async with gateway(query_settings()) as gw:
            assert (await gw.report(fresh_report("alice", WHITE_HOUSE))).status_code == 200
            for caller in (
                "2025550143",
                "12025550143",
                "+12025550143",
                "202-555-0143",
                "(202) 555-0143",
                "sip:+12025550143@carrier.example;user=phone",
                "sips:12025550143@carrier.example",
                "sip:2025550143@10.0.0.1:5060",
                "tel:+1-202-555-0143",
                "tel:+12025550143;phone-context=+1",
                '"Alice" <sip:+12025550143@carrier.example>',
            ):
                answer = await ask(gw, caller)
                assert answer.status_code == 200, (caller, answer.text)
                assert answer.json()["aeui"] == "alice", caller
            # An unencoded "+" in the carrier's query string arrives as a space.
            raw = await ask(gw, url=f"{PATH}?to=911&from=+12025550143")
            assert raw.status_code == 200, raw.text
            assert raw.json()["callback"] == PHONE
            # Embedded SQLite: this process is the store's only writer, so memory answers.
            assert counted(gw, "cache") == 12

    run(scenario())


def test_the_answer_carries_exactly_the_carriers_fields() -> None:
    async def scenario() -> None:
        async with gateway(query_settings()) as gw:
            fix = {"latitude": 38.89768, "longitude": -77.03655, "accuracyMeters": 8.2}
            body = fresh_report("gps-dev", WHITE_HOUSE, geo=fix)
            assert (await gw.report(body)).status_code == 200
            answer = await ask(gw)
            assert answer.status_code == 200
            assert answer.headers["content-type"] == "application/json"
            located = answer.json()
            assert located == {
                "aeui": "gps-dev",
                "location_id": located["location_id"],
                "lat": 38.89768,
                "lon": -77.03655,
                "radius": 9,  # the fix's accuracy, rounded up
                "callback": PHONE,
                "name": "ALICE SMITH",
            }
            held = gw.simulator.state["endpoints"]
            assert any(e["locationId"] == located["location_id"] for e in held.values())
            # The route writes its answer without the model: it must still be the model's.
            EmergencyLocation.model_validate(located)

    run(scenario())


def test_coordinates_only_when_street_level_or_gps() -> None:
    async def scenario() -> None:
        # The offline geocoder gives ZIP centroids; the simulator then fills in coordinates of
        # its own. Neither is the caller's position: location_id alone.
        async with gateway(query_settings()) as gw:
            assert (await gw.report(fresh_report("zip-only", SPACE_NEEDLE))).status_code == 200
            binding = (await gw.http.get("/v1/devices/zip-only/location")).json()
            assert binding["latitude"] is not None  # the carrier's own coordinates
            located = (await ask(gw)).json()
            assert located.keys() == {"aeui", "location_id", "callback", "name"}
            EmergencyLocation.model_validate(located)
        # A street-level geocode is answered, with the default radius.
        async with gateway(query_settings(), geocoder=StreetGeocoder()) as gw:
            assert (await gw.report(fresh_report("street", EMPIRE_STATE))).status_code == 200
            located = (await ask(gw)).json()
            assert (located["lat"], located["lon"], located["radius"]) == (
                40.748817,
                -73.985428,
                50,
            )

    run(scenario())


def test_a_new_fix_at_the_same_address_is_the_one_answered() -> None:
    """A device that stays at its address but sends a new GPS fix (it moved within a campus,
    a tower) is where that fix says: the query answered the first fix, with its tight radius
    and the new report's time. No carrier call: the carrier's record is the same."""

    async def scenario() -> None:
        async with gateway(query_settings(), geocoder=StreetGeocoder()) as gw:
            here = {"latitude": 40.748817, "longitude": -73.985428, "accuracyMeters": 5}
            first = fresh_report("walker", EMPIRE_STATE, 60, geo=here)
            assert (await gw.report(first)).status_code == 200
            seq = gw.last_seq()
            # ~300 m north, within what the fix's accuracy and the margin allow.
            there = {"latitude": 40.7515, "longitude": -73.985428, "accuracyMeters": 5}
            moved = await gw.report(fresh_report("walker", EMPIRE_STATE, 30, geo=there))
            assert moved.status_code == 200, moved.text
            assert (moved.json()["latitude"], moved.json()["warnings"]) == (40.7515, [])
            answer = (await ask(gw)).json()
            assert (answer["lat"], answer["lon"], answer["radius"]) == (40.7515, -73.985428, 5)
            location = (await gw.http.get("/v1/devices/walker/location")).json()
            assert (location["latitude"], location["precision"]) == (40.7515, "gps")
            # The same fix again changes nothing.
            again = await gw.report(fresh_report("walker", EMPIRE_STATE, 20, geo=there))
            assert (again.status_code, again.json()["latitude"]) == (200, 40.7515)
            assert (await ask(gw)).json()["lat"] == 40.7515
            # A report without one: the fix is 20 s old, and the record's time would be this
            # report's, so the address's geocode is answered instead (with its radius).
            unfixed = await gw.report(fresh_report("walker", EMPIRE_STATE, 10))
            assert (unfixed.status_code, unfixed.json()["latitude"]) == (200, 40.748817)
            answer = (await ask(gw)).json()
            assert (answer["lat"], answer["lon"], answer["radius"]) == (40.748817, -73.985428, 50)
            assert gw.operations(seq) == []

    run(scenario())


def test_a_report_without_a_fix_never_answers_an_earlier_fix_as_fresh() -> None:
    """A device's record has one time. A report without a GPS fix, or with one that
    contradicts its address, that kept the earlier fix would have the query answer that fix
    as taken at the report's time: the address's geocode answers instead, at the same
    address and at a new one."""

    async def scenario() -> None:
        async with gateway(query_settings(), geocoder=StreetGeocoder()) as gw:
            fix = {"latitude": 40.7515, "longitude": -73.985428, "accuracyMeters": 5}
            los_angeles = {"latitude": 34.0522, "longitude": -118.2437, "accuracyMeters": 5}
            geocoded = (40.748817, -73.985428, 50)  # StreetGeocoder's, the default radius
            for seconds, address, rest in (
                (90, EMPIRE_STATE, {}),
                (70, EMPIRE_STATE, {"geo": los_angeles}),
                (50, SPACE_NEEDLE, {}),
            ):
                fixed = await gw.report(fresh_report("walker", EMPIRE_STATE, seconds, geo=fix))
                assert fixed.status_code == 200, fixed.text
                assert (await ask(gw)).json()["lat"] == 40.7515
                later = await gw.report(fresh_report("walker", address, seconds - 10, **rest))
                assert later.status_code == 200, later.text
                answer = (await ask(gw)).json()
                assert (answer["lat"], answer["lon"], answer["radius"]) == geocoded, rest
                assert answer["location_id"] == later.json()["locationId"]
                location = (await gw.http.get("/v1/devices/walker/location")).json()
                assert (location["precision"], location["observedAt"]) == (
                    "street",
                    later.json()["observedAt"],
                )

    run(scenario())


# -- shared lines, unknown callers, stale locations -------------------------------------------


def test_a_shared_line_answers_the_freshest_binding() -> None:
    async def scenario() -> None:
        async with gateway(query_settings()) as gw:
            # Three devices share one callback number (an admin said so); "desk" reported
            # last, from elsewhere.
            shared = await gw.http.put(f"/v1/numbers/{PHONE}", json={"shared": True})
            assert shared.status_code == 200, shared.text
            assert (await gw.report(fresh_report("laptop", WHITE_HOUSE, 300))).status_code == 200
            assert (await gw.report(fresh_report("phone", SPACE_NEEDLE, 200))).status_code == 200
            desk = await gw.report(fresh_report("desk", EMPIRE_STATE, 100))
            assert desk.status_code == 200
            answer = await ask(gw, "2025550143")
            assert answer.json()["aeui"] == "desk"
            assert answer.json()["location_id"] == desk.json()["locationId"]
            shared = gw.metrics.registry.get_sample_value("dlr_emergency_query_shared_lines_total")
            assert shared == 1
            # The laptop moves: now it is the freshest.
            moved = await gw.report(fresh_report("laptop", SPACE_NEEDLE, 10))
            assert moved.status_code == 200
            assert (await ask(gw)).json()["aeui"] == "laptop"
            # The query is in the history of the device answered, and only there.
            (entry,) = await history(gw, "desk")
            after = entry["after"]
            assert entry["source"] == "cache"  # embedded SQLite: memory is as new as the store
            assert entry["credential"] == "emergency-query-basic"
            assert entry["toLocationId"] == desk.json()["locationId"]
            assert after["from"] == PHONE and after["to"] == "911"
            assert after["devicesOnNumber"] == 3
            assert after["binding"] == "confirmed"
            assert after["answered"]["aeui"] == "desk"
            assert 90 <= after["locationAgeSeconds"] < 200
            assert after["stale"] is False
            assert await history(gw, "phone") == []

    run(scenario())


def test_unknown_caller_is_404_by_default() -> None:
    async def scenario() -> None:
        async with gateway(query_settings()) as gw:
            assert (await gw.report(fresh_report("alice", WHITE_HOUSE))).status_code == 200
            for caller in ("+12025550199", "911", "not a number", ""):
                answer = await ask(gw, caller)
                assert answer.status_code == 404, caller
                assert answer.headers["content-type"] == "application/problem+json"
                # Like every other problem: where it happened.
                assert answer.json()["instance"] == PATH
            assert counted(gw, "not_found") == 4
            recorder = emergency(gw).recorder
            assert recorder is not None
            await recorder.idle()
            store = gw.app.state.services.pipeline.ledger
            assert isinstance(store, StateStore)
            rows = await store.history(UNKNOWN_CALLER_KEY)
            assert len(rows) == 4
            assert rows[-1].after is not None and rows[-1].after["from"] == "+12025550199"
            assert rows[-1].after["status"] == 404

    run(scenario())


def test_unknown_caller_can_get_the_account_default_location() -> None:
    settings = query_settings(
        emergency_query_unknown_caller="default",
        emergency_query_default_location_id="HQ1",
        emergency_query_default_aeui="acme-default",
    )

    async def scenario() -> None:
        async with gateway(settings) as gw:
            answer = await ask(gw, "+13125550100")
            assert answer.status_code == 200
            assert answer.json() == {"aeui": "acme-default", "location_id": "HQ1"}
            assert counted(gw, "default") == 1
            recorder = emergency(gw).recorder
            assert recorder is not None
            await recorder.idle()
            store = gw.app.state.services.pipeline.ledger
            assert isinstance(store, StateStore)
            (row,) = await store.history(UNKNOWN_CALLER_KEY)
            assert row.source == "default" and row.observed_at is None
            assert row.after is not None
            assert row.after["status"] == 200 and row.after["locationId"] == "HQ1"
            assert row.after["answered"] == {"aeui": "acme-default", "location_id": "HQ1"}
            assert row.after["from"] == "+13125550100" and row.after["to"] == "911"

    run(scenario())


def test_queries_close_together_are_written_in_one_transaction() -> None:
    # One transaction per query cost several times the query itself: the recorder waits
    # briefly after a record for the next ones (all in one batch share its time stamp).
    async def scenario() -> None:
        async with gateway(query_settings()) as gw:
            assert (await gw.report(fresh_report("desk", WHITE_HOUSE))).status_code == 200
            for _ in range(3):
                assert (await ask(gw)).status_code == 200
                await asyncio.sleep(0.005)
            entries = await history(gw, "desk")
            assert len(entries) == 3
            assert len({e["at"] for e in entries}) == 1

    run(scenario())


def test_a_history_record_whose_first_write_fails_is_written_by_a_retry(tmp_path: Path) -> None:
    """The query's history record is written with its event, in one transaction per batch,
    and retried as the event is: a failed write (the disk full for a moment, here a trigger
    refusing it) no longer drops the record."""
    database = tmp_path / "state.db"
    settings = query_settings(database_url=f"sqlite+aiosqlite:///{database}")

    def refuse(on: bool) -> None:
        with contextlib.closing(sqlite3.connect(database, timeout=10)) as connection:
            if on:
                connection.executescript(
                    "CREATE TABLE refuse (n INTEGER); INSERT INTO refuse VALUES (1);"
                    "CREATE TRIGGER refuse_queries BEFORE INSERT ON history"
                    " WHEN NEW.kind = 'emergency_query' AND EXISTS (SELECT 1 FROM refuse)"
                    " BEGIN SELECT RAISE(ABORT, 'refused'); END;"
                )
            else:
                connection.execute("DELETE FROM refuse")
                connection.commit()

    async def scenario() -> None:
        async with gateway(settings) as gw:
            assert (await gw.report(fresh_report("alice", WHITE_HOUSE))).status_code == 200
            refuse(True)
            assert (await ask(gw)).status_code == 200
            await asyncio.sleep(0.3)  # the batch's first write (after 50 ms) was refused
            refuse(False)
            (entry,) = await history(gw, "alice")
            assert entry["after"]["status"] == 200 and entry["source"] == "cache"
            dropped = gw.metrics.registry.get_sample_value(
                "dlr_emergency_query_records_dropped_total", {"reason": "store_error"}
            )
            assert not dropped
            # The call's event, written once with it.
            calls = await gw.app.state.events.outbox.page(limit=10, type="emergency_call")
            assert len(calls) == 1

    run(scenario())


def test_a_stale_location_is_answered_and_counted() -> None:
    async def scenario() -> None:
        async with gateway(query_settings(emergency_query_stale_after=3600)) as gw:
            assert (await gw.report(fresh_report("old", WHITE_HOUSE, 7200))).status_code == 200
            answer = await ask(gw)
            # The newest location the gateway has still beats a national call centre.
            assert answer.status_code == 200 and answer.json()["aeui"] == "old"
            m = gw.metrics.registry
            assert m.get_sample_value("dlr_emergency_query_stale_total") == 1
            assert m.get_sample_value("dlr_emergency_query_location_age_seconds_count") == 1
            assert (
                m.get_sample_value(
                    "dlr_emergency_query_location_age_seconds_bucket", {"le": "14400.0"}
                )
                == 1
            )
            assert (
                m.get_sample_value(
                    "dlr_emergency_query_location_age_seconds_bucket", {"le": "3600.0"}
                )
                == 0
            )
            (entry,) = await history(gw, "old")
            assert entry["after"]["stale"] is True
            # A fresh report: no longer stale.
            assert (await gw.report(fresh_report("old", WHITE_HOUSE, 5))).status_code == 200
            assert (await ask(gw)).status_code == 200
            assert m.get_sample_value("dlr_emergency_query_stale_total") == 1

    run(scenario())


def test_an_admins_endpoint_has_no_observation_time_and_is_never_stale() -> None:
    """An endpoint an admin created, which no report has placed, was observed at no time:
    its answers say ``observedAt: null`` (not 1970), and a 911 call from it is neither aged
    56 years nor counted, logged or emailed as stale."""

    async def scenario() -> None:
        async with gateway(query_settings(emergency_query_stale_after=3600)) as gw:
            location = await gw.http.post("/v1/locations", json={"address": WHITE_HOUSE_ADDRESS})
            assert location.status_code == 201, location.text
            body = {
                "alternateEndUserId": "desk-phone",
                "callerName": "FRONT DESK",
                "telephoneNumber": PHONE,
                "locationId": location.json()["locationId"],
            }
            assert (await gw.http.post("/v1/endpoints", json=body)).status_code == 201
            read = await gw.http.get("/v1/devices/desk-phone/location")
            assert read.status_code == 200 and read.json()["observedAt"] is None
            pidf = await gw.http.get(
                "/v1/devices/desk-phone/location", headers={"Accept": "application/pidf+xml"}
            )
            assert pidf.status_code == 200 and "timestamp" not in pidf.text
            answer = await ask(gw)
            assert answer.status_code == 200 and answer.json()["aeui"] == "desk-phone"
            m = gw.metrics.registry
            assert not m.get_sample_value("dlr_emergency_query_stale_total")
            assert not m.get_sample_value("dlr_emergency_query_location_age_seconds_count")
            (entry,) = await history(gw, "desk-phone")
            assert entry["observedAt"] is None
            assert entry["after"]["observedAt"] is None
            assert entry["after"]["locationAgeSeconds"] is None
            assert entry["after"]["stale"] is False
            page = await gw.http.get("/v1/devices/desk-phone/history")
            (edit,) = [e for e in page.json()["entries"] if e["kind"] == "admin_edit"]
            assert edit["observedAt"] is None
            binding = await gw.app.state.services.pipeline.ledger.get("desk-phone")
            event = call_event(
                queried_at=datetime.now(UTC),
                callback_number=PHONE,
                called_number="911",
                binding=binding,
                age_seconds=age_seconds(binding, datetime.now(UTC)),
                answer="device",
            )
            assert event.data["location"]["observedAt"] is None
            assert event.data["location"]["ageSeconds"] is None
            # Nor does it go stale: no report of it can grow old (a desk phone never reports).
            a_year_on = time.time() + 365 * 86_400
            quiet = StaleDevices(
                gw.app.state.events.outbox, stale_after=3600, clock=lambda: a_year_on
            )
            assert await quiet.check() == []

    run(scenario())


def test_a_refused_move_answers_the_previous_place_with_its_own_age(tmp_path: Path) -> None:
    """The carrier refuses a device's move: it still holds the previous place, and so the
    query answers that place, but as old as it is (stale here), never as observed at the
    refused report's time. An older report than the refused one is still superseded."""

    async def scenario() -> None:
        database = f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"
        settings = query_settings(database_url=database, emergency_query_stale_after=3600)
        async with gateway(settings) as gw:
            placed = await gw.report(fresh_report("mover", WHITE_HOUSE, 7200))
            assert placed.status_code == 200, placed.text
            sim_app = gw.sim_app
        where = placed.json()["locationId"]
        async with gateway(settings, sim_app=sim_app, wrap=REFUSING) as gw:
            refused = await gw.report(fresh_report("mover", EMPIRE_STATE, 60))
            assert refused.status_code == 422, refused.text
            assert (await ask(gw)).json()["location_id"] == where
            location = (await gw.http.get("/v1/devices/mover/location")).json()
            assert location["observedAt"] == placed.json()["observedAt"]
            older = await gw.report(fresh_report("mover", SPACE_NEEDLE, 120))
            assert older.status_code == 409, older.text
            newest = datetime.fromisoformat(older.json()["newestObservedAt"])
            assert abs((datetime.now(UTC) - newest).total_seconds() - 60) < 30
            (entry,) = await history(gw, "mover")
        # Restarted: the store answers (its row), and the same (given all the time it takes,
        # not the 150 ms meant for a store that stalls: a loaded machine is slow, not wrong).
        restarted = query_settings(
            database_url=database, emergency_query_stale_after=3600, emergency_query_db_timeout=10
        )
        async with gateway(restarted, sim_app=sim_app) as gw:
            answer = await ask(gw)
            assert answer.json()["location_id"] == where
            (again, _) = await history(gw, "mover")
        assert (entry["source"], again["source"]) == ("cache", "store")
        for after in (entry["after"], again["after"]):
            assert after["observedAt"] == placed.json()["observedAt"]
            assert after["stale"] is True and after["locationAgeSeconds"] >= 7200

    run(scenario())


# -- credentials ------------------------------------------------------------------------------


def test_credentials_basic_token_and_source_networks() -> None:
    async def scenario() -> None:
        async with gateway(query_settings()) as gw:
            assert (await gw.report(fresh_report("alice", WHITE_HOUSE))).status_code == 200
            refused = [
                await ask(gw, auth=None),
                await ask(gw, auth=(USER, "wrong-password")),
                await ask(gw, auth=("someone-else", PASSWORD)),
                await ask(gw, auth=None, token="wrong-token"),
                await ask(gw, auth=(USER, PASSWORD), token="wrong-token"),
                # A credential too long to look at is wrong, not absent, beside a right one.
                await ask(gw, auth=(USER, "x" * 5000), token=TOKEN),
                await ask(gw, auth=None, url=f"{PATH}?from=2025550143&token="),
                # One credential of each kind: a wrong one beside the right one is refused,
                # whichever comes first.
                await ask(gw, auth=None, url=f"{PATH}?from=2025550143&token=x&token={TOKEN}"),
                await ask(gw, auth=None, url=f"{PATH}?from=2025550143&token={TOKEN}&token=x"),
                await ask(gw, auth=None, url=f"{PATH}?from=2025550143&token={TOKEN}&token={TOKEN}"),
            ]
            for answer in refused:
                assert answer.status_code == 401, answer.text
                assert answer.headers["www-authenticate"].startswith("Basic realm=")
                assert "aeui" not in answer.json()
            garbled = await gw.http.get(
                PATH, params={"from": PHONE}, headers={"Authorization": "Basic !!!"}
            )
            assert garbled.status_code == 401
            right = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            twice = await gw.http.get(
                PATH,
                params={"from": PHONE},
                headers=[("Authorization", right), ("Authorization", "Basic d3Jvbmc6d3Jvbmc=")],
            )
            assert twice.status_code == 401
            # An admin key is not a query credential.
            admin = await gw.http.get(PATH, params={"from": PHONE})
            assert admin.status_code == 401
            assert counted(gw, "unauthorized") == len(refused) + 3
            assert (await ask(gw, auth=None, token=TOKEN)).status_code == 200
            assert (await ask(gw, auth=(USER, PASSWORD))).status_code == 200
            assert (await ask(gw, auth=(USER, PASSWORD), token=TOKEN)).status_code == 200

        # The allow-list is checked first: the right credentials from elsewhere are refused.
        elsewhere = query_settings(emergency_query_allow_cidrs=("10.0.0.0/8", "2001:db8::/32"))
        async with gateway(elsewhere) as gw:
            answer = await ask(gw, token=TOKEN)
            assert answer.status_code == 403
            assert counted(gw, "forbidden") == 1
        here = query_settings(emergency_query_allow_cidrs=("127.0.0.0/8", "203.0.113.0/24"))
        async with gateway(here) as gw:
            assert (await ask(gw, token=TOKEN)).status_code == 404  # allowed; no such caller
            # A dual-stack listener (``--host ::``) sees an IPv4 carrier as ``::ffff:a.b.c.d``:
            # the same peer, allowed by the IPv4 network; another network's peer is not.
            for peer, status in (("::ffff:203.0.113.9", 404), ("::ffff:198.51.100.9", 403)):
                async with from_host(gw, peer) as carrier:
                    asked = {"to": "911", "from": PHONE, "token": TOKEN}
                    assert (await carrier.get(PATH, params=asked)).status_code == status, peer

        # Nothing configured: nothing is answered.
        async with gateway(gateway_settings()) as gw:
            assert (await ask(gw, auth=(USER, PASSWORD), token=TOKEN)).status_code == 401

    run(scenario())


def test_behind_a_trusted_proxy_the_allow_list_reads_the_client_it_saw() -> None:
    """Behind an ingress (a trusted proxy) the allow-list checks the carrier's address, the
    nearest ``X-Forwarded-For`` hop: a hop forged further left is not read, nor the header
    of a peer that is not a trusted proxy."""
    settings = query_settings(
        emergency_query_allow_cidrs=("203.0.113.0/24",), trusted_proxies=("10.244.0.0/16",)
    )

    async def status(gw: Gateway, peer: str, forwarded: str) -> int:
        asked = {"to": "911", "from": PHONE, "token": TOKEN}
        async with from_host(gw, peer) as carrier:
            answer = await carrier.get(PATH, params=asked, headers={"X-Forwarded-For": forwarded})
        return answer.status_code

    async def scenario() -> None:
        async with gateway(settings) as gw:
            assert await status(gw, "10.244.1.5", "203.0.113.9") == 404  # allowed; no caller
            assert await status(gw, "10.244.1.5", "203.0.113.9, 198.51.100.9") == 403
            assert await status(gw, "10.244.1.5", "") == 403  # the ingress pod's own
            assert await status(gw, "198.51.100.9", "203.0.113.9") == 403

    run(scenario())


def test_the_token_and_password_are_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    async def scenario() -> None:
        async with gateway(query_settings(emergency_query_stale_after=1)) as gw:
            assert (await gw.report(fresh_report("alice", WHITE_HOUSE))).status_code == 200
            assert (await ask(gw, auth=None, token=TOKEN)).status_code == 200
            assert (await ask(gw, auth=None, token=TOKEN + "x")).status_code == 401
            assert (await ask(gw, auth=(USER, PASSWORD))).status_code == 200

    run(scenario())
    # The test's own HTTP client logs its URLs (token included); the gateway's lines must not.
    records = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    lines = [r.getMessage() + repr(vars(r)) for r in records]
    assert any("emergency" in line for line in lines)  # the stale warning, the access lines
    for secret in (TOKEN, PASSWORD, base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()):
        assert not any(secret in line for line in lines)


# -- a database that stalls -------------------------------------------------------------------


@pytest.fixture
def postgres_settings(postgres: PostgresServer) -> Iterator[Settings]:
    url = postgres.create_database()
    upgrade(url)
    yield query_settings(database_url=url)
    postgres.drop_database(url)


def test_a_stalled_postgresql_still_answers_in_time(postgres_settings: Settings) -> None:
    """Another transaction holds ACCESS EXCLUSIVE on ``devices``: every read of it waits.
    The query answers from process memory (or 404) after the store's bounded wait."""
    url = make_url(postgres_settings.database_url)

    async def scenario() -> None:
        async with gateway(postgres_settings) as gw:
            assert (await gw.report(fresh_report("alice", WHITE_HOUSE))).status_code == 200
            assert (await ask(gw)).json()["aeui"] == "alice"  # from the store, unstalled
            blocker = await asyncpg.connect(
                host=url.host, port=url.port, user=url.username, database=url.database
            )
            try:
                transaction = blocker.transaction()
                await transaction.start()
                await blocker.execute("LOCK TABLE devices IN ACCESS EXCLUSIVE MODE")
                started = time.perf_counter()
                answers = await asyncio.gather(
                    *(ask(gw) for _ in range(40)), ask(gw, "+12025550199")
                )
                took = time.perf_counter() - started
                assert took < DEADLINE, took
                assert [a.status_code for a in answers] == [200] * 40 + [404]
                assert {a.json()["aeui"] for a in answers[:40]} == {"alice"}
                fallbacks = {
                    reason: gw.metrics.registry.get_sample_value(
                        "dlr_emergency_query_store_fallbacks_total", {"reason": reason}
                    )
                    or 0
                    for reason in ("timeout", "busy")
                }
                # Some waited out the store's timeout; once 16 reads were outstanding, the
                # rest did not wait at all.
                assert fallbacks["timeout"] >= 1 and fallbacks["busy"] >= 1, fallbacks
                assert fallbacks["timeout"] + fallbacks["busy"] == 41
                assert counted(gw, "cache") == 40
                # Each answer, timed alone, while the lock is still held.
                for _ in range(3):
                    one = time.perf_counter()
                    assert (await ask(gw)).status_code == 200
                    assert time.perf_counter() - one < DEADLINE
            finally:
                await blocker.close()  # the transaction ends; the stalled reads complete
            recorder = emergency(gw).recorder
            assert recorder is not None
            await recorder.idle()
            entries = await history(gw, "alice")
            assert {e["source"] for e in entries} == {"store", "cache"}
            assert any(e["after"]["fallback"] == "timeout" for e in entries)

    run(scenario())


def test_a_busy_sqlite_store_still_answers_in_time(tmp_path: Path) -> None:
    """SQLite runs one unit of work at a time: one that takes long (a big purge, a slow
    disk) holds every read behind it. Simulated by holding that one slot."""
    settings = query_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'state.db'}")

    async def scenario() -> None:
        async with gateway(settings) as gw:
            assert (await gw.report(fresh_report("alice", WHITE_HOUSE))).status_code == 200
            store = gw.app.state.services.pipeline.ledger
            assert isinstance(store, SqlStateStore) and store._serial is not None
            async with store._serial:
                # Up to three tries for one in time: a loaded machine may stall any one of
                # them, but a gateway waiting on the store is late every time (or never done).
                took: list[float] = []
                while len(took) < 3 and not (took and took[-1] < DEADLINE):
                    started = time.perf_counter()
                    async with asyncio.timeout(10):
                        found, unknown = await asyncio.gather(ask(gw), ask(gw, "+12025550199"))
                    took.append(time.perf_counter() - started)
                    assert found.status_code == 200 and found.json()["aeui"] == "alice"
                    assert unknown.status_code == 404
                assert took[-1] < DEADLINE, took
            assert counted(gw, "cache") == len(took)
            timeouts = gw.metrics.registry.get_sample_value(
                "dlr_emergency_query_store_fallbacks_total", {"reason": "timeout"}
            )
            assert timeouts == len(took)  # the unknown number's store read, given up on
        # After a restart memory is empty: the device is found in the store (given all the
        # time it takes: its 150 ms is for a store that stalls, not a machine that is busy).
        restarted = query_settings(
            database_url=settings.database_url, emergency_query_db_timeout=10
        )
        async with gateway(restarted) as gw:
            answer = await ask(gw)
            assert answer.status_code == 200 and answer.json()["aeui"] == "alice"
            assert counted(gw, "store") == 1

    run(scenario())


def test_without_a_database_process_memory_answers() -> None:
    async def scenario() -> None:
        async with gateway(query_settings(database_url="none")) as gw:
            assert (await gw.report(fresh_report("alice", WHITE_HOUSE))).status_code == 200
            answer = await ask(gw)
            assert answer.status_code == 200 and answer.json()["aeui"] == "alice"
            assert counted(gw, "cache") == 1
            assert emergency(gw).recorder is None

    run(scenario())


def test_a_deleted_endpoint_is_no_longer_answered() -> None:
    async def scenario() -> None:
        async with gateway(query_settings(database_url="none")) as gw:
            located = await gw.report(fresh_report("alice", WHITE_HOUSE))
            assert (await ask(gw)).status_code == 200
            endpoint_id = located.json()["endpointId"]
            assert (await gw.http.delete(f"/v1/endpoints/{endpoint_id}")).status_code == 200
            assert (await ask(gw)).status_code == 404

    run(scenario())
