"""The synthetic market: deterministic candles with regimes, trends, volatility clusters and
volume spikes, so that the demo and the generator run without internet.

**Determinism.** A symbol's price path is built minute by minute, one UTC day at a time,
from the symbol's launch day on: day ``d`` is drawn from a random generator seeded with
``(seed, symbol, d)`` and starts from the state the previous day ended in. A bar of any
interval aggregates those minutes, so the same seed, symbol and open time always give the
same bar, whatever range is asked (a catch-up and a fresh run agree). Only bars closed by
the clock's ``now()`` exist; bars open on multiples of the interval since the Unix epoch.

**The model** (per minute, log prices; parameters below):

* *regimes*, an hourly Markov chain: ranging (mean-reverting, quieter), trending up and
  trending down (a drift of ``TREND_DRIFT`` standard deviations a minute);
* *price* = a persistent part (a random walk with the regime's drift, pulled back to the
  symbol's anchor price over months) + a transient part (an AR(1) with a 45-minute memory),
  the transient part carrying most of the noise in ranging regimes;
* *volatility clusters*: a daily log-volatility AR(1), a US-hours seasonal and decaying
  shocks that carry across midnight;
* *events*: a volume spike with a price jump. In a trend, a spike with the trend continues
  most of the time (a drift for 1.5–5 hours); a spike against it, or in a range, mostly
  reverts. Bigger spikes continue more often. Empty volume spikes (no news) also happen;
* volume follows volatility, the hour of day, the size of moves and the spikes.

So there is learnable structure (spike breakouts that continue in trends, mean reversion in
ranges) and plenty that is not: regimes are hidden and switch, continuation is a coin with a
bias, not a certainty. Prices are rounded to the instrument's tick, volumes to its lot step.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt

from application.ports import CandleBatch, Clock, MarketUnavailable
from domain.candles import Candle, Instrument
from domain.features import Ohlcv, linear_recursion
from infrastructure.market.replay import INSTRUMENTS

Floats = npt.NDArray[np.float64]

MINUTES_PER_DAY = 1440
MS_PER_MINUTE = 60_000
LAUNCH = datetime(2024, 1, 1, tzinfo=UTC)
"""Every synthetic symbol lists on this day: there are no bars before it."""

# Regimes: 0 ranging, +1 trending up, -1 trending down. Hourly transition probabilities.
RANGE_STAY = 0.975
TREND_STAY = 0.95
TREND_TO_RANGE = 0.04
TREND_DRIFT = 0.015
"""Drift of a trend, in minute standard deviations per minute (≈ 0.06 per 15-minute bar)."""
TRANSIENT_MEMORY = 45.0
"""The transient part's AR(1) time constant, minutes."""
ANCHOR_HALF_LIFE_DAYS = 60.0
LOG_VOL_PERSISTENCE = 0.85
LOG_VOL_NOISE = 0.15
LOG_VOL_LIMIT = 0.6
SHOCKS_PER_DAY = 2.5
SHOCK_MEMORY = 120.0
EVENTS_PER_DAY = 2.0
EMPTY_SPIKES_PER_DAY = 3.0
WITH_TREND = 0.75
"""Chance that an event in a trend spikes in the trend's direction."""
CONTINUE_WITH_TREND = 0.9
CONTINUE_OTHERWISE = 0.30
RANGE_VOLATILITY = 0.85
TREND_VOLATILITY = 1.1
TREND_FLOW = 0.8
"""In a trend, minutes moving with it carry 1.8 times the volume, those against it 1/1.8."""
CARRY = 360
"""Minutes an event's drift or volume may spill into the next day."""
_CACHE_DAYS = 64


@dataclass(frozen=True, slots=True)
class SymbolProfile:
    """What makes one synthetic symbol look like itself."""

    instrument: Instrument
    anchor_price: float
    daily_volatility: float
    minute_volume: float


PROFILES: Mapping[str, SymbolProfile] = {
    "BTCUSDT": SymbolProfile(INSTRUMENTS["BTCUSDT"], 64_000.0, 0.028, 45.0),
    "ETHUSDT": SymbolProfile(INSTRUMENTS["ETHUSDT"], 3_100.0, 0.03, 650.0),
    "SOLUSDT": SymbolProfile(INSTRUMENTS["SOLUSDT"], 145.0, 0.032, 6_500.0),
}
"""The shipped symbols: Bybit's trading rules (the replay adapter's table), typical levels,
daily volatility and volume per minute."""


@dataclass(frozen=True, slots=True)
class _DayStart:
    """Where a day starts: the state the previous day ended in."""

    persistent: float
    transient: float
    log_vol: float
    regime: int
    shock: float
    drift_carry: Floats = field(default_factory=lambda: np.zeros(CARRY))
    volume_carry: Floats = field(default_factory=lambda: np.zeros(CARRY))


@dataclass(frozen=True, slots=True)
class _Minutes:
    open: Floats
    high: Floats
    low: Floats
    close: Floats
    volume: Floats


@dataclass(frozen=True, slots=True)
class _Plan:
    sigma: Floats
    drift: Floats
    excess: Floats
    regime: npt.NDArray[np.int64]
    persistent_scale: Floats
    transient_scale: Floats
    persistent_noise: float
    transient_noise: float
    log_vol: float
    after: _DayStart


_MINUTE = np.arange(MINUTES_PER_DAY, dtype=np.float64)
_SEASON = 1.0 + 0.3 * np.cos(2 * math.pi * (_MINUTE - 870.0) / MINUTES_PER_DAY)
_DECAY = np.exp(-_MINUTE / SHOCK_MEMORY)
_DECAY_DAY = math.exp(-MINUTES_PER_DAY / SHOCK_MEMORY)
_MEMORY = math.exp(-1.0 / TRANSIENT_MEMORY)
_MEMORY_WEIGHTS = _MEMORY ** (MINUTES_PER_DAY - 1 - _MINUTE)
"""Weight of each minute's transient noise in the day's last transient value."""
_MEMORY_DAY = _MEMORY**MINUTES_PER_DAY


def _bridge(noise: Floats, weights: Floats, total: float) -> Floats:
    """``noise`` (standard normal) conditioned on ``weights · noise == total``."""
    return noise + weights * ((total - float(weights @ noise)) / float(weights @ weights))


def _symbol_key(symbol: str) -> int:
    return int.from_bytes(hashlib.sha256(symbol.encode()).digest()[:8], "big")


def _next_regime(regime: int, u: float) -> int:
    if regime == 0:
        if u < RANGE_STAY:
            return 0
        return 1 if u < RANGE_STAY + (1 - RANGE_STAY) / 2 else -1
    if u < TREND_STAY:
        return regime
    return 0 if u < TREND_STAY + TREND_TO_RANGE else -regime


class _Path:
    """One symbol's minute path for one seed, built day by day and kept as day-start states."""

    def __init__(self, seed: int, profile: SymbolProfile, launch_day: int) -> None:
        self.seed = seed
        self.profile = profile
        self.launch_day = launch_day
        self.key = _symbol_key(profile.instrument.symbol)
        self.base_sigma = profile.daily_volatility / math.sqrt(MINUTES_PER_DAY) / 1.6
        self.anchor = math.log(profile.anchor_price)
        self.states = [_DayStart(self.anchor, 0.0, 0.0, 0, 0.0)]
        self.cache: OrderedDict[int, _Minutes] = OrderedDict()
        self.lock = threading.Lock()

    def minutes(self, day: int) -> _Minutes:
        """The minute bars of UTC day ``day`` (days since the epoch, ``>= launch_day``)."""
        with self.lock:
            cached = self.cache.get(day)
            if cached is not None:
                self.cache.move_to_end(day)
                return cached
            while len(self.states) <= day - self.launch_day:
                index = self.launch_day + len(self.states) - 1
                self.states.append(self._plan(index, self.states[-1]).after)
            start = self.states[day - self.launch_day]
            plan = self._plan(day, start)
            if day - self.launch_day == len(self.states) - 1:
                self.states.append(plan.after)
            bars = self._draw(day, start, plan)
            self.cache[day] = bars
            while len(self.cache) > _CACHE_DAYS:
                self.cache.popitem(last=False)
            return bars

    def _plan(self, day: int, start: _DayStart) -> _Plan:
        """The day's regimes, volatility, drifts and where its two noise parts end.

        The sums of the day's minute noise are drawn here as two normals; ``_draw`` later
        draws minute noise conditioned on them (an exact Gaussian bridge), so walking the
        days to reach a state never needs the minutes themselves.
        """
        m = MINUTES_PER_DAY
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, self.key, day, 0])
        regimes = np.empty(24, dtype=np.int64)
        regime = start.regime
        for hour, u in enumerate(rng.random(24)):
            regime = _next_regime(regime, float(u))
            regimes[hour] = regime
        per_minute = np.repeat(regimes, 60)
        ranging = per_minute == 0

        log_vol = LOG_VOL_PERSISTENCE * start.log_vol + LOG_VOL_NOISE * float(rng.standard_normal())
        log_vol = min(max(log_vol, -LOG_VOL_LIMIT), LOG_VOL_LIMIT)
        shock_times = rng.integers(0, m, rng.poisson(SHOCKS_PER_DAY))
        shock_sizes = np.asarray(rng.exponential(0.7, shock_times.shape[0]), dtype=np.float64)
        shock = start.shock * _DECAY
        for t, size in zip(shock_times.tolist(), shock_sizes.tolist(), strict=True):
            shock[t:] += size * _DECAY[: m - t]
        shock_end = start.shock * _DECAY_DAY + float(
            np.sum(shock_sizes * np.exp(-(m - shock_times) / SHOCK_MEMORY))
        )
        sigma = (
            (self.base_sigma * math.exp(log_vol))
            * _SEASON
            * (1.0 + shock)
            * np.where(ranging, RANGE_VOLATILITY, TREND_VOLATILITY)
        )

        drift = np.zeros(m + CARRY)
        excess = np.zeros(m + CARRY)
        drift[:CARRY] += start.drift_carry
        excess[:CARRY] += start.volume_carry
        self._events(rng, drift, excess, sigma, per_minute)
        for t in rng.integers(0, m - 6, rng.poisson(EMPTY_SPIKES_PER_DAY)):
            length = int(rng.integers(2, 6))
            excess[t : t + length] += rng.uniform(3.0, 9.0)
            sigma[t : t + length] *= 1.8
        anchor_pull = -(start.persistent - self.anchor) * (math.log(2) / ANCHOR_HALF_LIFE_DAYS / m)
        drift[:m] += per_minute * TREND_DRIFT * sigma + anchor_pull

        persistent_scale = sigma * np.where(ranging, 0.45, 0.8)
        transient_scale = sigma * np.where(ranging, 1.0, 0.3) * _MEMORY_WEIGHTS
        sums = rng.standard_normal(2)
        persistent_noise = float(sums[0]) * math.sqrt(float(persistent_scale @ persistent_scale))
        transient_noise = float(sums[1]) * math.sqrt(float(transient_scale @ transient_scale))
        after = _DayStart(
            persistent=start.persistent + float(drift[:m].sum()) + persistent_noise,
            transient=_MEMORY_DAY * start.transient + transient_noise,
            log_vol=log_vol,
            regime=int(regimes[-1]),
            shock=shock_end,
            drift_carry=drift[m:].copy(),
            volume_carry=excess[m:].copy(),
        )
        return _Plan(
            sigma,
            drift[:m],
            excess[:m],
            per_minute,
            persistent_scale,
            transient_scale,
            persistent_noise,
            transient_noise,
            log_vol,
            after,
        )

    def _draw(self, day: int, start: _DayStart, plan: _Plan) -> _Minutes:
        """The day's minute bars: the planned path with its noise, wicks and volumes."""
        m = MINUTES_PER_DAY
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, self.key, day, 1])
        noise = rng.standard_normal((4, m))
        z1 = _bridge(noise[0], plan.persistent_scale, plan.persistent_noise)
        z2 = _bridge(noise[1], plan.transient_scale, plan.transient_noise)
        persistent = start.persistent + np.cumsum(plan.drift + plan.persistent_scale * z1)
        transient = linear_recursion(
            plan.transient_scale / _MEMORY_WEIGHTS * z2, _MEMORY, start.transient
        )
        log_close = persistent + transient
        first = start.persistent + start.transient
        close = np.exp(log_close)
        open_ = np.concatenate(([math.exp(first)], close[:-1]))
        wicks = np.abs(noise[2:]) * (0.6 * plan.sigma)
        high = np.maximum(open_, close) * np.exp(wicks[0])
        low = np.minimum(open_, close) * np.exp(-wicks[1])
        change = np.diff(log_close, prepend=first)
        moves = np.abs(change) / plan.sigma
        # Volume flows with a trend: minutes moving its way trade more than those against it.
        flow = np.sign(change) * plan.regime
        with_flow = np.where(
            flow > 0, 1.0 + TREND_FLOW, np.where(flow < 0, 1 / (1 + TREND_FLOW), 1.0)
        )
        volume = (
            self.profile.minute_volume
            * math.exp(0.6 * plan.log_vol)
            * (0.5 + 0.5 * _SEASON)
            * rng.lognormal(-0.1, 0.45, m)
            * (0.7 + 0.3 * moves)
            * (1.0 + plan.excess)
            * with_flow
        )
        return _Minutes(open_, high, low, close, volume)

    @staticmethod
    def _events(
        rng: np.random.Generator,
        drift: Floats,
        excess: Floats,
        sigma: Floats,
        regimes: npt.NDArray[np.int64],
    ) -> None:
        """Volume-spike events: a jump, then a continuation or a reversal (in place)."""
        m = MINUTES_PER_DAY
        for t in np.sort(rng.integers(0, m - 3, rng.poisson(EVENTS_PER_DAY))):
            regime = int(regimes[t])
            u_side, u_go, spike, size, strength, bars = rng.random(6)
            if regime:
                side = regime if u_side < WITH_TREND else -regime
            else:
                side = 1 if u_side < 0.5 else -1
            aligned = regime == side
            # Spikes with a trend come on heavier volume, and heavier ones continue more.
            spike_mult = (8.0 + 6.0 * spike) if aligned else (5.0 + 5.0 * spike)
            bar_sigma = float(sigma[t]) * math.sqrt(15.0)
            jump = side * (1.3 + 1.3 * size) * bar_sigma
            drift[t : t + 3] += jump / 3.0
            excess[t : t + 3] += spike_mult - 1.0
            chance = CONTINUE_WITH_TREND if aligned else CONTINUE_OTHERWISE
            chance = min(max(chance + 0.08 * (spike_mult - 9.0) / 3.0, 0.0), 0.98)
            begin = t + 3
            if u_go < chance:
                length = 15 * (7 + int(6 * bars))
                rate = side * (0.5 + 0.25 * strength) * bar_sigma / 15.0
                drift[begin : begin + length] += rate
                excess[begin : begin + length] += 0.6
            else:
                # A failed breakout snaps back (a wick), then drifts back further.
                back = -(0.7 + 0.6 * strength) * jump
                length = 15 * (3 + int(7 * bars))
                drift[begin : begin + 4] += 0.4 * back / 4.0
                drift[begin + 4 : begin + 4 + length] += 0.6 * back / length
                excess[begin : begin + length] += 0.4


_PATHS: dict[tuple[int, SymbolProfile, int], _Path] = {}
_PATHS_LOCK = threading.Lock()


def _path(seed: int, profile: SymbolProfile, launch_day: int) -> _Path:
    key = (seed, profile, launch_day)
    with _PATHS_LOCK:
        path = _PATHS.get(key)
        if path is None:
            path = _PATHS[key] = _Path(seed, profile, launch_day)
        return path


def _decimals(step: float) -> int:
    return max(0, -math.floor(math.log10(step) + 1e-9))


def _interval_minutes(interval: timedelta) -> int:
    minutes = interval / timedelta(minutes=1)
    if minutes < 1 or minutes != int(minutes):
        raise MarketUnavailable(f"the synthetic market has bars of whole minutes, not {interval}")
    return int(minutes)


def _ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise MarketUnavailable(f"time {moment.isoformat()} has no time zone")
    return math.floor(moment.timestamp() * 1000)


class SyntheticMarket:
    """A ``MarketData`` of made-up but realistic candles, deterministic from ``seed``."""

    def __init__(
        self,
        clock: Clock,
        *,
        seed: int = 7,
        profiles: Mapping[str, SymbolProfile] | None = None,
        launch: datetime = LAUNCH,
    ) -> None:
        self.clock = clock
        self.seed = seed
        self.profiles = dict(PROFILES if profiles is None else profiles)
        self.launch = launch
        self._launch_day = _ms(launch) // (MINUTES_PER_DAY * MS_PER_MINUTE)

    @property
    def symbols(self) -> tuple[str, ...]:
        """The symbols this market trades."""
        return tuple(self.profiles)

    def now(self) -> datetime:
        """The clock's time: only bars closed by then exist."""
        return self.clock.now()

    def instrument(self, symbol: str) -> Instrument:
        """The symbol's tick size, lot step and minimums."""
        return self._profile(symbol).instrument

    def closed_candles(
        self,
        symbol: str,
        interval: timedelta,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 200,
    ) -> CandleBatch:
        """Up to ``limit`` closed candles (see ``MarketData.closed_candles``); never a gap."""
        bars = self.ohlcv(symbol, interval, start=start, end=end, limit=limit)
        step = timedelta(minutes=_interval_minutes(interval))
        candles = tuple(
            Candle(
                symbol=symbol,
                open_time=datetime.fromtimestamp(int(t) / 1000, UTC),
                interval=step,
                open=float(o),
                high=float(h),
                low=float(lo),
                close=float(c),
                volume=float(v),
            )
            for t, o, h, lo, c, v in zip(
                bars.open_time.tolist(),
                bars.open.tolist(),
                bars.high.tolist(),
                bars.low.tolist(),
                bars.close.tolist(),
                bars.volume.tolist(),
                strict=True,
            )
        )
        return CandleBatch(symbol=symbol, interval=step, candles=candles)

    def ohlcv(
        self,
        symbol: str,
        interval: timedelta,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int | None = 200,
    ) -> Ohlcv:
        """The same bars as ``closed_candles``, as arrays (``limit=None``: no limit)."""
        profile = self._profile(symbol)
        if limit is not None and limit < 1:
            raise MarketUnavailable(f"limit must be at least 1, got {limit}")
        width = _interval_minutes(interval)
        bar_ms = width * MS_PER_MINUTE
        last = _ms(self.now()) // bar_ms
        if end is not None:
            last = min(last, _ms(end) // bar_ms)
        first = -(-(self._launch_day * MINUTES_PER_DAY * MS_PER_MINUTE) // bar_ms)
        if start is not None:
            low = max(first, -(-_ms(start) // bar_ms))
            high = last if limit is None else min(last, low + limit)
        else:
            high = last
            low = first if limit is None else max(first, high - limit)
        return self._bars(profile, width, low, max(low, high))

    def _profile(self, symbol: str) -> SymbolProfile:
        profile = self.profiles.get(symbol)
        if profile is None:
            known = ", ".join(self.profiles)
            raise MarketUnavailable(f"the synthetic market has no symbol {symbol!r} ({known})")
        return profile

    def _bars(self, profile: SymbolProfile, width: int, low: int, high: int) -> Ohlcv:
        """Bars ``low … high−1`` (bar ``k`` opens at minute ``k · width`` since the epoch)."""
        count = high - low
        if count == 0:
            empty = np.empty(0)
            return Ohlcv(np.empty(0, dtype=np.int64), empty, empty, empty, empty, empty)
        path = _path(self.seed, profile, self._launch_day)
        first_minute = low * width
        end_minute = high * width
        first_day = first_minute // MINUTES_PER_DAY
        last_day = (end_minute - 1) // MINUTES_PER_DAY
        days = [path.minutes(d) for d in range(first_day, last_day + 1)]
        offset = first_minute - first_day * MINUTES_PER_DAY
        span = slice(offset, offset + count * width)

        def joined(name: str) -> Floats:
            values = np.concatenate([getattr(d, name) for d in days])[span]
            return values.reshape(count, width)

        tick = profile.instrument.tick_size
        price_places = _decimals(tick)

        def to_tick(x: Floats) -> Floats:
            return np.round(np.round(x / tick) * tick, price_places)

        lot = profile.instrument.qty_step
        volume = joined("volume").sum(axis=1)
        return Ohlcv(
            open_time=np.arange(low, high, dtype=np.int64) * width * MS_PER_MINUTE,
            open=to_tick(joined("open")[:, 0]),
            high=to_tick(joined("high").max(axis=1)),
            low=to_tick(joined("low").min(axis=1)),
            close=to_tick(joined("close")[:, -1]),
            volume=np.round(np.round(volume / lot) * lot, _decimals(lot)),
        )
