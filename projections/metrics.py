"""Pure metric definitions of tradewatch.

Every function here is a pure computation over closed trades: no I/O, no clock, no database.
The written definitions for traders live in ``docs/metrics.md``; the docstrings below state the
same definitions and their edge cases. Conventions shared by all functions:

* Order: trades may be passed in any order; where order matters they are sorted by
  ``(exit_time, signal_id)``.
* Time: the daily series (daily P&L, Sharpe, Sortino) counts UTC days of ``exit_time``;
  "today" is a :class:`~domain.days.TradingDay` of the configured zone; a year has 365 days.
* Sample statistics use ``ddof=1``.
* Trades come as :mod:`projections.trade_columns` (whose names are importable from here too).
* Undefined values are ``None`` (never NaN or inf); the one exception is ``profit_factor``, which
  is the string ``"inf"`` when there are profits and no losses.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import numpy.typing as npt

from domain.days import TradingDay
from projections.trade_columns import (
    BREAKEVEN,
    EPOCH,
    LOSS,
    NS_PER_DAY,
    OUTCOMES,
    Trades,
    columns,
    day_number,
    from_ns,
)

# Re-exported: the readers of the metrics take these names from here.
from projections.trade_columns import WIN as WIN  # noqa: PLC0414
from projections.trade_columns import ClosedTrade as ClosedTrade  # noqa: PLC0414
from projections.trade_columns import Scores as Scores  # noqa: PLC0414
from projections.trade_columns import TradeColumns as TradeColumns  # noqa: PLC0414
from projections.trade_columns import to_ns as to_ns  # noqa: PLC0414

DAYS_PER_YEAR = 365
LAST_N = 20
WILSON_Z_95 = 1.959963984540054


@dataclass(frozen=True, slots=True)
class Drawdown:
    """Drawdown of an equity series.

    ``depth`` is the maximum of (running_peak - equity) / running_peak, ``current`` the same ratio
    at the last point. ``peak_index`` / ``trough_index`` locate the deepest drawdown (the trough is
    its first occurrence; the peak is the last point at the running-peak level before it); both
    are ``None`` when ``depth`` is 0.
    """

    depth: float
    current: float
    peak_index: int | None
    trough_index: int | None


@dataclass(frozen=True, slots=True)
class Streaks:
    """Win/loss streaks over outcomes in exit order.

    ``current`` is +k after k consecutive wins at the end, -k after k consecutive losses, 0 when
    the last outcome is a breakeven or there are none. ``consecutive_losses`` = max(-current, 0).
    """

    current: int
    max_win: int
    max_loss: int
    consecutive_losses: int


def _mean(values: npt.NDArray[np.float64]) -> float | None:
    return float(values.sum()) / len(values) if len(values) else None


def daily_pnl(trades: Trades, *, start: date | None = None) -> list[tuple[date, float]]:
    """Return (UTC exit date, summed ``pnl_quote``) for every calendar day of the series.

    The series runs from ``start`` (default: the first exit date) to the last exit date,
    inclusive; days without exits have 0.0. Trades exiting before ``start`` are left out. Empty
    when there are no trades or ``start`` is after the last exit date.
    """
    return _dated(*_daily(columns(trades), start))


def _dated(first_day: int, sums: npt.NDArray[np.float64]) -> list[tuple[date, float]]:
    """(date, P&L) of a daily series whose first day has day number ``first_day``."""
    start = EPOCH.date() + timedelta(days=first_day)
    return [(start + timedelta(days=i), float(p)) for i, p in enumerate(sums)]


def _daily(cols: TradeColumns, start: date | None) -> tuple[int, npt.NDArray[np.float64]]:
    """(first day number, P&L per day) of :func:`daily_pnl`."""
    if not len(cols):
        return 0, np.zeros(0)
    days = cols.exit_ns // NS_PER_DAY
    first = int(days[0]) if start is None else day_number(start)
    last = int(days[-1])
    if first > last:
        return first, np.zeros(0)
    kept = days >= first
    sums = np.bincount(days[kept] - first, weights=cols.pnl_quote[kept], minlength=last - first + 1)
    return first, sums.astype(np.float64, copy=False)


def daily_returns(pnls: Sequence[float], opening_equity: float) -> list[float] | None:
    """Return r_d = pnl_d / equity at the start of day d, equity compounding by the P&L.

    Equity at the start of the first day is ``opening_equity``. ``None`` when the equity at the
    start of any day is <= 0 (a return on a non-positive balance is undefined).
    """
    returns: list[float] = []
    equity = opening_equity
    for pnl in pnls:
        if equity <= 0:
            return None
        returns.append(pnl / equity)
        equity += pnl
    return returns


NEGLIGIBLE_DEVIATION = 0.01
"""A deviation below 1 % of the mean's size is negligible: a ratio over it would pass 100 per
period (1,910 a year for daily returns), which only a near-constant series produces, e.g.
identical daily P&Ls whose returns differ only as equity compounds. Such a ratio is null."""


def _ratio(mean: float, deviation: float) -> float | None:
    """mean / deviation, or ``None`` when the deviation is negligible against the mean."""
    if deviation <= NEGLIGIBLE_DEVIATION * abs(mean):
        return None
    return mean / deviation


def sharpe(returns: Sequence[float]) -> float | None:
    """Annualised Sharpe ratio: mean(r) / std(r, ddof=1) · sqrt(365), risk-free rate 0.

    ``None`` with fewer than 2 returns, or when the standard deviation is negligible against
    the mean (:data:`NEGLIGIBLE_DEVIATION`; all returns equal among them).
    """
    r = np.asarray(returns, dtype=np.float64)
    if r.size < 2 or np.ptp(r) == 0:
        return None
    ratio = _ratio(float(np.mean(r)), float(np.std(r, ddof=1)))
    return None if ratio is None else ratio * math.sqrt(DAYS_PER_YEAR)


def sortino(returns: Sequence[float]) -> float | None:
    """Annualised Sortino ratio: mean(r) / DD · sqrt(365), target return 0.

    Downside deviation DD = sqrt(Σ min(r, 0)² / (n - 1)) over all n returns (n − 1, like the
    standard deviation of Sharpe; quantstats divides by n). ``None`` with fewer than 2
    returns, when DD is 0 (no negative return), or when DD is negligible against the mean.
    """
    r = np.asarray(returns, dtype=np.float64)
    if r.size < 2:
        return None
    downside = math.sqrt(float(np.sum(np.minimum(r, 0.0) ** 2)) / (r.size - 1))
    ratio = _ratio(float(np.mean(r)), downside)
    return None if ratio is None else ratio * math.sqrt(DAYS_PER_YEAR)


def sqn(pnls: Sequence[float] | npt.NDArray[np.float64]) -> float | None:
    """System Quality Number: sqrt(N) · mean(pnl) / std(pnl, ddof=1).

    ``None`` when N < 2 or the standard deviation is negligible against the mean (all
    P&Ls equal, up to float noise).
    """
    p = np.asarray(pnls, dtype=np.float64)
    if p.size < 2 or np.ptp(p) == 0:
        return None
    ratio = _ratio(float(np.mean(p)), float(np.std(p, ddof=1)))
    return None if ratio is None else math.sqrt(p.size) * ratio


def max_drawdown(equity: Sequence[float] | npt.NDArray[np.float64]) -> Drawdown | None:
    """Drawdown of an equity series whose first point is the starting balance (first peak).

    Drawdown at a point = (running_peak - equity) / running_peak, a positive fraction (above 1.0
    if equity goes negative). ``None`` for an empty series; ``ValueError`` if the first point is
    <= 0, since the peak must be positive.
    """
    values = np.asarray(equity, dtype=np.float64)
    if not values.size:
        return None
    if values[0] <= 0:
        raise ValueError("the first equity point (starting balance) must be positive")
    peaks = np.maximum.accumulate(values)
    drawdowns = (peaks - values) / peaks
    trough = int(np.argmax(drawdowns))
    depth = float(drawdowns[trough])
    if depth <= 0.0:
        return Drawdown(depth=0.0, current=float(drawdowns[-1]), peak_index=None, trough_index=None)
    peak = int(np.flatnonzero(values[: trough + 1] == peaks[trough])[-1])
    return Drawdown(depth=depth, current=float(drawdowns[-1]), peak_index=peak, trough_index=trough)


def streaks(outcomes: Sequence[str] | npt.NDArray[np.str_]) -> Streaks:
    """Count streaks over outcomes in exit order; a breakeven ends both kinds of streak.

    Raises ``ValueError`` on an outcome other than "win", "loss" or "breakeven".
    """
    values = np.asarray(outcomes, dtype=np.str_)
    unknown = ~np.isin(values, list(OUTCOMES))
    if unknown.any():
        raise ValueError(f"unknown outcome {str(values[int(np.argmax(unknown))])!r}")
    max_win, win_tail = _runs(values == WIN)
    max_loss, loss_tail = _runs(values == LOSS)
    current = win_tail or -loss_tail
    return Streaks(
        current=current, max_win=max_win, max_loss=max_loss, consecutive_losses=max(-current, 0)
    )


def _runs(hits: npt.NDArray[np.bool_]) -> tuple[int, int]:
    """(longest run of True, length of the run of True at the end)."""
    if not hits.any():
        return 0, 0
    edges = np.diff(np.concatenate(([0], hits.view(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    lengths = ends - starts
    return int(lengths.max()), int(lengths[-1]) if ends[-1] == len(hits) else 0


def cagr(starting_balance: float, final_equity: float, days: float) -> float | None:
    """Compound annual growth rate: (final / start) ** (365 / days) - 1.

    ``None`` when ``days`` <= 0, ``final_equity`` <= 0, or the annualised value overflows a
    float (a large gain over a very short period).
    """
    if days <= 0 or final_equity <= 0:
        return None
    try:
        growth: float = (final_equity / starting_balance) ** (DAYS_PER_YEAR / days)
    except OverflowError:
        return None
    return growth - 1.0


def profit_factor(gross_profit: float, gross_loss: float) -> float | str | None:
    """Gross profit / |gross loss|.

    The string ``"inf"`` when there is profit and no loss; ``None`` when both are 0 (no trades,
    or every trade exactly flat).
    """
    if gross_loss == 0:
        return "inf" if gross_profit > 0 else None
    return gross_profit / abs(gross_loss)


def expectancy_ratio(
    win_rate: float | None, avg_win_pct: float | None, avg_loss_pct: float | None
) -> float | None:
    """(1 + avg_win_pct / |avg_loss_pct|) × win_rate - 1.

    ``None`` when there are no wins or no losses (an average is ``None``) or avg_loss_pct is 0.
    """
    if win_rate is None or avg_win_pct is None or avg_loss_pct is None or avg_loss_pct == 0:
        return None
    return (1.0 + avg_win_pct / abs(avg_loss_pct)) * win_rate - 1.0


def wilson_interval(successes: int, n: int, z: float = WILSON_Z_95) -> tuple[float, float] | None:
    """Wilson score interval for a binomial proportion successes / n (default 95 %).

    centre = (p + z²/2n) / (1 + z²/n), half-width = z / (1 + z²/n) · sqrt(p(1-p)/n + z²/4n²),
    clipped to [0, 1]. ``None`` when n == 0; ``ValueError`` unless 0 <= successes <= n and z > 0.
    """
    if not 0 <= successes <= n or z <= 0:
        raise ValueError("need 0 <= successes <= n and z > 0")
    if n == 0:
        return None
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True, eq=False)
class Performance:
    """The performance of closed trades: the scalar figures, and the curves as arrays.

    ``figures`` holds every scalar of :func:`performance` (JSON-ready). The equity curve is
    ``curve_ns`` (first point: the earliest entry) against ``equity``; ``first_day`` is the
    day number (days since 1970-01-01, UTC) of ``day_pnl[0]``.
    """

    figures: dict[str, object]
    curve_ns: npt.NDArray[np.int64]
    equity: npt.NDArray[np.float64]
    first_day: int
    day_pnl: npt.NDArray[np.float64]

    def report(self) -> dict[str, object]:
        """The JSON-ready report of :func:`performance`, curves included."""
        curve = [
            {"time": from_ns(int(ns)).isoformat(), "equity": float(e)}
            for ns, e in zip(self.curve_ns, self.equity, strict=True)
        ]
        days = _dated(self.first_day, self.day_pnl)
        daily = [{"date": day.isoformat(), "pnl": pnl} for day, pnl in days]
        return {**self.figures, "daily_pnl": daily, "equity_curve": curve}


def performance(
    trades: Trades,
    *,
    starting_balance: float,
    today: TradingDay,
    window_start: date | None = None,
) -> dict[str, object]:
    """Compute the JSON-ready performance summary of closed trades (see docs/metrics.md).

    The report of :func:`measure`, with its equity curve and daily P&L as lists.
    """
    return measure(
        trades, starting_balance=starting_balance, today=today, window_start=window_start
    ).report()


def measure(
    trades: Trades,
    *,
    starting_balance: float,
    today: TradingDay,
    window_start: date | None = None,
) -> Performance:
    """Measure closed trades (see docs/metrics.md).

    Counts, averages and sums over all trades; equity and drawdown over the per-trade equity
    curve starting at ``starting_balance`` (first point timed at the earliest entry_time);
    Sharpe/Sortino over daily returns of the UTC-day series starting at ``window_start`` (or
    the first exit date; trades exiting earlier count only in the first day's opening equity);
    streaks and last-20 win rate in ``(exit_time, signal_id)`` order; ``today_*`` over trades
    exiting within ``today`` (a calendar day of the configured zone, :mod:`domain.days`).
    No trades gives ``None`` rates/ratios and 0 counts/sums.
    Raises ``ValueError`` if ``starting_balance`` is not a positive finite number.
    """
    if not (math.isfinite(starting_balance) and starting_balance > 0):
        raise ValueError("starting_balance must be a positive finite number")
    cols = columns(trades)
    n = len(cols)
    pnls, pcts, outcomes = cols.pnl_quote, cols.pnl_pct, cols.outcome
    won, lost = outcomes == WIN, outcomes == LOSS
    wins, losses = int(won.sum()), int(lost.sum())
    win_rate = wins / n if n else None
    avg_win_pct = _mean(pcts[won])
    avg_loss_pct = _mean(pcts[lost])
    gross_profit = float(pnls[pnls > 0].sum())
    gross_loss = float(pnls[pnls < 0].sum())

    equity = starting_balance + np.concatenate(([0.0], np.cumsum(pnls)))
    curve_ns = np.concatenate(([cols.entry_ns.min()], cols.exit_ns)) if n else cols.exit_ns
    drawdown = max_drawdown(equity) if n else None

    first_day, day_pnl = _daily(cols, window_start)
    days = cols.exit_ns // NS_PER_DAY
    opening = starting_balance + float(pnls[days < first_day].sum()) if len(day_pnl) else 0.0
    returns = daily_returns(day_pnl.tolist(), opening)

    if n:
        span_us = (int(cols.exit_ns[-1]) - int(cols.entry_ns.min())) // 1000
        growth = cagr(starting_balance, float(equity[-1]), span_us / 10**6 / 86400)
    else:
        growth = None
    depth = drawdown.depth if drawdown is not None else None
    calmar = growth / depth if growth is not None and depth else None

    runs = streaks(outcomes)
    recent = outcomes[-LAST_N:]
    today_start, today_end = to_ns(today.start), to_ns(today.end)
    today_pnls = pnls[(cols.exit_ns >= today_start) & (cols.exit_ns < today_end)]
    today_pnl = float(today_pnls.sum())
    today_open = starting_balance + float(pnls[cols.exit_ns < today_start].sum())
    if not len(today_pnls):
        today_pnl_pct: float | None = 0.0
    else:
        today_pnl_pct = today_pnl / today_open if today_open > 0 else None

    def at(index: int | None) -> str | None:
        return None if index is None else from_ns(int(curve_ns[index])).isoformat()

    figures: dict[str, object] = {
        "total_trades": n,
        "wins": wins,
        "losses": losses,
        "breakevens": int((outcomes == BREAKEVEN).sum()),
        "win_rate": win_rate,
        "avg_win_pct": avg_win_pct,
        "avg_loss_pct": avg_loss_pct,
        "avg_pnl_pct": _mean(pcts),
        "total_pnl": float(pnls.sum()),
        "total_pnl_pct": float(pcts.sum()),
        "gross_profit": gross_profit,
        "gross_loss": gross_loss,
        "profit_factor": profit_factor(gross_profit, gross_loss),
        "expectancy": _mean(pnls),
        "expectancy_pct": _mean(pcts),
        "expectancy_ratio": expectancy_ratio(win_rate, avg_win_pct, avg_loss_pct),
        "sqn": sqn(pnls),
        "sharpe": sharpe(returns) if returns is not None else None,
        "sortino": sortino(returns) if returns is not None else None,
        "max_drawdown": depth,
        "max_drawdown_start": at(drawdown.peak_index) if drawdown is not None else None,
        "max_drawdown_end": at(drawdown.trough_index) if drawdown is not None else None,
        "current_drawdown": drawdown.current if drawdown is not None else None,
        "cagr": growth,
        "calmar": calmar,
        "current_streak": runs.current,
        "max_win_streak": runs.max_win,
        "max_loss_streak": runs.max_loss,
        "consecutive_losses": runs.consecutive_losses,
        "win_rate_last_20": float((recent == WIN).sum()) / len(recent) if len(recent) else None,
        "last_20_count": len(recent),
        "today_pnl": today_pnl,
        "today_pnl_pct": today_pnl_pct,
        "starting_balance": starting_balance,
        "final_equity": float(equity[-1]),
    }
    return Performance(
        figures=figures,
        curve_ns=curve_ns,
        equity=equity if n else equity[:0],
        first_day=first_day,
        day_pnl=day_pnl,
    )


def theory_attribution(
    signals: Sequence[tuple[str, Mapping[str, float]]] | Scores, trades: Trades
) -> list[dict[str, object]]:
    """Attribute signals and closed-trade results to each theory, one row per theory by name.

    ``signals`` holds (signal_id, theory scores) for every signal, traded or not, or those
    scores as columns (:data:`Scores`); a theory "contributed" when its name is a key of the
    mapping (even with score 0). Signal counts and ``mean_contribution`` come from ``signals``;
    trade statistics use each trade's own ``theories``. ``win_rate`` = wins / trades with a
    95 % Wilson interval; ``weighted_pnl`` = Σ score × pnl_quote; a trade is ``correct`` when
    (win and score > 0) or (loss and score < 0), and ``correct_rate`` divides by the theory's
    wins + losses (breakevens excluded, zero scores included as not correct). Rates and means
    with a zero denominator are ``None``. Raises ``ValueError`` on duplicate signal ids.
    """
    if isinstance(signals, Mapping):
        scores = {name: v[~np.isnan(v)] for name, v in signals.items()}
    else:
        ids = [signal_id for signal_id, _ in signals]
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate signal_id in signals")
        lists: dict[str, list[float]] = {}
        for _, theories in signals:
            for name, score in theories.items():
                lists.setdefault(name, []).append(score)
        scores = {name: np.asarray(v, dtype=np.float64) for name, v in lists.items()}
    cols = columns(trades)
    empty = np.zeros(0)
    rows: list[dict[str, object]] = []
    for name in sorted({k for k, v in scores.items() if len(v)} | cols.theories.keys()):
        column = cols.theories.get(name)
        present = ~np.isnan(column) if column is not None else np.zeros(len(cols), dtype=bool)
        own = column[present] if column is not None else empty
        outcome, pnl = cols.outcome[present], cols.pnl_quote[present]
        won, lost = outcome == WIN, outcome == LOSS
        wins, decided, traded = int(won.sum()), int(won.sum() + lost.sum()), len(own)
        correct = int(((won & (own > 0)) | (lost & (own < 0))).sum())
        interval = wilson_interval(wins, traded)
        contributions = scores.get(name, empty)
        rows.append(
            {
                "theory": name,
                "signals": len(contributions),
                "trades": traded,
                "mean_contribution": _mean(contributions),
                "wins": wins,
                "win_rate": wins / traded if traded else None,
                "win_rate_low": interval[0] if interval is not None else None,
                "win_rate_high": interval[1] if interval is not None else None,
                "pnl": float(pnl.sum()),
                "weighted_pnl": float((own * pnl).sum()),
                "correct": correct,
                "correct_rate": correct / decided if decided else None,
            }
        )
    return rows


def calibration(trades: Trades, bins: int = 10) -> dict[str, object]:
    """Calibration of model confidence against wins, over trades whose confidence is not None.

    A hit is outcome "win" (loss and breakeven are misses). ``bins`` uniform bins [i/b, (i+1)/b),
    the last one closed so 1.0 falls in it; empty bins have ``None`` means. ECE =
    Σ (n_b / n) · |win_rate_b - mean_confidence_b|; Brier = mean((confidence - hit)²); both
    ``None`` when no trade has a confidence. Raises ``ValueError`` if ``bins`` < 1.
    """
    if bins < 1:
        raise ValueError("bins must be >= 1")
    cols = columns(trades)
    rated = ~np.isnan(cols.confidence)
    conf = cols.confidence[rated]
    hits = (cols.outcome[rated] == WIN).astype(np.float64)
    edges = np.array([i / bins for i in range(1, bins)])
    member = np.searchsorted(edges, conf, side="right")
    counts = np.bincount(member, minlength=bins)
    conf_sums = np.bincount(member, weights=conf, minlength=bins)
    hit_sums = np.bincount(member, weights=hits, minlength=bins)
    n = len(conf)
    rows: list[dict[str, object]] = []
    gaps: list[float] = []
    for i in range(bins):
        count = int(counts[i])
        mean_conf = float(conf_sums[i]) / count if count else None
        rate = float(hit_sums[i]) / count if count else None
        if mean_conf is not None and rate is not None:
            gaps.append(count / n * abs(rate - mean_conf))
        rows.append(
            {
                "low": i / bins,
                "high": (i + 1) / bins,
                "count": count,
                "mean_confidence": mean_conf,
                "win_rate": rate,
            }
        )
    return {
        "count": n,
        "bins": rows,
        "ece": math.fsum(gaps) if n else None,
        "brier": float(np.mean((conf - hits) ** 2)) if n else None,
    }


def calibration_report(trades: Trades, bins: int = 10) -> dict[str, object]:
    """Calibration overall, by model version and by symbol (groups sorted by key).

    Trades with ``model_version`` None are grouped under "unknown". Every group seen in
    ``trades`` is listed, even one without any confidence (its ``count`` is then 0).
    """
    cols = columns(trades)
    versions = np.array(
        ["unknown" if v is None else str(v) for v in cols.model_version], dtype=np.str_
    )
    return {
        "overall": calibration(cols, bins),
        "by_model_version": {
            str(k): calibration(cols.select(versions == k), bins) for k in np.unique(versions)
        },
        "by_symbol": {
            str(k): calibration(cols.select(cols.symbol == k), bins) for k in np.unique(cols.symbol)
        },
    }
