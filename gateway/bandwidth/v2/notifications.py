"""Notification recipients over the v2 API: a v2 notification in the gateway's notification
group (``mapping.GATEWAY_GROUP``; see ``mapping``'s docstring for the mapping).

A recipient is created in two idempotent steps: ``POST /notifications`` with its
deterministic ID (a ``409`` finds the one there: the same recipient is this one again; one
notifying someone else under that ID is a conflict), then its membership: the group is
added with it when there is none yet, else it joins with ``PATCH notificationIdsToAdd``
(nothing when it is a member already). A failure between the steps is the call's failure,
and the same create again finishes it. Listing answers the group's members only: a
notification in no group tells no one of a call.
"""

from __future__ import annotations

import dataclasses
from urllib.parse import quote

from gateway.bandwidth.calls import check_id
from gateway.bandwidth.errors import UpstreamConflict, UpstreamNotFound, UpstreamUnsupported
from gateway.bandwidth.exchanges import Operation
from gateway.bandwidth.models import NotificationRecipient, NotificationRecipientListResponse
from gateway.bandwidth.v2 import mapping
from gateway.bandwidth.v2.models import (
    NotificationAnswer,
    NotificationGroupAnswer,
    NotificationList,
)
from gateway.bandwidth.v2.wire import V2Wire

__all__ = ["V2Notifications"]

_GROUP_PATH = "/notificationGroups/" + quote(mapping.GATEWAY_GROUP, safe="")


class V2Notifications(V2Wire):
    """The notification recipient operations; ``BandwidthV2Client`` adds the rest."""

    async def list_notification_recipients(self) -> NotificationRecipientListResponse:
        group = await self._group()
        if group is None or not group.notification_ids:
            return NotificationRecipientListResponse()
        members = set(group.notification_ids)
        op = Operation("listNotifications", "GET")
        found = await self._list(op, "/notifications", NotificationList, lambda p: p.notifications)
        return NotificationRecipientListResponse(
            notification_recipients=tuple(mapping.recipient_of(n) for n in found if n.id in members)
        )

    async def create_notification_recipient(
        self, recipient: NotificationRecipient
    ) -> NotificationRecipient:
        """The notification, then its membership of the group (see the module docstring)."""
        try:
            kind, to = mapping.notified(recipient)
        except ValueError as exc:
            raise UpstreamUnsupported(
                f"the v2 API cannot carry this recipient: {exc}",
                operation="addNotification",
                instead=(
                    "create one recipient with the emailAddress and another with the phoneNumber"
                ),
            ) from None
        sent = dataclasses.replace(recipient, id=mapping.notification_id(recipient))
        notification_id = check_id(sent.id or "", "notification recipient ID")
        op = Operation("addNotification", "POST")
        try:
            root = await self._write(op, "/notifications", sent, retryable=True)
            held = None if root is None else self._model(NotificationAnswer, root, op.name)
        except UpstreamConflict:
            held = None
        if held is None:  # there already: this recipient again, or someone else's
            held = await self._notification(notification_id)
            if (held.type, (held.recipient or "").casefold()) != (kind, to.casefold()):
                raise UpstreamConflict(
                    f"{op.name}: notification {notification_id} exists for another recipient",
                    operation=op.name,
                    status=409,
                    description=f"notification {notification_id} notifies someone else",
                )
        await self._join(sent)
        return mapping.recipient_of(held)

    async def _notification(self, notification_id: str) -> NotificationAnswer:
        path = "/notifications/" + quote(notification_id, safe="")
        return await self._fetch(Operation("getNotification", "GET"), path, NotificationAnswer)

    async def _group(self) -> NotificationGroupAnswer | None:
        """The gateway's notification group, or ``None`` while there is none."""
        op = Operation("getNotificationGroup", "GET")
        try:
            return await self._fetch(op, _GROUP_PATH, NotificationGroupAnswer)
        except UpstreamNotFound:
            return None

    async def _join(self, recipient: NotificationRecipient) -> None:
        """The recipient's notification is a member of the gateway's group, once."""
        group = await self._group()
        if group is None:
            add = Operation("addNotificationGroup", "POST")
            try:
                if await self._write(add, "/notificationGroups", recipient, retryable=True):
                    return  # added with it as its one member
            except UpstreamConflict:
                pass  # added by someone else in between
            group = await self._group()
            if group is None:
                raise UpstreamConflict(
                    f"{add.name}: group {mapping.GATEWAY_GROUP} is there and then not",
                    operation=add.name,
                    status=409,
                )
        if recipient.id in group.notification_ids:
            return
        op = Operation("updateNotificationGroup", "PATCH")
        await self._write(op, _GROUP_PATH, recipient, retryable=True)
