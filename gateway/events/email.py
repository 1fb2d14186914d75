"""Kari's Law email: that 911 (or the 933 test number) was dialled, the callback number,
and the location the gateway answered the carrier with, sent over SMTP (aiosmtplib).

Every value written into the message is shown on one line (``shown``): the query's ``from``
and ``to`` are the carrier's as sent when they are not a number the gateway knows, and a
line break there would otherwise make the subject impossible to build (the email never sent)
or write lines of its own into the body.

The configured addresses (the operator's own) are named in ``To:``; the carrier's
notification recipients are not (``undisclosed-recipients:;``): they are the envelope's
recipients of one message, so none learns the others' addresses.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import aiosmtplib

from gateway.dlr.patterns import FORMAT_CHARACTERS, SURROGATES
from gateway.events.model import TEST_CALL

log = logging.getLogger("gateway.events")


class RecipientsRefused(Exception):
    """The SMTP server refused some of the recipients for now (4xx): the attempt failed."""


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int
    #: ``starttls`` (upgrade a plain connection), ``tls`` (implicit TLS) or ``none``.
    tls: str
    username: str | None
    password: str | None
    sender: str
    recipients: tuple[str, ...]
    timeout: float = 10.0
    #: Whether ``To:`` names the recipients; if not, they are only the envelope's.
    disclosed: bool = True


#: Characters never written into the message: C0 and C1 controls (line breaks included),
#: DEL, line and paragraph separators, invisible format characters (zero-width,
#: bidirectional controls, BOM), lone surrogates and the noncharacters U+FFFE/U+FFFF.
_UNSHOWN = re.compile(rf"[\x00-\x1f\x7f-\x9f{FORMAT_CHARACTERS}\ufffe\uffff{SURROGATES}]")
#: Characters of one value written at most.
MAX_SHOWN = 200


def shown(value: Any) -> str:
    """``value`` as one line of text: each unshown character a ``?``, at most ``MAX_SHOWN``."""
    text = _UNSHOWN.sub("?", str(value))
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 1] + "\u2026"


def _line(label: str, value: Any) -> str | None:
    return None if value in (None, "") else f"{label}: {shown(value)}"


def _sent(location: dict[str, Any]) -> str:
    """The location the PSAP was given, in words, even when the gateway has no address."""
    if location.get("addressText"):
        return str(location["addressText"])
    location_id = location.get("locationId")
    if location.get("default"):
        return f"the account's default location {location_id} (its address is the carrier's record)"
    if location_id:
        return (
            f"location {location_id} (its address is the carrier's record; "
            "the gateway did not find it)"
        )
    return "none known to the gateway (the carrier's records)"


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    days, minutes = divmod(minutes, 1440)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else "", f"{minutes} min"]
    return " ".join(p for p in parts if p)


def _stale(location: dict[str, Any]) -> str | None:
    """A stale answer said as such: the PSAP was sent where the device last said it was."""
    if not location.get("stale"):
        return None
    age = location.get("ageSeconds")
    when = "" if not isinstance(age, int | float) else f" {_duration(age)} before the call"
    return (
        f"Warning: this location is stale: the device last reported it{when}; "
        "the caller may no longer be there."
    )


#: ``To:`` of a message whose recipients do not see each other (RFC 5322's empty group).
UNDISCLOSED = "undisclosed-recipients:;"


def compose(
    event_body: str, sender: str, recipients: Sequence[str], *, disclosed: bool = True
) -> EmailMessage:
    """The message for an ``emergency_call`` or ``test_call`` event's JSON body; ``To:``
    names ``recipients`` only when ``disclosed``."""
    event = json.loads(event_body)
    data: dict[str, Any] = event["data"]
    test = event["type"] == TEST_CALL
    dialled = data.get("calledNumber") or ("933" if test else "911")
    callback = data.get("callbackNumber") or "unknown"
    location: dict[str, Any] = data.get("location") or {}
    device: dict[str, Any] = data.get("device") or {}
    what = "A 933 test call" if test else "A 911 emergency call"
    subject = f"{'Test call (933)' if test else '911 call'} from {shown(callback)}"
    coordinates = None
    if location.get("latitude") is not None and location.get("longitude") is not None:
        coordinates = f"{location['latitude']:.6f}, {location['longitude']:.6f}"
        if location.get("radiusMeters") is not None:
            coordinates += f" (within {location['radiusMeters']:.0f} m)"
    lines = [
        f"{what} was dialled ({shown(dialled)}) at {shown(event['timestamp'])}.",
        "",
        _line("Callback number", callback),
        _line("Caller name", device.get("callerName")),
        _line("Location sent to 911", _sent(location)),
        _stale(location),
        _line("Coordinates", coordinates),
        _line("Location ID", location.get("locationId")),
        _line("Location reported at", location.get("observedAt")),
        _line("Location age (seconds)", location.get("ageSeconds")),
        _line("Device", device.get("aeui")),
        "",
        f"Event {shown(event['id'])}.",
    ]
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = ", ".join(recipients) if disclosed else UNDISCLOSED
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain="dlr-gateway")
    # The receiver's thread and any deduplication key on the event's stable id.
    message["X-Event-Id"] = shown(event["id"])
    message.set_content("\n".join(line for line in lines if line is not None) + "\n")
    return message


async def send(config: SmtpConfig, event_body: str) -> None:
    """Send one event's message, one SMTP transaction to all its recipients; raises on any
    SMTP failure (the worker retries), a recipient refused for now (4xx: greylisting, a full
    mailbox) included, though the others took it. A recipient refused for good (5xx) is
    logged, and does not hold back the others' message."""
    message = compose(event_body, config.sender, config.recipients, disclosed=config.disclosed)
    refused, _ = await aiosmtplib.send(
        message,
        recipients=config.recipients,
        hostname=config.host,
        port=config.port,
        username=config.username,
        password=config.password,
        use_tls=config.tls == "tls",
        start_tls=config.tls == "starttls",
        timeout=config.timeout,
    )
    if not refused:
        return
    codes = sorted({answer.code for answer in refused.values()})
    if any(code < 500 for code in codes):
        raise RecipientsRefused(
            f"the SMTP server refused {len(refused)} of {len(config.recipients)} recipients "
            f"for now ({', '.join(map(str, codes))}); all are sent it again"
        )
    log.error(
        "the SMTP server refused recipients of a Kari's Law email for good",
        extra={"recipients": sorted(refused), "codes": codes},
    )
