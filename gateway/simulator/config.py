"""The simulator's knobs: credentials, latency, faults and the rate limit.

A ``SimulatorConfig`` is mutable on purpose: tests and benchmarks change ``fault_rate`` and the
like on a running simulator, and every request reads the current values.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from gateway.settings import SANDBOX_ACCOUNT_ID, SANDBOX_PASSWORD, SANDBOX_USERNAME

#: Every fault the simulator can inject.
FAULT_KINDS: tuple[str, ...] = ("500", "503", "429", "timeout", "reset")

#: The JSON (camelCase) names of the fields ``/_sim/reset`` may change, and their Python names.
_JSON_FIELDS: dict[str, str] = {
    "latencyMs": "latency_ms",
    "faultRate": "fault_rate",
    "faultKinds": "fault_kinds",
    "rateLimit": "rate_limit",
    "timeoutHold": "timeout_hold",
    "lateApply": "late_apply",
    "ambiguousRate": "ambiguous_rate",
    "retryAfter": "retry_after",
    "seed": "seed",
}
_FLOAT_FIELDS = frozenset(
    {"latency_ms", "fault_rate", "rate_limit", "timeout_hold", "ambiguous_rate"}
)


@dataclass
class SimulatorConfig:
    account_id: str = SANDBOX_ACCOUNT_ID
    username: str = SANDBOX_USERNAME
    password: str = field(default=SANDBOX_PASSWORD, repr=False)
    #: Added to every carrier API request, milliseconds.
    latency_ms: float = 0.0
    #: Probability in [0, 1] that a carrier API request gets a fault.
    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = FAULT_KINDS
    #: Requests per second across the account (token bucket); 0 turns it off.
    rate_limit: float = 0.0
    #: Seconds a "timeout" fault holds the request before answering.
    timeout_hold: float = 30.0
    #: A held ("timeout") write is applied when the hold ends, as a real server may.
    late_apply: bool = True
    #: Share of 500/503/reset faults on writes that are applied before the error is answered.
    ambiguous_rate: float = 0.5
    #: Seconds in ``Retry-After`` for injected 429 and 503 answers.
    retry_after: int = 1
    #: RNG seed for reproducible faults.
    seed: int | None = None

    def __post_init__(self) -> None:
        self.fault_kinds = tuple(self.fault_kinds)
        self.check()

    def check(self) -> None:
        """Raise ``ValueError`` naming the first field that is out of range."""
        for name in ("latency_ms", "rate_limit", "timeout_hold"):
            value = getattr(self, name)
            if not _number(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0")
        for name in ("fault_rate", "ambiguous_rate"):
            value = getattr(self, name)
            if not _number(value) or not 0 <= value <= 1:
                raise ValueError(f"{name} must be a number between 0 and 1")
        unknown = [k for k in self.fault_kinds if k not in FAULT_KINDS]
        if unknown or not all(isinstance(k, str) for k in self.fault_kinds):
            raise ValueError(f"fault_kinds may hold only {', '.join(FAULT_KINDS)}")
        if not isinstance(self.late_apply, bool):
            raise ValueError("late_apply must be a boolean")
        if isinstance(self.retry_after, bool) or not isinstance(self.retry_after, int):
            raise ValueError("retry_after must be an integer")
        if self.retry_after < 0:
            raise ValueError("retry_after must be >= 0")
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int)
        ):
            raise ValueError("seed must be an integer or null")

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> SimulatorConfig:
        """Credentials from ``BANDWIDTH_ACCOUNT_ID``/``_USERNAME``/``_PASSWORD``, else sandbox."""
        env = os.environ if environ is None else environ
        return cls(
            account_id=env.get("BANDWIDTH_ACCOUNT_ID") or SANDBOX_ACCOUNT_ID,
            username=env.get("BANDWIDTH_USERNAME") or SANDBOX_USERNAME,
            password=env.get("BANDWIDTH_PASSWORD") or SANDBOX_PASSWORD,
        )

    def update(self, changes: Mapping[str, Any]) -> None:
        """Apply camelCase ``changes`` (the ``/_sim/reset`` body), all or nothing."""
        unknown = sorted(set(changes) - set(_JSON_FIELDS))
        if unknown:
            raise ValueError(f"unknown config field(s): {', '.join(unknown)}")
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for key, value in changes.items():
            name = _JSON_FIELDS[key]
            if name == "fault_kinds":
                if not isinstance(value, list | tuple):
                    raise ValueError("faultKinds must be a list of strings")
                value = tuple(value)
            elif name in _FLOAT_FIELDS:
                if not _number(value):
                    raise ValueError(f"{key} must be a number")
                value = float(value)
            values[name] = value
        candidate = SimulatorConfig(**values)  # validates
        for f in fields(self):
            setattr(self, f.name, getattr(candidate, f.name))

    def to_json(self) -> dict[str, Any]:
        """The config as JSON, without the password."""
        out: dict[str, Any] = {"accountId": self.account_id, "username": self.username}
        for key, name in _JSON_FIELDS.items():
            value = getattr(self, name)
            out[key] = list(value) if isinstance(value, tuple) else value
        return out


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
