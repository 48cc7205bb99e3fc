"""Pure metric definitions of tradewatch.

Every function here is a pure computation over closed trades: no I/O, no clock, no database.
The written definitions for traders live in ``docs/metrics.md``; the docstrings below state the
same definitions and their edge cases. Conventions shared by all functions:

* Order: trades may be passed in any order; where order matters they are sorted by
  ``(exit_time, signal_id)``.
* Time: the daily series (daily P&L, Sharpe, Sortino) counts UTC days of ``exit_time``;
  "today" is a :class:`~domain.days.TradingDay` of the configured zone; a year has 365 days.
* Sample statistics use ``ddof=1``.
* Undefined values are ``None`` (never NaN or inf); the one exception is ``profit_factor``, which
  is the string ``"inf"`` when there are profits and no losses.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from domain.days import TradingDay

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


Scores = Mapping[str, npt.NDArray[np.float64]]
"""Theory scores as columns: one array per theory name, NaN where a row has no such theory."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NS_PER_DAY = 86_400 * 10**9


def to_ns(moment: datetime) -> int:
    """A tz-aware datetime as integer nanoseconds since the Unix epoch (exact)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000


def from_ns(ns: int) -> datetime:
    """Integer nanoseconds since the Unix epoch back to a UTC datetime (to the microsecond)."""
    return _EPOCH + timedelta(microseconds=int(ns) // 1000)


def _day_number(day: date) -> int:
    return (day - _EPOCH.date()).days


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
    start = _EPOCH.date() + timedelta(days=first_day)
    return [(start + timedelta(days=i), float(p)) for i, p in enumerate(sums)]


def _daily(cols: TradeColumns, start: date | None) -> tuple[int, npt.NDArray[np.float64]]:
    """(first day number, P&L per day) of :func:`daily_pnl`."""
    if not len(cols):
        return 0, np.zeros(0)
    days = cols.exit_ns // NS_PER_DAY
    first = int(days[0]) if start is None else _day_number(start)
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
