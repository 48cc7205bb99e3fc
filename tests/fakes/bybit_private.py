"""The fake account's private REST endpoints on the fake Bybit server (signature-checked),
plus the public tickers. Shapes, limits and time windows follow the project's fixtures:

- executions, closed P&L and order history: no times → the last 7 days; only
  ``startTime`` → [start, start + 7 d]; only ``endTime`` → [end − 7 d, end]; both → at
  most 7 days apart, else retCode 10001 (the transaction log: 24 hours instead of 7 days
  for the defaults, 7 days at most). A query by ``orderId`` / ``orderLinkId`` ignores the
  other filters (Bybit's priority rule), times included;
- newest first, paged by an opaque ``nextPageCursor`` (percent-encoded, as Bybit's are);
  ``account.page_size`` caps every page (so tests page), and a path in
  ``account.repeat_cursor`` answers every cursor with itself (a server whose cursor repeats);
- the order history keeps a cancelled, rejected or deactivated order with no fill for 24 h.

``bybit_account(fake)`` builds the account and installs the routes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from tests.fakes import bybit_trading as trading
from tests.fakes.bybit import FakeBybit, Reply, Request, envelope
from tests.fakes.bybit_account import BybitError, FakeAccount
from tests.fakes.bybit_book import ZERO, FakeOrder, dec, text
from tests.fakes.bybit_trading import account_unrealised, margin_in_use

DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS
_GONE = ("Cancelled", "Rejected", "Deactivated")


def bybit_account(fake: FakeBybit, **options: Any) -> FakeAccount:
    """A fake account on ``fake`` with every private route installed."""
    account = FakeAccount(fake.market, **options)
    _Routes(fake, account).install()
    return account


def _window(p: dict[str, Any], now_ms: int, span: int = WEEK_MS) -> tuple[int, int]:
    start, end = p.get("startTime"), p.get("endTime")
    try:
        s = int(start) if start is not None else None
        e = int(end) if end is not None else None
    except ValueError:
        raise BybitError(10001, "params error: startTime and endTime are ms integers") from None
    if s is None and e is None:
        return now_ms - span, now_ms
    if e is None:
        assert s is not None
        return s, s + span
    if s is None:
        return e - span, e
    if e < s:
        raise BybitError(10001, "params error: startTime must not be after endTime")
    if e - s > WEEK_MS:
        raise BybitError(
            10001, "params error: The time range between startTime and endTime cannot exceed 7 days"
        )
    return s, e


class _Routes:
    def __init__(self, fake: FakeBybit, account: FakeAccount) -> None:
        self.fake, self.account = fake, account

    def install(self) -> None:
        gets = {
            "/v5/execution/list": self.executions,
            "/v5/position/closed-pnl": self.closed_pnl,
            "/v5/order/realtime": self.open_orders,
            "/v5/order/history": self.order_history,
            "/v5/position/list": self.positions,
            "/v5/account/transaction-log": self.transaction_log,
            "/v5/account/wallet-balance": self.wallet_balance,
            "/v5/account/fee-rate": self.fee_rate,
        }
        posts = {
            "/v5/order/create": self.place,
            "/v5/order/cancel": self.cancel,
            "/v5/order/amend": self.amend,
            "/v5/order/cancel-all": self.cancel_all,
            "/v5/position/set-leverage": self.set_leverage,
            "/v5/position/switch-mode": self.switch_mode,
            "/v5/position/trading-stop": self.trading_stop,
        }
        for path, handler in gets.items():
            self.fake.route("GET", path, self._wrap(handler), private=True)
        for path, handler in posts.items():
            self.fake.route("POST", path, self._wrap(handler), private=True)
        self.fake.route("GET", "/v5/market/tickers", self._wrap(self.tickers))

    def _wrap(self, handler: Callable[[Request], dict[str, Any]]) -> Callable[[Request], Reply]:
        def serve(request: Request) -> Reply:
            with self.account.lock:
                try:
                    return envelope(handler(request), self.account.now_ms)
                except BybitError as e:
                    return envelope({}, self.account.now_ms, e.code, e.message)

        return serve

    # -- helpers ------------------------------------------------------------------------

    @staticmethod
    def _linear(p: dict[str, Any]) -> None:
        if p.get("category") != "linear":
            raise BybitError(10001, "params error: category only linear in this fake")

    def _page(
        self, items: Sequence[dict[str, Any]], p: dict[str, Any], path: str, default: int, most: int
    ) -> tuple[list[dict[str, Any]], str]:
        try:
            limit = int(p.get("limit", default))
        except ValueError:
            raise BybitError(10001, "params error: limit") from None
        if not 1 <= limit <= most:
            raise BybitError(10001, f"params error: limit must be in [1, {most}]")
        if self.account.page_size:
            limit = min(limit, self.account.page_size)
        cursor = p.get("cursor") or ""
        offset = 0
        if cursor:
            found = re.fullmatch(r"page:(\d+)", cursor)
            if found is None:
                raise BybitError(10001, "params error: cursor invalid")
            offset = int(found.group(1))
        chunk = [
            {k: v for k, v in row.items() if not k.startswith("_")}
            for row in items[offset : offset + limit]
        ]
        following = quote(f"page:{offset + limit}", safe="") if offset + limit < len(items) else ""
        if cursor and path in self.account.repeat_cursor:
            following = quote(cursor, safe="")
        return chunk, following

    def _listed(
        self, items: list[dict[str, Any]], p: dict[str, Any], path: str, default: int, most: int
    ) -> dict[str, Any]:
        chunk, following = self._page(items, p, path, default, most)
        return {"nextPageCursor": following, "category": "linear", "list": chunk}

    # -- reading ------------------------------------------------------------------------

    def executions(self, request: Request) -> dict[str, Any]:
        p = request.params
        self._linear(p)
        rows = list(self.account.executions)
        by_id = p.get("orderId") or p.get("orderLinkId")
        if by_id:
            key = "orderId" if p.get("orderId") else "orderLinkId"
            rows = [r for r in rows if r[key] == by_id]
        else:
            low, high = _window(p, self.account.now_ms)
            rows = [r for r in rows if low <= int(r["execTime"]) <= high]
            if p.get("symbol"):
                rows = [r for r in rows if r["symbol"] == p["symbol"]]
            if p.get("execType"):
                rows = [r for r in rows if r["execType"] == p["execType"]]
        rows.sort(key=lambda r: -int(r["execTime"]))
        return self._listed(rows, p, request.path, 50, 100)

    def closed_pnl(self, request: Request) -> dict[str, Any]:
        p = request.params
        self._linear(p)
        low, high = _window(p, self.account.now_ms)
        rows = [r for r in self.account.closed.values() if low <= int(r["updatedTime"]) <= high]
        if p.get("symbol"):
            rows = [r for r in rows if r["symbol"] == p["symbol"]]
        rows.sort(key=lambda r: -int(r["updatedTime"]))
        return self._listed(rows, p, request.path, 50, 100)

    def _orders(self, p: dict[str, Any], rows: list[FakeOrder]) -> list[FakeOrder]:
        if p.get("orderId"):
            return [o for o in rows if o.order_id == p["orderId"]]
        if p.get("orderLinkId"):
            return [o for o in rows if o.order_link_id == p["orderLinkId"]]
        if p.get("symbol"):
            rows = [o for o in rows if o.symbol == p["symbol"]]
        kind = p.get("orderFilter")
        if kind == "StopOrder":
            rows = [o for o in rows if o.is_conditional]
        elif kind == "Order":
            rows = [o for o in rows if not o.is_conditional]
        return rows

    def open_orders(self, request: Request) -> dict[str, Any]:
        p = request.params
        self._linear(p)
        if not any(
            p.get(k) for k in ("symbol", "baseCoin", "settleCoin", "orderId", "orderLinkId")
        ):
            raise BybitError(10001, "params error: symbol, baseCoin or settleCoin is required")
        open_only = p.get("openOnly", "0") == "0"
        rows = [o for o in self.account.orders.values() if o.is_open == open_only]
        found = sorted(self._orders(p, rows), key=lambda o: -o.created_ms)
        return self._listed([o.row() for o in found], p, request.path, 20, 50)

    def order_history(self, request: Request) -> dict[str, Any]:
        p = request.params
        self._linear(p)
        now = self.account.now_ms
        rows = [
            o
            for o in self.account.orders.values()
            if not (
                o.status in _GONE
                and not o.cum_qty
                and now - (o.updated_ms or o.created_ms) > DAY_MS
            )
        ]
        if not (p.get("orderId") or p.get("orderLinkId")):
            low, high = _window(p, now)
            rows = [o for o in rows if low <= o.created_ms <= high]
            if p.get("orderStatus"):
                rows = [o for o in rows if o.status == p["orderStatus"]]
        found = sorted(self._orders(p, rows), key=lambda o: -o.created_ms)
        return self._listed([o.row() for o in found], p, request.path, 20, 50)

    def positions(self, request: Request) -> dict[str, Any]:
        p = request.params
        self._linear(p)
        account = self.account
        if p.get("symbol"):
            account.instrument(p["symbol"])
            chosen = [account.position(p["symbol"])]
        elif p.get("settleCoin"):
            chosen = [pos for pos in account.positions.values() if pos.size]
        else:
            raise BybitError(10001, "params error: symbol or settleCoin is required")
        rows = [pos.row(account.prices.get(pos.symbol, pos.avg_price)) for pos in chosen]
        return self._listed(rows, p, request.path, 20, 200)

    def transaction_log(self, request: Request) -> dict[str, Any]:
        p = request.params
        if p.get("accountType", "UNIFIED") != "UNIFIED":
            raise BybitError(10001, "params error: accountType")
        low, high = _window(p, self.account.now_ms, span=DAY_MS)
        rows = [r for r in self.account.log if low <= int(r["transactionTime"]) <= high]
        for key in ("category", "currency", "type"):
            if p.get(key):
                rows = [r for r in rows if r[key] == p[key]]
        rows.sort(key=lambda r: -int(r["transactionTime"]))
        chunk, following = self._page(rows, p, request.path, 20, 50)
        return {"nextPageCursor": following, "list": chunk}

    def wallet_balance(self, request: Request) -> dict[str, Any]:
        if request.params.get("accountType") != "UNIFIED":
            raise BybitError(10001, "params error: accountType must be UNIFIED")
        account = self.account
        upl = account_unrealised(account)
        wallet = account.wallet
        available = wallet + upl - margin_in_use(account)
        coin = {
            "coin": "USDT",
            "equity": text(wallet + upl, 8),
            "usdValue": text(wallet + upl, 8),
            "walletBalance": text(wallet, 8),
            "unrealisedPnl": text(upl, 8),
            "cumRealisedPnl": text(
                sum((x.cum_realised for x in account.positions.values()), ZERO), 8
            ),
            "totalOrderIM": "0",
            "totalPositionIM": "0",
            "totalPositionMM": "0",
            "locked": "0",
            "borrowAmount": "0",
            "accruedInterest": "0",
            "bonus": "0",
            "spotHedgingQty": "0",
            "spotBorrow": "0",
            "marginCollateral": True,
            "collateralSwitch": True,
            "availableToWithdraw": "",
            "availableToBorrow": "",
        }
        total = {
            "accountType": "UNIFIED",
            "totalEquity": text(wallet + upl, 8),
            "totalWalletBalance": text(wallet, 8),
            "totalMarginBalance": text(wallet + upl, 8),
            "totalAvailableBalance": text(available, 8),
            "totalPerpUPL": text(upl, 8),
            "totalInitialMargin": text(margin_in_use(account), 8),
            "totalMaintenanceMargin": "0",
            "totalInitialMarginByMp": text(margin_in_use(account), 8),
            "totalMaintenanceMarginByMp": "0",
            "accountIMRate": "0",
            "accountIMRateByMp": "0",
            "accountMMRate": "0",
            "accountMMRateByMp": "0",
            "accountLTV": "0",
            "coin": [coin],
        }
        return {"list": [total]}

    def fee_rate(self, request: Request) -> dict[str, Any]:
        p = request.params
        self._linear(p)
        symbols = [p["symbol"]] if p.get("symbol") else sorted(self.account.market.instruments)
        fees = self.account.fees
        return {
            "list": [
                {
                    "symbol": s,
                    "takerFeeRate": text(fees["taker"]),
                    "makerFeeRate": text(fees["maker"]),
                }
                for s in symbols
            ]
        }

    def tickers(self, request: Request) -> dict[str, Any]:
        p = request.params
        self._linear(p)
        symbols = [p["symbol"]] if p.get("symbol") else sorted(self.account.prices)
        rows = []
        for symbol in symbols:
            last = self.account.price(symbol)
            tick = self.account.instrument(symbol)["priceFilter"]["tickSize"]
            rate = self.account.funding_rates.get(symbol, Decimal("0.0001"))
            rows.append(
                {
                    "symbol": symbol,
                    "lastPrice": text(last),
                    "indexPrice": text(last),
                    "markPrice": text(last),
                    "prevPrice24h": text(last),
                    "price24hPcnt": "0",
                    "highPrice24h": text(last),
                    "lowPrice24h": text(last),
                    "prevPrice1h": text(last),
                    "openInterest": "0",
                    "openInterestValue": "0",
                    "turnover24h": "0",
                    "volume24h": "0",
                    "fundingRate": text(rate),
                    "nextFundingTime": str(
                        (self.account.now_ms // (8 * 3600_000) + 1) * 8 * 3600_000
                    ),
                    "predictedDeliveryPrice": "",
                    "basisRate": "",
                    "deliveryFeeRate": "",
                    "deliveryTime": "0",
                    "ask1Size": "1",
                    "bid1Price": text(last - dec(tick)),
                    "ask1Price": text(last),
                    "bid1Size": "1",
                    "basis": "",
                    "preOpenPrice": "",
                    "preQty": "",
                    "curPreListingPhase": "",
                    "fundingIntervalHour": "8",
                    "basisRateYear": "",
                    "fundingCap": "0.005",
                }
            )
        return {"category": "linear", "list": rows}

    # -- trading (``tests.fakes.bybit_trading``) ----------------------------------------

    def place(self, request: Request) -> dict[str, Any]:
        return trading.place(self.account, request.params)

    def cancel(self, request: Request) -> dict[str, Any]:
        return trading.cancel(self.account, request.params)

    def amend(self, request: Request) -> dict[str, Any]:
        return trading.amend(self.account, request.params)

    def cancel_all(self, request: Request) -> dict[str, Any]:
        return trading.cancel_all(self.account, request.params)

    def set_leverage(self, request: Request) -> dict[str, Any]:
        return trading.set_leverage(self.account, request.params)

    def switch_mode(self, request: Request) -> dict[str, Any]:
        return trading.switch_mode(self.account, request.params)

    def trading_stop(self, request: Request) -> dict[str, Any]:
        return trading.trading_stop(self.account, request.params)
