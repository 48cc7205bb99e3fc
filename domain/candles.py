"""Candles and instruments: the market facts the generator and the paper exchange read.

A candle is one closed bar of an instrument: it opens at ``open_time`` (UTC) and closes
``interval`` later. An instrument carries the exchange's trading rules (tick size, lot
step, minimums), so that prices and sizes are rounded the way the venue will take them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

from domain.errors import DomainError


@dataclass(frozen=True, slots=True)
class Candle:
    """One closed OHLCV bar. ``open_time`` is UTC and zone-aware; volume is in base units."""

    symbol: str
    open_time: datetime
    interval: timedelta
    open: float
    high: float
    low: float
    close: float
    volume: float

    @property
    def close_time(self) -> datetime:
        """When the bar closed: ``open_time + interval``."""
        return self.open_time + self.interval

    def problem(self) -> str | None:
        """Why this bar is not a valid OHLCV bar, or ``None`` when it is.

        Valid: every price finite and > 0, volume finite and >= 0,
        ``high >= max(open, close)`` and ``low <= min(open, close)``.
        """
        bar = f"{self.symbol} bar at {self.open_time.isoformat()}"
        prices = (self.open, self.high, self.low, self.close)
        if not all(math.isfinite(p) and p > 0 for p in prices):
            return f"{bar} has a price that is not a finite number > 0"
        if not (math.isfinite(self.volume) and self.volume >= 0):
            return f"{bar} has a volume that is not a finite number >= 0"
        if self.high < max(self.open, self.close) or self.low > min(self.open, self.close):
            return f"{bar} has its high or low inside the open-close range"
        return None


@dataclass(frozen=True, slots=True)
class Instrument:
    """An exchange's trading rules for one symbol (Bybit's ``instruments-info``)."""

    symbol: str
    tick_size: float
    qty_step: float
    min_order_qty: float
    min_notional: float = 0.0
    max_order_qty: float = math.inf

    def round_price(self, price: float) -> float:
        """``price`` rounded to the nearest tick (half to even), exactly in decimal."""
        return _to_step(price, self.tick_size, ROUND_HALF_EVEN)

    def floor_price(self, price: float) -> float:
        """``price`` rounded down to a tick."""
        return _to_step(price, self.tick_size, ROUND_FLOOR)

    def ceil_price(self, price: float) -> float:
        """``price`` rounded up to a tick."""
        return _to_step(price, self.tick_size, ROUND_CEILING)

    def floor_qty(self, qty: float) -> float:
        """``qty`` rounded down to the lot step (never up: a size is never larger than asked)."""
        return _to_step(qty, self.qty_step, ROUND_FLOOR)

    def size_problem(self, qty: float, price: float) -> str | None:
        """Why ``qty`` at ``price`` cannot be ordered, or ``None`` when it can."""
        if qty < self.min_order_qty:
            return f"{self.symbol} quantity {qty:g} is below the minimum {self.min_order_qty:g}"
        if qty > self.max_order_qty:
            return f"{self.symbol} quantity {qty:g} is above the maximum {self.max_order_qty:g}"
        if qty * price < self.min_notional:
            return (
                f"{self.symbol} order value {qty * price:g} is below the minimum "
                f"{self.min_notional:g}"
            )
        return None


def _to_step(value: float, step: float, rounding: str) -> float:
    if not (math.isfinite(value) and math.isfinite(step) and step > 0):
        raise DomainError(f"cannot round {value} to a step of {step}")
    step_d = Decimal(repr(step))
    units = (Decimal(repr(value)) / step_d).to_integral_value(rounding=rounding)
    return float(units * step_d)
