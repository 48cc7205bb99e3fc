"""The fake Bybit server answers in the documented shapes and checks signatures as Bybit does."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pybit.exceptions import FailedRequestError, InvalidRequestError

from tests.fakes.bybit import FakeBybit, Reply, Request, envelope, fixture
from tests.fakes.signing import check_signature, signature

KEY, SECRET = "FAKEAPIKEY0001", "fake-test-secret-0123456789"


def shape(value: Any) -> Any:
    """The keys (recursively) and value types of a JSON document."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def test_kline_reproduces_the_documented_example(fake_bybit: FakeBybit) -> None:
    documented = fixture("kline.json")
    reply = documented["response_example"]
    fake_bybit.market.put_rows("BTCUSD", "60", reply["result"]["list"], category="inverse")
    fake_bybit.market.now_ms = reply["time"]
    query = documented["request_example"]["query"]

    got = fake_bybit.pybit().get_kline(**query)

    assert got["result"]["list"] == reply["result"]["list"]
    assert got["result"] == reply["result"] and got["time"] == reply["time"]
    assert shape(got) == shape(reply)


def test_linear_kline_has_the_documented_shape(fake_bybit: FakeBybit) -> None:
    documented = fixture("kline.json")["linear_response_example"]
    fake_bybit.market.fill("BITUSDT", "60", fake_bybit.market.now, 1, price=0.693, decimals=3)

    got = fake_bybit.pybit().get_kline(category="linear", symbol="BITUSDT", interval=60)

    assert shape(got) == shape(documented)
    assert list(got["result"]) == list(documented["result"])  # key order too


def test_instruments_and_server_time_are_the_documented_replies(fake_bybit: FakeBybit) -> None:
    instruments = fixture("instruments_info.json")["response_example"]
    server_time = fixture("server_time.json")["response_example"]
    fake_bybit.market.now_ms = server_time["time"]
    session = fake_bybit.pybit()

    got = session.get_instruments_info(category="linear", symbol="BTCUSDT")
    now = session.get_server_time()

    assert got["result"] == instruments["result"]
    assert shape(now) == shape(server_time)
    assert now["result"]["timeSecond"] == server_time["result"]["timeSecond"]


def test_documented_signature_vectors() -> None:
    vectors = fixture("auth.json")["computed_test_vectors"]
    assert (vectors["api_key"], vectors["api_secret"]) == (KEY, SECRET)

    for method, payload in (("GET", "queryString"), ("POST", "jsonBodyString")):
        v = vectors[method]
        assert (
            signature(SECRET, v["timestamp"], KEY, v["recv_window"], v[payload])
            == v["hmac_sha256_hex"]
        )


def _headers(timestamp: str, sign: str, key: str = KEY) -> dict[str, str]:
    return {
        "x-bapi-api-key": key,
        "x-bapi-timestamp": timestamp,
        "x-bapi-sign": sign,
        "x-bapi-recv-window": "5000",
    }


def test_signature_check_refuses_as_bybit_does() -> None:
    v = fixture("auth.json")["computed_test_vectors"]["GET"]
    good, now, payload = v["hmac_sha256_hex"], int(v["timestamp"]), v["queryString"]
    keys = {KEY: SECRET}

    signed = _headers(v["timestamp"], good)

    assert check_signature(signed, payload, keys, now + 4999) is None
    refusals = {
        "bad sign": check_signature(_headers(v["timestamp"], "0" * 64), payload, keys, now),
        "other payload": check_signature(signed, payload + "&x=1", keys, now),
        "unknown key": check_signature(_headers(v["timestamp"], good, "OTHER"), payload, keys, now),
        "too old": check_signature(signed, payload, keys, now + 5001),
        "from the future": check_signature(signed, payload, keys, now - 1000),
        "no headers": check_signature({}, payload, keys, now),
    }
    assert {name: (r.code, r.http_status) if r else None for name, r in refusals.items()} == {
        "bad sign": (10004, 200),
        "other payload": (10004, 200),
        "unknown key": (10003, 200),
        "too old": (10002, 200),
        "from the future": (10002, 200),
        "no headers": (401, 401),
    }


def _private_routes(fake: FakeBybit) -> list[Request]:
    """Stub private endpoints (later issues add real ones): they record what they got."""
    seen: list[Request] = []

    def positions(request: Request) -> Reply:
        seen.append(request)
        return envelope({"list": [], "category": "linear", "nextPageCursor": ""}, 0)

    def create(request: Request) -> Reply:
        seen.append(request)
        return envelope({"orderId": "1", "orderLinkId": request.params["orderLinkId"]}, 0)

    fake.route("GET", "/v5/position/list", positions, private=True)
    fake.route("POST", "/v5/order/create", create, private=True)
    fake.api_keys[KEY] = SECRET
    return seen


def test_pybit_signed_requests_pass_the_check(fake_bybit: FakeBybit) -> None:
    seen = _private_routes(fake_bybit)
    session = fake_bybit.pybit(api_key=KEY, api_secret=SECRET)

    positions = session.get_positions(category="linear", symbol="BTCUSDT")
    order = session.place_order(
        category="linear",
        symbol="BTCUSDT",
        side="Buy",
        orderType="Limit",
        qty="0.001",
        price="30000",
        orderLinkId="tw1-abc-e",
    )

    assert positions["retCode"] == 0 and order["result"]["orderLinkId"] == "tw1-abc-e"
    assert [r.method for r in seen] == ["GET", "POST"]
    assert seen[0].raw_query == "category=linear&symbol=BTCUSDT"
    assert json.loads(seen[1].body)["qty"] == "0.001"


def test_a_wrong_secret_or_key_is_refused(fake_bybit: FakeBybit) -> None:
    seen = _private_routes(fake_bybit)
    wrong_secret = fake_bybit.pybit(api_key=KEY, api_secret="not-the-secret")
    wrong_key = fake_bybit.pybit(api_key="OTHERKEY", api_secret=SECRET)

    with pytest.raises(InvalidRequestError) as bad_sign:
        wrong_secret.place_order(
            category="linear",
            symbol="BTCUSDT",
            side="Buy",
            orderType="Market",
            qty="0.001",
            orderLinkId="x",
        )
    with pytest.raises(InvalidRequestError) as bad_key:
        wrong_key.get_positions(category="linear", symbol="BTCUSDT")

    assert (bad_sign.value.status_code, bad_key.value.status_code) == (10004, 10003)
    assert seen == []


def test_unknown_paths_are_404(fake_bybit: FakeBybit) -> None:
    with pytest.raises(FailedRequestError) as missing:
        fake_bybit.pybit().get_tickers(category="linear", symbol="BTCUSDT")

    assert missing.value.status_code == 404
