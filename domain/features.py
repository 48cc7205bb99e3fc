"""Features of closed candles: the one definition used by training and by inference.

Pure numpy, no I/O. Every function takes arrays whose **last axis is time, oldest first**
(leading axes are free, e.g. one row per symbol) and returns arrays of the same shape.
A value at bar ``t`` reads bars ``<= t`` only, so appending later bars never changes it;
bars too early for a complete window are NaN.

Definitions (``C``, ``H``, ``L``, ``V``: close, high, low, volume; ``ATR`` is Wilder's):

* true range ``TR_t = max(H_t − L_t, |H_t − C_{t−1}|, |L_t − C_{t−1}|)`` from bar 1 on;
* ``ATR`` (Wilder, 14): at bar 14 the mean of ``TR_1..TR_14``, then
  ``ATR_t = ATR_{t−1} + (TR_t − ATR_{t−1}) / 14`` (as TA-Lib; not a simple average);
* ``RSI`` (Wilder, 14): gains and losses of ``C_t − C_{t−1}`` smoothed the same way;
  ``RSI = 100 · gain / (gain + loss)``, 50 when both are 0.

The features, in ``FEATURES`` order:

=================== ====================================================================
``ret_1/4/16/48``   ``(C_t − C_{t−k}) / ATR_t``: the move over ``k`` bars, in ATRs
``atr_pct``         ``100 · ATR_t / C_t``
``rsi_14``          Wilder's RSI, 0–100
``volume_ratio``    ``V_t / mean(V_{t−20} … V_{t−1})``: the 20 **prior** closed bars
``range_atr``       ``(H_t − L_t) / ATR_t``
``close_location``  ``(C_t − L_t) / (H_t − L_t)``, 0.5 when ``H_t = L_t``
``trend_slope``     least-squares slope of ``C`` over bars ``t−31 … t``, per bar, in ATRs
``efficiency``      ``|C_t − C_{t−32}| / Σ |C_i − C_{i−1}|`` over the same 32 moves (Kaufman)
``zscore_48``       ``(C_t − mean(C_{t−47} … C_t)) / ATR_t``
``breakout_up``     ``(C_t − max(H_{t−20} … H_{t−1})) / ATR_t``
``breakout_down``   ``(C_t − min(L_{t−20} … L_{t−1})) / ATR_t``
``atr_ratio``       ``ATR_t / mean(TR_{t−95} … TR_t)``: volatility against the last day
``signed_volume``   ``Σ sign(C_i − C_{i−1}) · V_i / Σ V_i`` over bars ``t−15 … t``
=================== ====================================================================

The first complete row is bar ``WARMUP_BARS − 1`` (96). Wilder averages remember their
start: after 186 bars the start's weight is (13/14)^186 < 1e-6, so 200 candles give the
same last-bar features as a long history to about six digits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from domain.candles import Candle

Floats = npt.NDArray[np.float64]

ATR_PERIOD = 14
RSI_PERIOD = 14
VOLUME_LOOKBACK = 20
RETURN_HORIZONS = (1, 4, 16, 48)
TREND_WINDOW = 32
MEAN_WINDOW = 48
CHANNEL_WINDOW = 20
VOLATILITY_WINDOW = 96
PRESSURE_WINDOW = 16
WARMUP_BARS = VOLATILITY_WINDOW + 1
"""Bars needed before the first complete feature row (the 96-bar true-range mean)."""

FEATURES: tuple[str, ...] = (
    "ret_1",
    "ret_4",
    "ret_16",
    "ret_48",
    "atr_pct",
    "rsi_14",
    "volume_ratio",
    "range_atr",
    "close_location",
    "trend_slope",
    "efficiency",
    "zscore_48",
    "breakout_up",
    "breakout_down",
    "atr_ratio",
    "signed_volume",
)

_BLOCK = 128


@dataclass(frozen=True, slots=True)
class Ohlcv:
    """Bars as arrays (last axis time, oldest first); ``open_time`` in ms since the epoch."""

    open_time: npt.NDArray[np.int64]
    open: Floats
    high: Floats
    low: Floats
    close: Floats
    volume: Floats

    @classmethod
    def of(cls, candles: Sequence[Candle]) -> Ohlcv:
        """The arrays of one symbol's candles, in the order given."""
        return cls(
            open_time=np.array(
                [round(c.open_time.timestamp() * 1000) for c in candles], dtype=np.int64
            ),
            open=np.array([c.open for c in candles], dtype=np.float64),
            high=np.array([c.high for c in candles], dtype=np.float64),
            low=np.array([c.low for c in candles], dtype=np.float64),
            close=np.array([c.close for c in candles], dtype=np.float64),
            volume=np.array([c.volume for c in candles], dtype=np.float64),
        )

    def __len__(self) -> int:
        return int(self.close.shape[-1])


@lru_cache(maxsize=32)
def _powers(decay: float, length: int) -> Floats:
    powers: Floats = decay ** np.arange(1, length + 1, dtype=np.float64)
    powers.flags.writeable = False
    return powers


def linear_recursion(x: Floats, decay: float, initial: Floats | float) -> Floats:
    """``y_k = decay · y_{k−1} + x_k`` along the last axis, with ``y_{−1} = initial``.

    Vectorised in blocks of 128 (a scaled cumulative sum per block), so that a long
    series never overflows the scale factors. ``0 < decay <= 1``.
    """
    out = np.empty(x.shape, dtype=np.float64)
    carry = np.broadcast_to(np.asarray(initial, dtype=np.float64), x.shape[:-1])
    n = x.shape[-1]
    for start in range(0, n, _BLOCK):
        chunk = x[..., start : start + _BLOCK]
        powers = _powers(decay, chunk.shape[-1])
        block = powers * (carry[..., None] + np.cumsum(chunk / powers, axis=-1))
        out[..., start : start + chunk.shape[-1]] = block
        carry = block[..., -1]
    return out


def wilder_average(x: Floats, period: int, first: int = 1) -> Floats:
    """Wilder's smoothing of ``x`` (valid from index ``first``), NaN before it is complete.

    At index ``first + period − 1`` the mean of the first ``period`` values; after it
    ``y_t = y_{t−1} + (x_t − y_{t−1}) / period``.
    """
    out = np.full(x.shape, np.nan)
    seed_at = first + period - 1
    if x.shape[-1] <= seed_at:
        return out
    seed = x[..., first : seed_at + 1].mean(axis=-1)
    out[..., seed_at] = seed
    rest = x[..., seed_at + 1 :]
    if rest.shape[-1]:
        out[..., seed_at + 1 :] = linear_recursion(rest / period, 1.0 - 1.0 / period, seed)
    return out


def true_range(high: Floats, low: Floats, close: Floats) -> Floats:
    """``TR_t`` from bar 1 on (bar 0 has no previous close: NaN)."""
    out = np.full(close.shape, np.nan)
    prev = close[..., :-1]
    h, lo = high[..., 1:], low[..., 1:]
    out[..., 1:] = np.maximum(h - lo, np.maximum(np.abs(h - prev), np.abs(lo - prev)))
    return out


def atr(high: Floats, low: Floats, close: Floats, period: int = ATR_PERIOD) -> Floats:
    """Wilder's average true range (first value at bar ``period``)."""
    return wilder_average(true_range(high, low, close), period)


def rsi(close: Floats, period: int = RSI_PERIOD) -> Floats:
    """Wilder's RSI, 0–100 (first value at bar ``period``); 50 when nothing moved."""
    change = np.full(close.shape, np.nan)
    change[..., 1:] = close[..., 1:] - close[..., :-1]
    gain = wilder_average(np.maximum(change, 0.0), period)
    loss = wilder_average(np.maximum(-change, 0.0), period)
    total = gain + loss
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(total > 0, 100.0 * gain / total, 50.0)
    return np.where(np.isnan(total), np.nan, value)


def _trailing(x: Floats, window: int) -> npt.NDArray[np.float64]:
    """Sliding windows ``x[t−window+1 … t]`` for ``t >= window − 1``: shape (..., n−w+1, w)."""
    return np.lib.stride_tricks.sliding_window_view(x, window, axis=-1)


def _place(values: Floats, n: int) -> Floats:
    """``values`` right-aligned in an array of length ``n`` along the last axis, NaN before."""
    out = np.full((*values.shape[:-1], n), np.nan)
    if values.shape[-1]:
        out[..., n - values.shape[-1] :] = values
    return out


def _window_sum(x: Floats, window: int, n: int) -> Floats:
    """Sums of ``x[t−window+1 … t]``, right-aligned in length ``n`` (NaN before), in O(n)."""
    total = np.cumsum(x, axis=-1)
    sums = total[..., window - 1 :].copy()
    sums[..., 1:] -= total[..., :-window]
    return _place(sums, n)


def _trailing_extreme(x: Floats, window: int, pick: np.ufunc) -> Floats:
    """``pick`` (``np.maximum`` or ``np.minimum``) of ``x[t−window+1 … t]`` for
    ``t >= window − 1`` (length ``n − window + 1``), by doubling spans: O(n log window)."""
    span, best = 1, x
    while span * 2 <= window:
        best = pick(best[..., span:], best[..., :-span])
        span *= 2
    rest = window - span
    if rest:
        best = pick(best[..., rest:], best[..., :-rest])
    return best


def _lag(x: Floats, k: int) -> Floats:
    """``x_{t−k}`` (NaN for ``t < k``)."""
    out = np.full(x.shape, np.nan)
    if x.shape[-1] > k:
        out[..., k:] = x[..., :-k]
    return out


def volume_ratio(volume: Floats, lookback: int = VOLUME_LOOKBACK) -> Floats:
    """``V_t`` over the mean volume of the ``lookback`` **prior** bars (NaN if that mean is 0)."""
    n = volume.shape[-1]
    if n <= lookback:
        return np.full(volume.shape, np.nan)
    prior = _lag(_window_sum(volume, lookback, n), 1) / lookback
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(prior > 0, volume / prior, np.nan)


def _slope_weights(window: int) -> Floats:
    x = np.arange(window, dtype=np.float64)
    centred = x - x.mean()
    weights: Floats = centred / float((centred**2).sum())
    return weights


def feature_matrix(bars: Ohlcv) -> Floats:
    """All ``FEATURES`` for every bar: shape ``(..., n, len(FEATURES))``, NaN in the warm-up."""
    h, lo, c, v = bars.high, bars.low, bars.close, bars.volume
    n = c.shape[-1]
    out = np.full((len(FEATURES), *c.shape), np.nan)
    tr = true_range(h, lo, c)
    a = wilder_average(tr, ATR_PERIOD)
    with np.errstate(invalid="ignore", divide="ignore"):
        inv_atr = 1.0 / a
        for i, k in enumerate(RETURN_HORIZONS):
            if n > k:
                out[i, ..., k:] = (c[..., k:] - c[..., :-k]) * inv_atr[..., k:]
        out[4] = 100.0 * a / c
        out[5] = rsi(c)
        out[6] = volume_ratio(v)
        span = h - lo
        out[7] = span * inv_atr
        out[8] = np.where(span > 0, (c - lo) / span, 0.5)
        if n >= TREND_WINDOW:
            fit = _trailing(c, TREND_WINDOW) @ _slope_weights(TREND_WINDOW)
            out[9, ..., TREND_WINDOW - 1 :] = fit * inv_atr[..., TREND_WINDOW - 1 :]
        change = np.diff(c, axis=-1)
        path = _window_sum(np.abs(change), TREND_WINDOW, n - 1)
        net = np.abs(c - _lag(c, TREND_WINDOW))[..., 1:]
        out[10, ..., 1:] = np.where(path == 0, 0.0, net / path)
        base = c[..., :1]
        mean = base + _window_sum(c - base, MEAN_WINDOW, n) / MEAN_WINDOW
        out[11] = (c - mean) * inv_atr
        if n > CHANNEL_WINDOW:
            recent = (slice(None),) * (c.ndim - 1) + (slice(CHANNEL_WINDOW, None),)
            highs = _trailing_extreme(h[..., :-1], CHANNEL_WINDOW, np.maximum)
            lows = _trailing_extreme(lo[..., :-1], CHANNEL_WINDOW, np.minimum)
            out[(12, *recent)] = (c[recent] - highs) * inv_atr[recent]
            out[(13, *recent)] = (c[recent] - lows) * inv_atr[recent]
        out[14, ..., 1:] = a[..., 1:] / (
            _window_sum(tr[..., 1:], VOLATILITY_WINDOW, n - 1) / VOLATILITY_WINDOW
        )
        moved = np.sign(change) * v[..., 1:]
        flow = _window_sum(moved, PRESSURE_WINDOW, n - 1)
        total = _window_sum(v[..., 1:], PRESSURE_WINDOW, n - 1)
        out[15, ..., 1:] = np.where(total == 0, 0.0, flow / total)
    return np.moveaxis(out, 0, -1)


def outside_range(
    row: Sequence[float] | Floats, names: Sequence[str], ranges: Mapping[str, tuple[float, float]]
) -> list[str]:
    """The features of ``row`` (named by ``names``) outside their ``[low, high]``, or NaN."""
    outside = []
    for name, value in zip(names, row, strict=True):
        low, high = ranges[name]
        if not (math.isfinite(float(value)) and low <= value <= high):
            outside.append(name)
    return outside
