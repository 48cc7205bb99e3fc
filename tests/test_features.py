"""Features against independent loop code, no look-ahead, and the warm-up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from domain.candles import Candle
from domain.features import (
    FEATURES,
    WARMUP_BARS,
    Ohlcv,
    atr,
    feature_matrix,
    outside_range,
    rsi,
    volume_ratio,
)

N = 260


def random_bars(seed: int = 3, n: int = N) -> Ohlcv:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.004, n)))
    open_ = np.concatenate(([100.0], close[:-1])) * np.exp(rng.normal(0, 0.001, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.002, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.002, n)))
    volume = rng.lognormal(3, 0.6, n)
    volume[100] *= 9  # a spike
    close[150:156] = close[149]  # flat bars: no move
    high[152] = low[152] = open_[152] = close[152]
    times = np.arange(n, dtype=np.int64) * 900_000
    return Ohlcv(times, open_, high, low, close, volume)


def loop_atr(h: list[float], lo: list[float], c: list[float], period: int = 14) -> list[float]:
    tr = [float("nan")] + [
        max(h[i] - lo[i], abs(h[i] - c[i - 1]), abs(lo[i] - c[i - 1])) for i in range(1, len(c))
    ]
    out = [float("nan")] * len(c)
    value = sum(tr[1 : period + 1]) / period
    out[period] = value
    for i in range(period + 1, len(c)):
        value = value + (tr[i] - value) / period
        out[i] = value
    return out


def loop_rsi(c: list[float], period: int = 14) -> list[float]:
    gains = [max(c[i] - c[i - 1], 0.0) for i in range(1, len(c))]
    losses = [max(c[i - 1] - c[i], 0.0) for i in range(1, len(c))]
    out = [float("nan")] * len(c)
    g = sum(gains[:period]) / period
    lo = sum(losses[:period]) / period
    for i in range(period, len(c)):
        if i > period:
            g = g + (gains[i - 1] - g) / period
            lo = lo + (losses[i - 1] - lo) / period
        out[i] = 50.0 if g + lo == 0 else 100.0 * g / (g + lo)
    return out


def test_atr_is_wilders_from_bar_14() -> None:
    b = random_bars()
    expected = loop_atr(list(b.high), list(b.low), list(b.close))
    np.testing.assert_allclose(atr(b.high, b.low, b.close), expected, rtol=1e-10)
    assert np.isnan(atr(b.high, b.low, b.close)[:14]).all()


def test_rsi_is_wilders_and_50_when_nothing_moves() -> None:
    b = random_bars()
    np.testing.assert_allclose(rsi(b.close), loop_rsi(list(b.close)), rtol=1e-10)
    assert rsi(np.full(40, 7.0))[20] == 50.0
    assert rsi(np.arange(1.0, 41.0))[30] == 100.0


def test_volume_ratio_reads_the_20_prior_bars_only() -> None:
    b = random_bars()
    v = b.volume
    expected = [float("nan")] * 20 + [v[t] / np.mean(v[t - 20 : t]) for t in range(20, N)]
    np.testing.assert_allclose(volume_ratio(v), expected, rtol=1e-10)
    assert volume_ratio(v)[100] > 3  # the spike is measured against bars before it
    assert np.isnan(volume_ratio(np.zeros(30))[25])


def test_every_feature_matches_its_written_definition() -> None:
    b = random_bars()
    x = feature_matrix(b)
    c, h, lo, v = b.close, b.high, b.low, b.volume
    a = np.array(loop_atr(list(h), list(lo), list(c)))
    col = {name: x[:, i] for i, name in enumerate(FEATURES)}
    tr = np.concatenate(
        (
            [np.nan],
            np.maximum(h[1:] - lo[1:], np.maximum(abs(h[1:] - c[:-1]), abs(lo[1:] - c[:-1]))),
        )
    )
    for t in range(WARMUP_BARS - 1, N):
        for k in (1, 4, 16, 48):
            assert col[f"ret_{k}"][t] == pytest.approx((c[t] - c[t - k]) / a[t], rel=1e-9)
        assert col["atr_pct"][t] == pytest.approx(100 * a[t] / c[t], rel=1e-9)
        assert col["range_atr"][t] == pytest.approx((h[t] - lo[t]) / a[t], rel=1e-9)
        span = h[t] - lo[t]
        location = 0.5 if span == 0 else (c[t] - lo[t]) / span
        assert col["close_location"][t] == pytest.approx(location, rel=1e-9)
        slope = np.polyfit(np.arange(32), c[t - 31 : t + 1], 1)[0]
        assert col["trend_slope"][t] == pytest.approx(slope / a[t], rel=1e-7, abs=1e-9)
        path = np.abs(np.diff(c[t - 32 : t + 1])).sum()
        assert col["efficiency"][t] == pytest.approx(abs(c[t] - c[t - 32]) / path, rel=1e-9)
        z = (c[t] - c[t - 47 : t + 1].mean()) / a[t]
        assert col["zscore_48"][t] == pytest.approx(z, rel=1e-7, abs=1e-9)
        up = (c[t] - h[t - 20 : t].max()) / a[t]
        down = (c[t] - lo[t - 20 : t].min()) / a[t]
        assert col["breakout_up"][t] == pytest.approx(up, rel=1e-9)
        assert col["breakout_down"][t] == pytest.approx(down, rel=1e-9)
        assert col["atr_ratio"][t] == pytest.approx(a[t] / tr[t - 95 : t + 1].mean(), rel=1e-9)
        signs = np.sign(c[t - 15 : t + 1] - c[t - 16 : t])
        pressure = (signs * v[t - 15 : t + 1]).sum() / v[t - 15 : t + 1].sum()
        assert col["signed_volume"][t] == pytest.approx(pressure, rel=1e-9, abs=1e-12)
    assert col["rsi_14"][N - 1] == pytest.approx(loop_rsi(list(c))[N - 1], rel=1e-9)


def test_a_feature_never_changes_when_later_bars_arrive() -> None:
    b = random_bars()
    full = feature_matrix(b)
    for k in (WARMUP_BARS, 130, 200, N - 1):
        prefix = Ohlcv(*(getattr(b, f)[:k] for f in Ohlcv.__slots__))
        assert np.array_equal(feature_matrix(prefix), full[:k], equal_nan=True)
    # A wild bar appended changes nothing before it.
    shock = Ohlcv(
        np.append(b.open_time, b.open_time[-1] + 900_000),
        np.append(b.open, b.close[-1]),
        np.append(b.high, b.close[-1] * 1.5),
        np.append(b.low, b.close[-1] * 0.5),
        np.append(b.close, b.close[-1] * 1.4),
        np.append(b.volume, 1e9),
    )
    assert np.array_equal(feature_matrix(shock)[:N], full, equal_nan=True)


def test_warm_up_rows_are_incomplete_and_then_complete() -> None:
    x = feature_matrix(random_bars())
    assert np.isnan(x[: WARMUP_BARS - 1]).any(axis=1).all()
    assert np.isfinite(x[WARMUP_BARS - 1 :]).all()


def test_symbols_side_by_side_give_each_symbols_features() -> None:
    one, two = random_bars(1), random_bars(2)
    stacked = Ohlcv(*(np.stack([getattr(one, f), getattr(two, f)]) for f in Ohlcv.__slots__))
    both = feature_matrix(stacked)
    assert both.shape == (2, N, len(FEATURES))
    np.testing.assert_allclose(both[0], feature_matrix(one), rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(both[1], feature_matrix(two), rtol=1e-12, equal_nan=True)


def test_ohlcv_of_candles_and_the_range_check() -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    candles = [
        Candle(
            "BTCUSDT", start + i * timedelta(minutes=15), timedelta(minutes=15), 1, 2, 0.5, 1.5, 9
        )
        for i in range(3)
    ]
    bars = Ohlcv.of(candles)
    assert bars.open_time.tolist() == [1704067200000, 1704068100000, 1704069000000]
    assert len(bars) == 3 and bars.high.tolist() == [2.0, 2.0, 2.0]
    ranges = {"a": (0.0, 1.0), "b": (-1.0, 1.0)}
    assert outside_range([0.5, 0.0], ["a", "b"], ranges) == []
    assert outside_range([1.5, float("nan")], ["a", "b"], ranges) == ["a", "b"]
