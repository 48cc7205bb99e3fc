"""What a model's confidence means: the outcome of the trade the generator would issue.

Pure numpy, no I/O. A signal at the close of bar ``t`` in direction ``D`` (+1 long, −1
short) is the trade:

* entry ``E = C_t`` (the close the levels are computed from);
* stop ``S = E − D · stop_atr · ATR_t`` (Wilder's ATR at ``t``, ``domain.features``);
* target ``T = E + D · reward_risk · stop_atr · ATR_t``;
* exits on bars ``t+1 … t+horizon`` by the paper exchange's conservative conventions
  (long; short mirrored): a bar that **opens** past the stop exits at its open, one that
  opens past the target exits at its open, a bar that touches both exits at the **stop**,
  then a touch of the stop exits at S and a touch of the target at T; with neither by
  ``t + horizon`` the trade times out at that bar's close;
* taker fees on entry and exit: ``net % = 100 · (D · (exit − E) − fee · (E + exit)) / E``.

The trade **wins** when its net % exceeds the ledger's breakeven band (``breakeven_pct``,
0.5 % as in ``domain.pnl``): exactly what the ledger will call a win, so that the live
calibration (confidence against wins) checks what the confidence claims. Prices are not
rounded to ticks here (a tick is far below an ATR on the venues this is for).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt

from domain.features import Ohlcv
from domain.pnl import DEFAULT_BREAKEVEN_PCT

Floats = npt.NDArray[np.float64]

TAKER_FEE = 0.00055
"""Bybit's base taker fee on linear contracts (0.055 %)."""


@dataclass(frozen=True, slots=True)
class LabelSpec:
    """The trade a confidence is about, and when it counts as a win."""

    stop_atr: float = 1.5
    reward_risk: float = 2.0
    horizon_bars: int = 96
    taker_fee: float = TAKER_FEE
    breakeven_pct: float = DEFAULT_BREAKEVEN_PCT

    def as_dict(self) -> dict[str, float | int]:
        """The fields, for a model card."""
        return asdict(self)


def _windows(x: Floats, horizon: int) -> Floats:
    """Row ``t`` holds ``x[t+1 … t+horizon]`` for ``t < n − horizon``."""
    return np.lib.stride_tricks.sliding_window_view(x[1:], horizon)


def trade_net_pct(bars: Ohlcv, atr: Floats, direction: int, spec: LabelSpec) -> Floats:
    """Net % of the trade opened at each bar's close (NaN without an ATR or a full horizon)."""
    n = len(bars)
    h = spec.horizon_bars
    out = np.full(n, np.nan)
    rows = n - h
    if rows <= 0:
        return out
    entry = bars.close[:rows]
    risk = spec.stop_atr * atr[:rows]
    stop = entry - direction * risk
    target = entry + direction * spec.reward_risk * risk
    opens, highs, lows = (_windows(x, h) for x in (bars.open, bars.high, bars.low))
    sign = float(direction)
    # In "long" coordinates (prices times D), a stop is touched at or below, a target above.
    s, tg = (sign * stop)[:, None], (sign * target)[:, None]
    o = sign * opens
    worst = sign * np.where(direction > 0, lows, highs)
    best = sign * np.where(direction > 0, highs, lows)
    stop_hit = worst <= s
    target_hit = best >= tg
    event = stop_hit | target_hit
    any_event = event.any(axis=1)
    first = event.argmax(axis=1)
    pick = np.arange(rows)
    o_first = o[pick, first]
    exit_long = np.where(
        o_first <= s[:, 0],
        o_first,
        np.where(o_first >= tg[:, 0], o_first, np.where(stop_hit[pick, first], s[:, 0], tg[:, 0])),
    )
    exit_price = np.where(any_event, sign * exit_long, bars.close[h:][:rows])
    net = direction * (exit_price - entry) - spec.taker_fee * (entry + exit_price)
    out[:rows] = np.where(np.isfinite(atr[:rows]), 100.0 * net / entry, np.nan)
    return out


def trade_wins(bars: Ohlcv, atr: Floats, direction: int, spec: LabelSpec) -> Floats:
    """1.0 where the trade opened at that bar's close wins, 0.0 where not, NaN if unknown."""
    pct = trade_net_pct(bars, atr, direction, spec)
    return np.where(np.isnan(pct), np.nan, (pct > spec.breakeven_pct).astype(np.float64))


def first_touch_up(bars: Ohlcv, atr: Floats, distance_atr: float, horizon: int) -> Floats:
    """1.0 where the price first moves ``distance_atr`` ATRs up, 0.0 where down, within
    ``horizon`` bars; NaN when neither, both in one bar, or no ATR or full horizon."""
    n = len(bars)
    out = np.full(n, np.nan)
    rows = n - horizon
    if rows <= 0:
        return out
    entry = bars.close[:rows]
    up = (entry + distance_atr * atr[:rows])[:, None]
    down = (entry - distance_atr * atr[:rows])[:, None]
    up_hit = _windows(bars.high, horizon) >= up
    down_hit = _windows(bars.low, horizon) <= down
    event = up_hit | down_hit
    first = event.argmax(axis=1)
    pick = np.arange(rows)
    is_up = up_hit[pick, first]
    is_down = down_hit[pick, first]
    decided = event.any(axis=1) & (is_up != is_down) & np.isfinite(atr[:rows])
    out[:rows] = np.where(decided, is_up.astype(np.float64), np.nan)
    return out
