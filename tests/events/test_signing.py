"""Deliveries are signed as Standard Webhooks: the specification's own verifier accepts them."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from gateway.events.model import EMERGENCY_CALL, Event
from gateway.events.signing import new_secret, signed_headers


def _event() -> Event:
    return Event.new(EMERGENCY_CALL, {"callbackNumber": "+19195550100"})


def test_a_standard_webhooks_verifier_accepts_the_signature_and_returns_the_event() -> None:
    secret, event = new_secret(), _event()
    body = event.body()
    headers = signed_headers(event.id, body, [secret], datetime.now(UTC))
    assert headers["webhook-id"] == event.id
    assert headers["webhook-signature"].startswith("v1,")
    payload = Webhook(secret).verify(body.encode(), headers)
    assert payload["id"] == event.id and payload["type"] == "emergency_call"
    assert payload["data"] == {"callbackNumber": "+19195550100"}


def test_a_changed_body_another_secret_or_an_old_timestamp_is_refused() -> None:
    secret, event = new_secret(), _event()
    body = event.body()
    headers = signed_headers(event.id, body, [secret], datetime.now(UTC))
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace("0100", "0199"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)
    old = signed_headers(event.id, body, [secret], datetime.now(UTC) - timedelta(minutes=10))
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, old)


def test_during_a_rotation_either_secret_verifies() -> None:
    old, new, event = new_secret(), new_secret(), _event()
    headers = signed_headers(event.id, event.body(), [new, old], datetime.now(UTC))
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(event.body(), headers)


def test_secrets_are_whsec_of_32_random_bytes() -> None:
    first, second = new_secret(), new_secret()
    assert first != second and first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"), validate=True)) == 32
