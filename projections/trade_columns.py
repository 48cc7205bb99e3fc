"""Closed trades as the metrics read them: one trade (:class:`ClosedTrade`) or many as
numpy columns (:class:`TradeColumns`), validated, in ``(exit_time, signal_id)`` order, with
times as integer nanoseconds since the Unix epoch (UTC). See :mod:`projections.metrics`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

WIN = "win"
LOSS = "loss"
BREAKEVEN = "breakeven"
OUTCOMES = frozenset({WIN, LOSS, BREAKEVEN})
DIRECTIONS = frozenset({"long", "short"})


@dataclass(frozen=True, slots=True)
class ClosedTrade:
    """One closed trade as the metrics see it.

    ``pnl_pct`` is net P&L in percent of entry notional (2.0 means +2 %), ``pnl_quote`` is net
    P&L in quote currency with fees subtracted, and ``outcome`` is already classified upstream.
    ``theories`` maps a theory name to its contribution score (> 0 pushes in the trade's
    direction, < 0 against). Raises ``ValueError`` on an unknown direction or outcome, naive
    datetimes, ``exit_time < entry_time``, non-finite numbers, or a confidence outside [0, 1].
    """

    signal_id: str
    symbol: str
    direction: str
    source: str
    entry_time: datetime
    exit_time: datetime
    pnl_pct: float
    pnl_quote: float
    outcome: str
    confidence: float | None
    model_version: str | None
    theories: Mapping[str, float]

    def __post_init__(self) -> None:
        """Reject trades the metrics cannot interpret."""
        if self.direction not in DIRECTIONS:
            raise ValueError(f"{self.signal_id}: unknown direction {self.direction!r}")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"{self.signal_id}: unknown outcome {self.outcome!r}")
        if self.entry_time.utcoffset() is None or self.exit_time.utcoffset() is None:
            raise ValueError(f"{self.signal_id}: entry_time and exit_time must be tz-aware")
        if self.exit_time < self.entry_time:
            raise ValueError(f"{self.signal_id}: exit_time is before entry_time")
        numbers = [self.pnl_pct, self.pnl_quote, *self.theories.values()]
        if not all(math.isfinite(x) for x in numbers):
            raise ValueError(f"{self.signal_id}: P&L and theory scores must be finite")
        if self.confidence is not None and not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"{self.signal_id}: confidence must be within [0, 1]")


Scores = Mapping[str, npt.NDArray[np.float64]]
"""Theory scores as columns: one array per theory name, NaN where a row has no such theory."""

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NS_PER_DAY = 86_400 * 10**9


def to_ns(moment: datetime) -> int:
    """A tz-aware datetime as integer nanoseconds since the Unix epoch (exact)."""
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000


def from_ns(ns: int) -> datetime:
    """Integer nanoseconds since the Unix epoch back to a UTC datetime (to the microsecond)."""
    return EPOCH + timedelta(microseconds=int(ns) // 1000)


def day_number(day: date) -> int:
    """Days since 1970-01-01 (UTC) of ``day``."""
    return (day - EPOCH.date()).days


@dataclass(frozen=True, eq=False)
class TradeColumns:
    """Closed trades as columns (numpy arrays), in ``(exit_time, signal_id)`` order.

    The fast form of a sequence of :class:`ClosedTrade`: times are integer nanoseconds since
    the Unix epoch (UTC), a missing confidence is NaN, and ``theories`` holds one score column
    per theory. Build it with :meth:`of` (from trades) or :meth:`build` (from raw columns,
    validated like :class:`ClosedTrade`, then sorted).
    """

    signal_id: npt.NDArray[np.str_]
    symbol: npt.NDArray[np.str_]
    direction: npt.NDArray[np.str_]
    source: npt.NDArray[np.str_]
    entry_ns: npt.NDArray[np.int64]
    exit_ns: npt.NDArray[np.int64]
    pnl_pct: npt.NDArray[np.float64]
    pnl_quote: npt.NDArray[np.float64]
    outcome: npt.NDArray[np.str_]
    confidence: npt.NDArray[np.float64]
    model_version: npt.NDArray[np.object_]
    theories: Scores

    def __len__(self) -> int:
        """How many trades."""
        return len(self.signal_id)

    @classmethod
    def of(cls, trades: Sequence[ClosedTrade]) -> TradeColumns:
        """The columns of already validated trades."""
        names = sorted({name for t in trades for name in t.theories})
        return cls._sorted(
            signal_id=[t.signal_id for t in trades],
            symbol=[t.symbol for t in trades],
            direction=[t.direction for t in trades],
            source=[t.source for t in trades],
            entry_ns=[to_ns(t.entry_time) for t in trades],
            exit_ns=[to_ns(t.exit_time) for t in trades],
            pnl_pct=[t.pnl_pct for t in trades],
            pnl_quote=[t.pnl_quote for t in trades],
            outcome=[t.outcome for t in trades],
            confidence=[math.nan if t.confidence is None else t.confidence for t in trades],
            model_version=[t.model_version for t in trades],
            theories={n: [t.theories.get(n, math.nan) for t in trades] for n in names},
        )[0]

    @classmethod
    def build(cls, **columns: Any) -> TradeColumns:
        """Columns from raw sequences (keyword per field; ``theories`` a mapping of score
        sequences with NaN for absent), validated as :class:`ClosedTrade` would be."""
        return cls.arrange(**columns)[0]

    @classmethod
    def arrange(cls, **columns: Any) -> tuple[TradeColumns, npt.NDArray[np.int64]]:
        """:meth:`build`, and the permutation that put the given rows in order."""
        made, order = cls._sorted(**columns)
        made.validate()
        return made, order

    @classmethod
    def _sorted(cls, **columns: Any) -> tuple[TradeColumns, npt.NDArray[np.int64]]:
        theories = columns.pop("theories")
        arrays: dict[str, Any] = {
            "signal_id": np.asarray(columns["signal_id"], dtype=np.str_),
            "symbol": np.asarray(columns["symbol"], dtype=np.str_),
            "direction": np.asarray(columns["direction"], dtype=np.str_),
            "source": np.asarray(columns["source"], dtype=np.str_),
            "entry_ns": np.asarray(columns["entry_ns"], dtype=np.int64),
            "exit_ns": np.asarray(columns["exit_ns"], dtype=np.int64),
            "pnl_pct": np.asarray(columns["pnl_pct"], dtype=np.float64),
            "pnl_quote": np.asarray(columns["pnl_quote"], dtype=np.float64),
            "outcome": np.asarray(columns["outcome"], dtype=np.str_),
            "confidence": np.asarray(columns["confidence"], dtype=np.float64),
            "model_version": np.asarray(columns["model_version"], dtype=np.object_),
        }
        n = len(arrays["signal_id"])
        scores = {name: np.asarray(v, dtype=np.float64) for name, v in theories.items()}
        if any(len(a) != n for a in (*arrays.values(), *scores.values())):
            raise ValueError("trade columns must all have the same length")
        order = np.lexsort((arrays["signal_id"], arrays["exit_ns"]))
        made = cls(
            **{k: v[order] for k, v in arrays.items()},
            theories={name: v[order] for name, v in scores.items()},
        )
        return made, order

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first trade the metrics cannot interpret."""
        checks = (
            (~np.isin(self.direction, list(DIRECTIONS)), "unknown direction"),
            (~np.isin(self.outcome, list(OUTCOMES)), "unknown outcome"),
            (self.exit_ns < self.entry_ns, "exit_time is before entry_time"),
            (
                ~(np.isfinite(self.pnl_pct) & np.isfinite(self.pnl_quote)),
                "P&L and theory scores must be finite",
            ),
            (
                (self.confidence < 0.0) | (self.confidence > 1.0),
                "confidence must be within [0, 1]",
            ),
        )
        for bad, problem in checks:
            if bad.any():
                raise ValueError(f"{self.signal_id[int(np.argmax(bad))]}: {problem}")
        for scores in self.theories.values():
            if np.isinf(scores).any():
                raise ValueError(
                    f"{self.signal_id[int(np.argmax(np.isinf(scores)))]}: "
                    "P&L and theory scores must be finite"
                )

    def select(self, rows: npt.NDArray[np.bool_] | npt.NDArray[np.int64]) -> TradeColumns:
        """The trades picked by a boolean mask or sorted indices (order kept); theories no
        remaining trade has are dropped."""
        theories = {name: v[rows] for name, v in self.theories.items()}
        return TradeColumns(
            signal_id=self.signal_id[rows],
            symbol=self.symbol[rows],
            direction=self.direction[rows],
            source=self.source[rows],
            entry_ns=self.entry_ns[rows],
            exit_ns=self.exit_ns[rows],
            pnl_pct=self.pnl_pct[rows],
            pnl_quote=self.pnl_quote[rows],
            outcome=self.outcome[rows],
            confidence=self.confidence[rows],
            model_version=self.model_version[rows],
            theories={k: v for k, v in theories.items() if not np.isnan(v).all()},
        )


Trades = Sequence[ClosedTrade] | TradeColumns
"""What the metrics accept: trades in any order, or their columns."""


def columns(trades: Trades) -> TradeColumns:
    """``trades`` as columns in ``(exit_time, signal_id)`` order."""
    return trades if isinstance(trades, TradeColumns) else TradeColumns.of(trades)
