"""A paper order's state as plain JSON values and back, so a restart resumes where it stopped.

Times are ISO 8601 strings in UTC, the interval is whole seconds, prices and fees are
floats (JSON keeps a float exactly), enums are their values. ``state_from_dict`` rebuilds
every value through its validating constructor; anything malformed raises ``DomainError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from domain.errors import DomainError
from domain.excursions import BarPoint
from domain.paper import (
    FeeKind,
    FillSide,
    OrderType,
    PaperExpiry,
    PaperFill,
    PaperOrder,
    PaperSettings,
    PaperState,
    Phase,
)
from domain.values import Direction, ExitReason, utc

STATE_VERSION = 1


def state_to_dict(state: PaperState) -> dict[str, Any]:
    """``state`` as JSON-ready values."""
    order, settings = state.order, state.settings
    return {
        "version": STATE_VERSION,
        "order": {
            "signal_id": order.signal_id,
            "symbol": order.symbol,
            "direction": order.direction.value,
            "at": order.at.isoformat(),
            "interval_seconds": int(order.interval.total_seconds()),
            "entry_price": order.entry_price,
            "stop_loss": order.stop_loss,
            "take_profit": order.take_profit,
            "qty": order.qty,
            "take_profit_type": order.take_profit_type.value,
        },
        "settings": {
            "expiry_bars": settings.expiry_bars,
            "timeout_bars": settings.timeout_bars,
            "maker_fee": settings.maker_fee,
            "taker_fee": settings.taker_fee,
        },
        "phase": state.phase.value,
        "anchor": _time_out(state.anchor),
        "last_bar_open": _time_out(state.last_bar_open),
        "gap": state.gap,
        "entry_slot": state.entry_slot,
        "entry": _fill_out(state.entry),
        "exit": _fill_out(state.exit),
        "expiry": None
        if state.expiry is None
        else {
            "signal_id": state.expiry.signal_id,
            "time": state.expiry.time.isoformat(),
            "after_gap": state.expiry.after_gap,
        },
    }


def state_from_dict(data: Mapping[str, Any]) -> PaperState:
    """The state stored by ``state_to_dict``."""
    try:
        if data["version"] != STATE_VERSION:
            raise DomainError(f"paper state version {data['version']!r} is not {STATE_VERSION}")
        order = data["order"]
        expiry = data["expiry"]
        entry_slot = data["entry_slot"]
        if entry_slot is not None and (isinstance(entry_slot, bool) or entry_slot < 0):
            raise DomainError(f"paper state entry slot {entry_slot!r} is not a bar number")
        return PaperState(
            order=PaperOrder(
                signal_id=order["signal_id"],
                symbol=order["symbol"],
                direction=Direction(order["direction"]),
                at=_time_in(order["at"]),
                interval=timedelta(seconds=int(order["interval_seconds"])),
                entry_price=order["entry_price"],
                stop_loss=order["stop_loss"],
                take_profit=order["take_profit"],
                qty=order["qty"],
                take_profit_type=OrderType(order["take_profit_type"]),
            ),
            settings=PaperSettings(**data["settings"]),
            phase=Phase(data["phase"]),
            anchor=_optional_time_in(data["anchor"]),
            last_bar_open=_optional_time_in(data["last_bar_open"]),
            gap=bool(data["gap"]),
            entry_slot=None if entry_slot is None else int(entry_slot),
            entry=_fill_in(data["entry"]),
            exit=_fill_in(data["exit"]),
            expiry=None
            if expiry is None
            else PaperExpiry(
                signal_id=str(expiry["signal_id"]),
                time=_time_in(expiry["time"]),
                after_gap=bool(expiry["after_gap"]),
            ),
        )
    except DomainError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise DomainError(f"paper state is malformed: {error!r}") from None


def _fill_out(fill: PaperFill | None) -> dict[str, Any] | None:
    if fill is None:
        return None
    return {
        "fill_id": fill.fill_id,
        "signal_id": fill.signal_id,
        "symbol": fill.symbol,
        "direction": fill.direction.value,
        "side": fill.side.value,
        "order_type": fill.order_type.value,
        "price": fill.price,
        "qty": fill.qty,
        "fee": fill.fee,
        "fee_kind": fill.fee_kind.value,
        "time": fill.time.isoformat(),
        "bar_open_time": fill.bar_open_time.isoformat(),
        "point": fill.point.value,
        "reason": None if fill.reason is None else fill.reason.value,
        "ambiguous": fill.ambiguous,
        "entry_bar_exit": fill.entry_bar_exit,
        "after_gap": fill.after_gap,
        "optimistic": _fill_out(fill.optimistic),
    }


def _fill_in(data: Mapping[str, Any] | None) -> PaperFill | None:
    if data is None:
        return None
    return PaperFill(
        fill_id=str(data["fill_id"]),
        signal_id=str(data["signal_id"]),
        symbol=str(data["symbol"]),
        direction=Direction(data["direction"]),
        side=FillSide(data["side"]),
        order_type=OrderType(data["order_type"]),
        price=float(data["price"]),
        qty=float(data["qty"]),
        fee=float(data["fee"]),
        fee_kind=FeeKind(data["fee_kind"]),
        time=_time_in(data["time"]),
        bar_open_time=_time_in(data["bar_open_time"]),
        point=BarPoint(data["point"]),
        reason=None if data["reason"] is None else ExitReason(data["reason"]),
        ambiguous=bool(data["ambiguous"]),
        entry_bar_exit=bool(data["entry_bar_exit"]),
        after_gap=bool(data["after_gap"]),
        optimistic=_fill_in(data["optimistic"]),
    )


def _time_out(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _time_in(value: str) -> datetime:
    return utc(datetime.fromisoformat(value))


def _optional_time_in(value: str | None) -> datetime | None:
    return None if value is None else _time_in(value)
