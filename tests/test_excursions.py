"""MAE, MFE and R: hand-worked fixtures, an independent numpy computation, unknown on gaps."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.candles import Candle
from domain.errors import DomainError
from domain.excursions import (
    BarPoint,
    Excursions,
    FillAt,
    average_r,
    excursions,
    initial_risk,
    r_expectancy,
    r_multiple,
)
from domain.paper import PaperFill, PaperState, run
from domain.values import Direction
from tests.candle_csv import load_candles
from tests.paper_cases import (
    Scenario,
    bar_open,
    direction_of,
    make_order,
    mirrored,
    play,
    scenarios,
)

LONG, SHORT = Direction.LONG, Direction.SHORT
INSIDE, OPEN, CLOSE = BarPoint.INSIDE, BarPoint.OPEN, BarPoint.CLOSE

# fixture: MAE, MFE (price), bars to MFE, MFE captured, as worked out by hand in
# docs/paper-exchange.md's rules (long: entry 100, stop 95; short: entry 200, stop 210)
HAND: dict[str, tuple[float, float, int, float | None]] = {
    "long_target": (0.5, 10, 2, 1.0),  # entry bar high 103 is not provably after the fill
    "long_stop": (5, 4, 1, -1.25),  # stop bar: only its open (97) is provably before the stop
    "long_both": (5, 1, 0, -5.0),  # ambiguous bar: stop first, so its high 111 is not counted
    "long_gap_stop": (7, 1, 0, -7.0),
    "long_gap_target": (0.5, 12, 2, 1.0),
    "long_entry_bar_stop": (5, 0, 0, None),
    "long_entry_bar_target": (1, 10, 0, 1.0),
    "long_entry_bar_high_only": (1, 10, 1, 1.0),  # not 11: the entry bar's high 111 is trimmed
    "long_entry_open": (1, 11, 0, 1.0),  # filled at the open: the whole bar counts
    "long_timeout": (0.5, 8.5, 6, 6.5 / 8.5),
    "short_target": (0.5, 20, 2, 1.0),
    "short_stop": (10, 4, 1, -2.5),
    "short_gap_stop": (13, 1, 0, -13.0),
    "short_entry_bar_target": (1, 20, 0, 1.0),
    "short_timeout": (0.5, 8.5, 6, 6.5 / 8.5),
}


def trade(fixture: str) -> tuple[PaperFill, PaperFill, list[Candle]]:
    _, events = play(fixture)
    entry, exit_fill = (e for e in events if isinstance(e, PaperFill))
    return entry, exit_fill, load_candles(fixture)


@pytest.mark.parametrize("fixture", sorted(HAND))
def test_excursions_of_each_fixture_match_the_hand_worked_figures(fixture: str) -> None:
    entry, exit_fill, candles = trade(fixture)
    stop = make_order(direction_of(fixture)).stop_loss
    found = excursions(entry.direction, entry.at, exit_fill.at, candles, stop_loss=stop)
    mae, mfe, bars, captured = HAND[fixture]
    assert found is not None and stop is not None
    assert (found.mae_price, found.mfe_price, found.bars_to_mfe) == (mae, mfe, bars)
    assert found.mfe_captured == (None if captured is None else pytest.approx(captured))
    assert found.mae_pct == pytest.approx(mae / entry.price * 100)
    assert found.mfe_pct == pytest.approx(mfe / entry.price * 100)
    risk = abs(entry.price - stop)
    assert found.mae_r == pytest.approx(mae / risk) and found.mfe_r == pytest.approx(mfe / risk)


def test_without_a_stop_the_excursions_have_no_r() -> None:
    entry, exit_fill, candles = trade("long_target")
    found = excursions(LONG, entry.at, exit_fill.at, candles)
    assert found is not None and (found.mae_r, found.mfe_r) == (None, None)
    assert found.mfe_price == 10


def test_a_missing_bar_makes_the_excursions_unknown() -> None:
    entry, exit_fill, candles = trade("gap_while_open")
    assert excursions(LONG, entry.at, exit_fill.at, candles, stop_loss=95) is None
    entry, exit_fill, candles = trade("long_timeout")
    holed = [c for c in candles if c.open_time != bar_open(50)]
    assert excursions(LONG, entry.at, exit_fill.at, holed, stop_loss=95) is None
    assert excursions(LONG, entry.at, exit_fill.at, [], stop_loss=95) is None
    past_the_end = replace(exit_fill.at, bar_open_time=bar_open(98))
    assert excursions(LONG, entry.at, past_the_end, candles) is None


def test_each_exit_leg_has_its_own_excursions() -> None:
    entry, _, candles = trade("long_timeout")
    first = FillAt(candles[4].close, bar_open(3), CLOSE)  # a partial exit at bar 3's close
    last = FillAt(candles[12].close, bar_open(11), CLOSE)
    early = excursions(LONG, entry.at, first, candles, stop_loss=95)
    late = excursions(LONG, entry.at, last, candles, stop_loss=95)
    assert early is not None and late is not None
    assert (early.mfe_price, early.bars_to_mfe) == (5.5, 3)  # bar 3 opens 104, high 105.5
    assert (late.mfe_price, late.bars_to_mfe) == (8.5, 6)
    assert early.mae_price == late.mae_price == 0.5


@pytest.mark.parametrize(
    ("entry", "exit_", "message"),
    [(FillAt(100, bar_open(2), INSIDE), FillAt(110, bar_open(1), INSIDE), "later bar"),
     (FillAt(100, bar_open(0), INSIDE), FillAt(100, bar_open(0), OPEN), "cannot exit"),
     (FillAt(150, bar_open(0), INSIDE), FillAt(110, bar_open(2), INSIDE), "low and high"),
     (FillAt(101, bar_open(0), CLOSE), FillAt(100, bar_open(0), INSIDE), "cannot exit")],
)  # fmt: skip
def test_impossible_fills_are_refused(entry: FillAt, exit_: FillAt, message: str) -> None:
    with pytest.raises(DomainError, match=message):
        excursions(LONG, entry, exit_, load_candles("long_target"))


def test_candles_of_mixed_intervals_are_refused() -> None:
    entry, exit_fill, candles = trade("long_target")
    mixed = [*candles[:-1], replace(candles[-1], interval=candles[-1].interval * 2)]
    with pytest.raises(DomainError, match="one interval"):
        excursions(LONG, entry.at, exit_fill.at, mixed)


def numpy_excursions(
    direction: Direction, entry: FillAt, exit_: FillAt, candles: list[Candle]
) -> tuple[float, float, int]:
    """The trimming table of docs/paper-exchange.md, written over numpy arrays."""
    rows = sorted(
        (c for c in candles if entry.bar_open_time <= c.open_time <= exit_.bar_open_time),
        key=lambda c: c.open_time,
    )
    sign = 1.0 if direction is Direction.LONG else -1.0
    ohlc = np.array([[c.open, c.high, c.low, c.close] for c in rows]) * sign
    if sign < 0:
        ohlc = ohlc[:, [0, 2, 1, 3]]  # a short's high is its adverse side
    o, hi, lo, c = (ohlc[:, i].copy() for i in range(4))
    e, x = sign * entry.price, sign * exit_.price
    if entry.point is INSIDE and e < o[0]:
        hi[0] = max(e, c[0])
    start = e if (len(rows) == 1 and entry.point is INSIDE) else o[-1]
    if exit_.point is OPEN:
        lo[-1] = hi[-1] = o[-1]
    elif exit_.point is INSIDE:
        if x < start:
            lo[-1], hi[-1] = x, start
        elif x > start:
            hi[-1] = x
        else:
            lo[-1] = hi[-1] = x
    mae, mfe = max(0.0, e - float(lo.min())), max(0.0, float(hi.max()) - e)
    return mae, mfe, int(np.argmax(hi)) if mfe > 0 else 0


@settings(max_examples=300, deadline=None)
@given(scenarios(), st.booleans())
def test_excursions_match_an_independent_numpy_computation(scenario: Scenario, short: bool) -> None:
    if short:  # the same series seen as a short on 600 − p
        scenario = mirrored(scenario)
    order, candles = scenario.order, scenario.candles
    state, _ = run(PaperState(order, scenario.settings), candles)
    if state.entry is None or state.exit is None:
        return
    entry, exit_fill = state.entry, state.exit
    found = excursions(order.direction, entry.at, exit_fill.at, candles, stop_loss=order.stop_loss)
    if exit_fill.after_gap:
        assert found is None
        return
    assert found is not None
    mae, mfe, bars = numpy_excursions(order.direction, entry.at, exit_fill.at, candles)
    assert (found.mae_price, found.mfe_price, found.bars_to_mfe) == (mae, mfe, bars)
    realised = (exit_fill.price - entry.price) * (1 if order.direction is LONG else -1)
    assert -found.mae_price <= realised <= found.mfe_price  # the exit lies on the path
    if found.mfe_captured is not None:
        assert found.mfe_captured <= 1.0


def test_r_multiple_is_net_pnl_over_the_initial_risk() -> None:
    assert initial_risk(100, 95, 2) == 10
    assert r_multiple(9.958, 100, 95, 1) == pytest.approx(1.9916)
    assert r_multiple(-10.5, 200, 210, 1) == pytest.approx(-1.05)  # a short stopped, with fees
    assert r_multiple(5.0, 100, 95, 2) == 0.5
    assert r_multiple(5.0, 100, None, 1) is None
    assert r_multiple(5.0, 100, 100, 1) is None  # no risk: R is undefined, not infinite
    assert initial_risk(100, None, 1) is None


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(-1e4, 1e4, allow_nan=False),
            st.none() | st.floats(1e-3, 1e4, allow_nan=False),
        ),
        max_size=40,
    )
)
def test_average_r_and_r_expectancy_match_numpy(trades: list[tuple[float, Any]]) -> None:
    known = [(pnl, risk) for pnl, risk in trades if risk is not None]
    rs = [pnl / risk if risk is not None else None for pnl, risk in trades]
    if not known:
        assert average_r(rs) is None and r_expectancy(trades) is None
        return
    pnl, risk = np.array(known).T
    assert average_r(rs) == pytest.approx(float(np.mean(pnl / risk)), rel=1e-9, abs=1e-9)
    expected = float(np.sum(pnl) / np.sum(risk))
    assert r_expectancy(trades) == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_r_expectancy_is_not_dominated_by_a_tiny_stop() -> None:
    trades: list[tuple[float, float | None]] = [(1.0, 0.01), (-10.0, 10.0), (3.0, None)]
    assert average_r([pnl / r if r else None for pnl, r in trades]) == pytest.approx(49.5)
    assert r_expectancy(trades) == pytest.approx(-9 / 10.01)
    assert average_r([]) is None and r_expectancy([]) is None


def test_excursions_are_plain_values() -> None:
    entry, exit_fill, candles = trade("long_target")
    found = excursions(LONG, entry.at, exit_fill.at, candles, stop_loss=95)
    assert found == Excursions(0.5, 10.0, 0.5, 10.0, 0.1, 2.0, 2, 1.0)
