"""Properties of the paper exchange on random candle series (with gaps): restarts, mirrors."""

from __future__ import annotations

import json
import re
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.candles import Candle
from domain.excursions import BarPoint
from domain.paper import (
    FillSide,
    PaperEvent,
    PaperExpiry,
    PaperFill,
    PaperState,
    Phase,
    run,
)
from domain.paper_codec import state_from_dict, state_to_dict
from tests.candle_csv import FIFTEEN_MINUTES
from tests.paper_cases import MIRROR, Scenario, mirrored, scenarios

FILL_ID = re.compile(r"^[A-Za-z0-9_-]{1,36}$")


def fills(events: list[PaperEvent]) -> list[PaperFill]:
    return [e for e in events if isinstance(e, PaperFill)]


@settings(max_examples=300, deadline=None)
@given(scenarios(), st.data())
def test_where_a_restart_cuts_the_series_never_changes_the_result(
    scenario: Scenario, data: st.DataObject
) -> None:
    start = PaperState(scenario.order, scenario.settings)
    whole, expected = run(start, scenario.candles)
    cut = data.draw(st.integers(0, len(scenario.candles)), label="cut")
    overlap = data.draw(st.integers(0, cut), label="re-read from")
    before, early = run(start, scenario.candles[:cut])
    resumed = state_from_dict(json.loads(json.dumps(state_to_dict(before))))
    after, late = run(resumed, scenario.candles[overlap:])
    assert after == whole and early + late == expected


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_a_long_on_prices_equals_a_short_on_the_mirrored_prices(scenario: Scenario) -> None:
    short = mirrored(scenario)
    long_state, long_events = run(PaperState(scenario.order, scenario.settings), scenario.candles)
    short_state, short_events = run(PaperState(short.order, short.settings), short.candles)
    assert long_state.phase is short_state.phase
    assert len(long_events) == len(short_events)
    for mine, theirs in zip(long_events, short_events, strict=True):
        if isinstance(mine, PaperExpiry):
            assert mine == theirs
            continue
        assert isinstance(theirs, PaperFill)
        assert theirs.price == MIRROR - mine.price
        assert (theirs.fill_id, theirs.time, theirs.point, theirs.reason, theirs.fee_kind) == (
            mine.fill_id, mine.time, mine.point, mine.reason, mine.fee_kind,
        )  # fmt: skip
        assert (theirs.ambiguous, theirs.entry_bar_exit, theirs.after_gap) == (
            mine.ambiguous, mine.entry_bar_exit, mine.after_gap,
        )  # fmt: skip
        if mine.optimistic is None:
            assert theirs.optimistic is None
        else:
            assert theirs.optimistic is not None
            assert theirs.optimistic.price == MIRROR - mine.optimistic.price
    long_pnl, short_pnl = long_state.outcome.pnl, short_state.outcome.pnl
    if long_pnl is not None and short_pnl is not None:
        assert long_pnl.gross_quote == pytest.approx(short_pnl.gross_quote, rel=1e-12, abs=1e-12)


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_every_result_keeps_the_exchange_invariants(scenario: Scenario) -> None:
    order, chosen = scenario.order, scenario.settings
    state, events = run(PaperState(order, chosen), scenario.candles)
    bars = {c.open_time: c for c in scenario.candles}
    found = fills(events)
    assert [f.side for f in found] == [FillSide.ENTRY, FillSide.EXIT][: len(found)]
    assert all(FILL_ID.match(f.fill_id) for f in found)
    assert len({f.fill_id for f in found}) == len(found)
    for fill in found:
        bar = bars[fill.bar_open_time]
        assert bar.open_time >= order.at
        assert bar.low <= fill.price <= bar.high
        expected_time = bar.open_time if fill.point is BarPoint.OPEN else bar.close_time
        assert fill.time == expected_time
    if found:
        entry = found[0]
        assert state.anchor is not None
        assert entry.bar_open_time < state.anchor + chosen.expiry_bars * order.interval
        if order.entry_price is not None:
            assert entry.price <= order.entry_price
    if len(found) == 2:
        entry, exit_fill = found
        assert exit_fill.time >= entry.time
        assert exit_fill.bar_open_time <= bars_after(entry, chosen.timeout_bars, bars)
        outcome = state.outcome
        assert outcome.pnl is not None and outcome.optimistic_pnl is not None
        assert outcome.optimistic_pnl.net_quote >= outcome.pnl.net_quote
        assert exit_fill.ambiguous == (exit_fill.optimistic is not None)
    expiries = [e for e in events if isinstance(e, PaperExpiry)]
    assert (state.phase is Phase.EXPIRED) == bool(expiries) and len(expiries) <= 1
    if expiries:
        assert not found


def bars_after(entry: PaperFill, timeout_bars: int, bars: dict[datetime, Candle]) -> datetime:
    """The latest bar an exit may fall on: the N-th bar after the entry bar, or, if that bar
    is missing, the first bar that arrived after it."""
    deadline = entry.bar_open_time + timeout_bars * FIFTEEN_MINUTES
    later = sorted(t for t in bars if t >= deadline)
    return later[0] if later else deadline
