"""Kari's Law email through a local SMTP sink (aiosmtpd on 127.0.0.1); stale devices found
with an injected clock."""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from gateway.dlr.binding import Binding, address_from_json
from gateway.events import email as mail
from gateway.events.calls import call_event
from gateway.events.delivery import DeliveryWorker, MetricsReport
from gateway.events.emitter import Emitter
from gateway.events.model import DEVICE_STALE, Event
from gateway.events.stale import StaleDevices
from gateway.metrics import Metrics
from gateway.store import open_store
from gateway.store.deliveries import EMAIL_TARGET
from gateway.store.outbox import OutboxStore
from gateway.store.sql import SqlStateStore
from tests.harness import WHITE_HOUSE_ADDRESS
from tests.procs import free_port
from tests.store.helpers import binding

NOW = datetime(2026, 12, 5, 14, 0, tzinfo=UTC)


class Sink:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 OK"


@contextmanager
def smtp_sink(*recipients: str) -> Iterator[tuple[Sink, mail.SmtpConfig]]:
    """A local SMTP sink on 127.0.0.1, and the settings that send to it."""
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    config = mail.SmtpConfig(
        host="127.0.0.1",
        port=controller.port,
        tls="none",
        username=None,
        password=None,
        sender="dlr@example.org",
        recipients=recipients,
    )
    try:
        yield sink, config
    finally:
        controller.stop()


def _binding() -> Binding:
    return Binding(
        aeui="desk-phone-7",
        carrier_endpoint_id="EP7",
        location_id="LOC-WH",
        address=address_from_json(WHITE_HOUSE_ADDRESS),
        caller_name="Front Desk",
        telephone_number="+12025550123",
        observed_at=datetime(2026, 12, 5, 13, 50, tzinfo=UTC),
        latitude=38.8977,
        longitude=-77.0365,
        coordinates_source="gps",
        accuracy_meters=12.0,
        confirmed=True,
    )


def test_the_email_says_911_was_dialled_with_the_callback_number_and_the_location(
    tmp_path: Path,
) -> None:
    metrics = Metrics()

    async def main() -> str:
        store = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}", create=True)
        assert isinstance(store, SqlStateStore)
        async with store:
            outbox = OutboxStore(store)
            emitter = Emitter(outbox, metrics, email=(EMAIL_TARGET,))
            emitter.start()
            event = call_event(
                queried_at=NOW,
                callback_number="+12025550123",
                called_number="911",
                binding=_binding(),
                age_seconds=600.0,
                devices_on_number=1,
                answer="device",
            )
            emitter.emit(event)
            await emitter.aclose()
            worker = DeliveryWorker(outbox, MetricsReport(metrics), "r", smtp=config, timeout=5.0)
            assert await worker.run_once() == 1
            assert await outbox.backlog() == (0, None)
            await worker.aclose()
            return event.id

    with smtp_sink("security@example.org", "desk@example.org") as (sink, config):
        event_id = asyncio.run(main())
    ((sender, recipients, message),) = sink.messages
    assert sender == "dlr@example.org"
    assert recipients == ["security@example.org", "desk@example.org"]
    assert message["Subject"] == "911 call from +12025550123"
    assert message["X-Event-Id"] == event_id
    text = message.get_content()
    assert "A 911 emergency call was dialled (911) at 2026-12-05T14:00:00Z." in text
    assert "Callback number: +12025550123" in text
    assert "Caller name: Front Desk" in text
    assert "Location sent to 911: 1600 PENNSYLVANIA AVE NW, WASHINGTON, DC 20500" in text
    assert "Coordinates: 38.897700, -77.036500 (within 12 m)" in text
    assert "Device: desk-phone-7" in text


def _unknown_caller(callback_number: str = "+12025550123", called_number: str = "911") -> Event:
    """The event of a call from a number no device has (the carrier routes it itself)."""
    return call_event(
        queried_at=NOW,
        callback_number=callback_number,
        called_number=called_number,
        binding=None,
        answer="not_found",
    )


def test_a_933_call_is_a_test_call_and_says_so() -> None:
    event = _unknown_caller(called_number="+1933")
    assert event.type == "test_call"
    message = mail.compose(event.body(), "dlr@example.org", ["a@example.org"])
    assert message["Subject"] == "Test call (933) from +12025550123"
    text = message.get_content()
    assert "A 933 test call was dialled (+1933)" in text
    assert "none known to the gateway" in text


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_device_goes_stale_once_per_staleness_by_the_injected_clock(tmp_path: Path) -> None:
    async def main() -> None:
        store = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}", create=True)
        assert isinstance(store, SqlStateStore)
        async with store:
            outbox = OutboxStore(store)
            claim = await store.claim(binding("quiet-1", observed=0), credential="device")
            await store.claim(binding("quiet-2", observed=0), credential="device")
            heard = claim.current.heard_at
            assert heard is not None
            clock = Clock(heard.timestamp() + 3599)
            stale = StaleDevices(outbox, stale_after=3600, clock=clock)
            assert await stale.check() == []  # an hour less a second: not yet
            clock.now += 2
            found = await stale.check()
            assert sorted(e.data["aeui"] for e in found) == ["quiet-1", "quiet-2"]
            assert {e.type for e in found} == {DEVICE_STALE}
            assert found[0].data["staleAfterSeconds"] == 3600
            assert found[0].data["ageSeconds"] == 3601
            clock.now += 86_400
            assert await stale.check() == []  # once per staleness, however long it lasts
            # quiet-1 is heard from again, then goes quiet for another hour: a new event.
            again = await store.claim(binding("quiet-1", observed=10), credential="device")
            assert again.current.heard_at is not None
            clock.now = again.current.heard_at.timestamp() + 3601
            (renewed,) = await stale.check()
            assert renewed.data["aeui"] == "quiet-1" and renewed.id != found[0].id
            page = await outbox.page(limit=10, type=DEVICE_STALE)
            assert len(page) == 3

    asyncio.run(main())


def test_a_line_break_or_control_character_in_the_carriers_numbers_neither_forges_nor_blocks(
    tmp_path: Path,
) -> None:
    """The query's ``from`` and ``to`` are the carrier's, kept as sent (up to 64 characters)
    when they are not a callback number: a line break once made the message impossible to
    build (the subject holds the callback number), so the email was never sent, and in the
    body it wrote lines of its own."""
    event = _unknown_caller(
        "+1202\r\nBcc: all@example.org\x00\u202e", "911\nLocation sent to 911: 1 Fake St"
    )
    with smtp_sink("security@example.org") as (sink, config):
        asyncio.run(mail.send(config, event.body()))
    ((_, recipients, message),) = sink.messages
    assert recipients == ["security@example.org"]
    assert message["Bcc"] is None
    assert message["Subject"] == "911 call from +1202??Bcc: all@example.org??"
    text = message.get_content()
    assert "Callback number: +1202??Bcc: all@example.org??" in text.splitlines()
    assert "dialled (911?Location sent to 911: 1 Fake St)" in text
    assert [line for line in text.splitlines() if line.startswith("Location sent")] == [
        "Location sent to 911: none known to the gateway (the carrier's records)"
    ]


def test_undisclosed_recipients_are_each_in_the_envelope_and_none_in_the_headers() -> None:
    """The carrier's notification recipients were all written into ``To:``, so each learned
    the others' addresses; they are now only the envelope's recipients of one message."""
    event = _unknown_caller()
    everyone = ("security@example.org", "ops@example.net", "landlord@example.com")
    with smtp_sink(*everyone) as (sink, config):
        asyncio.run(mail.send(dataclasses.replace(config, disclosed=False), event.body()))
    ((sender, recipients, message),) = sink.messages
    assert (sender, recipients) == ("dlr@example.org", list(everyone))
    assert message["To"] == "undisclosed-recipients:;"
    assert message["Cc"] is None and message["Bcc"] is None
    headers = "".join(f"{name}: {value}\n" for name, value in message.items())
    assert not [address for address in everyone if address in headers], headers


def _location_lines(**facts: Any) -> list[str]:
    event = call_event(queried_at=NOW, callback_number="+12025550123", called_number="911", **facts)
    text = mail.compose(event.body(), "dlr@example.org", ["a@example.org"]).get_content()
    return [line for line in text.splitlines() if line.startswith(("Location sent", "Warning"))]


def test_the_email_says_which_location_went_to_911_when_it_has_no_street_address() -> None:
    """The account's default location, or a device's location whose street address the
    gateway did not find, once read "none known to the gateway (the carrier's records)", as
    if the carrier had routed on its own records; and a stale location read as any other."""
    assert _location_lines(binding=None, answer="default", default_location_id="HQ1") == [
        "Location sent to 911: the account's default location HQ1 (its address is the "
        "carrier's record)"
    ]
    no_address = dataclasses.replace(_binding(), address=None)
    assert _location_lines(binding=no_address, age_seconds=20.0, answer="device") == [
        "Location sent to 911: location LOC-WH (its address is the carrier's record; the "
        "gateway did not find it)"
    ]
    assert _location_lines(binding=None, answer="not_found") == [
        "Location sent to 911: none known to the gateway (the carrier's records)"
    ]
    assert _location_lines(
        binding=_binding(), age_seconds=90_061.0, stale=True, answer="device"
    ) == [
        "Location sent to 911: 1600 PENNSYLVANIA AVE NW, WASHINGTON, DC 20500",
        "Warning: this location is stale: the device last reported it 1 d 1 h 1 min before "
        "the call; the caller may no longer be there.",
    ]


class Refusing(Sink):
    """A sink whose server refuses some recipients with the codes given (greylisting's 450,
    a mailbox unknown's 550)."""

    def __init__(self, refused: dict[str, int]) -> None:
        super().__init__()
        self.refused = refused

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        code = self.refused.get(address)
        if code is not None:
            return f"{code} not now" if code < 500 else f"{code} no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"


def test_a_recipient_refused_for_now_fails_the_attempt_rather_than_counting_as_sent() -> None:
    """aiosmtplib raises only when every recipient is refused: one address of several
    refused for now (greylisting, a full mailbox: 4xx) was taken as sent, so that recipient
    never got the 911 call's email while the delivery said ``delivered``. Such an attempt
    now fails (retried: the others may get the message twice, under the same
    ``X-Event-Id``); a recipient refused for good (5xx) does not hold back the others'."""
    everyone = ("security@example.org", "desk@example.org")
    sink = Refusing({"desk@example.org": 450})
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        config = mail.SmtpConfig(
            "127.0.0.1", controller.port, "none", None, None, "dlr@example.org", everyone
        )
        body = _unknown_caller().body()
        with pytest.raises(mail.RecipientsRefused, match=r"1 of 2 recipients.*450"):
            asyncio.run(mail.send(config, body))
        sink.refused = {"desk@example.org": 550}
        asyncio.run(mail.send(config, body))  # the others' email is not held back for ever
        sink.refused = {}
        asyncio.run(mail.send(config, body))
    finally:
        controller.stop()
    assert [recipients for _, recipients, _ in sink.messages] == [
        ["security@example.org"],
        ["security@example.org"],
        list(everyone),
    ]
