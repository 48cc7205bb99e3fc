"""The fake account's trading endpoints: place, cancel, amend, cancel-all, leverage,
position mode and trading stop, with Bybit's validations and error codes:

- ``orderLinkId``: 1-36 of ``[A-Za-z0-9_-]`` (10001), unique for ever (110072, even when
  the first order was cancelled);
- the quantity is truncated to ``qtyStep``: zero gives 110017; below ``minOrderQty``,
  10001; the order value below ``minNotionalValue`` gives 110094; a price off the tick,
  10001;
- the initial margin (value ÷ leverage) plus the taker fee beyond the available balance
  gives 110007 (reduce-only orders are not checked);
- TP/SL: ``tpslMode`` ``Full`` (the default) allows only market TP/SL, a limit TP needs
  ``Partial`` and ``tpLimitPrice``; a long's TP above and SL below the base price (the
  order price, or the last price for a market order); none on a reduce-only order (10001);
- set-leverage to the current value: 110043; switch-mode to the current mode: 110025.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from tests.fakes.bybit_account import BybitError, FakeAccount
from tests.fakes.bybit_book import ZERO, FakeOrder, dec, floor_to

LINK = re.compile(r"[A-Za-z0-9_-]{1,36}")


def decimal(p: dict[str, Any], key: str) -> Decimal | None:
    value = p.get(key)
    if value in (None, ""):
        return None
    try:
        number = dec(value)
    except InvalidOperation:
        raise BybitError(10001, f"params error: {key} invalid") from None
    if not number.is_finite() or number < 0:
        raise BybitError(10001, f"params error: {key} invalid")
    return number


def margin_in_use(account: FakeAccount) -> Decimal:
    """Initial margin of the positions and the open orders (what limits new orders)."""
    used = ZERO
    for pos in account.positions.values():
        used += abs(pos.size) * pos.avg_price / pos.leverage
    for order in account.orders.values():
        if order.is_open and not order.is_conditional and not order.reduce_only:
            lev = account.leverage.get(order.symbol, Decimal(10))
            used += order.leaves * (order.price or account.prices.get(order.symbol, ZERO)) / lev
    return used


def account_unrealised(account: FakeAccount) -> Decimal:
    """Unrealised P&L of every position at the last price."""
    return sum(
        (
            (account.prices.get(s, p.avg_price) - p.avg_price) * p.size
            for s, p in account.positions.items()
        ),
        ZERO,
    )


def lot_rules(account: FakeAccount, symbol: str) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """``(tickSize, qtyStep, minOrderQty, minNotionalValue)`` of ``symbol``."""
    item = account.instrument(symbol)
    lot, price = item["lotSizeFilter"], item["priceFilter"]
    return (
        dec(price["tickSize"]),
        dec(lot["qtyStep"]),
        dec(lot["minOrderQty"]),
        dec(lot.get("minNotionalValue") or "0"),
    )


def link_ok(link: str) -> bool:
    """A valid ``orderLinkId``."""
    return bool(LINK.fullmatch(link))


def _order(account: FakeAccount, p: dict[str, Any]) -> FakeOrder:
    """The order named by ``orderId`` (wins) or ``orderLinkId``."""
    if p.get("category") != "linear" or not p.get("symbol"):
        raise BybitError(10001, "params error: category linear and symbol are required")
    order_id, link = p.get("orderId"), p.get("orderLinkId")
    if not (order_id or link):
        raise BybitError(10001, "params error: orderId or orderLinkId is required")
    for order in account.orders.values():
        if (order_id and order.order_id == order_id) or (
            not order_id and order.order_link_id == link
        ):
            if order.symbol != p["symbol"]:
                break
            return order
    raise BybitError(110001, "Order does not exist")


def place(account: FakeAccount, p: dict[str, Any]) -> dict[str, Any]:
    """``POST /v5/order/create``."""
    if p.get("category") != "linear":
        raise BybitError(10001, "params error: category only linear in this fake")
    symbol = str(p.get("symbol", ""))
    tick, step, min_qty, min_notional = lot_rules(account, symbol)
    side, kind = p.get("side"), p.get("orderType")
    if side not in ("Buy", "Sell") or kind not in ("Limit", "Market"):
        raise BybitError(10001, "params error: side and orderType")
    link = str(p.get("orderLinkId") or "")
    if link and not LINK.fullmatch(link):
        raise BybitError(10001, "params error: orderLinkId invalid")
    if link and link in account.used_links:
        raise BybitError(110072, "OrderLinkedID is duplicate")
    if int(p.get("positionIdx", 0)) != 0 or account.mode != 0:
        raise BybitError(10001, "position idx not match position mode")
    asked = decimal(p, "qty")
    if asked is None:
        raise BybitError(10001, "params error: qty is required")
    qty = floor_to(asked, step)
    if qty == 0:
        raise BybitError(110017, "orderQty will be truncated to zero")
    if qty < min_qty:
        raise BybitError(10001, "The number of contracts exceeds minimum limit allowed")
    price = decimal(p, "price") if kind == "Limit" else None
    if kind == "Limit" and (price is None or price == 0 or price % tick):
        raise BybitError(10001, "params error: price invalid")
    base = price if price is not None else account.price(symbol)
    if qty * base < min_notional:
        raise BybitError(110094, "Order notional value below the lower limit")
    reduce_only = p.get("reduceOnly") is True
    tp, sl = decimal(p, "takeProfit"), decimal(p, "stopLoss")
    mode = str(p.get("tpslMode") or ("Full" if tp or sl else ""))
    tp_type = str(p.get("tpOrderType") or ("Market" if tp else ""))
    sl_type = str(p.get("slOrderType") or ("Market" if sl else ""))
    tp_limit, sl_limit = decimal(p, "tpLimitPrice"), decimal(p, "slLimitPrice")
    if (tp or sl) and reduce_only:
        raise BybitError(10001, "params error: TP/SL cannot be set on a reduce-only order")
    if mode == "Full" and "Limit" in (tp_type, sl_type):
        raise BybitError(10001, "params error: tpslMode Full supports only market TP/SL")
    if (tp_type == "Limit" and tp_limit is None) or (sl_type == "Limit" and sl_limit is None):
        raise BybitError(10001, "params error: a limit TP/SL needs its limit price")
    up = Decimal(1) if side == "Buy" else Decimal(-1)
    if tp is not None and (tp - base) * up <= 0:
        raise BybitError(
            10001, f"TakeProfit:{tp} set for {side} position should be beyond base_price:{base}"
        )
    if sl is not None and (sl - base) * up >= 0:
        raise BybitError(
            10001, f"StopLoss:{sl} set for {side} position should be beyond base_price:{base}"
        )
    if not reduce_only:
        lev = account.leverage.get(symbol, Decimal(10))
        cost = qty * base / lev + qty * base * account.fees["taker"]
        available = account.wallet + account_unrealised(account) - margin_in_use(account)
        if cost > available:
            raise BybitError(110007, "Available balance is insufficient")
    order = FakeOrder(
        order_id=account.new_order_id(),
        order_link_id=link,
        symbol=symbol,
        side=str(side),
        order_type=str(kind),
        qty=qty,
        created_ms=account.now_ms,
        price=price,
        time_in_force=str(p.get("timeInForce") or ("GTC" if kind == "Limit" else "IOC")),
        reduce_only=reduce_only,
        take_profit=tp,
        stop_loss=sl,
        tp_limit_price=tp_limit,
        sl_limit_price=sl_limit,
        tp_order_type=tp_type,
        sl_order_type=sl_type,
        tpsl_mode=mode,
        last_price_on_created=account.prices.get(symbol),
    )
    account.add_order(order)
    return {"orderId": order.order_id, "orderLinkId": order.order_link_id}


def cancel(account: FakeAccount, p: dict[str, Any]) -> dict[str, Any]:
    """``POST /v5/order/cancel`` (an unfilled or partly filled order)."""
    order = _order(account, p)
    if not order.is_open:
        raise BybitError(110001, "Order does not exist")
    account.cancel(order)
    return {"orderId": order.order_id, "orderLinkId": order.order_link_id}


def amend(account: FakeAccount, p: dict[str, Any]) -> dict[str, Any]:
    """``POST /v5/order/amend``: qty, price, trigger, TP/SL of an open order."""
    order = _order(account, p)
    if not order.is_open:
        raise BybitError(110001, "Order does not exist")
    changes = {k: decimal(p, k) for k in ("qty", "price", "triggerPrice", "takeProfit", "stopLoss")}
    if changes["qty"] is not None:
        if changes["qty"] <= order.cum_qty:
            raise BybitError(
                110064,
                "The modified quantity cannot be less than or equal to the filled quantity.",
            )
        order.qty = changes["qty"]
    if changes["price"] is not None:
        order.price = changes["price"]
    if changes["triggerPrice"] is not None:
        order.trigger_price = changes["triggerPrice"]
    for key, attr in (("takeProfit", "take_profit"), ("stopLoss", "stop_loss")):
        if changes[key] is not None:
            setattr(order, attr, changes[key] or None)
    order.updated_ms = account.now_ms
    account.add_order(order)
    return {"orderId": order.order_id, "orderLinkId": order.order_link_id}


def cancel_all(account: FakeAccount, p: dict[str, Any]) -> dict[str, Any]:
    """``POST /v5/order/cancel-all`` by symbol (or settle coin); all kinds by default."""
    if p.get("category") != "linear" or not (
        p.get("symbol") or p.get("settleCoin") or p.get("baseCoin")
    ):
        raise BybitError(10001, "params error: symbol, baseCoin or settleCoin is required")
    kind = p.get("orderFilter")
    chosen = [
        o
        for o in account.orders.values()
        if o.is_open
        and (not p.get("symbol") or o.symbol == p["symbol"])
        and (kind is None or (kind == "StopOrder") == o.is_conditional)
    ]
    for order in chosen:
        account.cancel(order)
    return {
        "list": [{"orderId": o.order_id, "orderLinkId": o.order_link_id} for o in chosen],
        "success": "1",
    }


def set_leverage(account: FakeAccount, p: dict[str, Any]) -> dict[str, Any]:
    """``POST /v5/position/set-leverage`` (one-way mode: buy = sell)."""
    symbol = str(p.get("symbol", ""))
    account.instrument(symbol)
    buy, sell = decimal(p, "buyLeverage"), decimal(p, "sellLeverage")
    if buy is None or buy != sell or not 1 <= buy <= 100:
        raise BybitError(10001, "params error: buyLeverage must equal sellLeverage, in [1, 100]")
    if account.leverage.get(symbol, Decimal(10)) == buy:
        raise BybitError(110043, "Set leverage has not been modified.")
    account.leverage[symbol] = buy
    account.position(symbol).leverage = buy
    return {}


def switch_mode(account: FakeAccount, p: dict[str, Any]) -> dict[str, Any]:
    """``POST /v5/position/switch-mode``: 0 one-way, 3 hedge."""
    mode = p.get("mode")
    if mode not in (0, 3):
        raise BybitError(10001, "params error: mode must be 0 or 3")
    if mode == account.mode:
        raise BybitError(110025, "Position mode has not been modified.")
    if any(pos.size for pos in account.positions.values()):
        raise BybitError(
            110024, "You have an existing position, so the position mode cannot be switched."
        )
    account.mode = int(mode)
    return {}


def trading_stop(account: FakeAccount, p: dict[str, Any]) -> dict[str, Any]:
    """``POST /v5/position/trading-stop``: Full-mode TP/SL or a trailing stop on the position."""
    symbol = str(p.get("symbol", ""))
    pos = account.position(symbol)
    if not pos.size:
        raise BybitError(10001, "can not set tp/sl/ts for zero position")
    close_side = "Sell" if pos.size > 0 else "Buy"
    legs = (
        ("TakeProfit", decimal(p, "takeProfit"), pos.size > 0),
        ("StopLoss", decimal(p, "stopLoss"), pos.size < 0),
        ("TrailingStop", decimal(p, "trailingStop"), pos.size < 0),
    )
    for kind, level, rises in legs:
        if level is None:
            continue
        for old in [o for o in account.orders.values() if o.is_open and o.stop_order_type == kind]:
            account.cancel(old, "CancelByUser")
        if level == ZERO:
            pos.stops.pop(kind, None)
            continue
        trailing = kind == "TrailingStop"
        order = FakeOrder(
            order_id=account.new_order_id(),
            order_link_id="",
            symbol=symbol,
            side=close_side,
            order_type="Market",
            qty=abs(pos.size),
            created_ms=account.now_ms,
            time_in_force="IOC",
            status="Untriggered",
            stop_order_type=kind,
            create_type=f"CreateBy{kind}",
            reduce_only=True,
            close_on_trigger=True,
            trigger_price=decimal(p, "activePrice") if trailing else level,
            trigger_direction=1 if rises else 2,
            tpsl_mode="Full",
            trailing_distance=level if trailing else None,
        )
        pos.stops[kind] = level
        account.add_order(order)
    return {}
