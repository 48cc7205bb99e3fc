"""The synthetic market: deterministic, consistent across ranges and intervals, valid bars,
only closed bars, realistic levels, and learnable but noisy structure."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from application.ports import MarketUnavailable
from domain.features import FEATURES, Ohlcv, atr, feature_matrix
from domain.labels import LabelSpec, trade_wins
from infrastructure.market.synthetic import LAUNCH, PROFILES, SyntheticMarket

M15 = timedelta(minutes=15)


@dataclass
class Clock:
    moment: datetime

    def now(self) -> datetime:
        return self.moment


def market(now: datetime, seed: int = 7) -> SyntheticMarket:
    return SyntheticMarket(Clock(now), seed=seed)


NOW = datetime(2024, 3, 1, 10, 7, 30, tzinfo=UTC)


def test_the_same_seed_gives_the_same_bars_and_another_seed_others() -> None:
    a = market(NOW).closed_candles("BTCUSDT", M15, limit=300)
    b = market(NOW).closed_candles("BTCUSDT", M15, limit=300)
    other = market(NOW, seed=8).closed_candles("BTCUSDT", M15, limit=300)
    assert a == b
    assert [c.close for c in a.candles] != [c.close for c in other.candles]


def test_a_bar_is_the_same_whatever_range_is_asked() -> None:
    m = market(NOW)
    whole = m.ohlcv("ETHUSDT", M15, start=datetime(2024, 2, 1, tzinfo=UTC), limit=None)
    head = m.ohlcv("ETHUSDT", M15, start=datetime(2024, 2, 10, 3, tzinfo=UTC), limit=500)
    at = int(np.searchsorted(whole.open_time, head.open_time[0]))
    for name in ("open_time", "open", "high", "low", "close", "volume"):
        assert np.array_equal(getattr(whole, name)[at : at + 500], getattr(head, name))
    # A fresh market with a later clock (a catch-up) agrees on the bars both can see.
    later = market(NOW + timedelta(days=5)).ohlcv(
        "ETHUSDT", M15, end=datetime(2024, 2, 10, 3, tzinfo=UTC) + 500 * M15, limit=500
    )
    assert np.array_equal(later.close, head.close)
    assert np.array_equal(later.open_time, head.open_time)


def test_a_longer_interval_aggregates_the_shorter_one() -> None:
    m = market(NOW)
    start = datetime(2024, 2, 20, tzinfo=UTC)
    quarter = m.ohlcv("SOLUSDT", M15, start=start, limit=96)
    hour = m.ohlcv("SOLUSDT", timedelta(hours=1), start=start, limit=24)
    grouped = [slice(4 * i, 4 * i + 4) for i in range(24)]
    assert np.array_equal(hour.open, [quarter.open[g][0] for g in grouped])
    assert np.array_equal(hour.close, [quarter.close[g][-1] for g in grouped])
    assert np.array_equal(hour.high, [quarter.high[g].max() for g in grouped])
    assert np.array_equal(hour.low, [quarter.low[g].min() for g in grouped])
    lot = PROFILES["SOLUSDT"].instrument.qty_step
    summed = np.array([quarter.volume[g].sum() for g in grouped])
    assert np.all(np.abs(hour.volume - summed) <= 2 * lot + 1e-9)


def test_only_bars_closed_by_the_clock_exist() -> None:
    clock = Clock(datetime(2024, 3, 1, 10, 7, 30, tzinfo=UTC))
    m = SyntheticMarket(clock)
    batch = m.closed_candles("BTCUSDT", M15, limit=10)
    assert batch.candles[-1].open_time == datetime(2024, 3, 1, 9, 45, tzinfo=UTC)
    assert batch.candles[-1].close_time <= clock.now()
    assert m.now() == clock.now()
    clock.moment = datetime(2024, 3, 1, 10, 15, tzinfo=UTC)
    moved = m.closed_candles("BTCUSDT", M15, limit=10)
    assert moved.candles[-1].open_time == datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
    assert moved.candles[:-1] == batch.candles[1:]
    future = m.closed_candles("BTCUSDT", M15, start=clock.now(), limit=10)
    assert future.candles == ()


def test_start_end_and_limit_select_bars_as_the_port_says() -> None:
    m = market(NOW)
    start = datetime(2024, 2, 1, 0, 7, tzinfo=UTC)
    first = m.closed_candles("BTCUSDT", M15, start=start, limit=3)
    assert [c.open_time for c in first.candles] == [
        datetime(2024, 2, 1, 0, 15, tzinfo=UTC) + i * M15 for i in range(3)
    ]
    end = datetime(2024, 2, 1, 12, 0, tzinfo=UTC)
    last = m.closed_candles("BTCUSDT", M15, end=end, limit=4)
    assert last.candles[-1].close_time == end
    assert len(last.candles) == 4
    assert last.gaps == ()
    before_launch = m.closed_candles("BTCUSDT", M15, start=LAUNCH - timedelta(days=3), limit=5)
    assert before_launch.candles[0].open_time == LAUNCH


@pytest.mark.parametrize("symbol", sorted(PROFILES))
def test_every_bar_is_valid_and_on_the_instrument_grid(symbol: str) -> None:
    m = market(datetime(2024, 2, 15, tzinfo=UTC))
    batch = m.closed_candles(symbol, M15, start=datetime(2024, 1, 1, tzinfo=UTC), limit=4000)
    minutes = m.closed_candles(symbol, timedelta(minutes=1), limit=1440)
    instrument = m.instrument(symbol)
    assert len(batch.candles) == 4000
    for candle in (*batch.candles, *minutes.candles):
        assert candle.problem() is None
        assert candle.symbol == symbol
        for price in (candle.open, candle.high, candle.low, candle.close):
            assert math.isclose(price / instrument.tick_size, round(price / instrument.tick_size))
        assert math.isclose(
            candle.volume / instrument.qty_step, round(candle.volume / instrument.qty_step)
        )
    steps = {
        b.open_time - a.open_time
        for a, b in zip(batch.candles[:-1], batch.candles[1:], strict=True)
    }
    assert steps == {M15}


def test_instruments_carry_bybits_rules() -> None:
    m = market(NOW)
    btc = m.instrument("BTCUSDT")
    assert (btc.tick_size, btc.qty_step, btc.min_order_qty, btc.min_notional) == (
        0.1,
        0.001,
        0.001,
        5.0,
    )
    assert m.instrument("ETHUSDT").tick_size == 0.01
    assert m.instrument("SOLUSDT").qty_step == 0.1
    assert m.symbols == ("BTCUSDT", "ETHUSDT", "SOLUSDT")


def test_bad_requests_are_one_line_refusals() -> None:
    m = market(NOW)
    with pytest.raises(MarketUnavailable, match="no symbol 'DOGEUSDT'"):
        m.closed_candles("DOGEUSDT", M15)
    with pytest.raises(MarketUnavailable, match="whole minutes"):
        m.closed_candles("BTCUSDT", timedelta(seconds=90))
    with pytest.raises(MarketUnavailable, match="at least 1"):
        m.closed_candles("BTCUSDT", M15, limit=0)
    with pytest.raises(MarketUnavailable, match="time zone"):
        m.closed_candles("BTCUSDT", M15, start=datetime(2024, 2, 1))


def _year(symbol: str) -> Ohlcv:
    m = market(datetime(2024, 7, 1, tzinfo=UTC))
    return m.ohlcv(symbol, M15, start=datetime(2024, 1, 1, tzinfo=UTC), limit=None)


@pytest.mark.parametrize("symbol", sorted(PROFILES))
def test_levels_and_volatility_look_like_the_symbol(symbol: str) -> None:
    bars = _year(symbol)
    anchor = PROFILES[symbol].anchor_price
    assert anchor / 2 < bars.close.min() and bars.close.max() < anchor * 2
    daily = np.diff(np.log(bars.close[::96]))
    assert 0.01 < daily.std() < 0.06
    bar_moves = np.diff(np.log(bars.close))
    # Fat tails: far more 5-sigma bars than a normal distribution's 6 in ten million.
    assert np.mean(np.abs(bar_moves) > 5 * bar_moves.std()) > 1e-3


def test_volume_spikes_come_with_both_wins_and_losses() -> None:
    bars = _year("BTCUSDT")
    x = feature_matrix(bars)
    volume_ratio = x[:, FEATURES.index("volume_ratio")]
    spikes = volume_ratio >= 2.0
    per_day = spikes.sum() / (len(bars) / 96)
    assert 1.0 < per_day < 8.0
    side = np.sign(x[:, FEATURES.index("ret_1")])
    a = atr(bars.high, bars.low, bars.close)
    wins = np.where(
        side > 0, trade_wins(bars, a, 1, LabelSpec()), trade_wins(bars, a, -1, LabelSpec())
    )
    spike_wins = wins[spikes & ~np.isnan(wins)]
    base = wins[~np.isnan(wins)]
    # Following a spike beats a random entry, but it is no money printer.
    assert 0.2 < base.mean() < 0.45
    assert base.mean() < spike_wins.mean() < 0.7
