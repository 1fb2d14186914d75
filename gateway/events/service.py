"""Everything events need at run time, built from the settings and the state store's engine."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.concurrency import cancel
from gateway.events.calls import with_addresses
from gateway.events.delivery import Backoff, DeliveryReport, DeliveryWorker, MetricsReport
from gateway.events.email import SmtpConfig
from gateway.events.emitter import Emitter, Wake
from gateway.events.process import DeliveryProcess
from gateway.events.recipients import CarrierRecipients, ListsRecipients
from gateway.events.stale import StaleDevices
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.store.deliveries import CARRIER_EMAIL_TARGET, EMAIL_TARGET
from gateway.store.outbox import OutboxStore
from gateway.store.sql import SqlStateStore
from gateway.store.urls import is_memory

log = logging.getLogger(__name__)

#: How long a rotated-out webhook secret still signs deliveries, seconds.
SECRET_OVERLAP = 86_400.0
#: Seconds between two purges of the events past their retention.
PURGE_EVERY = 3600.0


def email_targets(settings: Settings) -> tuple[str, ...]:
    """Where emergency and test calls are emailed: the configured addresses, the carrier's
    notification recipients, both or neither (without an SMTP server, neither)."""
    if not settings.smtp_host:
        return ()
    return (
        *((EMAIL_TARGET,) if settings.notify_emails else ()),
        *((CARRIER_EMAIL_TARGET,) if settings.notify_carrier_recipients else ()),
    )


def smtp_config(settings: Settings) -> SmtpConfig | None:
    if not email_targets(settings):
        return None
    assert settings.smtp_host is not None
    return SmtpConfig(
        host=settings.smtp_host,
        port=settings.smtp_port,
        tls=settings.smtp_tls,
        username=settings.smtp_username,
        password=str(settings.smtp_password) if settings.smtp_password else None,
        sender=settings.smtp_from,
        recipients=settings.notify_emails,
        timeout=settings.event_delivery_timeout,
    )


def delivery_worker(
    settings: Settings,
    outbox: OutboxStore,
    report: DeliveryReport,
    owner: str,
    *,
    carrier: ListsRecipients | None = None,
    gauges: bool = True,
) -> DeliveryWorker:
    """The worker the settings describe; ``carrier`` is read for its notification recipients'
    addresses when ``GATEWAY_NOTIFY_CARRIER_RECIPIENTS`` is on."""
    return DeliveryWorker(
        outbox,
        report,
        owner,
        smtp=smtp_config(settings),
        allowed_hosts=settings.webhook_allowed_hosts,
        backoff=Backoff(settings.event_retry_base, settings.event_retry_max),
        timeout=settings.event_delivery_timeout,
        carrier_recipients=(
            CarrierRecipients(
                carrier,
                timeout=settings.event_delivery_timeout,
                retry_failed=settings.event_retry_base,
            )
            if carrier is not None and CARRIER_EMAIL_TARGET in email_targets(settings)
            else None
        ),
        gauges=gauges,
    )


@dataclass
class Events:
    """The emitter, and what delivers: a worker in this process or a process of its own."""

    outbox: OutboxStore
    emitter: Emitter
    worker: DeliveryWorker | DeliveryProcess
    stale: StaleDevices | None
    stale_interval: float
    #: Seconds an event is kept once none of its deliveries is pending.
    retention: float
    clock: Callable[[], float] = time.time
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        settings: Settings,
        store: SqlStateStore,
        metrics: Metrics,
        owner: str,
        *,
        carrier: ListsRecipients | None = None,
    ) -> Events:
        """``carrier`` is read for its notification recipients' addresses when
        ``GATEWAY_NOTIFY_CARRIER_RECIPIENTS`` is on (by the worker in this process)."""
        outbox = OutboxStore(store, max_age=settings.event_delivery_max_age)
        worker: DeliveryWorker | DeliveryProcess
        wake: Wake
        if settings.event_delivery == "process" and not is_memory(store.url):
            url = store.url.render_as_string(hide_password=False)
            worker = wake = DeliveryProcess(settings, url, owner, MetricsReport(metrics), outbox)
        else:
            worker = delivery_worker(
                settings, outbox, MetricsReport(metrics), owner, carrier=carrier
            )
            wake = worker.wake
        emitter = Emitter(
            outbox,
            metrics,
            email=email_targets(settings),
            prepare=with_addresses,
            on_written=wake,
        )
        stale = (
            StaleDevices(outbox, stale_after=settings.device_stale_after)
            if settings.device_stale_after > 0
            else None
        )
        retention = settings.history_retention_days * 86_400.0
        return cls(outbox, emitter, worker, stale, settings.device_stale_check_interval, retention)

    def wake(self) -> None:
        """Deliver what is due now rather than at the next poll."""
        if isinstance(self.worker, DeliveryProcess):
            self.worker.set()
        else:
            self.worker.wake.set()

    def start(self) -> None:
        self.emitter.start()
        self.worker.start()
        self._tasks.append(asyncio.get_running_loop().create_task(self._purge(), name="purge"))
        if self.stale is not None:
            self._tasks.append(
                asyncio.get_running_loop().create_task(
                    self.stale.run(self.stale_interval), name="stale-devices"
                )
            )

    async def _purge(self) -> None:
        """Events past ``retention`` with their deliveries ended, hourly: devices drive
        events (a contradicting fix on every report), so the outbox must not keep them all."""
        while True:
            try:
                await self.outbox.purge(self.clock() - self.retention)
            except Exception as exc:  # the store down for a while: the next hour's purge
                log.warning("events: the purge failed: %s", type(exc).__name__)
            await asyncio.sleep(PURGE_EVERY)

    async def aclose(self) -> None:
        """Write what was emitted, then stop (undelivered events wait in the outbox)."""
        for task in self._tasks:
            await cancel(task)
        await self.emitter.aclose()
        await self.worker.aclose()
