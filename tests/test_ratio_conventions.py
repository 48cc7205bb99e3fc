"""Ratios over near-constant series are null, not huge (docs/metrics.md, "Daily returns,
Sharpe and Sortino"); expected values are worked out independently with numpy."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from domain.days import TradingDay
from projections.metrics import ClosedTrade, performance, sharpe, sortino, sqn

DAY = datetime(2024, 5, 1, 12, tzinfo=UTC)


def daily_trades(pnls: list[float]) -> list[ClosedTrade]:
    """One trade a day, exiting at noon, with these P&Ls."""
    return [
        ClosedTrade(
            signal_id=f"d{i}",
            symbol="BTCUSDT",
            direction="long",
            source="manual",
            entry_time=DAY + timedelta(days=i, hours=-1),
            exit_time=DAY + timedelta(days=i),
            pnl_pct=pnl / 100.0,
            pnl_quote=pnl,
            outcome="loss" if pnl < 0 else "win",
            confidence=None,
            model_version=None,
            theories={},
        )
        for i, pnl in enumerate(pnls)
    ]


def test_five_identical_losing_days_have_no_sharpe() -> None:
    """The issue's case: five −2 days on 10,000. The returns differ only as equity shrinks
    (−2/10000, −2/9998, …), so the deviation is 0.03 % of the mean and the ratio was −60,391."""
    returns = [-2.0 / (10_000.0 - 2.0 * d) for d in range(5)]
    r = np.array(returns)
    assert r.std(ddof=1) / abs(r.mean()) < 0.001
    assert r.mean() / r.std(ddof=1) * math.sqrt(365) == pytest.approx(-60_391, rel=1e-3)
    assert sharpe(returns) is None
    report = performance(
        daily_trades([-2.0] * 5), starting_balance=10_000.0, today=TradingDay.on(date(2024, 5, 5))
    )
    assert report["sharpe"] is None
    assert report["sqn"] is None  # identical P&Ls
    # every day is a loss, so the downside deviation is about the mean: a real Sortino
    downside = math.sqrt(float(np.sum(r**2)) / 4)
    assert report["sortino"] == pytest.approx(r.mean() / downside * math.sqrt(365), rel=1e-12)


@pytest.mark.parametrize("spread", [0.0, 1e-12, 1e-6, 0.009])
def test_a_deviation_under_one_percent_of_the_mean_gives_null(spread: float) -> None:
    returns = [0.01 * (1 + spread * k) for k in (-1, 0, 1, 0, -1, 1)]
    r = np.array(returns)
    assert r.std(ddof=1) <= 0.01 * abs(r.mean())
    assert sharpe(returns) is None
    assert sqn(returns) is None


def test_ordinary_series_keep_their_ratios() -> None:
    returns = [0.01, -0.004, 0.02, 0.003, -0.012, 0.007]
    r = np.array(returns)
    want = r.mean() / r.std(ddof=1) * math.sqrt(365)
    assert sharpe(returns) == pytest.approx(want, rel=1e-12)
    downside = math.sqrt(float(np.sum(np.minimum(r, 0) ** 2)) / (len(r) - 1))  # n − 1
    assert sortino(returns) == pytest.approx(r.mean() / downside * math.sqrt(365), rel=1e-12)
    # a deviation of just over 1 % of the mean still gives a (large) ratio
    wide = [0.01 * (1 + 0.02 * k) for k in (-1, 0, 1, 0, -1, 1)]
    assert sharpe(wide) is not None


def test_sortino_is_null_when_the_downside_is_negligible() -> None:
    returns = [0.01, 0.012, 0.011, -1e-9, 0.013]
    assert sortino(returns) is None
