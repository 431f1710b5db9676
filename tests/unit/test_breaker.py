"""The circuit breaker per destination: opens after failures in a row, one probe after the
cooldown, closes on the probe's success."""

import pytest

from collector.forward.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_it_opens_after_the_configured_failures_in_a_row() -> None:
    clock = Clock()
    changes: list[tuple[str, str]] = []
    b = CircuitBreaker("fhir", failures=3, cooldown=10, clock=clock, on_change=lambda *c: changes.append(c))
    for _ in range(2):
        assert b.allow()
        b.failure()
    assert b.state == CLOSED
    b.success()  # a success in between: the count starts again
    for _ in range(2):
        b.failure()
    assert b.state == CLOSED
    b.failure()
    assert b.state == OPEN and not b.allow() and b.retry_at() == 10
    assert changes == [("fhir", OPEN)] and b.opened == 1


def test_after_the_cooldown_one_probe_goes_and_its_success_closes() -> None:
    clock = Clock()
    b = CircuitBreaker("bhxh", failures=1, cooldown=5, clock=clock)
    b.failure()
    clock.now += 4.9
    assert not b.allow()
    clock.now += 0.2
    assert b.allow() and b.state == HALF_OPEN
    assert not b.allow()  # one probe at a time
    b.success()
    assert b.state == CLOSED and b.allow() and b.allow()


def test_a_failed_probe_opens_it_again_for_a_whole_cooldown() -> None:
    clock = Clock()
    b = CircuitBreaker("hl7v2", failures=2, cooldown=5, clock=clock)
    b.failure()
    b.failure()
    clock.now += 5
    assert b.allow()
    b.failure()
    assert b.state == OPEN and b.retry_at() == 5 and b.opened == 2


def test_a_released_probe_lets_the_next_one_go() -> None:
    clock = Clock()
    b = CircuitBreaker("fhir", failures=1, cooldown=1, clock=clock)
    b.failure()
    clock.now += 1
    assert b.allow()
    b.release()  # the job ended without reaching the destination
    assert b.allow()


@pytest.mark.parametrize(("failures", "cooldown"), [(0, 1), (1, -1)])
def test_nonsense_settings_are_refused(failures: int, cooldown: float) -> None:
    with pytest.raises(ValueError, match="failures >= 1"):
        CircuitBreaker("x", failures, cooldown)


def test_ready_says_how_many_may_go_without_taking_the_probe() -> None:
    clock = Clock()
    b = CircuitBreaker("fhir", failures=2, cooldown=5, clock=clock)
    assert b.ready() == 2
    b.failure()
    b.failure()
    assert b.ready() == 0
    clock.now += 5
    assert b.ready() == 1 and b.ready() == 1  # asking does not take it
    assert b.allow()
    assert b.ready() == 0
    b.success()
    assert b.ready() == 2
