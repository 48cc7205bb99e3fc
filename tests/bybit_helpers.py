"""Shared helpers for the Bybit exchange tests: an adapter on the fake, and trades on it."""

from __future__ import annotations

from datetime import timedelta

from domain.venue import OrderRequest, Side
from domain.venue_rules import order_link_id
from infrastructure.exchange.bybit import BybitExchange
from infrastructure.market.bybit import Retry, bybit_session
from tests.conftest import FAKE_KEY, FAKE_SECRET
from tests.fakes.bybit import FakeBybit
from tests.fakes.bybit_account import FakeAccount

EXECUTIONS = "/v5/execution/list"
CREATE = "/v5/order/create"


def connect(
    fake: FakeBybit,
    *,
    attempts: int = 3,
    timeout: float = 10.0,
    secret: str = FAKE_SECRET,
    page_limit: int = 100,
) -> tuple[BybitExchange, list[float]]:
    """The adapter on the fake server, its backoff sleeps recorded instead of slept."""
    sleeps: list[float] = []
    retry = Retry(attempts=attempts, sleep=sleeps.append, jitter=lambda: 0.5)
    session = bybit_session(url=fake.url, timeout=timeout, api_key=FAKE_KEY, api_secret=secret)
    return BybitExchange(session, retry=retry, page_limit=page_limit), sleeps


def entry(
    signal: str = "sig-1",
    *,
    side: Side = Side.BUY,
    qty: float = 0.01,
    price: float | None = 49_000.0,
    take_profit: float | None = 52_000.0,
    stop_loss: float | None = 48_000.0,
    symbol: str = "BTCUSDT",
) -> OrderRequest:
    """A limit entry with its bracket, for ``signal``."""
    return OrderRequest(
        symbol,
        side,
        qty,
        order_link_id(signal),
        price=price,
        take_profit=take_profit,
        stop_loss=stop_loss,
    )


def round_trip(account: FakeAccount, ex: BybitExchange, signal: str, minutes: int = 5) -> None:
    """A market buy, then a market sell ``minutes`` later (two fills, one closing)."""
    ex.place(entry(signal, price=None, take_profit=None, stop_loss=None))
    account.advance(timedelta(minutes=minutes))
    ex.place(OrderRequest("BTCUSDT", Side.SELL, 0.01, order_link_id(signal, "x"), reduce_only=True))
