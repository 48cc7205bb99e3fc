"""Venue facts: what an exchange says happened, in values the monitor and order helper read.

An exchange reports **executions** (fills of orders, and a few fills it makes itself:
liquidations, auto-deleveraging, delivery), **funding payments** (never fills: money moved
between longs and shorts on the open position), **positions**, **orders** (with their
attached take-profit and stop-loss), and **closed-P&L rows** (the venue's own P&L per
closing order). An **order request** is what tradewatch asks a venue to do.

The rules over these facts (the exit-reason classification, the ``orderLinkId``
derivation, the P&L check against the venue's closed P&L) are in ``domain.venue_rules``.
All money is in the quote currency (USDT for Bybit's linear perpetuals). Times are UTC.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from domain.errors import DomainError
from domain.values import Direction, utc

MAX_LINK_ID = 36
"""Bybit's longest ``orderLinkId``."""
_LINK_ID = re.compile(r"[A-Za-z0-9_-]{1,36}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_link_id(link: str) -> str:
    """``link`` if it is a valid ``orderLinkId`` (1-36 of ``[A-Za-z0-9_-]``)."""
    if not _LINK_ID.fullmatch(link):
        raise DomainError(f"order link id {link[:40]!r} is not 1 to 36 of A-Z a-z 0-9 _ -")
    return link


class Side(StrEnum):
    """An order's or a fill's side on the venue."""

    BUY = "buy"
    SELL = "sell"

    @property
    def direction(self) -> Direction:
        """The position direction this side opens: buy opens a long."""
        return Direction.LONG if self is Side.BUY else Direction.SHORT

    @property
    def opposite(self) -> Side:
        """The side that closes what this side opened."""
        return Side.SELL if self is Side.BUY else Side.BUY

    @classmethod
    def opening(cls, direction: Direction) -> Side:
        """The side that opens a position in ``direction``."""
        return cls.BUY if direction is Direction.LONG else cls.SELL


class VenueExit(StrEnum):
    """Why the venue closed (part of) a position, read from its own fields.

    ``take_profit``, ``stop_loss``, ``manual`` and ``liquidation`` are also
    ``domain.values.ExitReason`` values; the others are finer (or venue-only) reasons.
    """

    TAKE_PROFIT = "take_profit"
    PARTIAL_TAKE_PROFIT = "partial_take_profit"
    STOP_LOSS = "stop_loss"
    PARTIAL_STOP_LOSS = "partial_stop_loss"
    TRAILING_STOP = "trailing_stop"
    LIQUIDATION = "liquidation"
    ADL = "adl"
    MANUAL = "manual"
    DELIVERY = "delivery"
    UNKNOWN = "unknown"


# -- the facts ------------------------------------------------------------------------


def _finite(name: str, value: float, *, low: float = -math.inf, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DomainError(f"{name} must be a number, got {value!r:.40}")
    number = float(value)
    if not math.isfinite(number) or number < low or (positive and number <= 0):
        bound = "> 0" if positive else (f">= {low:g}" if low > -math.inf else "finite")
        raise DomainError(f"{name} must be a finite number {bound}, got {value!r:.40}")
    return number


def _label(name: str, value: str, *, max_length: int = 64) -> str:
    if not isinstance(value, str) or len(value) > max_length or _CONTROL.search(value):
        raise DomainError(f"{name} must be text of at most {max_length} printable characters")
    return value


def _optional_price(name: str, value: float | None) -> float | None:
    return None if value is None else _finite(name, value, positive=True)


@dataclass(frozen=True, slots=True)
class Execution:
    """One fill on the venue (Bybit: a ``/v5/execution/list`` row that is not funding).

    ``fee`` is paid (positive) or a rebate (negative). ``closed_qty`` is the part that
    reduced the position (``closedSize``); the rest opened or added to it. ``reason`` is
    set on a fill that closed something (``exit_reason``). ``parent_order_link_id`` is the
    entry order's link id for a fill of an attached TP/SL order (from the order history),
    else ``""``. The raw ``exec_type``, ``stop_order_type`` and ``create_type`` are kept
    for the audit trail.
    """

    exec_id: str
    order_id: str
    order_link_id: str
    symbol: str
    side: Side
    price: float
    qty: float
    fee: float
    time: datetime
    exec_type: str = "Trade"
    stop_order_type: str = ""
    create_type: str = ""
    order_type: str = ""
    closed_qty: float = 0.0
    is_maker: bool = False
    fee_rate: float = 0.0
    mark_price: float | None = None
    parent_order_link_id: str = ""
    reason: VenueExit | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        for name in ("exec_id", "order_id", "symbol"):
            if not _label(name.replace("_", " "), getattr(self, name), max_length=100):
                raise DomainError(f"execution {name.replace('_', ' ')} must not be empty")
        for name in ("order_link_id", "parent_order_link_id"):
            _label(name.replace("_", " "), getattr(self, name), max_length=MAX_LINK_ID)
        for name in ("exec_type", "stop_order_type", "create_type", "order_type"):
            _label(name.replace("_", " "), getattr(self, name))
        set_(self, "side", Side(self.side))
        set_(self, "time", utc(self.time))
        set_(self, "price", _finite("execution price", self.price, positive=True))
        set_(self, "qty", _finite("execution quantity", self.qty, positive=True))
        set_(self, "fee", _finite("execution fee", self.fee))
        set_(self, "fee_rate", _finite("fee rate", self.fee_rate))
        set_(self, "closed_qty", _finite("closed quantity", self.closed_qty, low=0.0))
        set_(self, "mark_price", _optional_price("mark price", self.mark_price))
        if self.closed_qty > self.qty * (1 + 1e-12):
            raise DomainError(f"execution {self.exec_id} closed more than it filled")
        if self.reason is not None:
            set_(self, "reason", VenueExit(self.reason))

    @property
    def notional(self) -> float:
        """Price × quantity."""
        return self.price * self.qty

    @property
    def opened_qty(self) -> float:
        """The part of the fill that opened or added to a position."""
        return max(self.qty - self.closed_qty, 0.0)

    @property
    def is_exit(self) -> bool:
        """Whether the fill reduced a position."""
        return self.closed_qty > 0


@dataclass(frozen=True, slots=True)
class FundingPayment:
    """Funding settled on an open position: money, never a fill.

    ``amount`` is signed from the trader's point of view: positive received, negative
    paid. ``rate`` is the market's funding rate (positive: longs pay shorts).
    ``position_qty`` is the whole position's size then (Bybit's funding row reports it as
    its "quantity", which is why such rows must never be read as fills).
    """

    funding_id: str
    symbol: str
    time: datetime
    amount: float
    rate: float
    position_direction: Direction
    position_qty: float
    mark_price: float | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if not _label("funding id", self.funding_id, max_length=100) or not self.symbol:
            raise DomainError("a funding payment needs an id and a symbol")
        _label("symbol", self.symbol)
        set_(self, "time", utc(self.time))
        set_(self, "amount", _finite("funding amount", self.amount))
        set_(self, "rate", _finite("funding rate", self.rate))
        set_(self, "position_direction", Direction(self.position_direction))
        set_(self, "position_qty", _finite("position size", self.position_qty, positive=True))
        set_(self, "mark_price", _optional_price("mark price", self.mark_price))


@dataclass(frozen=True, slots=True)
class Position:
    """A position on the venue (one-way mode: at most one per symbol). Flat: ``side`` None."""

    symbol: str
    side: Side | None
    qty: float
    avg_price: float | None = None
    mark_price: float | None = None
    liq_price: float | None = None
    take_profit: float | None = None
    stop_loss: float | None = None
    trailing_stop: float | None = None
    leverage: float | None = None
    unrealised_pnl: float = 0.0
    realised_pnl: float = 0.0
    status: str = "Normal"
    adl_rank: int = 0
    updated: datetime | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        _label("symbol", self.symbol)
        _label("position status", self.status)
        set_(self, "side", None if self.side is None else Side(self.side))
        set_(self, "qty", _finite("position size", self.qty, low=0.0))
        if (self.side is None) != (self.qty == 0):
            raise DomainError(f"{self.symbol} position: a side without a size or a size alone")
        for name in ("avg_price", "mark_price", "liq_price", "take_profit", "stop_loss"):
            set_(self, name, _optional_price(name.replace("_", " "), getattr(self, name)))
        for name in ("trailing_stop", "leverage"):
            set_(self, name, _optional_price(name.replace("_", " "), getattr(self, name)))
        set_(self, "unrealised_pnl", _finite("unrealised P&L", self.unrealised_pnl))
        set_(self, "realised_pnl", _finite("realised P&L", self.realised_pnl))
        if self.updated is not None:
            set_(self, "updated", utc(self.updated))

    @property
    def direction(self) -> Direction | None:
        """Long, short, or ``None`` when flat."""
        return None if self.side is None else self.side.direction


OPEN_ORDER_STATES = frozenset({"New", "PartiallyFilled", "Untriggered"})
TAKE_PROFIT_TYPES = frozenset({"TakeProfit", "PartialTakeProfit"})
STOP_LOSS_TYPES = frozenset({"StopLoss", "PartialStopLoss"})


@dataclass(frozen=True, slots=True)
class Order:
    """An order on the venue, open or in its history, with its TP/SL levels.

    ``status`` is the venue's (Bybit: ``New``, ``PartiallyFilled``, ``Untriggered``,
    ``Filled``, ``Cancelled``, ``Rejected``, ``Deactivated``...). An attached take-profit or
    stop-loss order has a ``stop_order_type`` and names its entry in
    ``parent_order_link_id``. ``price`` is ``None`` for a market order.
    """

    order_id: str
    order_link_id: str
    symbol: str
    side: Side
    order_type: str
    qty: float
    status: str
    price: float | None = None
    parent_order_link_id: str = ""
    stop_order_type: str = ""
    create_type: str = ""
    cancel_type: str = ""
    reject_reason: str = ""
    trigger_price: float | None = None
    take_profit: float | None = None
    stop_loss: float | None = None
    tp_limit_price: float | None = None
    sl_limit_price: float | None = None
    tpsl_mode: str = ""
    reduce_only: bool = False
    filled_qty: float = 0.0
    avg_fill_price: float | None = None
    created: datetime | None = None
    updated: datetime | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if not _label("order id", self.order_id, max_length=100):
            raise DomainError("an order needs an id")
        _label("order link id", self.order_link_id, max_length=MAX_LINK_ID)
        _label("parent order link id", self.parent_order_link_id, max_length=MAX_LINK_ID)
        for name in (
            "symbol",
            "order_type",
            "status",
            "stop_order_type",
            "create_type",
            "cancel_type",
            "reject_reason",
            "tpsl_mode",
        ):
            _label(name.replace("_", " "), getattr(self, name))
        set_(self, "side", Side(self.side))
        set_(self, "qty", _finite("order quantity", self.qty, low=0.0))
        set_(self, "filled_qty", _finite("filled quantity", self.filled_qty, low=0.0))
        for name in (
            "price",
            "trigger_price",
            "take_profit",
            "stop_loss",
            "tp_limit_price",
            "sl_limit_price",
            "avg_fill_price",
        ):
            set_(self, name, _optional_price(name.replace("_", " "), getattr(self, name)))
        for name in ("created", "updated"):
            moment = getattr(self, name)
            if moment is not None:
                set_(self, name, utc(moment))

    @property
    def is_open(self) -> bool:
        """Still working on the venue (resting, partly filled, or waiting for its trigger)."""
        return self.status in OPEN_ORDER_STATES

    @property
    def is_take_profit(self) -> bool:
        """An attached (or position) take-profit order."""
        return self.stop_order_type in TAKE_PROFIT_TYPES

    @property
    def is_stop_loss(self) -> bool:
        """An attached (or position) stop-loss order."""
        return self.stop_order_type in STOP_LOSS_TYPES


@dataclass(frozen=True, slots=True)
class AttachedStops:
    """The take-profit and stop-loss orders the venue made for an entry order."""

    entry_order_link_id: str
    take_profits: tuple[Order, ...] = ()
    stop_losses: tuple[Order, ...] = ()

    @property
    def protected(self) -> bool:
        """At least one open stop-loss order guards the entry."""
        return any(o.is_open for o in self.stop_losses)


@dataclass(frozen=True, slots=True)
class ClosedPnl:
    """The venue's own P&L for one closing order (Bybit ``/v5/position/closed-pnl``).

    Bybit's closed P&L is net: position P&L − opening fee − closing fee − funding.
    ``side`` is the closing order's side.
    """

    order_id: str
    symbol: str
    side: Side
    closed_qty: float
    avg_entry_price: float
    avg_exit_price: float
    closed_pnl: float
    created: datetime
    updated: datetime
    open_fee: float | None = None
    close_fee: float | None = None
    fill_count: int = 0
    exec_type: str = "Trade"

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if not _label("order id", self.order_id, max_length=100):
            raise DomainError("a closed P&L row needs an order id")
        _label("symbol", self.symbol)
        _label("exec type", self.exec_type)
        set_(self, "side", Side(self.side))
        set_(self, "closed_qty", _finite("closed size", self.closed_qty, positive=True))
        set_(self, "avg_entry_price", _finite("entry price", self.avg_entry_price, positive=True))
        set_(self, "avg_exit_price", _finite("exit price", self.avg_exit_price, positive=True))
        set_(self, "closed_pnl", _finite("closed P&L", self.closed_pnl))
        for name in ("open_fee", "close_fee"):
            value = getattr(self, name)
            if value is not None:
                set_(self, name, _finite(name.replace("_", " "), value))
        set_(self, "created", utc(self.created))
        set_(self, "updated", utc(self.updated))


class TimeInForce(StrEnum):
    """How long an order works: until cancelled, immediate-or-cancel, fill-or-kill, maker."""

    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    POST_ONLY = "PostOnly"


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """What tradewatch asks a venue to place: an entry with its bracket, or a close.

    ``price`` ``None`` is a market order. A take-profit rests as a limit order at
    ``take_profit_limit`` (default: ``take_profit``) once triggered; the stop loss closes
    at market. A ``reduce_only`` close carries no TP/SL (Bybit refuses both together).
    Prices and quantity are taken as given: round them to the instrument first.
    """

    symbol: str
    side: Side
    qty: float
    order_link_id: str
    price: float | None = None
    take_profit: float | None = None
    take_profit_limit: float | None = None
    stop_loss: float | None = None
    reduce_only: bool = False
    time_in_force: TimeInForce = TimeInForce.GTC

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        symbol = _label("symbol", self.symbol, max_length=30).strip().upper()
        if not re.fullmatch(r"[A-Z0-9]{2,30}", symbol):
            raise DomainError(f"{self.symbol!r:.40} is not a symbol")
        set_(self, "symbol", symbol)
        set_(self, "side", Side(self.side))
        set_(self, "time_in_force", TimeInForce(self.time_in_force))
        check_link_id(self.order_link_id)
        set_(self, "qty", _finite("quantity", self.qty, positive=True))
        for name in ("price", "take_profit", "take_profit_limit", "stop_loss"):
            set_(self, name, _optional_price(name.replace("_", " "), getattr(self, name)))
        if self.take_profit_limit is not None and self.take_profit is None:
            raise DomainError("a take-profit limit price needs a take-profit trigger")
        if self.take_profit is not None and self.take_profit_limit is None:
            set_(self, "take_profit_limit", self.take_profit)
        if self.reduce_only and (self.take_profit is not None or self.stop_loss is not None):
            raise DomainError("a reduce-only close cannot carry a take-profit or stop loss")
        self._check_sides()

    def _check_sides(self) -> None:
        """A long's target above its entry and stop below; a short's the other way."""
        up = 1.0 if self.side is Side.BUY else -1.0
        reference = self.price
        for name, level, sign in (
            ("take-profit", self.take_profit, up),
            ("take-profit limit", self.take_profit_limit, up),
            ("stop loss", self.stop_loss, -up),
        ):
            if level is not None and reference is not None and (level - reference) * sign <= 0:
                where = "above" if sign > 0 else "below"
                raise DomainError(
                    f"{self.symbol} {self.side.value} at {reference:g}: the {name} {level:g} "
                    f"must be {where} the entry"
                )
        tp, sl = self.take_profit, self.stop_loss
        if tp is not None and sl is not None and (tp - sl) * up <= 0:
            raise DomainError(f"{self.symbol}: the take-profit and stop loss are crossed")


@dataclass(frozen=True, slots=True)
class FeeRates:
    """The account's fee rates on a symbol, as fractions of notional."""

    maker: float
    taker: float

    def __post_init__(self) -> None:
        for name in ("maker", "taker"):
            value = _finite(f"{name} fee rate", getattr(self, name))
            if not -0.01 <= value <= 0.01:
                raise DomainError(f"{name} fee rate {value:g} is not a plausible fraction")


@dataclass(frozen=True, slots=True)
class Balance:
    """The account's money (Bybit unified account, in USD): what sizing and previews read."""

    equity: float
    wallet_balance: float
    available: float
    unrealised_pnl: float = 0.0

    def __post_init__(self) -> None:
        for name in ("equity", "wallet_balance", "available", "unrealised_pnl"):
            object.__setattr__(self, name, _finite(name.replace("_", " "), getattr(self, name)))


@dataclass(frozen=True, slots=True)
class Ticker:
    """The symbol's latest prices; ``time`` is the venue's clock when it answered."""

    symbol: str
    last_price: float
    mark_price: float
    time: datetime
    bid: float | None = None
    ask: float | None = None
    funding_rate: float | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        _label("symbol", self.symbol)
        set_(self, "last_price", _finite("last price", self.last_price, positive=True))
        set_(self, "mark_price", _finite("mark price", self.mark_price, positive=True))
        set_(self, "time", utc(self.time))
        set_(self, "bid", _optional_price("bid", self.bid))
        set_(self, "ask", _optional_price("ask", self.ask))
        if self.funding_rate is not None:
            set_(self, "funding_rate", _finite("funding rate", self.funding_rate))
