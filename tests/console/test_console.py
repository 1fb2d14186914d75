"""The operator console, in process: sign-in and sessions, CSRF, the pages' content, retry."""

from __future__ import annotations

import asyncio
import html
import re
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import itsdangerous.timed
import pytest
from starlette.datastructures import Secret

from gateway.console.auth import SESSION_COOKIE
from gateway.dlr.binding import Binding
from gateway.settings import Settings, SettingsError
from gateway.settings.access import MAX_ADMIN_KEY
from tests.api.test_device_auth import PATHLIKE_AEUIS
from tests.console.common import csrf_of, sign_in
from tests.harness import (
    ADMIN_KEY,
    EMPIRE_STATE,
    Gateway,
    from_host,
    gateway,
    gateway_settings,
    phone_of,
    report,
)

QUERY_TOKEN = "query-token-abcdef0123456789"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def settings(**changes: Any) -> Settings:
    return gateway_settings(emergency_query_token=Secret(QUERY_TOKEN), **changes)


async def signed_in(gw: Gateway) -> str:
    """Sign in; the CSRF token of the session's forms."""
    answer = await sign_in(gw.http)
    assert answer.status_code == 303 and answer.headers["location"] == "/console/"
    overview = await gw.http.get("/console/")
    assert overview.status_code == 200
    return csrf_of(overview.text)


def test_the_console_is_off_unless_configured() -> None:
    async def scenario() -> None:
        async with gateway(replace(settings(), console=False)) as gw:
            assert (await gw.http.get("/console/")).status_code == 404
            assert (await gw.http.get("/console/signin")).status_code == 404

    run(scenario())
    assert Settings.from_environ({}, env_file=None).console is False
    assert Settings.from_environ({"GATEWAY_CONSOLE": "true"}, env_file=None).console is True
    assert Settings().for_sandbox("http://127.0.0.1:8080/sandbox/bandwidth/api").console is True


def test_a_tile_url_must_name_its_tiles() -> None:
    with pytest.raises(SettingsError, match="with \\{z\\}, \\{x\\} and \\{y\\}"):
        Settings.from_environ({"GATEWAY_CONSOLE_TILE_URL": "https://tiles.test/a.png"}, None)
    with pytest.raises(SettingsError):
        Settings.from_environ({"GATEWAY_CONSOLE_TILE_URL": "javascript:{z}{x}{y}"}, None)


def test_sign_in_sets_a_strict_session_cookie_and_pages_need_it() -> None:
    async def scenario() -> None:
        async with gateway(settings()) as gw:
            gw.http.headers.pop("Authorization")
            # Every page, signed out: the sign-in page, which comes back to it after.
            for path in ("/console/", "/console/devices?q=x", "/console/failures"):
                answer = await gw.http.get(path)
                assert answer.status_code == 303
                assert answer.headers["location"].startswith("/console/signin?next=")
            # Not even an admin key in a header opens a page: the console has its own sign-in.
            header = {"Authorization": f"Bearer {ADMIN_KEY}"}
            assert (await gw.http.get("/console/devices", headers=header)).status_code == 303
            answer = await sign_in(gw.http)
            assert answer.status_code == 303
            cookie = answer.headers["set-cookie"].lower()
            for attribute in ("httponly", "samesite=strict", "path=/console", "max-age=28800"):
                assert attribute in cookie
            page = await gw.http.get("/console/")
            assert page.status_code == 200 and "Devices by state" in page.text
            csp = page.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "default-src 'none'" in csp
            assert "unsafe-inline" not in csp and "img-src 'self';" in csp
            assert page.headers["x-frame-options"] == "DENY"
            # Nothing inline a strict policy would block (the pages work without it anyway).
            assert "<script>" not in page.text and " style=" not in page.text

    run(scenario())


def test_head_answers_as_get_does_signed_out_and_in() -> None:
    async def scenario() -> None:
        async with gateway(settings()) as gw:
            gw.http.headers.pop("Authorization")
            # Signed out: sent to sign in (not 401), as GET is.
            for path in ("/console/", "/console/devices?q=x", "/console/map", "/console"):
                got, head = await gw.http.get(path), await gw.http.head(path)
                assert head.status_code == got.status_code == 303, path
                assert head.headers["location"] == got.headers["location"]
            await signed_in(gw)
            for path in ("/console/", "/console/devices", "/console/calls"):
                head = await gw.http.head(path)
                assert head.status_code == 200, path
                assert head.headers["content-type"].startswith("text/html")

    run(scenario())


def test_no_redirect_is_built_from_the_host_header() -> None:
    """``/console`` is sent home with a relative Location; a trailing slash is no page."""

    async def scenario() -> None:
        async with gateway(settings()) as gw:
            evil = {"Host": "evil.example.test"}
            home = await gw.http.get("/console", headers=evil)
            assert home.status_code == 303 and home.headers["location"] == "/console/"
            await signed_in(gw)
            for path in ("/console/devices/", "/console/signin/", "/console/calls/"):
                answer = await gw.http.get(path, headers=evil)
                assert answer.status_code == 404, (path, answer.headers.get("location"))
                assert "location" not in answer.headers

    run(scenario())


def test_behind_a_proxy_that_ends_tls_sign_in_works_and_its_cookie_is_secure() -> None:
    """The gateway serves no TLS: on https a proxy ends it, so the browser's form says
    ``Origin: https://…`` to a server spoken to in http."""

    async def scenario() -> None:
        async with gateway(settings()) as gw:
            for origin, secure in (("https://gateway", True), ("http://gateway", False)):
                answer = await sign_in(gw.http, origin=origin)
                assert answer.status_code == 303, (origin, answer.text)
                [cookie] = [
                    c.lower()
                    for c in answer.headers.get_list("set-cookie")
                    if c.startswith(f"{SESSION_COOKIE}=")
                ]
                assert ("; secure" in cookie) is secure, cookie
                gw.http.cookies.clear()
            refused = await sign_in(gw.http, origin="https://gateway.evil.test")
            assert refused.status_code == 403 and SESSION_COOKIE not in gw.http.cookies

    run(scenario())


def test_a_wrong_key_a_forged_cookie_and_a_form_without_its_token_are_refused() -> None:
    async def scenario() -> None:
        async with gateway(settings()) as gw:
            wrong = await sign_in(gw.http, key="not-the-admin-key-at-all")
            assert wrong.status_code == 401 and "not an admin key" in wrong.text
            assert SESSION_COOKIE not in gw.http.cookies
            # The sign-in form itself needs its token.
            answer = await gw.http.post("/console/signin", data={"key": "x", "next": "/"})
            assert answer.status_code == 403
            forged = httpx.AsyncClient(transport=gw.http._transport, base_url="http://gateway")
            async with forged:
                forged.cookies.set(
                    SESSION_COOKIE, '["a","admin-key-0","b"].aaaa.bbbb', "gateway.local"
                )
                assert (await forged.get("/console/")).status_code == 303
            csrf = await signed_in(gw)
            retry = "/console/failures/retry"
            assert (await gw.http.post(retry, data={"aeui": "x"})).status_code == 403
            wrong_token = {"aeui": "x", "csrf": csrf[:-2] + "zz"}
            assert (await gw.http.post(retry, data=wrong_token)).status_code == 403
            # A form from another site, with the token (were it ever leaked): refused too.
            other = await gw.http.post(
                retry, data={"aeui": "x", "csrf": csrf}, headers={"Origin": "https://evil.test"}
            )
            assert other.status_code == 403
            # Sign-out needs the token, and ends the session for good: the old cookie is dead.
            old = gw.http.cookies[SESSION_COOKIE]
            assert (await gw.http.post("/console/signout", data={})).status_code == 403
            out = await gw.http.post("/console/signout", data={"csrf": csrf})
            assert out.status_code == 303 and out.headers["location"] == "/console/signin"
            gw.http.cookies.set(SESSION_COOKIE, old, "gateway.local", "/console")
            assert (await gw.http.get("/console/")).status_code == 303

    run(scenario())


def test_the_longest_admin_key_signs_in() -> None:
    """A key as long as the settings allow, in characters a form sends percent-encoded."""
    longest = ("kéy+/=€&" * 200)[:MAX_ADMIN_KEY]
    (read,) = Settings.from_environ({"GATEWAY_ADMIN_KEYS": longest}, None).admin_keys
    assert str(read) == longest

    async def scenario() -> None:
        keys = (Secret(ADMIN_KEY), Secret(longest))
        async with gateway(settings(admin_keys=keys)) as gw:
            for wrong in (longest[:-1], longest + "k"):
                assert (await sign_in(gw.http, key=wrong)).status_code == 401
            answer = await sign_in(gw.http, key=longest)
            assert answer.status_code == 303 and answer.headers["location"] == "/console/"
            assert (await gw.http.get("/console/")).status_code == 200

    run(scenario())


def test_sign_in_returns_only_to_a_console_page() -> None:
    async def scenario() -> None:
        async with gateway(settings()) as gw:
            gw.http.headers.pop("Authorization")
            for target, expected in (
                ("/console/calls?unknown=1", "/console/calls?unknown=1"),
                ("//evil.test/console/", "/console/"),
                ("https://evil.test/", "/console/"),
                ("/console//evil.test", "/console/"),
                ("/console/\\evil.test", "/console/"),
            ):
                form = await gw.http.get("/console/signin", params={"next": target})
                answer = await gw.http.post(
                    "/console/signin",
                    data={"csrf": csrf_of(form.text), "key": ADMIN_KEY, "next": target},
                )
                assert answer.headers["location"] == expected, target
                gw.http.cookies.clear()

    run(scenario())


def test_a_device_whose_aeui_holds_a_slash_or_dots_opens_from_its_link() -> None:
    """Each device's link opens its own page, as a browser resolves it: ``a/../b`` is not
    ``b``, and ``..`` is not the console's home."""

    async def scenario() -> None:
        async with gateway(settings()) as gw:
            for n, aeui in enumerate(PATHLIKE_AEUIS):
                sent = await gw.report(report(aeui, EMPIRE_STATE, 0, phone=f"+120255503{n:02d}"))
                assert sent.status_code == 200, (aeui, sent.text)
            await signed_in(gw)
            listing = (await gw.http.get("/console/devices")).text
            for aeui in PATHLIKE_AEUIS:
                shown = re.search(f'<a href="([^"]+)">{re.escape(html.escape(aeui))}</a>', listing)
                assert shown is not None, aeui
                # What a browser asks for: the link with its dot segments resolved.
                asked = urljoin("http://gateway/console/devices", html.unescape(shown.group(1)))
                page = await gw.http.get(asked)
                assert page.status_code == 200, (aeui, asked)
                assert f"<h1>Device {html.escape(aeui)}</h1>" in page.text, (aeui, asked)
            # Signed out, a device page sends to sign-in and back to the same device.
            gw.http.cookies.clear()
            away = await gw.http.get("/console/devices/a%2F..%2Fb")
            assert parse_qs(urlsplit(away.headers["location"]).query)["next"] == [
                "/console/devices/a%2F..%2Fb"
            ]

    run(scenario())


def test_a_device_found_by_number_its_history_and_the_911_calls() -> None:
    async def scenario() -> None:
        async with gateway(settings()) as gw:
            applied = await gw.report(report("desk-42", EMPIRE_STATE, 0, caller="ROOM 42"))
            assert applied.status_code == 200, applied.text
            number = phone_of("desk-42")
            for caller in (number, "+12025550100"):  # the device's, and no one's
                query = await gw.http.get(
                    "/v1/emergency-calls/location",
                    params={"to": "911", "from": caller, "token": QUERY_TOKEN},
                )
                assert query.status_code in (200, 404)
            overview = (await gw.http.get("/console/")).text if await signed_in(gw) else ""
            # A report's lookup of an endpoint not there yet (404) is no carrier error.
            assert "carrier errors</th><td>0</td>" in overview.replace("\n", "")
            assert "carrier calls</th><td>3</td>" in overview.replace("\n", "")
            # The queries are recorded after their answers, in the background.
            for _ in range(200):
                calls = await gw.http.get("/console/calls")
                if "+12025550100" in calls.text and number in calls.text:
                    break
                await asyncio.sleep(0.05)
            # By number, as written by a person (national format), by AEUI, by name.
            national = f"({number[2:5]}) {number[5:8]}-{number[8:]}"
            for search in (national, "desk-4", "room 4"):
                found = await gw.http.get("/console/devices", params={"q": search})
                assert 'href="/console/devices/desk-42"' in found.text, search
            missing = await gw.http.get("/console/devices", params={"q": "nobody"})
            assert "No device matches" in missing.text
            device = await gw.http.get("/console/devices/desk-42")
            assert device.status_code == 200
            text = device.text
            assert "ROOM 42" in text and applied.json()["locationId"] in text
            assert "applied" in text and "911 call-time query" in text
            assert f"<td>{number}</td>" in calls.text
            assert 'href="/console/devices/desk-42"' in calls.text
            unknown = await gw.http.get("/console/calls", params={"unknown": "1"})
            assert "+12025550100" in unknown.text and number not in unknown.text
            assert "unknown caller" in unknown.text
            locations = await gw.http.get("/console/locations")
            assert applied.json()["locationId"] in locations.text
            assert (await gw.http.get("/console/devices/nobody")).status_code == 404

    run(scenario())


async def unconfirmed(gw: Gateway, aeui: str, caller: str) -> Binding:
    """The device's binding changed in the store but never reached the carrier: what a
    replica that stopped in the middle of a write leaves behind."""
    store = gw.app.state.services.pipeline.ledger
    current = await store.get(aeui)
    assert current is not None and current.confirmed
    claim = await store.claim(
        replace(current, caller_name=caller, confirmed=False, observed_at=datetime.now(UTC)),
        credential="replica-that-died",
    )
    assert claim.won
    return claim.current


def test_a_failed_write_is_listed_and_retried_through_the_pipeline() -> None:
    async def scenario() -> None:
        async with gateway(settings()) as gw:
            applied = await gw.report(report("lobby-7", EMPIRE_STATE, 0, caller="LOBBY"))
            assert applied.status_code == 200, applied.text
            endpoint_id = applied.json()["endpointId"]
            await unconfirmed(gw, "lobby-7", "LOBBY EAST")
            csrf = await signed_in(gw)
            failures = await gw.http.get("/console/failures")
            assert 'href="/console/devices/lobby-7"' in failures.text
            assert "state-pending" in failures.text
            # The carrier fails: the console says so, in the carrier's words, and keeps it.
            gw.simulator.config.fault_kinds = ("500",)
            gw.simulator.config.fault_rate = 1.0
            retry = await gw.http.post(
                "/console/failures/retry",
                data={"aeui": "lobby-7", "csrf": csrf},
                follow_redirects=True,
            )
            assert retry.status_code == 200
            assert "carrier refused or failed" in retry.text and "simulated 500" in retry.text
            assert gw.simulator.store.endpoints[endpoint_id].caller_name == "LOBBY"
            # The carrier is back: the retry writes the device's binding, now confirmed.
            gw.simulator.config.fault_rate = 0.0
            gw.app.state.services.upstream.breaker.success()
            retry = await gw.http.post(
                "/console/failures/retry",
                data={"aeui": "lobby-7", "csrf": csrf},
                follow_redirects=True,
            )
            assert "written to the carrier again" in retry.text, retry.text
            assert 'href="/console/devices/lobby-7"' not in retry.text  # no longer failing
            assert gw.simulator.store.endpoints[endpoint_id].caller_name == "LOBBY EAST"
            stored = await gw.app.state.services.pipeline.ledger.get("lobby-7")
            assert stored.confirmed and stored.caller_name == "LOBBY EAST"
            history = await gw.http.get("/console/devices/lobby-7")
            assert "repaired" in history.text

    run(scenario())


def test_a_session_ends_at_its_expiry(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        async with gateway(settings(console_session_minutes=10.0)) as gw:
            await signed_in(gw)
            assert (await gw.http.get("/console/devices")).status_code == 200
            later = time.time() + 601
            monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: later)
            assert (await gw.http.get("/console/devices")).status_code == 303

    run(scenario())


def test_a_session_ends_when_its_admin_key_is_taken_out() -> None:
    """Replicas (and restarts) share sign-ins through one session secret; a key taken out of
    ``GATEWAY_ADMIN_KEYS`` (rotated after a leak) must end the sessions it opened."""
    shared = Secret("console-session-secret-0123456789abcdef")
    rotated = Secret("rotated-admin-key-0123456789")

    async def scenario() -> None:
        async with gateway(settings(console_session_secret=shared)) as before:
            await signed_in(before)
            cookie = before.http.cookies[SESSION_COOKIE]
        for keys, status in (((rotated, Secret(ADMIN_KEY)), 200), ((rotated,), 303)):
            async with gateway(settings(console_session_secret=shared, admin_keys=keys)) as gw:
                gw.http.cookies.set(SESSION_COOKIE, cookie, "gateway.local", "/console")
                assert (await gw.http.get("/console/")).status_code == status, len(keys)

    run(scenario())


def test_sign_in_attempts_are_limited_per_client() -> None:
    async def scenario() -> None:
        async with gateway(settings()) as gw:
            answers = [await sign_in(gw.http, key=f"guess-{i:020d}") for i in range(11)]
            assert [a.status_code for a in answers] == [401] * 10 + [429]
            assert int(answers[-1].headers["Retry-After"]) >= 1
            # The right key too, until the bucket refills: a guesser cannot race an operator in.
            assert (await sign_in(gw.http)).status_code == 429

    run(scenario())


def test_a_guesser_behind_the_shared_proxy_does_not_lock_out_signed_in_browsers() -> None:
    """Sign-in attempts were limited per client address only: behind the proxy every operator
    shares, one guesser's ten wrong keys locked every operator out. A browser that has
    signed in spends its admin key's budget instead, wherever it comes from (a guesser with
    its stolen cookie gains nothing by changing address); browsers never signed in spend
    their address's, and all of them together one budget."""
    from gateway.console.auth import KNOWN_COOKIE

    async def scenario() -> None:
        async with gateway(settings()) as gw:
            async with from_host(gw, "10.0.0.1") as operator:  # the proxy's address
                assert (await sign_in(operator)).status_code == 303
                known = operator.cookies[KNOWN_COOKIE]
                operator.cookies.delete(SESSION_COOKIE)
                async with from_host(gw, "10.0.0.1") as guesser:
                    guesses = [await sign_in(guesser, key=f"guess-{i:020d}") for i in range(11)]
                    # The operator's own sign-in spent one of the proxy address's ten.
                    assert [a.status_code for a in guesses] == [401] * 9 + [429] * 2
                    assert (await sign_in(guesser)).status_code == 429  # no key races in
                assert (await sign_in(operator)).status_code == 303
            # The operator's cookie, stolen, from address after address: one budget.
            answers = []
            for i in range(12):
                async with from_host(gw, f"192.0.2.{i + 1}") as thief:
                    thief.cookies.set(KNOWN_COOKIE, known, "gateway.local", "/console")
                    answers.append(await sign_in(thief, key=f"guess-{i:020d}"))
            assert [a.status_code for a in answers] == [401] * 9 + [429] * 3
            # Strangers from many addresses: 60 attempts together, then one a second.
            refused = 0
            for i in range(8):
                async with from_host(gw, f"198.51.100.{i + 1}") as stranger:
                    for j in range(10):
                        answer = await sign_in(stranger, key=f"guess-{i:02d}{j:018d}")
                        refused += answer.status_code == 429
            assert 15 <= refused <= 30, refused  # 50 of 60 left, and a few seconds' refill

    run(scenario())


def test_behind_trusted_proxies_the_limit_is_per_forwarded_client() -> None:
    """``GATEWAY_TRUSTED_PROXIES``: from a proxy listed there, the client is the
    nearest ``X-Forwarded-For`` hop not listed; what a client forges further left is never
    read, and from any other peer the header is not read at all."""

    async def attempts(client: httpx.AsyncClient, forwarded: str, n: int) -> list[int]:
        client.headers["X-Forwarded-For"] = forwarded
        return [(await sign_in(client, key=f"guess-{i:020d}")).status_code for i in range(n)]

    async def scenario() -> None:
        async with gateway(settings(trusted_proxies=("10.0.0.0/8",))) as gw:
            async with from_host(gw, "10.0.0.1") as proxy:
                assert await attempts(proxy, "198.51.100.7", 11) == [401] * 10 + [429]
                # The guesser forges hops; its proxy appends the address it saw, last.
                forged = [
                    (await attempts(proxy, f"203.0.113.{i}, 198.51.100.7, 10.0.0.2", 1))[0]
                    for i in range(3)
                ]
                assert forged == [429] * 3
                # Another operator behind the same proxy is not held off.
                assert await attempts(proxy, "198.51.100.8", 1) == [401]
                proxy.headers["X-Forwarded-For"] = "198.51.100.9"
                assert (await sign_in(proxy)).status_code == 303
            async with from_host(gw, "192.0.2.1") as direct:  # not a proxy: header unread
                assert await attempts(direct, "198.51.100.50", 11) == [401] * 10 + [429]
                assert await attempts(direct, "198.51.100.51", 1) == [429]

    run(scenario())


def test_only_the_console_writes_the_retry_outcome() -> None:
    """The outcome of a retry travels signed: a link cannot show an operator false words."""

    async def scenario() -> None:
        async with gateway(settings()) as gw:
            await signed_in(gw)
            forged = await gw.http.get(
                "/console/failures",
                params={"flash": '["x","carrier-error","call 555-0100 now"]', "detail": "call"},
            )
            assert forged.status_code == 200 and "555-0100" not in forged.text

    run(scenario())


def test_a_nul_in_a_search_a_page_key_or_an_aeui_is_no_match_on_postgresql(
    postgres_url: str,
) -> None:
    """PostgreSQL refuses a NUL in text: a console link with one was a 500."""

    async def scenario() -> None:
        async with gateway(settings(database_url=postgres_url)) as gw:
            assert (await gw.report(report("desk-1", EMPIRE_STATE, 0))).status_code == 200
            csrf = await signed_in(gw)
            page = await gw.http.get("/console/devices?q=a%00&after=%00")
            assert page.status_code == 200 and "desk-1" in page.text  # as without them
            for path in ("/console/locations?after=%00", "/console/map?after=%00"):
                assert (await gw.http.get(path)).status_code == 200, path
            assert (await gw.http.get("/console/devices/desk-1%00")).status_code == 404
            retry = await gw.http.post(
                "/console/failures/retry", data={"csrf": csrf, "aeui": "desk-1\x00"}
            )
            assert retry.status_code == 303
            outcome = await gw.http.get(retry.headers["location"])
            assert "there is no such device" in outcome.text

    run(scenario())


def test_without_a_store_the_pages_say_so() -> None:
    async def scenario() -> None:
        async with gateway(settings(database_url="none")) as gw:
            await signed_in(gw)
            for path in ("/console/devices", "/console/calls", "/console/failures"):
                page = await gw.http.get(path)
                assert page.status_code == 200 and "without a state store" in page.text
            overview = await gw.http.get("/console/")
            assert "process memory only" in overview.text

    run(scenario())


def test_the_map_draws_tiles_only_from_the_configured_server() -> None:
    tiles = "https://tiles.example.test/{z}/{x}/{y}.png"

    async def scenario() -> None:
        for tile_url in (None, tiles):
            async with gateway(settings(console_tile_url=tile_url)) as gw:
                fix = {"latitude": 40.74844, "longitude": -73.98566, "accuracyMeters": 7}
                answer = await gw.report(report("desk-1", EMPIRE_STATE, 0, geo=fix))
                assert answer.status_code == 200
                await signed_in(gw)
                page = await gw.http.get("/console/map")
                csp = page.headers["content-security-policy"]
                assert 'href="/console/devices/desk-1"' in page.text and "<circle" in page.text
                if tile_url is None:
                    assert "<image" not in page.text and "img-src 'self';" in csp
                else:
                    hrefs = re.findall(r'<image href="([^"]+)"', page.text)
                    assert hrefs and all(
                        re.fullmatch(r"https://tiles\.example\.test/\d+/\d+/\d+\.png", h)
                        for h in hrefs
                    )
                    assert "img-src 'self' https://tiles.example.test;" in csp

    run(scenario())
