"""The gateway's carrier records to and from the v2 shapes.

A location is an address (its ``id`` the gateway's location ID), a device's endpoint an
endpoint (its ``id`` the gateway's endpoint ID). v2 keeps no Alternate End User ID and no
house-number suffix apart: an endpoint read back has no ``alternateEndUserId``, and a suffix
comes back in the house number.

A notification recipient is a v2 notification (``EMAIL`` to its e-mail address, or ``SMS``
to its phone number: one recipient each, so never both) that is a member of the gateway's
notification group, ``GATEWAY_GROUP``: v2 tells a notification of a 911 call only through
a group. Its ``id`` is the recipient's, or one derived from what it notifies, so that
creating the same recipient again finds the first one (idempotent, never a second).
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Final

from gateway.bandwidth.models import (
    STREET_FIELDS,
    Address,
    Endpoint,
    Location,
    NotificationRecipient,
)
from gateway.bandwidth.v2.models import (
    AddAddress,
    AddNotification,
    AddNotificationGroup,
    AddressAnswer,
    EndpointAnswer,
    NewEndpoint,
    NotificationAnswer,
    NotificationType,
    UpdateNotificationGroup,
    ValidationStatus,
    one_line,
)

#: The gateway's notification group: its recipients' notifications are its members. Digits
#: only: the spec types the ``groupId`` path parameter as an integer.
GATEWAY_GROUP: Final = "9110911"
GROUP_DESCRIPTION: Final = "dlr-gateway: told of every 911 call"


def address_request(location: Location) -> AddAddress:
    """``POST /addresses`` for a location with an ID and an address."""
    address = location.address or Address()
    if location.location_id is None:
        raise ValueError("a v2 address needs the gateway's location ID")
    return AddAddress(
        id=location.location_id,
        description=location.description,
        address_line1=street_line(address),
        address_line2=address.address_line2,
        city=address.city or "",
        state=address.state_code or "",
        postal_code=address.zip or "",
        country=address.country,
        latitude=None if location.latitude is None else f"{location.latitude:.6f}",
        longitude=None if location.longitude is None else f"{location.longitude:.6f}",
    )


def street_line(address: Address) -> str:
    """``addressLine1``: the house number and the street, in the USPS order."""
    return one_line(*(getattr(address, name) for name in STREET_FIELDS))


def location_of(answer: AddressAnswer) -> Location:
    address = Address(
        house_number=answer.house_number or None,
        prefix_directional=answer.predirectional or None,
        street_name=answer.street_name or None,
        street_suffix=answer.street_suffix or None,
        post_directional=answer.postdirectional or None,
        address_line2=answer.address_line2 or None,
        city=answer.city or None,
        state_code=answer.state or None,
        zip=answer.postal_code or None,
        country=answer.country or None,
    )
    status = answer.validation_status
    return Location(
        location_id=answer.id,
        description=answer.description,
        address=address,
        status=None if status is None else status.value,
        latitude=answer.latitude,
        longitude=answer.longitude,
    )


def endpoint_request(endpoint: Endpoint) -> NewEndpoint:
    """One endpoint of ``POST /endpoints``."""
    if endpoint.endpoint_id is None or endpoint.location_id is None:
        raise ValueError("a v2 endpoint needs the gateway's endpoint ID and a location ID")
    return NewEndpoint(
        id=endpoint.endpoint_id,
        phone_number=endpoint.telephone_number or "",
        name=endpoint.caller_name,
        address_id=endpoint.location_id,
    )


def endpoint_of(answer: EndpointAnswer) -> Endpoint:
    """The endpoint an answer holds (v2 keeps no AEUI: none is read back)."""
    held = Endpoint(endpoint_id=answer.id, location_id=answer.address_id)
    return dataclasses.replace(held, caller_name=answer.name, telephone_number=answer.phone_number)


def notified(recipient: NotificationRecipient) -> tuple[NotificationType, str]:
    """How the notification reaches the recipient: EMAIL to its e-mail address, or SMS to
    its phone number (``ValueError`` with both: a v2 notification has one recipient)."""
    if recipient.email_address and recipient.phone_number:
        raise ValueError("a v2 notification has one recipient, not an e-mail and a phone")
    if recipient.email_address:
        return NotificationType.EMAIL, recipient.email_address
    if recipient.phone_number:
        return NotificationType.SMS, recipient.phone_number
    raise ValueError("a notification recipient needs an e-mail address or a phone number")


def notification_id(recipient: NotificationRecipient) -> str:
    """The recipient's own ID, or one derived from whom it notifies and how (the same
    recipient, the same ID)."""
    if recipient.id is not None:
        return recipient.id
    kind, to = notified(recipient)
    return "r" + hashlib.sha256(f"{kind.value}:{to.strip().casefold()}".encode()).hexdigest()[:24]


def notification_request(recipient: NotificationRecipient) -> AddNotification:
    """``POST /notifications`` for a recipient (see the module docstring)."""
    kind, to = notified(recipient)
    return AddNotification(
        id=notification_id(recipient), type=kind, recipient=to, description=recipient.description
    )


def group_request(recipient: NotificationRecipient) -> AddNotificationGroup:
    """``POST /notificationGroups``: the gateway's group, with the recipient in it."""
    return AddNotificationGroup(
        id=GATEWAY_GROUP,
        description=GROUP_DESCRIPTION,
        notifications=[notification_id(recipient)],
    )


def group_join(recipient: NotificationRecipient) -> UpdateNotificationGroup:
    """``PATCH /notificationGroups/{GATEWAY_GROUP}``: the recipient joins it."""
    return UpdateNotificationGroup(notification_ids_to_add=[notification_id(recipient)])


def recipient_of(answer: NotificationAnswer) -> NotificationRecipient:
    email = answer.type is NotificationType.EMAIL
    return NotificationRecipient(
        id=answer.id,
        email_address=answer.recipient if email else None,
        phone_number=None if email else answer.recipient,
        description=answer.description,
    )


def invalid(answer: AddressAnswer) -> bool:
    return answer.validation_status is ValidationStatus.INVALID
