"""The paper exchange's pure core: one signal's order, filled and closed bar by bar.

A ``PaperState`` consumes closed candles one at a time (``step``) and returns the fills and
expiries they cause. The state is a plain value (``domain.paper_codec`` turns it into JSON
and back), so a restart resumes from a stored state, and feeding the same bars again
(a replay, or the overlap of a catch-up) yields nothing new. Fill ids are derived from the
signal id, the bar's open time and the leg, so nothing is recorded twice.

The conventions (limit entry at the far edge, stop first on an ambiguous bar, gaps filled at
the open, the entry bar trimmed, bars counted by time) are in ``docs/paper-exchange.md``.
Used for real paper trades and for shadow outcomes alike: it never writes anything.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import NamedTuple

from domain.candles import Candle
from domain.errors import DomainError
from domain.excursions import BarPoint, FillAt, Ohlc, long_space
from domain.pnl import TradePnl, trade_pnl
from domain.signal import check_levels
from domain.values import Direction, ExitReason, fraction, positive_price, text, utc

DEFAULT_EXPIRY_BARS = 4
DEFAULT_TIMEOUT_BARS = 96
DEFAULT_MAKER_FEE = 0.0002
DEFAULT_TAKER_FEE = 0.00055


class OrderType(StrEnum):
    """How an order meets the market: resting at a price, or at the next price there is."""

    LIMIT = "limit"
    MARKET = "market"


class FeeKind(StrEnum):
    """Maker (the fill added liquidity: a resting limit) or taker (it removed liquidity)."""

    MAKER = "maker"
    TAKER = "taker"


class FillSide(StrEnum):
    """Whether a fill opens the trade or closes it."""

    ENTRY = "entry"
    EXIT = "exit"


class Phase(StrEnum):
    """Where a paper order stands."""

    PENDING = "pending"
    OPEN = "open"
    CLOSED = "closed"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class PaperSettings:
    """The paper exchange's knobs: M, N (bars of the interval) and the fee rates."""

    expiry_bars: int = DEFAULT_EXPIRY_BARS
    timeout_bars: int = DEFAULT_TIMEOUT_BARS
    maker_fee: float = DEFAULT_MAKER_FEE
    taker_fee: float = DEFAULT_TAKER_FEE

    def __post_init__(self) -> None:
        for name in ("expiry_bars", "timeout_bars"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise DomainError(f"paper {name.replace('_', ' ')} must be a whole number >= 1")
        object.__setattr__(self, "maker_fee", fraction("paper maker fee", self.maker_fee))
        object.__setattr__(self, "taker_fee", fraction("paper taker fee", self.taker_fee))

    def rate(self, kind: FeeKind) -> float:
        """The fee rate (a fraction of notional) for a fill of ``kind``."""
        return self.maker_fee if kind is FeeKind.MAKER else self.taker_fee


@dataclass(frozen=True, slots=True)
class PaperOrder:
    """What the paper exchange is asked to do for one signal.

    ``entry_price`` ``None`` means a market entry. A missing stop or target leaves only the
    timeout to close the trade. ``at`` is when the order became live (a generated signal's
    time: the close of the bar it was computed on).
    """

    signal_id: str
    symbol: str
    direction: Direction
    at: datetime
    interval: timedelta
    entry_price: float | None = None
    stop_loss: float | None = None
    take_profit: float | None = None
    qty: float = 1.0
    take_profit_type: OrderType = OrderType.LIMIT

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "signal_id", text("signal id", self.signal_id, max_length=100))
        set_(self, "symbol", text("symbol", self.symbol, max_length=40).upper())
        set_(self, "direction", Direction(self.direction))
        set_(self, "at", utc(self.at))
        set_(self, "take_profit_type", OrderType(self.take_profit_type))
        if self.interval <= timedelta(0) or self.interval % timedelta(seconds=1):
            raise DomainError("paper order interval must be a positive whole number of seconds")
        for name in ("entry_price", "stop_loss", "take_profit"):
            value = getattr(self, name)
            if value is not None:
                set_(self, name, positive_price(name.replace("_", " "), value))
        set_(self, "qty", positive_price("quantity", self.qty))
        check_levels(
            self.direction, self.entry_price, self.entry_price, self.stop_loss, self.take_profit
        )

    @classmethod
    def for_signal(
        cls,
        *,
        signal_id: str,
        symbol: str,
        direction: Direction,
        at: datetime,
        interval: timedelta,
        entry_low: float | None,
        entry_high: float | None,
        stop_loss: float | None,
        take_profit: float | None,
        position_size: float | None,
    ) -> PaperOrder:
        """The order for a signal: a limit at the zone's far edge (top for a long, bottom for
        a short), a market order without an entry, quantity 1 without a size."""
        edge = entry_high if direction is Direction.LONG else entry_low
        return cls(
            signal_id=signal_id,
            symbol=symbol,
            direction=direction,
            at=at,
            interval=interval,
            entry_price=edge if edge is not None else entry_low or entry_high,
            stop_loss=stop_loss,
            take_profit=take_profit,
            qty=position_size if position_size is not None else 1.0,
        )

    @property
    def entry_type(self) -> OrderType:
        """A limit entry when there is an entry price, else a market entry."""
        return OrderType.MARKET if self.entry_price is None else OrderType.LIMIT


@dataclass(frozen=True, slots=True)
class PaperFill:
    """One simulated fill, shaped for the ledger.

    ``time`` is the earliest moment the bar proves the fill: the bar's open time for a fill
    at the open, its close time for a fill inside the bar or at the close. ``fill_id`` is the
    venue fill id. ``optimistic`` (exits on an ambiguous bar only) is the exit the optimistic
    tie-break (target first) would have made instead; it is for reports, never recorded.
    """

    fill_id: str
    signal_id: str
    symbol: str
    direction: Direction
    side: FillSide
    order_type: OrderType
    price: float
    qty: float
    fee: float
    fee_kind: FeeKind
    time: datetime
    bar_open_time: datetime
    point: BarPoint
    reason: ExitReason | None = None
    ambiguous: bool = False
    entry_bar_exit: bool = False
    after_gap: bool = False
    optimistic: PaperFill | None = None

    @property
    def at(self) -> FillAt:
        """Where the fill sits in its bar, for ``domain.excursions``."""
        return FillAt(self.price, self.bar_open_time, self.point)


@dataclass(frozen=True, slots=True)
class PaperExpiry:
    """A limit entry that did not fill within M bars: no trade exists."""

    signal_id: str
    time: datetime
    after_gap: bool = False


PaperEvent = PaperFill | PaperExpiry


@dataclass(frozen=True, slots=True)
class PaperOutcome:
    """What a paper order came to, with the P&L under both tie-breaks (net of both fees)."""

    phase: Phase
    entry: PaperFill | None
    exit: PaperFill | None
    pnl: TradePnl | None
    optimistic_pnl: TradePnl | None


def paper_fill_id(signal_id: str, bar_open_time: datetime, leg: str) -> str:
    """``paper-`` and 24 hex digits of SHA-256 over (signal id, bar open time, leg):
    30 characters of ``[a-z0-9-]``, the same on every replay."""
    key = f"{signal_id}\x1f{utc(bar_open_time).isoformat()}\x1f{leg}"
    return "paper-" + hashlib.sha256(key.encode()).hexdigest()[:24]


class _Exit(NamedTuple):
    """An exit found in long space, before it becomes a ``PaperFill``."""

    price: float
    point: BarPoint
    reason: ExitReason
    ambiguous: bool = False
    entry_bar_exit: bool = False


@dataclass(frozen=True, slots=True)
class PaperState:
    """One paper order's whole state: a plain value, resumable after a restart.

    ``anchor`` is the open time of the first bar slot at or after the order's time; bars are
    counted by time from it (slot k opens at ``anchor + k × interval``), so a missing bar
    still uses up its slot. ``gap`` says a bar was missing in the current phase.
    """

    order: PaperOrder
    settings: PaperSettings = PaperSettings()
    phase: Phase = Phase.PENDING
    anchor: datetime | None = None
    last_bar_open: datetime | None = None
    gap: bool = False
    entry_slot: int | None = None
    entry: PaperFill | None = None
    exit: PaperFill | None = None
    expiry: PaperExpiry | None = None

    def __post_init__(self) -> None:
        phase = Phase(self.phase)
        object.__setattr__(self, "phase", phase)
        started = self.anchor is not None and self.last_bar_open is not None
        entered = self.entry is not None and self.entry_slot is not None and started
        consistent = {
            Phase.PENDING: self.entry is None and self.exit is None and self.expiry is None,
            Phase.OPEN: entered and self.exit is None,
            Phase.CLOSED: entered and self.exit is not None,
            Phase.EXPIRED: started and self.entry is None and self.expiry is not None,
        }[phase]
        if not consistent:
            raise DomainError(f"a {phase.value} paper order cannot have these fills")

    @property
    def done(self) -> bool:
        """Closed or expired: no bar can change it any more."""
        return self.phase in (Phase.CLOSED, Phase.EXPIRED)

    @property
    def next_bar_open(self) -> datetime:
        """The earliest open time of a bar this order still needs (where a catch-up starts)."""
        if self.last_bar_open is None:
            return self.order.at
        return self.last_bar_open + self.order.interval

    def step(self, candle: Candle) -> tuple[PaperState, tuple[PaperEvent, ...]]:
        """Feed one closed candle; returns the new state and what happened on that bar.

        Bars before the order's time, bars already seen and bars after the order is done
        change nothing. A bar of another symbol or interval, an invalid bar, or a bar off the
        interval's grid is refused with ``DomainError``.
        """
        self._check(candle)
        if self.done or candle.open_time < self.order.at:
            return self, ()
        if self.last_bar_open is not None and candle.open_time <= self.last_bar_open:
            return self, ()
        interval = self.order.interval
        anchor = self.anchor
        if anchor is None:
            anchor = candle.open_time - ((candle.open_time - self.order.at) // interval) * interval
        offset = candle.open_time - anchor
        if offset % interval:
            raise DomainError(
                f"{candle.symbol} bar at {candle.open_time.isoformat()} is off the "
                f"{interval} grid of the bars before it"
            )
        slot = offset // interval
        seen = -1 if self.last_bar_open is None else (self.last_bar_open - anchor) // interval
        state = replace(
            self, anchor=anchor, last_bar_open=candle.open_time, gap=self.gap or slot > seen + 1
        )
        if state.phase is Phase.PENDING:
            return state._pending(candle, slot)
        return state._open(candle, slot)

    def _check(self, candle: Candle) -> None:
        utc(candle.open_time)
        problem = candle.problem()
        if problem is not None:
            raise DomainError(problem)
        if candle.symbol.upper() != self.order.symbol:
            raise DomainError(f"a {candle.symbol} bar was fed to a {self.order.symbol} order")
        if candle.interval != self.order.interval:
            raise DomainError(
                f"a {candle.interval} bar was fed to an order on {self.order.interval} bars"
            )

    def _pending(self, candle: Candle, slot: int) -> tuple[PaperState, tuple[PaperEvent, ...]]:
        expiry_bars = self.settings.expiry_bars
        if slot >= expiry_bars:
            return self._expire()
        order, sign = self.order, self._sign
        bar = long_space(candle, order.direction)
        if order.entry_price is None:
            fill: tuple[float, BarPoint] | None = (bar.open, BarPoint.OPEN)
        else:
            limit = sign * order.entry_price
            if bar.open <= limit:
                fill = (bar.open, BarPoint.OPEN)
            elif bar.low <= limit:
                fill = (limit, BarPoint.INSIDE)
            else:
                fill = None
        if fill is None:
            return self._expire() if slot == expiry_bars - 1 else (self, ())
        price, point = fill
        kind = FeeKind.TAKER if order.entry_type is OrderType.MARKET else FeeKind.MAKER
        entry = self._fill(
            candle, FillSide.ENTRY, "entry", sign * price, point, kind, order.entry_type
        )
        opened = replace(self, phase=Phase.OPEN, gap=False, entry_slot=slot, entry=entry)
        found = (
            _exit_on_entry_bar(bar, *opened._levels())
            if point is BarPoint.INSIDE
            else _exit_after_fill(bar, *opened._levels())
        )
        if found is None:
            return opened, (entry,)
        closed, exit_fill = opened._close(candle, found)
        return closed, (entry, exit_fill)

    def _open(self, candle: Candle, slot: int) -> tuple[PaperState, tuple[PaperEvent, ...]]:
        assert self.entry_slot is not None
        deadline = self.entry_slot + self.settings.timeout_bars
        bar = long_space(candle, self.order.direction)
        if slot > deadline:  # the deadline bar is missing: out at the first open after it
            found: _Exit | None = _Exit(bar.open, BarPoint.OPEN, ExitReason.TIMEOUT)
        else:
            found = _exit_after_fill(bar, *self._levels())
            if found is None and slot == deadline:
                found = _Exit(bar.close, BarPoint.CLOSE, ExitReason.TIMEOUT)
        if found is None:
            return self, ()
        closed, exit_fill = self._close(candle, found)
        return closed, (exit_fill,)

    @property
    def _sign(self) -> float:
        """+1 for a long, −1 for a short: a price times this is in long space."""
        return 1.0 if self.order.direction is Direction.LONG else -1.0

    def _levels(self) -> tuple[float | None, float | None]:
        """Stop and target in long space."""
        sign = self._sign
        stop, target = self.order.stop_loss, self.order.take_profit
        return (
            None if stop is None else sign * stop,
            None if target is None else sign * target,
        )

    def _close(self, candle: Candle, found: _Exit) -> tuple[PaperState, PaperFill]:
        sign = self._sign
        optimistic = None
        if found.ambiguous:
            _, target = self._levels()
            assert target is not None
            optimistic = self._exit_fill(
                candle,
                "exit-optimistic",
                _Exit(target, BarPoint.INSIDE, ExitReason.TAKE_PROFIT, True, found.entry_bar_exit),
                sign,
                None,
            )
        exit_fill = self._exit_fill(candle, "exit", found, sign, optimistic)
        return replace(self, phase=Phase.CLOSED, exit=exit_fill), exit_fill

    def _exit_fill(
        self, candle: Candle, leg: str, found: _Exit, sign: float, optimistic: PaperFill | None
    ) -> PaperFill:
        limit_target = (
            found.reason is ExitReason.TAKE_PROFIT
            and self.order.take_profit_type is OrderType.LIMIT
        )
        fill = self._fill(
            candle,
            FillSide.EXIT,
            leg,
            sign * found.price,
            found.point,
            FeeKind.MAKER if limit_target else FeeKind.TAKER,
            OrderType.LIMIT if limit_target else OrderType.MARKET,
        )
        return replace(
            fill,
            reason=found.reason,
            ambiguous=found.ambiguous,
            entry_bar_exit=found.entry_bar_exit,
            optimistic=optimistic,
        )

    def _fill(
        self,
        candle: Candle,
        side: FillSide,
        leg: str,
        price: float,
        point: BarPoint,
        kind: FeeKind,
        order_type: OrderType,
    ) -> PaperFill:
        order = self.order
        if not math.isfinite(price * order.qty):
            raise DomainError(f"a fill of {order.qty:g} at {price:g} has no finite value")
        fee = self.settings.rate(kind) * price * order.qty
        return PaperFill(
            fill_id=paper_fill_id(order.signal_id, candle.open_time, leg),
            signal_id=order.signal_id,
            symbol=order.symbol,
            direction=order.direction,
            side=side,
            order_type=order_type,
            price=price,
            qty=order.qty,
            fee=fee,
            fee_kind=kind,
            time=candle.open_time if point is BarPoint.OPEN else candle.close_time,
            bar_open_time=candle.open_time,
            point=point,
            after_gap=self.gap,
        )

    def _expire(self) -> tuple[PaperState, tuple[PaperEvent, ...]]:
        assert self.anchor is not None
        expiry = PaperExpiry(
            signal_id=self.order.signal_id,
            time=self.anchor + self.settings.expiry_bars * self.order.interval,
            after_gap=self.gap,
        )
        return replace(self, phase=Phase.EXPIRED, expiry=expiry), (expiry,)

    @property
    def outcome(self) -> PaperOutcome:
        """The order's result so far, with the conservative and optimistic P&L once closed."""
        pnl = optimistic_pnl = None
        if self.entry is not None and self.exit is not None:
            pnl = _net(self.entry, self.exit)
            alternative = self.exit.optimistic
            optimistic_pnl = pnl if alternative is None else _net(self.entry, alternative)
        return PaperOutcome(self.phase, self.entry, self.exit, pnl, optimistic_pnl)


def run(state: PaperState, candles: Iterable[Candle]) -> tuple[PaperState, list[PaperEvent]]:
    """Feed ``candles`` in order; the final state and every event, in order."""
    events: list[PaperEvent] = []
    for candle in candles:
        state, happened = state.step(candle)
        events.extend(happened)
    return state, events


def _net(entry: PaperFill, exit_fill: PaperFill) -> TradePnl:
    return trade_pnl(
        entry.direction, entry.price, exit_fill.price, entry.qty, entry.fee + exit_fill.fee
    )


def _exit_after_fill(bar: Ohlc, stop: float | None, target: float | None) -> _Exit | None:
    """The exit on a bar that lies wholly after the entry fill (long space)."""
    if stop is not None and bar.open <= stop:
        return _Exit(bar.open, BarPoint.OPEN, ExitReason.STOP_LOSS)
    if target is not None and bar.open >= target:
        return _Exit(bar.open, BarPoint.OPEN, ExitReason.TAKE_PROFIT)
    stop_hit = stop is not None and bar.low <= stop
    target_hit = target is not None and bar.high >= target
    if stop is not None and stop_hit:
        return _Exit(stop, BarPoint.INSIDE, ExitReason.STOP_LOSS, ambiguous=target_hit)
    if target is not None and target_hit:
        return _Exit(target, BarPoint.INSIDE, ExitReason.TAKE_PROFIT)
    return None


def _exit_on_entry_bar(bar: Ohlc, stop: float | None, target: float | None) -> _Exit | None:
    """The exit on the bar whose inside filled the entry (long space): the stop counts if
    the low reached it; the target only if the bar closed at or beyond it."""
    stop_hit = stop is not None and bar.low <= stop
    target_hit = target is not None and bar.close >= target
    if stop is not None and stop_hit:
        return _Exit(stop, BarPoint.INSIDE, ExitReason.STOP_LOSS, target_hit, True)
    if target is not None and target_hit:
        return _Exit(target, BarPoint.INSIDE, ExitReason.TAKE_PROFIT, False, True)
    return None
