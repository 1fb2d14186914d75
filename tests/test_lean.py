"""gateway.lean.without: an optional extra left out of one import, and out of the gateway's."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gateway.lean import without


def test_inside_the_block_the_module_is_missing_and_after_it_is_back() -> None:
    name = "tabnanny"  # stdlib, small, no side effect on import; nothing here imports it
    if name in sys.modules:
        pytest.skip(f"{name} is already imported")
    with without(name), pytest.raises(ImportError):
        __import__(name)
    assert name not in sys.modules
    assert __import__(name).__name__ == name


def test_a_module_already_imported_is_left_alone() -> None:
    import json

    with without("json"):
        assert __import__("json") is json
    assert sys.modules["json"] is json


def test_the_serving_process_imports_none_of_the_extras() -> None:
    code = (
        "import sys, gateway.cli, gateway.app, gateway.server\n"
        "print(' '.join(sorted(m for m in ('pygments', 'requests', 'rich', 'watchfiles')"
        " if m in sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == ""
