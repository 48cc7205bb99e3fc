"""The clocks behind the ``Clock`` port: the wall clock and the accelerated demo clock.

The demo clock's ticks (real seconds) and wall time are injected, so every figure is
exact; the thread test uses the real monotonic clock and asserts only on order.
"""

from __future__ import annotations

import itertools
import math
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from application.ports import Clock
from infrastructure.clock import DemoClock, WallClock, demo_clock, demo_start, wait_until
from infrastructure.settings import Settings

REAL = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
START = datetime(2026, 7, 1, tzinfo=UTC)


class Time:
    """Injected real time: ``ticks`` (monotonic seconds) and ``wall`` move together."""

    def __init__(self, wall: datetime = REAL) -> None:
        self.seconds = 0.0
        self.wall_at = wall

    def ticks(self) -> float:
        return self.seconds

    def wall(self) -> datetime:
        return self.wall_at

    def pass_(self, seconds: float) -> None:
        self.seconds += seconds
        self.wall_at += timedelta(seconds=seconds)


def demo(t: Time, start: datetime = START, speed: float = 180.0, **options: bool) -> DemoClock:
    return DemoClock(start, speed, ticks=t.ticks, wall=t.wall, **options)


def test_the_wall_clock_is_utc_now() -> None:
    before = datetime.now(UTC)
    now = WallClock().now()
    after = datetime.now(UTC)
    assert before <= now <= after
    assert now.utcoffset() == timedelta(0)
    assert WallClock().seconds_until(before) == 0.0


def test_both_clocks_fit_the_port() -> None:
    clocks: list[Clock] = [WallClock(), demo(Time())]
    assert all(c.now().tzinfo is not None for c in clocks)


def test_the_demo_clock_runs_speed_times_real_time() -> None:
    t = Time()
    clock = demo(t)
    assert clock.now() == START
    t.pass_(5)
    assert clock.now() == START + timedelta(minutes=15)  # one 15-minute candle every 5 s
    t.pass_(55)
    assert clock.now() == START + timedelta(hours=3)


def test_the_demo_clock_never_passes_real_time_then_follows_it() -> None:
    t = Time()
    clock = demo(t, start=REAL - timedelta(hours=1), speed=60.0)
    t.pass_(30)
    assert clock.now() == REAL - timedelta(minutes=30)
    t.pass_(600)  # it would be 9 hours ahead
    assert clock.now() == t.wall_at
    t.pass_(7)
    assert clock.now() == t.wall_at


def test_the_demo_clock_never_goes_backwards() -> None:
    t = Time()
    clock = demo(t, start=REAL - timedelta(minutes=1), speed=1000.0)
    t.pass_(10)
    shown = clock.now()
    assert shown == t.wall_at
    t.wall_at -= timedelta(minutes=5)  # the machine's clock was stepped back
    assert clock.now() == shown


def test_a_paused_clock_stands_still_and_moves_only_forward_by_hand() -> None:
    t = Time()
    clock = demo(t, running=False)
    t.pass_(100)
    assert clock.now() == START and not clock.running
    clock.advance_to(START + timedelta(days=2))
    assert clock.now() == START + timedelta(days=2)
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance_to(START + timedelta(days=1))
    with pytest.raises(ValueError, match="cannot pass real time"):
        clock.advance_to(t.wall_at + timedelta(seconds=1))
    clock.resume()
    t.pass_(20)
    assert clock.now() == START + timedelta(days=2, hours=1)
    clock.pause()
    t.pass_(20)
    assert clock.now() == START + timedelta(days=2, hours=1)


@pytest.mark.parametrize(
    ("start", "speed", "message"),
    [
        (REAL + timedelta(seconds=1), 180.0, "cannot start in the future"),
        (datetime(2026, 7, 1), 180.0, "needs a time zone"),
        (START, 0.0, "positive number"),
        (START, math.inf, "positive number"),
        (START, math.nan, "positive number"),
    ],
)
def test_bad_demo_clocks_are_refused(start: datetime, speed: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        demo(Time(), start=start, speed=speed)


def test_real_seconds_until_a_simulated_moment() -> None:
    t = Time()
    clock = demo(t)
    assert clock.seconds_until(START + timedelta(minutes=15)) == pytest.approx(5.0)
    assert clock.seconds_until(START) == 0.0
    assert clock.seconds_until(REAL) == pytest.approx((REAL - START).total_seconds() / 180)
    # the clock cannot show a moment before the wall clock gets there
    near = demo(t, start=REAL - timedelta(hours=1))
    assert near.seconds_until(REAL + timedelta(hours=1)) == pytest.approx(3600.0)
    clock.pause()
    assert clock.seconds_until(START + timedelta(minutes=1)) == math.inf


def test_the_default_demo_stays_behind_real_time_for_twelve_hours() -> None:
    t = Time()
    start = demo_start(t.wall_at, 180.0)
    assert start == REAL - timedelta(days=30) - timedelta(hours=12) * 179
    clock = demo(t, start=start, running=False)
    clock.advance_to(start + timedelta(days=30))  # the history, recorded on a paused clock
    clock.resume()
    t.pass_(11.9 * 3600)
    assert clock.now() < t.wall_at  # still simulated, still behind
    assert clock.now() == start + timedelta(days=30) + timedelta(hours=11.9) * 180
    t.pass_(3600)
    assert clock.now() == t.wall_at  # caught up: from here on it is the wall clock


def test_wait_until_returns_when_the_clock_gets_there_or_when_stopped() -> None:
    clock = DemoClock(datetime.now(UTC) - timedelta(days=1), 100_000.0)
    stop = threading.Event()
    target = clock.now() + timedelta(minutes=10)  # 6 ms of real time at this speed
    assert wait_until(clock, target, stop)
    assert clock.now() >= target
    stop.set()
    assert not wait_until(clock, clock.now() + timedelta(days=365), stop)


def test_the_demo_clock_is_thread_safe() -> None:
    clock = DemoClock(datetime.now(UTC) - timedelta(days=1000), 3600.0)
    seen: dict[int, list[datetime]] = {}
    errors: list[BaseException] = []

    def read(index: int) -> None:
        try:
            seen[index] = [clock.now() for _ in range(3000)]
        except BaseException as e:
            errors.append(e)

    def steer() -> None:
        try:
            for i in range(300):
                clock.pause() if i % 2 else clock.resume()
                if i % 3 == 0:  # a day ahead: far past what it runs between two calls
                    clock.advance_to(clock.now() + timedelta(days=1))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=read, args=(i,)) for i in range(4)]
    threads.append(threading.Thread(target=steer))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert len(seen) == 4
    for times in seen.values():
        assert all(a <= b for a, b in itertools.pairwise(times))


def test_the_demo_clock_of_the_settings(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    default = demo_clock(Settings(home=tmp_path), now=now)
    assert default.speed == 180.0 and not default.running
    assert default.now() == demo_start(now, 180.0)
    start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    chosen = demo_clock(Settings(home=tmp_path, demo_start=start, demo_speed=60), running=True)
    assert chosen.speed == 60.0 and chosen.running and chosen.now() >= start


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"demo_speed": "0"}, "greater than 0"),
        ({"demo_speed": "inf"}, "finite number"),
        ({"demo_start": "2026-01-05T09:00:00"}, "timezone info"),
    ],
)
def test_bad_demo_settings_are_refused(
    tmp_path: Path, values: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Settings(home=tmp_path, **values)  # type: ignore[arg-type]
