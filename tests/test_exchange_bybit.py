"""The Bybit exchange adapter reading the account, through the real pybit client against
the fake Bybit server (every private request signature-checked)."""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise
from typing import Any

import pytest

from domain.values import Direction
from domain.venue import Side, VenueExit
from domain.venue_rules import check_closed_pnl, order_link_id
from infrastructure.exchange.bybit_rows import from_ms
from infrastructure.exchange.bybit_wire import windows
from tests.bybit_helpers import EXECUTIONS, connect, entry, round_trip
from tests.conftest import FAKE_KEY, FAKE_SECRET
from tests.fakes.bybit import FakeBybit, ms
from tests.fakes.bybit_account import FakeAccount

DAY = timedelta(days=7) / 7


def both_times(call: Any) -> tuple[int, int]:
    p = call.params
    assert "startTime" in p and "endTime" in p, f"a query without both times: {p}"
    return int(p["startTime"]), int(p["endTime"])


def test_a_20_day_range_is_read_as_three_windows_each_with_both_times(
    fake_bybit: FakeBybit, fake_account: FakeAccount
) -> None:
    ex, _ = connect(fake_bybit)
    start = fake_account.market.now
    for day in range(20):
        round_trip(fake_account, ex, f"sig-{day}")
        fake_account.advance(DAY)
    end = fake_account.market.now
    before = len(fake_bybit.calls(EXECUTIONS))

    batch = ex.executions("BTCUSDT", start, end)

    calls = fake_bybit.calls(EXECUTIONS)[before:]
    spans = [both_times(c) for c in calls]
    assert len(spans) == 3
    assert spans[0][0] == ms(start) and spans[-1][1] == ms(end)
    assert all(high - low <= 7 * 86_400_000 for low, high in spans)
    assert all(a[1] == b[0] for a, b in pairwise(spans))  # no gap
    assert len(batch.fills) == 40 and batch.funding == ()
    assert [f.time for f in batch.fills] == sorted(f.time for f in batch.fills)
    assert batch.latest == max(f.time for f in batch.fills)


def test_bybit_reads_a_start_alone_as_a_week_and_the_adapter_never_sends_one(
    fake_bybit: FakeBybit, fake_account: FakeAccount
) -> None:
    ex, _ = connect(fake_bybit)
    start = fake_account.market.now
    round_trip(fake_account, ex, "early")
    fake_account.advance(10 * DAY)
    round_trip(fake_account, ex, "late")
    session = fake_bybit.pybit(api_key=FAKE_KEY, api_secret=FAKE_SECRET)

    raw = session.get_executions(category="linear", symbol="BTCUSDT", startTime=ms(start))
    batch = ex.executions("BTCUSDT", start)  # up to Bybit's now

    raw_links = {r["orderLinkId"] for r in raw["result"]["list"]}
    assert raw_links == {order_link_id("early"), order_link_id("early", "x")}  # [start, start+7d]
    links = {f.order_link_id for f in batch.fills}
    assert order_link_id("late") in links and len(batch.fills) == 4
    for call in fake_bybit.calls(EXECUTIONS)[1:]:
        both_times(call)


def test_windows_share_their_boundaries_and_stay_under_seven_days() -> None:
    start = from_ms(0)
    cuts = windows(start, start + 20 * DAY)
    assert len(cuts) == 3 and cuts[0][0] == start and cuts[-1][1] == start + 20 * DAY
    assert all(b - a <= timedelta(days=7) for a, b in cuts)
    assert windows(start, start) == [(start, start)]
    with pytest.raises(ValueError, match="before it starts"):
        windows(start + DAY, start)


def test_every_page_is_read_and_a_repeated_cursor_ends_the_walk(
    fake_bybit: FakeBybit, fake_account: FakeAccount
) -> None:
    ex, _ = connect(fake_bybit)
    start = fake_account.market.now
    for n in range(4):
        round_trip(fake_account, ex, f"p{n}", minutes=1)
    fake_account.page_size = 3
    before = len(fake_bybit.calls(EXECUTIONS))

    assert len(ex.executions("BTCUSDT", start).fills) == 8
    paged = fake_bybit.calls(EXECUTIONS)[before:]
    assert len(paged) == 3 and "cursor" not in paged[0].params
    assert paged[1].params["cursor"] == "page:3"  # sent back exactly as Bybit encoded it

    fake_account.repeat_cursor.add(EXECUTIONS)
    before = len(fake_bybit.calls(EXECUTIONS))
    stuck = ex.executions("BTCUSDT", start)
    assert len(fake_bybit.calls(EXECUTIONS)) - before == 2  # the cursor came back: stop
    assert len(stuck.fills) == 6


def test_the_same_execution_reported_twice_is_one_fill(
    fake_bybit: FakeBybit, fake_account: FakeAccount
) -> None:
    ex, _ = connect(fake_bybit)
    start = fake_account.market.now
    round_trip(fake_account, ex, "twice")
    first = fake_account.executions[0]["execId"]
    fake_account.report_twice(first)
    fake_account.page_size = 2  # the copy lands on another page

    batch = ex.executions("BTCUSDT", start)

    assert [f.exec_id for f in batch.fills].count(first) == 1
    assert len(batch.fills) == 2


def test_funding_rows_are_funding_payments_not_fills(
    fake_bybit: FakeBybit, fake_account: FakeAccount
) -> None:
    ex, _ = connect(fake_bybit)
    start = fake_account.market.now
    ex.place(entry("fund", qty=0.5, price=None, take_profit=None, stop_loss=None))
    fake_account.advance(timedelta(hours=8))
    long_row = fake_account.pay_funding("BTCUSDT", "0.0001", mark="50100")
    fake_account.advance(timedelta(hours=8))
    fake_account.pay_funding("BTCUSDT", "-0.0002", mark="50000")

    batch = ex.executions("BTCUSDT", start)

    assert len(batch.fills) == 1 and batch.fills[0].qty == 0.5
    paid, received = batch.funding
    assert paid.funding_id == long_row["execId"]
    assert paid.amount == pytest.approx(-0.5 * 50_100 * 0.0001)  # a long pays a positive rate
    assert paid.rate == pytest.approx(0.0001) and paid.position_qty == 0.5
    assert paid.position_direction is Direction.LONG and paid.mark_price == 50_100
    assert received.amount == pytest.approx(0.5 * 50_000 * 0.0002)
    assert received.rate == pytest.approx(-0.0002)
    log = ex.funding_from_transaction_log("BTCUSDT", start)
    assert [(f.time, round(f.amount, 8), f.rate) for f in log] == [
        (f.time, round(f.amount, 8), f.rate) for f in batch.funding
    ]


def test_a_short_receives_funding_at_a_positive_rate(
    fake_bybit: FakeBybit, fake_account: FakeAccount
) -> None:
    ex, _ = connect(fake_bybit)
    start = fake_account.market.now
    ex.place(entry("short", side=Side.SELL, price=None, take_profit=None, stop_loss=None))
    fake_account.pay_funding("BTCUSDT", "0.0001")

    (payment,) = ex.executions("BTCUSDT", start).funding

    assert payment.position_direction is Direction.SHORT
    assert payment.amount == pytest.approx(0.01 * 50_000 * 0.0001) and payment.rate > 0


def _partial_tp(account: FakeAccount, ex: Any) -> None:
    ex.place(entry("tp"))
    account.set_price("BTCUSDT", "48900")
    account.advance(timedelta(minutes=30))
    account.set_price("BTCUSDT", "52000")


def _partial_sl(account: FakeAccount, ex: Any) -> None:
    ex.place(entry("sl"))
    account.set_price("BTCUSDT", "48900")
    account.set_price("BTCUSDT", "47950")


def _full(kind: str) -> Any:
    def run(account: FakeAccount, ex: Any) -> None:
        session = ex._session
        session.place_order(
            category="linear",
            symbol="BTCUSDT",
            side="Buy",
            orderType="Market",
            qty="0.01",
            orderLinkId=order_link_id("full"),
            takeProfit="51000",
            stopLoss="49000",
            tpslMode="Full",
        )
        account.set_price("BTCUSDT", "51000" if kind == "tp" else "49000")

    return run


def _trailing(account: FakeAccount, ex: Any) -> None:
    ex.place(entry("trail", price=None, take_profit=None, stop_loss=None))
    ex._session.set_trading_stop(
        category="linear", symbol="BTCUSDT", tpslMode="Full", positionIdx=0, trailingStop="500"
    )
    account.set_price("BTCUSDT", "51000")
    account.set_price("BTCUSDT", "50400")


def _open_then(action: str) -> Any:
    def run(account: FakeAccount, ex: Any) -> None:
        ex.place(entry("sys", price=None, take_profit=None, stop_loss=None))
        getattr(account, action)("BTCUSDT")

    return run


@pytest.mark.parametrize(
    ("scenario", "reason", "linked"),
    [
        (_partial_tp, VenueExit.PARTIAL_TAKE_PROFIT, "tp"),
        (_partial_sl, VenueExit.PARTIAL_STOP_LOSS, "sl"),
        (_full("tp"), VenueExit.TAKE_PROFIT, "full"),
        (_full("sl"), VenueExit.STOP_LOSS, "full"),
        (_trailing, VenueExit.TRAILING_STOP, None),
        (_open_then("liquidate"), VenueExit.LIQUIDATION, None),
        (_open_then("adl"), VenueExit.ADL, None),
        (_open_then("manual_close"), VenueExit.MANUAL, None),
    ],
)
def test_exit_reasons_come_from_the_venues_fields(
    fake_bybit: FakeBybit,
    fake_account: FakeAccount,
    scenario: Any,
    reason: VenueExit,
    linked: str | None,
) -> None:
    ex, _ = connect(fake_bybit)
    start = fake_account.market.now
    scenario(fake_account, ex)

    batch = ex.executions("BTCUSDT", start)

    (exit_fill,) = [f for f in batch.fills if f.is_exit]
    assert exit_fill.reason is reason
    assert exit_fill.order_link_id == ""  # made by the venue, not by us
    expected_parent = order_link_id(linked) if linked else ""
    assert exit_fill.parent_order_link_id == expected_parent  # through parentOrderLinkId
    assert all(f.reason is None for f in batch.fills if not f.is_exit)
    assert ex.positions("BTCUSDT")[0].side is None


def test_closed_pnl_agrees_with_the_fills_and_funding(
    fake_bybit: FakeBybit, fake_account: FakeAccount
) -> None:
    ex, _ = connect(fake_bybit)
    start = fake_account.market.now
    ex.place(entry("pnl", qty=0.02))
    fake_account.fill(order_link_id("pnl"), "49000", "0.005")  # partial entry fills
    fake_account.advance(timedelta(minutes=3))
    fake_account.set_price("BTCUSDT", "48950")
    fake_account.advance(timedelta(hours=8))
    fake_account.pay_funding("BTCUSDT", "0.0001")
    fake_account.set_price("BTCUSDT", "51000")
    fake_account.set_price("BTCUSDT", "52000")

    batch = ex.executions("BTCUSDT", start)
    closed = ex.closed_pnl("BTCUSDT", start)

    entries = [f for f in batch.fills if not f.is_exit]
    assert [f.qty for f in entries] == [0.005, 0.015]
    assert len(closed.rows) == 1 and closed.rows[0].closed_qty == 0.02
    check = check_closed_pnl("BTCUSDT", batch.fills, batch.funding, closed.rows)
    assert check.flat and check.agrees, check.describe()
    tampered = check_closed_pnl("BTCUSDT", batch.fills, (), closed.rows)
    assert not tampered.agrees  # funding left out: the difference is reported


def test_positions_orders_prices_fees_and_balance(
    fake_bybit: FakeBybit, fake_account: FakeAccount
) -> None:
    ex, _ = connect(fake_bybit)
    placed = ex.place(entry("read"))
    ex.place(entry("eth", symbol="ETHUSDT", qty=0.1, price=None, take_profit=None, stop_loss=None))

    (eth,) = ex.positions()
    assert eth.symbol == "ETHUSDT" and eth.side is Side.BUY and eth.qty == 0.1
    assert ex.positions("BTCUSDT")[0].side is None  # a symbol's row, flat
    order = ex.order("BTCUSDT", order_link_id=order_link_id("read"))
    assert order is not None and order.order_id == placed.order_id and order.is_open
    assert (order.price, order.take_profit, order.stop_loss) == (49_000.0, 52_000.0, 48_000.0)
    assert ex.order("BTCUSDT", order_link_id=order_link_id("never")) is None
    assert [o.order_link_id for o in ex.open_orders("BTCUSDT")] == [order_link_id("read")]
    ticker = ex.ticker("BTCUSDT")
    assert ticker.last_price == 50_000 and ticker.time == fake_account.market.now
    fees = ex.fee_rates("BTCUSDT")
    assert (fees.maker, fees.taker) == (0.0002, 0.00055)
    assert ex.balance().wallet_balance == pytest.approx(10_000 - 0.1 * 3000 * 0.00055)
    assert ex.instrument("BTCUSDT").qty_step == 0.001
    assert ex.now() == fake_account.market.now


def test_an_order_that_filled_is_found_in_the_history(
    fake_bybit: FakeBybit, fake_account: FakeAccount
) -> None:
    ex, _ = connect(fake_bybit)
    ex.place(entry("hist"))
    fake_account.set_price("BTCUSDT", "48900")

    order = ex.order("BTCUSDT", order_link_id=order_link_id("hist"))

    assert order is not None and order.status == "Filled" and order.filled_qty == 0.01
    assert [c.path for c in fake_bybit.requests][-2:] == ["/v5/order/realtime", "/v5/order/history"]
