"""What keeps a sick carrier from being hammered: a circuit breaker, a retry budget and
adaptive attempt timeouts, shared by all calls of one ``BandwidthClient``; how each decides
is in docs/architecture.md ("The carrier's guards")."""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Final, Literal

from gateway.bandwidth.errors import UpstreamUnavailable
from gateway.settings import DEFAULTS

__all__ = ["AttemptTimeouts", "CircuitBreaker", "CircuitOpenError", "CircuitState", "RetryBudget"]

log = logging.getLogger(__name__)

CircuitState = Literal["closed", "open", "half_open"]

#: ``dlr_upstream_circuit_state``: higher is worse.
STATE_VALUES: Final[dict[CircuitState, float]] = {"closed": 0.0, "half_open": 1.0, "open": 2.0}


class CircuitOpenError(UpstreamUnavailable):
    """The circuit to the carrier is open: the call was refused without a request.

    Never ``ambiguous`` (nothing was sent); ``retry_after`` is the seconds until the
    circuit lets a trial call through (0 while a trial is already under way).
    """


class CircuitBreaker:
    """Closed, open or half-open; see the module docstring.

    ``open_until`` is the ``clock()`` time at which an open circuit turns half-open; it is
    ``None`` while closed and stays set (in the past) while half-open, so that readiness
    can show since when the carrier has been given up on.
    """

    def __init__(
        self,
        failure_threshold: int = DEFAULTS.breaker_failures,
        cooldown: float = DEFAULTS.breaker_cooldown,
        *,
        window: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if cooldown < 0:
            raise ValueError("cooldown must not be negative")
        if window <= 0:
            raise ValueError("window must be greater than 0")
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self.window = window
        self._clock = clock
        #: Consecutive failed attempts since the last success.
        self.failures = 0
        self.open_until: float | None = None
        self._trial = False  # a half-open trial attempt is under way
        #: Whole seconds of ``clock()`` -> [answered, failed] attempts in that second.
        self._recent: dict[int, list[int]] = {}

    def __repr__(self) -> str:
        return f"CircuitBreaker(state={self.state!r}, failures={self.failures})"

    @property
    def state(self) -> CircuitState:
        if self.open_until is None:
            return "closed"
        return "open" if self._clock() < self.open_until else "half_open"

    def retry_after(self) -> float:
        """Seconds until a trial call may go through; 0 when one may now (or is under way)."""
        if self.open_until is None:
            return 0.0
        return max(0.0, self.open_until - self._clock())

    def allow(self) -> bool:
        """May an attempt go out now? In half-open, ``True`` once: that attempt is the trial.

        Every attempt let through must end in ``success()``, ``failure()`` or, when it
        says nothing about the carrier (cancelled, refused locally), ``release()``.
        """
        state = self.state
        if state == "closed":
            return True
        if state == "open" or self._trial:
            return False
        self._trial = True
        log.info("circuit half-open: letting one trial call through")
        return True

    def failure_share(self) -> float:
        """The share of the last ``window`` seconds' attempts that failed (0 with none)."""
        self._count()
        answered = sum(counts[0] for counts in self._recent.values())
        failed = sum(counts[1] for counts in self._recent.values())
        return failed / (answered + failed) if failed else 0.0

    def success(self) -> None:
        """The carrier answered: whatever the state, it is alive; close the circuit."""
        if self.open_until is not None:
            log.info("circuit closed: the carrier answered again")
        self._count()[0] += 1
        self.failures = 0
        self.open_until = None
        self._trial = False

    def failure(self) -> None:
        """An attempt found the carrier dead or sick."""
        state = self.state
        if state == "open":
            return  # an attempt from before the circuit opened; the cooldown stands
        self._count()[1] += 1
        self.failures += 1
        if state == "half_open" or (
            self.failures >= self.failure_threshold and self.failure_share() >= 0.5
        ):
            self.open_until = self._clock() + self.cooldown
            self._trial = False
            log.warning(
                "circuit open for %.1fs after %d consecutive failed attempts"
                " (%.0f%% of the last %gs' attempts failed)",
                self.cooldown,
                self.failures,
                100 * self.failure_share(),
                self.window,
            )

    def release(self) -> None:
        """An attempt ended without a verdict; a half-open circuit may try again."""
        self._trial = False

    def _count(self) -> list[int]:
        """This second's counts, once the seconds older than the window are dropped."""
        now = int(self._clock())
        counts = self._recent.get(now)
        if counts is None:
            oldest = now - math.ceil(self.window)
            for second in [s for s in self._recent if s <= oldest]:
                del self._recent[second]
            counts = self._recent[now] = [0, 0]
        return counts


class RetryBudget:
    """A token bucket that bounds retries to a share of calls; see the module docstring.

    It starts with ``burst`` tokens and holds at most ``burst + 100 * ratio``: enough for
    a burst of failures after a quiet spell, not enough to turn an outage into a storm.
    """

    def __init__(
        self,
        ratio: float = DEFAULTS.retry_budget_ratio,
        min_per_second: float = 2.0,
        *,
        burst: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ratio < 0 or min_per_second < 0 or burst < 0:
            raise ValueError("ratio, min_per_second and burst must not be negative")
        self.ratio = ratio
        self.min_per_second = min_per_second
        self.cap = burst + 100 * ratio
        self._clock = clock
        self._tokens = burst
        self._stamp = clock()
        #: Retries refused for want of a token.
        self.denied = 0

    def __repr__(self) -> str:
        return f"RetryBudget(tokens={self.tokens:.2f}, denied={self.denied})"

    @property
    def tokens(self) -> float:
        self._accrue()
        return self._tokens

    def deposit(self) -> None:
        """A call's first attempt: it earns ``ratio`` of a retry."""
        self._accrue()
        self._tokens = min(self.cap, self._tokens + self.ratio)

    def withdraw(self) -> bool:
        """Take a token for one retry; ``False`` (and count it) when there is none."""
        self._accrue()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        self.denied += 1
        return False

    def _accrue(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._stamp)
        self._stamp = now
        self._tokens = min(self.cap, self._tokens + elapsed * self.min_per_second)


class AttemptTimeouts:
    """Attempt timeouts that follow the carrier's latency; see the module docstring."""

    def __init__(
        self,
        ceiling: float,
        floor: float = 1.0,
        *,
        factor: float = 4.0,
        size: int = 256,
        min_answers: int = 32,
        every: int = 16,
    ) -> None:
        if ceiling <= 0 or floor <= 0 or factor <= 0:
            raise ValueError("ceiling, floor and factor must be greater than 0")
        self.ceiling = ceiling
        self.floor = min(floor, ceiling)
        self.factor = factor
        self.min_answers = min_answers
        self._every = max(1, every)
        self._latencies: deque[float] = deque(maxlen=size)
        #: The last ``size`` attempts' outcomes (``True``: timed out), and how many timed out.
        self._outcomes: deque[bool] = deque(maxlen=size)
        self._timeouts = 0
        self._fresh = 0  # answers since the quantile was last taken
        self._adaptive = ceiling

    def __repr__(self) -> str:
        return f"AttemptTimeouts(timeout={self.timeout():.3f}, answers={len(self._latencies)})"

    def timeout(self) -> float:
        """The timeout for the next attempt."""
        if len(self._latencies) < self.min_answers or 2 * self._timeouts > len(self._outcomes):
            return self.ceiling
        return self._adaptive

    def answered(self, seconds: float) -> None:
        """An attempt got an answer (any status) after ``seconds``."""
        self._latencies.append(seconds)
        self._outcome(False)
        self._fresh += 1
        if self._fresh >= self._every:
            self._fresh = 0
            ordered = sorted(self._latencies)
            p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]
            self._adaptive = min(self.ceiling, max(self.floor, self.factor * p95))

    def timed_out(self) -> None:
        """An attempt got no answer within its timeout."""
        self._outcome(True)

    def _outcome(self, timed_out: bool) -> None:
        outcomes = self._outcomes
        if len(outcomes) == outcomes.maxlen and outcomes[0]:
            self._timeouts -= 1
        outcomes.append(timed_out)
        self._timeouts += timed_out
