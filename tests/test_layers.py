"""The domain's packages import no web framework, and the core none of the HTTP clients
either (docs/architecture.md, "Layers"): read from their source, not from what a process
happened to load."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

GATEWAY = Path(__file__).resolve().parent.parent / "gateway"
DOMAIN = ("dlr", "store", "events", "network", "geocoding", "bandwidth", "pidf", "bulk")
#: Beside the web framework: the core talks to the carrier and the geocoder through ports.
CORE = ("dlr", "store", "network")
WEB = ("starlette", "uvicorn", "jinja2", "gateway.api", "gateway.console", "gateway.app")
HTTP = ("httpx", "aiohttp")


def _imports(package: str) -> list[tuple[str, str]]:
    found = []
    for path in sorted((GATEWAY / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found += [(str(path.relative_to(GATEWAY.parent)), name) for name in names]
    return found


def _under(name: str, roots: tuple[str, ...]) -> bool:
    return any(name == root or name.startswith(root + ".") for root in roots)


@pytest.mark.parametrize("package", DOMAIN)
def test_the_domain_imports_no_web_framework(package: str) -> None:
    assert [(where, name) for where, name in _imports(package) if _under(name, WEB)] == []


@pytest.mark.parametrize("package", CORE)
def test_the_core_imports_no_http_client(package: str) -> None:
    assert [(where, name) for where, name in _imports(package) if _under(name, HTTP)] == []


def test_the_check_sees_an_import() -> None:
    assert ("gateway/bandwidth/calls.py", "httpx") in _imports("bandwidth")
