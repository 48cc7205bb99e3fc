"""The ports the application needs from the outside world, as ``typing.Protocol``s.

Adapters live in ``infrastructure/``; the composition root picks them. Each port speaks
in domain values (``Candle``, ``Instrument``) and plain types, never in a venue's JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from domain.candles import Candle, Instrument


class MarketUnavailable(Exception):  # noqa: N818 - a trader-facing name, not "...Error"
    """The market could not be read for one symbol; the message is one line, fit to show."""


@dataclass(frozen=True, slots=True)
class Gap:
    """Bars missing between two candles that did arrive: reported, never filled in."""

    symbol: str
    after: datetime
    before: datetime

    @property
    def missing(self) -> timedelta:
        """How much time has no bars."""
        return self.before - self.after


@dataclass(frozen=True, slots=True)
class CandleBatch:
    """Closed candles of one symbol, oldest first, validated, and the gaps between them."""

    symbol: str
    interval: timedelta
    candles: tuple[Candle, ...]
    gaps: tuple[Gap, ...] = ()


class MarketData(Protocol):
    """Where candles and trading rules come from: Bybit, a candle file, or a synthetic market.

    Only **closed** candles are ever returned (a still-forming bar repaints signals).
    """

    def closed_candles(
        self,
        symbol: str,
        interval: timedelta,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 200,
    ) -> CandleBatch:
        """Up to ``limit`` closed candles.

        With ``start``: the first ``limit`` bars opening at or after it; otherwise the
        last ``limit`` bars closing at or before ``end`` (default: the market's now).
        Raises ``MarketUnavailable`` with a one-line reason.
        """
        ...

    def instrument(self, symbol: str) -> Instrument:
        """The symbol's tick size, lot step and minimums."""
        ...

    def now(self) -> datetime:
        """The market's clock (the exchange's server time), UTC."""
        ...


class Clock(Protocol):
    """The application's clock: the wall clock in production, a simulated one in the demo."""

    def now(self) -> datetime:
        """The current time, UTC and zone-aware."""
        ...
