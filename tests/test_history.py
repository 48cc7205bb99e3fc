"""The in-memory trade history (what the dashboard reads) against a fresh read of the tables.

Every check compares :class:`TradeHistory`, refreshed incrementally after each change, with
:class:`Reports` reading the ``trades`` and ``signals`` tables from scratch, on SQLite and on
PostgreSQL: the same trades in the same order, the same figures for every filter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from domain.signal import SignalDraft
from domain.trade import Fill
from domain.values import Direction
from infrastructure.bootstrap import Tradewatch
from projections.history import TradeHistory
from projections.metrics import TradeColumns
from projections.reports import Reports, TradeFilter

NOW = datetime.now(UTC).replace(microsecond=0)
FIELDS = [f.name for f in fields(TradeColumns) if f.name != "theories"]
FILTERS = (
    TradeFilter(),
    TradeFilter(today=True),
    TradeFilter(days=2),
    TradeFilter(symbol="ethusdt"),
    TradeFilter(direction="short"),
    TradeFilter(symbol="BTCUSDT", direction="long", days=30),
)


def trade(
    tw: Tradewatch,
    signal_id: str,
    *,
    at: datetime,
    gain: float,
    symbol: str = "BTCUSDT",
    direction: Direction = Direction.LONG,
    theories: dict[str, float] | None = None,
    close: bool = True,
) -> None:
    """A signal, its entry at 100 and (when ``close``) its exit an hour later at 100 + gain."""
    tw.ledger.record_signal(
        SignalDraft(
            signal_id=signal_id,
            symbol=symbol,
            direction=direction,
            at=at,
            confidence=0.6,
            model_version="v7",
            theories=theories or {"trend": 0.5},
        )
    )
    tw.ledger.record_entry(signal_id, Fill.checked(100.0, 1.0, 0.0, at, "entry"), force=True)
    if close:
        tw.ledger.record_exit(signal_id, 100.0 + gain, 0.0, "manual", at + timedelta(hours=1))


def reports(tw: Tradewatch, history: TradeHistory | None = None) -> Reports:
    return Reports(tw.store, starting_balance=1000.0, now=NOW, history=history)


def same_columns(got: TradeColumns, want: TradeColumns) -> None:
    assert len(got) == len(want)
    for name in FIELDS:
        left, right = getattr(got, name), getattr(want, name)
        if left.dtype.kind == "f":
            np.testing.assert_array_equal(left, right, err_msg=name)
        else:
            assert left.tolist() == right.tolist(), name
    assert got.theories.keys() == want.theories.keys()
    for name, scores in want.theories.items():
        np.testing.assert_array_equal(got.theories[name], scores, err_msg=name)


def check(tw: Tradewatch, history: TradeHistory) -> None:
    """The refreshed history reads exactly what the tables hold, for every filter."""
    tw.engine.catch_up()
    history.refresh(tw.store, tw.engine.projections["ledger"].config())
    fresh, cached = reports(tw), reports(tw, history)
    for flt in FILTERS:
        same_columns(cached.closed_trades(flt), fresh.closed_trades(flt))
        assert cached.stats(flt) == fresh.stats(flt), flt
        assert cached.theories(flt) == fresh.theories(flt), flt


def test_history_follows_every_kind_of_change(tw: Tradewatch) -> None:
    history = TradeHistory()
    check(tw, history)  # empty
    for n in range(6):
        trade(tw, f"s{n}", at=NOW - timedelta(days=3, hours=-n), gain=(-1) ** n * (n + 1))
    check(tw, history)
    # A later exit, then one backdated before every known exit (the order must be rebuilt).
    trade(tw, "late", at=NOW - timedelta(hours=3), gain=2.0, symbol="ETHUSDT")
    trade(tw, "early", at=NOW - timedelta(days=10), gain=-3.0, direction=Direction.SHORT)
    check(tw, history)
    # An entry corrected after its exit changes a known trade's P&L and outcome in place.
    tw.ledger.correct_entry(
        "s0", "fat finger", price=90.0, qty=1.0, fee=0.0, at=NOW - timedelta(days=3)
    )
    check(tw, history)
    assert reports(tw, history).trade("s0")["outcome"] == "win"  # type: ignore[index]
    # A new theory, a new symbol, and an open trade that closes later.
    trade(tw, "new", at=NOW - timedelta(hours=2), gain=1.5, symbol="SOLUSDT", theories={"x": -1})
    trade(tw, "open", at=NOW - timedelta(hours=1), gain=0.0, close=False)
    check(tw, history)
    assert "SOLUSDT" in history.symbols()
    tw.ledger.record_exit("open", 104.0, 0.0, "take_profit", NOW - timedelta(minutes=1))
    check(tw, history)
    assert len(history.closed()) == 10


def test_a_new_outcome_threshold_is_read_again(
    make_tradewatch: Callable[..., Tradewatch],
) -> None:
    tw = make_tradewatch(breakeven_pct=0.5)
    trade(tw, "small", at=NOW - timedelta(days=1), gain=0.3)
    history = TradeHistory()
    check(tw, history)
    assert history.closed().outcome.tolist() == ["breakeven"]
    strict = make_tradewatch(breakeven_pct=0.1)  # the read model is replayed with it
    strict.engine.catch_up()
    history.refresh(strict.store, tw.engine.projections["ledger"].config())
    assert history.closed().outcome.tolist() == ["breakeven"], "nothing changed row by row"
    check(strict, history)
    assert history.closed().outcome.tolist() == ["win"]


def test_bad_rows_are_refused() -> None:
    with pytest.raises(ValueError, match="s1: exit_time is before entry_time"):
        TradeColumns.build(
            signal_id=["s1"],
            symbol=["BTCUSDT"],
            direction=["long"],
            source=["manual"],
            entry_ns=[2],
            exit_ns=[1],
            pnl_pct=[1.0],
            pnl_quote=[1.0],
            outcome=["win"],
            confidence=[np.nan],
            model_version=[None],
            theories={},
        )


def test_todays_signals_follow_the_configured_day(tw: Tradewatch) -> None:
    noon = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)  # 02:00 on 22 Nov at UTC+14
    trade(tw, "yesterday", at=noon - timedelta(hours=3), gain=1.0)  # 23:00 on 21 Nov there
    trade(tw, "btc", at=noon - timedelta(hours=1), gain=1.0, close=False)
    trade(tw, "eth", at=noon - timedelta(minutes=30), gain=-1.0, symbol="ETHUSDT")
    tw.engine.catch_up()
    kiritimati = Reports(tw.store, starting_balance=1000.0, timezone="Pacific/Kiritimati", now=noon)
    today = kiritimati.todays_signals()
    assert [s["signal_id"] for s in today] == ["eth", "btc"]
    assert today[1]["trade"]["status"] == "open"
    assert today[0]["trade"]["outcome"] == "loss"
    assert today[0]["theories"] == {"trend": 0.5} and today[0]["blocked"] is False
    only_btc = kiritimati.todays_signals(TradeFilter(symbol="btcusdt"))
    assert [s["signal_id"] for s in only_btc] == ["btc"]
    utc = Reports(tw.store, starting_balance=1000.0, now=noon)
    assert [s["signal_id"] for s in utc.todays_signals()] == ["eth", "btc", "yesterday"]
