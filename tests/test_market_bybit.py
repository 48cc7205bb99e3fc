"""The Bybit market adapter, through the real pybit client against the fake Bybit server."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from application.ports import CandleBatch, Gap, MarketUnavailable
from infrastructure.market.bybit import BybitMarket, Retry, bybit_market, bybit_session
from infrastructure.settings import Settings
from tests.fakes.bybit import (
    KLINE,
    FakeBybit,
    Fault,
    Reply,
    Request,
    http_status,
    ms,
    rate_limited,
    ret_code,
    slow,
)

IV = timedelta(minutes=15)
NOW = datetime(2024, 3, 1, 12, 7, 30, tzinfo=UTC)  # the fake's clock: inside the 12:00 bar
FORMING = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def connect(
    fake: FakeBybit, *, attempts: int = 4, timeout: float = 10.0
) -> tuple[BybitMarket, list[float]]:
    """A market on the fake whose backoff sleeps are recorded instead of slept."""
    sleeps: list[float] = []
    retry = Retry(attempts=attempts, sleep=sleeps.append, jitter=lambda: 0.5)
    return BybitMarket(bybit_session(url=fake.url, timeout=timeout), retry=retry), sleeps


def history(fake: FakeBybit, symbol: str = "BTCUSDT", bars: int = 300, seed: int = 0) -> None:
    """``bars`` bars of ``symbol``, the last of them the one forming at the fake's clock."""
    fake.market.fill(symbol, "15", FORMING - (bars - 1) * IV, bars, seed=seed)


def test_the_forming_candle_that_bybit_sends_first_is_dropped(fake_bybit: FakeBybit) -> None:
    history(fake_bybit)
    raw = fake_bybit.pybit().get_kline(category="linear", symbol="BTCUSDT", interval="15", limit=3)
    assert raw["result"]["list"][0][0] == str(ms(FORMING))  # Bybit's list[0]: still forming
    market, _ = connect(fake_bybit)

    batch = market.closed_candles("BTCUSDT", IV, limit=10)

    assert len(batch.candles) == 10
    assert batch.candles[-1].open_time == FORMING - IV
    assert batch.candles[-1].close_time <= NOW
    assert all(c.open_time != FORMING for c in batch.candles)


def test_candles_come_oldest_first_with_bybits_values(fake_bybit: FakeBybit) -> None:
    history(fake_bybit)
    rows = {int(r[0]): r for r in fake_bybit.market.candles[("linear", "BTCUSDT", "15")].values()}
    market, _ = connect(fake_bybit)

    batch = market.closed_candles("BTCUSDT", IV, limit=50)

    times = [c.open_time for c in batch.candles]
    assert times == sorted(times) and len(set(times)) == 50
    assert batch.gaps == ()
    for candle in batch.candles:
        row = rows[ms(candle.open_time)]
        assert [candle.open, candle.high, candle.low, candle.close, candle.volume] == [
            float(v) for v in row[1:6]
        ]
        assert candle.symbol == "BTCUSDT" and candle.interval == IV


def test_end_and_start_bound_the_bars(fake_bybit: FakeBybit) -> None:
    history(fake_bybit)
    market, _ = connect(fake_bybit)
    end = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
    start = datetime(2024, 2, 29, 0, 0, tzinfo=UTC)

    before = market.closed_candles("BTCUSDT", IV, end=end, limit=4)
    after = market.closed_candles("BTCUSDT", IV, start=start, limit=3)
    late = market.closed_candles("BTCUSDT", IV, end=NOW + timedelta(days=1), limit=1)

    assert [c.close_time for c in before.candles] == [end - 3 * IV, end - 2 * IV, end - IV, end]
    assert [c.open_time for c in after.candles] == [start, start + IV, start + 2 * IV]
    assert late.candles[0].open_time == FORMING - IV  # never past the server's time


def test_a_gap_is_reported_not_filled_in(fake_bybit: FakeBybit) -> None:
    history(fake_bybit)
    hole = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
    fake_bybit.market.remove("BTCUSDT", "15", hole, hole + IV)
    market, _ = connect(fake_bybit)

    batch = market.closed_candles("BTCUSDT", IV, limit=20)

    assert batch.gaps == (Gap("BTCUSDT", after=hole, before=hole + 2 * IV),)
    assert batch.gaps[0].missing == 2 * IV
    assert len(batch.candles) == 20
    assert not {hole, hole + IV} & {c.open_time for c in batch.candles}


def test_more_than_1000_bars_are_fetched_page_by_page(fake_bybit: FakeBybit) -> None:
    history(fake_bybit, bars=2600)
    market, _ = connect(fake_bybit)

    latest = market.closed_candles("BTCUSDT", IV, limit=2500)
    first_open = FORMING - 2599 * IV
    earliest = market.closed_candles("BTCUSDT", IV, start=first_open - 5 * IV, limit=2100)

    for batch, first in ((latest, FORMING - 2500 * IV), (earliest, first_open)):
        steps = {b.open_time - a.open_time for a, b in pairwise(batch.candles)}
        assert steps == {IV} and batch.gaps == ()
        assert batch.candles[0].open_time == first
    assert len(latest.candles) == 2500 and latest.candles[-1].open_time == FORMING - IV
    assert len(earliest.candles) == 2100
    limits = [int(r.params["limit"]) for r in fake_bybit.calls(KLINE)]
    assert max(limits) == 1000 and len(limits) >= 6


def test_a_start_before_the_listing_skips_to_it(fake_bybit: FakeBybit) -> None:
    launched = datetime(2020, 3, 30, tzinfo=UTC)  # BTCUSDT's launchTime in the fixture
    fake_bybit.market.fill("BTCUSDT", "15", launched, 5)
    market, _ = connect(fake_bybit)

    batch = market.closed_candles("BTCUSDT", IV, start=datetime(2015, 1, 1, tzinfo=UTC), limit=3)

    assert [c.open_time for c in batch.candles] == [launched, launched + IV, launched + 2 * IV]
    assert len(fake_bybit.calls(KLINE)) == 1


def test_short_history_returns_what_there_is(fake_bybit: FakeBybit) -> None:
    history(fake_bybit, bars=30)
    market, _ = connect(fake_bybit)

    batch = market.closed_candles("BTCUSDT", IV, limit=200)

    assert len(batch.candles) == 29


def _serve_with(fake: FakeBybit, extra: list[str]) -> None:
    """Bybit's kline reply with ``extra`` appended to its list (a custom route)."""

    def kline(request: Request) -> Reply:
        reply = fake.market.kline(request)
        assert isinstance(reply.body, dict)
        reply.body["result"]["list"].append(extra)
        return reply

    fake.route("GET", KLINE, kline)


def test_an_exact_duplicate_row_is_dropped(fake_bybit: FakeBybit) -> None:
    history(fake_bybit)
    duplicate = fake_bybit.market.candles[("linear", "BTCUSDT", "15")][ms(FORMING - 3 * IV)]
    _serve_with(fake_bybit, duplicate)
    market, _ = connect(fake_bybit)

    batch = market.closed_candles("BTCUSDT", IV, limit=5)

    assert [c.open_time for c in batch.candles] == [FORMING - n * IV for n in (5, 4, 3, 2, 1)]


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (["OPEN", "1", "1", "1", "1", "1", "1"], "start time"),
        ([None, "1", "1", "1", "1", "1", "1"], "not a list of strings"),
        (["T", "1", "abc", "1", "1", "1", "1"], "non-number price"),
        (["T", "100", "99", "98", "100", "1", "1"], "high or low inside the open-close range"),
        (["T", "100", "101", "98", "nan", "1", "1"], "not a finite number > 0"),
        (["T", "100", "101", "98", "100", "-1", "1"], "volume"),
        (["T", "1", "1", "1", "1", "1", "1"], "two different bars"),
    ],
)
def test_a_bad_row_refuses_the_symbol_with_one_line(
    fake_bybit: FakeBybit, row: list[str], reason: str
) -> None:
    history(fake_bybit)
    _serve_with(fake_bybit, [str(ms(FORMING - 2 * IV)) if v == "T" else v for v in row])
    market, _ = connect(fake_bybit)

    with pytest.raises(MarketUnavailable) as refused:
        market.closed_candles("BTCUSDT", IV, limit=5)

    message = str(refused.value)
    assert message.startswith("BTCUSDT: Bybit sent") and reason in message
    assert "\n" not in message
    assert len(fake_bybit.calls(KLINE)) == 1  # a bad reply is not retried


FAULTS: dict[str, tuple[Callable[[], Fault], str]] = {
    "retCode 10016": (lambda: ret_code(10016), "retCode 10016: Server error."),
    "10006 in a 200 body": (rate_limited, "rate limited (retCode 10006"),
    "10006 without reset header": (lambda: rate_limited(reset_header=False), "rate limited"),
    "HTTP 403": (lambda: http_status(403), "HTTP 403 (IP rate limit"),
}


@pytest.mark.parametrize("name", FAULTS)
def test_a_failure_is_retried_with_backoff_then_succeeds(fake_bybit: FakeBybit, name: str) -> None:
    fault, _ = FAULTS[name]
    history(fake_bybit)
    fake_bybit.fail(KLINE, fault(), times=2)
    market, sleeps = connect(fake_bybit)

    batch = market.closed_candles("BTCUSDT", IV, limit=5)

    assert len(batch.candles) == 5
    assert len(fake_bybit.calls(KLINE)) == 3
    assert sleeps == [0.375, 0.75]  # base 0.5 s doubling, equal jitter at 0.5


@pytest.mark.parametrize("name", FAULTS)
def test_a_lasting_failure_gives_one_line_naming_symbol_and_cause(
    fake_bybit: FakeBybit, name: str
) -> None:
    fault, cause = FAULTS[name]
    history(fake_bybit)
    fake_bybit.fail(KLINE, fault(), times=None)
    market, sleeps = connect(fake_bybit)

    with pytest.raises(MarketUnavailable) as refused:
        market.closed_candles("BTCUSDT", IV, limit=5)

    message = str(refused.value)
    assert message.startswith("BTCUSDT: Bybit failed after 4 attempts: ")
    assert cause in message and "\n" not in message
    assert len(fake_bybit.calls(KLINE)) == 4 and len(sleeps) == 3


def test_a_slow_reply_times_out_and_is_retried(fake_bybit: FakeBybit) -> None:
    history(fake_bybit)
    fake_bybit.fail(KLINE, slow(60), times=1)
    market, sleeps = connect(fake_bybit, timeout=1.0)

    batch = market.closed_candles("BTCUSDT", IV, limit=5)

    assert len(batch.candles) == 5 and len(sleeps) == 1


def test_a_server_that_stays_slow_gives_one_line(fake_bybit: FakeBybit) -> None:
    history(fake_bybit)
    fake_bybit.fail(KLINE, slow(60), times=None)
    market, _ = connect(fake_bybit, attempts=2, timeout=1.0)

    with pytest.raises(MarketUnavailable) as refused:
        market.closed_candles("BTCUSDT", IV, limit=5)

    assert str(refused.value).startswith("BTCUSDT: Bybit failed after 2 attempts: no reply")


def test_a_refused_symbol_is_not_retried(fake_bybit: FakeBybit) -> None:
    market, sleeps = connect(fake_bybit)

    with pytest.raises(MarketUnavailable) as refused:
        market.closed_candles("NOPEUSDT", IV, limit=5)

    assert str(refused.value) == "NOPEUSDT: Bybit failed: retCode 10001: Not supported symbols"
    assert sleeps == []


def test_one_bad_symbol_never_stops_the_others(fake_bybit: FakeBybit) -> None:
    for seed, symbol in enumerate(("BTCUSDT", "ETHUSDT", "SOLUSDT")):
        history(fake_bybit, symbol, seed=seed)
    fake_bybit.fail(KLINE, ret_code(10016), times=None, symbol="ETHUSDT")
    market, _ = connect(fake_bybit, attempts=2)
    batches: dict[str, CandleBatch] = {}
    problems: dict[str, str] = {}

    for symbol in ("BTCUSDT", "ETHUSDT", "SOLUSDT"):  # what a generator's run does
        try:
            batches[symbol] = market.closed_candles(symbol, IV, limit=5)
        except MarketUnavailable as e:
            problems[symbol] = str(e)

    assert sorted(batches) == ["BTCUSDT", "SOLUSDT"]
    assert all(len(b.candles) == 5 for b in batches.values())
    assert problems == {
        "ETHUSDT": "ETHUSDT: Bybit failed after 2 attempts: retCode 10016: Server error."
    }


def test_unsupported_interval_is_one_line(fake_bybit: FakeBybit) -> None:
    market, _ = connect(fake_bybit)

    with pytest.raises(MarketUnavailable, match=r"^BTCUSDT: Bybit has no 0:07:00 candles"):
        market.closed_candles("BTCUSDT", timedelta(minutes=7))


def test_instruments_are_parsed_and_cached(fake_bybit: FakeBybit) -> None:
    market, _ = connect(fake_bybit)

    btc = market.instrument("BTCUSDT")
    sol = market.instrument("SOLUSDT")
    again = market.instrument("BTCUSDT")

    assert (btc.tick_size, btc.qty_step, btc.min_order_qty, btc.min_notional) == (
        0.1,
        0.001,
        0.001,
        5.0,
    )
    assert btc.max_order_qty == 500.0  # the market-order maximum, the smaller of the two
    assert (sol.tick_size, sol.qty_step, sol.min_order_qty) == (0.01, 0.1, 0.1)
    assert again is btc
    assert len(fake_bybit.calls("/v5/market/instruments-info")) == 2


def test_rounding_follows_the_instrument(fake_bybit: FakeBybit) -> None:
    market, _ = connect(fake_bybit)
    btc = market.instrument("BTCUSDT")

    assert btc.round_price(50_000.06) == 50_000.1
    assert btc.floor_price(50_000.19) == 50_000.1
    assert btc.ceil_price(50_000.11) == 50_000.2
    assert btc.floor_qty(0.0199) == 0.019
    assert btc.size_problem(0.019, 50_000) is None
    assert "below the minimum 0.001" in (btc.size_problem(0.0009, 50_000) or "")
    assert "order value 4 is below the minimum 5" in (btc.size_problem(0.001, 4_000) or "")


def test_an_unknown_instrument_is_one_line(fake_bybit: FakeBybit) -> None:
    market, _ = connect(fake_bybit)

    with pytest.raises(MarketUnavailable) as refused:
        market.instrument("NOPEUSDT")

    assert str(refused.value) == "NOPEUSDT: Bybit sent no linear instrument named NOPEUSDT"


def test_now_is_the_servers_time(fake_bybit: FakeBybit) -> None:
    market, _ = connect(fake_bybit)
    fake_bybit.market.now = NOW + timedelta(seconds=1.25)

    assert market.now() == NOW + timedelta(seconds=1.25)


def test_server_time_failures_are_one_line(fake_bybit: FakeBybit) -> None:
    fake_bybit.fail("/v5/market/time", Fault(Reply("<html>oops</html>")), times=None)
    market, _ = connect(fake_bybit, attempts=2)

    with pytest.raises(MarketUnavailable) as refused:
        market.closed_candles("BTCUSDT", IV)

    assert str(refused.value) == "BTCUSDT: Bybit failed after 2 attempts: a reply that is not JSON"


def test_backoff_is_bounded_exponential_with_jitter() -> None:
    low = Retry(base_delay=0.5, max_delay=8.0, jitter=lambda: 0.0)
    high = Retry(base_delay=0.5, max_delay=8.0, jitter=lambda: 0.999)

    assert [low.delay(n) for n in range(1, 7)] == [0.25, 0.5, 1.0, 2.0, 4.0, 4.0]
    assert all(high.delay(n) < 2 * low.delay(n) for n in range(1, 7))  # at most the full step
    assert high.delay(9) < 8.0


def test_settings_pick_the_bybit_host(fake_bybit: FakeBybit) -> None:
    assert bybit_market(Settings()).endpoint == "https://api.bybit.com"
    assert bybit_market(Settings(bybit_testnet=True)).endpoint == "https://api-testnet.bybit.com"
    assert bybit_market(Settings(bybit_demo=True)).endpoint == "https://api.bybit.com"
    history(fake_bybit)
    market = bybit_market(Settings(bybit_url=fake_bybit.url + "/", bybit_timeout=5))

    assert market.endpoint == fake_bybit.url
    assert len(market.closed_candles("BTCUSDT", IV, limit=3).candles) == 3
