"""The fake Bybit account answers as Bybit documents it: shapes, time windows, paging rules,
signatures and the "not modified" codes (raw pybit calls, no adapter in between)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pybit.exceptions import FailedRequestError, InvalidRequestError
from pybit.unified_trading import HTTP

from tests.conftest import FAKE_KEY, FAKE_SECRET
from tests.fakes.bybit import FakeBybit, fixture
from tests.fakes.bybit_account import FakeAccount

DAY_MS = 86_400_000


@pytest.fixture
def session(fake_bybit: FakeBybit, fake_account: FakeAccount) -> HTTP:
    return fake_bybit.pybit(api_key=FAKE_KEY, api_secret=FAKE_SECRET)


def documented_keys(name: str, *path: str | int) -> set[str]:
    node: Any = fixture(name)
    for step in path:
        node = node[step]
    return set(node)


def buy_and_close(session: HTTP, account: FakeAccount, link: str) -> None:
    session.place_order(
        category="linear",
        symbol="BTCUSDT",
        side="Buy",
        orderType="Market",
        qty="0.01",
        orderLinkId=link,
    )
    account.advance(timedelta(minutes=1))
    account.manual_close("BTCUSDT")


def test_rows_carry_the_documented_fields(session: HTTP, fake_account: FakeAccount) -> None:
    session.place_order(
        category="linear",
        symbol="BTCUSDT",
        side="Buy",
        orderType="Limit",
        qty="0.01",
        price="49000",
        orderLinkId="shape-1",
        takeProfit="52000",
        stopLoss="48000",
    )
    fake_account.set_price("BTCUSDT", "48900")
    fake_account.pay_funding("BTCUSDT", "0.0001")
    fake_account.manual_close("BTCUSDT")

    rows = session.get_executions(category="linear", symbol="BTCUSDT")["result"]["list"]
    trade = next(r for r in rows if r["execType"] == "Trade")
    funding = next(r for r in rows if r["execType"] == "Funding")
    example = ("execution_list.json", "response_example", "result", "list", 0)
    assert documented_keys(*example) <= set(trade)
    funding_example = documented_keys(
        "execution_list.json", "funding_row_example", "response_example", "result", "list", 0
    )
    assert funding_example <= set(funding)
    assert funding["execQty"] == "0.01" and funding["orderType"] == "UNKNOWN"  # the position size
    closed = session.get_closed_pnl(category="linear", symbol="BTCUSDT")["result"]["list"][0]
    assert documented_keys("closed_pnl.json", "response_example", "result", "list", 0) <= set(
        closed
    )
    history = session.get_order_history(category="linear", symbol="BTCUSDT")["result"]["list"]
    assert documented_keys("order_history.json", "response_example", "result", "list", 0) <= set(
        history[0]
    )
    position = session.get_positions(category="linear", symbol="BTCUSDT")["result"]["list"][0]
    linear = (
        "position_list.json",
        "historical_linear_example",
        "response_example",
        "result",
        "list",
        0,
    )
    assert documented_keys(*linear) <= set(position)
    assert position["size"] == "0" and position["side"] == ""  # a flat symbol still has a row
    log = session.get_transaction_log(accountType="UNIFIED", category="linear", currency="USDT")
    assert documented_keys("transaction_log.json", "response_example", "result", "list", 0) <= set(
        log["result"]["list"][0]
    )
    wallet = session.get_wallet_balance(accountType="UNIFIED")["result"]["list"][0]
    assert documented_keys("wallet_balance.json", "response_example", "result", "list", 0) <= set(
        wallet
    )
    ticker = session.get_tickers(category="linear", symbol="BTCUSDT")["result"]["list"][0]
    assert documented_keys("tickers.json", "response_example", "result", "list", 0) <= set(ticker)
    fee = session.get_fee_rates(category="linear", symbol="BTCUSDT")["result"]["list"][0]
    assert documented_keys("fee_rate.json", "response_example", "result", "list", 0) == set(fee)


@pytest.mark.parametrize("path", ["execution", "closed_pnl", "order_history"])
def test_the_seven_day_window_rules(session: HTTP, fake_account: FakeAccount, path: str) -> None:
    start = fake_account.now_ms
    buy_and_close(session, fake_account, "w-day0")
    fake_account.advance(timedelta(days=10))
    buy_and_close(session, fake_account, "w-day10")
    now = fake_account.now_ms
    call = {
        "execution": session.get_executions,
        "closed_pnl": session.get_closed_pnl,
        "order_history": session.get_order_history,
    }[path]

    def count(**times: int) -> int:
        return len(call(category="linear", symbol="BTCUSDT", **times)["result"]["list"])

    per_trade = count(startTime=start, endTime=start + 6 * DAY_MS)
    assert per_trade in (1, 2)
    assert count() == per_trade  # no times: the last 7 days
    assert count(startTime=start) == per_trade  # only a start: [start, start + 7 d]
    assert count(endTime=start + DAY_MS) == per_trade  # only an end: [end - 7 d, end]
    assert count(endTime=now) == per_trade
    with pytest.raises(InvalidRequestError) as too_wide:
        count(startTime=start, endTime=now)
    assert too_wide.value.status_code == 10001 and "7 days" in too_wide.value.message


def test_the_transaction_log_defaults_to_a_day(session: HTTP, fake_account: FakeAccount) -> None:
    start = fake_account.now_ms
    buy_and_close(session, fake_account, "log-0")
    fake_account.advance(timedelta(days=2))

    def rows(**times: int) -> list[dict[str, Any]]:
        reply = session.get_transaction_log(accountType="UNIFIED", **times)
        result: list[dict[str, Any]] = reply["result"]["list"]
        return result

    assert rows() == []
    assert len(rows(startTime=start)) == 2 and rows(startTime=start + 2 * DAY_MS) == []
    assert len(rows(startTime=start, endTime=start + 7 * DAY_MS)) == 2


def test_paging_by_cursor(session: HTTP, fake_account: FakeAccount) -> None:
    for n in range(3):
        buy_and_close(session, fake_account, f"pg-{n}")
    fake_account.page_size = 4

    first = session.get_executions(category="linear", symbol="BTCUSDT")["result"]
    second = session.get_executions(
        category="linear", symbol="BTCUSDT", cursor=first["nextPageCursor"]
    )["result"]

    assert first["nextPageCursor"] == "page%3A4" and len(first["list"]) == 4
    assert second["nextPageCursor"] == "" and len(second["list"]) == 2
    ids = [r["execId"] for r in first["list"] + second["list"]]
    assert len(set(ids)) == 6
    times = [int(r["execTime"]) for r in first["list"] + second["list"]]
    assert times == sorted(times, reverse=True)  # newest first
    with pytest.raises(InvalidRequestError, match="limit"):
        session.get_executions(category="linear", symbol="BTCUSDT", limit=101)


def test_private_requests_must_be_signed(fake_bybit: FakeBybit, fake_account: FakeAccount) -> None:
    unsigned = fake_bybit.pybit()
    unsigned.api_key, unsigned.api_secret = FAKE_KEY, "another-secret"
    with pytest.raises(InvalidRequestError) as bad_sign:
        unsigned.get_positions(category="linear", symbol="BTCUSDT")
    assert bad_sign.value.status_code == 10004
    bare = fake_bybit.pybit()
    with pytest.raises(FailedRequestError) as no_headers:
        bare._submit_request(
            method="GET",
            path=f"{fake_bybit.url}/v5/position/list",
            query={"category": "linear", "symbol": "BTCUSDT"},
            auth=False,
        )
    assert no_headers.value.status_code == 401


def test_not_modified_answers(session: HTTP) -> None:
    with pytest.raises(InvalidRequestError) as same_leverage:
        session.set_leverage(
            category="linear", symbol="BTCUSDT", buyLeverage="10", sellLeverage="10"
        )
    with pytest.raises(InvalidRequestError) as same_mode:
        session.switch_position_mode(category="linear", symbol="BTCUSDT", mode=0)
    assert (same_leverage.value.status_code, same_mode.value.status_code) == (110043, 110025)
    reply = session.set_leverage(
        category="linear", symbol="BTCUSDT", buyLeverage="5", sellLeverage="5"
    )
    assert reply["result"] == fixture("set_leverage.json")["response_example"]["result"]


def test_an_order_link_id_is_unique_for_ever(session: HTTP, fake_account: FakeAccount) -> None:
    kwargs = {
        "category": "linear",
        "symbol": "BTCUSDT",
        "side": "Buy",
        "orderType": "Limit",
        "qty": "0.01",
        "price": "40000",
        "orderLinkId": "once",
    }
    placed = session.place_order(**kwargs)["result"]
    session.cancel_order(category="linear", symbol="BTCUSDT", orderLinkId="once")

    with pytest.raises(InvalidRequestError) as duplicate:
        session.place_order(**kwargs)

    assert duplicate.value.status_code == 110072
    assert set(placed) == documented_keys("place_order.json", "response_example", "result")
    fake_account.advance(timedelta(hours=25))
    gone = session.get_order_history(category="linear", symbol="BTCUSDT")["result"]["list"]
    assert gone == []  # a cancelled order with no fill is kept 24 hours


def test_cancel_all_stop_orders_and_amend(session: HTTP, fake_account: FakeAccount) -> None:
    session.place_order(
        category="linear",
        symbol="BTCUSDT",
        side="Buy",
        orderType="Market",
        qty="0.01",
        orderLinkId="ca-1",
        takeProfit="52000",
        stopLoss="48000",
        tpslMode="Partial",
        tpOrderType="Limit",
        tpLimitPrice="52000",
    )
    session.place_order(
        category="linear",
        symbol="BTCUSDT",
        side="Buy",
        orderType="Limit",
        qty="0.01",
        price="40000",
        orderLinkId="ca-2",
    )
    session.amend_order(category="linear", symbol="BTCUSDT", orderLinkId="ca-2", price="41000")

    cancelled = session.cancel_all_orders(
        category="linear", symbol="BTCUSDT", orderFilter="StopOrder"
    )

    assert len(cancelled["result"]["list"]) == 2 and cancelled["result"]["success"] == "1"
    still = session.get_open_orders(category="linear", symbol="BTCUSDT")["result"]["list"]
    assert [(o["orderLinkId"], o["price"]) for o in still] == [("ca-2", "41000")]
