"""The routes and the API document agree; the document is what ``dlr-gateway openapi`` prints."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import validate
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from gateway.cli import main
from tests.harness import EMPIRE_STATE_ADDRESS

ROOT = Path(__file__).resolve().parents[2]


def document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((ROOT / "gateway" / "openapi.json").read_text())
    return loaded


def test_document_is_valid_openapi_31() -> None:
    doc = document()
    assert doc["openapi"].startswith("3.1")
    validate(doc)


def test_committed_document_is_what_the_command_prints(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["openapi"]) == 0
    printed = capsys.readouterr().out
    assert (ROOT / "gateway" / "openapi.json").read_text() == printed
    assert (ROOT / "openapi.json").read_text() == printed


def test_routes_and_document_agree(client: TestClient) -> None:
    served: set[tuple[str, str]] = set()
    for route in client.app.routes:  # type: ignore[attr-defined]
        if isinstance(route, Mount) or route.path == "/console":  # the console's, not the API's
            continue
        assert isinstance(route, Route)
        path = re.sub(r"\{(\w+?)(:\w+)?\}", lambda m: "{" + _camel(m.group(1)) + "}", route.path)
        for method in route.methods or ():
            if method != "HEAD":
                served.add((method.lower(), path))
    documented = {(method, path) for path, ops in document()["paths"].items() for method in ops}
    assert served == documented


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def test_served_document_is_the_file(client: TestClient) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.json() == document()


def test_answers_match_their_documented_schemas(client: TestClient) -> None:
    doc = document()

    def check(path: str, method: str, response: Any) -> None:
        spec = doc["paths"][path][method]["responses"][str(response.status_code)]
        media = response.headers["content-type"].split(";")[0]
        schema = spec["content"][media]["schema"]
        # References point into components: validate against a schema that carries them.
        jsonschema.validate(response.json(), {**schema, "components": doc["components"]})

    created = client.post("/v1/locations", json={"address": EMPIRE_STATE_ADDRESS})
    check("/v1/locations", "post", created)
    check("/v1/locations", "get", client.get("/v1/locations"))
    location_id = created.json()["locationId"]
    check("/v1/locations/{locationId}", "get", client.get(f"/v1/locations/{location_id}"))
    check("/v1/locations/{locationId}", "get", client.get("/v1/locations/nothere"))
    check("/v1/endpoints", "get", client.get("/v1/endpoints", headers={"Authorization": ""}))
