"""The book of closed trades as of a point in the log, for processes that react to exits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, Protocol
from uuid import UUID

from application.ledger import TradeLedger
from domain.pnl import classify, trade_pnl
from domain.trade import Trade
from domain.trade_book import ClosedTradeFact, TradeBook
from domain.values import Direction
from projections.facts import Fact, as_time, readable_time

EXIT_KINDS = ("Trade.ExitRecorded", "Trade.ExitCorrected", "Trade.EntryCorrected", "Trade.Voided")
"""Events that can change a closed trade's P&L, or take it out of the book."""


@dataclass(frozen=True, slots=True)
class VoidedTrade:
    """A trade voided (entered in error): it leaves the book."""

    signal_id: str
    notification_id: int
    at: datetime


BookChange = ClosedTradeFact | VoidedTrade
"""What a fact does to the book: a closed trade to put in it, or a trade to take out."""


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
        zone: tzinfo = UTC,
    ) -> None:
        self.ledger = ledger
        self.trades = trades
        self.starting_balance = starting_balance
        self.window = window
        self.breakeven_pct = breakeven_pct
        self.zone = zone
        """The zone whose calendar days are "today" for the daily-loss rule."""

    def book(self, position: int) -> TradeBook:
        """The closed trades whose exits are at or before ``position``."""
        return TradeBook.of(
            self.trades.closed_until(position), self.starting_balance, self.window, self.zone
        )

    def reader(self) -> ExitReader:
        """A reader of exits for one pass over the log."""
        return ExitReader(self)

    def closed_trade(self, fact: Fact) -> BookChange | None:
        """What ``fact`` does to the book, the trade rebuilt from the event store."""
        if fact.kind not in EXIT_KINDS:
            return None
        trade: object = self.ledger.repository.get(UUID(fact.aggregate_id), version=fact.version)
        assert isinstance(trade, Trade)
        if trade.voided:
            return VoidedTrade(trade.signal_id, fact.id, fact.business_time)
        pnl = trade.pnl()
        if pnl is None or trade.exit is None:
            return None  # a correction of a still-open trade changes no measurement
        return ClosedTradeFact(
            exit_time=readable_time(trade.exit.at),
            notification_id=fact.id,
            signal_id=trade.signal_id,
            pnl_quote=pnl.net_quote,
            outcome=classify(pnl.pct, self.breakeven_pct).value,
        )


class KeptBook:
    """One process's book between its passes over the log.

    A pass that resumes where the last one stopped carries on with the same book instead of
    reading every closed trade again; after any other start, or a fact whose handling did
    not finish, the book is rebuilt from the read model.
    """

    def __init__(self, books: Bookkeeper) -> None:
        self.books = books
        self._book: TradeBook | None = None
        self._at = -1

    def at(self, position: int) -> TradeBook:
        """The book as of ``position``."""
        if self._book is None or self._at != position:
            self._book = self.books.book(position)
            self._at = position
        return self._book

    def handling(self) -> None:
        """A fact is being handled: the book is not as of any position until it is done."""
        self._at = -1

    def handled(self, position: int) -> None:
        """The fact at ``position`` is handled, and the book is as of it."""
        self._at = position


class ExitReader:
    """Closed trades as of each fact of one pass over the log, in log order.

    Trades entered during the pass are followed from their facts; a trade entered before
    it is rebuilt from the event store at the fact's version. Use one reader per pass: it
    remembers the entries and exits it has seen.
    """

    def __init__(self, books: Bookkeeper) -> None:
        self.books = books
        self._trades: dict[str, dict[str, Any]] = {}

    def closed_trade(self, fact: Fact) -> BookChange | None:
        """Note ``fact``; return the closed trade if it closed or re-priced one, or the
        voided trade if it voided one."""
        s = fact.state
        if fact.kind == "Trade.EntryRecorded":
            self._trades[fact.aggregate_id] = {
                "signal_id": s["signal_id"],
                "direction": s["direction"],
                "price": s["price"],
                "qty": s["qty"],
                "fee": s["fee"],
                "exit": None,
            }
            return None
        if fact.kind not in EXIT_KINDS:
            return None
        trade = self._trades.get(fact.aggregate_id)
        if trade is None:
            return self.books.closed_trade(fact)
        if fact.kind == "Trade.Voided":
            return VoidedTrade(trade["signal_id"], fact.id, as_time(s["at"]))
        if fact.kind == "Trade.EntryCorrected":
            trade.update(price=s["price"], qty=s["qty"], fee=s["fee"])
        else:
            trade["exit"] = (s["price"], s["fee"], readable_time(s["at"]))
        if trade["exit"] is None:
            return None
        exit_price, exit_fee, exit_at = trade["exit"]
        pnl = trade_pnl(
            Direction(trade["direction"]),
            trade["price"],
            exit_price,
            trade["qty"],
            trade["fee"] + exit_fee,
        )
        return ClosedTradeFact(
            exit_time=exit_at,
            notification_id=fact.id,
            signal_id=trade["signal_id"],
            pnl_quote=pnl.net_quote,
            outcome=classify(pnl.pct, self.books.breakeven_pct).value,
        )
