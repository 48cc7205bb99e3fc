"""A fake Bybit V5 REST server for tests: 127.0.0.1, a free port, the documented shapes.

Drive it through the real pybit client: ``HTTP(...)`` then ``session.endpoint = fake.url``
(pybit builds every request URL from ``endpoint``), or ``fake.pybit(**kwargs)``.

- **Market** (``/v5/market/kline``, ``/instruments-info``, ``/time``) answers from
  ``FakeMarket``: instruments from ``tests/fixtures/bybit/instruments_info.json``, candles
  that a test puts in (``put_rows``, ``fill``, ``remove``), and a settable server clock. A bar
  is visible once it has opened by that clock; the bar holding the clock is the forming one,
  and comes first, as on Bybit.
- **Faults** are scripted per path (and optionally per symbol), each for N requests or for
  ever: ``ret_code(10016)``, ``rate_limited()`` (10006 in an HTTP 200 body),
  ``http_status(403)``, ``slow(seconds)`` (then the normal reply, too late for a client
  timeout), ``slow_after(seconds)`` (handled at once, the reply held: a timeout after the
  venue accepted). ``fail(path, fault, times=N)`` then success is "N failures then success".
- **Private endpoints** are added with ``route(method, path, handler, private=True)``: the
  server checks the ``X-BAPI-*`` signature (``tests.fakes.signing``) against ``api_keys``
  before the handler runs, and answers 10002 / 10003 / 10004 / HTTP 401 as Bybit does.

Every request is logged in ``requests`` (method, path, raw query, headers, body). The
simulated account behind the private endpoints is ``tests.fakes.bybit_private`` (its state
in ``bybit_account``), the private WebSocket ``tests.fakes.bybit_ws``.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pybit.unified_trading import HTTP

from tests.fakes.signing import check_signature, signed_payload

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "bybit"
KLINE = "/v5/market/kline"
INSTRUMENTS = "/v5/market/instruments-info"
SERVER_TIME = "/v5/market/time"
INTERVALS = {
    **{str(m): timedelta(minutes=m) for m in (1, 3, 5, 15, 30, 60, 120, 240, 360, 720)},
    "D": timedelta(days=1),
    "W": timedelta(weeks=1),
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def fixture(name: str) -> dict[str, Any]:
    """One of the project's Bybit fixtures (built from the documented examples)."""
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def ms(moment: datetime) -> int:
    """Milliseconds since the epoch, as Bybit counts time."""
    return (moment - _EPOCH) // timedelta(milliseconds=1)


@dataclass(frozen=True)
class Request:
    """One request as the server received it (header names lower-cased)."""

    method: str
    path: str
    raw_query: str
    headers: Mapping[str, str]
    body: bytes

    @property
    def params(self) -> dict[str, Any]:
        """The query parameters (GET) or the JSON body (POST)."""
        if self.method == "GET":
            return dict(parse_qsl(self.raw_query, keep_blank_values=True))
        if not self.body:
            return {}
        parsed = json.loads(self.body)
        return parsed if isinstance(parsed, dict) else {}


@dataclass(frozen=True)
class Reply:
    """What the server sends: a JSON body (dict) or text, a status and headers."""

    body: dict[str, Any] | str
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Reply]


@dataclass(frozen=True)
class Fault:
    """A scripted failure: wait ``delay`` seconds, then send ``reply`` (or the normal one).

    ``delay_after``: handle the request first (an order is placed), then hold the reply.
    """

    reply: Reply | None = None
    delay: float = 0.0
    delay_after: float = 0.0


def envelope(result: dict[str, Any], now_ms: int, code: int = 0, msg: str = "OK") -> Reply:
    """Bybit's response envelope: ``retCode``, ``retMsg``, ``result``, ``retExtInfo``, ``time``."""
    body = {"retCode": code, "retMsg": msg, "result": result, "retExtInfo": {}, "time": now_ms}
    return Reply(body)


def ret_code(code: int, message: str | None = None) -> Fault:
    """An HTTP 200 body with a non-zero ``retCode`` (message from ``errors.json``)."""
    text = message or fixture("errors.json")["ret_codes"].get(str(code), "error")
    return Fault(envelope({}, ms(datetime.now(UTC)), code, text))


def rate_limited(*, reset_header: bool = True) -> Fault:
    """retCode 10006 in an HTTP 200 body, with the ``X-Bapi-Limit*`` headers (or without)."""
    now = ms(datetime.now(UTC))
    body = dict(fixture("errors.json")["rate_limit_body"], time=now)
    limits = {"X-Bapi-Limit": "10", "X-Bapi-Limit-Status": "0"}
    headers = {**limits, "X-Bapi-Limit-Reset-Timestamp": str(now + 1000)} if reset_header else {}
    return Fault(Reply(body, headers=headers))


def http_status(status: int) -> Fault:
    """A non-200 HTTP status (403: the IP rate limit) with Bybit's plain-text body."""
    return Fault(Reply(fixture("errors.json")["http_status_codes"].get(str(status), ""), status))


def slow(seconds: float) -> Fault:
    """The normal reply, but only after ``seconds`` (cut short when the server stops)."""
    return Fault(delay=seconds)


def slow_after(seconds: float) -> Fault:
    """The request is handled at once (an order is accepted), its reply held ``seconds``:
    a client timeout after the venue accepted (cut short when the server stops)."""
    return Fault(delay_after=seconds)


@dataclass
class _Scripted:
    path: str
    fault: Fault
    remaining: int | None
    symbol: str | None


class FakeMarket:
    """Public market state: instruments, candles per (category, symbol, interval), a clock."""

    def __init__(self, now: datetime) -> None:
        self.now_ms = ms(now)
        fixed = fixture("instruments_info.json")
        items = [
            *fixed["response_example"]["result"]["list"],
            *fixed["not_documented_linear_items"]["list"],
        ]
        self.instruments: dict[str, dict[str, Any]] = {i["symbol"]: i for i in items}
        self.candles: dict[tuple[str, str, str], dict[int, list[str]]] = {}

    @property
    def now(self) -> datetime:
        """The server's clock."""
        return _EPOCH + timedelta(milliseconds=self.now_ms)

    @now.setter
    def now(self, moment: datetime) -> None:
        self.now_ms = ms(moment)

    def put_rows(
        self, symbol: str, interval: str, rows: Sequence[Sequence[str]], category: str = "linear"
    ) -> None:
        """Store kline rows as Bybit sends them: ``[startTime, o, h, l, c, volume, turnover]``."""
        series = self.candles.setdefault((category, symbol, interval), {})
        for row in rows:
            series[int(row[0])] = [str(v) for v in row]

    def fill(
        self,
        symbol: str,
        interval: str,
        first_open: datetime,
        count: int,
        *,
        price: float = 50_000.0,
        decimals: int = 1,
        seed: int = 0,
    ) -> list[list[str]]:
        """``count`` valid bars from ``first_open`` on: a seeded random walk. Returns the rows."""
        rng = random.Random(seed)
        step = INTERVALS[interval]
        rows = []
        close = price
        for n in range(count):
            open_ = close
            close = max(open_ * (1 + rng.gauss(0, 0.002)), 10.0**-decimals)
            high = max(open_, close) * (1 + abs(rng.gauss(0, 0.001)))
            low = min(open_, close) * (1 - abs(rng.gauss(0, 0.001)))
            volume = rng.uniform(1, 100)
            rows.append(
                [
                    str(ms(first_open + n * step)),
                    *(f"{p:.{decimals}f}" for p in (open_, high, low, close)),
                    f"{volume:.3f}",
                    f"{volume * close:.4f}",
                ]
            )
        self.put_rows(symbol, interval, rows)
        return rows

    def remove(self, symbol: str, interval: str, *open_times: datetime) -> None:
        """Take bars out, leaving a gap."""
        for moment in open_times:
            del self.candles[("linear", symbol, interval)][ms(moment)]

    # -- handlers ---------------------------------------------------------------------

    def kline(self, request: Request) -> Reply:
        """``GET /v5/market/kline``: rows in [start, end] opened by now, newest first."""
        p = request.params
        category, symbol, interval = p.get("category", "linear"), p.get("symbol"), p.get("interval")
        if not symbol or not interval:
            return self._error(10001, "params error: symbol and interval are required")
        if interval not in INTERVALS:
            return self._error(10001, "Invalid period!")
        limit = int(p.get("limit", 200))
        if not 1 <= limit <= 1000:
            return self._error(10001, "params error: limit must be in [1, 1000]")
        series = self.candles.get((category, symbol, interval))
        if series is None and symbol not in self.instruments:
            return self._error(10001, "Not supported symbols")
        start = int(p.get("start", 0))
        end = min(int(p.get("end", self.now_ms)), self.now_ms)
        rows = [row for t, row in sorted((series or {}).items(), reverse=True) if start <= t <= end]
        return envelope({"category": category, "symbol": symbol, "list": rows[:limit]}, self.now_ms)

    def instruments_info(self, request: Request) -> Reply:
        """``GET /v5/market/instruments-info``: linear instruments, by symbol or all."""
        p = request.params
        if p.get("category") != "linear":
            return self._error(10001, "params error: category only linear in this fake")
        symbol = p.get("symbol")
        items = [i for s, i in self.instruments.items() if symbol in (None, s)]
        result = {"category": "linear", "list": items, "nextPageCursor": ""}
        return envelope(result, self.now_ms)

    def server_time(self, request: Request) -> Reply:
        """``GET /v5/market/time``."""
        del request
        result = {"timeSecond": str(self.now_ms // 1000), "timeNano": str(self.now_ms * 10**6)}
        return envelope(result, self.now_ms)

    def _error(self, code: int, message: str) -> Reply:
        return envelope({}, self.now_ms, code, message)


class FakeBybit:
    """The fake server. ``with FakeBybit() as fake:`` starts it on a free port."""

    def __init__(self, now: datetime = datetime(2024, 3, 1, 12, 7, 30, tzinfo=UTC)) -> None:
        self.market = FakeMarket(now)
        self.api_keys: dict[str, str] = {}
        self.requests: list[Request] = []
        self.auth_clock: Callable[[], int] = lambda: int(time.time() * 1000)
        self._routes: dict[tuple[str, str], tuple[Handler, bool]] = {}
        self._faults: list[_Scripted] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self.route("GET", KLINE, self.market.kline)
        self.route("GET", INSTRUMENTS, self.market.instruments_info)
        self.route("GET", SERVER_TIME, self.market.server_time)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (the value for pybit's ``session.endpoint``)."""
        if self._server is None:
            raise RuntimeError("the fake Bybit server is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def route(self, method: str, path: str, handler: Handler, *, private: bool = False) -> None:
        """Serve ``method path`` with ``handler``; a private route checks the signature."""
        self._routes[(method, path)] = (handler, private)

    def fail(
        self, path: str, fault: Fault, *, times: int | None = 1, symbol: str | None = None
    ) -> None:
        """Apply ``fault`` to the next ``times`` requests to ``path`` (``None``: all)."""
        with self._lock:
            self._faults.append(_Scripted(path, fault, times, symbol))

    def calls(self, path: str) -> list[Request]:
        """The requests received for ``path``, oldest first."""
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def pybit(self, **kwargs: Any) -> HTTP:
        """A real pybit session pointed at this server."""
        session = HTTP(**kwargs)
        session.endpoint = self.url
        return session

    def start(self) -> FakeBybit:
        """Listen on 127.0.0.1 on a free port, serving from a background thread."""
        fake = self

        class _Bound(_RequestHandler):
            server_fake = fake

        server = ThreadingHTTPServer(("127.0.0.1", 0), _Bound)
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        threading.Thread(
            target=server.serve_forever, args=(0.05,), name="fake-bybit", daemon=True
        ).start()
        return self

    def stop(self) -> None:
        """Stop serving; any slow reply still waiting is released."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FakeBybit:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def answer(self, request: Request) -> Reply:
        """The reply to one request: a scripted fault, the signature check, then the route."""
        with self._lock:
            self.requests.append(request)
            fault = self._take_fault(request)
        if fault is not None:
            if fault.delay:
                self._stopping.wait(fault.delay)
            if fault.reply is not None:
                return fault.reply
        found = self._routes.get((request.method, request.path))
        if found is None:
            return Reply("404 page not found", 404)
        handler, private = found
        if private:
            failure = check_signature(
                request.headers,
                signed_payload(request.method, request.raw_query, request.body),
                self.api_keys,
                self.auth_clock(),
            )
            if failure is not None:
                if failure.http_status != 200:
                    return Reply(failure.message, failure.http_status)
                return envelope({}, self.market.now_ms, failure.code, failure.message)
        reply = handler(request)
        if fault is not None and fault.delay_after:
            self._stopping.wait(fault.delay_after)
        return reply

    def _take_fault(self, request: Request) -> Fault | None:
        for scripted in self._faults:
            if scripted.path != request.path or scripted.remaining == 0:
                continue
            if scripted.symbol is not None and request.params.get("symbol") != scripted.symbol:
                continue
            if scripted.remaining is not None:
                scripted.remaining -= 1
            return scripted.fault
        return None


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_fake: FakeBybit

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the fake's log is ``FakeBybit.requests``."""

    def _serve(self, method: str) -> None:
        parts = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        request = Request(method, parts.path, parts.query, headers, body)
        try:
            reply = self.server_fake.answer(request)
        except Exception as e:  # a broken handler must show in the test, not hang it
            reply = Reply(f"fake Bybit handler failed: {e!r}", 500)
        if isinstance(reply.body, dict):
            payload, kind = json.dumps(reply.body).encode(), "application/json"
        else:
            payload, kind = reply.body.encode(), "text/plain"
        with suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
            self.send_response(reply.status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
