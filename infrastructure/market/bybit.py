"""Bybit V5 market data through pybit: closed candles, trading rules and the server clock.

Public market endpoints only (``/v5/market/kline``, ``/instruments-info``, ``/time``), so no
API keys are needed. Always ``category="linear"`` (USDT perpetuals).

What the adapter guarantees, whatever Bybit sends:

- only **closed** candles: a row whose start + interval is after the server's time (Bybit
  returns the still-forming candle first) is dropped;
- oldest first, validated (``Candle.problem()``); a bad row refuses the whole reply with a
  one-line reason; an exact duplicate is dropped, two different bars at one time refuse;
- a gap is reported in ``CandleBatch.gaps``, never filled in;
- more than 1,000 bars (Bybit's most per call) are fetched page by page;
- a failed call (non-zero ``retCode``, a rate limit 10006, HTTP 403, a timeout, a network
  error) is retried a bounded number of times with jittered backoff, then raises
  ``MarketUnavailable`` with one line naming the symbol and the cause. A caller looping over
  symbols catches it per symbol, so one bad symbol never stops a run.

pybit's own retry loop is switched off (it sleeps with ``time.sleep`` for as long as a
rate-limit header says, unbounded and unjittered): ``Retry`` here is the only one.
"""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import requests
from pybit.exceptions import FailedRequestError, InvalidRequestError
from pybit.unified_trading import HTTP

from application.ports import CandleBatch, MarketUnavailable
from domain.candles import Candle, Instrument
from domain.values import utc
from infrastructure.market.series import gaps_between, on_grid
from infrastructure.settings import Settings

CATEGORY = "linear"
MAX_PER_CALL = 1000
"""Bybit's largest ``limit`` for ``get_kline``."""
MINUTE_INTERVALS = (1, 3, 5, 15, 30, 60, 120, 240, 360, 720)
PERMANENT_CODES = frozenset({10001, 10003, 10004, 10005, 10010, 10029})
"""retCodes that a retry cannot cure (bad parameter or symbol, keys, permissions, IP)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]+")


def bybit_interval(interval: timedelta) -> str | None:
    """Bybit's name for a candle interval (``"15"``, ``"D"``, ``"W"``), or ``None``."""
    minutes, rest = divmod(interval, timedelta(minutes=1))
    if not rest and minutes in MINUTE_INTERVALS:
        return str(minutes)
    return {timedelta(days=1): "D", timedelta(weeks=1): "W"}.get(interval)


def bybit_session(
    *,
    testnet: bool = False,
    url: str | None = None,
    timeout: float = 10.0,
    demo: bool = False,
    api_key: str | None = None,
    api_secret: str | None = None,
) -> HTTP:
    """A pybit session, with pybit's own retries off: public market data without keys.

    ``url`` replaces the base URL (a regional host, or a fake server in tests); ``timeout``
    is in seconds per request. ``demo`` and the keys are for the private endpoints
    (``infrastructure.exchange.bybit``); the session object holds the secret, so it is
    never printed or logged.
    """
    session = HTTP(
        testnet=testnet,
        demo=demo,
        api_key=api_key,
        api_secret=api_secret,
        timeout=timeout,
        max_retries=1,
    )
    session.retry_codes = frozenset()
    if url is not None:
        session.endpoint = url.rstrip("/")
    return session


def bybit_market(settings: Settings) -> BybitMarket:
    """The Bybit market the settings select: testnet or mainnet, base URL, timeout.

    ``BYBIT_DEMO`` does not change it: demo trading fills at mainnet prices, so its market
    data is mainnet's (testnet's with ``BYBIT_TESTNET`` as well).
    """
    return BybitMarket(
        bybit_session(
            testnet=settings.bybit_testnet,
            url=settings.bybit_url,
            timeout=settings.bybit_timeout,
        )
    )


@dataclass(frozen=True)
class Retry:
    """Bounded retries with equal-jitter exponential backoff.

    The n-th wait (n = 1, 2, ...) is ``step/2 + U(0, step/2)`` with
    ``step = min(max_delay, base_delay * 2**(n-1))``; ``attempts`` counts the first call.
    ``sleep`` and ``jitter`` (a number in [0, 1)) are injectable, so tests never wait.
    """

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    sleep: Callable[[float], None] = time.sleep
    jitter: Callable[[], float] = random.random

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.base_delay < 0 or self.max_delay < self.base_delay:
            raise ValueError(f"not a retry policy: {self}")

    def delay(self, failures: int) -> float:
        """How long to wait after the ``failures``-th failed attempt."""
        step = min(self.max_delay, self.base_delay * 2.0 ** (failures - 1))
        return step / 2 + step / 2 * self.jitter()


class _BadReplyError(Exception):
    """Bybit answered, but with something that is not a valid market reply (not retried)."""


class BybitMarket:
    """The ``MarketData`` port on Bybit V5 (``category="linear"``) through pybit.

    Build one per process: instruments are cached for the life of the object.
    """

    def __init__(self, session: HTTP, *, retry: Retry | None = None) -> None:
        self._session = session
        self._retry = retry or Retry()
        self._instruments: dict[str, Instrument] = {}
        self._launched: dict[str, datetime] = {}

    @property
    def endpoint(self) -> str:
        """The REST base URL it reads from."""
        url: str = self._session.endpoint
        return url

    def now(self) -> datetime:
        """Bybit's server time, UTC (``timeNano``, else ``timeSecond``)."""
        return self._server_time("server time")

    def instrument(self, symbol: str) -> Instrument:
        """The symbol's tick size, lot step and minimums (fetched once, then cached).

        Bybit lists only instruments in trading by default: another is "no instrument".
        The maximum quantity is the smaller of the limit- and market-order maximums.
        """
        if symbol not in self._instruments:
            reply = self._call(
                symbol,
                lambda: self._session.get_instruments_info(category=CATEGORY, symbol=symbol),
            )
            self._instruments[symbol], self._launched[symbol] = _instrument(symbol, reply)
        return self._instruments[symbol]

    def closed_candles(
        self,
        symbol: str,
        interval: timedelta,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 200,
    ) -> CandleBatch:
        """Up to ``limit`` closed candles, oldest first, with the gaps between them.

        With ``start``: the first ``limit`` bars opening at or after it; otherwise the last
        ``limit`` bars closing at or before ``end`` (default and at most: server time).
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        code = bybit_interval(interval)
        if code is None:
            raise MarketUnavailable(
                f"{symbol}: Bybit has no {interval} candles (minutes "
                f"{', '.join(map(str, MINUTE_INTERVALS))}, one day or one week)"
            )
        cutoff = self._server_time(symbol)
        if end is not None:
            cutoff = min(utc(end), cutoff)
        if start is None:
            bars = self._backward(symbol, interval, code, cutoff, limit, explicit_end=end)
            chosen = bars[-limit:]
        else:
            bars = self._forward(symbol, interval, code, utc(start), cutoff, limit)
            chosen = bars[:limit]
        return CandleBatch(symbol, interval, tuple(chosen), gaps_between(chosen))

    # -- paging -------------------------------------------------------------------------

    def _backward(
        self,
        symbol: str,
        interval: timedelta,
        code: str,
        cutoff: datetime,
        limit: int,
        *,
        explicit_end: datetime | None,
    ) -> list[Candle]:
        """Newest first, page by page back in time, until ``limit`` closed bars are in."""
        bars: dict[datetime, Candle] = {}
        # Without an end, the first page starts with the forming candle: ask one more.
        page_end = None if explicit_end is None else cutoff - interval
        while len(bars) < limit:
            want = min(MAX_PER_CALL, limit - len(bars) + (page_end is None))
            query: dict[str, Any] = {"limit": want}
            if page_end is not None:
                query["end"] = _ms(page_end)
            page = self._kline(symbol, code, interval, query)
            _merge(symbol, bars, page, cutoff)
            if len(page) < want:
                break  # the start of the symbol's history
            oldest = min(c.open_time for c in page)
            if page_end is not None and oldest > page_end:
                break  # the server ignored ``end``: no progress is possible
            page_end = oldest - timedelta(milliseconds=1)
        return _ordered(symbol, interval, bars)

    def _forward(
        self,
        symbol: str,
        interval: timedelta,
        code: str,
        start: datetime,
        cutoff: datetime,
        limit: int,
    ) -> list[Candle]:
        """Windows of at most 1,000 bars from ``start`` (or the listing) towards ``cutoff``."""
        bars: dict[datetime, Candle] = {}
        try:  # no bar before the listing: skip the empty windows
            self.instrument(symbol)
            cursor = max(start, self._launched[symbol])
        except MarketUnavailable:
            cursor = start
        last_open = cutoff - interval
        width = interval * MAX_PER_CALL
        while cursor <= last_open and len(bars) < limit:
            window_end = min(cursor + width - timedelta(milliseconds=1), last_open)
            query = {"start": _ms(cursor), "end": _ms(window_end), "limit": MAX_PER_CALL}
            _merge(symbol, bars, self._kline(symbol, code, interval, query), cutoff)
            cursor += width
        return _ordered(symbol, interval, bars)

    # -- calls --------------------------------------------------------------------------

    def _kline(
        self, symbol: str, code: str, interval: timedelta, query: Mapping[str, Any]
    ) -> list[Candle]:
        reply = self._call(
            symbol,
            lambda: self._session.get_kline(
                category=CATEGORY, symbol=symbol, interval=code, **query
            ),
        )
        try:
            result = _result(reply)
            if result.get("symbol") not in (symbol, None):
                raise _BadReplyError(f"a reply for {result.get('symbol')!r}")
            rows = result.get("list")
            if not isinstance(rows, list):
                raise _BadReplyError("a kline reply without a list")
            return [_candle(symbol, interval, row) for row in rows]
        except _BadReplyError as e:
            raise MarketUnavailable(_one_line(f"{symbol}: Bybit sent {e}")) from None

    def _server_time(self, label: str) -> datetime:
        reply = self._call(label, self._session.get_server_time)
        try:
            result = _result(reply)
            nano, second = result.get("timeNano"), result.get("timeSecond")
            if isinstance(nano, str) and nano.isdigit():
                return _EPOCH + timedelta(microseconds=int(nano) // 1000)
            if isinstance(second, str) and second.isdigit():
                return _EPOCH + timedelta(seconds=int(second))
            raise _BadReplyError("a server time without timeNano or timeSecond")
        except _BadReplyError as e:
            raise MarketUnavailable(_one_line(f"{label}: Bybit sent {e}")) from None

    def _call(self, label: str, call: Callable[[], Any]) -> Any:
        """``call()``, retried per ``Retry`` on a transient failure, else one clear line."""
        for attempt in range(1, self._retry.attempts + 1):
            try:
                return call()
            except (InvalidRequestError, FailedRequestError, requests.RequestException) as e:
                cause, transient = _cause(e)
            if not transient or attempt == self._retry.attempts:
                tries = f" after {attempt} attempts" if attempt > 1 else ""
                raise MarketUnavailable(_one_line(f"{label}: Bybit failed{tries}: {cause}"))
            self._retry.sleep(self._retry.delay(attempt))
        raise AssertionError("unreachable: Retry.attempts is at least 1")


def _cause(error: Exception) -> tuple[str, bool]:
    """What went wrong, in a few words, and whether a retry may cure it."""
    if isinstance(error, InvalidRequestError):
        code = error.status_code
        if code == 10006:
            return f"rate limited (retCode 10006: {error.message})", True
        return f"retCode {code}: {error.message}", code not in PERMANENT_CODES
    if isinstance(error, FailedRequestError):
        status = error.status_code
        if status == 403:
            return "HTTP 403 (IP rate limit breached, or a U.S. IP)", True
        if status == 409:
            return "a reply that is not JSON", True
        return f"HTTP {status}", True
    if isinstance(error, requests.Timeout):
        return f"no reply in time ({type(error).__name__})", True
    return f"network error ({type(error).__name__})", True


def _result(reply: Any) -> dict[str, Any]:
    if not isinstance(reply, dict) or not isinstance(reply.get("result"), dict):
        raise _BadReplyError("a reply without a result object")
    result: dict[str, Any] = reply["result"]
    return result


def _candle(symbol: str, interval: timedelta, row: Any) -> Candle:
    """One ``[startTime, open, high, low, close, volume, turnover]`` row, validated."""
    if not (isinstance(row, list) and len(row) >= 6 and all(isinstance(v, str) for v in row)):
        raise _BadReplyError(f"a kline row that is not a list of strings: {row!r:.80}")
    if not row[0].isdigit():
        raise _BadReplyError(f"a kline row with start time {row[0]!r:.30}")
    try:
        open_, high, low, close, volume = (float(v) for v in row[1:6])
    except ValueError:
        raise _BadReplyError(f"a kline row with a non-number price: {row!r:.80}") from None
    candle = Candle(
        symbol=symbol,
        open_time=_EPOCH + timedelta(milliseconds=int(row[0])),
        interval=interval,
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=volume,
    )
    problem = candle.problem()
    if problem:
        raise _BadReplyError(f"a bad bar ({problem})")
    return candle


def _merge(symbol: str, bars: dict[datetime, Candle], page: list[Candle], cutoff: datetime) -> None:
    """Add the page's closed bars; an exact duplicate is dropped, a different one refused."""
    for candle in page:
        if candle.close_time > cutoff:
            continue  # still forming at the server's time (or after the asked end)
        known = bars.setdefault(candle.open_time, candle)
        if known != candle:
            raise MarketUnavailable(
                f"{symbol}: Bybit sent two different bars at {candle.open_time.isoformat()}"
            )


def _ordered(symbol: str, interval: timedelta, bars: dict[datetime, Candle]) -> list[Candle]:
    ordered = [bars[t] for t in sorted(bars)]
    for before, after in pairwise(ordered):
        if not on_grid(before.open_time, after.open_time, interval):
            raise MarketUnavailable(
                f"{symbol}: Bybit sent a bar at {after.open_time.isoformat()} off the "
                f"{interval} grid of the bar at {before.open_time.isoformat()}"
            )
    return ordered


def _instrument(symbol: str, reply: Any) -> tuple[Instrument, datetime]:
    """The instrument and its launch time from an ``instruments-info`` reply."""
    try:
        items = _result(reply).get("list")
        if not isinstance(items, list):
            raise _BadReplyError("an instruments reply without a list")
        item = next((i for i in items if isinstance(i, dict) and i.get("symbol") == symbol), None)
        if item is None:
            raise _BadReplyError(f"no linear instrument named {symbol}")
        price, lot = item.get("priceFilter"), item.get("lotSizeFilter")
        if not isinstance(price, dict) or not isinstance(lot, dict):
            raise _BadReplyError("an instrument without priceFilter or lotSizeFilter")
        max_qty = min(
            _number(lot, "maxOrderQty", math.inf), _number(lot, "maxMktOrderQty", math.inf)
        )
        instrument = Instrument(
            symbol=symbol,
            tick_size=_number(price, "tickSize"),
            qty_step=_number(lot, "qtyStep"),
            min_order_qty=_number(lot, "minOrderQty"),
            min_notional=_number(lot, "minNotionalValue", 0.0),
            max_order_qty=max_qty,
        )
        launch = str(item.get("launchTime", "0"))
        launched = _EPOCH + timedelta(milliseconds=int(launch) if launch.isdigit() else 0)
    except _BadReplyError as e:
        raise MarketUnavailable(_one_line(f"{symbol}: Bybit sent {e}")) from None
    return instrument, launched


def _number(fields: Mapping[str, Any], name: str, default: float | None = None) -> float:
    """An instrument filter's decimal string: finite and > 0 (>= 0 if ``default`` is 0).

    ``default`` stands in when the field is absent or empty; without one, it is required.
    """
    text = fields.get(name)
    if text in (None, "") and default is not None:
        return default
    try:
        value = float(str(text))
    except ValueError:
        raise _BadReplyError(f"{name} {text!r:.30}, not a number") from None
    least_ok = 0.0 if default == 0.0 else math.ulp(0.0)
    if not (math.isfinite(value) and value >= least_ok):
        raise _BadReplyError(f"{name} {text!r:.30}, not a finite number > 0")
    return value


def _ms(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _one_line(text: str, limit: int = 300) -> str:
    line = _UNPRINTABLE.sub(" ", text).strip()
    return line if len(line) <= limit else line[: limit - 1] + "…"
