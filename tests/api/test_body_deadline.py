"""``BodyDeadline`` on its own: a body there at once is read without a timer, one that keeps
the handler waiting is bounded by the deadline, and whatever else happens to the wait (the
request's task cancelled, the receive failing) is what it would be without the middleware."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive, Scope, Send

from gateway.api.problems import Problem
from gateway.api.schemas import BodyDeadline

BODY: Message = {"type": "http.request", "body": b"{}", "more_body": False}
SCOPE: Scope = {"type": "http", "headers": []}


async def _no_send(message: Message) -> None:
    raise AssertionError("nothing is sent")


async def _read(receive: Receive, seconds: float = 0.2) -> list[Message]:
    """What a handler behind ``BodyDeadline(seconds)`` reads: messages until the body ends."""
    read: list[Message] = []

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            read.append(message)
            if not message.get("more_body", False):
                return

    await BodyDeadline(handler, seconds)(SCOPE, receive, _no_send)
    return read


def _receiving(*steps: Callable[[], Awaitable[Message]]) -> Receive:
    queue = list(steps)

    async def receive() -> Message:
        return await queue.pop(0)()

    return receive


async def _at_once() -> Message:
    return BODY


def _after(seconds: float, message: Message = BODY) -> Callable[[], Awaitable[Message]]:
    async def later() -> Message:
        await asyncio.sleep(seconds)
        return message

    return later


def test_a_body_already_there_is_read_at_once() -> None:
    assert asyncio.run(_read(_receiving(_at_once))) == [BODY]


def test_a_body_that_comes_in_time_is_read_whole() -> None:
    first = {"type": "http.request", "body": b"{", "more_body": True}
    last = {"type": "http.request", "body": b"}", "more_body": False}
    receive = _receiving(lambda: _after(0.0, first)(), _after(0.05, last))
    assert asyncio.run(_read(receive)) == [first, last]


def test_a_body_later_than_the_deadline_is_408() -> None:
    first = {"type": "http.request", "body": b"{", "more_body": True}
    receive = _receiving(lambda: _after(0.0, first)(), _after(5.0))
    with pytest.raises(Problem) as refused:
        asyncio.run(_read(receive, seconds=0.1))
    assert refused.value.status == 408


def test_the_deadline_counts_from_the_first_read() -> None:
    """Each piece in time, the whole not: the second wait gets only what is left."""
    first = {"type": "http.request", "body": b"{", "more_body": True}
    receive = _receiving(_after(0.12, first), _after(0.12))
    with pytest.raises(Problem) as refused:
        asyncio.run(_read(receive, seconds=0.2))
    assert refused.value.status == 408


def test_a_receive_that_is_not_a_coroutine_is_bounded_too() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        never: asyncio.Future[Message] = loop.create_future()
        with pytest.raises(Problem):
            await _read(lambda: never, seconds=0.05)
        soon: asyncio.Future[Message] = loop.create_future()
        loop.call_later(0.01, soon.set_result, BODY)
        assert await _read(lambda: soon, seconds=1.0) == [BODY]

    asyncio.run(scenario())


def test_a_failing_receive_fails_the_same_after_a_wait() -> None:
    async def disconnected() -> Message:
        await asyncio.sleep(0.01)
        raise ClientDisconnect()

    with pytest.raises(ClientDisconnect):
        asyncio.run(_read(_receiving(disconnected)))


def test_a_task_cancelled_while_waiting_is_cancelled_not_408() -> None:
    """The request's task cancelled (the client gone, the server stopping) while the body is
    awaited: the wait ends as a cancellation, and the receive sees it."""
    seen: list[str] = []

    async def waits() -> Message:
        try:
            await asyncio.sleep(5.0)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        return BODY

    async def scenario() -> None:
        task = asyncio.create_task(_read(_receiving(waits), seconds=2.0))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert seen == ["cancelled"]


def test_the_wait_runs_in_the_request_task_and_its_context() -> None:
    """The receive's first step runs where ``await`` would run it: in the request's task."""
    where: list[Any] = []

    async def receive() -> Message:
        where.append(asyncio.current_task())
        await asyncio.sleep(0.01)
        where.append(asyncio.current_task())
        return BODY

    async def scenario() -> None:
        task = asyncio.create_task(_read(receive))
        await task
        assert where == [task, task]

    asyncio.run(scenario())
