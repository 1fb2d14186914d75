"""Answers to unchanged reports, written once per device and binding.

A device that re-sends its report is answered the same JSON each time but for
``observedAt``. ``UnchangedAnswers`` keeps, per device, the answer it last wrote cut around
that value, with every value the answer was written from; an unchanged report whose outcome
has the same values gets those bytes with its own ``observedAt`` put back in, and skips
building and serializing the answer's model.

It remembers answers, never decisions: it is asked only once the pipeline has decided the
report (its conditional write in the state store included), with that outcome, and it
answers from the outcome's own values. A binding changed at another replica, a device
deleted or re-bound, another device's credential: each is decided before this, and an
outcome that differs in any value the answer shows is written anew.
"""

from __future__ import annotations

from typing import Any, Final

from gateway.dlr.pipeline import Outcome

_KEY: Final = b'"observedAt":"'


def written_from(outcome: Outcome) -> tuple[Any, ...]:
    """Every value the answer to ``outcome`` shows, but ``observedAt``
    (``gateway.api.devices.report_result``)."""
    b = outcome.binding
    return (
        b.aeui,
        b.carrier_endpoint_id,  # None: the one derived from the AEUI, beside it
        b.location_id,
        b.status,
        b.address,
        b.latitude,
        b.longitude,
        b.coordinates_source,
        b.accuracy_meters,
        b.caller_name,
        b.telephone_number,
        outcome.location,
        outcome.endpoint,
        outcome.source,
        outcome.warnings,
    )


def _comparable(outcome: Outcome) -> bool:
    """Whether equal values mean equal JSON: ``0.0 == -0.0``, and the two are written apart."""
    b = outcome.binding
    return b.observed_at is not None and b.latitude != 0.0 and b.longitude != 0.0


class UnchangedAnswers:
    """The JSON answer of each device's last unchanged report, cut around its ``observedAt``;
    beyond ``maxsize`` devices (0: off), the one whose answer was written longest ago goes
    out. A plain dict: a hit costs a lookup (an LRU's bookkeeping cost as much again)."""

    def __init__(self, maxsize: int) -> None:
        self._maxsize = maxsize
        self._answers: dict[str, tuple[tuple[Any, ...], bytes, bytes]] | None = (
            {} if maxsize > 0 else None
        )
        self.hits = 0

    def get(self, outcome: Outcome) -> bytes | None:
        """The answer to ``outcome``, when one written from the same values is remembered."""
        if self._answers is None or outcome.changed:
            return None
        known = self._answers.get(outcome.binding.aeui)
        if known is None or not _comparable(outcome) or known[0] != written_from(outcome):
            return None
        self.hits += 1
        observed_at = outcome.binding.observed_at
        assert observed_at is not None  # _comparable
        return known[1] + observed_at.isoformat().encode("ascii") + known[2]

    def put(self, outcome: Outcome, answer: bytes) -> None:
        """Remember ``answer``, the JSON written for the unchanged ``outcome``."""
        observed_at = outcome.binding.observed_at
        if self._answers is None or outcome.changed or not _comparable(outcome):
            return
        assert observed_at is not None  # _comparable
        value = _KEY + observed_at.isoformat().encode("ascii") + b'"'
        if answer.count(_KEY) != 1 or answer.count(value) != 1:
            return  # not one plain observedAt to cut around: always written in full
        head, tail = answer.split(value)
        aeui = outcome.binding.aeui
        self._answers.pop(aeui, None)  # written now: the last to go
        self._answers[aeui] = (written_from(outcome), head + _KEY, b'"' + tail)
        if len(self._answers) > self._maxsize:
            del self._answers[next(iter(self._answers))]
