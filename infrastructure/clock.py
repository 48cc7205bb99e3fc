"""The application's clocks (the ``Clock`` port): the wall clock, and the demo's clock.

* :class:`WallClock`: the machine's time, UTC.
* :class:`DemoClock`: simulated time that starts at a moment in the past and runs ``speed``
  times faster than real time (180: one 15-minute candle every 5 s). It is never ahead of
  the wall clock: once it catches up it runs at real speed, so "not in the future" holds
  for everything the demo records. It can be paused and moved forward by hand (the demo
  history is recorded on a paused clock moved candle by candle), then set running.

Both are thread-safe, never go backwards, and say how many *real* seconds remain until a
simulated moment (:meth:`seconds_until`), which :func:`wait_until` sleeps.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from application.ports import Clock
from infrastructure.settings import Settings

DEMO_BEHIND_FOR = timedelta(hours=12)
"""How long an accelerated demo stays behind real time by default."""
DEMO_HISTORY = timedelta(days=30)
"""How much history the demo records before it runs live."""


class PacedClock(Clock, Protocol):
    """A clock that knows how long, in real seconds, until it shows a moment."""

    def seconds_until(self, moment: datetime) -> float:
        """Real seconds until ``now()`` reaches ``moment`` (0 if it has; inf if it never
        will on its own, e.g. a paused demo clock)."""
        ...


class WallClock:
    """The machine's clock, UTC."""

    def now(self) -> datetime:
        """The current time, UTC."""
        return datetime.now(UTC)

    def seconds_until(self, moment: datetime) -> float:
        """Seconds until ``moment`` (0 if it has passed)."""
        return max((moment - self.now()).total_seconds(), 0.0)


class DemoClock:
    """Simulated time: from ``start``, ``speed`` times real time, never past the wall clock.

    ``ticks`` (a monotonic second counter) and ``wall`` (the real time) are injectable for
    tests. A paused clock (``running=False``) stands still until :meth:`advance_to` moves
    it or :meth:`resume` lets it run.
    """

    def __init__(
        self,
        start: datetime,
        speed: float,
        *,
        running: bool = True,
        ticks: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError("the demo clock's start needs a time zone")
        if not math.isfinite(speed) or speed <= 0:
            raise ValueError(f"the demo clock's speed must be a positive number, not {speed!r}")
        if start > wall():
            raise ValueError(f"the demo clock cannot start in the future ({start.isoformat()})")
        self.speed = float(speed)
        self._ticks = ticks
        self._wall = wall
        self._lock = threading.Lock()
        self._anchor = start.astimezone(UTC)
        self._anchor_tick = ticks()
        self._last = self._anchor
        self._running = running

    @property
    def running(self) -> bool:
        """Whether the clock moves by itself."""
        return self._running

    def now(self) -> datetime:
        """The simulated time, UTC: never backwards, never past the wall clock."""
        with self._lock:
            return self._now()

    def _now(self) -> datetime:
        moment = self._anchor
        if self._running:
            elapsed = max(self._ticks() - self._anchor_tick, 0.0)
            moment += timedelta(seconds=elapsed * self.speed)
        moment = max(min(moment, self._wall()), self._last)
        self._last = moment
        return moment

    def _rebase(self, moment: datetime) -> None:
        self._anchor, self._anchor_tick, self._last = moment, self._ticks(), moment

    def pause(self) -> None:
        """Stand still at the current time."""
        with self._lock:
            self._rebase(self._now())
            self._running = False

    def resume(self) -> None:
        """Run again, ``speed`` times real time, from the current time."""
        with self._lock:
            self._rebase(self._now())
            self._running = True

    def advance_to(self, moment: datetime) -> None:
        """Jump forward to ``moment``; the past and the future (past the wall clock) are
        refused with ``ValueError``."""
        with self._lock:
            current = self._now()
            if moment < current:
                raise ValueError(
                    f"the demo clock cannot go back from {current.isoformat()} "
                    f"to {moment.isoformat()}"
                )
            if moment > self._wall():
                raise ValueError(f"the demo clock cannot pass real time ({moment.isoformat()})")
            self._rebase(moment.astimezone(UTC))

    def seconds_until(self, moment: datetime) -> float:
        """Real seconds until the clock shows ``moment`` (inf while paused).

        The clock shows ``min(now + t · speed, wall + t)`` after ``t`` real seconds, so it
        reaches ``moment`` after ``max((moment - now) / speed, moment - wall)``.
        """
        with self._lock:
            now = self._now()
            if moment <= now:
                return 0.0
            if not self._running:
                return math.inf
            simulated = (moment - now).total_seconds() / self.speed
            return max(simulated, (moment - self._wall()).total_seconds(), 0.0)


def demo_start(
    now: datetime,
    speed: float,
    *,
    behind_for: timedelta = DEMO_BEHIND_FOR,
    history: timedelta = DEMO_HISTORY,
) -> datetime:
    """Where a demo clock starts so that ``history`` is recorded first and the accelerated
    run after it stays behind real time for ``behind_for``.

    Running at ``speed``, the clock gains ``speed - 1`` seconds on real time every second;
    to stay behind for ``behind_for`` its live part must start ``behind_for · (speed - 1)``
    before ``now``, and the history ``history`` before that. With the defaults (180×, 12 h,
    30 days) that is about 120 days ago.
    """
    return now - history - behind_for * max(speed - 1.0, 0.0)


def demo_clock(
    settings: Settings, *, running: bool = False, now: datetime | None = None
) -> DemoClock:
    """The demo's clock from the settings: ``TRADEWATCH_DEMO_SPEED`` times real time, from
    ``TRADEWATCH_DEMO_START`` or else :func:`demo_start`; paused unless ``running`` (the
    demo records its history first)."""
    wall = now or datetime.now(UTC)
    start = settings.demo_start or demo_start(wall, settings.demo_speed)
    return DemoClock(start, settings.demo_speed, running=running)


def wait_until(
    clock: PacedClock, moment: datetime, stop: threading.Event, *, poll: float = 0.5
) -> bool:
    """Sleep until ``clock`` shows ``moment`` (True), or until ``stop`` is set (False).

    Wakes at least every ``poll`` seconds to look again, so a demo clock moved by hand or
    resumed meanwhile is followed.
    """
    while True:
        remaining = clock.seconds_until(moment)
        if remaining <= 0:
            return True
        if stop.wait(min(remaining, poll)):
            return False
