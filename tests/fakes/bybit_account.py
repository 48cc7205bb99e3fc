"""A simulated Bybit linear-perpetual account (one-way mode, USDT) behind the fake server.

State: a USDT wallet, positions, orders (conditional TP/SL ones too), executions (Funding
rows included), closed-P&L rows and the transaction log, all in Bybit's shapes. The clock
is the fake market's (``FakeMarket.now``), so times are the test's to set.

How it trades (the fake's own conventions, where Bybit's docs are silent):

- a limit order that the last price already crosses fills at once as a taker, at the last
  price; otherwise it rests, and fills as a maker at its price when ``set_price`` crosses
  it (or by ``fill(link, price, qty)``, which fills any part of it);
- an entry with ``takeProfit``/``stopLoss`` gets its TP/SL as separate conditional orders
  when it fills: in ``Partial`` mode one pair per entry (``PartialTakeProfit`` /
  ``PartialStopLoss``, created ``CreateByPartialTakeProfit`` / ``...StopLoss``), sized to
  the filled quantity and naming the entry in ``parentOrderLinkId``; in ``Full`` mode one
  position-wide pair (``TakeProfit`` / ``StopLoss``). They have no ``orderLinkId`` (Bybit
  lets no one set one). A TP/SL fill shrinks its sibling; a flat position deactivates the
  rest (``CancelByTpSlTsClear``);
- a triggered market stop fills at the price that triggered it (taker); a triggered limit
  take-profit fills at once when marketable (taker, at that price), else rests;
- closed P&L: one row per closing order, updated with each of its fills: (exit − entry) ×
  closed − its share of the opening fees − its closing fees + its share of the funding;
- funding (``pay_funding``): ``execFee`` = position value × ``feeRate`` with ``feeRate``
  signed by side (the transaction log's rule), positive = paid; a ``Funding`` execution
  with the whole position size as ``execQty``, and a ``SETTLEMENT`` log row (``funding``
  positive = received).

Test controls: ``set_price``, ``advance``, ``fill``, ``manual_close`` (``CreateByClosing``),
``liquidate`` (``BustTrade``), ``adl`` (``AdlTrade``), ``pay_funding``, ``report_twice``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

from tests.fakes.bybit import FakeMarket
from tests.fakes.bybit_book import (
    UID,
    ZERO,
    FakeOrder,
    FakePosition,
    an_id,
    dec,
    execution_row,
    log_row,
    money,
    text,
)

Listener = Callable[[str, list[dict[str, Any]]], None]


class BybitError(Exception):
    """A business error the fake answers with (HTTP 200, non-zero ``retCode``)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class FakeAccount:
    """The account. Every method takes the lock: server threads and the test share it."""

    def __init__(
        self,
        market: FakeMarket,
        *,
        balance: str = "10000",
        maker_fee: str = "0.0002",
        taker_fee: str = "0.00055",
    ) -> None:
        self.market = market
        self.lock = threading.RLock()
        self.wallet = dec(balance)
        self.fees = {"maker": dec(maker_fee), "taker": dec(taker_fee)}
        self.prices: dict[str, Decimal] = {}
        self.funding_rates: dict[str, Decimal] = {}
        self.orders: dict[str, FakeOrder] = {}
        self.used_links: set[str] = set()
        self.positions: dict[str, FakePosition] = {}
        self.leverage: dict[str, Decimal] = {}
        self.mode = 0
        self.executions: list[dict[str, Any]] = []
        self.closed: dict[str, dict[str, Any]] = {}
        self.log: list[dict[str, Any]] = []
        self.listeners: list[Listener] = []
        self.page_size: int | None = None
        """Caps every page of every list (so tests page with a few rows)."""
        self.repeat_cursor: set[str] = set()
        """Paths whose pages answer every cursor with the same cursor again."""
        self._counter = 0

    # -- clock and ids ------------------------------------------------------------------

    @property
    def now_ms(self) -> int:
        return self.market.now_ms

    def advance(self, delta: timedelta) -> None:
        """Move the market's (and so the account's) clock on."""
        with self.lock:
            self.market.now_ms += delta // timedelta(milliseconds=1)

    def _next(self) -> int:
        self._counter += 1
        return self._counter

    def instrument(self, symbol: str) -> dict[str, Any]:
        found = self.market.instruments.get(symbol)
        if found is None:
            raise BybitError(10001, f"params error: symbol {symbol} invalid")
        return found

    def price(self, symbol: str) -> Decimal:
        if symbol not in self.prices:
            raise BybitError(10001, f"no market for {symbol} (set_price first)")
        return self.prices[symbol]

    def position(self, symbol: str) -> FakePosition:
        if symbol not in self.positions:
            lev = self.leverage.get(symbol, Decimal(10))
            self.positions[symbol] = FakePosition(symbol, self.now_ms, leverage=lev)
        return self.positions[symbol]

    # -- test controls ------------------------------------------------------------------

    def set_price(self, symbol: str, price: str | float) -> None:
        """The last (and mark) price moves: resting limits it crosses fill, stops trigger."""
        with self.lock:
            self.instrument(symbol)
            self.prices[symbol] = dec(price)
            for _ in range(20):  # each pass may create or trigger orders
                if not self._match(symbol):
                    break

    def fill(self, order_link_id: str, price: str | float, qty: str | float | None = None) -> None:
        """Fill (part of) the open order ``order_link_id`` at ``price``, as a maker."""
        with self.lock:
            order = next(
                (o for o in self.orders.values() if o.order_link_id == order_link_id and o.is_open),
                None,
            )
            if order is None:
                raise KeyError(f"no open order {order_link_id}")
            amount = order.leaves if qty is None else dec(qty)
            self._execute(order, dec(price), amount, maker=True)

    def manual_close(self, symbol: str, qty: str | float | None = None) -> str:
        """The Close button of the web/app position panel: ``createType=CreateByClosing``."""
        return self._system_close(symbol, "CreateByClosing", "Trade", qty=qty)

    def liquidate(self, symbol: str, price: str | float | None = None) -> str:
        """The liquidation engine takes the position over at ``price``: ``BustTrade``."""
        with self.lock:
            for order in self._open(symbol):
                if not order.is_conditional:
                    self._finish(order, "Cancelled", "CancelAllBeforeLiq")
            self.position(symbol).status = "Liq"
            return self._system_close(
                symbol, "CreateByTakeOver_PassThrough", "BustTrade", price=price
            )

    def adl(
        self, symbol: str, price: str | float | None = None, qty: str | float | None = None
    ) -> str:
        """Auto-deleveraging closes (part of) the position: ``AdlTrade``."""
        with self.lock:
            self.position(symbol).status = "Adl"
            return self._system_close(
                symbol, "CreateByAdl_PassThrough", "AdlTrade", price=price, qty=qty
            )

    def pay_funding(
        self, symbol: str, rate: str | float, mark: str | float | None = None
    ) -> dict[str, Any]:
        """Settle funding at ``rate`` (positive: longs pay) on the open position."""
        with self.lock:
            pos = self.position(symbol)
            if not pos.size:
                raise ValueError(f"{symbol}: no position to pay funding on")
            mark_price = dec(mark) if mark is not None else self.price(symbol)
            qty = abs(pos.size)
            value = qty * mark_price
            fee_rate = dec(rate) if pos.size > 0 else -dec(rate)
            fee = money(value * fee_rate)  # positive: paid
            self.wallet -= fee
            pos.funding -= fee
            seconds = self.now_ms // 1000
            row = self._exec_row(
                mark_price,
                exec_id=an_id(self._next(), 2),
                order_id=f"{seconds}-{symbol}-{UID}-{pos.side}",
                order_link_id="",
                symbol=symbol,
                side=pos.side,
                price=mark_price,
                qty=qty,
                fee=fee,
                fee_rate=fee_rate,
                exec_type="Funding",
                order_type="UNKNOWN",
                stop_order_type="UNKNOWN",
                create_type="",
                closed=ZERO,
                maker=False,
                order_price=ZERO,
                order_qty=ZERO,
                leaves=ZERO,
            )
            self.executions.append(row)
            self._log("SETTLEMENT", row, funding=-fee, fee=ZERO, cash_flow=ZERO, size=pos.size)
            self._emit("execution", [dict(row, category="linear", execPnl="0")])
            return row

    def report_twice(self, exec_id: str) -> None:
        """Bybit shows the execution ``exec_id`` a second time (same row, same id)."""
        with self.lock:
            row = next(r for r in self.executions if r["execId"] == exec_id)
            self.executions.append(dict(row))

    # -- orders -------------------------------------------------------------------------

    def add_order(self, order: FakeOrder) -> FakeOrder:
        """Book a validated order; fill it at once if the last price crosses it."""
        with self.lock:
            self.orders[order.order_id] = order
            if order.order_link_id:
                self.used_links.add(order.order_link_id)
            self._emit_order(order)
            self._match(order.symbol)
            return order

    def new_order_id(self) -> str:
        return an_id(self._next(), 1)

    def cancel(self, order: FakeOrder, cancel_type: str = "CancelByUser") -> None:
        with self.lock:
            self._finish(
                order, "Cancelled" if not order.is_conditional else "Deactivated", cancel_type
            )

    def _open(self, symbol: str) -> list[FakeOrder]:
        return [o for o in self.orders.values() if o.symbol == symbol and o.is_open]

    def _finish(self, order: FakeOrder, status: str, cancel_type: str) -> None:
        order.status, order.cancel_type, order.updated_ms = status, cancel_type, self.now_ms
        self._emit_order(order)

    def _match(self, symbol: str) -> bool:
        """One pass of matching at the last price; whether anything happened."""
        if symbol not in self.prices:
            return False
        last = self.prices[symbol]
        for order in self._open(symbol):
            if order.status == "Untriggered":
                if self._triggered(order, last):
                    order.status = "Triggered"
                    self._emit_order(order)
                    order.status, order.resting = "New", False
                    return True
                continue
            if not order.resting:
                if order.price is None or self._crosses(order, last):
                    self._execute(order, last, order.leaves, maker=False)
                    return True
                order.resting = True
            elif order.price is not None and self._crosses(order, last):
                self._execute(order, order.price, order.leaves, maker=True)
                return True
        return False

    @staticmethod
    def _crosses(order: FakeOrder, last: Decimal) -> bool:
        if order.price is None:
            return True
        return last <= order.price if order.side == "Buy" else last >= order.price

    @staticmethod
    def _triggered(order: FakeOrder, last: Decimal) -> bool:
        if order.stop_order_type == "TrailingStop" and order.trailing_distance is not None:
            sell = order.side == "Sell"  # trailing a long
            if order.trailing_extreme is None:
                activation = order.trigger_price
                if activation is not None and (last < activation if sell else last > activation):
                    return False
                order.trailing_extreme = last
            best = order.trailing_extreme
            best = max(best, last) if sell else min(best, last)
            order.trailing_extreme = best
            stop = best - order.trailing_distance if sell else best + order.trailing_distance
            return last <= stop if sell else last >= stop
        if order.trigger_price is None:
            return False
        rises = order.trigger_direction == 1
        return last >= order.trigger_price if rises else last <= order.trigger_price

    # -- fills --------------------------------------------------------------------------

    def _execute(
        self,
        order: FakeOrder,
        price: Decimal,
        qty: Decimal,
        *,
        maker: bool,
        exec_type: str = "Trade",
    ) -> dict[str, Any] | None:
        """Fill ``qty`` of ``order`` at ``price``: position, wallet, rows, TP/SL, pushes."""
        pos = self.position(order.symbol)
        sign = Decimal(1) if order.side == "Buy" else Decimal(-1)
        opposite = pos.size * sign < 0
        if order.reduce_only or order.is_conditional:
            qty = min(qty, abs(pos.size)) if opposite else ZERO
        if qty <= 0:
            self._finish(
                order, "Deactivated" if order.is_conditional else "Cancelled", "CancelByReduceOnly"
            )
            return None
        rate = ZERO if exec_type == "AdlTrade" else self.fees["maker" if maker else "taker"]
        fee = money(price * qty * rate)
        closed = min(qty, abs(pos.size)) if opposite else ZERO
        before, entry_price = abs(pos.size), pos.avg_price
        realised = (
            (price - pos.avg_price) * closed * (1 if pos.size > 0 else -1) if closed else ZERO
        )
        open_share = money(pos.open_fees * closed / before) if closed else ZERO
        funding_share = money(pos.funding * closed / before) if closed else ZERO
        if closed:
            pos.open_fees -= open_share
            pos.funding -= funding_share
        opened = qty - closed
        new_size = pos.size + sign * qty
        if opened:
            held = abs(pos.size) if not opposite else ZERO
            pos.avg_price = (pos.avg_price * held + price * opened) / (held + opened)
            pos.open_fees += money(fee * opened / qty)
            if not held:
                pos.open_ms = self.now_ms
        pos.size = new_size
        if not pos.size:
            pos.avg_price, pos.open_fees, pos.funding, pos.status = ZERO, ZERO, ZERO, "Normal"
        pos.realised += realised - fee
        pos.cum_realised += realised - fee
        pos.updated_ms, pos.seq = self.now_ms, pos.seq + 1
        self.wallet += realised - fee
        order.cum_qty += qty
        order.cum_value += price * qty
        order.cum_fee += fee
        order.updated_ms = self.now_ms
        order.status = "Filled" if order.leaves == 0 else "PartiallyFilled"
        row = self._exec_row(
            exec_id=an_id(self._next(), 2),
            order_id=order.order_id,
            order_link_id=order.order_link_id,
            symbol=order.symbol,
            side=order.side,
            price=price,
            qty=qty,
            fee=fee,
            fee_rate=rate,
            exec_type=exec_type,
            order_type=order.order_type,
            stop_order_type=order.stop_order_type or "UNKNOWN",
            create_type=order.create_type,
            closed=closed,
            maker=maker,
            order_price=order.price or ZERO,
            order_qty=order.qty,
            leaves=order.leaves,
            seq=pos.seq,
        )
        self.executions.append(row)
        if closed:
            close_fee = money(fee * closed / qty)
            shares = (open_share, close_fee, funding_share, realised)
            self._close_row(order, entry_price, price, closed, shares, exec_type)
        kind = {"BustTrade": "LIQUIDATION", "AdlTrade": "ADL"}.get(exec_type, "TRADE")
        self._log(kind, row, funding=ZERO, fee=fee, cash_flow=money(realised), size=pos.size)
        self._after_fill(order, opened, closed)
        self._emit("execution", [dict(row, category="linear", execPnl=text(money(realised)))])
        self._emit_order(order)
        self._emit(
            "position", [dict(pos.row(self.prices.get(order.symbol, price)), category="linear")]
        )
        return row

    def _after_fill(self, order: FakeOrder, opened: Decimal, closed: Decimal) -> None:
        """Attached TP/SL appear with the entry's fills; siblings shrink; flat clears them."""
        pos = self.position(order.symbol)
        if opened and (order.take_profit or order.stop_loss):
            self._attach(order, opened)
        if closed and order.parent_order_link_id and order.stop_order_type.startswith("Partial"):
            for sibling in self._open(order.symbol):
                if (
                    sibling.parent_order_link_id == order.parent_order_link_id
                    and sibling is not order
                ):
                    sibling.qty -= min(closed, sibling.leaves)
                    if sibling.leaves <= 0:
                        self._finish(sibling, "Deactivated", "CancelByTpSlTsClear")
        if not pos.size:
            for other in self._open(order.symbol):
                if other.is_conditional and other.stop_order_type != "Stop":
                    self._finish(other, "Deactivated", "CancelByTpSlTsClear")
            pos.stops.clear()

    def _attach(self, entry: FakeOrder, qty: Decimal) -> None:
        partial = entry.tpsl_mode == "Partial"
        pos = self.position(entry.symbol)
        close_side = "Sell" if entry.side == "Buy" else "Buy"
        legs = (
            ("TakeProfit", entry.take_profit, entry.tp_order_type, entry.tp_limit_price),
            ("StopLoss", entry.stop_loss, entry.sl_order_type, entry.sl_limit_price),
        )
        for kind, trigger, order_type, limit in legs:
            if trigger is None:
                continue
            stop_type = f"Partial{kind}" if partial else kind
            mine = [
                o
                for o in self._open(entry.symbol)
                if o.stop_order_type == stop_type
                and (o.parent_order_link_id == entry.order_link_id or not partial)
            ]
            if mine:
                mine[0].qty = mine[0].qty + qty if partial else abs(pos.size)
                mine[0].updated_ms = self.now_ms
                if not partial:
                    mine[0].trigger_price = trigger
                self._emit_order(mine[0])
                continue
            rises = (kind == "TakeProfit") == (entry.side == "Buy")
            child = FakeOrder(
                order_id=self.new_order_id(),
                order_link_id="",
                symbol=entry.symbol,
                side=close_side,
                order_type=order_type or "Market",
                qty=qty if partial else abs(pos.size),
                created_ms=self.now_ms,
                price=limit if order_type == "Limit" else None,
                time_in_force="GTC" if order_type == "Limit" else "IOC",
                status="Untriggered",
                parent_order_link_id=entry.order_link_id,
                stop_order_type=stop_type,
                create_type=f"CreateBy{stop_type}",
                reduce_only=True,
                close_on_trigger=kind == "StopLoss",
                trigger_price=trigger,
                trigger_direction=1 if rises else 2,
                tpsl_mode=entry.tpsl_mode or "Full",
            )
            if not partial:
                pos.stops[kind] = trigger
            self.orders[child.order_id] = child
            self._emit_order(child)

    def _system_close(
        self,
        symbol: str,
        create_type: str,
        exec_type: str,
        *,
        price: str | float | None = None,
        qty: str | float | None = None,
    ) -> str:
        """An order the venue or its web app makes (no ``orderLinkId``), filled at once."""
        with self.lock:
            pos = self.position(symbol)
            if not pos.size:
                raise ValueError(f"{symbol}: no position to close")
            at = dec(price) if price is not None else self.price(symbol)
            amount = min(dec(qty), abs(pos.size)) if qty is not None else abs(pos.size)
            order = FakeOrder(
                order_id=self.new_order_id(),
                order_link_id="",
                symbol=symbol,
                side="Sell" if pos.size > 0 else "Buy",
                order_type="Market",
                qty=amount,
                created_ms=self.now_ms,
                price=at,
                time_in_force="IOC",
                create_type=create_type,
                reduce_only=True,
                close_on_trigger=True,
                updated_ms=self.now_ms,
            )
            self.orders[order.order_id] = order
            self._execute(order, at, amount, maker=False, exec_type=exec_type)
            return order.order_id

    # -- rows ---------------------------------------------------------------------------

    def _exec_row(self, mark: Decimal | None = None, **f: Any) -> dict[str, Any]:
        mark = mark if mark is not None else self.prices.get(f["symbol"], f["price"])
        return execution_row(self.now_ms, mark, **f)

    def _close_row(
        self,
        order: FakeOrder,
        entry: Decimal,
        price: Decimal,
        closed: Decimal,
        shares: tuple[Decimal, Decimal, Decimal, Decimal],
        exec_type: str,
    ) -> None:
        """The closing order's closed-P&L row, created or updated with this fill."""
        open_fee, close_fee, funding, realised = shares
        row = self.closed.get(order.order_id)
        if row is None:
            row = self.closed[order.order_id] = {
                "symbol": order.symbol,
                "orderType": order.order_type,
                "leverage": text(self.position(order.symbol).leverage),
                "side": order.side,
                "orderId": order.order_id,
                "qty": text(order.qty),
                "orderPrice": text(order.price or price),
                "execType": "BustTrade" if exec_type == "BustTrade" else "Trade",
                "createdTime": str(self.now_ms),
                "_entry": ZERO,
                "_exit": ZERO,
                "_closed": ZERO,
                "_pnl": ZERO,
                "_open_fee": ZERO,
                "_close_fee": ZERO,
                "_fills": 0,
            }
        row["_entry"] += entry * closed
        row["_exit"] += price * closed
        row["_closed"] += closed
        row["_open_fee"] += open_fee
        row["_close_fee"] += close_fee
        row["_pnl"] += realised - open_fee - close_fee + funding
        row["_fills"] += 1
        row.update(
            closedSize=text(row["_closed"]),
            cumEntryValue=text(row["_entry"]),
            avgEntryPrice=text(row["_entry"] / row["_closed"], 8),
            cumExitValue=text(row["_exit"]),
            avgExitPrice=text(row["_exit"] / row["_closed"], 8),
            closedPnl=text(money(row["_pnl"])),
            openFee=text(money(row["_open_fee"])),
            closeFee=text(money(row["_close_fee"])),
            fillCount=str(row["_fills"]),
            updatedTime=str(self.now_ms),
        )

    def _log(
        self,
        kind: str,
        row: dict[str, Any],
        *,
        funding: Decimal,
        fee: Decimal,
        cash_flow: Decimal,
        size: Decimal,
    ) -> None:
        number = len(self.log) + 1
        flows = (funding, fee, cash_flow, size, self.wallet)
        self.log.append(log_row(kind, row, self.now_ms, number, flows))

    # -- pushes -------------------------------------------------------------------------

    def _emit(self, topic: str, data: list[dict[str, Any]]) -> None:
        for listener in list(self.listeners):
            listener(topic, data)

    def _emit_order(self, order: FakeOrder) -> None:
        self._emit("order", [dict(order.row(), category="linear", closedPnl="0")])
