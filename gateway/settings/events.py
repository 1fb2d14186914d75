"""Events: webhooks and Kari's Law email (``gateway.events``)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.datastructures import Secret

from gateway.settings.reader import SettingsError, one_of, setting, stripped_lower

#: ``GATEWAY_SMTP_TLS``: how the SMTP connection is secured.
SMTP_TLS_MODES = ("starttls", "tls", "none")
#: ``GATEWAY_EVENT_DELIVERY``: where deliveries are sent from.
DELIVERY_MODES = ("process", "inline")


def _check_emails(env: str, emails: tuple[str, ...]) -> None:
    for address in emails:
        if address.count("@") != 1 or any(ch.isspace() or ord(ch) < 32 for ch in address):
            raise SettingsError(f"{env}: {address!r} is not an email address")


def _lower_csv(value: str) -> str:
    return value.lower()


@dataclass(frozen=True)
class EventSettings:
    """SMTP, webhook hosts, delivery retries and stale-device events."""

    smtp_host: str | None = setting(
        "GATEWAY_SMTP_HOST",
        None,
        "SMTP server for the Kari's Law email of `emergency_call` and `test_call` events "
        "([Events](#events-webhooks-and-karis-law-email))",
        shown="— (no email)",
        clean=str.strip,
    )
    smtp_port: int = setting("GATEWAY_SMTP_PORT", 587, "its port", gt=0)
    smtp_tls: str = setting(
        "GATEWAY_SMTP_TLS",
        "starttls",
        "`starttls` (upgrade the connection; refused if the server cannot), `tls` (implicit TLS, "
        "usually port 465) or `none`",
        clean=stripped_lower,
        check=one_of(SMTP_TLS_MODES),
        blank_is_default=True,
    )
    smtp_username: str | None = setting(
        "GATEWAY_SMTP_USERNAME", None, "SMTP login, when the server wants one", clean=str.strip
    )
    smtp_password: Secret | None = setting(
        "GATEWAY_SMTP_PASSWORD", None, "its password (secret)", clean=str.strip
    )
    smtp_from: str = setting(
        "GATEWAY_SMTP_FROM",
        "dlr-gateway@localhost",
        "the emails' sender",
        clean=str.strip,
        blank_is_default=True,
    )
    notify_emails: tuple[str, ...] = setting(
        "GATEWAY_NOTIFY_EMAILS",
        (),
        "comma-separated addresses emailed when 911 or 933 is dialled",
        check=_check_emails,
    )
    notify_carrier_recipients: bool = setting(
        "GATEWAY_NOTIFY_CARRIER_RECIPIENTS",
        False,
        "also email, when 911 or 933 is dialled, the notification recipients the carrier holds "
        "(`/v1/notification-recipients`; re-read at most every 5 minutes)",
    )
    webhook_allowed_hosts: tuple[str, ...] = setting(
        "GATEWAY_WEBHOOK_ALLOWED_HOSTS",
        (),
        "comma-separated host names or addresses webhooks may be sent to; others are refused "
        "when subscribing (403) and at delivery. Loopback, link-local (cloud metadata), "
        "unspecified, multicast and other special-purpose addresses (shared `100.64.0.0/10`, "
        "benchmarking, documentation, 6to4, NAT64 of any but a public address) are refused "
        "unless listed here",
        shown="— (any public or private host)",
        clean=_lower_csv,
    )
    event_delivery: str = setting(
        "GATEWAY_EVENT_DELIVERY",
        "process",
        "`process`: deliveries are sent by a process the gateway starts, at a lower CPU "
        "priority, so that a call-time query never waits for one (with an in-memory database, "
        "which no other process can open: `inline`); `inline`: by the serving process "
        "([Events](#events-webhooks-and-karis-law-email))",
        clean=stripped_lower,
        check=one_of(DELIVERY_MODES),
        blank_is_default=True,
    )
    event_delivery_timeout: float = setting(
        "GATEWAY_EVENT_DELIVERY_TIMEOUT",
        10.0,
        "seconds one delivery attempt (a webhook POST; an email gets three times this) may take",
        gt=0,
    )
    event_retry_base: float = setting(
        "GATEWAY_EVENT_RETRY_BASE",
        5.0,
        "first retry delay of a failed delivery; it doubles per attempt (jittered to between "
        "half and all of it)",
        gt=0,
    )
    event_retry_max: float = setting(
        "GATEWAY_EVENT_RETRY_MAX", 3600.0, "the longest delay between two attempts", gt=0
    )
    event_delivery_max_age: float = setting(
        "GATEWAY_EVENT_DELIVERY_MAX_AGE",
        86_400.0,
        "how long after its event a delivery is attempted before it is `failed` (an admin may "
        "retry it)",
        gt=0,
    )
    device_stale_after: float = setting(
        "GATEWAY_DEVICE_STALE_AFTER",
        7 * 86_400.0,
        "a device whose newest report is older than this is `device_stale` (once per "
        "staleness); `0`: never",
        ge=0,
    )
    device_stale_check_interval: float = setting(
        "GATEWAY_DEVICE_STALE_CHECK_INTERVAL",
        300.0,
        "seconds between two looks for newly stale devices",
        gt=0,
    )
