"""Notification recipients on v2: a notification in the gateway's notification group,
created idempotently under a deterministic ID; the simulator holds the shapes to the API."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from gateway.bandwidth.errors import (
    UpstreamConflict,
    UpstreamParseError,
    UpstreamUnavailable,
    UpstreamUnsupported,
)
from gateway.bandwidth.exchanges import RetryPolicy
from gateway.bandwidth.models import NotificationRecipient
from gateway.bandwidth.v2.mapping import GATEWAY_GROUP
from gateway.bandwidth.v2.models import NotificationAnswer, NotificationType

from .helpers import V2, v2

EMAIL = NotificationRecipient(id="n1", email_address="ops@example.com", description="ops")
SMS = NotificationRecipient(id="n2", phone_number="+12025550100")


def _writes(h: V2) -> list[str]:
    return [op for op in h.operations() if not op.startswith(("get", "list"))]


def test_a_recipient_is_a_notification_in_the_gateways_group() -> None:
    h = v2()

    async def go() -> None:
        created = await h.client.create_notification_recipient(EMAIL)
        assert created == EMAIL
        await h.client.create_notification_recipient(SMS)
        listed = await h.client.list_notification_recipients()
        assert listed.notification_recipients == (EMAIL, SMS)

    asyncio.run(go())
    store = h.simulator.v2
    assert store.notifications["n1"].type is NotificationType.EMAIL
    assert store.notifications["n2"].type is NotificationType.SMS
    assert store.groups[GATEWAY_GROUP].notification_ids == ["n1", "n2"]
    assert store.notifications["n1"].group_count == store.notifications["n2"].group_count == 1
    # The first one adds the group with it; the second joins it.
    assert _writes(h) == [
        "addNotification",
        "addNotificationGroup",
        "addNotification",
        "updateNotificationGroup",
    ]


def test_creating_the_same_recipient_again_finds_it_and_writes_nothing_new() -> None:
    h = v2()

    async def go() -> None:
        await h.client.create_notification_recipient(EMAIL)
        again = await h.client.create_notification_recipient(EMAIL)
        assert again == EMAIL

    asyncio.run(go())
    assert len(h.simulator.v2.notifications) == 1
    assert _writes(h) == ["addNotification", "addNotificationGroup", "addNotification"]
    assert h.simulator.v2.groups[GATEWAY_GROUP].notification_ids == ["n1"]


def test_a_recipient_without_an_id_gets_one_derived_from_whom_it_notifies() -> None:
    h = v2()
    bare = NotificationRecipient(email_address="Ops@Example.com")

    async def go() -> None:
        first = await h.client.create_notification_recipient(bare)
        second = await h.client.create_notification_recipient(
            NotificationRecipient(email_address="ops@example.com")
        )
        assert first.id is not None and first.id == second.id
        other = await h.client.create_notification_recipient(
            NotificationRecipient(phone_number="+12025550100")
        )
        assert other.id not in (None, first.id)

    asyncio.run(go())
    assert len(h.simulator.v2.notifications) == 2


def test_an_id_that_notifies_someone_else_is_a_conflict() -> None:
    h = v2()

    async def go() -> None:
        await h.client.create_notification_recipient(EMAIL)
        with pytest.raises(UpstreamConflict, match="another recipient"):
            await h.client.create_notification_recipient(
                NotificationRecipient(id="n1", email_address="someone@else.org")
            )

    asyncio.run(go())
    assert h.simulator.v2.notifications["n1"].recipient == "ops@example.com"


def test_a_recipient_with_an_email_and_a_phone_is_not_supported_and_nothing_is_sent() -> None:
    h = v2()
    both = NotificationRecipient(id="n3", email_address="a@b.co", phone_number="+12025550100")
    with pytest.raises(UpstreamUnsupported) as caught:
        asyncio.run(h.client.create_notification_recipient(both))
    assert "another with the phoneNumber" in caught.value.instead
    assert h.simulator.calls == []


def test_a_failure_between_the_notification_and_its_group_is_not_done_and_a_retry_ends_it() -> None:
    h = v2(policy=RetryPolicy(max_attempts=1))
    inner = h.transport.inner
    failing = {"on": True}

    class NoGroups(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if failing["on"] and request.url.path.endswith("/notificationGroups"):
                return httpx.Response(503, json={"errors": [{"description": "down"}]})
            return await inner.handle_async_request(request)

    h.transport.inner = NoGroups()

    async def go() -> None:
        with pytest.raises(UpstreamUnavailable):
            await h.client.create_notification_recipient(EMAIL)
        assert "n1" in h.simulator.v2.notifications
        # Not in the group: not a recipient yet.
        assert (await h.client.list_notification_recipients()).notification_recipients == ()
        failing["on"] = False
        assert await h.client.create_notification_recipient(EMAIL) == EMAIL
        listed = await h.client.list_notification_recipients()
        assert listed.notification_recipients == (EMAIL,)

    asyncio.run(go())


def test_only_the_groups_members_are_listed_across_pages() -> None:
    h = v2()
    store = h.simulator.v2
    for i in range(25):
        store.notifications[f"x{i:02d}"] = NotificationAnswer(
            id=f"x{i:02d}", type=NotificationType.EMAIL, recipient=f"x{i}@example.com"
        )
    h.client.page_size = 4

    async def go() -> None:
        for i in range(0, 25, 2):
            await h.client.create_notification_recipient(
                NotificationRecipient(id=f"x{i:02d}", email_address=f"x{i}@example.com")
            )
        listed = await h.client.list_notification_recipients()
        assert [r.id for r in listed.notification_recipients] == [
            f"x{i:02d}" for i in range(0, 25, 2)
        ]

    asyncio.run(go())
    assert h.operations().count("listNotifications") == 8  # 7 pages of 4, then an empty one


def _send(h: V2, method: str, path: str, body: object | None = None) -> httpx.Response:
    account = h.simulator.config.account_id
    auth = (h.simulator.config.username, h.simulator.config.password)

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(
            transport=h.transport.inner, base_url="http://carrier.test", auth=auth
        ) as http:
            content = None if body is None else json.dumps(body).encode()
            url = f"/api/v2/accounts/{account}/emergency{path}"
            return await http.request(method, url, content=content)

    return asyncio.run(go())


@pytest.mark.parametrize(
    ("kind", "recipient"),
    [("EMAIL", "+12025550100"), ("SMS", "ops@example.com"), ("HTTP", "ftp://x"), ("VOICE", "12")],
)
def test_the_simulator_refuses_a_recipient_of_the_wrong_kind(kind: str, recipient: str) -> None:
    h = v2()
    answer = _send(h, "POST", "/notifications", {"id": "n", "type": kind, "recipient": recipient})
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["source"]["field"] == "recipient"


def test_the_simulator_holds_groups_to_the_api() -> None:
    h = v2()
    added = _send(h, "POST", "/notifications", {"id": "a", "type": "EMAIL", "recipient": "a@b.co"})
    assert added.status_code == 201
    named = _send(h, "POST", "/notificationGroups", {"id": "ops", "notifications": ["a"]})
    assert named.status_code == 400  # the path's groupId is an integer
    unknown = _send(h, "POST", "/notificationGroups", {"id": "7", "notifications": ["zz"]})
    assert unknown.status_code == 400 and "zz" in unknown.text
    assert _send(h, "POST", "/notificationGroups", {"id": "7", "notifications": ["a"]}).is_success
    assert _send(h, "GET", "/notificationGroups/ops").status_code == 400
    assert _send(h, "PATCH", "/notificationGroups/7", {"endpointIds": ["e"]}).status_code == 400
    bad = _send(h, "PATCH", "/notificationGroups/7", {"notificationIdsToAdd": ["zz"]})
    assert bad.status_code == 400
    again = _send(h, "PATCH", "/notificationGroups/7", {"notificationIdsToAdd": ["a", "a"]})
    assert again.json()["notificationIds"] == ["a"]
    assert h.simulator.v2.notifications["a"].group_count == 1
    assert _send(h, "DELETE", "/notifications/a").status_code == 204
    assert _send(h, "GET", "/notificationGroups/7").json().get("notificationIds", []) == []
    assert _send(h, "DELETE", "/notificationGroups/7").status_code == 204
    assert _send(h, "GET", "/notificationGroups/7").status_code == 404


def test_a_group_answer_of_the_wrong_shape_is_refused_not_trusted() -> None:
    def wrong(request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("/notifications"):
            return httpx.Response(201, json={"id": "n1", "type": "EMAIL", "recipient": "x@y.zz"})
        return httpx.Response(200, json={"id": GATEWAY_GROUP, "notificationIds": "n1"})

    h = v2()
    h.transport.inner = httpx.MockTransport(wrong)
    with pytest.raises(UpstreamParseError, match="NotificationGroupAnswer"):
        asyncio.run(h.client.create_notification_recipient(EMAIL))
