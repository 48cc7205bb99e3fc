"""A fake Bybit private WebSocket (``ws://127.0.0.1:PORT/v5/private``) over a fake account.

As ``tests/fixtures/bybit/ws_private.json`` describes the real one:

- auth frame ``{"op": "auth", "args": [api_key, expires, signature]}``: the key must be
  known, ``expires`` (ms) in the future, and the signature the lowercase hex
  HMAC-SHA256(secret, ``"GET/realtime" + expires``); the reply is
  ``{"success": ..., "ret_msg": ..., "op": "auth", "conn_id": ...}``;
- ``{"op": "subscribe", "req_id": ..., "args": ["execution", ...]}`` (private topics need
  auth), answered with the ``req_id``; ``{"op": "ping"}`` answered
  ``{"op": "pong", "args": [ms], ...}``; protocol pings are answered by the library;
- every execution, order and position change of the account is pushed to the connections
  subscribed to its topic as ``{"id", "topic", "creationTime", "data": [...]}``.

Test controls: ``drop(topic, times)`` loses the next pushes of a topic (a gap: Bybit never
replays), ``disconnect()`` cuts every connection without a close frame (pybit reconnects).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import socket
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from tests.fakes.bybit_account import FakeAccount

PRIVATE_TOPICS = frozenset({"execution", "order", "position", "wallet"})


def ws_signature(secret: str, expires: int) -> str:
    """The auth frame's signature for ``expires``."""
    return hmac.new(secret.encode(), f"GET/realtime{expires}".encode(), hashlib.sha256).hexdigest()


class _Client:
    def __init__(self, connection: ServerConnection, conn_id: str) -> None:
        self.connection = connection
        self.conn_id = conn_id
        self.authed = False
        self.topics: set[str] = set()
        self.lock = threading.Lock()

    def send(self, frame: Mapping[str, Any]) -> None:
        with self.lock, suppress(ConnectionClosed, OSError):
            self.connection.send(json.dumps(frame))


class FakePrivateStream:
    """The private stream. ``with FakePrivateStream(account, keys) as ws:`` serves it."""

    def __init__(
        self,
        account: FakeAccount,
        api_keys: Mapping[str, str],
        *,
        clock: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.account = account
        self.api_keys = api_keys
        self.clock = clock
        self.received: list[dict[str, Any]] = []
        self.pushed: list[dict[str, Any]] = []
        self.dropped: list[dict[str, Any]] = []
        self.connections = 0
        self._clients: list[_Client] = []
        self._drops: dict[str, int] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server: Server | None = None

    @property
    def url(self) -> str:
        """``ws://127.0.0.1:PORT/v5/private``."""
        if self._server is None:
            raise RuntimeError("the fake private stream is not started")
        host, port = self._server.socket.getsockname()[:2]
        return f"ws://{host}:{port}/v5/private"

    def start(self) -> FakePrivateStream:
        self._server = serve(self._serve, "127.0.0.1", 0, compression=None)
        threading.Thread(
            target=self._server.serve_forever, name="fake-bybit-ws", daemon=True
        ).start()
        self.account.listeners.append(self._push)
        return self

    def stop(self) -> None:
        with suppress(ValueError):
            self.account.listeners.remove(self._push)
        if self._server is not None:
            self._server.shutdown()

    def __enter__(self) -> FakePrivateStream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def drop(self, topic: str, times: int = 1) -> None:
        """Lose the next ``times`` pushes of ``topic``."""
        with self._lock:
            self._drops[topic] = self._drops.get(topic, 0) + times

    def disconnect(self) -> None:
        """Cut every connection at the TCP level (no close frame)."""
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            with suppress(OSError):
                client.connection.socket.shutdown(socket.SHUT_RDWR)

    def subscribed(self, topic: str) -> int:
        """How many connections are authenticated and subscribed to ``topic``."""
        with self._lock:
            return sum(1 for c in self._clients if c.authed and topic in c.topics)

    # -- serving --------------------------------------------------------------------------

    def _serve(self, connection: ServerConnection) -> None:
        client = _Client(connection, f"fake-conn-{next(self._ids)}")
        with self._lock:
            self._clients.append(client)
            self.connections += 1
        try:
            for message in connection:
                frame = json.loads(message)
                with self._lock:
                    self.received.append(frame)
                self._answer(client, frame)
        except (ConnectionClosed, OSError, ValueError):
            pass
        finally:
            with self._lock:
                if client in self._clients:
                    self._clients.remove(client)

    def _answer(self, client: _Client, frame: dict[str, Any]) -> None:
        op = frame.get("op")
        base = {
            "conn_id": client.conn_id,
            **({"req_id": frame["req_id"]} if "req_id" in frame else {}),
        }
        if op == "ping":
            client.send({**base, "op": "pong", "args": [str(self.clock())]})
        elif op == "auth":
            problem = self._auth_problem(frame.get("args"))
            client.authed = problem is None
            client.send(
                {"success": problem is None, "ret_msg": problem or "", "op": "auth", **base}
            )
        elif op == "subscribe":
            topics = [str(t) for t in frame.get("args") or []]
            if any(t in PRIVATE_TOPICS for t in topics) and not client.authed:
                client.send(
                    {"success": False, "ret_msg": "Request not authorized", "op": op, **base}
                )
                return
            client.topics.update(topics)
            client.send({"success": True, "ret_msg": "", "op": op, **base})
        else:
            client.send({"success": False, "ret_msg": f"unknown op {op!r}", "op": op, **base})

    def _auth_problem(self, args: Any) -> str | None:
        if not (isinstance(args, list) and len(args) == 3):
            return "Params Error"
        key, expires, sign = args
        secret = self.api_keys.get(str(key))
        if secret is None:
            return "Invalid apikey"
        if not isinstance(expires, int) or expires <= self.clock():
            return "Params Error: expires is in the past"
        if not hmac.compare_digest(ws_signature(secret, expires), str(sign)):
            return "Signature Error"
        return None

    def _push(self, topic: str, data: list[dict[str, Any]]) -> None:
        frame = {
            "id": f"fake-{next(self._ids)}",
            "topic": topic,
            "creationTime": self.account.now_ms,
            "data": data,
        }
        with self._lock:
            if self._drops.get(topic, 0) > 0:
                self._drops[topic] -= 1
                self.dropped.append(frame)
                return
            targets = [c for c in self._clients if c.authed and topic in c.topics]
            if targets:
                self.pushed.append(frame)
        for client in targets:
            client.send(frame)
