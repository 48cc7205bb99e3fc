"""The ledger read model: one row per signal and one row per trade, P&L computed on projection.

The outcome threshold is applied here, when projecting, so a replay with another
threshold recomputes every outcome (``config`` changes, and the engine replays).

A fact the read model cannot hold (a P&L that is not finite, a time outside the range
of :func:`~projections.facts.readable_time`, theory scores that are not numbers)
raises ``ValueError`` naming the problem; the engine then leaves that fact out and
names it (see :mod:`projections.engine`), so the rows the reports read are always sound.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from domain.pnl import DEFAULT_BREAKEVEN_PCT, classify, hold_minutes, trade_pnl
from domain.signal import signal_uuid
from domain.values import MAX_SCORE, Direction
from projections.engine import Table
from projections.facts import Fact, readable_time
from projections.store import Cursor


def stamp(moment: datetime) -> str:
    """A time as fixed-width UTC text (``2026-11-30T16:00:00.000000Z``), so that text order
    is time order in any database. The one place a time becomes read-model text: it is
    converted to UTC first, whatever offset it carries."""
    at = moment.astimezone(UTC)
    return (
        f"{at.year:04d}-{at.month:02d}-{at.day:02d}T"
        f"{at.hour:02d}:{at.minute:02d}:{at.second:02d}.{at.microsecond:06d}Z"
    )


def _when(value: Any) -> str:
    """A stored time as :func:`stamp` text; ``ValueError`` outside the readable range."""
    return stamp(readable_time(value))


def _scores(theories: Any) -> str:
    """Theory scores as stored JSON; ``ValueError`` unless a mapping of numbers within the
    domain's ±1e6 (so that score × P&L stays finite)."""
    if not isinstance(theories, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and abs(v) <= MAX_SCORE
        for v in theories.values()
    ):
        raise ValueError(f"theory scores are not numbers within ±{MAX_SCORE:g}")
    return orjson.dumps(theories).decode()


SIGNALS = Table(
    name="signals",
    columns=(
        "id TEXT NOT NULL",
        "signal_id TEXT NOT NULL",
        "kind TEXT NOT NULL",
        "symbol TEXT NOT NULL",
        "direction TEXT NOT NULL",
        "source TEXT NOT NULL",
        "at TEXT NOT NULL",
        "confidence DOUBLE PRECISION",
        "entry_low DOUBLE PRECISION",
        "entry_high DOUBLE PRECISION",
        "stop_loss DOUBLE PRECISION",
        "take_profit DOUBLE PRECISION",
        "position_size DOUBLE PRECISION",
        "timeframe TEXT",
        "model_version TEXT",
        "theories TEXT NOT NULL",
        "quality_gates TEXT NOT NULL",
        "inputs_digest TEXT",
        "controller_status TEXT NOT NULL",
        "size_multiplier DOUBLE PRECISION NOT NULL",
        "controller_decision_id TEXT",
        "blocked INTEGER NOT NULL",
        "sized_position DOUBLE PRECISION",
        "state TEXT NOT NULL",
        "skip_reason TEXT",
        "notification_id BIGINT NOT NULL",
    ),
    primary_key="id",
    indexes=("signal_id", "at", "notification_id"),
)

TRADES = Table(
    name="trades",
    columns=(
        "id TEXT NOT NULL",
        "signal_id TEXT NOT NULL",
        "symbol TEXT NOT NULL",
        "direction TEXT NOT NULL",
        "source TEXT NOT NULL",
        "status TEXT NOT NULL",
        "entry_time TEXT NOT NULL",
        "entry_price DOUBLE PRECISION NOT NULL",
        "qty DOUBLE PRECISION NOT NULL",
        "entry_fee DOUBLE PRECISION NOT NULL",
        "exit_time TEXT",
        "exit_price DOUBLE PRECISION",
        "exit_fee DOUBLE PRECISION",
        "exit_reason TEXT",
        "fees DOUBLE PRECISION NOT NULL",
        "pnl_quote DOUBLE PRECISION",
        "pnl_pct DOUBLE PRECISION",
        "outcome TEXT",
        "hold_minutes DOUBLE PRECISION",
        "stop_loss DOUBLE PRECISION",
        "take_profit DOUBLE PRECISION",
        "confidence DOUBLE PRECISION",
        "model_version TEXT",
        "theories TEXT NOT NULL",
        "forced INTEGER NOT NULL",
        "corrections INTEGER NOT NULL",
        "entry_notification_id BIGINT NOT NULL",
        "exit_notification_id BIGINT",
        "changed BIGINT NOT NULL",
    ),
    primary_key="id",
    indexes=("signal_id", "status", "exit_time", "entry_time", "changed"),
)

_TRADE_CHANGES = (
    "Trade.EntryCorrected",
    "Trade.ExitRecorded",
    "Trade.ExitCorrected",
    "Trade.Voided",
)
"""Events that change a trade row after its entry."""

_SIGNAL_COLUMNS = [c.split()[0] for c in SIGNALS.columns]
_TRADE_COLUMNS = [c.split()[0] for c in TRADES.columns]


class LedgerProjection:
    """Projects Signal and Trade events into the ``signals`` and ``trades`` tables."""

    name = "ledger"
    tables = (SIGNALS, TRADES)

    def __init__(self, breakeven_pct: float = DEFAULT_BREAKEVEN_PCT) -> None:
        self.breakeven_pct = breakeven_pct

    def config(self) -> str:
        """The outcome threshold (changing it recomputes every outcome on replay), and the
        schema version (a new column rebuilds the tables)."""
        return f"breakeven_pct={self.breakeven_pct!r};schema=4"

    def apply(self, cursor: Cursor, tables: Mapping[str, str], facts: Sequence[Fact]) -> None:
        """Apply a batch: load the rows it touches, change them in memory, upsert once."""
        signals_table, trades_table = tables["signals"], tables["trades"]
        relevant = [f for f in facts if f.kind.startswith(("Signal.", "Trade."))]
        if not relevant:
            return
        signals = _load(cursor, signals_table, _SIGNAL_COLUMNS, _signal_keys(relevant))
        trades = _load(cursor, trades_table, _TRADE_COLUMNS, _trade_keys(relevant))
        dirty_signals: set[str] = set()
        dirty_trades: set[str] = set()
        for fact in relevant:
            handler = getattr(self, "_" + fact.kind.replace(".", "_"), None)
            if handler is None:
                continue
            touched_signal, touched_trade = handler(fact, signals, trades)
            if touched_signal:
                dirty_signals.add(touched_signal)
            if touched_trade:
                dirty_trades.add(touched_trade)
        _upsert(cursor, signals_table, _SIGNAL_COLUMNS, (signals[k] for k in dirty_signals))
        _upsert(cursor, trades_table, _TRADE_COLUMNS, (trades[k] for k in dirty_trades))

    # Handlers: each returns (touched signal key, touched trade key) -------------------

    def _Signal_Recorded(  # noqa: N802
        self, fact: Fact, signals: dict[str, dict[str, Any]], trades: dict[str, dict[str, Any]]
    ) -> tuple[str | None, str | None]:
        s = fact.state
        Direction(s["direction"])
        confidence = s["confidence"]
        if confidence is not None and not 0.0 <= confidence <= 1.0:
            raise ValueError(f"confidence {confidence!r} is not within [0, 1]")
        signals[fact.aggregate_id] = {
            "id": fact.aggregate_id,
            "signal_id": s["signal_id"],
            "kind": fact.kind.rpartition(".")[2].lower(),
            "symbol": s["symbol"],
            "direction": s["direction"],
            "source": s["source"],
            "at": _when(s["at"]),
            "confidence": s["confidence"],
            "entry_low": s["entry_low"],
            "entry_high": s["entry_high"],
            "stop_loss": s["stop_loss"],
            "take_profit": s["take_profit"],
            "position_size": s["position_size"],
            "timeframe": s["timeframe"],
            "model_version": s["model_version"],
            "theories": _scores(s["theories"]),
            "quality_gates": orjson.dumps(s["quality_gates"]).decode(),
            "inputs_digest": s["inputs_digest"],
            "controller_status": s["controller_status"],
            "size_multiplier": s["size_multiplier"],
            "controller_decision_id": s["controller_decision_id"],
            "blocked": int(s["blocked"]),
            "sized_position": s["sized_position"],
            "state": "pending",
            "skip_reason": None,
            "notification_id": fact.id,
        }
        return fact.aggregate_id, None

    _Signal_Generated = _Signal_Recorded

    def _Signal_Skipped(  # noqa: N802
        self, fact: Fact, signals: dict[str, dict[str, Any]], trades: dict[str, dict[str, Any]]
    ) -> tuple[str | None, str | None]:
        row = signals.get(fact.aggregate_id)
        if row is None:
            return None, None
        row["state"] = "skipped"
        row["skip_reason"] = fact.state["reason"]
        return fact.aggregate_id, None

    def _Trade_EntryRecorded(  # noqa: N802
        self, fact: Fact, signals: dict[str, dict[str, Any]], trades: dict[str, dict[str, Any]]
    ) -> tuple[str | None, str | None]:
        s = fact.state
        Direction(s["direction"])
        signal_key = str(signal_uuid(s["signal_id"]))
        signal = signals.get(signal_key)
        trades[fact.aggregate_id] = {
            "id": fact.aggregate_id,
            "signal_id": s["signal_id"],
            "symbol": s["symbol"],
            "direction": s["direction"],
            "source": s["source"],
            "status": "open",
            "entry_time": _when(s["at"]),
            "entry_price": s["price"],
            "qty": s["qty"],
            "entry_fee": s["fee"],
            "exit_time": None,
            "exit_price": None,
            "exit_fee": None,
            "exit_reason": None,
            "fees": s["fee"],
            "pnl_quote": None,
            "pnl_pct": None,
            "outcome": None,
            "hold_minutes": None,
            "stop_loss": s["stop_loss"],
            "take_profit": s["take_profit"],
            "confidence": signal["confidence"] if signal else None,
            "model_version": signal["model_version"] if signal else None,
            "theories": signal["theories"] if signal else "{}",
            "forced": int(s["forced"]),
            "corrections": 0,
            "entry_notification_id": fact.id,
            "exit_notification_id": None,
            "changed": fact.id,
        }
        if signal is None:
            return None, fact.aggregate_id
        signal["state"] = "traded"
        return signal_key, fact.aggregate_id

    def _Trade_EntryCorrected(  # noqa: N802
        self, fact: Fact, signals: dict[str, dict[str, Any]], trades: dict[str, dict[str, Any]]
    ) -> tuple[str | None, str | None]:
        row = trades.get(fact.aggregate_id)
        if row is None:
            return None, None
        s = fact.state
        row.update(
            entry_time=_when(s["at"]),
            entry_price=s["price"],
            qty=s["qty"],
            entry_fee=s["fee"],
            corrections=row["corrections"] + 1,
            changed=fact.id,
        )
        self._settle(row)
        return None, fact.aggregate_id

    def _Trade_ExitRecorded(  # noqa: N802
        self, fact: Fact, signals: dict[str, dict[str, Any]], trades: dict[str, dict[str, Any]]
    ) -> tuple[str | None, str | None]:
        row = trades.get(fact.aggregate_id)
        if row is None:
            return None, None
        s = fact.state
        row.update(
            status="closed",
            exit_time=_when(s["at"]),
            exit_price=s["price"],
            exit_fee=s["fee"],
            exit_reason=s["reason" if fact.kind == "Trade.ExitRecorded" else "exit_reason"],
            exit_notification_id=fact.id,
            changed=fact.id,
        )
        self._settle(row)
        return None, fact.aggregate_id

    _Trade_ExitCorrected = _Trade_ExitRecorded

    def _Trade_Voided(  # noqa: N802
        self, fact: Fact, signals: dict[str, dict[str, Any]], trades: dict[str, dict[str, Any]]
    ) -> tuple[str | None, str | None]:
        row = trades.get(fact.aggregate_id)
        if row is None:
            return None, None
        row.update(status="void", changed=fact.id)
        return None, fact.aggregate_id

    def _settle(self, row: dict[str, Any]) -> None:
        """Recompute fees, P&L, outcome and hold time of a trade row from its entry and exit."""
        exit_fee = row["exit_fee"] or 0.0
        row["fees"] = row["entry_fee"] + exit_fee
        if row["exit_price"] is None:
            return
        if row["exit_time"] < row["entry_time"]:
            raise ValueError(f"exit {row['exit_time']} is before the entry {row['entry_time']}")
        pnl = trade_pnl(
            Direction(row["direction"]),
            row["entry_price"],
            row["exit_price"],
            row["qty"],
            row["fees"],
        )
        row["pnl_quote"] = pnl.net_quote
        row["pnl_pct"] = pnl.pct
        row["outcome"] = classify(pnl.pct, self.breakeven_pct).value
        row["hold_minutes"] = hold_minutes(
            datetime.fromisoformat(row["entry_time"]), datetime.fromisoformat(row["exit_time"])
        )


def _signal_keys(facts: Iterable[Fact]) -> set[str]:
    keys = set()
    for fact in facts:
        if fact.kind == "Signal.Skipped":
            keys.add(fact.aggregate_id)
        elif fact.kind == "Trade.EntryRecorded":
            keys.add(str(signal_uuid(fact.state["signal_id"])))
    return keys


def _trade_keys(facts: Iterable[Fact]) -> set[str]:
    return {f.aggregate_id for f in facts if f.kind in _TRADE_CHANGES}


def _load(
    cursor: Cursor, table: str, columns: list[str], keys: set[str]
) -> dict[str, dict[str, Any]]:
    """Rows of ``table`` with these ids, keyed by id (in chunks the databases accept)."""
    found: dict[str, dict[str, Any]] = {}
    wanted = sorted(keys)
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        cursor.execute(f"SELECT {', '.join(columns)} FROM {table} WHERE id IN ({marks})", chunk)
        for row in cursor.fetchall():
            found[row[0]] = dict(zip(columns, row, strict=True))
    return found


def _upsert(cursor: Cursor, table: str, columns: list[str], rows: Iterable[dict[str, Any]]) -> None:
    values = [[row[c] for c in columns] for row in rows]
    if not values:
        return
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
    cursor.executemany(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
        f"ON CONFLICT (id) DO UPDATE SET {updates}",
        values,
    )
