"""The components of the API document: each shape of the JSON API, as a JSON schema."""

from __future__ import annotations

from typing import Any

from gateway.api.admin_models import (
    CallbackNumber,
    CallbackNumberWrite,
    DeviceHistory,
    Endpoint,
    EndpointReplace,
    EndpointWrite,
    HistoryEntry,
    Location,
    LocationHistory,
    LocationReplace,
    LocationWrite,
    NotificationRecipient,
    NotificationRecipientWrite,
    NumberHistory,
    TokenRevocation,
)
from gateway.api.answers import (
    AddressValidation,
    DeviceLocation,
    EmergencyLocation,
    PendingReport,
    ReportResult,
)
from gateway.api.import_models import ImportChecked, ImportStatus
from gateway.api.models import (
    AddressInput,
    LocationReport,
    address_input_schema,
    components,
)
from gateway.api.network_models import schemas as network_schemas
from gateway.api.problems import ProblemDetails
from gateway.api.webhook_models import (
    EventPage,
    EventRetry,
    WebhookList,
    WebhookUpdate,
    WebhookWithSecret,
    WebhookWrite,
)


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


#: ``/v1/addresses/validate`` gives a verdict on any line: an empty one is ``valid: false``.
VALIDATE_INPUT = address_input_schema(0)

SCHEMAS: dict[str, Any] = {
    **components(AddressInput),
    **components(Endpoint, EndpointWrite, EndpointReplace),
    **components(Location, LocationWrite, LocationReplace),
    **components(NotificationRecipient, NotificationRecipientWrite),
    **components(Problem=ProblemDetails),
    **components(LocationReport),
    **components(ReportResult, DeviceLocation, PendingReport),
    **components(ImportChecked, ImportStatus),
    **components(AddressValidation),
    **components(DeviceHistory, HistoryEntry, NumberHistory, LocationHistory),
    **components(CallbackNumber, CallbackNumberWrite),
    **components(TokenRevocation),
    **components(EmergencyLocation),
    **components(
        WebhookList, WebhookWithSecret, WebhookWrite, WebhookUpdate, EventPage, EventRetry
    ),
    **components(**network_schemas()),
}
