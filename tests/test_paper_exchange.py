"""The paper exchange's conventions, one handcrafted candle file each (long and short)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from domain.errors import DomainError
from domain.excursions import BarPoint
from domain.paper import (
    FeeKind,
    FillSide,
    OrderType,
    PaperExpiry,
    PaperFill,
    PaperOrder,
    PaperSettings,
    PaperState,
    Phase,
    paper_fill_id,
    run,
)
from domain.paper_codec import state_from_dict, state_to_dict
from domain.values import Direction, ExitReason
from tests.candle_csv import FIXTURES, load_candles
from tests.paper_cases import T0, bar_close, bar_open, make_order, play, span

LONG, SHORT = Direction.LONG, Direction.SHORT
TP, SL, TIMEOUT = ExitReason.TAKE_PROFIT, ExitReason.STOP_LOSS, ExitReason.TIMEOUT
INSIDE, OPEN, CLOSE = BarPoint.INSIDE, BarPoint.OPEN, BarPoint.CLOSE

# fixture: (entry price, point, bar), (exit price, point, bar, reason, ambiguous,
# entry-bar exit), the optimistic exit price (ambiguous bars only)
CASES: dict[str, tuple[tuple[Any, ...], tuple[Any, ...], float | None]] = {
    "long_target": ((100, INSIDE, 0), (110, INSIDE, 2, TP, False, False), None),
    "long_stop": ((100, INSIDE, 0), (95, INSIDE, 2, SL, False, False), None),
    "long_both": ((100, INSIDE, 0), (95, INSIDE, 1, SL, True, False), 110),
    "long_gap_stop": ((100, INSIDE, 0), (93, OPEN, 2, SL, False, False), None),
    "long_gap_target": ((100, INSIDE, 0), (112, OPEN, 2, TP, False, False), None),
    "long_entry_bar_stop": ((100, INSIDE, 0), (95, INSIDE, 0, SL, False, True), None),
    "long_entry_bar_target": ((100, INSIDE, 0), (110, INSIDE, 0, TP, False, True), None),
    "long_entry_bar_high_only": ((100, INSIDE, 0), (110, INSIDE, 1, TP, False, False), None),
    "long_entry_bar_both": ((100, INSIDE, 0), (95, INSIDE, 0, SL, True, True), 110),
    "long_entry_open": ((99, OPEN, 0), (110, INSIDE, 0, TP, False, False), None),
    "long_timeout": ((100, INSIDE, 0), (106.5, CLOSE, 96, TIMEOUT, False, False), None),
    "short_target": ((200, INSIDE, 0), (180, INSIDE, 2, TP, False, False), None),
    "short_stop": ((200, INSIDE, 0), (210, INSIDE, 2, SL, False, False), None),
    "short_both": ((200, INSIDE, 0), (210, INSIDE, 1, SL, True, False), 180),
    "short_gap_stop": ((200, INSIDE, 0), (213, OPEN, 2, SL, False, False), None),
    "short_gap_target": ((200, INSIDE, 0), (178, OPEN, 2, TP, False, False), None),
    "short_entry_bar_stop": ((200, INSIDE, 0), (210, INSIDE, 0, SL, False, True), None),
    "short_entry_bar_target": ((200, INSIDE, 0), (180, INSIDE, 0, TP, False, True), None),
    "short_entry_bar_low_only": ((200, INSIDE, 0), (180, INSIDE, 1, TP, False, False), None),
    "short_entry_open": ((201, OPEN, 0), (180, INSIDE, 0, TP, False, False), None),
    "short_timeout": ((200, INSIDE, 0), (193.5, CLOSE, 96, TIMEOUT, False, False), None),
}
ALL_FIXTURES = sorted(path.stem for path in FIXTURES.glob("*.csv"))


def fills(events: list[Any]) -> list[PaperFill]:
    return [e for e in events if isinstance(e, PaperFill)]


def when(point: BarPoint, k: int) -> Any:
    """A fill at the open is known at the bar's open; inside or at the close, at its close."""
    return bar_open(k) if point is OPEN else bar_close(k)


@pytest.mark.parametrize("fixture", sorted(CASES))
def test_each_convention_fills_and_exits_where_the_issue_says(fixture: str) -> None:
    (e_price, e_point, e_bar), exit_case, optimistic = CASES[fixture]
    x_price, x_point, x_bar, reason, ambiguous, entry_bar_exit = exit_case
    state, events = play(fixture)
    entry, exit_fill = fills(events)
    assert (entry.side, entry.price, entry.point, entry.bar_open_time, entry.time) == (
        FillSide.ENTRY, e_price, e_point, bar_open(e_bar), when(e_point, e_bar),
    )  # fmt: skip
    assert (exit_fill.side, exit_fill.price, exit_fill.point, exit_fill.bar_open_time) == (
        FillSide.EXIT, x_price, x_point, bar_open(x_bar),
    )  # fmt: skip
    assert exit_fill.time == when(x_point, x_bar)
    assert (exit_fill.reason, exit_fill.ambiguous, exit_fill.entry_bar_exit) == (
        reason, ambiguous, entry_bar_exit,
    )  # fmt: skip
    assert entry.reason is None and not (entry.ambiguous or entry.after_gap or exit_fill.after_gap)
    assert state.phase is Phase.CLOSED and state.exit == exit_fill
    if optimistic is None:
        assert exit_fill.optimistic is None
        assert state.outcome.optimistic_pnl == state.outcome.pnl
    else:
        alternative = exit_fill.optimistic
        assert alternative is not None
        assert (alternative.price, alternative.reason, alternative.fee_kind) == (
            optimistic, TP, FeeKind.MAKER,
        )  # fmt: skip
        assert alternative.fill_id != exit_fill.fill_id
        outcome = state.outcome
        assert outcome.pnl is not None and outcome.optimistic_pnl is not None
        assert outcome.optimistic_pnl.net_quote > outcome.pnl.net_quote


@pytest.mark.parametrize("fixture", ALL_FIXTURES)
def test_the_bar_that_produced_the_signal_never_fills(fixture: str) -> None:
    signal_bar = load_candles(fixture)[0]
    assert signal_bar.open_time == bar_open(-1)
    order = make_order(LONG if not fixture.startswith("short") else SHORT)
    assert signal_bar.low <= (order.entry_price or 0) <= signal_bar.high
    state, events = PaperState(order).step(signal_bar)
    assert events == () and state == PaperState(order)


def test_the_fill_times_and_fees_of_a_limit_entry_and_a_limit_target() -> None:
    state, events = play("long_target")
    entry, exit_fill = fills(events)
    assert entry.time == T0 + span(1) and exit_fill.time == T0 + span(3)
    assert (entry.order_type, entry.fee_kind, entry.fee) == (OrderType.LIMIT, FeeKind.MAKER, 0.02)
    assert exit_fill.fee_kind is FeeKind.MAKER and exit_fill.order_type is OrderType.LIMIT
    assert exit_fill.fee == pytest.approx(110 * 0.0002, rel=1e-15)
    pnl = state.outcome.pnl
    assert pnl is not None
    assert pnl.gross_quote == 10.0 and pnl.net_quote == pytest.approx(10 - 0.02 - 0.022)


@pytest.mark.parametrize(
    ("fixture", "fee_kind", "price"),
    [("long_stop", FeeKind.TAKER, 95), ("long_gap_stop", FeeKind.TAKER, 93),
     ("long_gap_target", FeeKind.MAKER, 112), ("long_timeout", FeeKind.TAKER, 106.5),
     ("short_stop", FeeKind.TAKER, 210), ("short_timeout", FeeKind.TAKER, 193.5)],
)  # fmt: skip
def test_stops_and_timeouts_pay_the_taker_fee_and_targets_the_maker_fee(
    fixture: str, fee_kind: FeeKind, price: float
) -> None:
    settings = PaperSettings(maker_fee=0.001, taker_fee=0.003)
    order = make_order(LONG if fixture.startswith("long") else SHORT, qty=3.0)
    _, events = play(fixture, order, settings)
    entry, exit_fill = fills(events)
    assert entry.fee_kind is FeeKind.MAKER and entry.fee == pytest.approx(0.001 * entry.price * 3)
    assert exit_fill.fee_kind is fee_kind and exit_fill.qty == 3.0
    assert exit_fill.fee == pytest.approx(settings.rate(fee_kind) * price * 3, rel=1e-15)


def test_a_market_entry_fills_at_the_next_open_as_a_taker() -> None:
    _, events = play("long_stop", make_order(LONG, entry_price=None))
    entry, exit_fill = fills(events)
    assert (entry.price, entry.point, entry.time, entry.order_type, entry.fee_kind) == (
        102, OPEN, T0, OrderType.MARKET, FeeKind.TAKER,
    )  # fmt: skip
    assert entry.fee == pytest.approx(102 * 0.00055)
    assert (exit_fill.price, exit_fill.reason) == (95, SL)


def test_a_market_take_profit_pays_the_taker_fee() -> None:
    _, events = play("long_target", make_order(LONG, take_profit_type=OrderType.MARKET))
    exit_fill = fills(events)[1]
    assert (exit_fill.price, exit_fill.order_type, exit_fill.fee_kind) == (
        110, OrderType.MARKET, FeeKind.TAKER,
    )  # fmt: skip


def test_without_stop_and_target_only_the_timeout_closes() -> None:
    order = make_order(LONG, entry_price=None, stop_loss=None, take_profit=None)
    _, events = play("long_timeout", order)
    entry, exit_fill = fills(events)
    assert entry.price == 102 and exit_fill.reason is TIMEOUT
    assert exit_fill.bar_open_time == bar_open(96) and exit_fill.price == 106.5
    open_state, _ = play("long_stop", order)
    assert open_state.phase is Phase.OPEN and open_state.exit is None


def test_a_missing_target_lets_the_stop_close_later() -> None:
    _, events = play("long_target", make_order(LONG, take_profit=None))
    assert [(f.price, f.reason, f.bar_open_time) for f in fills(events)][1] == (95, SL, bar_open(3))


def test_a_limit_filled_at_an_open_beyond_its_stop_is_stopped_at_that_open() -> None:
    state, events = play("long_gap_stop", make_order(LONG, at=bar_open(2)))  # bar 2 opens at 93
    entry, exit_fill = fills(events)
    assert (entry.price, entry.point, exit_fill.price, exit_fill.point) == (93, OPEN, 93, OPEN)
    assert exit_fill.reason is SL and exit_fill.time == entry.time == bar_open(2)
    assert not exit_fill.entry_bar_exit  # filled at the open: the whole bar is after the fill
    pnl = state.outcome.pnl
    assert pnl is not None and pnl.net_quote == pytest.approx(-(entry.fee + exit_fill.fee))


@pytest.mark.parametrize("fixture", ["long_expiry", "short_expiry"])
def test_an_entry_unfilled_after_m_bars_expires_on_the_close_of_the_mth(fixture: str) -> None:
    candles = load_candles(fixture)
    state = PaperState(make_order(LONG if fixture.startswith("long") else SHORT))
    for candle in candles[:4]:  # the signal bar and bars 0..2
        state, events = state.step(candle)
        assert events == ()
    state, events = state.step(candles[4])  # bar 3
    assert events == (PaperExpiry("sig-1", T0 + span(4), after_gap=False),)
    assert state.phase is Phase.EXPIRED and state.outcome.entry is None
    assert state.step(candles[5]) == (state, ())  # bar 4 would have filled: too late


def test_a_longer_expiry_fills_on_the_fifth_bar() -> None:
    _, events = play("long_expiry", settings=PaperSettings(expiry_bars=5))
    (entry,) = fills(events)
    assert (entry.price, entry.bar_open_time) == (100, bar_open(4))


def test_a_signal_between_bar_opens_is_live_from_the_next_open() -> None:
    order = make_order(LONG, at=T0 + span(1) / 2)  # 00:07:30: first live bar opens 00:15
    state, events = play("long_expiry", order)
    (entry,) = fills(events)
    assert entry.bar_open_time == bar_open(4) and state.anchor == bar_open(1)
    _, events = play("long_expiry", make_order(LONG, at=T0 + span(1) / 2), PaperSettings(3))
    assert events == [PaperExpiry("sig-1", bar_open(4), after_gap=False)]


@pytest.mark.parametrize("fixture", ["long_timeout", "short_timeout"])
def test_a_trade_still_open_after_n_bars_exits_at_that_close(fixture: str) -> None:
    candles = load_candles(fixture)
    state, events = run(PaperState(make_order(LONG if "long" in fixture else SHORT)), candles[:97])
    assert state.phase is Phase.OPEN and len(events) == 1  # through bar 95
    state, last = state.step(candles[97])
    (exit_fill,) = fills(list(last))
    assert exit_fill.reason is TIMEOUT and exit_fill.time == bar_close(96)
    assert exit_fill.price == candles[97].close
    assert state.step(candles[98]) == (state, ())
    short_timeout = PaperSettings(timeout_bars=2)
    _, events = run(PaperState(state.order, short_timeout), candles)
    assert fills(events)[1].bar_open_time == bar_open(2)


def test_a_gap_before_the_entry_waits_and_flags_the_fill() -> None:
    _, events = play("gap_before_entry")
    entry, exit_fill = fills(events)
    assert (entry.price, entry.bar_open_time, entry.after_gap) == (100, bar_open(2), True)
    assert (exit_fill.price, exit_fill.reason, exit_fill.after_gap) == (110, TP, False)


def test_a_gap_while_open_flags_the_exit() -> None:
    _, events = play("gap_while_open")
    entry, exit_fill = fills(events)
    assert not entry.after_gap
    assert (exit_fill.price, exit_fill.bar_open_time, exit_fill.after_gap) == (
        95,
        bar_open(2),
        True,
    )


def test_missing_bars_use_up_the_entry_window() -> None:
    state, events = play("gap_in_entry_window")  # bars 2 and 3 missing, bar 4 arrives
    assert events == [PaperExpiry("sig-1", T0 + span(4), after_gap=True)]
    assert state.phase is Phase.EXPIRED


def test_a_missing_timeout_bar_exits_at_the_next_open() -> None:
    _, events = play("gap_over_timeout", settings=PaperSettings(timeout_bars=3))
    exit_fill = fills(events)[1]  # bar 3 (the deadline) is missing; bar 4 opens at 104
    assert (exit_fill.reason, exit_fill.price, exit_fill.point) == (TIMEOUT, 104, OPEN)
    assert (exit_fill.time, exit_fill.after_gap, exit_fill.fee_kind) == (
        bar_open(4), True, FeeKind.TAKER,
    )  # fmt: skip


def test_fill_ids_are_deterministic_short_and_venue_safe() -> None:
    _, first = play("long_target")
    _, again = play("long_target")
    assert [f.fill_id for f in fills(first)] == [f.fill_id for f in fills(again)]
    entry, exit_fill = fills(first)
    assert entry.fill_id == paper_fill_id("sig-1", bar_open(0), "entry")
    assert exit_fill.fill_id == paper_fill_id("sig-1", bar_open(2), "exit")
    other = paper_fill_id("sig-2", bar_open(0), "entry")
    assert len({entry.fill_id, exit_fill.fill_id, other}) == 3
    for fill_id in (entry.fill_id, exit_fill.fill_id, other):
        assert len(fill_id) <= 36 and fill_id.replace("-", "").isalnum() and fill_id.isascii()


@pytest.mark.parametrize("fixture", ALL_FIXTURES)
def test_a_restart_at_any_bar_records_nothing_twice_and_ends_the_same(fixture: str) -> None:
    candles = load_candles(fixture)
    order = make_order(LONG if not fixture.startswith("short") else SHORT)
    settings = PaperSettings(timeout_bars=3) if fixture == "gap_over_timeout" else PaperSettings()
    whole, expected = run(PaperState(order, settings), candles)
    for cut in range(len(candles) + 1):
        before, early = run(PaperState(order, settings), candles[:cut])
        stored = json.loads(json.dumps(state_to_dict(before)))
        after, late = run(state_from_dict(stored), candles)  # the catch-up re-reads every bar
        assert early + late == expected and after == whole
        ids = [f.fill_id for f in fills(early + late)]
        assert len(ids) == len(set(ids))


def test_a_restarted_order_asks_for_bars_from_where_it_stopped() -> None:
    candles = load_candles("long_target")
    state, _ = run(PaperState(make_order(LONG)), candles[:3])
    assert PaperState(make_order(LONG)).next_bar_open == T0
    assert state.next_bar_open == bar_open(2) and not state.done


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"stop_loss": 101.0}, "stop loss"), ({"take_profit": 99.0}, "take profit"),
     ({"qty": 0.0}, "quantity"), ({"entry_price": float("nan")}, "entry price"),
     ({"signal_id": "  "}, "signal id"), ({"at": T0.replace(tzinfo=None)}, "time zone"),
     ({"interval": span(0)}, "interval")],
)  # fmt: skip
def test_a_bad_order_is_refused_at_the_door(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(DomainError, match=message):
        make_order(LONG, **changes)


def test_a_fill_whose_value_is_not_finite_is_refused() -> None:
    bar = load_candles("long_target")[1]
    with pytest.raises(DomainError, match="no finite value"):
        PaperState(make_order(LONG, qty=1e307)).step(bar)


@pytest.mark.parametrize(
    "changes", [{"expiry_bars": 0}, {"timeout_bars": 1.5}, {"maker_fee": 1.5}, {"taker_fee": -1}]
)
def test_bad_settings_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(DomainError):
        PaperSettings(**changes)


def test_a_bar_of_another_market_or_shape_is_refused() -> None:
    bar = load_candles("long_target")[1]
    state = PaperState(make_order(LONG))
    for wrong, message in [
        (replace(bar, symbol="ETHUSDT"), "ETHUSDT bar"),
        (replace(bar, interval=span(4)), "bar was fed"),
        (replace(bar, high=bar.open - 1), "high or low"),
        (replace(bar, open_time=bar.open_time.replace(tzinfo=None)), "time zone"),
    ]:
        with pytest.raises(DomainError, match=message):
            state.step(wrong)
    started, _ = state.step(bar)
    with pytest.raises(DomainError, match="off the"):
        started.step(replace(bar, open_time=bar.open_time + span(1) + span(1) / 3))


@pytest.mark.parametrize(
    "damage",
    [lambda d: d.pop("entry"), lambda d: d.update(version=99), lambda d: d.update(phase="won"),
     lambda d: d.update(exit=None), lambda d: d["order"].update(stop_loss=120.0),
     lambda d: d.update(entry_slot=-1)],
)  # fmt: skip
def test_a_damaged_stored_state_is_refused(damage: Any) -> None:
    state, _ = play("long_target")
    stored = state_to_dict(state)
    damage(stored)
    with pytest.raises(DomainError):
        state_from_dict(stored)


def test_order_for_a_signal_enters_at_the_far_edge_of_its_zone() -> None:
    common: dict[str, Any] = {
        "signal_id": "z", "symbol": "btcusdt", "at": T0, "interval": span(1),
        "take_profit": None, "position_size": None,
    }  # fmt: skip
    long = PaperOrder.for_signal(
        direction=LONG, entry_low=98, entry_high=100, stop_loss=95, **common
    )
    short = PaperOrder.for_signal(
        direction=SHORT, entry_low=200, entry_high=202, stop_loss=210, **common
    )
    market = PaperOrder.for_signal(
        direction=LONG, entry_low=None, entry_high=None, stop_loss=None, **common
    )
    assert (long.entry_price, long.qty, long.symbol, long.entry_type) == (
        100, 1.0, "BTCUSDT", OrderType.LIMIT,
    )  # fmt: skip
    assert short.entry_price == 200
    assert market.entry_type is OrderType.MARKET and market.entry_price is None
