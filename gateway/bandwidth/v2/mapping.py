"""The gateway's carrier records to and from the v2 shapes.

A location is an address (its ``id`` the gateway's location ID), a device's endpoint an
endpoint (its ``id`` the gateway's endpoint ID), a notification recipient a notification.
v2 keeps no Alternate End User ID and no house-number suffix apart: an endpoint read back
has no ``alternateEndUserId``, and a suffix comes back in the house number.
"""

from __future__ import annotations

from gateway.bandwidth.models import Address, Endpoint, Location, NotificationRecipient
from gateway.bandwidth.v2.models import (
    AddAddress,
    AddNotification,
    AddressAnswer,
    EndpointAnswer,
    NewEndpoint,
    NotificationAnswer,
    NotificationType,
    ValidationStatus,
    one_line,
)


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
    return one_line(
        address.house_number,
        address.house_suffix,
        address.prefix_directional,
        address.street_name,
        address.street_suffix,
        address.post_directional,
    )


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
    return Endpoint(
        endpoint_id=answer.id,
        caller_name=answer.name,
        location_id=answer.address_id,
        telephone_number=answer.phone_number,
    )


def notification_request(recipient: NotificationRecipient) -> AddNotification:
    """A recipient with an e-mail address is an EMAIL notification, else an SMS one."""
    if recipient.id is None:
        raise ValueError("a v2 notification needs a client-chosen ID")
    if recipient.email_address:
        kind, to = NotificationType.EMAIL, recipient.email_address
    elif recipient.phone_number:
        kind, to = NotificationType.SMS, recipient.phone_number
    else:
        raise ValueError("a notification recipient needs an e-mail address or a phone number")
    return AddNotification(
        id=recipient.id, type=kind, recipient=to, description=recipient.description
    )


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
