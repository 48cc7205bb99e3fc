"""Venue facts and their rules: exit reasons, orderLinkId, the P&L check, validation."""

from __future__ import annotations

import math
import re
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import DomainError
from domain.values import Direction
from domain.venue import (
    ClosedPnl,
    Execution,
    FundingPayment,
    OrderRequest,
    Position,
    Side,
    VenueExit,
)
from domain.venue_rules import (
    check_closed_pnl,
    computed_pnl,
    exit_reason,
    order_link_id,
    parse_link_id,
    signal_key,
)

T0 = datetime(2024, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("exec_type", "stop", "create", "reason"),
    [
        ("Trade", "TakeProfit", "CreateByTakeProfit", VenueExit.TAKE_PROFIT),
        ("Trade", "PartialTakeProfit", "CreateByPartialTakeProfit", VenueExit.PARTIAL_TAKE_PROFIT),
        ("Trade", "StopLoss", "CreateByStopLoss", VenueExit.STOP_LOSS),
        ("Trade", "PartialStopLoss", "CreateByPartialStopLoss", VenueExit.PARTIAL_STOP_LOSS),
        ("Trade", "TrailingStop", "CreateByTrailingStop", VenueExit.TRAILING_STOP),
        ("BustTrade", "UNKNOWN", "CreateByTakeOver_PassThrough", VenueExit.LIQUIDATION),
        ("BustTrade", "", "", VenueExit.LIQUIDATION),
        ("Trade", "", "CreateByLiq", VenueExit.LIQUIDATION),
        ("AdlTrade", "UNKNOWN", "CreateByAdl_PassThrough", VenueExit.ADL),
        ("Trade", "UNKNOWN", "CreateByClosing", VenueExit.MANUAL),
        ("Trade", "", "CreateByUser", VenueExit.MANUAL),
        ("Trade", "MmRateClose", "CreateByMmRateClose", VenueExit.MANUAL),
        ("Delivery", "", "CreateBySettle", VenueExit.DELIVERY),
        ("Settle", "", "", VenueExit.DELIVERY),
        # a stop type is more specific than a generic create type
        ("Trade", "StopLoss", "CreateByUser", VenueExit.STOP_LOSS),
    ],
)
def test_exit_reason_from_the_venues_own_fields(
    exec_type: str, stop: str, create: str, reason: VenueExit
) -> None:
    assert exit_reason(exec_type, stop, create) is reason


@pytest.mark.parametrize(
    ("exec_type", "stop", "create"),
    [
        ("Trade", "TakeProfit", "CreateByStopLoss"),  # the fields contradict each other
        ("BustTrade", "TakeProfit", ""),
        ("AdlTrade", "", "CreateByClosing"),
        ("Trade", "SomethingNew", "CreateByUser"),  # a value the table does not know
        ("Trade", "", "CreateBySomethingNew"),
        ("MovePosition", "", ""),
        ("Trade", "", ""),  # nothing says why: shown as unknown, never guessed from prices
    ],
)
def test_an_unknown_or_contradictory_combination_is_unknown(
    exec_type: str, stop: str, create: str
) -> None:
    assert exit_reason(exec_type, stop, create) is VenueExit.UNKNOWN


def test_a_funding_row_has_no_exit_reason() -> None:
    with pytest.raises(DomainError, match="not a fill"):
        exit_reason("Funding", "UNKNOWN", "")


def test_order_link_id_is_short_safe_deterministic_and_marks_its_signal() -> None:
    signal = str(uuid.UUID(int=7))  # 36 characters: would leave no room for a leg
    link = order_link_id(signal)
    assert link == order_link_id(signal)
    assert len(link) <= 36 and re.fullmatch(r"[A-Za-z0-9_-]+", link)
    assert link.startswith("tw1-") and link.endswith("-e")
    assert parse_link_id(link) == (signal_key(signal), "e")
    assert parse_link_id(order_link_id(signal, "e2")) == (signal_key(signal), "e2")
    assert order_link_id(signal, "x") != link
    assert parse_link_id("usdt-test-01") is None
    with pytest.raises(DomainError, match="leg"):
        order_link_id(signal, "Entry")
    with pytest.raises(DomainError, match="empty"):
        order_link_id("  ")


@given(
    st.lists(
        st.text(min_size=1, max_size=300).filter(str.strip), min_size=2, max_size=60, unique=True
    )
)
def test_different_signals_never_share_a_link_id(signal_ids: list[str]) -> None:
    links = [order_link_id(s, "e") for s in signal_ids]
    assert len(set(links)) == len(links)
    assert all(len(x) <= 36 and re.fullmatch(r"[a-z0-9-]+", x) for x in links)
    longest_leg = order_link_id(signal_ids[0], "abcde")
    assert len(longest_leg) == 36


def fill(
    exec_id: str,
    side: Side,
    price: float,
    qty: float,
    *,
    closed: float = 0.0,
    fee: float = 0.0,
    minutes: int = 0,
) -> Execution:
    return Execution(
        exec_id=exec_id,
        order_id=f"o-{exec_id}",
        order_link_id="",
        symbol="BTCUSDT",
        side=side,
        price=price,
        qty=qty,
        fee=fee,
        time=T0 + timedelta(minutes=minutes),
        closed_qty=closed,
    )


def funding(amount: float, minutes: int) -> FundingPayment:
    return FundingPayment(
        funding_id=f"f{minutes}",
        symbol="BTCUSDT",
        time=T0 + timedelta(minutes=minutes),
        amount=amount,
        rate=0.0001,
        position_direction=Direction.LONG,
        position_qty=1.0,
    )


def closed_row(pnl: float, minutes: int) -> ClosedPnl:
    at = T0 + timedelta(minutes=minutes)
    return ClosedPnl("o", "BTCUSDT", Side.SELL, 1.0, 100.0, 110.0, pnl, at, at)


def test_pnl_of_partial_fills_and_funding_against_an_independent_computation() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        n_in, n_out = rng.integers(1, 5), rng.integers(1, 5)
        in_qty = rng.uniform(0.1, 2.0, n_in)
        in_px = rng.uniform(90, 110, n_in)
        out_share = rng.dirichlet(np.ones(n_out)) * in_qty.sum()
        out_px = rng.uniform(80, 120, n_out)
        short = bool(rng.integers(0, 2))
        opening, closing = (Side.SELL, Side.BUY) if short else (Side.BUY, Side.SELL)
        fills = [
            fill(f"i{k}", opening, in_px[k], in_qty[k], fee=in_px[k] * in_qty[k] * 2e-4, minutes=k)
            for k in range(n_in)
        ] + [
            fill(
                f"x{k}",
                closing,
                out_px[k],
                out_share[k],
                closed=out_share[k],
                fee=out_px[k] * out_share[k] * 5.5e-4,
                minutes=100 + k,
            )
            for k in range(n_out)
        ]
        paid = [funding(-rng.uniform(0, 1), 50)]

        got, flat = computed_pnl(fills, paid)

        entry = float(np.average(in_px, weights=in_qty))
        sign = -1.0 if short else 1.0
        gross = float(np.sum((out_px - entry) * out_share)) * sign
        fees = float(np.sum(in_px * in_qty) * 2e-4 + np.sum(out_px * out_share) * 5.5e-4)
        assert flat
        assert got == pytest.approx(gross - fees + paid[0].amount, rel=1e-9, abs=1e-9)


def test_the_venues_closed_pnl_agrees_within_rounding_and_a_difference_is_reported() -> None:
    fills = [
        fill("a", Side.BUY, 100.0, 1.0, fee=0.02),
        fill("b", Side.SELL, 110.0, 1.0, closed=1.0, fee=0.0605, minutes=60),
    ]
    paid = [funding(-0.01, 30)]
    expected = 10.0 - 0.02 - 0.0605 - 0.01

    same = check_closed_pnl("BTCUSDT", fills, paid, [closed_row(round(expected, 7), 60)])
    off = check_closed_pnl("BTCUSDT", fills, [], [closed_row(round(expected, 7), 60)])

    assert same.agrees and same.flat and "agrees" in same.describe()
    assert not off.agrees and off.difference == pytest.approx(-0.01)
    assert "DIFFERS" in off.describe() and "\n" not in off.describe()


def test_a_half_closed_position_counts_half_its_entry_fees() -> None:
    fills = [
        fill("a", Side.BUY, 100.0, 2.0, fee=0.04),
        fill("b", Side.SELL, 105.0, 1.0, closed=1.0, fee=0.01, minutes=5),
    ]
    pnl, flat = computed_pnl(fills)
    assert not flat
    assert pnl == pytest.approx(5.0 - 0.02 - 0.01)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"price": math.nan}, "price"),
        ({"qty": 0.0}, "quantity"),
        ({"closed_qty": 2.0}, "closed more"),
        ({"symbol": "BTC\nUSDT"}, "printable"),
        ({"exec_id": ""}, "exec id"),
        ({"order_link_id": "x" * 37}, "order link id"),
    ],
)
def test_an_execution_that_makes_no_sense_is_refused(
    changes: dict[str, object], message: str
) -> None:
    fields: dict[str, object] = {
        "exec_id": "e1",
        "order_id": "o1",
        "order_link_id": "",
        "symbol": "BTCUSDT",
        "side": Side.BUY,
        "price": 100.0,
        "qty": 1.0,
        "fee": 0.01,
        "time": T0,
    } | changes
    with pytest.raises(DomainError, match=message):
        Execution(**fields)  # type: ignore[arg-type]


def test_a_position_is_flat_with_no_side_and_no_size() -> None:
    assert Position("BTCUSDT", None, 0.0).direction is None
    assert Position("BTCUSDT", Side.SELL, 0.5).direction is Direction.SHORT
    with pytest.raises(DomainError):
        Position("BTCUSDT", Side.BUY, 0.0)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"take_profit": 95.0}, "take-profit 95 must be above"),
        ({"stop_loss": 105.0}, "stop loss 105 must be below"),
        ({"reduce_only": True}, "reduce-only"),
        ({"order_link_id": "has space"}, "order link id"),
        ({"qty": math.inf}, "quantity"),
        ({"symbol": "BTC/USDT"}, "not a symbol"),
        ({"take_profit": None, "take_profit_limit": 111.0}, "needs a take-profit"),
    ],
)
def test_an_order_request_is_checked_at_the_door(changes: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {
        "symbol": "BTCUSDT",
        "side": Side.BUY,
        "qty": 0.01,
        "order_link_id": order_link_id("s1"),
        "price": 100.0,
        "take_profit": 110.0,
        "stop_loss": 95.0,
    } | changes
    with pytest.raises(DomainError, match=message):
        OrderRequest(**fields)  # type: ignore[arg-type]


def test_an_order_request_defaults_its_take_profit_limit_to_the_trigger() -> None:
    request = OrderRequest(
        "btcusdt",
        Side.SELL,
        0.01,
        order_link_id("s1"),
        price=100.0,
        take_profit=90.0,
        stop_loss=104.0,
    )
    assert request.symbol == "BTCUSDT" and request.take_profit_limit == 90.0
