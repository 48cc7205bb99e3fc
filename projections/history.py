"""The closed trades and signal theories of the ledger read model, as columns.

:func:`closed_columns` turns ``trades`` rows into :class:`TradeColumns`. :class:`TradeHistory`
mirrors the closed trades and every signal's theory scores in memory for a long-running
reader (the dashboard): each :meth:`TradeHistory.refresh` reads only the rows changed since
the last one (``trades.changed`` and ``signals.notification_id`` are the notification ids of
the last events that changed a row), so keeping up costs what changed, not what exists.
A closed trade that is voided leaves the history (it is read again whole, which is rare).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from projections.metrics import Scores, TradeColumns
from projections.store import ReadStore

CLOSED_COLUMNS = (
    "id, signal_id, symbol, direction, source, entry_time, exit_time, pnl_pct, pnl_quote, "
    "outcome, confidence, model_version, theories, changed"
)
"""The ``trades`` columns :func:`closed_columns` reads, in its row order."""

_FIELDS = tuple(f.name for f in fields(TradeColumns) if f.name != "theories")
"""The array fields of :class:`TradeColumns` (all but the theory scores)."""


def stamps_ns(stamps: Sequence[str]) -> npt.NDArray[np.int64]:
    """Stored fixed-width UTC times (``…Z``) as integer nanoseconds since the epoch."""
    micros = np.array([s[:-1] for s in stamps], dtype="datetime64[us]")
    return micros.astype(np.int64) * 1000


def closed_columns(rows: Sequence[Sequence[Any]]) -> tuple[list[str], TradeColumns]:
    """(row ids, columns) of ``trades`` rows read as :data:`CLOSED_COLUMNS`.

    The ids come back in the columns' ``(exit_time, signal_id)`` order.
    """
    parsed = [orjson.loads(r[12]) for r in rows]
    names = sorted({name for theories in parsed for name in theories})
    cols, order = TradeColumns.arrange(
        signal_id=[r[1] for r in rows],
        symbol=[r[2] for r in rows],
        direction=[r[3] for r in rows],
        source=[r[4] for r in rows],
        entry_ns=stamps_ns([r[5] for r in rows]),
        exit_ns=stamps_ns([r[6] for r in rows]),
        pnl_pct=[r[7] for r in rows],
        pnl_quote=[r[8] for r in rows],
        outcome=[r[9] for r in rows],
        confidence=[np.nan if r[10] is None else r[10] for r in rows],
        model_version=[r[11] for r in rows],
        theories={n: [t.get(n, np.nan) for t in parsed] for n in names},
    )
    return [rows[i][0] for i in order], cols


def _matching(
    arrays: dict[str, npt.NDArray[Any]],
    n: int,
    symbol: str | None,
    direction: str | None,
    source: str | None,
) -> npt.NDArray[np.bool_]:
    keep = np.ones(n, dtype=bool)
    for column, value in (("symbol", symbol), ("direction", direction), ("source", source)):
        if value:
            keep &= arrays[column] == (value.upper() if column == "symbol" else value)
    return keep


class TradeHistory:
    """The ledger read model's closed trades and signal theory scores, kept in memory."""

    def __init__(self) -> None:
        self._config: str | None = None
        self._reset()

    def _reset(self) -> None:
        self._ids: list[str] = []
        self._where: dict[str, int] = {}
        self._trades = TradeColumns.build(**{f: [] for f in _FIELDS}, theories={})
        self._trades_seen = 0
        self._signal_columns: dict[str, npt.NDArray[Any]] = {
            k: np.zeros(0, dtype=np.str_) for k in ("symbol", "direction", "source")
        }
        self._signal_scores: dict[str, npt.NDArray[np.float64]] = {}
        self._signals_seen = 0
        self._symbols: list[str] = []

    def refresh(self, store: ReadStore, config: str) -> None:
        """Read what changed since the last refresh; everything again when the read model's
        ``config`` changed (a replay with the same config rebuilds the same rows)."""
        if config != self._config:
            self._config = config
            self._reset()
        with store.reading() as cur:
            cur.execute(
                "SELECT id, changed FROM trades WHERE status = 'void' AND changed > ?",
                (self._trades_seen,),
            )
            voided = cur.fetchall()
            if any(row[0] in self._where for row in voided):
                self._reset()  # a known trade was voided (rare): read them all again
            cur.execute(
                f"SELECT {CLOSED_COLUMNS} FROM trades WHERE status = 'closed' AND changed > ?",
                (self._trades_seen,),
            )
            trade_rows = cur.fetchall()
            cur.execute(
                "SELECT symbol, direction, source, theories, notification_id FROM signals "
                "WHERE notification_id > ? ORDER BY notification_id",
                (self._signals_seen,),
            )
            signal_rows = cur.fetchall()
        if trade_rows:
            self._merge_trades(trade_rows)
        self._trades_seen = max(self._trades_seen, *(int(row[1]) for row in voided), 0)
        if signal_rows:
            self._merge_signals(signal_rows)

    def _merge_trades(self, rows: list[Any]) -> None:
        """Fold changed rows in: replace known trades in place (a closed trade's exit, and so
        its place in the order, never changes), append new ones, and sort again only when a
        new one goes before the last known one."""
        self._trades_seen = max(self._trades_seen, *(int(r[13]) for r in rows))
        ids, fresh = closed_columns(rows)
        old = self._trades
        known = np.array([self._where.get(i, -1) for i in ids], dtype=np.int64)
        added = known < 0
        names = sorted(old.theories.keys() | fresh.theories.keys())
        merged: dict[str, Any] = {}
        for field in _FIELDS:
            merged[field] = _merge(getattr(old, field), getattr(fresh, field), known)
        scores = {
            n: _merge(
                old.theories.get(n, np.full(len(old), np.nan)),
                fresh.theories.get(n, np.full(len(fresh), np.nan)),
                known,
            )
            for n in names
        }
        new_ids = [i for i, new in zip(ids, added, strict=True) if new]
        if not len(old) or not added.any() or _in_order(old, fresh, int(np.argmax(added))):
            self._trades = TradeColumns(**merged, theories=scores)
            self._where.update({i: len(self._ids) + n for n, i in enumerate(new_ids)})
            self._ids += new_ids
            return
        all_ids = self._ids + new_ids
        self._trades, order = TradeColumns.arrange(**merged, theories=scores)
        self._ids = [all_ids[i] for i in order]
        self._where = {i: n for n, i in enumerate(self._ids)}

    def _merge_signals(self, rows: list[Any]) -> None:
        self._signals_seen = int(rows[-1][4])
        parsed = [orjson.loads(r[3]) for r in rows]
        before = len(self._signal_columns["symbol"])
        for i, column in enumerate(("symbol", "direction", "source")):
            self._signal_columns[column] = np.concatenate(
                (self._signal_columns[column], np.array([r[i] for r in rows], dtype=np.str_))
            )
        self._symbols = [str(s) for s in np.unique(self._signal_columns["symbol"])]
        names = self._signal_scores.keys() | {n for theories in parsed for n in theories}
        self._signal_scores = {
            n: np.concatenate(
                (
                    self._signal_scores.get(n, np.full(before, np.nan)),
                    np.array([t.get(n, np.nan) for t in parsed], dtype=np.float64),
                )
            )
            for n in sorted(names)
        }

    def closed(
        self,
        *,
        since_ns: int | None = None,
        symbol: str | None = None,
        direction: str | None = None,
        source: str | None = None,
    ) -> TradeColumns:
        """The closed trades that exited at or after ``since_ns`` and match the rest."""
        cols = self._trades
        first = 0 if since_ns is None else int(np.searchsorted(cols.exit_ns, since_ns))
        keep = np.zeros(len(cols), dtype=bool)
        keep[first:] = True
        arrays = {"symbol": cols.symbol, "direction": cols.direction, "source": cols.source}
        keep &= _matching(arrays, len(cols), symbol, direction, source)
        return cols if keep.all() else cols.select(keep)

    def signal_scores(
        self, *, symbol: str | None = None, direction: str | None = None, source: str | None = None
    ) -> Scores:
        """Every matching signal's theory scores, as columns."""
        n = len(self._signal_columns["symbol"])
        keep = _matching(self._signal_columns, n, symbol, direction, source)
        return {name: v[keep] for name, v in self._signal_scores.items()}

    def symbols(self) -> list[str]:
        """Every symbol a signal was recorded for, sorted."""
        return self._symbols


def _in_order(old: TradeColumns, fresh: TradeColumns, first_new: int) -> bool:
    """Whether ``fresh``'s new trades (from ``first_new`` on, in order) all go after ``old``'s."""
    last = (int(old.exit_ns[-1]), str(old.signal_id[-1]))
    return (int(fresh.exit_ns[first_new]), str(fresh.signal_id[first_new])) > last


def _merge(
    old: npt.NDArray[Any], fresh: npt.NDArray[Any], where: npt.NDArray[np.int64]
) -> npt.NDArray[Any]:
    """``old`` with the rows at ``where`` positions replaced by ``fresh``'s, and ``fresh``'s
    unknown rows (position -1) appended."""
    out = np.concatenate((old, fresh[where < 0])) if (where < 0).any() else old.copy()
    if out.dtype != fresh.dtype and out.dtype.kind == "U":
        out = out.astype(np.result_type(out.dtype, fresh.dtype))
    replaced = where >= 0
    out[where[replaced]] = fresh[replaced]
    return out
