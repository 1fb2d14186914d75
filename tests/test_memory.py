"""gateway.memory.trim: returns the C heap's free pages where glibc can, a no-op elsewhere."""

from __future__ import annotations

import sys

import pytest

from gateway import memory


def test_trim_runs_and_says_whether_it_could() -> None:
    done = memory.trim()
    assert isinstance(done, bool)
    if sys.platform.startswith("linux") and memory._malloc_trim() is not None:
        assert done
    assert memory.trim() is done  # idempotent: nothing breaks on a second call


def test_trim_without_glibc_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    memory._malloc_trim.cache_clear()
    monkeypatch.setattr(memory.sys, "platform", "darwin")
    try:
        assert memory.trim() is False
    finally:
        memory._malloc_trim.cache_clear()
