"""The v2 simulator's notifications and notification groups (``V2Store`` carries them).

A notification tells one recipient (an ``EMAIL`` address, an ``SMS`` or ``VOICE`` phone
number, an ``HTTP`` URL: each checked) of a 911 call from an endpoint of a group it is a
member of. A group is added with its endpoints and notifications (each must exist); a
``PATCH`` adds and removes notifications only, and adding a member again changes nothing.
A notification's ``groupCount`` follows its groups; deleting it takes it out of them.
The ``groupId`` path parameter is an integer in the spec: a group's ID is digits only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from gateway.bandwidth.v2.models import (
    PHONE_PATTERN,
    AddNotification,
    AddNotificationGroup,
    NotificationAnswer,
    NotificationGroupAnswer,
    NotificationGroupList,
    NotificationList,
    NotificationType,
    UpdateNotificationGroup,
)
from gateway.simulator.store import Outcome
from gateway.simulator.v2.answers import Refused, added, answered, found, now, page, read

#: What a notification of each type may be sent to.
_RECIPIENT: Final = {
    NotificationType.EMAIL: re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+"),
    NotificationType.SMS: re.compile(PHONE_PATTERN),
    NotificationType.VOICE: re.compile(PHONE_PATTERN),
    NotificationType.HTTP: re.compile(r"https?://\S+"),
}
_GROUP_ID: Final = re.compile(r"[0-9]{1,18}")


class Notifications:
    """The notification operations of ``V2Store``, over its tables."""

    account_id: str
    endpoints: Mapping[str, Any]
    notifications: dict[str, NotificationAnswer]
    groups: dict[str, NotificationGroupAnswer]

    # -- notifications --------------------------------------------------------------------

    def _listNotifications(self, params: Mapping[str, str], body: bytes) -> Outcome:
        listed, _ = page(list(self.notifications.values()), params, "/notifications")
        return Outcome(200, NotificationList(notifications=listed).wire())

    def _addNotification(self, params: Mapping[str, str], body: bytes) -> Outcome:
        request = read(AddNotification, body)
        if not _RECIPIENT[request.type].fullmatch(request.recipient):
            kind = request.type.value
            raise Refused(400, f"recipient: not a recipient of a {kind} notification", "recipient")
        at = now()
        answer = NotificationAnswer(
            id=request.id,
            account_id=self.account_id,
            description=request.description,
            recipient=request.recipient,
            type=request.type,
            group_count=0,
            created=at,
            updated=at,
        )
        return added(self.notifications, answer, "notification")

    def _getNotification(self, params: Mapping[str, str], body: bytes) -> Outcome:
        return answered(self.notifications, params["notificationId"], "notification")

    def _deleteNotification(self, params: Mapping[str, str], body: bytes) -> Outcome:
        notification_id = found(self.notifications, params["notificationId"], "notification").id
        del self.notifications[notification_id]
        for group in list(self.groups.values()):
            if notification_id in group.notification_ids:
                kept = [n for n in group.notification_ids if n != notification_id]
                self._changed(group, kept)
        return Outcome(204, applied=True, id=notification_id)

    # -- groups ---------------------------------------------------------------------------

    def _listNotificationsGroups(self, params: Mapping[str, str], body: bytes) -> Outcome:
        listed, _ = page(list(self.groups.values()), params, "/notificationGroups")
        return Outcome(200, NotificationGroupList(notification_groups=listed).wire())

    def _addNotificationGroup(self, params: Mapping[str, str], body: bytes) -> Outcome:
        request = read(AddNotificationGroup, body)
        if not _GROUP_ID.fullmatch(request.id):
            raise Refused(400, "id: a notification group's ID is an integer", "id")
        endpoints = _once(request.endpoints)
        for i, endpoint_id in enumerate(endpoints):
            if endpoint_id not in self.endpoints:
                raise Refused(400, f"endpoint {endpoint_id} does not exist", f"endpoints.{i}")
        notifications = self._existing(request.notifications, "notifications")
        at = now()
        answer = NotificationGroupAnswer(
            id=request.id,
            account_id=self.account_id,
            description=request.description,
            endpoint_count=len(endpoints),
            endpoint_ids=endpoints,
            notification_ids=notifications,
            created=at,
            updated=at,
        )
        outcome = added(self.groups, answer, "notification group")
        self._recount(notifications)
        return outcome

    def _getNotificationGroup(self, params: Mapping[str, str], body: bytes) -> Outcome:
        return answered(self.groups, self._group(params).id, "notification group")

    def _updateNotificationGroup(self, params: Mapping[str, str], body: bytes) -> Outcome:
        group = self._group(params)
        request = read(UpdateNotificationGroup, body)
        added = self._existing(request.notification_ids_to_add, "notificationIdsToAdd")
        gone = set(request.notification_ids_to_delete)
        kept = [n for n in group.notification_ids if n not in gone]
        members = _once([*kept, *added])
        changed = self._changed(group, members, request.description)
        self._recount({*group.notification_ids, *members})
        return Outcome(200, changed.wire(), applied=True, id=group.id)

    def _deleteNotificationGroup(self, params: Mapping[str, str], body: bytes) -> Outcome:
        group = self._group(params)
        del self.groups[group.id]
        self._recount(group.notification_ids)
        return Outcome(204, applied=True, id=group.id)

    def _group(self, params: Mapping[str, str]) -> NotificationGroupAnswer:
        group_id = params["groupId"]
        if not _GROUP_ID.fullmatch(group_id):
            raise Refused(400, "groupId must be an integer")
        return found(self.groups, group_id, "notification group")

    def _existing(self, ids: Iterable[str], field: str) -> list[str]:
        """``ids`` once each, all of them notifications (else the API's 400)."""
        listed = _once(ids)
        for i, notification_id in enumerate(listed):
            if notification_id not in self.notifications:
                raise Refused(400, f"notification {notification_id} does not exist", f"{field}.{i}")
        return listed

    def _changed(
        self, group: NotificationGroupAnswer, members: list[str], description: str | None = None
    ) -> NotificationGroupAnswer:
        update: dict[str, Any] = {"notification_ids": members, "updated": now()}
        if description is not None:
            update["description"] = description
        changed = group.model_copy(update=update)
        self.groups[group.id] = changed
        return changed

    def _recount(self, ids: Iterable[str]) -> None:
        """Each of ``ids`` that is a notification: its ``groupCount`` as its groups say."""
        for notification_id in set(ids):
            held = self.notifications.get(notification_id)
            if held is not None:
                count = sum(notification_id in g.notification_ids for g in self.groups.values())
                self.notifications[notification_id] = held.model_copy(update={"group_count": count})


def _once(ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(ids))
