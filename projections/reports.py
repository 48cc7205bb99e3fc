"""Reports read from the ledger read model: stats, positions, trades, theories, calibration.

Reports never walk the event log; they query the ``trades`` and ``signals`` tables and
hand the rows to the metric definitions in :mod:`projections.metrics`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from domain.days import TradingDay, zone_named
from domain.trade_book import ClosedTradeFact
from projections.history import CLOSED_COLUMNS, TradeHistory, closed_columns
from projections.ledger import stamp
from projections.metrics import (
    Performance,
    TradeColumns,
    calibration_report,
    measure,
    theory_attribution,
    to_ns,
)
from projections.store import ReadStore


@dataclass(frozen=True)
class TradeFilter:
    """Which trades a report covers: a window (today in the configured time zone, or days
    back from now) and optional matches."""

    days: int | None = None
    source: str | None = None
    symbol: str | None = None
    direction: str | None = None
    today: bool = False

    def describe(self) -> str:
        """Human summary, e.g. ``last 30 days, source v7``."""
        window = "today" if self.today else f"last {self.days} days" if self.days else "all time"
        parts = [window]
        parts += [
            f"{k} {v}"
            for k, v in (
                ("source", self.source),
                ("symbol", self.symbol),
                ("direction", self.direction),
            )
            if v
        ]
        return ", ".join(parts)


def parse_time(text: str) -> datetime:
    """A stored fixed-width UTC time (``…Z``) back to a datetime."""
    return datetime.fromisoformat(text)


_TRADE_COLUMNS = (
    "signal_id, symbol, direction, source, status, entry_time, entry_price, qty, fees, exit_time, "
    "exit_price, exit_reason, pnl_pct, pnl_quote, outcome, hold_minutes"
)


_TODAY_SIGNAL_COLUMNS = (
    "signal_id",
    "symbol",
    "direction",
    "source",
    "at",
    "confidence",
    "entry_low",
    "entry_high",
    "stop_loss",
    "take_profit",
    "position_size",
    "sized_position",
    "size_multiplier",
    "controller_status",
    "blocked",
    "state",
    "skip_reason",
    "theories",
    "quality_gates",
    "model_version",
    "timeframe",
)
_TODAY_TRADE_COLUMNS = (
    "signal_id",
    "status",
    "entry_price",
    "exit_price",
    "pnl_pct",
    "pnl_quote",
    "outcome",
    "forced",
)


class Reports:
    """The read side of the ledger, as of ``now`` (the wall clock unless fixed for time travel)."""

    def __init__(
        self,
        store: ReadStore,
        *,
        starting_balance: float,
        timezone: str = "UTC",
        now: datetime | None = None,
        history: TradeHistory | None = None,
    ) -> None:
        self.store = store
        self.history = history
        self.starting_balance = starting_balance
        self.zone = zone_named(timezone)
        self._now = now

    @property
    def now(self) -> datetime:
        """The moment reports speak of."""
        return self._now or datetime.now(UTC)

    def today(self) -> TradingDay:
        """Today: the configured time zone's calendar day of :attr:`now` (one definition
        for every report, the controller and the daily status; ``docs/metrics.md``)."""
        return TradingDay.of(self.now, self.zone)

    def since(self, flt: TradeFilter) -> datetime | None:
        """When the filter's window starts: today's midnight in the configured zone, or
        ``days`` back from now; ``None`` for all time."""
        if flt.today:
            return self.today().start
        if flt.days is not None:
            return (self.now - timedelta(days=flt.days)).astimezone(UTC)
        return None

    def _where(self, flt: TradeFilter, *, closed: bool) -> tuple[str, list[Any]]:
        clauses = ["status = 'closed'"] if closed else []
        params: list[Any] = []
        since = self.since(flt)
        if since is not None and closed:
            clauses.append("exit_time >= ?")
            params.append(stamp(since))
        for column in ("source", "symbol", "direction"):
            value = getattr(flt, column)
            if value:
                clauses.append(f"{column} = ?")
                params.append(value.upper() if column == "symbol" else value)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def closed_trades(self, flt: TradeFilter = TradeFilter()) -> TradeColumns:
        """Closed trades matching ``flt``, as the metrics see them (from the history when
        the reports have one, else from the ``trades`` table)."""
        if self.history is not None:
            since = self.since(flt)
            return self.history.closed(
                since_ns=None if since is None else to_ns(since),
                symbol=flt.symbol,
                direction=flt.direction,
                source=flt.source,
            )
        where, params = self._where(flt, closed=True)
        with self.store.reading() as cur:
            cur.execute(f"SELECT {CLOSED_COLUMNS} FROM trades{where}", params)
            rows = cur.fetchall()
        return closed_columns(rows)[1]

    def performance(
        self,
        flt: TradeFilter = TradeFilter(),
        closed: TradeColumns | None = None,
    ) -> Performance:
        """The performance of the closed trades matching ``flt`` (see ``docs/metrics.md``);
        ``closed``: those trades, when already read."""
        since = self.since(flt)
        return measure(
            self.closed_trades(flt) if closed is None else closed,
            starting_balance=self.starting_balance,
            today=self.today(),
            window_start=since.date() if since is not None else None,
        )

    def stats(self, flt: TradeFilter = TradeFilter()) -> dict[str, Any]:
        """The performance report (see ``docs/metrics.md``) plus open positions."""
        return self.stats_of(self.performance(flt).report(), flt, self.positions(flt))

    def stats_of(
        self, report: dict[str, Any], flt: TradeFilter, positions: Sequence[dict[str, Any]]
    ) -> dict[str, Any]:
        """``report`` with the count of ``positions`` (``flt``'s open trades), the moment and
        the filter added."""
        report["open_positions"] = len(positions)
        report["as_of"] = self.now.isoformat()
        report["filter"] = {
            "days": flt.days,
            "today": flt.today,
            "source": flt.source,
            "symbol": flt.symbol,
            "direction": flt.direction,
        }
        return report

    def positions(self, flt: TradeFilter = TradeFilter()) -> list[dict[str, Any]]:
        """Open trades, oldest first."""
        where, params = self._where(flt, closed=False)
        where = (where + " AND " if where else " WHERE ") + "status = 'open'"
        return self._trades(f"{where} ORDER BY entry_time", params)

    def trades(self, flt: TradeFilter = TradeFilter(), limit: int = 20) -> list[dict[str, Any]]:
        """The most recent trades (open or closed), newest entry first."""
        where, params = self._where(flt, closed=False)
        return self._trades(f"{where} ORDER BY entry_time DESC LIMIT ?", [*params, limit])

    def trade(self, signal_id: str) -> dict[str, Any] | None:
        """The trade of one signal, or ``None``."""
        rows = self._trades(" WHERE signal_id = ?", [signal_id])
        return rows[0] if rows else None

    def _trades(self, tail: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        names = [c.strip() for c in _TRADE_COLUMNS.split(",")]
        with self.store.reading() as cur:
            cur.execute(f"SELECT {_TRADE_COLUMNS} FROM trades{tail}", params)
            rows = cur.fetchall()
        out = []
        for row in rows:
            item = dict(zip(names, row, strict=True))
            for key in ("entry_time", "exit_time"):
                if item[key] is not None:
                    item[key] = parse_time(item[key]).isoformat()
            out.append(item)
        return out

    def _pnl_between(self, start: datetime, end: datetime) -> float:
        with self.store.reading() as cur:
            cur.execute(
                "SELECT COALESCE(SUM(pnl_quote), 0) FROM trades "
                "WHERE status = 'closed' AND exit_time >= ? AND exit_time < ?",
                (stamp(start), stamp(end)),
            )
            return float(cur.fetchone()[0])

    def daily_figures(self, now: datetime) -> dict[str, Any]:
        """The daily status: win rate (last 20), today's and yesterday's P&L, signals ready,
        open positions. Days are calendar days in the configured time zone."""
        today = TradingDay.of(now, self.zone)
        yesterday = today.previous()
        with self.store.reading() as cur:
            cur.execute(
                "SELECT COUNT(*) FROM signals WHERE state = 'pending' AND blocked = 0 AND at >= ?",
                (stamp(yesterday.start),),
            )
            ready = int(cur.fetchone()[0])
        last20 = measure(self.closed_trades(), starting_balance=self.starting_balance, today=today)
        return {
            "win_rate_last_20": last20.figures["win_rate_last_20"],
            "today_pnl": self._pnl_between(today.start, today.end),
            "yesterday_pnl": self._pnl_between(yesterday.start, yesterday.end),
            "signals_ready": ready,
            "open_positions": len(self.positions()),
        }

    def weekly_figures(self, now: datetime) -> dict[str, Any]:
        """The weekly report over the 7 days before ``now``: trades, win rate, P&L, profit
        factor, drawdown, best and worst theory by P&L, calibration ECE."""
        closed = self.closed_trades()
        exits = closed.exit_ns
        week = closed.select((exits >= to_ns(now - timedelta(days=7))) & (exits <= to_ns(now)))
        report = measure(
            week, starting_balance=self.starting_balance, today=TradingDay.of(now, self.zone)
        ).figures
        theories = [t for t in theory_attribution([], week) if t["trades"]]
        ranked = sorted(theories, key=lambda t: float(t["pnl"]))  # type: ignore[arg-type]
        return {
            "trades": report["total_trades"],
            "win_rate": report["win_rate"],
            "pnl": report["total_pnl"],
            "profit_factor": report["profit_factor"],
            "max_drawdown": report["max_drawdown"],
            "best_theory": ranked[-1]["theory"] if ranked else None,
            "worst_theory": ranked[0]["theory"] if ranked else None,
            "calibration_ece": calibration_report(week)["overall"]["ece"],  # type: ignore[index]
        }

    def last_exit_notification_id(self) -> int:
        """The log position of the latest fact that closed or changed a closed trade."""
        with self.store.reading() as cur:
            cur.execute("SELECT MAX(changed) FROM trades WHERE status = 'closed'")
            found = cur.fetchone()[0]
        return 0 if found is None else int(found)

    def closed_until(self, notification_id: int) -> list[ClosedTradeFact]:
        """Closed trades whose exit is at or before ``notification_id`` (for the controller)."""
        with self.store.reading() as cur:
            cur.execute(
                "SELECT exit_time, exit_notification_id, signal_id, pnl_quote, outcome FROM trades "
                "WHERE status = 'closed' AND exit_notification_id <= ? "
                "ORDER BY exit_time, exit_notification_id",
                (notification_id,),
            )
            rows = cur.fetchall()
        return [ClosedTradeFact(parse_time(r[0]), int(r[1]), r[2], r[3], r[4]) for r in rows]

    def theories(self, flt: TradeFilter = TradeFilter()) -> list[dict[str, object]]:
        """Per-theory attribution over all signals and the closed trades matching ``flt``."""
        if self.history is not None:
            scores = self.history.signal_scores(
                symbol=flt.symbol, direction=flt.direction, source=flt.source
            )
            return theory_attribution(scores, self.closed_trades(flt))
        clauses, params = [], []
        for column in ("source", "symbol", "direction"):
            value = getattr(flt, column)
            if value:
                clauses.append(f"{column} = ?")
                params.append(value.upper() if column == "symbol" else value)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        with self.store.reading() as cur:
            cur.execute(f"SELECT signal_id, theories FROM signals{where}", params)
            signals = [(sid, orjson.loads(theories)) for sid, theories in cur.fetchall()]
        return theory_attribution(signals, self.closed_trades(flt))

    def calibration(self, flt: TradeFilter = TradeFilter()) -> dict[str, object]:
        """Reliability of model confidence: overall, per model version, per symbol."""
        return calibration_report(self.closed_trades(flt))

    def equity(self, flt: TradeFilter = TradeFilter()) -> dict[str, Any]:
        """The equity curve, daily P&L and drawdown figures."""
        report = self.stats(flt)
        keys = (
            "starting_balance",
            "final_equity",
            "max_drawdown",
            "max_drawdown_start",
            "max_drawdown_end",
            "current_drawdown",
            "equity_curve",
            "daily_pnl",
            "as_of",
        )
        return {key: report[key] for key in keys}

    def todays_signals(self, flt: TradeFilter = TradeFilter()) -> list[dict[str, Any]]:
        """Today's signals (the configured time zone's day) matching ``flt``'s source, symbol
        and direction, newest first, each with its trade (``trade``: ``None`` if none)."""
        today = self.today()
        clauses = ["at >= ?", "at < ?"]
        params: list[Any] = [stamp(today.start), stamp(today.end)]
        for column in ("source", "symbol", "direction"):
            value = getattr(flt, column)
            if value:
                clauses.append(f"{column} = ?")
                params.append(value.upper() if column == "symbol" else value)
        with self.store.reading() as cur:
            cur.execute(
                f"SELECT {', '.join(_TODAY_SIGNAL_COLUMNS)} FROM signals "
                f"WHERE {' AND '.join(clauses)} ORDER BY at DESC, signal_id",
                params,
            )
            rows = [dict(zip(_TODAY_SIGNAL_COLUMNS, r, strict=True)) for r in cur.fetchall()]
            trades: dict[str, dict[str, Any]] = {}
            ids = [row["signal_id"] for row in rows]
            for begin in range(0, len(ids), 500):
                chunk = ids[begin : begin + 500]
                cur.execute(
                    f"SELECT {', '.join(_TODAY_TRADE_COLUMNS)} FROM trades "
                    f"WHERE signal_id IN ({', '.join('?' * len(chunk))})",
                    chunk,
                )
                for r in cur.fetchall():
                    trades[r[0]] = dict(zip(_TODAY_TRADE_COLUMNS, r, strict=True))
        for row in rows:
            row["at"] = parse_time(row["at"])
            row["theories"] = orjson.loads(row["theories"])
            row["quality_gates"] = orjson.loads(row["quality_gates"])
            row["blocked"] = bool(row["blocked"])
            row["trade"] = trades.get(row["signal_id"])
        return rows

    def signal_counts(self) -> dict[str, int]:
        """How many signals are pending, traded or skipped."""
        with self.store.reading() as cur:
            cur.execute("SELECT state, COUNT(*) FROM signals GROUP BY state")
            return {state: int(n) for state, n in cur.fetchall()}
