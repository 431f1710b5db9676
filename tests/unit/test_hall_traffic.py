"""The simulator's clock and traffic: a speed-up factor, and arrivals shaped like a reception day."""

import datetime
import random
import time

from sim.hall import FLAT, MORNING, SHAPES, VIETNAM, Clock, Shape


def test_the_clock_runs_speed_times_faster_from_its_start() -> None:
    start = datetime.datetime(2026, 11, 23, 7, 0, tzinfo=VIETNAM).timestamp()
    clock = Clock(start, speed=60)
    time.sleep(0.05)
    assert 0 < clock.now() - start < 60  # 0.05 real s is 3 simulated s (well under a minute)
    assert clock.hour() == 7 and clock.real(60) == 1.0


def test_the_morning_shape_peaks_at_7_to_9_and_is_empty_at_night() -> None:
    shape = Shape(peak=30, weights=SHAPES["morning"])
    assert shape.rate(7) == shape.rate(8) == 30 / 3600
    assert shape.rate(12) < shape.rate(10) < shape.rate(8)
    assert shape.rate(2) == 0 and shape.rate(20) == 0
    assert Shape(peak=30, weights=SHAPES[FLAT]).rate(2) == 30 / 3600
    assert max(MORNING.values()) == 1.0


def test_arrivals_drawn_at_a_rate_count_like_the_rate() -> None:
    shape = Shape(peak=30, weights=MORNING)
    rng = random.Random(1)
    per_hour = {}
    for hour in (8, 12):
        t, n = 0.0, 0
        while t < 100 * 3600:  # a hundred such hours
            t += rng.expovariate(shape.rate(hour))
            n += 1
        per_hour[hour] = n / 100
    assert 27 < per_hour[8] < 33 and 2 < per_hour[12] < 4.5  # 30 and 3 patients per counter-hour
