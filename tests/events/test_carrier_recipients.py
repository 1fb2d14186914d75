"""Kari's Law email to the carrier's notification recipients: a real gateway and store, the
simulator as the carrier, a local SMTP sink (aiosmtpd on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from starlette.datastructures import Secret

from gateway.events import email as mail
from gateway.events.calls import call_event
from gateway.events.recipients import MAX_RECIPIENTS, plain_addresses
from tests.api.test_emergency_query import PASSWORD, PATH, USER, fresh_report
from tests.events.test_delivery import until
from tests.events.test_email_and_stale import Sink, smtp_sink
from tests.harness import WHITE_HOUSE, Gateway, gateway, gateway_settings

PHONE = "+12025550143"
RECIPIENTS = [
    {"id": "NR-SEC", "emailAddress": "security@example.org", "description": "Security"},
    {"id": "NR-SMS", "phoneNumber": "+12025550199", "description": "Texts only"},
    {"id": "NR-OPS", "emailAddress": "ops@example.org", "description": "Operations"},
]


@pytest.fixture
def sink() -> Iterator[tuple[Sink, int]]:
    with smtp_sink() as (found, config):
        yield found, config.port


class CarrierDown(httpx.AsyncBaseTransport):
    """Answers 503 to the recipients' list while ``down``; everything else goes through."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.down = False
        self.lists = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path.endswith("/notificationRecipients"):
            self.lists += 1
            if self.down:
                return httpx.Response(503, content=b"")
        return await self.inner.handle_async_request(request)


def _settings(port: int, **changes: Any) -> Any:
    base: dict[str, Any] = {
        "emergency_query_username": USER,
        "emergency_query_password": Secret(PASSWORD),
        "event_retry_base": 0.05,
        "event_retry_max": 0.2,
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_tls": "none",
        "smtp_from": "dlr@example.org",
        "notify_carrier_recipients": True,
    }
    return gateway_settings(**(base | changes))


async def _call(gw: Gateway) -> None:
    pair = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    answer = await gw.http.get(
        PATH, params={"to": "911", "from": PHONE}, headers={"Authorization": f"Basic {pair}"}
    )
    assert answer.status_code == 200, answer.text
    await gw.app.state.events.emitter.idle()


async def _deliveries(gw: Gateway) -> dict[str, dict[str, Any]]:
    page = (await gw.http.get("/v1/events", params={"type": "emergency_call"})).json()
    (event,) = page["events"]
    return {d["target"]: d for d in event["deliveries"]}


async def _prepare(gw: Gateway) -> None:
    for recipient in RECIPIENTS:
        made = await gw.http.post("/v1/notification-recipients", json=recipient)
        assert made.status_code == 201, made.text
    assert (await gw.report(fresh_report("desk-1", WHITE_HOUSE, phone=PHONE))).status_code == 200


def test_a_911_call_is_emailed_to_the_carriers_recipients_and_the_configured_ones(
    sink: tuple[Sink, int],
) -> None:
    messages, port = sink
    wrapped: list[CarrierDown] = []

    def wrap(inner: httpx.AsyncBaseTransport) -> httpx.AsyncBaseTransport:
        wrapped.append(CarrierDown(inner))
        return wrapped[0]

    async def main() -> None:
        settings = _settings(port, notify_emails=("desk@example.org",))
        async with gateway(settings, wrap=wrap) as gw:
            await _prepare(gw)
            await _call(gw)
            await until(lambda: len(messages.messages) == 2)
            by_rcpt = {tuple(rcpt): message for _, rcpt, message in messages.messages}
            # The carrier's recipients with an email address, in its order; the one that
            # only takes texts is not emailed.
            assert set(by_rcpt) == {
                ("desk@example.org",),
                ("security@example.org", "ops@example.org"),
            }
            carrier = by_rcpt[("security@example.org", "ops@example.org")]
            assert carrier["Subject"] == f"911 call from {PHONE}"
            # One message to both, as the envelope's recipients: neither's address is in its
            # headers, so neither learns the other's (they were both in "To:").
            assert carrier["To"] == mail.UNDISCLOSED
            headers = "".join(f"{k}: {v}\n" for k, v in carrier.items())
            assert "security@example.org" not in headers, headers
            assert "ops@example.org" not in headers, headers
            # The configured addresses are the operator's own: still named.
            assert by_rcpt[("desk@example.org",)]["To"] == "desk@example.org"
            assert "1600 PENNSYLVANIA AVE NW" in carrier.get_content()

            async def recorded() -> bool:
                found = await _deliveries(gw)
                return all(d["state"] == "delivered" for d in found.values())

            await until(recorded)  # the outcome is written after the message is sent
            deliveries = await _deliveries(gw)
            assert {t: d["channel"] for t, d in deliveries.items()} == {
                "email": "email",
                "email:carrier": "email",
            }
            # A second call within the five minutes reuses the list: one read in all.
            await _call(gw)
            await until(lambda: len(messages.messages) == 4)
            assert wrapped[0].lists == 1

    asyncio.run(main())


def test_a_carrier_that_cannot_list_its_recipients_delays_only_their_email(
    sink: tuple[Sink, int],
) -> None:
    messages, port = sink
    carrier: list[CarrierDown] = []

    def wrap(inner: httpx.AsyncBaseTransport) -> httpx.AsyncBaseTransport:
        carrier.append(CarrierDown(inner))
        return carrier[0]

    async def main() -> None:
        settings = _settings(port, notify_emails=("desk@example.org",))
        async with gateway(settings, wrap=wrap) as gw:
            await _prepare(gw)
            carrier[0].down = True
            await _call(gw)
            # The configured address is emailed at once; the carrier's recipients wait.
            await until(lambda: len(messages.messages) == 1)
            assert messages.messages[0][1] == ["desk@example.org"]

            async def retried() -> bool:
                d = (await _deliveries(gw))["email:carrier"]
                return bool(d["state"] == "pending" and d["attempts"] >= 2)

            await until(retried)
            pending = (await _deliveries(gw))["email:carrier"]
            assert "could not be read" in pending["lastError"]
            carrier[0].down = False
            await until(lambda: len(messages.messages) == 2)
            assert messages.messages[1][1] == ["security@example.org", "ops@example.org"]

            async def delivered() -> bool:
                return bool((await _deliveries(gw))["email:carrier"]["state"] == "delivered")

            await until(delivered)

    asyncio.run(main())


def test_a_carrier_holding_no_email_recipient_is_a_failed_attempt_not_a_delivery(
    sink: tuple[Sink, int],
) -> None:
    messages, port = sink

    async def main() -> None:
        async with gateway(_settings(port)) as gw:
            report = fresh_report("desk-1", WHITE_HOUSE, phone=PHONE)
            assert (await gw.report(report)).status_code == 200
            await _call(gw)

            async def attempted() -> bool:
                return bool((await _deliveries(gw))["email:carrier"]["attempts"] >= 1)

            await until(attempted)
            found = await _deliveries(gw)
            # Only the carrier's target: no addresses are configured.
            assert set(found) == {"email:carrier"}
            assert found["email:carrier"]["state"] == "pending"
            assert (
                "no notification recipient with an email address"
                in (found["email:carrier"]["lastError"])
            )
            assert messages.messages == []

    asyncio.run(main())


def test_only_plain_addresses_from_the_carrier_are_kept() -> None:
    hostile = [
        "a@example.org",
        " a@example.org ",  # the same address once
        None,
        "",
        "no-at-sign",
        "two@@example.org",
        "@example.org",
        "x@",
        "evil@example.org\r\nBcc: all@example.org",
        "b@example.org, c@example.org",
        "<d@example.org>",
        "e" * 250 + "@example.org",
        "f@example.org",
    ]
    assert plain_addresses(hostile) == ("a@example.org", "f@example.org")
    many = [f"user{i}@example.org" for i in range(MAX_RECIPIENTS * 3)]
    assert len(plain_addresses(many)) == MAX_RECIPIENTS


def test_an_address_a_server_may_refuse_whole_is_not_kept(sink: tuple[Sink, int]) -> None:
    """One carrier address with DEL, a C1 control or a non-ASCII character once failed the
    email to every carrier recipient, on every attempt (aiosmtplib refuses the control
    characters; a server without SMTPUTF8 refuses the whole message): kept are the plain
    ASCII ``local@domain`` addresses only."""
    odd = [
        "del\x7f@example.org",
        "c1\x85x@example.org",
        "c1\x80x@example.org",
        "b\u00f6@example.org",
        "a@b\u00fccher.example",
        "\u200b@example.org",
        "group:g@example.org",
        "h(comment)@example.org",
        "i@[127.0.0.1]",
        "j\\@example.org",
        "k..l@example.org",
        ".m@example.org",
        "n@-example.org",
        "o@example..org",
    ]
    plain = ["ok@example.org", "first.last+tag@mail.example-1.org", "o'neil@example.org"]
    assert plain_addresses([*odd, *plain]) == tuple(plain)
    messages, port = sink
    event = call_event(
        queried_at=datetime.now(UTC),
        callback_number=PHONE,
        called_number="911",
        binding=None,
        answer="not_found",
    )
    config = mail.SmtpConfig(
        host="127.0.0.1",
        port=port,
        tls="none",
        username=None,
        password=None,
        sender="dlr@example.org",
        recipients=plain_addresses([*odd, *plain]),
    )
    asyncio.run(mail.send(config, event.body()))
    ((_, recipients, _),) = messages.messages
    assert recipients == plain
