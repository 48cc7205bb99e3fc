"""The controller's view of closed trades: its measurements, kept cheap as exits arrive."""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

import numpy as np
import numpy.typing as npt

from domain.controller_policy import Measurements
from domain.days import TradingDay


@dataclass(frozen=True, order=True, slots=True)
class ClosedTradeFact:
    """What the controller needs of a closed trade."""

    exit_time: datetime
    notification_id: int
    signal_id: str
    pnl_quote: float
    outcome: str


class TradeBook:
    """Closed trades in exit-time order and the controller's measurements over them.

    Definitions match ``docs/metrics.md``: the win rate over the last ``window`` closed
    trades, the current run of losses (breakevens break it), today's P&L as a fraction of
    equity at the start of the day (a calendar day of ``zone``, :mod:`domain.days`), and the
    drawdown of equity from its running peak, the starting balance counting as the first peak.
    """

    def __init__(self, starting_balance: float, window: int = 20, zone: tzinfo = UTC) -> None:
        self.starting_balance = starting_balance
        self.window = window
        self.zone = zone
        self._trades: list[ClosedTradeFact] = []
        self._pnls: npt.NDArray[np.float64] = np.empty(0)
        self._by_signal: dict[str, ClosedTradeFact] = {}
        self._equity = starting_balance
        self._peak = starting_balance
        self._peak_stale = False

    @classmethod
    def of(
        cls,
        trades: Iterable[ClosedTradeFact],
        starting_balance: float,
        window: int = 20,
        zone: tzinfo = UTC,
    ) -> TradeBook:
        """A book holding ``trades`` (the latest fact of each signal), built in one pass."""
        book = cls(starting_balance, window, zone)
        latest: dict[str, ClosedTradeFact] = {}
        for trade in trades:
            known = latest.get(trade.signal_id)
            if known is None or trade.notification_id > known.notification_id:
                latest[trade.signal_id] = trade
        book._trades = sorted(latest.values(), key=lambda t: (t.exit_time, t.notification_id))
        book._pnls = np.array([t.pnl_quote for t in book._trades], dtype=np.float64)
        book._by_signal = latest
        book._equity = starting_balance + float(np.sum(book._pnls))
        book._peak_stale = True
        return book

    def put(self, trade: ClosedTradeFact) -> None:
        """Add a closed trade, or replace it after its entry or exit was corrected."""
        self.remove(trade.signal_id)
        at_end = not self._trades or trade >= self._trades[-1]
        index = bisect.bisect_right(self._trades, trade)
        self._trades.insert(index, trade)
        self._pnls = np.insert(self._pnls, index, trade.pnl_quote)
        self._by_signal[trade.signal_id] = trade
        self._equity += trade.pnl_quote
        if at_end and not self._peak_stale:
            self._peak = max(self._peak, self._equity)
        else:
            self._peak_stale = True

    def remove(self, signal_id: str) -> bool:
        """Take a trade out (it was voided); returns whether the book held it."""
        old = self._by_signal.pop(signal_id, None)
        if old is None:
            return False
        index = bisect.bisect_left(self._trades, old)
        del self._trades[index]
        self._pnls = np.delete(self._pnls, index)
        self._equity -= old.pnl_quote
        self._peak_stale = True
        return True

    def recent_wins(self) -> list[bool]:
        """The last ``window`` closed trades, oldest first: True for a win."""
        return [t.outcome == "win" for t in self._trades[-self.window :]]

    def measurements(self, now: datetime) -> Measurements:
        """The policy's inputs as of ``now`` (its day in the book's zone is "today")."""
        recent = self._trades[-self.window :]
        wins = sum(t.outcome == "win" for t in recent)
        losses = 0
        for trade in reversed(self._trades):
            if trade.outcome != "loss":
                break
            losses += 1
        day = TradingDay.of(now, self.zone)
        today = later = 0.0
        for trade in reversed(self._trades):
            if trade.exit_time < day.start:
                break
            if trade.exit_time < day.end:
                today += trade.pnl_quote
            else:
                later += trade.pnl_quote
        opening = self._equity - today - later
        return Measurements(
            win_rate_last_20=wins / len(recent) if recent else None,
            sample_size=len(recent),
            today_pnl_fraction=today / opening if opening > 0 else 0.0,
            consecutive_losses=losses,
            drawdown=self._drawdown() if self._trades else None,
        )

    def _drawdown(self) -> float:
        if self._peak_stale:  # an exit came out of time order: recompute the running peak
            highest = float(np.cumsum(self._pnls).max()) if len(self._pnls) else 0.0
            self._peak = self.starting_balance + max(0.0, highest)
            self._peak_stale = False
        return max(0.0, (self._peak - self._equity) / self._peak)
