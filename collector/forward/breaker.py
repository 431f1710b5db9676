"""A circuit breaker per destination (the BHXH gateway, the HIS).

When a destination keeps failing, asking it again for every queued job only adds load where it
hurts and ties up the forwarders: after ``failures`` failures in a row the circuit opens and no
job is sent there for ``cooldown`` seconds; then one probe goes (half-open). Its success closes
the circuit; its failure opens it again for another cooldown. Jobs that are not sent are not
attempts: they wait in the outbox, and nothing is lost.
"""

import time
from collections.abc import Callable

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        failures: int = 5,
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str, str], None] | None = None,
    ) -> None:
        if failures < 1 or cooldown < 0:
            raise ValueError("a circuit breaker needs failures >= 1 and cooldown >= 0")
        self.name = name
        self.failures = failures
        self.cooldown = cooldown
        self.clock = clock
        self.on_change = on_change  # (name, new state): metrics, logs
        self.state = CLOSED
        self.opened = 0  # how many times the circuit opened
        self._in_a_row = 0
        self._open_until = 0.0
        self._probing = False

    def allow(self) -> bool:
        """May a request go to the destination now? In half-open state, one at a time."""
        if self.state == OPEN:
            if self.clock() < self._open_until:
                return False
            self._set(HALF_OPEN)
        if self.state == HALF_OPEN:
            if self._probing:
                return False
            self._probing = True
        return True

    def ready(self) -> int:
        """How many requests ``allow`` would let go now, at most (0, 1, or many: ``failures``
        stands for many) — without taking the probe."""
        if self.state == CLOSED:
            return self.failures
        if self.state == OPEN and self.clock() < self._open_until:
            return 0
        return 0 if self._probing else 1

    def retry_at(self) -> float:
        """Seconds from now until a request may go again (0 when it may now)."""
        if self.state != OPEN:
            return 0.0
        return max(0.0, self._open_until - self.clock())

    def success(self) -> None:
        self._in_a_row = 0
        self._probing = False
        if self.state != CLOSED:
            self._set(CLOSED)

    def failure(self) -> None:
        self._in_a_row += 1
        self._probing = False
        if self.state == HALF_OPEN or self._in_a_row >= self.failures:
            self._open_until = self.clock() + self.cooldown
            if self.state != OPEN:
                self.opened += 1
                self._set(OPEN)

    def release(self) -> None:
        """A request that was allowed ended without telling anything about the destination."""
        self._probing = False

    def _set(self, state: str) -> None:
        self.state = state
        if self.on_change is not None:
            self.on_change(self.name, state)
