"""Standard Webhooks signatures (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``).

HMAC-SHA256 over ``{id}.{timestamp}.{body}`` with a ``whsec_`` secret (base64 of 32 random
bytes), by the ``standardwebhooks`` library. While a rotated-out secret is still honoured,
the signature header carries one signature per secret, space-separated, as the specification
allows: a receiver holding either secret verifies the delivery.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import datetime

from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
#: Random bytes in a secret; the specification asks for 24 to 64.
SECRET_BYTES = 32


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signed_headers(
    event_id: str, body: str, secrets_: Sequence[str], at: datetime
) -> dict[str, str]:
    """The three headers for one delivery attempt of ``body`` at ``at``."""
    signatures = " ".join(Webhook(s).sign(event_id, at, body) for s in secrets_)
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
    }
