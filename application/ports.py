"""The ports the application needs from the outside world, as ``typing.Protocol``s.

Adapters live in ``infrastructure/``; the composition root picks them. Each port speaks
in domain values (``Candle``, ``Instrument``) and plain types, never in a venue's JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import numpy as np
import numpy.typing as npt

from domain.candles import Candle, Instrument
from domain.labels import LabelSpec
from domain.values import Direction


class MarketUnavailable(Exception):  # noqa: N818 - a trader-facing name, not "...Error"
    """The market could not be read for one symbol; the message is one line, fit to show."""


@dataclass(frozen=True, slots=True)
class Gap:
    """Bars missing between two candles that did arrive: reported, never filled in."""

    symbol: str
    after: datetime
    before: datetime

    @property
    def missing(self) -> timedelta:
        """How much time has no bars."""
        return self.before - self.after


@dataclass(frozen=True, slots=True)
class CandleBatch:
    """Closed candles of one symbol, oldest first, validated, and the gaps between them."""

    symbol: str
    interval: timedelta
    candles: tuple[Candle, ...]
    gaps: tuple[Gap, ...] = ()


class MarketData(Protocol):
    """Where candles and trading rules come from: Bybit, a candle file, or a synthetic market.

    Only **closed** candles are ever returned (a still-forming bar repaints signals).
    """

    def closed_candles(
        self,
        symbol: str,
        interval: timedelta,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 200,
    ) -> CandleBatch:
        """Up to ``limit`` closed candles.

        With ``start``: the first ``limit`` bars opening at or after it; otherwise the
        last ``limit`` bars closing at or before ``end`` (default: the market's now).
        Raises ``MarketUnavailable`` with a one-line reason.
        """
        ...

    def instrument(self, symbol: str) -> Instrument:
        """The symbol's tick size, lot step and minimums."""
        ...

    def now(self) -> datetime:
        """The market's clock (the exchange's server time), UTC."""
        ...


class Clock(Protocol):
    """The application's clock: the wall clock in production, a simulated one in the demo."""

    def now(self) -> datetime:
        """The current time, UTC and zone-aware."""
        ...


@dataclass(frozen=True, slots=True)
class ModelCard:
    """What the generator must know of a signal model (the rest is in its card file).

    ``features`` is the column order ``SignalModel.predict`` takes; ``feature_ranges`` the
    training range of each (a value outside is out of distribution); ``label`` the trade
    the confidence is the win probability of. The model is stale after
    ``trained_at + max_age``.
    """

    version: str
    features: tuple[str, ...]
    feature_ranges: Mapping[str, tuple[float, float]]
    theories: tuple[str, ...]
    interval: timedelta
    label: LabelSpec
    trained_at: datetime
    max_age: timedelta
    holdout_ece: float
    holdout_brier: float


@dataclass(frozen=True, slots=True)
class Predictions:
    """A model's answer for a batch of feature rows (row ``i`` of each array is row ``i``).

    * ``theory_up[i, j]``: theory ``theories[j]``'s probability that the price goes up;
    * ``direction[i]``: +1 long, −1 short, the direction the meta-learner prefers;
    * ``confidence[i]``: the calibrated probability that the trade in that direction, with
      the card's ``label`` levels, wins (NaN when a feature is NaN);
    * ``contributions[i, j]``: theory ``j``'s signed vote ``2 · P(up) − 1``, times the
      direction, times its meta weight: > 0 pushed for the trade, < 0 against it.
    """

    theories: tuple[str, ...]
    theory_up: npt.NDArray[np.float64]
    direction: npt.NDArray[np.int8]
    confidence: npt.NDArray[np.float64]
    contributions: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.confidence.shape[0])

    def direction_of(self, row: int) -> Direction:
        """Row ``row``'s direction."""
        return Direction.LONG if self.direction[row] > 0 else Direction.SHORT

    def theory_outputs(self, row: int) -> dict[str, float]:
        """Each theory's P(up) for row ``row``."""
        return {t: float(p) for t, p in zip(self.theories, self.theory_up[row], strict=True)}

    def contributions_of(self, row: int) -> dict[str, float]:
        """Each theory's contribution for row ``row`` (what ``Signal.Generated`` records)."""
        return {t: float(c) for t, c in zip(self.theories, self.contributions[row], strict=True)}


class SignalModel(Protocol):
    """A frozen signal model: theory models and a calibrated meta-learner (ONNX in production)."""

    @property
    def card(self) -> ModelCard:
        """Its version, features and their training ranges, label and age limit."""
        ...

    def predict(self, features: npt.NDArray[np.float64]) -> Predictions:
        """Predictions for rows of features, columns in ``card.features`` order."""
        ...
