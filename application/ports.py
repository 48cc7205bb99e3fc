"""The ports the application needs from the outside world, as ``typing.Protocol``s.

Adapters live in ``infrastructure/``; the composition root picks them. Each port speaks
in domain values (``Candle``, ``Instrument``, the venue facts of ``domain.venue``) and plain
types, never in a venue's JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

import numpy as np
import numpy.typing as npt

from domain.candles import Candle, Instrument
from domain.labels import LabelSpec
from domain.values import Direction
from domain.venue import (
    AttachedStops,
    Balance,
    ClosedPnl,
    Execution,
    FeeRates,
    FundingPayment,
    Order,
    OrderRequest,
    Position,
    Ticker,
)


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


# -- the exchange ------------------------------------------------------------------------


class ExchangeError(Exception):
    """An exchange call failed; the message is one line, fit to show (the CLI exits 2).

    ``code`` is the venue's own error code when it gave one. Never carries a secret.
    """

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class OrderRejected(ExchangeError):  # noqa: N818 - like MarketUnavailable
    """The venue answered and refused (balance, size, minimum notional, parameters)."""


class ExchangeUnavailable(ExchangeError):  # noqa: N818 - like MarketUnavailable
    """No definite answer after bounded retries (network, timeout, rate limit, server)."""


class ExchangeAuthFailed(ExchangeError):  # noqa: N818 - like MarketUnavailable
    """The keys were refused: invalid, wrong environment, no permission, or IP not bound."""


@dataclass(frozen=True, slots=True)
class ExecutionBatch:
    """A symbol's fills and funding in ``[start, through]``, oldest first, each once.

    ``latest`` is the latest time seen (``None``: nothing seen). A caller keeps a
    high-water mark per symbol and reads again from a few minutes before it, since a venue
    may show a fill late; re-reading is harmless, ids are unique.
    """

    symbol: str
    start: datetime
    through: datetime
    fills: tuple[Execution, ...]
    funding: tuple[FundingPayment, ...]
    latest: datetime | None


@dataclass(frozen=True, slots=True)
class ClosedPnlBatch:
    """A symbol's closed-P&L rows updated in ``[start, through]``, oldest first, one per order."""

    symbol: str
    start: datetime
    through: datetime
    rows: tuple[ClosedPnl, ...]
    latest: datetime | None


class PlacementStatus(StrEnum):
    """What became of a placement: accepted now, or found already there (never twice)."""

    PLACED = "placed"
    ALREADY_PLACED = "already_placed"


@dataclass(frozen=True, slots=True)
class Placement:
    """The venue's answer to ``Exchange.place``: its order id under our ``order_link_id``.

    ``attempts`` counts the requests sent (more than one after an ambiguous outcome; the
    same ``order_link_id`` every time, so the venue holds at most one order).
    """

    order_link_id: str
    order_id: str
    status: PlacementStatus
    attempts: int = 1


class CancelOutcome(StrEnum):
    """``cancelled``: the venue took the cancel; ``not_open``: nothing open under that id."""

    CANCELLED = "cancelled"
    NOT_OPEN = "not_open"


class Exchange(Protocol):
    """A trading venue in venue facts: Bybit, or the paper exchange. Symbols are linear
    perpetuals in one-way mode. Failures raise an ``ExchangeError`` with a one-line message.
    """

    def executions(
        self, symbol: str, start: datetime, end: datetime | None = None
    ) -> ExecutionBatch:
        """Fills and funding payments of ``symbol`` in ``[start, end]`` (default end: now).

        Any range length: the adapter splits it as the venue needs and reads every page.
        """
        ...

    def closed_pnl(
        self, symbol: str, start: datetime, end: datetime | None = None
    ) -> ClosedPnlBatch:
        """The venue's closed-P&L rows of ``symbol`` in ``[start, end]``."""
        ...

    def positions(self, symbol: str | None = None) -> tuple[Position, ...]:
        """The symbol's position (a flat one too), or every open position."""
        ...

    def order(self, symbol: str, *, order_link_id: str = "", order_id: str = "") -> Order | None:
        """One order by our link id or the venue's id, open or in its history; ``None`` when
        the venue does not know it (which does not prove it was never placed)."""
        ...

    def open_orders(self, symbol: str) -> tuple[Order, ...]:
        """The symbol's open orders, conditional ones (TP/SL) included."""
        ...

    def attached_stops(self, symbol: str, order_link_id: str) -> AttachedStops:
        """The TP/SL orders the venue made for the entry order ``order_link_id``."""
        ...

    def place(self, request: OrderRequest) -> Placement:
        """Place ``request`` at most once: idempotent under its ``order_link_id``."""
        ...

    def cancel(self, symbol: str, order_link_id: str) -> CancelOutcome:
        """Cancel an open order."""
        ...

    def set_leverage(self, symbol: str, leverage: float) -> None:
        """Use ``leverage`` on ``symbol`` (already so is fine)."""
        ...

    def ticker(self, symbol: str) -> Ticker:
        """The last and mark prices."""
        ...

    def fee_rates(self, symbol: str) -> FeeRates:
        """The account's maker and taker fee rates on ``symbol``."""
        ...

    def balance(self) -> Balance:
        """The account's equity and available balance."""
        ...

    def instrument(self, symbol: str) -> Instrument:
        """The symbol's tick size, lot step and minimums."""
        ...

    def now(self) -> datetime:
        """The venue's clock, UTC."""
        ...
