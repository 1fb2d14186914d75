"""The gateway's records to and from the v2 shapes: the pieces that carry no I/O."""

from __future__ import annotations

from gateway.bandwidth.models import STREET_FIELDS, Address, NotificationRecipient
from gateway.bandwidth.v2 import mapping
from gateway.bandwidth.v2.models import EndpointAnswer, NotificationType


def test_the_street_fields_are_the_house_number_then_the_street_in_usps_order() -> None:
    assert STREET_FIELDS == (
        "house_number",
        "house_suffix",
        "prefix_directional",
        "street_name",
        "street_suffix",
        "post_directional",
    )
    address = Address(
        house_number="1600",
        house_suffix="1/2",
        prefix_directional="N",
        street_name="PENNSYLVANIA",
        street_suffix="AVE",
        post_directional="NW",
        city="WASHINGTON",
    )
    assert mapping.street_line(address) == "1600 1/2 N PENNSYLVANIA AVE NW"


def test_an_endpoint_read_back_has_its_name_number_and_address_but_no_aeui() -> None:
    answer = EndpointAnswer(id="e1", name="Ada", phone_number="+12025550143", address_id="a1")
    endpoint = mapping.endpoint_of(answer)
    assert (endpoint.endpoint_id, endpoint.caller_name) == ("e1", "Ada")
    assert (endpoint.telephone_number, endpoint.location_id) == ("+12025550143", "a1")
    assert endpoint.alternate_end_user_id is None


def test_a_recipients_derived_id_is_the_same_for_the_same_recipient_only() -> None:
    one = mapping.notification_id(NotificationRecipient(email_address=" Ops@Example.com"))
    assert one == mapping.notification_id(NotificationRecipient(email_address="ops@example.com"))
    assert one != mapping.notification_id(NotificationRecipient(email_address="ops@example.org"))
    sms = mapping.notification_id(NotificationRecipient(phone_number="+12025550100"))
    assert sms not in (one, None)
    assert mapping.notification_id(NotificationRecipient(id="mine", phone_number="1")) == "mine"
    request = mapping.notification_request(NotificationRecipient(phone_number="+12025550100"))
    assert (request.id, request.type) == (sms, NotificationType.SMS)
