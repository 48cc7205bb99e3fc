"""The controller's trade book: built at once or trade by trade, against numpy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.trade_book import ClosedTradeFact, TradeBook

BASE = datetime(2024, 3, 1, tzinfo=UTC)
NOW = BASE + timedelta(days=4, hours=12)

facts = st.lists(
    st.tuples(
        st.integers(0, 7),  # which signal (a repeat is a corrected entry)
        st.integers(0, 5 * 24),  # exit, hours after BASE (log order is not exit order)
        st.integers(-60, 60),  # pnl_quote, whole units
    ),
    max_size=40,
)


def log(rows: list[tuple[int, int, int]]) -> list[ClosedTradeFact]:
    """Facts in log order; a corrected trade keeps its first exit time."""
    exits: dict[int, datetime] = {}
    out = []
    for nid, (signal, hours, pnl) in enumerate(rows, start=1):
        exit_time = exits.setdefault(signal, BASE + timedelta(hours=hours))
        outcome = "win" if pnl > 5 else "loss" if pnl < -5 else "breakeven"
        out.append(ClosedTradeFact(exit_time, nid, f"s{signal}", float(pnl), outcome))
    return out


def reference(trades: list[ClosedTradeFact], balance: float) -> dict[str, object]:
    """The measurements recomputed with numpy from the latest fact of each signal."""
    latest = {t.signal_id: t for t in trades}
    ordered = sorted(latest.values(), key=lambda t: (t.exit_time, t.notification_id))
    outcomes = [t.outcome for t in ordered]
    pnls = np.array([t.pnl_quote for t in ordered])
    equity = balance + np.concatenate(([0.0], np.cumsum(pnls)))
    peak = np.maximum.accumulate(equity)
    day = datetime(NOW.year, NOW.month, NOW.day, tzinfo=UTC)
    today = sum(t.pnl_quote for t in ordered if day <= t.exit_time < day + timedelta(days=1))
    later = sum(t.pnl_quote for t in ordered if t.exit_time >= day + timedelta(days=1))
    losses = 0
    for outcome in reversed(outcomes):
        if outcome != "loss":
            break
        losses += 1
    recent = outcomes[-20:]
    opening = equity[-1] - today - later
    return {
        "win_rate_last_20": recent.count("win") / len(recent) if recent else None,
        "sample_size": len(recent),
        "consecutive_losses": losses,
        "today_pnl_fraction": today / opening if opening > 0 else 0.0,
        "drawdown": max(0.0, (peak[-1] - equity[-1]) / peak[-1]) if ordered else None,
    }


@settings(max_examples=200, deadline=None)
@given(rows=facts)
def test_a_book_built_at_once_equals_one_built_trade_by_trade(
    rows: list[tuple[int, int, int]],
) -> None:
    trades = log(rows)
    at_once = TradeBook.of(trades, 1000.0)
    one_by_one = TradeBook(1000.0)
    for trade in trades:
        one_by_one.put(trade)
    expected = reference(trades, 1000.0)
    for book in (at_once, one_by_one):
        got = book.measurements(NOW)
        assert got.win_rate_last_20 == expected["win_rate_last_20"]
        assert got.sample_size == expected["sample_size"]
        assert got.consecutive_losses == expected["consecutive_losses"]
        assert got.today_pnl_fraction == pytest.approx(expected["today_pnl_fraction"], abs=1e-12)
        if expected["drawdown"] is None:
            assert got.drawdown is None
        else:
            assert got.drawdown == pytest.approx(expected["drawdown"], abs=1e-12)
    assert at_once.recent_wins() == one_by_one.recent_wins()
