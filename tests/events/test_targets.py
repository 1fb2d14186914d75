"""Attacks on webhook delivery: targets on the gateway's own side (SSRF), hostile receivers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from gateway.events.delivery import Backoff, DeliveryWorker, MetricsReport
from gateway.events.emitter import Emitter
from gateway.events.model import EMERGENCY_CALL, Event
from gateway.events.signing import new_secret
from gateway.events.targets import CheckedResolver, RefusedAddress, host_problem
from gateway.metrics import Metrics
from gateway.store import open_store
from gateway.store.deliveries import Delivery
from gateway.store.outbox import OutboxStore
from gateway.store.sql import SqlStateStore
from tests.events.receiver import Receiver


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.1.2.3",
        "169.254.169.254",  # cloud metadata
        "0.0.0.0",  # noqa: S104 - a target refused, not a binding
        "224.0.0.1",
        "240.0.0.1",
        "localhost",
        "metadata.localhost",
        "localhost.",  # the same name, fully qualified
        "metadata.localhost.",
        # IPv4 addresses in the forms socket still reads (inet_aton): 127.0.0.1 or 0.0.0.0.
        "2130706433",
        "017700000001",
        "0x7f000001",
        "0x7f.1",
        "127.1",
        "0177.0.0.1",
        "127.000.000.001",
        "0",
        "2852039166",  # 169.254.169.254
        "127.0.0.1.",
        # Neither the Internet nor a private network.
        "100.64.0.1",  # shared (carrier-grade NAT)
        "100.100.100.200",  # a cloud's metadata service, in the shared range
        "::ffff:100.100.100.200",
        "0.1.2.3",
        "192.0.0.8",
        "198.18.0.1",  # benchmarking
        "203.0.113.5",  # documentation
        "2001:db8::1",
        "fec0::1",  # site-local
        "fd00:ec2::254",  # AWS's metadata service over IPv6
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "64:ff9b::a00:5",  # NAT64 of 10.0.0.5: the translator's network, not the Internet
        "64:ff9b::6464:64c8",  # NAT64 of 100.100.100.200
        "64:ff9b:1::a00:5",  # NAT64 for local use
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    ],
)
def test_hosts_on_the_gateways_own_side_are_refused_unless_listed(host: str) -> None:
    assert host_problem(host, ()) is not None
    assert host_problem(host, (host,)) is None


@pytest.mark.parametrize(
    "host",
    [
        "10.0.0.5",
        "172.16.4.1",
        "192.168.1.20",
        "fd12:3456::1",  # unique-local: IPv6's private networks
        "hooks.example.org",
        "8.8.8.8",
        "2606:4700::1",
        "64:ff9b::808:808",  # NAT64 of 8.8.8.8, as DNS64 answers on an IPv6-only network
    ],
)
def test_private_and_public_hosts_are_allowed_without_a_list(host: str) -> None:
    assert host_problem(host, ()) is None


def test_with_a_list_only_the_hosts_listed_are_allowed() -> None:
    assert host_problem("hooks.example.org", ("desk.example.org",)) is not None
    assert host_problem("10.0.0.5", ("desk.example.org",)) is not None


def test_a_name_that_resolves_to_the_metadata_service_is_refused_at_delivery() -> None:
    """DNS is the network edge: a name pointing at 169.254.169.254 (or ::1) is refused."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        answers = {
            "evil.example.org": "169.254.169.254",
            "six.example.org": "::1",
            "shared.example.org": "100.100.100.200",
            "nat64.example.org": "64:ff9b::a9fe:a9fe",
            "6to4.example.org": "2002:7f00:1::1",
            "ok.example.org": "10.1.2.3",
        }

        async def getaddrinfo(host: str, port: int, **_: Any) -> list[Any]:
            address = answers[host]
            if ":" in address:  # as getaddrinfo gives IPv6: with flow info and scope
                return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0))]
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

        loop.getaddrinfo = getaddrinfo  # type: ignore[assignment,method-assign]
        resolver = CheckedResolver(())
        for refused in [name for name in answers if name != "ok.example.org"]:
            with pytest.raises(RefusedAddress, match="resolves to"):
                await resolver.resolve(refused, 443, socket.AF_UNSPEC)
        assert [r["host"] for r in await resolver.resolve("ok.example.org", 443)] == ["10.1.2.3"]
        # Listed: allowed whatever it resolves to (the operator said so).
        listed = CheckedResolver(("evil.example.org",))
        assert [r["host"] for r in await listed.resolve("evil.example.org", 443)] == [
            "169.254.169.254"
        ]

    asyncio.run(main())


@asynccontextmanager
async def _outbox(tmp_path: Path) -> AsyncIterator[OutboxStore]:
    store = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}", create=True)
    assert isinstance(store, SqlStateStore)
    async with store:
        yield OutboxStore(store)


async def _one_event(outbox: OutboxStore, url: str) -> None:
    await outbox.add_webhook("wh_1", url, [EMERGENCY_CALL], new_secret(), None)
    emitter = Emitter(outbox, Metrics())
    emitter.start()
    emitter.emit(Event.new(EMERGENCY_CALL, {"n": 1}))
    await emitter.aclose()


async def _attempted(outbox: OutboxStore, url: str) -> Delivery:
    """One event for a subscription to ``url``, one attempt (no host listed), its delivery."""
    await _one_event(outbox, url)
    worker = _worker(outbox, ())
    try:
        assert await worker.run_once() == 1
    finally:
        await worker.aclose()
    ((_, (delivery,)),) = await outbox.page(limit=1)
    return delivery


def _worker(outbox: OutboxStore, allowed: tuple[str, ...], timeout: float = 2.0) -> DeliveryWorker:
    return DeliveryWorker(
        outbox,
        MetricsReport(Metrics()),
        "test-replica",
        allowed_hosts=allowed,
        backoff=Backoff(base=0.05, cap=0.1),
        timeout=timeout,
    )


def test_a_loopback_receiver_is_never_contacted_unless_listed(tmp_path: Path) -> None:
    receiver = Receiver().up()

    async def main() -> None:
        async with _outbox(tmp_path) as outbox:
            delivery = await _attempted(outbox, receiver.url)
            assert delivery.state == "pending" and "loopback" in str(delivery.last_error)

    try:
        asyncio.run(main())
    finally:
        receiver.down()
    assert receiver.attempts == {}


@pytest.mark.parametrize("url", ["http://100.100.100.200/latest/meta-data", "http://0.1.2.3/"])
def test_a_special_purpose_address_is_refused_at_delivery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    """A subscription made before the rule refused its address: the delivery refuses it by
    name, before any connection (the webhook client, which would make one, is never made)."""

    def no_client(*_: Any) -> None:
        raise AssertionError("a connection was to be made")

    monkeypatch.setattr("gateway.events.delivery.webhook_client", no_client)

    async def main() -> None:
        async with _outbox(tmp_path) as outbox:
            delivery = await _attempted(outbox, url)
            assert delivery.state == "pending" and "special-purpose" in str(delivery.last_error)

    asyncio.run(main())


@pytest.mark.parametrize("form", ["2130706433", "127.1", "017700000001", "0177.0.0.1"])
def test_a_numeric_form_of_loopback_is_never_contacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    """aiohttp takes a host of digits and dots for an address and skips the resolver (the
    check by address) for it; the socket then reads ``2130706433`` or ``127.1`` as
    127.0.0.1. aiohttp before 3.14.5 (the project allows 3.9 on) connects there, as here
    with its own refusal of the form switched off: the rule must refuse the form by name."""
    monkeypatch.setattr("aiohttp.connector.is_canonical_ipv4_address", lambda _: True)
    receiver = Receiver().up()

    async def main() -> None:
        async with _outbox(tmp_path) as outbox:
            delivery = await _attempted(outbox, f"http://{form}:{receiver.port}/hook")
            assert delivery.state == "pending"
            assert "four decimal numbers" in str(delivery.last_error)

    try:
        asyncio.run(main())
    finally:
        receiver.down()
    assert receiver.attempts == {}


def test_a_name_that_resolves_to_loopback_is_never_contacted(tmp_path: Path) -> None:
    """DNS rebinding: the name passes the check by name, and the lookup the connection is
    made with answers loopback, where a receiver listens. That lookup is the one judged:
    there is no earlier one a DNS server could answer differently."""
    receiver = Receiver().up()
    port = int(receiver.url.split(":")[2].split("/")[0])
    lookups: list[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()

        async def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
            lookups.append(host)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

        loop.getaddrinfo = getaddrinfo  # type: ignore[assignment,method-assign]
        async with _outbox(tmp_path) as outbox:
            delivery = await _attempted(outbox, f"http://rebind.example.org:{port}/hook")
            assert delivery.state == "pending"
            assert "resolves to a loopback" in str(delivery.last_error)

    try:
        asyncio.run(main())
    finally:
        receiver.down()
    assert lookups == ["rebind.example.org"]  # one lookup, the connection's
    assert receiver.attempts == {}


@asynccontextmanager
async def _raw_server(answer: bytes | None) -> AsyncIterator[str]:
    """A receiver on loopback that sends ``answer`` and then endless bytes, or (None)
    reads the request and never answers."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        try:
            if answer is None:
                await asyncio.sleep(3600)
            writer.write(answer)
            chunk = b"x" * 65536
            while True:  # a body without end
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/hook"
    finally:
        server.close()


@pytest.mark.parametrize(
    ("answer", "state", "error"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100000000000\r\n\r\n", "delivered", None),
        (b"HTTP/1.1 500 Oops\r\nContent-Length: 100000000000\r\n\r\n", "pending", "HTTP 500"),
        (None, "pending", "no answer within 0.5 s"),
    ],
    ids=["huge-2xx-body", "huge-5xx-body", "hangs"],
)
def test_a_hostile_receiver_costs_one_bounded_attempt(
    tmp_path: Path, answer: bytes | None, state: str, error: str | None
) -> None:
    async def main() -> None:
        async with _outbox(tmp_path) as outbox, _raw_server(answer) as url:
            await _one_event(outbox, url)
            worker = _worker(outbox, ("127.0.0.1",), timeout=0.5)
            # Unbounded, the attempt would read (or wait) forever: the guard only stops a hang.
            assert await asyncio.wait_for(worker.run_once(), 60) == 1
            ((_, (delivery,)),) = await outbox.page(limit=1)
            assert (delivery.state, delivery.last_error) == (state, error)
            await worker.aclose()

    asyncio.run(main())


def test_a_receivers_connection_carries_the_next_delivery(tmp_path: Path) -> None:
    """Its answer drained, a connection is kept: not a new TCP connection per event."""
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook"
        async with _outbox(tmp_path) as outbox:
            await outbox.add_webhook("wh_1", url, [EMERGENCY_CALL], new_secret(), None)
            worker = _worker(outbox, ("127.0.0.1",))
            try:
                for n in range(3):  # one at a time: each could have had a connection of its own
                    emitter = Emitter(outbox, Metrics())
                    emitter.start()
                    emitter.emit(Event.new(EMERGENCY_CALL, {"n": n}))
                    await emitter.aclose()
                    assert await worker.run_once() == 1
            finally:
                await worker.aclose()
            page = await outbox.page(limit=3)
            assert [d.state for _, (d,) in page] == ["delivered"] * 3
        server.close()

    asyncio.run(main())
    assert connections == 1
