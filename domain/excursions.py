"""Excursions and R: how far a trade went against and for you, measured in its own risk.

MAE (maximum adverse excursion) and MFE (maximum favourable excursion) are read from the
candles **after the fill only**. A bar in which a fill happened is trimmed to the part of
its path that provably (for MFE) or possibly (for MAE) lies inside the trade, so MAE is
never understated and MFE never overstated. The rules are in ``docs/paper-exchange.md``
("Excursions") and ``docs/metrics.md``. A missing candle makes the excursion *unknown*
(``None``): it is never estimated.

Everything here is pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import NamedTuple

from domain.candles import Candle
from domain.errors import DomainError
from domain.values import Direction


class BarPoint(StrEnum):
    """Where in a bar a fill happened, as far as the bar's OHLC can tell."""

    OPEN = "open"
    """At the bar's open price, at its open time (a gap, or an order that was resting)."""
    INSIDE = "inside"
    """At a price the bar traded through, at an unknown moment inside the bar."""
    CLOSE = "close"
    """At the bar's close price, at its close time (a timeout)."""


@dataclass(frozen=True, slots=True)
class FillAt:
    """A fill's price and where it happened: the bar it fell in and the point in that bar."""

    price: float
    bar_open_time: datetime
    point: BarPoint


@dataclass(frozen=True, slots=True)
class Excursions:
    """MAE and MFE of one trade or leg (never negative), in price, % of entry and R.

    ``bars_to_mfe`` counts bars of the interval from the entry bar (0) to the first bar
    where the MFE was reached. ``mfe_captured`` is the realised price move ÷ MFE (at most 1,
    negative for a loser); ``None`` when the MFE is 0. The R figures are ``None`` without a
    stop (or with a stop at the entry).
    """

    mae_price: float
    mfe_price: float
    mae_pct: float
    mfe_pct: float
    mae_r: float | None
    mfe_r: float | None
    bars_to_mfe: int
    mfe_captured: float | None


def excursions(
    direction: Direction,
    entry: FillAt,
    exit_: FillAt,
    candles: Iterable[Candle],
    *,
    stop_loss: float | None = None,
) -> Excursions | None:
    """The excursions of a trade (or one exit leg) from ``entry`` to ``exit_``.

    ``candles`` may hold more bars than the trade spans; bars outside it are ignored. For a
    trade filled in several legs pass its average entry price at its first entry bar, and its
    last exit (per leg: that leg's exit). Returns ``None`` (unknown) when any bar from the
    entry bar to the exit bar is missing.
    """
    bars = {c.open_time: c for c in candles}
    if not bars:
        return None
    interval = next(iter(bars.values())).interval
    if any(c.interval != interval for c in bars.values()):
        raise DomainError("excursions need candles of one interval")
    span = exit_.bar_open_time - entry.bar_open_time
    if span < timedelta(0) or span % interval:
        raise DomainError("the exit bar must be the entry bar or a later bar of the interval")
    count = span // interval + 1
    path: list[Candle] = []
    for k in range(count):
        bar = bars.get(entry.bar_open_time + k * interval)
        if bar is None:
            return None
        path.append(bar)
    sign = 1.0 if direction is Direction.LONG else -1.0
    lows: list[float] = []
    highs: list[float] = []
    for k, bar in enumerate(path):
        start = entry if k == 0 else None
        end = exit_ if k == count - 1 else None
        low, high = _segment(long_space(bar, direction), _signed(start, sign), _signed(end, sign))
        lows.append(low)
        highs.append(high)
    entry_price = sign * entry.price
    mae = max(0.0, entry_price - min(lows))
    mfe = max(0.0, max(highs) - entry_price)
    best = max(highs)
    bars_to_mfe = 0 if mfe == 0.0 else highs.index(best)
    risk = abs(entry.price - stop_loss) if stop_loss is not None else 0.0
    realised = sign * exit_.price - entry_price
    return Excursions(
        mae_price=mae,
        mfe_price=mfe,
        mae_pct=mae / entry.price * 100.0,
        mfe_pct=mfe / entry.price * 100.0,
        mae_r=mae / risk if risk > 0 else None,
        mfe_r=mfe / risk if risk > 0 else None,
        bars_to_mfe=bars_to_mfe,
        mfe_captured=realised / mfe if mfe > 0 else None,
    )


class Ohlc(NamedTuple):
    """A bar's prices in *long space*: a short's prices negated, so one rule serves both."""

    open: float
    high: float
    low: float
    close: float


def long_space(bar: Candle, direction: Direction) -> Ohlc:
    """``bar`` as a long sees it: unchanged for a long; negated (high and low swapped) for a
    short, so that "adverse" is always down and "favourable" always up."""
    if direction is Direction.LONG:
        return Ohlc(bar.open, bar.high, bar.low, bar.close)
    return Ohlc(-bar.open, -bar.low, -bar.high, -bar.close)


def _signed(point: FillAt | None, sign: float) -> tuple[BarPoint, float] | None:
    return None if point is None else (point.point, sign * point.price)


def _segment(
    bar: Ohlc, start: tuple[BarPoint, float] | None, end: tuple[BarPoint, float] | None
) -> tuple[float, float]:
    """The (adverse, favourable) extremes of the part of ``bar`` inside the trade (long space).

    The adverse extreme counts whenever it may lie inside the trade; the favourable one only
    when it provably does. ``start`` is the entry (``None``: the trade was already open at the
    bar's open); ``end`` the exit (``None``: still open at the bar's close).
    """
    for where in (start, end):
        inside = where is not None and where[0] is BarPoint.INSIDE
        if inside and where is not None and not bar.low <= where[1] <= bar.high:
            raise DomainError("a fill inside a bar must be priced within its low and high")
    start_point, start_price = start if start is not None else (BarPoint.OPEN, bar.open)
    if start_point is BarPoint.CLOSE:
        if end is not None and end[0] is not BarPoint.CLOSE:
            raise DomainError("a trade entered at a bar's close cannot exit earlier in that bar")
        return bar.close, bar.close
    if start_point is BarPoint.OPEN:
        start_price = bar.open
    if end is None or end[0] is BarPoint.CLOSE:
        provable_high = start_point is BarPoint.OPEN or start_price >= bar.open
        return bar.low, bar.high if provable_high else max(start_price, bar.close)
    end_point, end_price = end
    if end_point is BarPoint.OPEN:
        if start_point is not BarPoint.OPEN:
            raise DomainError("a trade entered inside a bar cannot exit at that bar's open")
        return bar.open, bar.open
    # Exit inside the bar, at the first touch of end_price after the start.
    if end_price < start_price:
        return end_price, start_price
    if end_price > start_price:
        return bar.low, end_price
    return end_price, end_price


def initial_risk(entry_price: float, initial_stop: float | None, qty: float) -> float | None:
    """|entry − initial stop| × qty, in quote currency; ``None`` without a stop or at 0 risk."""
    if initial_stop is None:
        return None
    risk = abs(entry_price - initial_stop) * qty
    return risk if risk > 0 else None


def r_multiple(
    net_pnl: float, entry_price: float, initial_stop: float | None, qty: float
) -> float | None:
    """Net P&L (fees and funding included) ÷ initial risk; ``None`` without a stop."""
    risk = initial_risk(entry_price, initial_stop, qty)
    return None if risk is None else net_pnl / risk


def average_r(r_multiples: Iterable[float | None]) -> float | None:
    """The mean R of the trades that have one (Van Tharp's "expectancy"); ``None`` if none."""
    known = [r for r in r_multiples if r is not None]
    return math.fsum(known) / len(known) if known else None


def r_expectancy(trades: Sequence[tuple[float, float | None]]) -> float | None:
    """R earned per R risked: Σ net P&L ÷ Σ initial risk over the ``(net_pnl, risk)`` pairs
    with a risk; ``None`` if none.

    Unlike ``average_r`` it weights each trade by the money it risked, so one trade with a
    stop a tick away (a huge R either way) cannot dominate the figure.
    """
    known = [(pnl, risk) for pnl, risk in trades if risk is not None]
    if not known:
        return None
    return math.fsum(pnl for pnl, _ in known) / math.fsum(risk for _, risk in known)
