"""Placing, finding and cancelling orders on Bybit through pybit against the fake server:
the exact request, idempotence under the orderLinkId, clear one-line errors, no secret."""

from __future__ import annotations

import json

import pytest

from application.ports import (
    CancelOutcome,
    ExchangeAuthFailed,
    ExchangeError,
    ExchangeUnavailable,
    OrderRejected,
    PlacementStatus,
)
from domain.venue import OrderRequest, Side
from domain.venue_rules import order_link_id
from infrastructure.exchange.bybit import bybit_exchange
from infrastructure.exchange.bybit_wire import Credentials, place_order_params
from infrastructure.settings import Settings
from tests.bybit_helpers import CREATE, connect, entry
from tests.conftest import FAKE_KEY, FAKE_SECRET
from tests.fakes.bybit import FakeBybit, http_status, rate_limited, ret_code, slow_after
from tests.fakes.bybit_account import FakeAccount

LINK = order_link_id("sig-1")


def orders_under(account: FakeAccount, link: str) -> int:
    return sum(1 for o in account.orders.values() if o.order_link_id == link)


def test_placement_sends_exactly_the_documented_parameters(
    fake_bybit: FakeBybit, fake_account: FakeAccount
) -> None:
    ex, _ = connect(fake_bybit)

    placed = ex.place(entry())

    (call,) = fake_bybit.calls(CREATE)
    expected = {
        "category": "linear",
        "symbol": "BTCUSDT",
        "side": "Buy",
        "orderType": "Limit",
        "qty": "0.01",
        "price": "49000",
        "timeInForce": "GTC",
        "positionIdx": 0,
        "orderLinkId": LINK,
        "takeProfit": "52000",
        "stopLoss": "48000",
        "tpslMode": "Partial",
        "tpOrderType": "Limit",
        "tpLimitPrice": "52000",
        "slOrderType": "Market",
    }
    assert call.params == expected
    assert list(json.loads(call.body)) == list(expected)  # the body pybit signed, in order
    assert placed.status is PlacementStatus.PLACED and placed.attempts == 1
    assert placed.order_id == fake_account.orders[placed.order_id].order_id
    assert place_order_params(entry()) == expected


def test_the_attached_take_profit_and_stop_loss_are_found_after_the_fill(
    fake_bybit: FakeBybit, fake_account: FakeAccount
) -> None:
    ex, _ = connect(fake_bybit)
    ex.place(entry(qty=0.02))
    assert ex.attached_stops("BTCUSDT", LINK).take_profits == ()  # nothing filled yet
    fake_account.fill(LINK, "49000", "0.005")

    stops = ex.attached_stops("BTCUSDT", LINK)

    (tp,), (sl,) = stops.take_profits, stops.stop_losses
    assert tp.stop_order_type == "PartialTakeProfit" and tp.order_type == "Limit"
    assert (tp.trigger_price, tp.price, tp.qty) == (52_000.0, 52_000.0, 0.005)
    assert sl.stop_order_type == "PartialStopLoss" and sl.order_type == "Market"
    assert (sl.trigger_price, sl.qty) == (48_000.0, 0.005)
    assert tp.parent_order_link_id == sl.parent_order_link_id == LINK
    assert tp.order_link_id == "" and stops.protected
    assert fake_bybit.calls("/v5/order/realtime")[-1].params["orderFilter"] == "StopOrder"


def test_a_timeout_after_the_order_was_accepted_leaves_exactly_one_order(
    fake_bybit: FakeBybit, fake_account: FakeAccount
) -> None:
    ex, sleeps = connect(fake_bybit, timeout=0.5)
    fake_bybit.fail(CREATE, slow_after(5), times=1)

    placed = ex.place(entry())

    assert placed.status is PlacementStatus.ALREADY_PLACED
    assert orders_under(fake_account, LINK) == 1
    assert placed.order_id == next(iter(fake_account.orders))
    assert len(fake_bybit.calls(CREATE)) == 1  # found by orderLinkId: never re-sent
    lookup = fake_bybit.calls("/v5/order/realtime")[-1].params
    assert lookup["orderLinkId"] == LINK and len(sleeps) == 1


def test_when_the_lookup_fails_too_the_resend_uses_the_same_id_and_is_told_placed(
    fake_bybit: FakeBybit, fake_account: FakeAccount
) -> None:
    ex, _ = connect(fake_bybit, timeout=0.5)
    fake_bybit.fail(CREATE, slow_after(5), times=1)
    fake_bybit.fail("/v5/order/realtime", ret_code(10016), times=3)
    fake_bybit.fail("/v5/order/history", ret_code(10016), times=3)

    placed = ex.place(entry())

    sent = fake_bybit.calls(CREATE)
    assert len(sent) == 2 and {c.params["orderLinkId"] for c in sent} == {LINK}
    assert placed.status is PlacementStatus.ALREADY_PLACED  # 110072 on the re-send
    assert orders_under(fake_account, LINK) == 1


def test_a_duplicate_order_link_id_means_already_placed(
    fake_bybit: FakeBybit, fake_account: FakeAccount
) -> None:
    ex, _ = connect(fake_bybit)
    first = ex.place(entry())

    again = ex.place(entry())

    assert again.status is PlacementStatus.ALREADY_PLACED and again.order_id == first.order_id
    assert orders_under(fake_account, LINK) == 1
    fake_bybit.fail(CREATE, ret_code(110072), times=1)
    other = order_link_id("sig-2")
    scripted = ex.place(entry("sig-2"))
    assert scripted.status is PlacementStatus.ALREADY_PLACED and scripted.order_id == ""
    assert orders_under(fake_account, other) == 0  # the scripted answer placed nothing


@pytest.mark.parametrize(
    ("request_", "fault", "code", "words"),
    [
        (entry(qty=50.0), None, 110007, "available balance is insufficient"),
        (entry(qty=0.0004), None, 110017, "quantity rounds to zero"),
        (
            entry(price=1000.0, take_profit=1100.0, stop_loss=900.0, qty=0.001),
            None,
            110094,
            "below the symbol's minimum notional",
        ),
        (entry(), ret_code(110012), 110012, "available balance is insufficient"),
    ],
)
def test_a_refused_order_is_a_one_line_error_and_nothing_is_placed(
    fake_bybit: FakeBybit,
    fake_account: FakeAccount,
    request_: OrderRequest,
    fault: object,
    code: int,
    words: str,
) -> None:
    ex, sleeps = connect(fake_bybit)
    if fault is not None:
        fake_bybit.fail(CREATE, fault, times=1)  # type: ignore[arg-type]

    with pytest.raises(OrderRejected) as refused:
        ex.place(request_)

    message = str(refused.value)
    assert refused.value.code == code and f"retCode {code}" in message
    assert words in message and "\n" not in message and message.startswith("BTCUSDT order tw1-")
    assert fake_account.orders == {} and sleeps == []  # not retried


def test_a_rate_limit_is_retried_then_a_one_line_error(
    fake_bybit: FakeBybit, fake_account: FakeAccount
) -> None:
    ex, sleeps = connect(fake_bybit, attempts=3)
    fake_bybit.fail(CREATE, rate_limited(), times=None)

    with pytest.raises(ExchangeUnavailable) as busy:
        ex.place(entry())

    message = str(busy.value)
    assert busy.value.code == 10006 and "rate limited" in message and "\n" not in message
    assert "after 3 attempts" in message and len(sleeps) == 2
    assert len(fake_bybit.calls(CREATE)) == 3 and fake_account.orders == {}
    assert "may or may not" not in message  # a rate limit is a refusal, not ambiguity


def test_a_rate_limit_then_success_places_once(
    fake_bybit: FakeBybit, fake_account: FakeAccount
) -> None:
    ex, sleeps = connect(fake_bybit)
    fake_bybit.fail(CREATE, rate_limited(reset_header=False), times=1)

    placed = ex.place(entry())

    assert placed.status is PlacementStatus.PLACED and placed.attempts == 2
    assert orders_under(fake_account, LINK) == 1 and len(sleeps) == 1


def test_no_definite_answer_says_placing_again_is_safe(
    fake_bybit: FakeBybit, fake_account: FakeAccount
) -> None:
    ex, _ = connect(fake_bybit, attempts=2)
    fake_bybit.fail(CREATE, http_status(502), times=None)

    with pytest.raises(ExchangeUnavailable, match="placing it again is safe"):
        ex.place(entry())
    assert fake_account.orders == {}


def test_cancel_an_open_order_then_there_is_nothing_to_cancel(
    fake_bybit: FakeBybit, fake_account: FakeAccount
) -> None:
    ex, _ = connect(fake_bybit)
    first = ex.place(entry())

    assert ex.cancel("BTCUSDT", LINK) is CancelOutcome.CANCELLED
    assert ex.cancel("BTCUSDT", LINK) is CancelOutcome.NOT_OPEN
    order = ex.order("BTCUSDT", order_link_id=LINK)
    assert order is not None and order.status == "Cancelled" and not order.is_open
    # Bybit never reuses an id: placing under it again finds the cancelled order (so a
    # second entry for the signal takes another leg, order_link_id(signal, "e2"))
    again = ex.place(OrderRequest("BTCUSDT", Side.BUY, 0.01, LINK, price=49_000.0))
    assert again.status is PlacementStatus.ALREADY_PLACED and again.order_id == first.order_id
    assert orders_under(fake_account, LINK) == 1
    fake_bybit.fail("/v5/order/cancel", ret_code(10016), times=None)
    with pytest.raises(ExchangeError, match="after 3 attempts: retCode 10016"):
        ex.cancel("BTCUSDT", LINK)


def test_leverage_and_position_mode_already_so_are_fine(
    fake_bybit: FakeBybit, fake_account: FakeAccount
) -> None:
    ex, _ = connect(fake_bybit)

    ex.set_leverage("BTCUSDT", 10)  # 110043: not modified
    ex.set_leverage("BTCUSDT", 5)
    ex.use_one_way_mode("BTCUSDT")  # 110025: not modified

    assert str(fake_account.leverage["BTCUSDT"]) == "5"
    answers = [c.path for c in fake_bybit.calls("/v5/position/set-leverage")]
    assert len(answers) == 2
    with pytest.raises(OrderRejected, match="retCode 110017"):
        ex.place(entry(qty=0.0001))


def test_no_secret_in_messages_reprs_or_requests(
    fake_bybit: FakeBybit, fake_account: FakeAccount
) -> None:
    ex, _ = connect(fake_bybit, secret="wrong-secret-" + "x" * 20)
    with pytest.raises(ExchangeAuthFailed) as refused:
        ex.place(entry())
    with pytest.raises(ExchangeAuthFailed) as unread:
        ex.positions("BTCUSDT")
    keys = Credentials(FAKE_KEY, FAKE_SECRET)
    settings = Settings(bybit_url=fake_bybit.url)
    good = bybit_exchange(settings, keys)
    fake_bybit.fail("/v5/position/list", ret_code(10005, f"denied for {FAKE_KEY}"), times=1)
    with pytest.raises(ExchangeAuthFailed) as denied:
        good.positions("BTCUSDT")

    shown = [
        str(refused.value),
        str(unread.value),
        str(denied.value),
        repr(ex),
        repr(good),
        repr(keys),
    ]
    for text in shown:
        assert FAKE_SECRET not in text and "wrong-secret" not in text and FAKE_KEY not in text
    assert "retCode 10004" in shown[0] and "BYBIT_API_SECRET" in shown[0]
    assert "***" in shown[2] and "permission" in shown[2]
    assert all(FAKE_SECRET not in r.raw_query + r.body.decode() for r in fake_bybit.requests)


def test_keys_come_from_the_environment_only() -> None:
    keys = Credentials.from_env({"BYBIT_API_KEY": FAKE_KEY, "BYBIT_API_SECRET": FAKE_SECRET})
    assert (keys.api_key, keys.api_secret) == (FAKE_KEY, FAKE_SECRET)
    with pytest.raises(ExchangeAuthFailed, match="set BYBIT_API_KEY and BYBIT_API_SECRET"):
        Credentials.from_env({"BYBIT_API_KEY": FAKE_KEY})
    with pytest.raises(ExchangeAuthFailed, match="not a printable key"):
        Credentials(FAKE_KEY, "bad\nsecret")
