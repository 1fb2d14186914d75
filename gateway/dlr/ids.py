"""Deterministic record IDs: every replica derives the same ones, so no shared database is needed.

A location ID is a hash of the canonical dispatchable fields (not ZIP+4, description or
coordinates); an endpoint ID is a hash of the Alternate End User ID. Both are 32
lower-case hex characters: within the carrier's ``[A-Za-z0-9]{1,32}`` rule, and never
``locations`` or ``notificationRecipients``.
"""

from __future__ import annotations

import functools
import hashlib
import sys

from gateway.bandwidth.models import Address

#: Changing the scheme changes every ID; bump it only with a migration plan.
_SCHEME = b"dlr-v1"

DISPATCHABLE_FIELDS = (
    "house_number",
    "house_suffix",
    "prefix_directional",
    "street_name",
    "street_suffix",
    "post_directional",
    "address_line2",
    "city",
    "state_code",
    "zip",
    "country",
)


def _digest(*parts: str) -> str:
    h = hashlib.blake2b(digest_size=16, person=_SCHEME)
    for part in parts:
        data = part.encode("utf-8")
        h.update(len(data).to_bytes(4, "big"))
        h.update(data)
    return h.hexdigest()


@functools.lru_cache(maxsize=4096)
def location_id_for(address: Address) -> str:
    """The location ID of a canonical address (memoized: every report needs its address's,
    and an address's hash costs a tenth of the digest). Interned: the devices at one address
    share one string, however long ago the memo forgot it."""
    return sys.intern(
        _digest("location", *((getattr(address, f) or "") for f in DISPATCHABLE_FIELDS))
    )


def _prefixed(part: str) -> hashlib.blake2b:
    h = hashlib.blake2b(digest_size=16, person=_SCHEME)
    data = part.encode("utf-8")
    h.update(len(data).to_bytes(4, "big"))
    h.update(data)
    return h


#: ``_digest("endpoint", ...)`` up to the AEUI: a binding derives its endpoint ID when read.
_ENDPOINT = _prefixed("endpoint")


def endpoint_id_for(alternate_end_user_id: str) -> str:
    """The endpoint ID of a device: ``_digest("endpoint", alternate_end_user_id)``."""
    h = _ENDPOINT.copy()
    data = alternate_end_user_id.encode("utf-8")
    h.update(len(data).to_bytes(4, "big"))
    h.update(data)
    return h.hexdigest()
