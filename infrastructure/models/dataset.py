"""Training data: candles to feature rows and labels, time segments and walk-forward folds.

Plain numpy (no scikit-learn), so the fold builder can be tested on its own. Rows are
stamped with their **bar number** (open time ÷ interval): folds and segments cut on bar
numbers, so every symbol shares the same boundaries.
"""

from __future__ import annotations

import hashlib
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt

from domain.features import FEATURES, WARMUP_BARS, Ohlcv, atr, feature_matrix
from domain.labels import LabelSpec, first_touch_up, trade_wins
from infrastructure.market.replay import EARLIEST, CandleFileError, ReplayMarket
from infrastructure.market.synthetic import SyntheticMarket

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

THEORY_TARGET_ATR = 2.0
"""Theories predict whether the price moves this many ATRs up before as many down."""
SYNTHETIC_START = datetime(2024, 1, 8, tzinfo=UTC)
"""Where the shipped model's synthetic training window starts."""
SYNTHETIC_DAYS = 728
SYNTHETIC_SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


class TrainingDataError(ValueError):
    """The training data cannot be used; the message is one line."""


@dataclass(frozen=True, slots=True)
class Series:
    """One symbol's bars without a gap, oldest first."""

    symbol: str
    bars: Ohlcv


@dataclass(frozen=True, slots=True)
class TrainingData:
    """The bars a model is trained (or evaluated) on, and where they came from."""

    source: str
    series: list[Series]
    interval: timedelta


@dataclass(frozen=True, slots=True)
class Dataset:
    """Feature rows with complete features and labels, in (symbol, time) order."""

    symbol: npt.NDArray[np.str_]
    bar: Ints
    features: Floats
    win_long: Floats
    win_short: Floats
    up: Floats

    def __len__(self) -> int:
        return int(self.bar.shape[0])

    def take(self, rows: Ints) -> Dataset:
        """The dataset restricted to ``rows``."""
        return Dataset(
            self.symbol[rows],
            self.bar[rows],
            self.features[rows],
            self.win_long[rows],
            self.win_short[rows],
            self.up[rows],
        )


@dataclass(frozen=True, slots=True)
class Fold:
    """Row indices a model trains on, and the later rows it predicts."""

    train: Ints
    test: Ints


def build_dataset(series: Sequence[Series], interval: timedelta, spec: LabelSpec) -> Dataset:
    """Features (``FEATURES`` order), trade labels and theory targets of every series."""
    step_ms = interval // timedelta(milliseconds=1)
    parts: list[Dataset] = []
    for s in series:
        x = feature_matrix(s.bars)
        a = atr(s.bars.high, s.bars.low, s.bars.close)
        long_ = trade_wins(s.bars, a, 1, spec)
        short = trade_wins(s.bars, a, -1, spec)
        up = first_touch_up(s.bars, a, THEORY_TARGET_ATR, spec.horizon_bars)
        keep = np.flatnonzero(np.isfinite(x).all(axis=1) & ~np.isnan(long_) & ~np.isnan(short))
        parts.append(
            Dataset(
                np.full(keep.shape[0], s.symbol),
                s.bars.open_time[keep] // step_ms,
                x[keep],
                long_[keep],
                short[keep],
                up[keep],
            )
        )
    if not parts or sum(len(p) for p in parts) == 0:
        raise TrainingDataError(
            f"no usable rows: each series needs more than {WARMUP_BARS + spec.horizon_bars} bars"
        )
    return Dataset(
        np.concatenate([p.symbol for p in parts]),
        np.concatenate([p.bar for p in parts]),
        np.concatenate([p.features for p in parts]).reshape(-1, len(FEATURES)),
        np.concatenate([p.win_long for p in parts]),
        np.concatenate([p.win_short for p in parts]),
        np.concatenate([p.up for p in parts]),
    )


def data_hash(series: Sequence[Series]) -> str:
    """SHA-256 of the bars (symbol, open times and OHLCV as little-endian 64-bit values)."""
    digest = hashlib.sha256()
    for s in series:
        digest.update(s.symbol.encode())
        b = s.bars
        digest.update(b.open_time.astype("<i8").tobytes())
        for values in (b.open, b.high, b.low, b.close, b.volume):
            digest.update(values.astype("<f8").tobytes())
    return digest.hexdigest()


def walk_forward_folds(bar: Ints, n_folds: int, purge_bars: int) -> list[Fold]:
    """Expanding walk-forward folds with a purge gap.

    The span of bar numbers is cut into ``n_folds + 1`` equal blocks. Fold ``k``
    (1 … ``n_folds``) tests on block ``k`` and trains on the rows of earlier blocks whose
    bar number + ``purge_bars`` is before block ``k`` starts, so that no training label
    (which looks ``purge_bars`` ahead) overlaps the test block.
    """
    if n_folds < 1 or purge_bars < 0:
        raise ValueError("n_folds must be >= 1 and purge_bars >= 0")
    first, last = int(bar.min()), int(bar.max()) + 1
    edges = [first + (last - first) * k // (n_folds + 1) for k in range(n_folds + 2)]
    folds = []
    for k in range(1, n_folds + 1):
        begin, end = edges[k], edges[k + 1]
        train = np.flatnonzero(bar + purge_bars < begin)
        test = np.flatnonzero((bar >= begin) & (bar < end))
        if train.size == 0 or test.size == 0:
            raise TrainingDataError(
                f"walk-forward fold {k} has no training or test rows: too little data "
                f"for {n_folds} folds with a purge of {purge_bars} bars"
            )
        folds.append(Fold(train, test))
    return folds


def split_segments(
    bar: Ints, fractions: tuple[float, float, float], purge_bars: int
) -> tuple[Ints, Ints, Ints]:
    """Rows of the training, calibration and holdout segments, in time order, each purged:
    a row whose bar + ``purge_bars`` reaches into the next segment is dropped."""
    first, last = int(bar.min()), int(bar.max()) + 1
    span = last - first
    cut1 = first + math.floor(span * fractions[0])
    cut2 = first + math.floor(span * (fractions[0] + fractions[1]))
    train = np.flatnonzero(bar + purge_bars < cut1)
    calibration = np.flatnonzero((bar >= cut1) & (bar + purge_bars < cut2))
    holdout = np.flatnonzero(bar >= cut2)
    for name, rows in (("training", train), ("calibration", calibration), ("holdout", holdout)):
        if rows.size == 0:
            raise TrainingDataError(f"the {name} segment is empty: too little data")
    return train, calibration, holdout


def synthetic_series(
    seed: int, symbols: Sequence[str], start: datetime, end: datetime, interval: timedelta
) -> list[Series]:
    """Bars of the synthetic market to ``end``, from early enough before ``start`` that the
    first complete feature row is the bar opening at ``start``."""

    class _At:
        def now(self) -> datetime:
            return end

    market = SyntheticMarket(_At(), seed=seed)
    begin = start - (WARMUP_BARS - 1) * interval
    return [Series(s, market.ohlcv(s, interval, start=begin, end=end, limit=None)) for s in symbols]


def synthetic_data(
    seed: int = 7, days: int = SYNTHETIC_DAYS, start: datetime = SYNTHETIC_START
) -> TrainingData:
    """The synthetic market's 15-minute bars of ``days`` days from ``start`` (by default the
    shipped model's window)."""
    interval = timedelta(minutes=15)
    end = start + timedelta(days=days)
    series = synthetic_series(seed, SYNTHETIC_SYMBOLS, start, end, interval)
    return TrainingData(f"synthetic seed={seed}", series, interval)


def read_candle_csv(path: Path, interval: timedelta) -> list[Series]:
    """A candle file, read and validated by the replay adapter (its format and one-line errors:
    ``infrastructure.market.replay``), as one series per symbol and stretch without a gap."""
    try:
        market = ReplayMarket.from_file(path, interval)
    except CandleFileError as error:
        raise TrainingDataError(str(error)) from None
    step_ms = interval // timedelta(milliseconds=1)
    series: list[Series] = []
    for symbol in market.symbols:
        batch = market.closed_candles(symbol, interval, start=EARLIEST, limit=sys.maxsize)
        bars = Ohlcv.of(batch.candles)
        cuts = np.flatnonzero(np.diff(bars.open_time) != step_ms) + 1
        for chunk in np.split(np.arange(len(bars)), cuts):
            part = Ohlcv(*(getattr(bars, f)[chunk] for f in Ohlcv.__slots__))
            series.append(Series(symbol, part))
    return series
