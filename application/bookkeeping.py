"""The book of closed trades as of a point in the log, for processes that react to exits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol
from uuid import UUID

from application.ledger import TradeLedger
from domain.pnl import classify
from domain.trade import Trade
from domain.trade_book import ClosedTradeFact, TradeBook
from projections.facts import Fact

EXIT_KINDS = ("Trade.ExitRecorded", "Trade.EntryCorrected")
"""Events that can change a closed trade's P&L."""


class ClosedTradesSource(Protocol):
    """Closed trades whose exit was recorded at or before a notification id."""

    def closed_until(self, notification_id: int) -> Sequence[ClosedTradeFact]:
        """From the read model; a process rebuilds its book from it when it starts."""
        ...


class Bookkeeper:
    """Rebuilds a :class:`TradeBook` as of a log position and reads exits into it."""

    def __init__(
        self,
        ledger: TradeLedger,
        trades: ClosedTradesSource,
        *,
        starting_balance: float,
        window: int,
        breakeven_pct: float,
    ) -> None:
        self.ledger = ledger
        self.trades = trades
        self.starting_balance = starting_balance
        self.window = window
        self.breakeven_pct = breakeven_pct

    def book(self, position: int) -> TradeBook:
        """The closed trades whose exits are at or before ``position``."""
        book = TradeBook(self.starting_balance, self.window)
        for trade in self.trades.closed_until(position):
            book.put(trade)
        return book

    def closed_trade(self, fact: Fact) -> ClosedTradeFact | None:
        """The closed trade as of ``fact`` (an exit, or a correction of a closed trade)."""
        if fact.kind not in EXIT_KINDS:
            return None
        trade: object = self.ledger.repository.get(UUID(fact.aggregate_id), version=fact.version)
        assert isinstance(trade, Trade)
        pnl = trade.pnl()
        if pnl is None or trade.exit is None:
            return None  # a correction of a still-open trade changes no measurement
        return ClosedTradeFact(
            exit_time=trade.exit.at,
            notification_id=fact.id,
            signal_id=trade.signal_id,
            pnl_quote=pnl.net_quote,
            outcome=classify(pnl.pct, self.breakeven_pct).value,
        )
