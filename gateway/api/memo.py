"""Report bodies already read: a device's next report usually differs only in ``observedAt``.

Devices re-send the same report on every start, network change and timer, each time with a
new ``observedAt``. ``ReportMemo`` keeps the parsed report of each body seen, keyed by the
body with the ``observedAt`` value cut out; a later body equal to it but for that value
gets the same report with only the new time read and checked, and skips decoding and
validating the rest.

That is sound only where the cut-out body means one thing: the memo takes bodies without a
backslash (no JSON escape can then spell a second ``observedAt`` key or hide a quote) in
which ``"observedAt"`` occurs exactly once, as a key with a plain string value. Anything
else takes the full path, as does every body the full path refused (never memoized).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Final

from cachetools import LRUCache

from gateway.dlr.pipeline import Report

_KEY: Final = b'"observedAt"'
#: The key, the colon and a short string value without escapes, in a body of no backslash.
_OBSERVED: Final = re.compile(rb'"observedAt"[ \t\r\n]*:[ \t\r\n]*"([^"]{1,64})"')


@dataclasses.dataclass(frozen=True, slots=True)
class Cut:
    """A body split around its ``observedAt`` value: ``template`` is the rest of it."""

    template: bytes
    observed_at: str


def cut(body: bytes) -> Cut | None:
    """``body`` as a template and its ``observedAt`` text, or ``None`` when not memoizable."""
    if b"\\" in body or body.count(_KEY) != 1:
        return None
    found = _OBSERVED.search(body)
    if found is None:
        return None
    start, end = found.span(1)
    try:
        text = found.group(1).decode("utf-8")
    except UnicodeDecodeError:
        return None
    return Cut(body[:start] + body[end:], text)


class ReportMemo:
    """Parsed reports by body template, least recently used out beyond ``maxsize``."""

    def __init__(self, maxsize: int) -> None:
        self._reports: LRUCache[bytes, Report] | None = LRUCache(maxsize) if maxsize > 0 else None
        self.hits = 0

    def get(self, template: bytes) -> Report | None:
        if self._reports is None:
            return None
        report = self._reports.get(template)
        if report is not None:
            self.hits += 1
        return report

    def put(self, template: bytes, report: Report) -> None:
        if self._reports is not None:
            self._reports[template] = report
