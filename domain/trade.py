"""The Trade aggregate: the entry and exit of one traded signal, as facts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.errors import DomainError
from domain.events import Causation, TracedCreated, TracedEvent
from domain.pnl import TradePnl, trade_pnl
from domain.signal import Signal, check_levels
from domain.values import Direction, non_negative, positive_price, text, utc

TRADE_NAMESPACE = uuid5(NAMESPACE_URL, "https://tradewatch.invalid/trade")


def trade_uuid(signal_id: str) -> UUID:
    """The aggregate id of the trade of signal ``signal_id`` (one trade per signal)."""
    return uuid5(TRADE_NAMESPACE, signal_id)


@dataclass(frozen=True, slots=True)
class Fill:
    """A price, quantity and fee at a moment: what an entry or exit recorded."""

    price: float
    qty: float
    fee: float
    at: datetime

    @classmethod
    def checked(cls, price: float, qty: float, fee: float, at: datetime, side: str) -> Fill:
        """Validate: price and qty finite and > 0, fee finite and >= 0, time zone-aware."""
        return cls(
            price=positive_price(f"{side} price", price),
            qty=positive_price("qty", qty),
            fee=non_negative("fee", fee),
            at=utc(at),
        )


class Trade(Aggregate):
    """One trade per traded signal: entered, perhaps corrected, and exited at most once."""

    def __init__(self) -> None:
        self.signal_id = ""
        self.symbol = ""
        self.direction = Direction.LONG
        self.entry = Fill(1.0, 1.0, 0.0, datetime.min.replace(tzinfo=UTC))
        self.exit: Fill | None = None
        self.exit_reason: str | None = None
        self.stop_loss: float | None = None
        self.take_profit: float | None = None

    class EntryRecorded(TracedCreated):
        """The trader entered the trade (``forced`` when a controller block was overridden)."""

        signal_id: str
        symbol: str
        direction: str
        source: str
        price: float
        qty: float
        fee: float
        at: datetime
        stop_loss: float | None
        take_profit: float | None
        forced: bool

        def apply(self, aggregate: Trade) -> None:
            aggregate.signal_id = self.signal_id
            aggregate.symbol = self.symbol
            aggregate.direction = Direction(self.direction)
            aggregate.entry = Fill(self.price, self.qty, self.fee, self.at)
            aggregate.stop_loss = self.stop_loss
            aggregate.take_profit = self.take_profit
            aggregate.exit = None
            aggregate.exit_reason = None

    class EntryCorrected(TracedEvent):
        """The recorded entry was wrong; this is the right one. The old one stays in history."""

        price: float
        qty: float
        fee: float
        at: datetime
        reason: str

        def apply(self, aggregate: Trade) -> None:
            aggregate.entry = Fill(self.price, self.qty, self.fee, self.at)

    class ExitRecorded(TracedEvent):
        """The trade was closed."""

        price: float
        fee: float
        reason: str
        at: datetime

        def apply(self, aggregate: Trade) -> None:
            aggregate.exit = Fill(self.price, aggregate.entry.qty, self.fee, self.at)
            aggregate.exit_reason = self.reason

    @classmethod
    def enter(
        cls, signal: Signal, fill: Fill, causation: Causation, *, forced: bool = False
    ) -> Trade:
        """Open the trade of ``signal`` and mark the signal traded (save both together).

        Refused if the signal was skipped or already traded, or blocked unless forced.
        """
        if signal.skipped:
            raise DomainError(f"signal {signal.signal_id} was skipped; no entry can be recorded")
        if signal.gate.blocked and not forced:
            raise DomainError(
                f"signal {signal.signal_id} was blocked by the controller "
                f"({signal.gate.status}); use --force to override"
            )
        if signal.traded:
            raise DomainError(f"signal {signal.signal_id} already has an entry")
        stop, target = signal.facts["stop_loss"], signal.facts["take_profit"]
        check_levels(signal.direction, fill.price, fill.price, stop, target)
        signal.mark_traded(fill.at, causation)
        return cls._create(
            cls.EntryRecorded,
            id=trade_uuid(signal.signal_id),
            signal_id=signal.signal_id,
            symbol=signal.symbol,
            direction=signal.direction.value,
            source=signal.source,
            price=fill.price,
            qty=fill.qty,
            fee=fill.fee,
            at=fill.at,
            stop_loss=stop,
            take_profit=target,
            forced=forced and signal.gate.blocked,
            **causation.fields(),
        )

    @property
    def is_open(self) -> bool:
        """Entered and not yet exited."""
        return self.exit is None

    def correct_entry(self, fill: Fill, reason: str, causation: Causation) -> None:
        """Record the right entry; the exit, if any, must still not precede it."""
        check_levels(self.direction, fill.price, fill.price, self.stop_loss, self.take_profit)
        if self.exit is not None and self.exit.at < fill.at:
            raise DomainError(
                f"corrected entry time {fill.at.isoformat()} is after the exit "
                f"{self.exit.at.isoformat()} of signal {self.signal_id}"
            )
        if fill == self.entry:
            raise DomainError(f"the entry of signal {self.signal_id} already has these values")
        self.trigger_event(
            self.EntryCorrected,
            price=fill.price,
            qty=fill.qty,
            fee=fill.fee,
            at=fill.at,
            reason=text("reason", reason, max_length=500),
            **causation.fields(),
        )

    def record_exit(
        self, price: float, fee: float, reason: str, at: datetime, causation: Causation
    ) -> None:
        """Close the trade once; the exit may not precede the entry."""
        if self.exit is not None:
            raise DomainError(
                f"signal {self.signal_id} already exited at {self.exit.price:g} "
                f"on {self.exit.at.isoformat()}"
            )
        exit_price = positive_price("exit price", price)
        exit_fee = non_negative("fee", fee)
        exit_at = utc(at)
        if exit_at < self.entry.at:
            raise DomainError(
                f"exit time {exit_at.isoformat()} is before the entry time "
                f"{self.entry.at.isoformat()} of signal {self.signal_id}"
            )
        self.trigger_event(
            self.ExitRecorded,
            price=exit_price,
            fee=exit_fee,
            reason=text("exit reason", reason, max_length=200),
            at=exit_at,
            **causation.fields(),
        )

    def pnl(self) -> TradePnl | None:
        """Net P&L once exited, else ``None``."""
        if self.exit is None:
            return None
        return trade_pnl(
            self.direction,
            self.entry.price,
            self.exit.price,
            self.entry.qty,
            self.entry.fee + self.exit.fee,
        )

    def entry_facts(self) -> dict[str, Any]:
        """The current entry, for comparing a retried command."""
        return {"price": self.entry.price, "qty": self.entry.qty, "fee": self.entry.fee}
