"""Tests of projections.metrics against hand-worked cases and independent recomputation."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.days import TradingDay
from projections.metrics import (
    ClosedTrade,
    cagr,
    calibration,
    calibration_report,
    daily_pnl,
    daily_returns,
    max_drawdown,
    performance,
    sharpe,
    sortino,
    sqn,
    streaks,
    theory_attribution,
    wilson_interval,
)

T0 = datetime(2024, 1, 1, 10, 0, tzinfo=UTC)
PLUS_TWO = timezone(timedelta(hours=2))
PERFORMANCE_KEYS = {
    "total_trades", "wins", "losses", "breakevens", "win_rate", "avg_win_pct", "avg_loss_pct",
    "avg_pnl_pct", "total_pnl", "total_pnl_pct", "gross_profit", "gross_loss", "profit_factor",
    "expectancy", "expectancy_pct", "expectancy_ratio", "sqn", "daily_pnl", "equity_curve",
    "sharpe", "sortino", "max_drawdown", "max_drawdown_start", "max_drawdown_end",
    "current_drawdown", "cagr", "calmar", "current_streak", "max_win_streak", "max_loss_streak",
    "consecutive_losses", "win_rate_last_20", "last_20_count", "today_pnl", "today_pnl_pct",
    "starting_balance", "final_equity",
}  # fmt: skip


def make_trade(
    signal_id: str,
    *,
    pnl_quote: float,
    pnl_pct: float | None = None,
    outcome: str | None = None,
    exit_time: datetime = T0,
    hours_held: float = 1.0,
    direction: str = "long",
    symbol: str = "BTCUSDT",
    confidence: float | None = None,
    model_version: str | None = None,
    theories: Mapping[str, float] | None = None,
) -> ClosedTrade:
    """Build a trade; pnl_pct defaults to pnl_quote / 10 (1000 notional), outcome to ±0.5 %."""
    pct = pnl_quote / 10 if pnl_pct is None else pnl_pct
    if outcome is None:
        outcome = "win" if pct > 0.5 else "loss" if pct < -0.5 else "breakeven"
    return ClosedTrade(
        signal_id=signal_id,
        symbol=symbol,
        direction=direction,
        source="manual",
        entry_time=exit_time - timedelta(hours=hours_held),
        exit_time=exit_time,
        pnl_pct=pct,
        pnl_quote=pnl_quote,
        outcome=outcome,
        confidence=confidence,
        model_version=model_version,
        theories={} if theories is None else theories,
    )


def listed(result: Mapping[str, object], key: str) -> list[Any]:
    """Return a list-valued entry of a metrics result."""
    value = result[key]
    assert isinstance(value, list)
    return value


def mapped(result: Mapping[str, object], key: str) -> dict[str, Any]:
    """Return a dict-valued entry of a metrics result."""
    value = result[key]
    assert isinstance(value, dict)
    return value


# --- independent reference computations (numpy / plain python, no module helpers) ----------------


def negligible(deviation: float, mean: float) -> bool:
    """docs/metrics.md: a deviation under 1 % of |mean| makes a ratio null."""
    return bool(deviation <= 0.01 * abs(mean))


def ref_sharpe(r: Sequence[float]) -> float | None:
    a = np.array(r, dtype=float)
    if len(a) < 2 or a.max() == a.min() or negligible(a.std(ddof=1), a.mean()):
        return None
    return float(a.mean() / a.std(ddof=1) * np.sqrt(365.0))


def ref_sortino(r: Sequence[float]) -> float | None:
    a = np.array(r, dtype=float)
    if len(a) < 2:
        return None
    dd = np.sqrt(np.sum(np.where(a < 0, a, 0.0) ** 2) / (len(a) - 1))
    return None if dd == 0 or negligible(dd, a.mean()) else float(a.mean() / dd * np.sqrt(365.0))


def ref_max_drawdown(equity: Sequence[float]) -> float:
    a = np.array(equity, dtype=float)
    peaks = np.maximum.accumulate(a)
    return float(np.max((peaks - a) / peaks))


def ref_sqn(p: Sequence[float]) -> float | None:
    a = np.array(p, dtype=float)
    if len(a) < 2 or a.max() == a.min() or negligible(a.std(ddof=1), a.mean()):
        return None
    return float(np.sqrt(len(a)) * a.mean() / a.std(ddof=1))


def ref_daily_returns(trades: Sequence[ClosedTrade], balance: float) -> list[float]:
    by_day: dict[date, float] = {}
    for t in trades:
        day = t.exit_time.astimezone(UTC).date()
        by_day[day] = by_day.get(day, 0.0) + t.pnl_quote
    out: list[float] = []
    equity, day = balance, min(by_day)
    while day <= max(by_day):
        out.append(by_day.get(day, 0.0) / equity)
        equity += by_day.get(day, 0.0)
        day += timedelta(days=1)
    return out


# --- building blocks -----------------------------------------------------------------------------


def test_sharpe_sortino_match_numpy() -> None:
    r = list(np.random.default_rng(7).normal(0.001, 0.02, size=60))
    assert sharpe(r) == pytest.approx(ref_sharpe(r), rel=1e-12)
    assert sortino(r) == pytest.approx(ref_sortino(r), rel=1e-12)
    # hand-worked: r = [0.01, -0.01, 0.03]: mean 0.01, std 0.02, DD = sqrt(0.0001 / 2)
    assert sharpe([0.01, -0.01, 0.03]) == pytest.approx(0.5 * math.sqrt(365))
    assert sortino([0.01, -0.01, 0.03]) == pytest.approx(0.01 / math.sqrt(0.00005) * math.sqrt(365))


def test_sharpe_sortino_undefined() -> None:
    assert sharpe([]) is None
    assert sharpe([0.01]) is None
    assert sharpe([0.1, 0.1, 0.1]) is None  # zero std, even if float mean is off by an ulp
    assert sortino([0.01]) is None
    assert sortino([0.01, 0.0, 0.02]) is None  # no downside


def test_sqn_matches_numpy() -> None:
    p = list(np.random.default_rng(3).normal(5.0, 40.0, size=30))
    assert sqn(p) == pytest.approx(ref_sqn(p), rel=1e-12)
    assert sqn([10.0, -10.0, 30.0]) == pytest.approx(math.sqrt(3) * 10 / 20)
    assert sqn([5.0]) is None
    assert sqn([5.0, 5.0]) is None


def test_max_drawdown_matches_numpy_and_locates_episode() -> None:
    eq = list(1000 + np.cumsum(np.random.default_rng(11).normal(0, 25, size=200)))
    result = max_drawdown([1000.0, *eq])
    assert result is not None
    assert result.depth == pytest.approx(ref_max_drawdown([1000.0, *eq]), rel=1e-12)

    dd = max_drawdown([1000.0, 1100.0, 1050.0, 1070.0, 970.0, 1170.0, 1100.0])
    assert dd is not None
    assert dd.depth == pytest.approx(130 / 1100)
    assert (dd.peak_index, dd.trough_index) == (1, 4)
    assert dd.current == pytest.approx(70 / 1170)


def test_max_drawdown_edges() -> None:
    assert max_drawdown([]) is None
    flat = max_drawdown([100.0, 100.0, 120.0])
    assert flat is not None
    assert (flat.depth, flat.current, flat.peak_index, flat.trough_index) == (0.0, 0.0, None, None)
    # the peak is the last time the peak level was reached; the trough its first occurrence
    again = max_drawdown([100.0, 110.0, 100.0, 110.0, 90.0, 90.0])
    assert again is not None
    assert (again.peak_index, again.trough_index) == (3, 4)
    below_zero = max_drawdown([100.0, -50.0])
    assert below_zero is not None
    assert below_zero.depth == pytest.approx(1.5)
    with pytest.raises(ValueError):
        max_drawdown([0.0, 10.0])


def test_streaks() -> None:
    s = streaks(["win", "win", "breakeven", "win"])
    assert (s.current, s.max_win, s.max_loss, s.consecutive_losses) == (1, 2, 0, 0)
    s = streaks(["loss", "loss", "win", "loss", "loss", "loss"])
    assert (s.current, s.max_win, s.max_loss, s.consecutive_losses) == (-3, 1, 3, 3)
    s = streaks(["loss", "breakeven"])
    assert (s.current, s.max_loss, s.consecutive_losses) == (0, 1, 0)
    assert streaks([]).current == 0
    with pytest.raises(ValueError):
        streaks(["draw"])


def test_cagr() -> None:
    assert cagr(1000.0, 1100.0, 365.0) == pytest.approx(0.1)
    assert cagr(1000.0, 1210.0, 730.0) == pytest.approx(0.1)
    assert cagr(1000.0, 1100.0, 0.0) is None
    assert cagr(1000.0, 0.0, 10.0) is None
    assert cagr(1000.0, 2000.0, 1e-3) is None  # overflows a float


def test_daily_pnl_and_returns() -> None:
    trades = [
        make_trade("a", pnl_quote=10.0, exit_time=datetime(2024, 1, 3, 23, 59, tzinfo=UTC)),
        make_trade("b", pnl_quote=-4.0, exit_time=datetime(2024, 1, 1, 0, 0, tzinfo=UTC)),
        # 01:00 at +02:00 is 23:00 UTC the day before
        make_trade("c", pnl_quote=5.0, exit_time=datetime(2024, 1, 2, 1, 0, tzinfo=PLUS_TWO)),
    ]
    assert daily_pnl(trades) == [
        (date(2024, 1, 1), 1.0),
        (date(2024, 1, 2), 0.0),
        (date(2024, 1, 3), 10.0),
    ]
    assert daily_pnl(trades, start=date(2023, 12, 31))[0] == (date(2023, 12, 31), 0.0)
    assert daily_pnl(trades, start=date(2024, 1, 3)) == [(date(2024, 1, 3), 10.0)]
    assert daily_pnl(trades, start=date(2024, 2, 1)) == []
    assert daily_pnl([]) == []
    assert daily_returns([10.0, -11.0], 100.0) == pytest.approx([0.1, -0.1])
    assert daily_returns([-100.0, 5.0], 100.0) is None


def test_wilson_textbook_and_independent() -> None:
    low, high = wilson_interval(8, 10) or (math.nan, math.nan)
    assert low == pytest.approx(0.4902, abs=1e-4)
    assert high == pytest.approx(0.9433, abs=1e-4)
    z = 1.959963984540054
    for k, n in [(0, 1), (1, 2), (3, 17), (50, 100), (99, 100), (100, 100)]:
        interval = wilson_interval(k, n)
        assert interval is not None
        p = k / n
        # each bound solves (p - b)^2 = z^2 b (1 - b) / n
        for bound in interval:
            assert (p - bound) ** 2 == pytest.approx(z * z * bound * (1 - bound) / n, abs=1e-12)
        assert interval[0] <= p <= interval[1]
    assert wilson_interval(0, 0) is None
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


# --- performance: hand-worked cases --------------------------------------------------------------


def test_no_trades() -> None:
    perf = performance([], starting_balance=1000.0, today=TradingDay.on(date(2024, 1, 1)))
    assert set(perf) == PERFORMANCE_KEYS
    zero = {
        "total_trades": 0, "wins": 0, "losses": 0, "breakevens": 0, "total_pnl": 0.0,
        "total_pnl_pct": 0.0, "gross_profit": 0.0, "gross_loss": 0.0, "current_streak": 0,
        "max_win_streak": 0, "max_loss_streak": 0, "consecutive_losses": 0, "last_20_count": 0,
        "today_pnl": 0.0, "today_pnl_pct": 0.0, "starting_balance": 1000.0,
        "final_equity": 1000.0, "daily_pnl": [], "equity_curve": [],
    }  # fmt: skip
    for key, value in perf.items():
        assert value == zero[key] if key in zero else value is None, key
    json.dumps(perf, allow_nan=False)
    assert performance(
        [], starting_balance=1.0, today=TradingDay.on(T0.date()), window_start=T0.date()
    ) == {
        **perf,
        "starting_balance": 1.0,
        "final_equity": 1.0,
    }


def test_one_win() -> None:
    exit_time = datetime(2024, 1, 2, 10, 0, tzinfo=UTC)
    trade = make_trade("s1", pnl_quote=100.0, pnl_pct=2.0, exit_time=exit_time, hours_held=24)
    perf = performance([trade], starting_balance=1000.0, today=TradingDay.on(date(2024, 1, 2)))
    assert set(perf) == PERFORMANCE_KEYS
    assert perf == {
        "total_trades": 1, "wins": 1, "losses": 0, "breakevens": 0, "win_rate": 1.0,
        "avg_win_pct": 2.0, "avg_loss_pct": None, "avg_pnl_pct": 2.0, "total_pnl": 100.0,
        "total_pnl_pct": 2.0, "gross_profit": 100.0, "gross_loss": 0.0, "profit_factor": "inf",
        "expectancy": 100.0, "expectancy_pct": 2.0, "expectancy_ratio": None, "sqn": None,
        "daily_pnl": [{"date": "2024-01-02", "pnl": 100.0}],
        "equity_curve": [
            {"time": "2024-01-01T10:00:00+00:00", "equity": 1000.0},
            {"time": "2024-01-02T10:00:00+00:00", "equity": 1100.0},
        ],
        "sharpe": None, "sortino": None, "max_drawdown": 0.0, "max_drawdown_start": None,
        "max_drawdown_end": None, "current_drawdown": 0.0, "cagr": pytest.approx(1.1**365 - 1),
        "calmar": None, "current_streak": 1, "max_win_streak": 1, "max_loss_streak": 0,
        "consecutive_losses": 0, "win_rate_last_20": 1.0, "last_20_count": 1,
        "today_pnl": 100.0, "today_pnl_pct": pytest.approx(0.1), "starting_balance": 1000.0,
        "final_equity": 1100.0,
    }  # fmt: skip


def test_all_losses() -> None:
    trades = [
        make_trade(f"s{i}", pnl_quote=-10.0 * i, exit_time=T0 + timedelta(days=i - 1))
        for i in (3, 1, 2)
    ]
    perf = performance(trades, starting_balance=1000.0, today=TradingDay.on(date(2024, 1, 10)))
    assert perf["win_rate"] == 0.0
    assert perf["avg_win_pct"] is None
    assert perf["avg_loss_pct"] == pytest.approx(-2.0)
    assert perf["profit_factor"] == 0.0
    assert perf["gross_loss"] == -60.0
    assert perf["expectancy"] == -20.0
    assert perf["expectancy_ratio"] is None
    assert perf["sqn"] == pytest.approx(math.sqrt(3) * -20 / 10)
    returns = [-10 / 1000, -20 / 990, -30 / 970]
    assert perf["sharpe"] == pytest.approx(ref_sharpe(returns))
    assert perf["sortino"] == pytest.approx(ref_sortino(returns))
    assert perf["max_drawdown"] == pytest.approx(0.06)
    assert perf["current_drawdown"] == pytest.approx(0.06)
    assert perf["max_drawdown_start"] == "2024-01-01T09:00:00+00:00"  # first entry
    assert perf["max_drawdown_end"] == "2024-01-03T10:00:00+00:00"
    days = 2 + 1 / 24
    assert perf["cagr"] == pytest.approx(0.94 ** (365 / days) - 1)
    assert perf["calmar"] == pytest.approx((0.94 ** (365 / days) - 1) / 0.06)
    assert (perf["current_streak"], perf["max_loss_streak"], perf["consecutive_losses"]) == (
        -3,
        3,
        3,
    )
    assert (perf["today_pnl"], perf["today_pnl_pct"]) == (0.0, 0.0)


def test_all_breakevens() -> None:
    trades = [
        make_trade(f"s{i}", pnl_quote=0.0, exit_time=T0 + timedelta(days=i)) for i in range(3)
    ]
    perf = performance(trades, starting_balance=500.0, today=TradingDay.on(date(2024, 1, 1)))
    assert perf["breakevens"] == 3
    assert perf["win_rate"] == 0.0
    assert perf["profit_factor"] is None
    assert perf["current_streak"] == 0
    assert perf["max_win_streak"] == perf["max_loss_streak"] == 0
    assert perf["sqn"] is None
    assert perf["sharpe"] is None
    assert perf["max_drawdown"] == 0.0
    assert perf["expectancy"] == 0.0
    assert perf["cagr"] == 0.0
    assert perf["today_pnl_pct"] == 0.0


def test_short_trade() -> None:
    # short 1 unit at 100, cover at 90: gross move (entry - exit) / entry = +10 %; 0.2 fees
    entry_price, exit_price, qty, fees = 100.0, 90.0, 1.0, 0.2
    pnl_quote = (entry_price - exit_price) * qty - fees
    pnl_pct = pnl_quote / (entry_price * qty) * 100
    trade = make_trade(
        "short1", pnl_quote=pnl_quote, pnl_pct=pnl_pct, direction="short", exit_time=T0
    )
    perf = performance([trade], starting_balance=100.0, today=TradingDay.on(T0.date()))
    assert perf["avg_win_pct"] == pytest.approx(9.8)
    assert perf["total_pnl"] == pytest.approx(9.8)
    assert perf["profit_factor"] == "inf"
    assert perf["today_pnl_pct"] == pytest.approx(0.098)
    assert perf["final_equity"] == pytest.approx(109.8)


def test_no_losses_profit_factor_inf_and_expectancy_ratio() -> None:
    wins = [make_trade("a", pnl_quote=20.0), make_trade("b", pnl_quote=40.0)]
    perf = performance(wins, starting_balance=1000.0, today=TradingDay.on(T0.date()))
    assert perf["profit_factor"] == "inf"
    assert perf["expectancy_ratio"] is None
    # wins 2 % and 4 % (avg 3), losses -1 % and -2 % (avg -1.5), one breakeven: win rate 0.4
    mixed = [
        *wins,
        make_trade("c", pnl_quote=-10.0),
        make_trade("d", pnl_quote=-20.0),
        make_trade("e", pnl_quote=1.0),
    ]
    perf = performance(mixed, starting_balance=1000.0, today=TradingDay.on(T0.date()))
    assert perf["win_rate"] == pytest.approx(0.4)
    assert perf["profit_factor"] == pytest.approx(61 / 30)
    assert perf["expectancy_ratio"] == pytest.approx((1 + 3 / 1.5) * 0.4 - 1)


def test_drawdown_times_streak_order_and_last_20() -> None:
    pnls = [100.0, -50.0, 20.0, -100.0, 200.0]
    trades = [
        make_trade(f"s{i}", pnl_quote=p, exit_time=T0 + timedelta(hours=i))
        for i, p in enumerate(pnls)
    ]
    perf = performance(trades[::-1], starting_balance=1000.0, today=TradingDay.on(T0.date()))
    assert perf["max_drawdown"] == pytest.approx(130 / 1100)
    assert perf["max_drawdown_start"] == "2024-01-01T10:00:00+00:00"
    assert perf["max_drawdown_end"] == "2024-01-01T13:00:00+00:00"
    assert perf["current_streak"] == 1
    assert perf["today_pnl"] == 170.0

    many = [
        make_trade(f"t{i:02d}", pnl_quote=10.0 if i < 5 else -10.0, exit_time=T0) for i in range(25)
    ]
    perf = performance(many, starting_balance=1000.0, today=TradingDay.on(T0.date()))
    assert (perf["win_rate_last_20"], perf["last_20_count"]) == (0.0, 20)
    assert perf["win_rate"] == pytest.approx(0.2)


def test_window_start_and_today() -> None:
    jan = [
        make_trade("a", pnl_quote=100.0, exit_time=datetime(2024, 1, 1, 12, tzinfo=UTC)),
        make_trade("b", pnl_quote=-55.0, exit_time=datetime(2024, 1, 3, 12, tzinfo=UTC)),
    ]
    early = performance(
        jan, starting_balance=1000.0, today=TradingDay.on(date(2024, 1, 3)), window_start=None
    )
    dates = [d["date"] for d in listed(early, "daily_pnl")]
    assert dates == ["2024-01-01", "2024-01-02", "2024-01-03"]
    assert early["today_pnl"] == -55.0
    assert early["today_pnl_pct"] == pytest.approx(-0.05)
    assert early["sharpe"] == pytest.approx(ref_sharpe([0.1, 0.0, -0.05]))

    padded = performance(
        jan,
        starting_balance=1000.0,
        today=TradingDay.on(date(2024, 1, 3)),
        window_start=date(2023, 12, 30),
    )
    assert listed(padded, "daily_pnl")[:2] == [
        {"date": "2023-12-30", "pnl": 0.0},
        {"date": "2023-12-31", "pnl": 0.0},
    ]
    assert padded["sharpe"] == pytest.approx(ref_sharpe([0.0, 0.0, 0.1, 0.0, -0.05]))

    late = performance(
        jan,
        starting_balance=1000.0,
        today=TradingDay.on(date(2024, 1, 3)),
        window_start=date(2024, 1, 2),
    )
    assert late["daily_pnl"] == [
        {"date": "2024-01-02", "pnl": 0.0},
        {"date": "2024-01-03", "pnl": -55.0},
    ]
    # the trade before the window only raises the opening equity to 1100
    assert late["sharpe"] == pytest.approx(ref_sharpe([0.0, -0.05]))
    assert late["total_pnl"] == 45.0


def test_bust_account_has_no_sharpe() -> None:
    trades = [
        make_trade("a", pnl_quote=-1000.0, exit_time=T0),
        make_trade("b", pnl_quote=5.0, exit_time=T0 + timedelta(days=1)),
    ]
    perf = performance(
        trades, starting_balance=1000.0, today=TradingDay.on(T0.date() + timedelta(days=1))
    )
    assert perf["sharpe"] is None
    assert perf["sortino"] is None
    assert perf["cagr"] == pytest.approx(-1.0)  # 1000 -> 5 in about a day
    assert perf["today_pnl_pct"] is None
    assert perf["max_drawdown"] == 1.0


def test_invalid_inputs() -> None:
    with pytest.raises(ValueError):
        performance([], starting_balance=0.0, today=TradingDay.on(T0.date()))
    with pytest.raises(ValueError):
        make_trade("x", pnl_quote=1.0, outcome="draw")
    with pytest.raises(ValueError):
        make_trade("x", pnl_quote=1.0, direction="sideways")
    with pytest.raises(ValueError):
        make_trade("x", pnl_quote=1.0, exit_time=datetime(2024, 1, 1))
    with pytest.raises(ValueError):
        make_trade("x", pnl_quote=1.0, hours_held=-1)
    with pytest.raises(ValueError):
        make_trade("x", pnl_quote=math.nan)
    with pytest.raises(ValueError):
        make_trade("x", pnl_quote=1.0, confidence=1.5)


# --- performance: property test against an independent recomputation -----------------------------

trade_rows = st.lists(
    st.tuples(
        st.integers(0, 8 * 24 * 60),  # exit, minutes after 2024-03-01 00:00 UTC
        st.integers(0, 3 * 24 * 60),  # minutes held
        st.integers(-200, 200),  # pnl_quote (whole units keep float sums exact)
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(rows=trade_rows)
def test_performance_matches_independent_recomputation(rows: list[tuple[int, int, int]]) -> None:
    base = datetime(2024, 3, 1, tzinfo=UTC)
    trades = [
        make_trade(
            f"s{i:03d}",
            pnl_quote=float(pnl),
            exit_time=base + timedelta(minutes=minute),
            hours_held=held / 60,
        )
        for i, (minute, held, pnl) in enumerate(rows)
    ]
    balance = 10_000.0
    perf = performance(trades, starting_balance=balance, today=TradingDay.on(date(2024, 3, 5)))
    json.dumps(perf, allow_nan=False)
    assert perf == performance(
        trades[::-1], starting_balance=balance, today=TradingDay.on(date(2024, 3, 5))
    )

    n = len(trades)
    wins = sum(1 for t in trades if t.outcome == "win")
    assert perf["win_rate"] == (wins / n if n else None)
    assert perf["total_pnl"] == sum(t.pnl_quote for t in trades)

    gross_profit = sum(t.pnl_quote for t in trades if t.pnl_quote > 0)
    gross_loss = -sum(t.pnl_quote for t in trades if t.pnl_quote < 0)
    expected_pf: object
    if gross_loss > 0:
        expected_pf = pytest.approx(gross_profit / gross_loss)
    else:
        expected_pf = "inf" if gross_profit > 0 else None
    assert perf["profit_factor"] == expected_pf

    ordered = sorted(trades, key=lambda t: (t.exit_time, t.signal_id))
    equity = balance + np.concatenate([[0.0], np.cumsum([t.pnl_quote for t in ordered])])
    assert perf["final_equity"] == equity[-1]
    if n == 0:
        assert perf["max_drawdown"] is None
        assert perf["sharpe"] is None
        return
    assert perf["max_drawdown"] == pytest.approx(ref_max_drawdown(list(equity)), abs=1e-15)
    expected_sharpe = ref_sharpe(ref_daily_returns(trades, balance))
    if expected_sharpe is None:
        assert perf["sharpe"] is None
    else:
        assert perf["sharpe"] == pytest.approx(expected_sharpe, rel=1e-9, abs=1e-9)


# --- theory attribution --------------------------------------------------------------------------


def test_theory_attribution_hand_worked() -> None:
    signals = [
        ("s1", {"a": 0.5, "b": -0.2}),
        ("s2", {"a": 0.3}),
        ("s3", {"c": 0.0}),
        ("s4", {"d": 1.0}),
    ]
    trades = [
        make_trade("s1", pnl_quote=10.0, theories={"a": 0.5, "b": -0.2}),
        make_trade("s2", pnl_quote=-5.0, outcome="loss", theories={"a": 0.3, "e": -1.0}),
        make_trade("s4", pnl_quote=0.1, theories={"d": 1.0}),
    ]
    rows = {row["theory"]: row for row in theory_attribution(signals, trades)}
    assert list(rows) == ["a", "b", "c", "d", "e"]
    a_low, a_high = wilson_interval(1, 2) or (math.nan, math.nan)
    assert rows["a"] == {
        "theory": "a", "signals": 2, "trades": 2, "mean_contribution": pytest.approx(0.4),
        "wins": 1, "win_rate": 0.5, "win_rate_low": a_low, "win_rate_high": a_high,
        "pnl": 5.0, "weighted_pnl": pytest.approx(3.5), "correct": 1, "correct_rate": 0.5,
    }  # fmt: skip
    assert (rows["b"]["weighted_pnl"], rows["b"]["correct"], rows["b"]["correct_rate"]) == (
        pytest.approx(-2.0),
        0,
        0.0,
    )
    assert rows["c"] == {
        "theory": "c", "signals": 1, "trades": 0, "mean_contribution": 0.0, "wins": 0,
        "win_rate": None, "win_rate_low": None, "win_rate_high": None, "pnl": 0.0,
        "weighted_pnl": 0.0, "correct": 0, "correct_rate": None,
    }  # fmt: skip
    assert (rows["d"]["win_rate"], rows["d"]["correct_rate"]) == (0.0, None)  # breakeven only
    assert (rows["e"]["signals"], rows["e"]["mean_contribution"]) == (0, None)
    assert (rows["e"]["correct"], rows["e"]["correct_rate"]) == (1, 1.0)
    assert theory_attribution([], []) == []
    with pytest.raises(ValueError):
        theory_attribution([("s1", {}), ("s1", {})], [])


# --- calibration ---------------------------------------------------------------------------------


def test_calibration_hand_worked() -> None:
    spec = [(0.05, 10.0), (0.15, -10.0), (0.95, 10.0), (1.0, 10.0), (0.0, 0.0), (None, 10.0)]
    trades = [make_trade(f"s{i}", pnl_quote=p, confidence=c) for i, (c, p) in enumerate(spec)]
    cal = calibration(trades)
    assert cal["count"] == 5
    bins = listed(cal, "bins")
    assert len(bins) == 10
    assert bins[0] == {
        "low": 0.0, "high": 0.1, "count": 2, "mean_confidence": pytest.approx(0.025),
        "win_rate": 0.5,
    }  # fmt: skip
    assert (bins[1]["count"], bins[1]["win_rate"]) == (1, 0.0)
    assert (bins[9]["count"], bins[9]["mean_confidence"]) == (2, pytest.approx(0.975))
    assert bins[5] == {
        "low": 0.5, "high": 0.6, "count": 0, "mean_confidence": None, "win_rate": None
    }  # fmt: skip
    assert cal["ece"] == pytest.approx(2 / 5 * 0.475 + 1 / 5 * 0.15 + 2 / 5 * 0.025)
    assert cal["brier"] == pytest.approx((0.95**2 + 0.15**2 + 0.05**2) / 5)


def test_calibration_bin_edges_and_empty() -> None:
    edges = [make_trade(f"e{i}", pnl_quote=10.0, confidence=i / 10) for i in range(11)]
    counts = [b["count"] for b in listed(calibration(edges), "bins")]
    assert counts == [1] * 9 + [2]
    empty = calibration([make_trade("x", pnl_quote=1.0)])
    assert (empty["count"], empty["ece"], empty["brier"]) == (0, None, None)
    with pytest.raises(ValueError):
        calibration([], bins=0)


def test_calibration_matches_numpy() -> None:
    rng = np.random.default_rng(5)
    conf = rng.uniform(0, 1, size=300)
    hit = rng.uniform(0, 1, size=300) < conf**1.5
    trades = [
        make_trade(f"s{i}", pnl_quote=10.0 if h else -10.0, confidence=float(c))
        for i, (c, h) in enumerate(zip(conf, hit, strict=True))
    ]
    cal = calibration(trades)
    idx = np.minimum(np.floor(conf * 10).astype(int), 9)
    ece = sum(
        np.mean(idx == b) * abs(hit[idx == b].mean() - conf[idx == b].mean())
        for b in range(10)
        if np.any(idx == b)
    )
    assert cal["ece"] == pytest.approx(ece, rel=1e-12)
    assert cal["brier"] == pytest.approx(np.mean((conf - hit) ** 2), rel=1e-12)


def test_calibration_report_groups() -> None:
    trades = [
        make_trade("a", pnl_quote=10.0, confidence=0.8, model_version="v7", symbol="ETHUSDT"),
        make_trade("b", pnl_quote=-10.0, confidence=0.6, model_version=None),
        make_trade("c", pnl_quote=10.0, confidence=None, model_version="v6"),
    ]
    report = calibration_report(trades)
    assert report["overall"] == calibration(trades)
    by_version = mapped(report, "by_model_version")
    assert list(by_version) == ["unknown", "v6", "v7"]
    assert [by_version[k]["count"] for k in by_version] == [1, 0, 1]
    assert list(mapped(report, "by_symbol")) == ["BTCUSDT", "ETHUSDT"]
