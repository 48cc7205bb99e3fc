"""Bybit's private WebSocket (``execution``, ``order``, ``position``) as a hint, never a record.

A push says "something changed on SYMBOL": the caller reacts by reading REST earlier than
its schedule (``BybitExchange.executions`` from its high-water mark). Nothing in a push is
recorded, and nothing missed is replayed by Bybit or pybit: so every (re)connect is a hint
too (``StreamHint.reconnected``), after which the caller runs its windowed REST catch-up.

On pybit's ``WebSocket(channel_type="private", ...)``: it connects in its constructor,
signs the auth frame (``GET/realtime`` + expires), pings, and on a lost connection
reconnects, re-authenticates and resubscribes. pybit takes its URL from a module constant;
``url`` here (a fake server in tests, a regional host) is given to pybit's ``_connect``,
which every connect and reconnect goes through. The callback runs on pybit's thread: keep
it short (set an event, put in a queue). A callback that raises is logged and ignored,
since an exception there would stop pybit's stream; so is a subscribe reply that arrives
before pybit has recorded the subscription (a race in pybit 5.17 that ends its thread).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pybit.unified_trading import WebSocket

from infrastructure.exchange.bybit_wire import Credentials

TOPICS = ("execution", "order", "position")
_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StreamHint:
    """What the stream said: ``topic`` pushed for ``symbols``, or (re)connected."""

    topic: str
    symbols: frozenset[str] = frozenset()
    reconnected: bool = False


Hint = Callable[[StreamHint], None]


class _PybitPrivate(WebSocket):  # type: ignore[misc]  # pybit is untyped
    """pybit's private WebSocket, connecting to ``url`` and telling every (re)connect."""

    def __init__(self, url: str | None, on_connect: Callable[[], None], **kwargs: Any) -> None:
        self._tw_url = url
        self._tw_on_connect = on_connect
        super().__init__(channel_type="private", **kwargs)

    def _connect(self, url: str) -> None:
        super()._connect(self._tw_url or url)
        self._tw_on_connect()

    def _process_subscription_message(self, message: dict[str, Any]) -> None:
        """Tolerate a reply that beats pybit's own bookkeeping.

        pybit records a subscription only after sending it; a reply that arrives first
        has a ``req_id`` pybit does not know yet, and its ``KeyError`` would end the
        stream's thread (and leave the next subscribe waiting for ever).
        """
        req_id = message.get("req_id")
        if req_id and req_id not in self.subscriptions:
            if message.get("success") is False:
                _log.warning(
                    "a private-stream subscription was refused: %s", message.get("ret_msg")
                )
            return
        super()._process_subscription_message(message)


class PrivateStream:
    """Listens to the private topics and calls ``on_hint`` for each push and (re)connect.

    ``start()`` connects (it raises if the first connection fails); ``stop()`` closes.
    ``ping_interval`` / ``ping_timeout`` / ``retries`` are pybit's (defaults 20 s, 10 s, 10).
    """

    def __init__(
        self,
        credentials: Credentials,
        on_hint: Hint,
        *,
        testnet: bool = False,
        demo: bool = False,
        url: str | None = None,
        ping_interval: int = 20,
        ping_timeout: int = 10,
        retries: int = 10,
        auth_expire: int = 1,
    ) -> None:
        self._credentials = credentials
        self._on_hint = on_hint
        self._options = {
            "testnet": testnet,
            "demo": demo,
            "ping_interval": ping_interval,
            "ping_timeout": ping_timeout,
            "retries": retries,
            "private_auth_expire": auth_expire,
        }
        self._url = url
        self._socket: _PybitPrivate | None = None
        self._connects = 0

    def __repr__(self) -> str:
        return f"PrivateStream(url={self._url!r}, connected={self.connected})"

    @property
    def connected(self) -> bool:
        """Whether the socket is open now."""
        return self._socket is not None and bool(self._socket.is_connected())

    def start(self) -> None:
        """Connect, authenticate and subscribe to ``execution``, ``order`` and ``position``."""
        if self._socket is not None:
            return
        self._socket = _PybitPrivate(
            self._url,
            self._connected,
            api_key=self._credentials.api_key,
            api_secret=self._credentials.api_secret,
            **self._options,
        )
        self._socket.execution_stream(self._pushed)
        self._socket.order_stream(self._pushed)
        self._socket.position_stream(self._pushed)

    def stop(self) -> None:
        """Close the connection (no reconnect)."""
        socket, self._socket = self._socket, None
        if socket is not None:
            socket.handle_error = False  # a drop racing the close must not reconnect
            socket.exit()

    def __enter__(self) -> PrivateStream:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _connected(self) -> None:
        self._connects += 1
        self._tell(StreamHint("connected", reconnected=self._connects > 1))

    def _pushed(self, message: Mapping[str, Any]) -> None:
        topic = str(message.get("topic", ""))
        data = message.get("data")
        items = data if isinstance(data, list) else []
        symbols = frozenset(
            str(item["symbol"]) for item in items if isinstance(item, dict) and "symbol" in item
        )
        self._tell(StreamHint(topic, symbols))

    def _tell(self, hint: StreamHint) -> None:
        try:
            self._on_hint(hint)
        except Exception:  # an exception here would end pybit's stream thread
            _log.exception("the private stream's hint callback failed on %s", hint.topic)
