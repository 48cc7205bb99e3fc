"""The orders the paper-exchange fixtures were drawn for, and a way to play a fixture.

Every fixture's first bar (23:45) is the one that produced the signal: it touches the
entry, and must never fill. The signal is stamped at its close, 2026-01-05 00:00 UTC.
Long fixtures: entry 100, stop 95, target 110. Short fixtures: entry 200, stop 210, target 180.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from domain.paper import PaperEvent, PaperOrder, PaperSettings, PaperState, run
from domain.values import Direction
from tests.candle_csv import FIFTEEN_MINUTES, load_candles

T0 = datetime(2026, 1, 5, tzinfo=UTC)
LEVELS = {Direction.LONG: (100.0, 95.0, 110.0), Direction.SHORT: (200.0, 210.0, 180.0)}


def bar_open(k: int) -> datetime:
    """The open time of fixture bar ``k`` (bar 0 opens at the signal's time)."""
    return T0 + k * FIFTEEN_MINUTES


def bar_close(k: int) -> datetime:
    """The close time of fixture bar ``k``."""
    return bar_open(k + 1)


def make_order(direction: Direction, **changes: Any) -> PaperOrder:
    """The fixtures' order for ``direction``, with any field changed (``stop_loss=None``...)."""
    entry, stop, target = LEVELS[direction]
    base = PaperOrder(
        signal_id="sig-1",
        symbol="BTCUSDT",
        direction=direction,
        at=T0,
        interval=FIFTEEN_MINUTES,
        entry_price=entry,
        stop_loss=stop,
        take_profit=target,
    )
    return replace(base, **changes)


def direction_of(fixture: str) -> Direction:
    """Short fixtures are named ``short_*``; every other one is drawn for a long."""
    return Direction.SHORT if fixture.startswith("short_") else Direction.LONG


def play(
    fixture: str, order: PaperOrder | None = None, settings: PaperSettings | None = None
) -> tuple[PaperState, list[PaperEvent]]:
    """Run ``order`` (default: the fixture's own) over every bar of ``fixture`` in one pass."""
    chosen = order if order is not None else make_order(direction_of(fixture))
    return run(PaperState(chosen, settings or PaperSettings()), load_candles(fixture))


def span(bars: int) -> timedelta:
    """``bars`` fifteen-minute bars."""
    return bars * FIFTEEN_MINUTES
