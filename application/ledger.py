"""The trade ledger: the event-sourced application and its commands."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import ProcessRecorder, RecordConflictError

from domain.errors import ConflictError, DomainError, NotFoundError
from domain.events import Causation
from domain.signal import MANUAL_SOURCE, Gate, Signal, SignalDraft, signal_uuid
from domain.trade import Fill, Trade, trade_uuid
from domain.values import Direction, ExitReason
from projections.faults import UNREADABLE, reason_of

T = TypeVar("T")

MAX_ATTEMPTS = 5
"""How often a command is retried when another writer changed the same aggregate."""


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What a command did: the signal it concerned, whether it stored anything, and where."""

    signal_id: str
    stored: bool
    last_notification_id: int | None


class TradeLedger(Application[Any]):
    """Signals, entries and exits recorded as immutable events.

    Every command validates in the domain, then saves atomically. A write that
    races another writer on the same aggregate is retried on fresh state, so no
    event is lost and no invariant is broken (``MAX_ATTEMPTS`` tries, then a clear
    ``ConflictError``).
    """

    name = "tradewatch"
    env: ClassVar[dict[str, str]] = {"AGGREGATE_CACHE_MAXSIZE": "1000"}
    """Keep recently used aggregates (the controller above all) in memory; each ``get``
    still fast-forwards them with any newer events, so other writers are never missed."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        super().__init__(env)
        self.gate_in_force: Callable[[], Gate] = Gate
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        """The application's clock: no fact may be dated more than a few minutes past it."""

    def construct_recorder(self) -> ProcessRecorder:
        """A process recorder, so that processes can save events with their tracking."""
        return self.factory.process_recorder()

    @property
    def tracking(self) -> ProcessRecorder:
        """The recorder, as the process recorder that also keeps processes' positions."""
        recorder = self.recorder
        assert isinstance(recorder, ProcessRecorder)
        return recorder

    # Reading aggregates -------------------------------------------------------

    def signal(self, signal_id: str) -> Signal:
        """The signal the trader calls ``signal_id``; ``NotFoundError`` if unknown."""
        found = self.find(signal_uuid(signal_id))
        if not isinstance(found, Signal):
            raise NotFoundError(f"unknown signal {signal_id!r}")
        return found

    def trade(self, signal_id: str) -> Trade | None:
        """The trade of a signal, or ``None`` if it was never entered."""
        found = self.find(trade_uuid(signal_id))
        return found if isinstance(found, Trade) else None

    def find(self, aggregate_id: Any) -> Aggregate | None:
        """Any aggregate of the ledger by id, or ``None``; a ``DomainError`` when its stored
        events cannot be read back (stored without the domain's checks)."""
        try:
            found: Aggregate = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        except UNREADABLE as error:
            raise DomainError(
                f"the stored events of {aggregate_id} cannot be read back ({reason_of(error)})"
            ) from None
        return found

    # Commands -------------------------------------------------------------------

    def record_signal(self, draft: SignalDraft, *, timed: bool = True) -> CommandResult:
        """Record a signal. The same id with the same facts again is a no-op; ``timed``: the
        draft's time was given (not the moment of the command), so it must match too."""

        def attempt() -> Sequence[Aggregate]:
            existing = self.find(signal_uuid(draft.signal_id))
            if isinstance(existing, Signal):
                existing.check_same_as(draft, timed=timed)
                return ()
            correlation = str(signal_uuid(draft.signal_id))
            cause = _command("signal", correlation)
            return (Signal.record(draft, self.gate_in_force(), cause, now=self.clock()),)

        return self._run(draft.signal_id, attempt)

    def skip_signal(self, signal_id: str, reason: str, at: datetime) -> CommandResult:
        """Mark a signal as not traded, with the reason."""

        def attempt() -> Sequence[Aggregate]:
            signal = self.signal(signal_id)
            signal.skip(reason, at, _command("skip", str(signal.id)), now=self.clock())
            return (signal,)

        return self._run(signal_id, attempt)

    def record_entry(self, signal_id: str, fill: Fill, *, force: bool = False) -> CommandResult:
        """Record the entry of a signal's trade; a second entry must be a correction."""

        def attempt() -> Sequence[Aggregate]:
            signal = self.signal(signal_id)
            if self.trade(signal_id) is not None:
                raise DomainError(
                    f"signal {signal_id} already has an entry; use 'entry --correct' to fix it"
                )
            cause = _command("entry", str(signal.id))
            trade = Trade.enter(signal, fill, cause, now=self.clock(), forced=force)
            return (signal, trade)

        return self._run(signal_id, attempt)

    def correct_entry(
        self,
        signal_id: str,
        reason: str,
        *,
        price: float | None = None,
        qty: float | None = None,
        fee: float | None = None,
        at: datetime | None = None,
    ) -> CommandResult:
        """Record the right entry of a trade, changing only what is given; the wrong one
        stays in history."""

        def attempt() -> Sequence[Aggregate]:
            signal = self.signal(signal_id)
            trade = self._open_or_closed_trade(signal_id)
            trade.correct_entry(
                reason,
                _command("entry.correct", str(signal.id)),
                now=self.clock(),
                signal_at=signal.at,
                price=price,
                qty=qty,
                fee=fee,
                at=at,
            )
            return (trade,)

        return self._run(signal_id, attempt)

    def record_exit(
        self, signal_id: str, price: float, fee: float, reason: str, at: datetime
    ) -> CommandResult:
        """Record the exit of a signal's trade; there is at most one."""

        def attempt() -> Sequence[Aggregate]:
            trade = self._open_or_closed_trade(signal_id)
            cause = _command("exit", str(signal_uuid(signal_id)))
            trade.record_exit(price, fee, reason, at, cause, now=self.clock())
            return (trade,)

        return self._run(signal_id, attempt)

    def correct_exit(
        self,
        signal_id: str,
        reason: str,
        *,
        price: float | None = None,
        fee: float | None = None,
        exit_reason: str | None = None,
        at: datetime | None = None,
    ) -> CommandResult:
        """Record the right exit of a trade, changing only what is given; the wrong one
        stays in history."""

        def attempt() -> Sequence[Aggregate]:
            trade = self._open_or_closed_trade(signal_id)
            trade.correct_exit(
                reason,
                _command("exit.correct", str(signal_uuid(signal_id))),
                now=self.clock(),
                price=price,
                fee=fee,
                exit_reason=exit_reason,
                at=at,
            )
            return (trade,)

        return self._run(signal_id, attempt)

    def void_trade(self, signal_id: str, reason: str) -> CommandResult:
        """Record that a signal's trade was entered in error: it stays in history and the
        audit trail, and leaves every metric."""

        def attempt() -> Sequence[Aggregate]:
            trade = self._open_or_closed_trade(signal_id)
            trade.void(
                reason, _command("trade.void", str(signal_uuid(signal_id))), now=self.clock()
            )
            return (trade,)

        return self._run(signal_id, attempt)

    def record_manual_trade(
        self,
        symbol: str,
        direction: Direction,
        fill: Fill,
        source: str = MANUAL_SOURCE,
        *,
        force: bool = False,
    ) -> CommandResult:
        """Enter a trade without a prior signal: a manual signal is created for it."""
        draft = SignalDraft(
            signal_id=f"m-{secrets.token_hex(4)}",
            symbol=symbol,
            direction=direction,
            at=fill.at,
            source=source,
        )

        def attempt() -> Sequence[Aggregate]:
            cause = _command("entry", str(signal_uuid(draft.signal_id)))
            now = self.clock()
            signal = Signal.record(draft, self.gate_in_force(), cause, now=now)
            trade = Trade.enter(signal, fill, cause, now=now, forced=force)
            return (signal, trade)

        return self._run(draft.signal_id, attempt)

    def save_all(self, aggregates: Sequence[Aggregate]) -> int | None:
        """Save many aggregates' pending events in one transaction (all or nothing)."""
        recordings = self.save(*aggregates)
        return recordings[-1].notification.id if recordings else None

    # Helpers ----------------------------------------------------------------------

    def _open_or_closed_trade(self, signal_id: str) -> Trade:
        trade = self.trade(signal_id)
        if trade is None:
            self.signal(signal_id)  # unknown signal: a clearer error first
            raise DomainError(f"signal {signal_id} has no entry; record the entry first")
        return trade

    def _run(self, signal_id: str, attempt: Callable[[], Sequence[Aggregate]]) -> CommandResult:
        for _ in range(MAX_ATTEMPTS):
            aggregates = attempt()
            if not aggregates:
                return CommandResult(signal_id, stored=False, last_notification_id=None)
            try:
                return CommandResult(
                    signal_id, stored=True, last_notification_id=self.save_all(aggregates)
                )
            except RecordConflictError:
                continue
        raise ConflictError(
            f"signal {signal_id} kept changing under concurrent writers; nothing was stored, "
            "try again"
        )


def _command(name: str, correlation_id: str) -> Causation:
    return Causation.command(name, correlation_id)


def exit_reason(text: str | None) -> str:
    """A known exit reason, or the trader's own free text; ``manual`` when not given."""
    if text is None or not text.strip():
        return ExitReason.MANUAL.value
    return text.strip()
