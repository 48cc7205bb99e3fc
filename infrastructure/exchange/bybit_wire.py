"""Bybit V5 on the wire: the parameters tradewatch sends, the 7-day windows, what each
failure means, and the API keys (which never show).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import requests
from pybit.exceptions import FailedRequestError, InvalidRequestError

from application.ports import ExchangeAuthFailed
from domain.venue import OrderRequest, Side

CATEGORY = "linear"
WINDOW = timedelta(days=7) - timedelta(minutes=1)
"""The widest range one executions / closed-P&L request asks for (Bybit allows 7 days)."""
MAX_PAGES = 2000
"""Pages per window before the adapter gives up (a server whose cursor never ends)."""
AUTH_CODES = {
    10003: "the API key is invalid, or for another environment (mainnet, testnet, demo)",
    10004: "the signature was refused: check BYBIT_API_SECRET and the system clock",
    10005: "the API key lacks a permission this needs (orders, positions)",
    10007: "authentication failed",
    10010: "this machine's IP address is not bound to the API key",
    33004: "the API key has expired",
}
REJECTIONS = {
    110004: "the wallet balance is insufficient",
    110007: "the available balance is insufficient",
    110012: "the available balance is insufficient",
    110017: "the quantity rounds to zero at the symbol's lot step",
    110094: "the order value is below the symbol's minimum notional",
    110003: "the price is outside the allowed range",
    110020: "too many active orders",
    110057: "the take-profit / stop-loss parameters were refused",
    110058: "the position is too small for the take-profit / stop loss",
    110061: "too many take-profit / stop-loss orders (Partial mode allows 20)",
    10001: "a parameter was refused",
}
AMBIGUOUS_CODES = frozenset({-1, 10000, 10016, 110079})
"""retCodes after which an order may or may not exist (server timeout, server error,
"order is processing"): look it up before sending again."""
RATE_LIMIT, CLOCK, DUPLICATE_LINK = 10006, 10002, 110072
NOT_MODIFIED = frozenset({110043, 110025})
NOTHING_TO_CANCEL = frozenset({110001, 110008, 110010})
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]+")


@dataclass(frozen=True)
class Credentials:
    """An API key and secret: never shown (``repr`` hides both)."""

    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)

    def __post_init__(self) -> None:
        for name, value in (("BYBIT_API_KEY", self.api_key), ("BYBIT_API_SECRET", self.api_secret)):
            if not value or len(value) > 512 or not value.isprintable() or value != value.strip():
                raise ExchangeAuthFailed(f"{name} is empty or not a printable key")

    def __repr__(self) -> str:
        return "Credentials(api_key=***, api_secret=***)"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Credentials:
        """``BYBIT_API_KEY`` and ``BYBIT_API_SECRET`` from the environment (nowhere else)."""
        env = os.environ if environ is None else environ
        key, secret = env.get("BYBIT_API_KEY", ""), env.get("BYBIT_API_SECRET", "")
        if not key or not secret:
            raise ExchangeAuthFailed(
                "set BYBIT_API_KEY and BYBIT_API_SECRET in the environment to use Bybit"
            )
        return cls(key, secret)


def windows(
    start: datetime, end: datetime, width: timedelta = WINDOW
) -> list[tuple[datetime, datetime]]:
    """``[start, end]`` cut into ranges of at most ``width`` that share their boundaries."""
    if end < start:
        raise ValueError(f"the range ends ({end.isoformat()}) before it starts")
    cuts = []
    cursor = start
    while True:
        stop = min(cursor + width, end)
        cuts.append((cursor, stop))
        if stop >= end:
            return cuts
        cursor = stop


def decimal_text(value: float) -> str:
    """A price or quantity as Bybit takes it: plain decimal digits, no exponent."""
    text = format(Decimal(repr(float(value))).normalize(), "f")
    return text[:-2] if text.endswith(".0") else text


def place_order_params(request: OrderRequest) -> dict[str, Any]:
    """The exact ``place_order`` keyword arguments (and so the JSON body) for ``request``.

    A limit (or market) entry in one-way mode carrying its bracket: ``tpslMode=Partial``
    (TP/SL sized to what fills), a limit take-profit at ``tpLimitPrice``, a market stop.
    """
    params: dict[str, Any] = {
        "category": CATEGORY,
        "symbol": request.symbol,
        "side": "Buy" if request.side is Side.BUY else "Sell",
        "orderType": "Market" if request.price is None else "Limit",
        "qty": decimal_text(request.qty),
    }
    if request.price is not None:
        params["price"] = decimal_text(request.price)
        params["timeInForce"] = request.time_in_force.value
    params["positionIdx"] = 0
    params["orderLinkId"] = request.order_link_id
    if request.reduce_only:
        params["reduceOnly"] = True
    if request.take_profit is not None:
        params["takeProfit"] = decimal_text(request.take_profit)
    if request.stop_loss is not None:
        params["stopLoss"] = decimal_text(request.stop_loss)
    if request.take_profit is not None or request.stop_loss is not None:
        params["tpslMode"] = "Partial"
    if request.take_profit is not None and request.take_profit_limit is not None:
        params["tpOrderType"] = "Limit"
        params["tpLimitPrice"] = decimal_text(request.take_profit_limit)
    if request.stop_loss is not None:
        params["slOrderType"] = "Market"
    return params


@dataclass(frozen=True)
class Failure:
    """One failed call, sorted: what to say, and what it means for a retry."""

    cause: str
    code: int | None = None
    transient: bool = False  # a retry may cure it
    ambiguous: bool = False  # an order may have been placed anyway
    auth: bool = False


def sort_failure(error: Exception, clean: Callable[[str], str]) -> Failure:
    """What a failed call means; ``clean`` scrubs the venue's message of any secret."""
    if isinstance(error, InvalidRequestError):
        code, text = int(error.status_code), clean(str(error.message))
        said = f"retCode {code}: {text}"
        if code in AUTH_CODES:
            return Failure(f"{AUTH_CODES[code]} ({said})", code, auth=True)
        if code == RATE_LIMIT:
            return Failure(f"rate limited ({said})", code, transient=True)
        if code == CLOCK:
            return Failure(f"the clock is out of sync with Bybit's ({said})", code, transient=True)
        if code in AMBIGUOUS_CODES:
            return Failure(said, code, transient=True, ambiguous=True)
        if code in REJECTIONS:
            return Failure(f"{REJECTIONS[code]} ({said})", code)
        return Failure(said, code)
    if isinstance(error, FailedRequestError):
        status = error.status_code
        cause = "HTTP 403 (IP rate limit, or a U.S. IP)" if status == 403 else f"HTTP {status}"
        if status == 409:
            cause = "a reply that is not JSON"
        return Failure(cause, transient=True, ambiguous=True)
    if isinstance(error, requests.Timeout):
        return Failure(f"no reply in time ({type(error).__name__})", transient=True, ambiguous=True)
    if isinstance(error, requests.RequestException):
        return Failure(f"network error ({type(error).__name__})", transient=True, ambiguous=True)
    if isinstance(error, PermissionError):
        return Failure("no API key and secret given", auth=True)
    raise error


class Scrubber:
    """Makes venue text safe to show: one printable line, without the key or the secret."""

    def __init__(self, *secrets: str | None) -> None:
        self._secrets = tuple(s for s in secrets if s)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        line = _UNPRINTABLE.sub(" ", text).strip()
        return line if len(line) <= 300 else line[:299] + "…"

    def __repr__(self) -> str:
        return "Scrubber()"
