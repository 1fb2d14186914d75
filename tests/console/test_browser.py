"""The console in a real browser: Playwright driving the system's Chromium (Debian's package,
``/usr/bin/chromium``; ``.ci/run`` installs it) against a gateway served by uvicorn on
loopback, in front of the built-in simulator.

Every request the browser makes is intercepted: one to any host but the gateway's is aborted
and the test fails. ``DLR_CONSOLE_SCREENSHOTS=docs/console`` saves each page at 1280×800.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.datastructures import Secret

from gateway.app import SANDBOX_PREFIX, create_app
from gateway.store import open_store
from tests.harness import (
    ADMIN_KEY,
    EMPIRE_STATE,
    SPACE_NEEDLE,
    WHITE_HOUSE,
    WILLIS_TOWER,
    gateway_settings,
    new_simulator,
    phone_of,
    report,
)
from tests.procs import free_port

CHROMIUM = Path("/usr/bin/chromium")
QUERY_TOKEN = "query-token-abcdef0123456789"
SHOTS = os.environ.get("DLR_CONSOLE_SCREENSHOTS")

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="the system's Chromium is missing (.ci/run installs it)"
)
sync_api = pytest.importorskip("playwright.sync_api")


@dataclass
class Served:
    base: str
    database_url: str
    sim_app: Any


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """The gateway on 127.0.0.1 (uvicorn, in a thread), its store a SQLite file."""
    port = free_port()
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'state.db'}"
    settings = replace(
        gateway_settings(
            emergency_query_token=Secret(QUERY_TOKEN),
            bandwidth_base_url=f"http://127.0.0.1:{port}{SANDBOX_PREFIX}/api",
        ),
        database_url=database_url,
    )
    sim_app = new_simulator(settings)
    app = create_app(settings, sandbox_app=sim_app)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the gateway did not start"
        time.sleep(0.05)
    try:
        yield Served(f"http://127.0.0.1:{port}", database_url, sim_app)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _populate(base: str) -> dict[str, str]:
    """Devices at four places (two with GPS fixes), and a 911 call for one of them."""
    places = {
        "desk-42": (
            EMPIRE_STATE,
            {"latitude": 40.74844, "longitude": -73.98566, "accuracyMeters": 7},
        ),
        "kiosk-9": (
            SPACE_NEEDLE,
            {"latitude": 47.62051, "longitude": -122.34931, "accuracyMeters": 12},
        ),
        "lobby-7": (WILLIS_TOWER, None),
        "west-wing": (WHITE_HOUSE, None),
    }
    locations = {}
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as http:
        for aeui, (address, fix) in places.items():
            extra = {"geo": fix} if fix else {}
            answer = http.post(
                "/v1/location-reports", json=report(aeui, address, 0, caller=aeui.upper(), **extra)
            )
            assert answer.status_code == 200, answer.text
            locations[aeui] = answer.json()["locationId"]
        for caller in (phone_of("desk-42"), "+12025550100"):
            answer = http.get(
                "/v1/emergency-calls/location",
                params={"to": "911", "from": caller, "token": QUERY_TOKEN},
            )
            assert answer.status_code in (200, 404), answer.text
    return locations


async def _unconfirm(database_url: str, aeui: str) -> None:
    """A change the carrier never got (a replica stopped mid-write), left in the shared store."""
    store = await open_store(database_url)
    try:
        current = await store.get(aeui)
        assert current is not None
        claim = await store.claim(
            replace(
                current, caller_name="LOBBY EAST", confirmed=False, observed_at=datetime.now(UTC)
            ),
            credential="replica-that-died",
        )
        assert claim.won
    finally:
        await store.close()


def _shot(page: Any, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"))


def test_an_operator_signs_in_finds_a_device_sees_the_call_retries_and_signs_out(
    served: Served,
) -> None:
    locations = _populate(served.base)
    asyncio.run(_unconfirm(served.database_url, "lobby-7"))
    gateway_host = served.base.removeprefix("http://")
    elsewhere: list[str] = []

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})

            def only_the_gateway(route: Any) -> None:
                url = route.request.url
                if re.match(rf"^https?://{re.escape(gateway_host)}/", url):
                    route.continue_()
                else:
                    elsewhere.append(url)
                    route.abort()

            page.route("**/*", only_the_gateway)
            # Every answer the pages ask for is found (no 404 favicon in the browser's console).
            missing: list[str] = []
            page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
            expect = sync_api.expect

            # Signed out: the sign-in page. A wrong key is refused.
            page.goto(f"{served.base}/console/devices")
            expect(page).to_have_url(re.compile(r"/console/signin\?next="))
            _shot(page, "signin")
            page.get_by_label("Admin key").fill("not-an-admin-key-at-all")
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("alert")).to_contain_text("not an admin key")
            page.get_by_label("Admin key").fill(ADMIN_KEY)
            page.get_by_label("Admin key").press("Enter")  # the keyboard alone signs in
            # Back where the operator was going.
            expect(page).to_have_url(f"{served.base}/console/devices")
            page.get_by_role("link", name="Overview").click()
            expect(page.get_by_role("heading", name="Devices by state")).to_be_visible()
            _shot(page, "overview")
            # The pages name their icon, which is there (a browser asked /favicon.ico: 404).
            icon = "fetch(document.querySelector('link[rel=icon]').href).then(r => r.status)"
            assert page.evaluate(icon) == 200

            # Find a device by its number, as a person types it, and open its history.
            number = phone_of("desk-42")
            page.get_by_role("link", name="Devices").click()
            page.get_by_label("AEUI, caller name or callback number").fill(
                f"({number[2:5]}) {number[5:8]}-{number[8:]}"
            )
            page.get_by_role("button", name="Search").click()
            rows = page.locator("tbody tr")
            expect(rows).to_have_count(1)
            _shot(page, "devices")
            page.get_by_role("link", name="desk-42").click()
            expect(page.get_by_role("heading", name="Device desk-42")).to_be_visible()
            history = page.get_by_role("table")
            expect(history).to_contain_text("applied")
            expect(history).to_contain_text(locations["desk-42"])
            # The 911 call made above is in the device's history (recorded in the background).
            _eventually(page, lambda: "911 call-time query" in history.inner_text())
            _shot(page, "device")

            # The 911 calls page: the call, the device, the location answered; the unknown caller.
            page.get_by_role("link", name="911 calls").click()
            calls = page.get_by_role("table").first
            expect(calls).to_contain_text(number)
            expect(calls).to_contain_text(locations["desk-42"])
            expect(calls).to_contain_text("unknown caller")
            _shot(page, "calls")
            page.get_by_role("link", name="Locations").click()
            expect(page.get_by_role("table")).to_contain_text(locations["kiosk-9"])
            _shot(page, "locations")
            page.get_by_role("link", name="Map").click()
            expect(page.locator("svg.map circle")).to_have_count(4)  # the carrier geocodes all
            expect(page.locator("#map-caption")).to_contain_text("4 devices with coordinates")
            _shot(page, "map")

            # Retry the failed write: the carrier gets the device's binding.
            page.get_by_role("link", name="Failures").click()
            expect(page.get_by_role("table")).to_contain_text("lobby-7")
            _shot(page, "failures")
            page.get_by_role("button", name="Retry the write of lobby-7").click()
            expect(page.get_by_role("status")).to_contain_text("written to the carrier again")
            expect(page.get_by_role("table")).to_contain_text("No unconfirmed write")
            held = served.sim_app.state.simulator.store.endpoints.values()
            assert [e.caller_name for e in held if e.alternate_end_user_id == "lobby-7"] == [
                "LOBBY EAST"
            ]

            # A form posted without its CSRF token is refused (the page's own form, token removed).
            page.goto(f"{served.base}/console/failures")
            page.evaluate("document.querySelector('input[name=csrf]').remove()")
            page.get_by_role("button", name="Sign out").click()
            expect(page.get_by_role("alert")).to_contain_text("security token")
            page.goto(f"{served.base}/console/")
            expect(page.get_by_role("heading", name="Overview")).to_be_visible()  # still in

            # Sign out: the pages are closed again.
            page.get_by_role("button", name="Sign out").click()
            expect(page).to_have_url(f"{served.base}/console/signin")
            page.goto(f"{served.base}/console/calls")
            expect(page).to_have_url(re.compile(r"/console/signin\?next="))
            assert missing == [], f"the pages asked for what is not there: {missing}"
        finally:
            browser.close()
    assert elsewhere == [], f"the console asked another host: {elsewhere}"


def _eventually(page: Any, condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not seen in time"
        page.reload()
