"""The Trade aggregate: the entry and exit of one traded signal, as facts.

Mistakes are mended by new facts, never by changing old ones: an entry or an exit is
*corrected* (the wrong one stays in history), and a trade entered in error is *voided*
(kept in history and the audit trail, left out of every metric).
"""

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
from domain.values import (
    Direction,
    clean_text,
    not_ahead,
    not_before,
    plausible_time,
    recorded_time,
    utc,
    valid_fee,
    valid_price,
    valid_quantity,
)

TRADE_NAMESPACE = uuid5(NAMESPACE_URL, "https://tradewatch.invalid/trade")
REASON_LENGTH = 500
EXIT_REASON_LENGTH = 200


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
        """Validate: price and qty within [1e-12, 1e12], fee >= 0 and not above the
        notional, time zone-aware and not before 2009 (see :mod:`domain.values`)."""
        checked_price = valid_price(f"{side} price", price)
        checked_qty = valid_quantity("qty", qty)
        return cls(
            price=checked_price,
            qty=checked_qty,
            fee=valid_fee("fee", fee, checked_price * checked_qty),
            at=recorded_time(f"{side} time", at),
        )


class Trade(Aggregate):
    """One trade per traded signal: entered, perhaps corrected, exited at most once,
    perhaps voided."""

    def __init__(self) -> None:
        self.signal_id = ""
        self.symbol = ""
        self.direction = Direction.LONG
        self.entry = Fill(1.0, 1.0, 0.0, datetime.min.replace(tzinfo=UTC))
        self.exit: Fill | None = None
        self.exit_reason: str | None = None
        self.stop_loss: float | None = None
        self.take_profit: float | None = None
        self.void_reason: str | None = None

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

    class ExitCorrected(TracedEvent):
        """The recorded exit was wrong; this is the right one (``exit_reason`` is why the
        trade closed, ``reason`` why the exit is corrected). The old one stays in history."""

        price: float
        fee: float
        exit_reason: str
        at: datetime
        reason: str

        def apply(self, aggregate: Trade) -> None:
            aggregate.exit = Fill(self.price, aggregate.entry.qty, self.fee, self.at)
            aggregate.exit_reason = self.exit_reason

    class Voided(TracedEvent):
        """The trade was entered in error: kept in history, left out of every metric."""

        reason: str
        at: datetime

        def apply(self, aggregate: Trade) -> None:
            aggregate.void_reason = self.reason

    @classmethod
    def enter(
        cls,
        signal: Signal,
        fill: Fill,
        causation: Causation,
        *,
        now: datetime,
        forced: bool = False,
    ) -> Trade:
        """Open the trade of ``signal`` and mark the signal traded (save both together).

        Refused if the signal was skipped or already traded, or blocked unless forced,
        or if the entry is before the signal or ahead of ``now`` (the application's clock).
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
        fill = Fill.checked(fill.price, fill.qty, fill.fee, fill.at, "entry")
        not_ahead("entry time", fill.at, now)
        not_before("entry time", fill.at, "signal time", signal.at)
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
        """Entered, not yet exited, and not voided."""
        return self.exit is None and self.void_reason is None

    @property
    def voided(self) -> bool:
        """Whether the trade was voided (entered in error)."""
        return self.void_reason is not None

    def correct_entry(
        self,
        reason: str,
        causation: Causation,
        *,
        now: datetime,
        signal_at: datetime,
        price: float | None = None,
        qty: float | None = None,
        fee: float | None = None,
        at: datetime | None = None,
    ) -> None:
        """Record the right entry. Only what is given changes; the rest is kept from the
        recorded entry. The entry may not precede the signal (``signal_at``) nor follow
        the exit, if any."""
        self._check_not_voided("correct its entry")
        old = self.entry
        fill = Fill.checked(
            old.price if price is None else price,
            old.qty if qty is None else qty,
            old.fee if fee is None else fee,
            old.at if at is None else at,
            "entry",
        )
        if at is not None:
            not_ahead("entry time", fill.at, now)
            not_before("entry time", fill.at, "signal time", signal_at)
        check_levels(self.direction, fill.price, fill.price, self.stop_loss, self.take_profit)
        if self.exit is not None:
            if self.exit.at < fill.at:
                raise DomainError(
                    f"corrected entry time {fill.at.isoformat()} is after the exit "
                    f"{self.exit.at.isoformat()} of signal {self.signal_id}"
                )
            valid_fee("exit fee", self.exit.fee, self.exit.price * fill.qty)
        if fill == old:
            raise DomainError(f"the entry of signal {self.signal_id} already has these values")
        self.trigger_event(
            self.EntryCorrected,
            price=fill.price,
            qty=fill.qty,
            fee=fill.fee,
            at=fill.at,
            reason=clean_text("reason", reason, max_length=REASON_LENGTH),
            **causation.fields(),
        )

    def record_exit(
        self,
        price: float,
        fee: float,
        reason: str,
        at: datetime,
        causation: Causation,
        *,
        now: datetime,
    ) -> None:
        """Close the trade once; the exit may not precede the entry nor be ahead of ``now``."""
        self._check_not_voided("record an exit")
        if self.exit is not None:
            raise DomainError(
                f"signal {self.signal_id} already exited at {self.exit.price:g} "
                f"on {self.exit.at.isoformat()}; use 'exit --correct' to fix it"
            )
        exit_price, exit_fee, exit_at = self._checked_exit(price, fee, at, now)
        self.trigger_event(
            self.ExitRecorded,
            price=exit_price,
            fee=exit_fee,
            reason=clean_text("exit reason", reason, max_length=EXIT_REASON_LENGTH),
            at=exit_at,
            **causation.fields(),
        )

    def correct_exit(
        self,
        reason: str,
        causation: Causation,
        *,
        now: datetime,
        price: float | None = None,
        fee: float | None = None,
        exit_reason: str | None = None,
        at: datetime | None = None,
    ) -> None:
        """Record the right exit. Only what is given changes; the rest is kept."""
        self._check_not_voided("correct its exit")
        old = self.exit
        if old is None or self.exit_reason is None:
            raise DomainError(f"signal {self.signal_id} has no exit to correct")
        exit_price, exit_fee, exit_at = self._checked_exit(
            old.price if price is None else price,
            old.fee if fee is None else fee,
            old.at if at is None else at,
            None if at is None else now,
        )
        why = (
            self.exit_reason
            if exit_reason is None
            else clean_text("exit reason", exit_reason, max_length=EXIT_REASON_LENGTH)
        )
        if (exit_price, exit_fee, exit_at, why) == (old.price, old.fee, old.at, self.exit_reason):
            raise DomainError(f"the exit of signal {self.signal_id} already has these values")
        self.trigger_event(
            self.ExitCorrected,
            price=exit_price,
            fee=exit_fee,
            exit_reason=why,
            at=exit_at,
            reason=clean_text("reason", reason, max_length=REASON_LENGTH),
            **causation.fields(),
        )

    def void(self, reason: str, causation: Causation, *, now: datetime) -> None:
        """Record that the trade was entered in error; refused once voided."""
        self._check_not_voided("void it again")
        self.trigger_event(
            self.Voided,
            reason=clean_text("reason", reason, max_length=REASON_LENGTH),
            at=utc(now),
            **causation.fields(),
        )

    def _checked_exit(
        self, price: float, fee: float, at: datetime, now: datetime | None
    ) -> tuple[float, float, datetime]:
        """Validated exit values; ``now`` is None when the time is the one recorded."""
        exit_price = valid_price("exit price", price)
        exit_fee = valid_fee("fee", fee, exit_price * self.entry.qty)
        exit_at = (
            recorded_time("exit time", at) if now is None else plausible_time("exit time", at, now)
        )
        if exit_at < self.entry.at:
            raise DomainError(
                f"exit time {exit_at.isoformat()} is before the entry time "
                f"{self.entry.at.isoformat()} of signal {self.signal_id}"
            )
        return exit_price, exit_fee, exit_at

    def _check_not_voided(self, action: str) -> None:
        if self.void_reason is not None:
            raise DomainError(
                f"the trade of signal {self.signal_id} was voided ({self.void_reason}); "
                f"cannot {action}"
            )

    def pnl(self) -> TradePnl | None:
        """Net P&L once exited (and not voided), else ``None``."""
        if self.exit is None or self.voided:
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
        return {
            "price": self.entry.price,
            "qty": self.entry.qty,
            "fee": self.entry.fee,
            "at": self.entry.at,
        }
