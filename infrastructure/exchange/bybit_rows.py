"""Bybit V5 JSON rows turned into venue facts (``domain.venue``), validated at the door.

Bybit sends decimal strings, ``""`` or ``"0"`` for "none", ``"UNKNOWN"`` for "no stop type"
and millisecond times as strings. A row that cannot be read raises ``BadRowError`` naming
the row and the field; the adapter refuses the whole reply rather than drop a fill.

Funding rows (``execType=Funding`` in the executions) carry the **whole position** as
their quantity and the mark price as their price; they become ``FundingPayment``, never an
``Execution``. Their ``execFee`` is positive when paid, so the trader's amount is
``-execFee``. ``feeRate`` on a funding row is signed by side, as the transaction log
documents it (``side=Buy``: the market rate; ``side=Sell``: its negation): the market rate
is ``feeRate`` for a long, ``-feeRate`` for a short. (Bybit's one documented funding row, a
short paying, fits this rule; the execution pages do not state it.)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from domain.errors import DomainError
from domain.values import Direction
from domain.venue import (
    Balance,
    ClosedPnl,
    Execution,
    FeeRates,
    FundingPayment,
    Order,
    Position,
    Side,
    Ticker,
)
from domain.venue_rules import exit_reason

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SIDES = {"Buy": Side.BUY, "Sell": Side.SELL}
_NO_STOP = ("", "UNKNOWN")

Row = Mapping[str, Any]
T = TypeVar("T")


class BadRowError(Exception):
    """A Bybit row that is not what the docs describe (the message names row and field)."""


def ms(moment: datetime) -> int:
    """Milliseconds since the epoch (Bybit's time unit)."""
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def from_ms(value: int) -> datetime:
    """A UTC time from milliseconds since the epoch."""
    return _EPOCH + timedelta(milliseconds=value)


def _what(row: Row, key: str) -> str:
    return f"{key} {str(row.get(key, ''))[:40]!r}"


def text(row: Row, key: str, *, required: bool = False) -> str:
    """A string field (``""`` when absent); ``required`` refuses an empty one."""
    value = row.get(key, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise BadRowError(f"{key} is {type(value).__name__}, not text")
    if required and not value:
        raise BadRowError(f"no {key}")
    return value


def number(row: Row, key: str) -> float:
    """A decimal string field that must be a finite number."""
    value = row.get(key)
    try:
        result = float(str(value))
    except ValueError:
        raise BadRowError(f"{_what(row, key)} is not a number") from None
    if not math.isfinite(result):
        raise BadRowError(f"{_what(row, key)} is not finite")
    return result


def optional(row: Row, key: str) -> float | None:
    """A price-like field where ``""``, absent or ``0`` means none."""
    if row.get(key) in (None, ""):
        return None
    value = number(row, key)
    return value if value > 0 else None


def zero_default(row: Row, key: str) -> float:
    """A quantity-like field where ``""`` or absent means 0."""
    return 0.0 if row.get(key) in (None, "") else number(row, key)


def moment(row: Row, key: str) -> datetime:
    """A millisecond time field (string or number)."""
    value = str(row.get(key, ""))
    if not value.isdigit():
        raise BadRowError(f"{_what(row, key)} is not a time in ms")
    return from_ms(int(value))


def side(row: Row, key: str = "side") -> Side:
    """``Buy`` / ``Sell``."""
    found = _SIDES.get(text(row, key))
    if found is None:
        raise BadRowError(f"{_what(row, key)} is not Buy or Sell")
    return found


def stop_type(row: Row) -> str:
    """``stopOrderType`` with Bybit's "not a stop order" spellings as ``""``."""
    value = text(row, "stopOrderType")
    return "" if value in _NO_STOP else value


def _checked(kind: str, ident: str, build: Callable[[], T]) -> T:
    """Run ``build()``, turning any reading or validation failure into one ``BadRowError``."""
    try:
        return build()
    except (BadRowError, DomainError, ValueError) as e:
        raise BadRowError(f"a bad {kind} row {ident[:60]!r}: {e}") from None


def execution_or_funding(row: Row) -> Execution | FundingPayment:
    """One ``/v5/execution/list`` (or ``execution`` topic) row."""
    ident = str(row.get("execId", ""))
    if row.get("execType") == "Funding":
        return _checked("funding", ident, lambda: _funding(row))
    return _checked("execution", ident, lambda: _execution(row))


def _execution(row: Row) -> Execution:
    exec_type = text(row, "execType", required=True)
    stop, create = stop_type(row), text(row, "createType")
    closed = zero_default(row, "closedSize")
    is_maker = row.get("isMaker", False)
    if not isinstance(is_maker, bool):
        raise BadRowError(f"isMaker is {is_maker!r:.20}, not true or false")
    return Execution(
        exec_id=text(row, "execId", required=True),
        order_id=text(row, "orderId", required=True),
        order_link_id=text(row, "orderLinkId"),
        symbol=text(row, "symbol", required=True),
        side=side(row),
        price=number(row, "execPrice"),
        qty=number(row, "execQty"),
        fee=number(row, "execFee"),
        time=moment(row, "execTime"),
        exec_type=exec_type,
        stop_order_type=stop,
        create_type=create,
        order_type=text(row, "orderType"),
        closed_qty=closed,
        is_maker=is_maker,
        fee_rate=zero_default(row, "feeRate"),
        mark_price=optional(row, "markPrice"),
        reason=exit_reason(exec_type, stop, create) if closed > 0 else None,
    )


def _funding(row: Row) -> FundingPayment:
    position = side(row)
    rate = zero_default(row, "feeRate")
    return FundingPayment(
        funding_id=text(row, "execId", required=True),
        symbol=text(row, "symbol", required=True),
        time=moment(row, "execTime"),
        amount=-number(row, "execFee"),
        rate=rate if position is Side.BUY else -rate,
        position_direction=position.direction,
        position_qty=number(row, "execQty"),
        mark_price=optional(row, "markPrice") or optional(row, "execPrice"),
    )


def settlement(row: Row) -> FundingPayment:
    """A transaction-log ``SETTLEMENT`` row (``funding`` positive: received)."""
    ident = str(row.get("tradeId") or row.get("id", ""))

    def build() -> FundingPayment:
        position = side(row)
        rate = zero_default(row, "feeRate")
        size = abs(number(row, "size")) or abs(number(row, "qty"))
        return FundingPayment(
            funding_id=ident,
            symbol=text(row, "symbol", required=True),
            time=moment(row, "transactionTime"),
            amount=zero_default(row, "funding"),
            rate=rate if position is Side.BUY else -rate,
            position_direction=Direction.LONG if position is Side.BUY else Direction.SHORT,
            position_qty=size,
            mark_price=optional(row, "tradePrice"),
        )

    return _checked("transaction log", ident, build)


def position(row: Row) -> Position:
    """One ``/v5/position/list`` row; ``side`` ``""`` is a flat position."""

    def build() -> Position:
        raw_side = text(row, "side")
        size = zero_default(row, "size")
        adl = row.get("adlRankIndicator", 0)
        updated = row.get("updatedTime")
        return Position(
            symbol=text(row, "symbol", required=True),
            side=None if raw_side in ("", "None") or size == 0 else side(row),
            qty=size,
            avg_price=optional(row, "avgPrice"),
            mark_price=optional(row, "markPrice"),
            liq_price=optional(row, "liqPrice"),
            take_profit=optional(row, "takeProfit"),
            stop_loss=optional(row, "stopLoss"),
            trailing_stop=optional(row, "trailingStop"),
            leverage=optional(row, "leverage"),
            unrealised_pnl=zero_default(row, "unrealisedPnl"),
            realised_pnl=zero_default(row, "curRealisedPnl"),
            status=text(row, "positionStatus") or "Normal",
            adl_rank=adl if isinstance(adl, int) else 0,
            updated=moment(row, "updatedTime") if updated not in (None, "") else None,
        )

    return _checked("position", str(row.get("symbol", "")), build)


def order(row: Row) -> Order:
    """One ``/v5/order/realtime`` or ``/v5/order/history`` row."""

    def build() -> Order:
        reduce_only = row.get("reduceOnly", False)
        return Order(
            order_id=text(row, "orderId", required=True),
            order_link_id=text(row, "orderLinkId"),
            symbol=text(row, "symbol", required=True),
            side=side(row),
            order_type=text(row, "orderType"),
            qty=zero_default(row, "qty"),
            status=text(row, "orderStatus", required=True),
            price=optional(row, "price"),
            parent_order_link_id=text(row, "parentOrderLinkId"),
            stop_order_type=stop_type(row),
            create_type=text(row, "createType"),
            cancel_type=text(row, "cancelType"),
            reject_reason=text(row, "rejectReason"),
            trigger_price=optional(row, "triggerPrice"),
            take_profit=optional(row, "takeProfit"),
            stop_loss=optional(row, "stopLoss"),
            tp_limit_price=optional(row, "tpLimitPrice"),
            sl_limit_price=optional(row, "slLimitPrice"),
            tpsl_mode=text(row, "tpslMode"),
            reduce_only=reduce_only is True,
            filled_qty=zero_default(row, "cumExecQty"),
            avg_fill_price=optional(row, "avgPrice"),
            created=moment(row, "createdTime") if row.get("createdTime") else None,
            updated=moment(row, "updatedTime") if row.get("updatedTime") else None,
        )

    return _checked("order", str(row.get("orderId", "")), build)


def closed_pnl(row: Row) -> ClosedPnl:
    """One ``/v5/position/closed-pnl`` row."""

    def build() -> ClosedPnl:
        count = str(row.get("fillCount", "0"))
        return ClosedPnl(
            order_id=text(row, "orderId", required=True),
            symbol=text(row, "symbol", required=True),
            side=side(row),
            closed_qty=number(row, "closedSize"),
            avg_entry_price=number(row, "avgEntryPrice"),
            avg_exit_price=number(row, "avgExitPrice"),
            closed_pnl=number(row, "closedPnl"),
            created=moment(row, "createdTime"),
            updated=moment(row, "updatedTime"),
            open_fee=number(row, "openFee") if row.get("openFee") not in (None, "") else None,
            close_fee=number(row, "closeFee") if row.get("closeFee") not in (None, "") else None,
            fill_count=int(count) if count.isdigit() else 0,
            exec_type=text(row, "execType") or "Trade",
        )

    return _checked("closed P&L", str(row.get("orderId", "")), build)


def ticker(row: Row, at_ms: int) -> Ticker:
    """One ``/v5/market/tickers`` row; ``at_ms`` is the reply's envelope time."""

    def build() -> Ticker:
        return Ticker(
            symbol=text(row, "symbol", required=True),
            last_price=number(row, "lastPrice"),
            mark_price=number(row, "markPrice"),
            time=from_ms(at_ms),
            bid=optional(row, "bid1Price"),
            ask=optional(row, "ask1Price"),
            funding_rate=number(row, "fundingRate") if row.get("fundingRate") else None,
        )

    return _checked("ticker", str(row.get("symbol", "")), build)


def fee_rates(row: Row) -> FeeRates:
    """One ``/v5/account/fee-rate`` row."""
    return _checked(
        "fee rate",
        str(row.get("symbol", "")),
        lambda: FeeRates(maker=number(row, "makerFeeRate"), taker=number(row, "takerFeeRate")),
    )


def balance(row: Row) -> Balance:
    """The ``UNIFIED`` account of a ``/v5/account/wallet-balance`` reply (USD totals)."""
    return _checked(
        "wallet balance",
        str(row.get("accountType", "")),
        lambda: Balance(
            equity=number(row, "totalEquity"),
            wallet_balance=number(row, "totalWalletBalance"),
            available=zero_default(row, "totalAvailableBalance"),
            unrealised_pnl=zero_default(row, "totalPerpUPL"),
        ),
    )
