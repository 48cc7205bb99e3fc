"""The Signal aggregate: a trading idea, recorded whether or not it is traded."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.errors import ConflictError, DomainError
from domain.events import Causation, TracedCreated, TracedEvent
from domain.values import (
    MAX_PRICE,
    MAX_THEORIES,
    Direction,
    clean_text,
    not_ahead,
    not_before,
    optional_text,
    plausible_time,
    recorded_time,
    valid_fraction,
    valid_price,
    valid_quantity,
    valid_score,
)

SIGNAL_NAMESPACE = uuid5(NAMESPACE_URL, "https://tradewatch.invalid/signal")
MANUAL_SOURCE = "manual"


def signal_uuid(signal_id: str) -> UUID:
    """The aggregate id of the signal a trader calls ``signal_id`` (deterministic)."""
    return uuid5(SIGNAL_NAMESPACE, signal_id)


@dataclass(frozen=True, slots=True)
class QualityGate:
    """One quality filter a generated signal passed or failed, with its measured value."""

    value: float
    threshold: float
    passed: bool


@dataclass(frozen=True)
class SignalDraft:
    """The facts of a signal before it is recorded; validates itself on creation."""

    signal_id: str
    symbol: str
    direction: Direction
    at: datetime
    source: str = MANUAL_SOURCE
    confidence: float | None = None
    entry_low: float | None = None
    entry_high: float | None = None
    stop_loss: float | None = None
    take_profit: float | None = None
    position_size: float | None = None
    timeframe: str | None = None
    model_version: str | None = None
    theories: dict[str, float] = field(default_factory=dict)
    inputs_digest: str | None = None
    quality_gates: dict[str, QualityGate] = field(default_factory=dict)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "signal_id", clean_text("signal id", self.signal_id, max_length=100))
        set_(self, "symbol", clean_text("symbol", self.symbol, max_length=40).upper())
        set_(self, "source", clean_text("source", self.source, max_length=60))
        set_(self, "at", recorded_time("signal time", self.at))
        set_(self, "timeframe", optional_text("timeframe", self.timeframe, max_length=20))
        set_(
            self,
            "model_version",
            optional_text("model version", self.model_version, max_length=100),
        )
        set_(
            self,
            "inputs_digest",
            optional_text("inputs digest", self.inputs_digest, max_length=200),
        )
        if self.confidence is not None:
            set_(self, "confidence", valid_fraction("confidence", self.confidence))
        for name in ("entry_low", "entry_high", "stop_loss", "take_profit"):
            value = getattr(self, name)
            if value is not None:
                set_(self, name, valid_price(name.replace("_", " "), value))
        if self.position_size is not None:
            set_(self, "position_size", valid_quantity("position size", self.position_size))
        if (self.entry_low is None) != (self.entry_high is None):
            set_(self, "entry_low", self.entry_low or self.entry_high)
            set_(self, "entry_high", self.entry_high or self.entry_low)
        if (
            self.entry_low is not None
            and self.entry_high is not None
            and self.entry_low > self.entry_high
        ):
            raise DomainError(
                f"entry zone low {self.entry_low} is above its high {self.entry_high}"
            )
        set_(self, "theories", _theories(self.theories))
        set_(self, "quality_gates", _gates(self.quality_gates))
        self.check_levels_against(self.entry_low, self.entry_high)

    def check_levels_against(self, low: float | None, high: float | None) -> None:
        """Refuse a stop or take-profit on the wrong side of the entry for the direction."""
        check_levels(self.direction, low, high, self.stop_loss, self.take_profit)

    def facts(self) -> dict[str, Any]:
        """The draft as event fields (JSON-friendly values)."""
        return {
            "signal_id": self.signal_id,
            "symbol": self.symbol,
            "direction": self.direction.value,
            "at": self.at,
            "source": self.source,
            "confidence": self.confidence,
            "entry_low": self.entry_low,
            "entry_high": self.entry_high,
            "stop_loss": self.stop_loss,
            "take_profit": self.take_profit,
            "position_size": self.position_size,
            "timeframe": self.timeframe,
            "model_version": self.model_version,
            "theories": dict(self.theories),
            "inputs_digest": self.inputs_digest,
            "quality_gates": {
                k: {"value": g.value, "threshold": g.threshold, "passed": g.passed}
                for k, g in self.quality_gates.items()
            },
        }


def _theories(theories: Mapping[str, float]) -> dict[str, float]:
    """Theory scores: at most :data:`MAX_THEORIES`, clean names, scores within ±1e6."""
    if len(theories) > MAX_THEORIES:
        raise DomainError(f"a signal carries at most {MAX_THEORIES} theories, not {len(theories)}")
    checked: dict[str, float] = {}
    for name, value in theories.items():
        key = clean_text("theory name", name, max_length=80)
        if key in checked:
            raise DomainError(f"theory {key!r} is given twice")
        checked[key] = valid_score(f"theory {key!r} score", value)
    return checked


def _gates(gates: Mapping[str, QualityGate]) -> dict[str, QualityGate]:
    """Quality gates: at most :data:`MAX_THEORIES`, clean names, finite values."""
    if len(gates) > MAX_THEORIES:
        raise DomainError(f"a signal carries at most {MAX_THEORIES} quality gates")
    checked: dict[str, QualityGate] = {}
    for name, gate in gates.items():
        key = clean_text("quality gate name", name, max_length=80)
        checked[key] = QualityGate(
            value=valid_score(f"quality gate {key!r} value", gate.value, MAX_PRICE),
            threshold=valid_score(f"quality gate {key!r} threshold", gate.threshold, MAX_PRICE),
            passed=bool(gate.passed),
        )
    return checked


def check_levels(
    direction: Direction,
    low: float | None,
    high: float | None,
    stop_loss: float | None,
    take_profit: float | None,
) -> None:
    """Long: stop below the entry and target above it; short: the other way round."""
    low_ref = low if low is not None else high
    high_ref = high if high is not None else low
    if direction is Direction.LONG:
        if stop_loss is not None and low_ref is not None and stop_loss >= low_ref:
            raise DomainError(f"stop loss {stop_loss} must be below the long entry {low_ref}")
        if take_profit is not None and high_ref is not None and take_profit <= high_ref:
            raise DomainError(f"take profit {take_profit} must be above the long entry {high_ref}")
        if stop_loss is not None and take_profit is not None and stop_loss >= take_profit:
            raise DomainError(f"stop loss {stop_loss} must be below take profit {take_profit}")
    else:
        if stop_loss is not None and high_ref is not None and stop_loss <= high_ref:
            raise DomainError(f"stop loss {stop_loss} must be above the short entry {high_ref}")
        if take_profit is not None and low_ref is not None and take_profit >= low_ref:
            raise DomainError(f"take profit {take_profit} must be below the short entry {low_ref}")
        if stop_loss is not None and take_profit is not None and stop_loss <= take_profit:
            raise DomainError(f"stop loss {stop_loss} must be above take profit {take_profit}")


@dataclass(frozen=True, slots=True)
class Gate:
    """The controller status in force when a signal was recorded, and what it did to it."""

    status: str = "green"
    multiplier: float = 1.0
    decision_id: str | None = None

    @property
    def blocked(self) -> bool:
        """A signal recorded under a zero multiplier (RED) is withheld."""
        return self.multiplier == 0.0


_COMPARED_FACTS = (
    "symbol",
    "direction",
    "source",
    "confidence",
    "entry_low",
    "entry_high",
    "stop_loss",
    "take_profit",
    "position_size",
    "timeframe",
    "model_version",
    "theories",
    "inputs_digest",
    "quality_gates",
)


class Signal(Aggregate):
    """A trading signal. Traded or ignored, it stays in the ledger for good."""

    def __init__(self) -> None:
        self.facts: dict[str, Any] = {}
        self.gate = Gate()
        self.skip_reason: str | None = None
        self.traded = False

    class Recorded(TracedCreated):
        """A signal entered by hand (or imported)."""

        signal_id: str
        symbol: str
        direction: str
        at: datetime
        source: str
        confidence: float | None
        entry_low: float | None
        entry_high: float | None
        stop_loss: float | None
        take_profit: float | None
        position_size: float | None
        timeframe: str | None
        model_version: str | None
        theories: dict[str, float]
        inputs_digest: str | None
        quality_gates: dict[str, dict[str, Any]]
        controller_status: str
        size_multiplier: float
        controller_decision_id: str | None
        blocked: bool
        sized_position: float | None

        def apply(self, aggregate: Signal) -> None:
            state = vars(self)
            aggregate.facts = {key: state[key] for key in ("signal_id", "at", *_COMPARED_FACTS)}
            aggregate.gate = Gate(
                status=self.controller_status,
                multiplier=self.size_multiplier,
                decision_id=self.controller_decision_id,
            )
            aggregate.skip_reason = None

    class Generated(Recorded):
        """A signal issued by a model, with its inputs digest and quality gates."""

    class Traded(TracedEvent):
        """The signal was entered (recorded with the entry, in the same transaction)."""

        at: datetime

        def apply(self, aggregate: Signal) -> None:
            aggregate.traded = True

    class Skipped(TracedEvent):
        """The trader decided not to trade the signal."""

        reason: str
        at: datetime

        def apply(self, aggregate: Signal) -> None:
            aggregate.skip_reason = self.reason

    @staticmethod
    def create_id(signal_id: str) -> UUID:
        """Signals are found again by the trader's own id."""
        return signal_uuid(signal_id)

    @classmethod
    def record(
        cls, draft: SignalDraft, gate: Gate, causation: Causation, *, now: datetime
    ) -> Signal:
        """Record a signal; one from a model (with a model version) is ``Generated``.

        Refused when the signal is dated ahead of ``now`` (the application's clock).
        """
        not_ahead("signal time", draft.at, now)
        generated = draft.model_version is not None and draft.source != MANUAL_SOURCE
        event_class = cls.Generated if generated else cls.Recorded
        return cls._create(
            event_class,
            id=signal_uuid(draft.signal_id),
            **draft.facts(),
            **causation.fields(),
            controller_status=gate.status,
            size_multiplier=gate.multiplier,
            controller_decision_id=gate.decision_id,
            blocked=gate.blocked,
            sized_position=None
            if draft.position_size is None
            else draft.position_size * gate.multiplier,
        )

    @property
    def signal_id(self) -> str:
        """The trader's id for this signal."""
        return str(self.facts["signal_id"])

    @property
    def at(self) -> datetime:
        """When the signal was issued."""
        moment: datetime = self.facts["at"]
        return moment

    @property
    def direction(self) -> Direction:
        """Long or short."""
        return Direction(self.facts["direction"])

    @property
    def symbol(self) -> str:
        """The traded instrument, e.g. BTCUSDT."""
        return str(self.facts["symbol"])

    @property
    def source(self) -> str:
        """Which strategy or generator issued the signal."""
        return str(self.facts["source"])

    @property
    def skipped(self) -> bool:
        """Whether the trader chose not to trade it."""
        return self.skip_reason is not None

    def check_same_as(self, draft: SignalDraft, *, timed: bool = True) -> None:
        """Refuse a retry of this signal's id that carries different facts; with ``timed``
        (the draft's time was given, not the moment of the command) its time is one of them."""
        new = draft.facts()
        compared = ("at", *_COMPARED_FACTS) if timed else _COMPARED_FACTS
        differing = [
            "time" if key == "at" else key for key in compared if self.facts[key] != new[key]
        ]
        if differing:
            raise ConflictError(
                f"signal {self.signal_id} is already recorded with a different "
                f"{', '.join(differing)}"
            )

    def mark_traded(self, at: datetime, causation: Causation) -> None:
        """Record that the signal was entered; saved with the entry, so that a concurrent
        skip conflicts on this signal instead of both succeeding."""
        self.trigger_event(self.Traded, at=recorded_time("entry time", at), **causation.fields())

    def skip(self, reason: str, at: datetime, causation: Causation, *, now: datetime) -> None:
        """Mark the signal as not traded; refused once it has a trade or was skipped, or when
        ``at`` is before the signal or ahead of ``now``."""
        if self.traded:
            raise DomainError(f"signal {self.signal_id} is already traded and cannot be skipped")
        if self.skipped:
            raise DomainError(f"signal {self.signal_id} is already skipped")
        skipped_at = plausible_time("skip time", at, now)
        not_before("skip time", skipped_at, "signal time", self.at)
        self.trigger_event(
            self.Skipped,
            reason=clean_text("reason", reason, max_length=500),
            at=skipped_at,
            **causation.fields(),
        )


def copy_block(signal: Mapping[str, Any]) -> str:
    """The V4 plan's copy-paste block for a signal (facts or a read-model row).

    Symbol and direction, entry zone, stop loss, take profit and size (the size after the
    controller's multiplier when there is one). Unknown values print as ``-``.
    """

    def show(value: Any) -> str:
        return "-" if value is None else f"{value:g}"

    size = signal.get("sized_position")
    if size is None:
        size = signal.get("position_size")
    low, high = signal.get("entry_low"), signal.get("entry_high")
    entry = show(low) if low == high else f"{show(low)} - {show(high)}"
    return (
        f"{signal['symbol']} {str(signal['direction']).upper()}\n"
        f"Entry: {entry}\n"
        f"SL: {show(signal.get('stop_loss'))}\n"
        f"TP: {show(signal.get('take_profit'))}\n"
        f"Size: {show(size)}"
    )
