"""The ``Exchange`` port on Bybit V5 (``category="linear"``, one-way mode) through pybit.

REST is the truth (the private WebSocket in ``bybit_stream`` only says "read now"):

- **Executions and closed P&L** are read in windows of at most 7 days minus a minute,
  every request carrying **both** ``startTime`` and ``endTime`` (Bybit answers a start
  alone with [start, start + 7 d], whatever the caller meant). Consecutive windows share
  their boundary millisecond; every page is walked (``nextPageCursor``) until the cursor
  is empty or repeats; rows are deduplicated by ``execId`` (closed P&L by ``orderId``), and
  two different rows under one id refuse the reply. ``latest`` in the batch is the caller's
  next high-water mark.
- **Funding** is read from the executions (``execType=Funding``), which share the fills'
  windows, cursor and unique ``execId``; ``funding_from_transaction_log`` reads the
  transaction log's ``SETTLEMENT`` rows as a cross-check (its ``id`` is not unique, it has
  no symbol filter and a 24-hour default window). See ``docs/exchange.md``.
- A **closing fill of an attached TP/SL** (no ``orderLinkId`` of its own) is linked to its
  entry through the order history's ``parentOrderLinkId``.
- **Placement** is idempotent under the ``orderLinkId``: on an ambiguous outcome (a
  timeout, a dropped connection, an HTTP error, a reply that is not JSON, retCode 10000,
  10016 or 110079) the order is first looked up by ``orderLinkId``, and only if it is not
  there re-sent with the same id; ``110072`` (duplicate ``orderLinkId``) means placed.
- Failures are one-line ``ExchangeError``s (``OrderRejected`` for 110007/110012, 110017,
  110094 and the other refusals, ``ExchangeAuthFailed`` for 10003/10004/10005/10010,
  ``ExchangeUnavailable`` after the bounded retries, 10006 included). No message, repr or
  log line carries the API key or secret.

Keys come only from ``BYBIT_API_KEY`` and ``BYBIT_API_SECRET`` in the environment.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

from pybit.unified_trading import HTTP

from application.ports import (
    CancelOutcome,
    ClosedPnlBatch,
    ExchangeAuthFailed,
    ExchangeError,
    ExchangeUnavailable,
    ExecutionBatch,
    MarketUnavailable,
    OrderRejected,
    Placement,
    PlacementStatus,
)
from domain.candles import Instrument
from domain.values import utc
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
from infrastructure.exchange import bybit_rows as rows
from infrastructure.exchange.bybit_wire import (
    CATEGORY,
    DUPLICATE_LINK,
    MAX_PAGES,
    NOT_MODIFIED,
    NOTHING_TO_CANCEL,
    Credentials,
    Failure,
    Scrubber,
    decimal_text,
    place_order_params,
    sort_failure,
    windows,
)
from infrastructure.market.bybit import BybitMarket, Retry, bybit_session
from infrastructure.settings import Settings


def bybit_exchange(settings: Settings, credentials: Credentials | None = None) -> BybitExchange:
    """The Bybit account the settings select (mainnet, ``BYBIT_TESTNET``, ``BYBIT_DEMO``)."""
    keys = credentials or Credentials.from_env()
    session = bybit_session(
        testnet=settings.bybit_testnet,
        demo=settings.bybit_demo,
        url=settings.bybit_url,
        timeout=settings.bybit_timeout,
        api_key=keys.api_key,
        api_secret=keys.api_secret,
    )
    return BybitExchange(session)


T = TypeVar("T")


class BybitExchange:
    """The ``Exchange`` port on a pybit session that holds the keys.

    ``retry`` bounds every call (its ``sleep`` is injectable: tests never wait);
    ``page_limit`` is the page size asked of the executions and closed-P&L endpoints.
    """

    def __init__(
        self,
        session: HTTP,
        *,
        retry: Retry | None = None,
        market: BybitMarket | None = None,
        page_limit: int = 100,
    ) -> None:
        self._session = session
        self._retry = retry or Retry()
        self._market = market or BybitMarket(session, retry=self._retry)
        self._page_limit = page_limit
        self._clean = Scrubber(
            getattr(session, "api_key", None), getattr(session, "api_secret", None)
        )

    def __repr__(self) -> str:
        return f"BybitExchange(endpoint={self._session.endpoint!r})"

    # -- reading -----------------------------------------------------------------------

    def now(self) -> datetime:
        """Bybit's server time."""
        try:
            return self._market.now()
        except MarketUnavailable as e:
            raise ExchangeUnavailable(self._clean(str(e))) from None

    def instrument(self, symbol: str) -> Instrument:
        """The symbol's trading rules (cached by the market adapter)."""
        try:
            return self._market.instrument(symbol)
        except MarketUnavailable as e:
            raise ExchangeUnavailable(self._clean(str(e))) from None

    def executions(
        self, symbol: str, start: datetime, end: datetime | None = None
    ) -> ExecutionBatch:
        """Fills and funding of ``symbol`` in ``[start, end]``, each once, oldest first."""
        start, through = self._range(start, end)
        found: dict[str, Execution | FundingPayment] = {}
        for low, high in windows(start, through):
            query = {"symbol": symbol, "startTime": rows.ms(low), "endTime": rows.ms(high)}
            for row in self._pages(f"{symbol} executions", self._session.get_executions, query):
                fact = self._read(f"{symbol} executions", rows.execution_or_funding, row)
                key = fact.exec_id if isinstance(fact, Execution) else fact.funding_id
                known = found.setdefault(key, fact)
                if known != fact:
                    raise ExchangeUnavailable(
                        f"{symbol}: Bybit sent two different executions under execId {key[:60]}"
                    )
        inside = [f for f in found.values() if start <= f.time <= through]
        fills = sorted((f for f in inside if isinstance(f, Execution)), key=_fill_order)
        funding = sorted(
            (f for f in inside if isinstance(f, FundingPayment)),
            key=lambda f: (f.time, f.funding_id),
        )
        latest = max((f.time for f in inside), default=None)
        return ExecutionBatch(
            symbol, start, through, self._link(symbol, fills), tuple(funding), latest
        )

    def closed_pnl(
        self, symbol: str, start: datetime, end: datetime | None = None
    ) -> ClosedPnlBatch:
        """Closed-P&L rows of ``symbol`` in ``[start, end]``, one per closing order (the
        latest version of a row that was updated), oldest first."""
        start, through = self._range(start, end)
        found: dict[str, ClosedPnl] = {}
        for low, high in windows(start, through):
            query = {"symbol": symbol, "startTime": rows.ms(low), "endTime": rows.ms(high)}
            for row in self._pages(f"{symbol} closed P&L", self._session.get_closed_pnl, query):
                fact = self._read(f"{symbol} closed P&L", rows.closed_pnl, row)
                known = found.get(fact.order_id)
                if known is None or fact.updated > known.updated:
                    found[fact.order_id] = fact
        ordered = sorted(found.values(), key=lambda r: (r.updated, r.order_id))
        latest = max((r.updated for r in ordered), default=None)
        return ClosedPnlBatch(symbol, start, through, tuple(ordered), latest)

    def funding_from_transaction_log(
        self, symbol: str, start: datetime, end: datetime | None = None
    ) -> tuple[FundingPayment, ...]:
        """The transaction log's funding settlements of ``symbol`` (a cross-check of the
        executions' funding rows: same times and amounts, other ids)."""
        start, through = self._range(start, end)
        found: dict[tuple[datetime, str], FundingPayment] = {}
        for low, high in windows(start, through):
            query = {
                "accountType": "UNIFIED",
                "currency": "USDT",
                "type": "SETTLEMENT",
                "startTime": rows.ms(low),
                "endTime": rows.ms(high),
            }
            label = f"{symbol} transaction log"
            for row in self._pages(label, self._session.get_transaction_log, query, limit=50):
                if row.get("symbol") == symbol and row.get("type") == "SETTLEMENT":
                    fact = self._read(label, rows.settlement, row)
                    found.setdefault((fact.time, fact.funding_id), fact)
        inside = (f for f in found.values() if start <= f.time <= through)
        return tuple(sorted(inside, key=lambda f: (f.time, f.funding_id)))

    def positions(self, symbol: str | None = None) -> tuple[Position, ...]:
        """The symbol's position (flat too), or every open USDT position."""
        query = {"symbol": symbol} if symbol else {"settleCoin": "USDT"}
        label = f"{symbol or 'all'} positions"
        found = [
            self._read(label, rows.position, row)
            for row in self._pages(label, self._session.get_positions, query, limit=200)
        ]
        return tuple(p for p in found if symbol or p.side is not None)

    def order(self, symbol: str, *, order_link_id: str = "", order_id: str = "") -> Order | None:
        """An order by link id or order id: open orders first, then the order history."""
        if not (order_link_id or order_id):
            raise ValueError("name an order by its link id or its order id")
        query = {"symbol": symbol}
        query.update({"orderId": order_id} if order_id else {"orderLinkId": order_link_id})
        label = f"{symbol} order {order_link_id or order_id}"
        for call in (self._session.get_open_orders, self._session.get_order_history):
            reply = self._call(label, _bound(call, category=CATEGORY, **query))
            for row in _list(reply, label, self._clean):
                found = self._read(label, rows.order, row)
                if order_id and found.order_id == order_id:
                    return found
                if order_link_id and found.order_link_id == order_link_id:
                    return found
        return None

    def open_orders(self, symbol: str) -> tuple[Order, ...]:
        """Open orders of every kind (Bybit's default: conditional TP/SL included)."""
        label = f"{symbol} open orders"
        pages = self._pages(label, self._session.get_open_orders, {"symbol": symbol}, limit=50)
        return tuple(self._read(label, rows.order, row) for row in pages)

    def attached_stops(self, symbol: str, order_link_id: str) -> AttachedStops:
        """The open conditional orders (``orderFilter=StopOrder``) whose
        ``parentOrderLinkId`` is the entry, told apart by ``stopOrderType``."""
        label = f"{symbol} stop orders"
        query = {"symbol": symbol, "orderFilter": "StopOrder"}
        found = [
            self._read(label, rows.order, row)
            for row in self._pages(label, self._session.get_open_orders, query, limit=50)
        ]
        mine = [o for o in found if o.parent_order_link_id == order_link_id]
        return AttachedStops(
            order_link_id,
            take_profits=tuple(o for o in mine if o.is_take_profit),
            stop_losses=tuple(o for o in mine if o.is_stop_loss),
        )

    def ticker(self, symbol: str) -> Ticker:
        """Last and mark price (``/v5/market/tickers``)."""
        label = f"{symbol} ticker"
        reply = self._call(
            label, lambda: self._session.get_tickers(category=CATEGORY, symbol=symbol)
        )
        items = [r for r in _list(reply, label, self._clean) if r.get("symbol") == symbol]
        if not items:
            raise ExchangeUnavailable(f"{label}: Bybit sent no ticker for {symbol}")
        return self._read(label, lambda r: rows.ticker(r, int(reply.get("time", 0))), items[0])

    def fee_rates(self, symbol: str) -> FeeRates:
        """The account's maker and taker rates on the symbol."""
        label = f"{symbol} fee rate"
        reply = self._call(
            label, lambda: self._session.get_fee_rates(category=CATEGORY, symbol=symbol)
        )
        items = [r for r in _list(reply, label, self._clean) if r.get("symbol") in (symbol, None)]
        if not items:
            raise ExchangeUnavailable(f"{label}: Bybit sent no fee rate for {symbol}")
        return self._read(label, rows.fee_rates, items[0])

    def balance(self) -> Balance:
        """The unified account's equity and available balance (USD)."""
        label = "wallet balance"
        reply = self._call(label, lambda: self._session.get_wallet_balance(accountType="UNIFIED"))
        items = _list(reply, label, self._clean)
        if not items:
            raise ExchangeUnavailable(f"{label}: Bybit sent no unified account")
        return self._read(label, rows.balance, items[0])

    # -- trading -----------------------------------------------------------------------

    def set_leverage(self, symbol: str, leverage: float) -> None:
        """Buy and sell leverage both ``leverage``; "not modified" (110043) is fine."""
        value = decimal_text(leverage)
        self._harmless(
            f"{symbol} leverage",
            lambda: self._session.set_leverage(
                category=CATEGORY, symbol=symbol, buyLeverage=value, sellLeverage=value
            ),
        )

    def use_one_way_mode(self, symbol: str) -> None:
        """Merged single position mode (``positionIdx=0``); "not modified" (110025) is fine."""
        self._harmless(
            f"{symbol} position mode",
            lambda: self._session.switch_position_mode(category=CATEGORY, symbol=symbol, mode=0),
        )

    def place(self, request: OrderRequest) -> Placement:
        """Send ``request`` once, and again only after looking it up (same ``orderLinkId``)."""
        params = place_order_params(request)
        link, label = request.order_link_id, f"{request.symbol} order {request.order_link_id}"
        for attempt in range(1, self._retry.attempts + 1):
            try:
                reply = self._session.place_order(**params)
            except Exception as e:
                failure = sort_failure(e, self._clean)
            else:
                order_id = _order_id(reply)
                if order_id is not None:
                    return Placement(link, order_id, PlacementStatus.PLACED, attempt)
                failure = Failure("a reply without an order id", ambiguous=True, transient=True)
            if failure.code == DUPLICATE_LINK:
                found = self._lookup(request.symbol, link)
                order_id = found.order_id if found else ""
                return Placement(link, order_id, PlacementStatus.ALREADY_PLACED, attempt)
            if failure.auth:
                raise ExchangeAuthFailed(f"{label}: {failure.cause}", code=failure.code)
            if not failure.transient:
                raise OrderRejected(
                    f"{label}: Bybit refused the order: {failure.cause}", code=failure.code
                )
            if attempt == self._retry.attempts:
                unsure = (
                    " It may or may not be placed; placing it again is safe (same orderLinkId)."
                )
                raise ExchangeUnavailable(
                    f"{label}: no definite answer after {attempt} attempts ({failure.cause})."
                    + (unsure if failure.ambiguous else ""),
                    code=failure.code,
                )
            self._retry.sleep(self._retry.delay(attempt))
            if failure.ambiguous:
                found = self._lookup(request.symbol, link)
                if found is not None:
                    return Placement(link, found.order_id, PlacementStatus.ALREADY_PLACED, attempt)
        raise AssertionError("unreachable: Retry.attempts is at least 1")

    def cancel(self, symbol: str, order_link_id: str) -> CancelOutcome:
        """Cancel an open order by link id; one already gone is ``NOT_OPEN``."""
        label = f"{symbol} cancel {order_link_id}"
        try:
            self._call(
                label,
                lambda: self._session.cancel_order(
                    category=CATEGORY, symbol=symbol, orderLinkId=order_link_id
                ),
            )
        except ExchangeError as e:
            if e.code in NOTHING_TO_CANCEL:
                return CancelOutcome.NOT_OPEN
            raise
        return CancelOutcome.CANCELLED

    # -- plumbing ----------------------------------------------------------------------

    def _range(self, start: datetime, end: datetime | None) -> tuple[datetime, datetime]:
        begin, through = utc(start), utc(end) if end is not None else self.now()
        if through < begin:
            raise ValueError(f"the range ends ({through.isoformat()}) before it starts")
        return begin, through

    def _lookup(self, symbol: str, link: str) -> Order | None:
        """The order under ``link``, or ``None`` (also when the lookup itself fails)."""
        try:
            return self.order(symbol, order_link_id=link)
        except ExchangeUnavailable:
            return None

    def _link(self, symbol: str, fills: list[Execution]) -> tuple[Execution, ...]:
        """Closing fills of the venue's own TP/SL orders get their entry's link id."""
        parents: dict[str, str] = {}
        linked = []
        for fill in fills:
            if fill.is_exit and not fill.order_link_id and fill.stop_order_type:
                if fill.order_id not in parents:
                    order = self.order(symbol, order_id=fill.order_id)
                    parents[fill.order_id] = order.parent_order_link_id if order else ""
                if parents[fill.order_id]:
                    linked.append(replace(fill, parent_order_link_id=parents[fill.order_id]))
                    continue
            linked.append(fill)
        return tuple(linked)

    def _pages(
        self,
        label: str,
        call: Callable[..., Any],
        query: Mapping[str, Any],
        *,
        limit: int | None = None,
    ) -> Iterator[Mapping[str, Any]]:
        """Every row of every page, until ``nextPageCursor`` is empty or comes back again."""
        sent: set[str] = set()
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            kwargs = {"category": CATEGORY, **query, "limit": limit or self._page_limit}
            if cursor:
                kwargs["cursor"] = cursor
            reply = self._call(label, _bound(call, **kwargs))
            page = _list(reply, label, self._clean)
            yield from page
            following = str(reply["result"].get("nextPageCursor") or "")
            if not page or not following or following in sent:
                return
            sent.add(following)
            cursor = following
        raise ExchangeUnavailable(f"{label}: Bybit's pages did not end after {MAX_PAGES}")

    def _call(self, label: str, call: Callable[[], Any]) -> Any:
        """``call()``, retried per ``Retry`` while the failure is transient."""
        for attempt in range(1, self._retry.attempts + 1):
            try:
                return call()
            except Exception as e:
                failure = sort_failure(e, self._clean)
            if failure.auth:
                raise ExchangeAuthFailed(f"{label}: {failure.cause}", code=failure.code)
            if not failure.transient or attempt == self._retry.attempts:
                tries = f" after {attempt} attempts" if attempt > 1 else ""
                raise ExchangeUnavailable(
                    f"{label}: Bybit failed{tries}: {failure.cause}", code=failure.code
                )
            self._retry.sleep(self._retry.delay(attempt))
        raise AssertionError("unreachable: Retry.attempts is at least 1")

    def _harmless(self, label: str, call: Callable[[], Any]) -> None:
        try:
            self._call(label, call)
        except ExchangeError as e:
            if e.code not in NOT_MODIFIED:
                raise

    def _read(self, label: str, parse: Callable[[Mapping[str, Any]], T], row: Any) -> T:
        if not isinstance(row, Mapping):
            raise ExchangeUnavailable(f"{label}: Bybit sent a row that is not an object")
        try:
            return parse(row)
        except rows.BadRowError as e:
            raise ExchangeUnavailable(self._clean(f"{label}: Bybit sent {e}")) from None


def _bound(call: Callable[..., Any], **kwargs: Any) -> Callable[[], Any]:
    return lambda: call(**kwargs)


def _list(reply: Any, label: str, clean: Callable[[str], str]) -> list[Any]:
    result = reply.get("result") if isinstance(reply, dict) else None
    items = result.get("list") if isinstance(result, dict) else None
    if not isinstance(items, list):
        raise ExchangeUnavailable(clean(f"{label}: Bybit sent a reply without a list"))
    return items


def _order_id(reply: Any) -> str | None:
    result = reply.get("result") if isinstance(reply, dict) else None
    order_id = result.get("orderId") if isinstance(result, dict) else None
    return order_id if isinstance(order_id, str) and order_id else None


def _fill_order(fill: Execution) -> tuple[datetime, str]:
    return fill.time, fill.exec_id
