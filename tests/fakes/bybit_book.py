"""The fake Bybit account's orders and positions, and the JSON rows Bybit shows for them.

Amounts are ``Decimal`` (Bybit's decimal strings, exactly); times are ms since the epoch.
The row shapes follow ``tests/fixtures/bybit/*.json`` (open orders, order history,
positions, executions, closed P&L, the transaction log).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any

ZERO = Decimal(0)
UID = 592324
"""The fake account's user id (it shows in funding rows' synthetic order ids)."""
OPEN_STATES = ("New", "PartiallyFilled", "Untriggered")
CONDITIONAL = ("TakeProfit", "StopLoss", "PartialTakeProfit", "PartialStopLoss", "TrailingStop")


def dec(value: Any) -> Decimal:
    """A Decimal from a Bybit string (or number)."""
    return Decimal(str(value))


def text(value: Decimal | None, places: int | None = None) -> str:
    """Bybit's decimal string: ``""`` for none, fixed digits, no exponent."""
    if value is None:
        return ""
    if places is not None:
        value = value.quantize(Decimal(1).scaleb(-places))
    out = format(value.normalize(), "f")
    return out


def money(value: Decimal) -> Decimal:
    """Rounded to 8 decimals, as Bybit rounds fees and P&L in USDT."""
    return value.quantize(Decimal("0.00000001"))


def floor_to(value: Decimal, step: Decimal) -> Decimal:
    """``value`` rounded down to a multiple of ``step``."""
    return (value / step).to_integral_value(rounding=ROUND_DOWN) * step


def an_id(counter: int, kind: int) -> str:
    """A deterministic UUID-shaped id (``kind`` keeps orders and executions apart)."""
    return str(uuid.UUID(int=(kind << 64) + counter))


@dataclass
class FakeOrder:
    """One order, as Bybit keeps it (a conditional TP/SL order is one too)."""

    order_id: str
    order_link_id: str
    symbol: str
    side: str
    order_type: str
    qty: Decimal
    created_ms: int
    price: Decimal | None = None
    time_in_force: str = "GTC"
    status: str = "New"
    parent_order_link_id: str = ""
    stop_order_type: str = ""
    create_type: str = "CreateByUser"
    cancel_type: str = "UNKNOWN"
    reject_reason: str = "EC_NoError"
    reduce_only: bool = False
    close_on_trigger: bool = False
    trigger_price: Decimal | None = None
    trigger_direction: int = 0
    take_profit: Decimal | None = None
    stop_loss: Decimal | None = None
    tp_limit_price: Decimal | None = None
    sl_limit_price: Decimal | None = None
    tp_order_type: str = ""
    sl_order_type: str = ""
    tpsl_mode: str = ""
    trailing_distance: Decimal | None = None
    trailing_extreme: Decimal | None = None
    cum_qty: Decimal = ZERO
    cum_value: Decimal = ZERO
    cum_fee: Decimal = ZERO
    updated_ms: int = 0
    last_price_on_created: Decimal | None = None
    resting: bool = False

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATES

    @property
    def is_conditional(self) -> bool:
        return self.stop_order_type in CONDITIONAL or self.stop_order_type == "Stop"

    @property
    def leaves(self) -> Decimal:
        return max(self.qty - self.cum_qty, ZERO)

    def row(self) -> dict[str, Any]:
        """The ``/v5/order/realtime`` / ``/v5/order/history`` row."""
        avg = self.cum_value / self.cum_qty if self.cum_qty else None
        leaves = self.leaves if self.is_open else ZERO
        return {
            "orderId": self.order_id,
            "orderLinkId": self.order_link_id,
            "parentOrderLinkId": self.parent_order_link_id,
            "blockTradeId": "",
            "symbol": self.symbol,
            "price": text(self.price) or "0",
            "qty": text(self.qty),
            "side": self.side,
            "isLeverage": "",
            "positionIdx": 0,
            "orderStatus": self.status,
            "createType": self.create_type,
            "cancelType": self.cancel_type,
            "rejectReason": self.reject_reason,
            "avgPrice": text(avg) if avg is not None else "",
            "leavesQty": text(leaves),
            "leavesValue": text(leaves * (self.price or ZERO)),
            "cumExecQty": text(self.cum_qty),
            "cumExecValue": text(self.cum_value),
            "cumExecFee": text(self.cum_fee),
            "timeInForce": self.time_in_force,
            "orderType": self.order_type,
            "stopOrderType": self.stop_order_type,
            "orderIv": "",
            "marketUnit": "",
            "slippageToleranceType": "UNKNOWN",
            "slippageTolerance": "",
            "triggerPrice": text(self.trigger_price) or "0",
            "takeProfit": text(self.take_profit) or "0",
            "stopLoss": text(self.stop_loss) or "0",
            "tpslMode": self.tpsl_mode,
            "ocoTriggerBy": "",
            "tpLimitPrice": text(self.tp_limit_price),
            "slLimitPrice": text(self.sl_limit_price),
            "tpTriggerBy": "LastPrice" if self.take_profit else "",
            "slTriggerBy": "LastPrice" if self.stop_loss else "",
            "triggerDirection": self.trigger_direction,
            "triggerBy": "LastPrice" if self.trigger_price else "UNKNOWN",
            "lastPriceOnCreated": text(self.last_price_on_created),
            "basePrice": "",
            "reduceOnly": self.reduce_only,
            "closeOnTrigger": self.close_on_trigger,
            "placeType": "",
            "smpType": "None",
            "smpGroup": 0,
            "smpOrderId": "",
            "createdTime": str(self.created_ms),
            "updatedTime": str(self.updated_ms or self.created_ms),
            "extraFees": "",
            "cumFeeDetail": {"USDT": text(self.cum_fee)} if self.cum_fee else {},
            "rpiTakerAccess": False,
            "rpiMatchedQty": "0",
        }


@dataclass
class FakePosition:
    """A one-way position: ``size`` signed (long > 0). Fees and funding not yet booked to
    a closed-P&L row are kept to share among the closing orders pro rata."""

    symbol: str
    created_ms: int
    size: Decimal = ZERO
    avg_price: Decimal = ZERO
    open_fees: Decimal = ZERO
    funding: Decimal = ZERO
    realised: Decimal = ZERO
    cum_realised: Decimal = ZERO
    leverage: Decimal = Decimal(10)
    status: str = "Normal"
    updated_ms: int = 0
    seq: int = 0
    open_ms: int = 0
    stops: dict[str, Decimal] = field(default_factory=dict)

    @property
    def side(self) -> str:
        return "Buy" if self.size > 0 else "Sell" if self.size < 0 else ""

    def row(self, mark: Decimal) -> dict[str, Any]:
        """The ``/v5/position/list`` row (one-way mode, ``positionIdx`` 0)."""
        qty = abs(self.size)
        value = qty * self.avg_price
        upl = (mark - self.avg_price) * self.size if qty else ZERO
        liq = ZERO
        if qty:
            move = self.avg_price / self.leverage
            liq = self.avg_price - move if self.size > 0 else self.avg_price + move
        return {
            "positionIdx": 0,
            "riskId": 1,
            "riskLimitValue": "2000000",
            "symbol": self.symbol,
            "side": self.side,
            "size": text(qty),
            "avgPrice": text(self.avg_price if qty else ZERO),
            "positionValue": text(value),
            "tradeMode": 0,
            "positionStatus": self.status,
            "autoAddMargin": 0,
            "adlRankIndicator": 2 if qty else 0,
            "leverage": text(self.leverage),
            "breakEvenPrice": text(self.avg_price if qty else ZERO),
            "positionBalance": text(value / self.leverage),
            "markPrice": text(mark),
            "liqPrice": text(liq) if qty else "",
            "bustPrice": "",
            "positionMM": "0",
            "positionMMByMp": "0",
            "positionIM": text(value / self.leverage),
            "positionIMByMp": text(value / self.leverage),
            "tpslMode": "Full",
            "takeProfit": text(self.stops.get("TakeProfit")) or "0",
            "stopLoss": text(self.stops.get("StopLoss")) or "0",
            "trailingStop": text(self.stops.get("TrailingStop")) or "0",
            "unrealisedPnl": text(money(upl)),
            "curRealisedPnl": text(money(self.realised)),
            "cumRealisedPnl": text(money(self.cum_realised)),
            "seq": self.seq,
            "isReduceOnly": False,
            "mmrSysUpdateTime": "",
            "leverageSysUpdatedTime": "",
            "sessionAvgPrice": "",
            "createdTime": str(self.created_ms),
            "updatedTime": str(self.updated_ms or self.created_ms),
            "openTime": self.open_ms,
        }


def execution_row(now_ms: int, mark: Decimal, **f: Any) -> dict[str, Any]:
    """A ``/v5/execution/list`` row (``f``: the fill's fields)."""
    return {
        "symbol": f["symbol"],
        "orderType": f["order_type"],
        "underlyingPrice": "",
        "orderLinkId": f["order_link_id"],
        "side": f["side"],
        "indexPrice": "",
        "orderId": f["order_id"],
        "stopOrderType": f["stop_order_type"],
        "leavesQty": text(f["leaves"]),
        "execTime": str(now_ms),
        "feeCurrency": "USDT",
        "isMaker": f["maker"],
        "execFee": text(f["fee"]),
        "feeRate": text(f["fee_rate"]),
        "execId": f["exec_id"],
        "tradeIv": "",
        "blockTradeId": "",
        "markPrice": text(mark),
        "execPrice": text(f["price"]),
        "markIv": "",
        "orderQty": text(f["order_qty"]),
        "orderPrice": text(f["order_price"]),
        "execValue": text(f["price"] * f["qty"]),
        "execType": f["exec_type"],
        "execQty": text(f["qty"]),
        "closedSize": text(f["closed"]),
        "extraFees": "",
        "seq": f.get("seq", 0),
        "createType": f["create_type"],
        "execFeeV2": "",
    }


def log_row(
    kind: str,
    row: dict[str, Any],
    now_ms: int,
    number: int,
    flows: tuple[Decimal, Decimal, Decimal, Decimal, Decimal],
) -> dict[str, Any]:
    """A ``/v5/account/transaction-log`` row for an execution ``row``.

    ``flows``: funding (received > 0), fee, cash flow (realised P&L), the position size
    after it, and the wallet balance after it.
    """
    funding, fee, cash_flow, size, wallet = flows
    change = cash_flow + funding - fee
    return {
        "transSubType": "",
        "id": f"{UID}_{row['symbol']}_{number}",
        "symbol": row["symbol"],
        "side": row["side"],
        "funding": text(funding) if kind == "SETTLEMENT" else "",
        "orderLinkId": row["orderLinkId"],
        "orderId": row["orderId"],
        "fee": text(fee, 8),
        "change": text(change),
        "cashFlow": text(cash_flow),
        "transactionTime": str(now_ms),
        "type": kind,
        "feeRate": row["feeRate"],
        "bonusChange": "",
        "size": text(size),
        "qty": row["execQty"],
        "cashBalance": text(wallet, 8),
        "currency": "USDT",
        "category": "linear",
        "tradePrice": row["execPrice"],
        "tradeId": row["execId"],
        "extraFees": "",
    }
