"""The label: the generator's trade under the paper exchange's conservative conventions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from domain.features import Ohlcv
from domain.labels import LabelSpec, first_touch_up, trade_net_pct, trade_wins

SPEC = LabelSpec(stop_atr=1.0, reward_risk=2.0, horizon_bars=3, taker_fee=0.001, breakeven_pct=0.5)


def bars(rows: list[tuple[float, float, float, float]]) -> Ohlcv:
    o, h, lo, c = (np.array(col, dtype=np.float64) for col in zip(*rows, strict=True))
    return Ohlcv(np.arange(len(rows), dtype=np.int64), o, h, lo, c, np.ones(len(rows)))


def pct(direction: int, entry: float, exit_price: float, fee: float = 0.001) -> float:
    return 100 * (direction * (exit_price - entry) - fee * (entry + exit_price)) / entry


ATR = np.full(5, 2.0)  # entry 100: long stop 98, target 104


def test_target_first_is_a_win_net_of_fees() -> None:
    b = bars(
        [
            (100, 100, 100, 100),
            (100, 101, 99, 100.5),
            (100.5, 104.2, 100, 104),
            (104, 104, 104, 104),
            (104, 104, 104, 104),
        ]
    )
    assert trade_net_pct(b, ATR, 1, SPEC)[0] == pytest.approx(pct(1, 100, 104))
    assert trade_wins(b, ATR, 1, SPEC)[0] == 1.0


def test_a_bar_touching_both_counts_as_the_stop() -> None:
    b = bars(
        [(100, 100, 100, 100), (100, 105, 97, 101), (101, 101, 101, 101), (101, 101, 101, 101)]
    )
    assert trade_net_pct(b, ATR[:4], 1, SPEC)[0] == pytest.approx(pct(1, 100, 98))
    assert trade_wins(b, ATR[:4], 1, SPEC)[0] == 0.0


def test_an_open_past_the_stop_exits_at_the_open() -> None:
    b = bars([(100, 100, 100, 100), (96, 97, 95, 96.5), (96.5, 97, 96, 96), (96, 96, 96, 96)])
    assert trade_net_pct(b, ATR[:4], 1, SPEC)[0] == pytest.approx(pct(1, 100, 96))
    # ... and a short sees the same bar as an open past its target: a win at the open.
    assert trade_net_pct(b, ATR[:4], -1, SPEC)[0] == pytest.approx(pct(-1, 100, 96))
    assert trade_wins(b, ATR[:4], -1, SPEC)[0] == 1.0


def test_at_the_horizon_the_trade_times_out_at_the_close() -> None:
    b = bars(
        [
            (100, 100, 100, 100),
            (100, 101, 99, 100.5),
            (100.5, 101.5, 100, 101),
            (101, 102, 100.6, 101.2),
            (101, 150, 50, 101),
        ]
    )
    assert trade_net_pct(b, ATR, 1, SPEC)[0] == pytest.approx(pct(1, 100, 101.2))
    # +1.0 % net of 0.2 % fees is a win; without the fees the band would not matter.
    assert trade_wins(b, ATR, 1, SPEC)[0] == 1.0
    tight = LabelSpec(
        stop_atr=1.0, reward_risk=2.0, horizon_bars=3, taker_fee=0.001, breakeven_pct=1.5
    )
    assert trade_wins(b, ATR, 1, tight)[0] == 0.0


def test_a_short_mirrors_a_long() -> None:
    b = bars(
        [
            (100, 100, 100, 100),
            (100, 101, 99, 99.5),
            (99.5, 100, 95.8, 96),
            (96, 96, 96, 96),
            (96, 96, 96, 96),
        ]
    )
    assert trade_net_pct(b, ATR, -1, SPEC)[0] == pytest.approx(pct(-1, 100, 96))
    assert trade_net_pct(b, ATR, 1, SPEC)[0] == pytest.approx(pct(1, 100, 98))


def test_unknown_without_an_atr_or_a_full_horizon() -> None:
    b = bars([(100, 100, 100, 100)] * 5)
    atr = np.array([np.nan, 2, 2, 2, 2])
    out = trade_wins(b, atr, 1, SPEC)
    assert np.isnan(out[0]) and not np.isnan(out[1])
    assert np.isnan(out[2:]).all()


def loop_label(b: Ohlcv, atr: np.ndarray, direction: int, spec: LabelSpec) -> list[float]:
    """The rules written as a plain loop, one trade at a time."""
    out = []
    for t in range(len(b)):
        if t + spec.horizon_bars >= len(b) or math.isnan(atr[t]):
            out.append(float("nan"))
            continue
        e = b.close[t]
        risk = spec.stop_atr * atr[t]
        stop, target = e - direction * risk, e + direction * spec.reward_risk * risk
        exit_price = b.close[t + spec.horizon_bars]
        for j in range(t + 1, t + spec.horizon_bars + 1):
            o = b.open[j]
            adverse = b.low[j] if direction > 0 else b.high[j]
            favour = b.high[j] if direction > 0 else b.low[j]
            if direction * (o - stop) <= 0 or direction * (o - target) >= 0:
                exit_price = o
                break
            if direction * (adverse - stop) <= 0:
                exit_price = stop
                break
            if direction * (favour - target) >= 0:
                exit_price = target
                break
        net = direction * (exit_price - e) - spec.taker_fee * (e + exit_price)
        out.append(100 * net / e)
    return out


@pytest.mark.parametrize("direction", [1, -1])
def test_the_label_matches_a_plain_loop_on_a_random_walk(direction: int) -> None:
    rng = np.random.default_rng(5)
    n = 400
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate(([100.0], close[:-1])) * np.exp(rng.normal(0, 0.004, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.005, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.005, n)))
    b = Ohlcv(np.arange(n, dtype=np.int64), open_, high, low, close, np.ones(n))
    atr = np.abs(rng.normal(1.0, 0.3, n)) + 0.2
    spec = LabelSpec(horizon_bars=12)
    np.testing.assert_allclose(
        trade_net_pct(b, atr, direction, spec), loop_label(b, atr, direction, spec), equal_nan=True
    )


def test_first_touch_up_and_down() -> None:
    b = bars(
        [
            (100, 100, 100, 100),
            (100, 103, 99, 102),
            (102, 102, 97, 98),
            (98, 110, 90, 100),
            (100, 100, 100, 100),
        ]
    )
    up = first_touch_up(b, np.full(5, 1.0), 2.0, 2)
    assert up[0] == 1.0  # +2 at bar 1 before -2
    assert up[1] == 0.0  # from 102: 100 is touched at bar 2 (low 97), 104 never
    assert np.isnan(up[2])  # bar 3 touches both 100 and 96
