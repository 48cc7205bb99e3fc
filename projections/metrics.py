"""Pure metric definitions of tradewatch.

Every function here is a pure computation over closed trades: no I/O, no clock, no database.
The written definitions for traders live in ``docs/metrics.md``; the docstrings below state the
same definitions and their edge cases. Conventions shared by all functions:

* Order: trades may be passed in any order; where order matters they are sorted by
  ``(exit_time, signal_id)``.
* Time: calendar days are UTC days of ``exit_time``; a year has 365 days.
* Sample statistics use ``ddof=1``.
* Undefined values are ``None`` (never NaN or inf); the one exception is ``profit_factor``, which
  is the string ``"inf"`` when there are profits and no losses.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np

WIN = "win"
LOSS = "loss"
BREAKEVEN = "breakeven"
OUTCOMES = frozenset({WIN, LOSS, BREAKEVEN})
DIRECTIONS = frozenset({"long", "short"})
DAYS_PER_YEAR = 365
LAST_N = 20
WILSON_Z_95 = 1.959963984540054


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


def sort_trades(trades: Sequence[ClosedTrade]) -> list[ClosedTrade]:
    """Return the trades sorted by ``(exit_time, signal_id)``, the order all metrics use."""
    return sorted(trades, key=lambda t: (t.exit_time, t.signal_id))


def exit_day(trade: ClosedTrade) -> date:
    """Return the UTC calendar date of the trade's exit."""
    return trade.exit_time.astimezone(UTC).date()


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def daily_pnl(
    trades: Sequence[ClosedTrade], *, start: date | None = None
) -> list[tuple[date, float]]:
    """Return (UTC exit date, summed ``pnl_quote``) for every calendar day of the series.

    The series runs from ``start`` (default: the first exit date) to the last exit date,
    inclusive; days without exits have 0.0. Trades exiting before ``start`` are left out. Empty
    when there are no trades or ``start`` is after the last exit date.
    """
    if not trades:
        return []
    by_day: dict[date, list[float]] = {}
    for trade in trades:
        by_day.setdefault(exit_day(trade), []).append(trade.pnl_quote)
    first = min(by_day) if start is None else start
    last = max(by_day)
    return [
        (day, math.fsum(by_day.get(day, [])))
        for day in (first + timedelta(days=i) for i in range((last - first).days + 1))
    ]


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


def sharpe(returns: Sequence[float]) -> float | None:
    """Annualised Sharpe ratio: mean(r) / std(r, ddof=1) · sqrt(365), risk-free rate 0.

    ``None`` with fewer than 2 returns or zero standard deviation (all returns equal).
    """
    r = np.asarray(returns, dtype=np.float64)
    if r.size < 2 or np.ptp(r) == 0:
        return None
    sd = float(np.std(r, ddof=1))
    if sd == 0.0:
        return None
    return float(np.mean(r)) / sd * math.sqrt(DAYS_PER_YEAR)


def sortino(returns: Sequence[float]) -> float | None:
    """Annualised Sortino ratio: mean(r) / DD · sqrt(365), target return 0.

    Downside deviation DD = sqrt(Σ min(r, 0)² / (n - 1)) over all n returns. ``None`` with fewer
    than 2 returns or when DD is 0 (no negative return).
    """
    r = np.asarray(returns, dtype=np.float64)
    if r.size < 2:
        return None
    downside = math.sqrt(float(np.sum(np.minimum(r, 0.0) ** 2)) / (r.size - 1))
    if downside == 0.0:
        return None
    return float(np.mean(r)) / downside * math.sqrt(DAYS_PER_YEAR)


def sqn(pnls: Sequence[float]) -> float | None:
    """System Quality Number: sqrt(N) · mean(pnl) / std(pnl, ddof=1).

    ``None`` when N < 2 or the standard deviation is 0 (all P&Ls equal).
    """
    p = np.asarray(pnls, dtype=np.float64)
    if p.size < 2 or np.ptp(p) == 0:
        return None
    sd = float(np.std(p, ddof=1))
    if sd == 0.0:
        return None
    return math.sqrt(p.size) * float(np.mean(p)) / sd


def max_drawdown(equity: Sequence[float]) -> Drawdown | None:
    """Drawdown of an equity series whose first point is the starting balance (first peak).

    Drawdown at a point = (running_peak - equity) / running_peak, a positive fraction (above 1.0
    if equity goes negative). ``None`` for an empty series; ``ValueError`` if the first point is
    <= 0, since the peak must be positive.
    """
    if not equity:
        return None
    if equity[0] <= 0:
        raise ValueError("the first equity point (starting balance) must be positive")
    peak, peak_at = equity[0], 0
    depth, current, best_peak, best_trough = 0.0, 0.0, None, None
    for i, value in enumerate(equity):
        if value >= peak:
            peak, peak_at = value, i
        current = (peak - value) / peak
        if current > depth:
            depth, best_peak, best_trough = current, peak_at, i
    return Drawdown(depth=depth, current=current, peak_index=best_peak, trough_index=best_trough)


def streaks(outcomes: Sequence[str]) -> Streaks:
    """Count streaks over outcomes in exit order; a breakeven ends both kinds of streak.

    Raises ``ValueError`` on an outcome other than "win", "loss" or "breakeven".
    """
    run, max_win, max_loss = 0, 0, 0
    for outcome in outcomes:
        if outcome == WIN:
            run = run + 1 if run > 0 else 1
            max_win = max(max_win, run)
        elif outcome == LOSS:
            run = run - 1 if run < 0 else -1
            max_loss = max(max_loss, -run)
        elif outcome == BREAKEVEN:
            run = 0
        else:
            raise ValueError(f"unknown outcome {outcome!r}")
    return Streaks(current=run, max_win=max_win, max_loss=max_loss, consecutive_losses=max(-run, 0))


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


def performance(
    trades: Sequence[ClosedTrade],
    *,
    starting_balance: float,
    today: date,
    window_start: date | None = None,
) -> dict[str, object]:
    """Compute the JSON-ready performance summary of closed trades (see docs/metrics.md).

    Counts, averages and sums over all trades; equity and drawdown over the per-trade equity
    curve starting at ``starting_balance`` (first point timed at the earliest entry_time);
    Sharpe/Sortino over daily returns of the UTC-day series starting at ``window_start`` (or
    the first exit date; trades exiting earlier count only in the first day's opening equity);
    streaks and last-20 win rate in ``(exit_time, signal_id)`` order; ``today_*`` over trades
    exiting on ``today`` (UTC). No trades gives ``None`` rates/ratios and 0 counts/sums.
    Raises ``ValueError`` if ``starting_balance`` is not a positive finite number.
    """
    if not (math.isfinite(starting_balance) and starting_balance > 0):
        raise ValueError("starting_balance must be a positive finite number")
    ordered = sort_trades(trades)
    n = len(ordered)
    pnls = [t.pnl_quote for t in ordered]
    pcts = [t.pnl_pct for t in ordered]
    outcomes = [t.outcome for t in ordered]
    wins = outcomes.count(WIN)
    losses = outcomes.count(LOSS)
    win_rate = wins / n if n else None
    avg_win_pct = _mean([t.pnl_pct for t in ordered if t.outcome == WIN])
    avg_loss_pct = _mean([t.pnl_pct for t in ordered if t.outcome == LOSS])
    gross_profit = math.fsum(p for p in pnls if p > 0)
    gross_loss = math.fsum(p for p in pnls if p < 0)

    equity = [starting_balance]
    for pnl in pnls:
        equity.append(equity[-1] + pnl)
    times = [_iso(min(t.entry_time for t in ordered))] if ordered else []
    times += [_iso(t.exit_time) for t in ordered]
    drawdown = max_drawdown(equity) if ordered else None

    days = daily_pnl(ordered, start=window_start)
    opening = starting_balance + math.fsum(
        t.pnl_quote for t in ordered if days and exit_day(t) < days[0][0]
    )
    returns = daily_returns([pnl for _, pnl in days], opening)

    if ordered:
        span = ordered[-1].exit_time - min(t.entry_time for t in ordered)
        growth = cagr(starting_balance, equity[-1], span.total_seconds() / 86400)
    else:
        growth = None
    depth = drawdown.depth if drawdown is not None else None
    calmar = growth / depth if growth is not None and depth else None

    runs = streaks(outcomes)
    recent = outcomes[-LAST_N:]
    today_trades = [t.pnl_quote for t in ordered if exit_day(t) == today]
    today_pnl = math.fsum(today_trades)
    today_open = starting_balance + math.fsum(t.pnl_quote for t in ordered if exit_day(t) < today)
    if not today_trades:
        today_pnl_pct: float | None = 0.0
    else:
        today_pnl_pct = today_pnl / today_open if today_open > 0 else None

    return {
        "total_trades": n,
        "wins": wins,
        "losses": losses,
        "breakevens": outcomes.count(BREAKEVEN),
        "win_rate": win_rate,
        "avg_win_pct": avg_win_pct,
        "avg_loss_pct": avg_loss_pct,
        "avg_pnl_pct": _mean(pcts),
        "total_pnl": math.fsum(pnls),
        "total_pnl_pct": math.fsum(pcts),
        "gross_profit": gross_profit,
        "gross_loss": gross_loss,
        "profit_factor": profit_factor(gross_profit, gross_loss),
        "expectancy": _mean(pnls),
        "expectancy_pct": _mean(pcts),
        "expectancy_ratio": expectancy_ratio(win_rate, avg_win_pct, avg_loss_pct),
        "sqn": sqn(pnls),
        "daily_pnl": [{"date": day.isoformat(), "pnl": pnl} for day, pnl in days],
        "equity_curve": (
            [{"time": t, "equity": e} for t, e in zip(times, equity, strict=True)]
            if ordered
            else []
        ),
        "sharpe": sharpe(returns) if returns is not None else None,
        "sortino": sortino(returns) if returns is not None else None,
        "max_drawdown": depth,
        "max_drawdown_start": (
            times[drawdown.peak_index]
            if drawdown is not None and drawdown.peak_index is not None
            else None
        ),
        "max_drawdown_end": (
            times[drawdown.trough_index]
            if drawdown is not None and drawdown.trough_index is not None
            else None
        ),
        "current_drawdown": drawdown.current if drawdown is not None else None,
        "cagr": growth,
        "calmar": calmar,
        "current_streak": runs.current,
        "max_win_streak": runs.max_win,
        "max_loss_streak": runs.max_loss,
        "consecutive_losses": runs.consecutive_losses,
        "win_rate_last_20": recent.count(WIN) / len(recent) if recent else None,
        "last_20_count": len(recent),
        "today_pnl": today_pnl,
        "today_pnl_pct": today_pnl_pct,
        "starting_balance": starting_balance,
        "final_equity": equity[-1],
    }


def theory_attribution(
    signals: Sequence[tuple[str, Mapping[str, float]]], trades: Sequence[ClosedTrade]
) -> list[dict[str, object]]:
    """Attribute signals and closed-trade results to each theory, one row per theory by name.

    ``signals`` holds (signal_id, theory scores) for every signal, traded or not; a theory
    "contributed" when its name is a key of the mapping (even with score 0). Signal counts and
    ``mean_contribution`` come from ``signals``; trade statistics use each trade's own
    ``theories``. ``win_rate`` = wins / trades with a 95 % Wilson interval; ``weighted_pnl`` =
    Σ score × pnl_quote; a trade is ``correct`` when (win and score > 0) or (loss and score < 0),
    and ``correct_rate`` divides by the theory's wins + losses (breakevens excluded, zero scores
    included as not correct). Rates and means with a zero denominator are ``None``. Raises
    ``ValueError`` on duplicate signal ids.
    """
    ids = [signal_id for signal_id, _ in signals]
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate signal_id in signals")
    scores: dict[str, list[float]] = {}
    for _, theories in signals:
        for name, score in theories.items():
            scores.setdefault(name, []).append(score)
    traded: dict[str, list[tuple[float, ClosedTrade]]] = {}
    for trade in trades:
        for name, score in trade.theories.items():
            traded.setdefault(name, []).append((score, trade))

    rows: list[dict[str, object]] = []
    for name in sorted(scores.keys() | traded.keys()):
        own = traded.get(name, [])
        wins = sum(1 for _, t in own if t.outcome == WIN)
        decided = sum(1 for _, t in own if t.outcome in (WIN, LOSS))
        correct = sum(
            1 for s, t in own if (t.outcome == WIN and s > 0) or (t.outcome == LOSS and s < 0)
        )
        interval = wilson_interval(wins, len(own))
        rows.append(
            {
                "theory": name,
                "signals": len(scores.get(name, [])),
                "trades": len(own),
                "mean_contribution": _mean(scores.get(name, [])),
                "wins": wins,
                "win_rate": wins / len(own) if own else None,
                "win_rate_low": interval[0] if interval is not None else None,
                "win_rate_high": interval[1] if interval is not None else None,
                "pnl": math.fsum(t.pnl_quote for _, t in own),
                "weighted_pnl": math.fsum(s * t.pnl_quote for s, t in own),
                "correct": correct,
                "correct_rate": correct / decided if decided else None,
            }
        )
    return rows


def calibration(trades: Sequence[ClosedTrade], bins: int = 10) -> dict[str, object]:
    """Calibration of model confidence against wins, over trades whose confidence is not None.

    A hit is outcome "win" (loss and breakeven are misses). ``bins`` uniform bins [i/b, (i+1)/b),
    the last one closed so 1.0 falls in it; empty bins have ``None`` means. ECE =
    Σ (n_b / n) · |win_rate_b - mean_confidence_b|; Brier = mean((confidence - hit)²); both
    ``None`` when no trade has a confidence. Raises ``ValueError`` if ``bins`` < 1.
    """
    if bins < 1:
        raise ValueError("bins must be >= 1")
    pairs = [(t.confidence, t.outcome == WIN) for t in trades if t.confidence is not None]
    edges = [i / bins for i in range(1, bins)]
    members: list[list[tuple[float, bool]]] = [[] for _ in range(bins)]
    for conf, hit in pairs:
        members[bisect_right(edges, conf)].append((conf, hit))
    n = len(pairs)
    rows: list[dict[str, object]] = []
    gaps: list[float] = []
    for i, group in enumerate(members):
        mean_conf = _mean([c for c, _ in group])
        rate = _mean([float(h) for _, h in group])
        if mean_conf is not None and rate is not None:
            gaps.append(len(group) / n * abs(rate - mean_conf))
        rows.append(
            {
                "low": i / bins,
                "high": (i + 1) / bins,
                "count": len(group),
                "mean_confidence": mean_conf,
                "win_rate": rate,
            }
        )
    return {
        "count": n,
        "bins": rows,
        "ece": math.fsum(gaps) if n else None,
        "brier": _mean([(c - float(h)) ** 2 for c, h in pairs]),
    }


def calibration_report(trades: Sequence[ClosedTrade], bins: int = 10) -> dict[str, object]:
    """Calibration overall, by model version and by symbol (groups sorted by key).

    Trades with ``model_version`` None are grouped under "unknown". Every group seen in
    ``trades`` is listed, even one without any confidence (its ``count`` is then 0).
    """
    by_version: dict[str, list[ClosedTrade]] = {}
    by_symbol: dict[str, list[ClosedTrade]] = {}
    for trade in trades:
        version = trade.model_version if trade.model_version is not None else "unknown"
        by_version.setdefault(version, []).append(trade)
        by_symbol.setdefault(trade.symbol, []).append(trade)
    return {
        "overall": calibration(trades, bins),
        "by_model_version": {k: calibration(by_version[k], bins) for k in sorted(by_version)},
        "by_symbol": {k: calibration(by_symbol[k], bins) for k in sorted(by_symbol)},
    }
