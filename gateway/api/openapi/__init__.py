"""The API document (OpenAPI 3.1), as ``dlr-gateway openapi`` prints it."""

from __future__ import annotations

import json
from typing import Any

from gateway import __version__
from gateway.api.openapi.components import SCHEMAS
from gateway.api.openapi.events import event_paths
from gateway.api.openapi.imports import import_paths
from gateway.api.openapi.network import network_paths
from gateway.api.openapi.paths import paths


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "dlr-gateway",
            "version": __version__,
            "description": (
                "A Dynamic Location Routing gateway for 911: a JSON face over the Bandwidth "
                "Emergency Calling API. Errors are RFC 9457 problem details; problem types "
                "are explained in the README."
            ),
        },
        "paths": paths() | event_paths() | network_paths() | import_paths(),
        "components": {
            "securitySchemes": {
                "adminKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An admin API key from GATEWAY_ADMIN_KEYS.",
                },
                "emergencyQueryBasic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "GATEWAY_EMERGENCY_QUERY_USERNAME and _PASSWORD.",
                },
                "emergencyQueryToken": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "token",
                    "description": "GATEWAY_EMERGENCY_QUERY_TOKEN, in the URL the carrier calls.",
                },
                "deviceToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": (
                        "A device JWT: `sub` is the AEUI, `exp` is required; an optional "
                        "`phone_number` claim (E.164) is the one callback number it may report."
                    ),
                },
            },
            "schemas": SCHEMAS,
        },
    }


def render() -> str:
    """The document as the repository holds it (``gateway/openapi.json``)."""
    return json.dumps(document(), indent=2) + "\n"
