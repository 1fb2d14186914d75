"""The import's progress: a bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import io

from gateway.bulk.progress import Bar, Lines, for_terminal


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    progress = for_terminal("import abc", out)
    assert isinstance(progress, Lines)
    progress.update(0, 0, 10)
    progress.update(10, 2, 10)
    progress.close()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("import abc: 0/10 (0%)")
    assert lines[-1].startswith("import abc: 10/10 (100%)") and lines[-1].endswith("2 failed")
    assert "rows/s" in lines[-1] and "ETA" in lines[-1]


def test_a_bar_on_a_terminal() -> None:
    out = Terminal()
    progress = for_terminal("import abc", out)
    assert isinstance(progress, Bar)
    progress.update(3, 1, 10)
    progress.close()
    shown = out.getvalue()
    assert "import abc" in shown and "3/10" in shown and "1 failed" in shown
