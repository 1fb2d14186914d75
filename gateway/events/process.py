"""Deliveries sent by a process of their own (``GATEWAY_EVENT_DELIVERY=process``), so that
no webhook or email shares the event loop that answers the carrier's call-time query: the
same ``DeliveryWorker`` in a child the serving process starts, wakes through a pipe and
takes the outcomes back from (docs/architecture.md, "Events, and the process that delivers
them")."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import pickle
import signal
import struct
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, ClassVar

from gateway.concurrency import cancel
from gateway.events.delivery import GAUGE_INTERVAL, DeliveryReport
from gateway.settings import Settings
from gateway.store.outbox import OutboxStore

log = logging.getLogger("gateway.events")

#: The command that runs the child.
CHILD = (sys.executable, "-m", "gateway.events.process")
#: The child's CPU priority: the idle scheduling class, so that a query's process, woken
#: while the child runs, has the CPU at once (a nice-19 task keeps it to the end of its
#: slice); the lowest nice value where that class cannot be had. Under a CPU that is busy
#: throughout, deliveries wait for it (they are sent when it frees; docs/benchmarks.md).
NICENESS = 19
_HEADER = struct.Struct("!Q")


@dataclass(eq=False)
class DeliveryProcess:
    """Starts the child once there is something to deliver (the first ``set``, or a backlog
    found at start), keeps one running from then on, and wakes it (``set``) when there is work.

    A child that dies is started again after ``restart_delays[n]`` seconds, ``n`` counting
    the children that died in a row (one that ran ``HEALTHY_RUN`` seconds resets it); when
    the gateway stops, the child has ``stop_timeout`` seconds to exit before it is killed.
    """

    #: A child that ran this long before dying starts over at the first delay.
    HEALTHY_RUN: ClassVar[float] = 60.0
    #: The longest line the child writes (a label set's worth); a longer one ends it.
    LINE_LIMIT: ClassVar[int] = 4096
    #: The most outcomes one line may count (a batch has far fewer).
    MAX_COUNT: ClassVar[int] = 10_000

    settings: Settings
    #: The state store's URL (the settings may leave it to ``GATEWAY_DATA_DIR``).
    database_url: str
    owner: str
    report: DeliveryReport
    #: Read here for the backlog's gauges, every ``GAUGE_INTERVAL`` seconds: a child that
    #: cannot run leaves deliveries waiting, and the gauges (and their alert) must say so.
    outbox: OutboxStore
    command: tuple[str, ...] = CHILD
    restart_delays: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
    stop_timeout: float = 5.0
    #: How many children were started (the first included).
    starts: int = field(default=0, init=False)
    _child: asyncio.subprocess.Process | None = field(default=None, init=False)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list, init=False)
    _closing: bool = field(default=False, init=False)
    #: Set by the first wake or a backlog: a gateway with nothing to deliver starts no child.
    _wanted: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    @property
    def pid(self) -> int | None:
        """The running child's process id."""
        child = self._child
        return child.pid if child is not None and child.returncode is None else None

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self.run(), name="delivery-process"),
            loop.create_task(self._gauge(), name="outbox-gauges"),
        ]

    async def _gauge(self) -> None:
        while True:
            try:
                depth, oldest = await self.outbox.backlog()
            except Exception as exc:
                log.warning("outbox backlog not read", extra={"error": type(exc).__name__})
            else:
                self.report.backlog(depth, oldest or 0.0)
                if depth:
                    self._wanted.set()
            await asyncio.sleep(GAUGE_INTERVAL)

    def set(self) -> None:
        """Deliver what is due now (the child's ``wake``), not at its next poll."""
        self._wanted.set()
        child = self._child
        pipe = None if child is None else child.stdin
        if pipe is None or pipe.is_closing():
            return
        # A byte per batch of events: a child that reads none has enough of them already.
        if pipe.transport.get_write_buffer_size() < 64:
            pipe.write(b"w")

    async def run(self) -> None:
        await self._wanted.wait()
        failures = 0
        while not self._closing:
            started = time.monotonic()
            try:
                status = await self._run_child()
            except Exception as exc:  # cannot start one: try again later
                status = None
                log.error("delivery process not started", extra={"error": repr(exc)})
            if self._closing:
                return
            if time.monotonic() - started > self.HEALTHY_RUN:
                failures = 0
            delay = self.restart_delays[min(failures, len(self.restart_delays) - 1)]
            failures += 1
            log.error(
                "delivery process exited; starting another",
                extra={"exit_status": status, "restart_in_s": delay},
            )
            await asyncio.sleep(delay)

    async def _run_child(self) -> int:
        child = await asyncio.create_subprocess_exec(
            *self.command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=self.LINE_LIMIT,
        )
        self._child = child
        self.starts += 1
        assert child.stdin is not None and child.stdout is not None
        try:
            header = pickle.dumps((self.settings, self.database_url, self.owner))
            child.stdin.write(_HEADER.pack(len(header)) + header)
            with contextlib.suppress(ConnectionError):
                await child.stdin.drain()
            while line := await child.stdout.readline():
                self._apply(line)
        except ValueError:  # a line over the limit: not our child's
            log.error("delivery process wrote an unreadable line; stopping it")
        finally:
            if child.returncode is None and not self._closing:
                child.kill()
            status = await child.wait()
        return status

    def _apply(self, line: bytes) -> None:
        try:
            kind, values = json.loads(line)
            if kind == "counted":
                event_type, channel, result, count = values
                if type(count) is not int or not 0 < count <= self.MAX_COUNT:
                    raise ValueError(count)
                self.report.counted(str(event_type), str(channel), str(result), count)
        except (ValueError, TypeError):
            log.warning("delivery process wrote an unreadable line")

    async def aclose(self) -> None:
        """Close the child's pipe and wait for it to stop (then kill it)."""
        self._closing = True
        child = self._child
        if child is not None and child.returncode is None:
            assert child.stdin is not None
            child.stdin.close()
            try:
                async with asyncio.timeout(self.stop_timeout):
                    await child.wait()
            except TimeoutError:
                child.kill()
                await child.wait()
        for task in self._tasks:
            await cancel(task)


@dataclass(eq=False)
class PipeReport:
    """The child's figures, as JSON lines to the serving process: one line a label set
    with its count, for the outcomes counted in one turn of the event loop (a batch's)."""

    out: IO[bytes]
    _pending: Counter[tuple[str, str, str]] = field(default_factory=Counter, init=False)

    def counted(self, event_type: str, channel: str, result: str, count: int = 1) -> None:
        if not self._pending:
            asyncio.get_running_loop().call_soon(self.flush)
        self._pending[event_type, channel, result] += count

    def backlog(self, depth: int, oldest: float) -> None:
        """Not sent: the serving process reads the backlog itself."""

    def flush(self) -> None:
        lines = b"".join(
            json.dumps(["counted", [*labels, count]]).encode() + b"\n"
            for labels, count in self._pending.items()
        )
        self._pending.clear()
        self.out.write(lines)
        self.out.flush()


def _read_exactly(fd: int, size: int) -> bytes:
    chunks: list[bytes] = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            raise EOFError("the serving process closed the pipe")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _read_header(fd: int) -> tuple[Settings, str, str]:
    (size,) = _HEADER.unpack(_read_exactly(fd, _HEADER.size))
    settings, url, owner = pickle.loads(_read_exactly(fd, size))  # noqa: S301 - the parent's
    if not (isinstance(settings, Settings) and isinstance(url, str) and isinstance(owner, str)):
        raise TypeError("not a delivery process header")
    return settings, url, owner


@contextlib.contextmanager
def _protocol_out() -> Iterator[IO[bytes]]:
    """The pipe to the parent, moved off fd 1 so that nothing printed can reach it."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    try:
        yield out
    finally:
        out.close()


async def _deliver(settings: Settings, url: str, owner: str, report: DeliveryReport) -> None:
    from gateway.bandwidth.upstreams import carrier_client
    from gateway.events.service import delivery_worker, email_targets
    from gateway.store import open_store
    from gateway.store.deliveries import CARRIER_EMAIL_TARGET

    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    async with contextlib.AsyncExitStack() as stack:
        # One worker's statements run one at a time: a small pool, not the server's.
        store = await open_store(
            url, pool_size=2, max_batch=settings.store_max_batch, linger=settings.store_linger
        )
        stack.push_async_callback(store.close)
        carrier = None
        if CARRIER_EMAIL_TARGET in email_targets(settings):
            carrier = carrier_client(settings)
            stack.push_async_callback(carrier.aclose)
        outbox = OutboxStore(store, max_age=settings.event_delivery_max_age)
        worker = delivery_worker(settings, outbox, report, owner, carrier=carrier, gauges=False)
        # A child that died (they share the owner) left its claims leased: due again now.
        await outbox.release(owner)
        stack.push_async_callback(worker.aclose)
        worker.start()
        wakes = asyncio.StreamReader()
        await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(wakes), os.fdopen(0, "rb", buffering=0)
        )

        async def read_wakes() -> None:
            while await wakes.read(4096):
                worker.wake.set()
            stopping.set()  # the serving process stopped, or died

        reader = loop.create_task(read_wakes(), name="delivery-wakes")
        stack.push_async_callback(cancel, reader)
        await stopping.wait()


def main() -> None:
    # Ctrl-C reaches the whole process group: the serving process stops this one, by closing
    # its pipe, once it has stopped serving.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.nice(NICENESS)
    with contextlib.suppress(OSError):  # a sandbox without the idle class: nice 19 it is
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    try:
        settings, url, owner = _read_header(0)
    except Exception as exc:  # whatever unpickling garbage raises
        sys.stderr.write(f"gateway.events.process: no settings from the serving process: {exc}\n")
        raise SystemExit(2) from None
    from gateway.observability import configure_logging

    configure_logging(settings.log_level)
    with _protocol_out() as out:
        try:
            asyncio.run(_deliver(settings, url, owner, PipeReport(out)))
        except Exception:  # the store unreachable, say: logged, and the parent starts another
            log.exception("delivery process failed")
            raise SystemExit(1) from None


if __name__ == "__main__":
    main()
