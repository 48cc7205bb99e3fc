"""The orders the paper-exchange fixtures were drawn for, and a way to play a fixture.

Every fixture's first bar (23:45) is the one that produced the signal: it touches the
entry, and must never fill. The signal is stamped at its close, 2026-01-05 00:00 UTC.
Long fixtures: entry 100, stop 95, target 110. Short fixtures: entry 200, stop 210, target 180.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from domain.candles import Candle
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


@dataclass(frozen=True)
class Scenario:
    """A paper order, its settings and the bars it is fed."""

    order: PaperOrder
    settings: PaperSettings
    candles: list[Candle]


WICKS = st.integers(0, 3) | st.integers(4, 14)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    """A random walk of integer bars (some with long wicks) from 2 bars before the signal,
    one in ten missing, and a random long (limit or market, with or without stop and target)."""
    close = 300
    candles: list[Candle] = []
    for k in range(-2, draw(st.integers(1, 30))):
        o = close + draw(st.integers(-3, 3))
        close = o + draw(st.integers(-4, 4))
        high = max(o, close) + draw(WICKS)
        low = min(o, close) - draw(WICKS)
        if draw(st.integers(0, 9)) > 0:  # one bar in ten is missing
            opened = T0 + k * FIFTEEN_MINUTES
            candles.append(Candle("BTCUSDT", opened, FIFTEEN_MINUTES, o, high, low, close, 1.0))
    entry = 300 + draw(st.integers(-8, 8))
    stop = draw(st.none() | st.integers(1, 12).map(lambda d: float(entry - d)))
    target = draw(st.none() | st.integers(1, 12).map(lambda d: float(entry + d)))
    order = make_order(
        Direction.LONG,
        entry_price=draw(st.sampled_from([float(entry), None])),
        stop_loss=stop,
        take_profit=target,
        at=T0 + draw(st.sampled_from([0, 7, 15])) * timedelta(minutes=1),
    )
    chosen = PaperSettings(
        expiry_bars=draw(st.integers(1, 5)), timeout_bars=draw(st.integers(1, 8))
    )
    return Scenario(order, chosen, candles)


MIRROR = 600.0
"""A long on prices p is a short on 600 − p (the scenarios' prices stay within 62..538)."""


def mirrored(scenario: Scenario) -> Scenario:
    """The same scenario as a short on the mirrored series: 600 − p, high and low swapped."""

    def flip(price: float | None) -> float | None:
        return None if price is None else MIRROR - price

    order = scenario.order
    short = replace(
        order,
        direction=Direction.SHORT,
        entry_price=flip(order.entry_price),
        stop_loss=flip(order.stop_loss),
        take_profit=flip(order.take_profit),
    )
    candles = [
        replace(c, open=MIRROR - c.open, high=MIRROR - c.low, low=MIRROR - c.high,
                close=MIRROR - c.close)
        for c in scenario.candles
    ]  # fmt: skip
    return Scenario(short, scenario.settings, candles)
