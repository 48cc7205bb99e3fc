"""The private WebSocket as a hint: pybit's client against the fake private stream, and a
gap in the stream caught up by the windowed REST read."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
import websocket

from domain.venue_rules import order_link_id
from infrastructure.exchange.bybit_stream import PrivateStream, StreamHint
from infrastructure.exchange.bybit_wire import Credentials
from tests.bybit_helpers import connect, entry
from tests.conftest import FAKE_KEY, FAKE_SECRET
from tests.fakes.bybit import FakeBybit, fixture
from tests.fakes.bybit_account import FakeAccount
from tests.fakes.bybit_ws import FakePrivateStream, ws_signature

PATIENCE = 30.0


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Wait (generously) until ``condition()`` holds."""
    deadline = time.monotonic() + PATIENCE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


class Hints:
    """Collects the stream's hints (called on pybit's thread)."""

    def __init__(self) -> None:
        self.seen: list[StreamHint] = []
        self.lock = threading.Lock()

    def __call__(self, hint: StreamHint) -> None:
        with self.lock:
            self.seen.append(hint)

    def topics(self) -> list[str]:
        with self.lock:
            return [h.topic for h in self.seen]


@pytest.fixture
def fake_ws(fake_account: FakeAccount) -> Iterator[FakePrivateStream]:
    with FakePrivateStream(fake_account, {FAKE_KEY: FAKE_SECRET}) as ws:
        yield ws


@pytest.fixture
def listening(fake_ws: FakePrivateStream) -> Iterator[tuple[PrivateStream, Hints]]:
    hints = Hints()
    stream = PrivateStream(Credentials(FAKE_KEY, FAKE_SECRET), hints, url=fake_ws.url)
    stream.start()
    try:
        wait_for(lambda: fake_ws.subscribed("position") == 1, "the three subscriptions")
        yield stream, hints
    finally:
        stream.stop()


def test_a_push_reaches_the_callback_as_a_hint(
    fake_bybit: FakeBybit,
    fake_account: FakeAccount,
    fake_ws: FakePrivateStream,
    listening: tuple[PrivateStream, Hints],
) -> None:
    stream, hints = listening
    ex, _ = connect(fake_bybit)
    assert hints.topics() == ["connected"] and stream.connected

    ex.place(entry())
    fake_account.set_price("BTCUSDT", "48900")

    wait_for(lambda: {"execution", "order", "position"} <= set(hints.topics()), "the hints")
    execution = next(h for h in hints.seen if h.topic == "execution")
    assert execution.symbols == {"BTCUSDT"} and not execution.reconnected
    auth = next(f for f in fake_ws.received if f.get("op") == "auth")
    assert auth["args"][0] == FAKE_KEY and FAKE_SECRET not in json.dumps(fake_ws.received)
    pushed = next(f for f in fake_ws.pushed if f["topic"] == "execution")
    assert set(pushed) == {"id", "topic", "creationTime", "data"}
    assert pushed["data"][0]["orderLinkId"] == order_link_id("sig-1")
    assert FAKE_SECRET not in repr(stream)


def test_a_dropped_push_is_caught_up_by_rest_after_the_reconnect(
    fake_bybit: FakeBybit,
    fake_account: FakeAccount,
    fake_ws: FakePrivateStream,
    listening: tuple[PrivateStream, Hints],
) -> None:
    _, hints = listening
    ex, _ = connect(fake_bybit)
    mark = fake_account.market.now  # the caller's stored high-water mark
    ex.place(entry())
    wait_for(lambda: "order" in hints.topics(), "the order hint")
    for topic in ("execution", "order", "position"):
        fake_ws.drop(topic, times=50)  # the fill's pushes are lost: Bybit never replays
    fake_account.advance(timedelta(minutes=2))
    fake_account.set_price("BTCUSDT", "48900")
    assert any(f["topic"] == "execution" for f in fake_ws.dropped)
    assert "execution" not in hints.topics()

    fake_ws.disconnect()
    wait_for(lambda: any(h.reconnected for h in hints.seen), "a reconnect hint")
    caught_up = ex.executions("BTCUSDT", mark - timedelta(minutes=5))

    (fill,) = caught_up.fills
    assert fill.order_link_id == order_link_id("sig-1") and fill.price == 49_000
    assert caught_up.latest == fill.time and fake_ws.connections == 2
    wait_for(lambda: fake_ws.subscribed("execution") == 1, "the resubscription")


def test_the_fake_stream_checks_the_auth_frame_and_answers_pings(
    fake_ws: FakePrivateStream,
) -> None:
    sock = websocket.create_connection(fake_ws.url, timeout=PATIENCE)
    try:
        sock.send(json.dumps({"op": "ping", "req_id": "p1"}))
        pong = json.loads(sock.recv())
        assert pong["op"] == "pong" and pong["req_id"] == "p1" and pong["args"][0].isdigit()
        sock.send(json.dumps({"op": "subscribe", "req_id": "s0", "args": ["execution"]}))
        assert json.loads(sock.recv())["success"] is False  # private topics need auth first

        expires = int(time.time() * 1000) + 10_000
        for args in (
            [FAKE_KEY, expires, ws_signature("another-secret", expires)],
            [FAKE_KEY, 1_000, ws_signature(FAKE_SECRET, 1_000)],
            ["UNKNOWNKEY", expires, ws_signature(FAKE_SECRET, expires)],
        ):
            sock.send(json.dumps({"op": "auth", "args": args}))
            assert json.loads(sock.recv())["success"] is False

        sock.send(
            json.dumps(
                {"op": "auth", "args": [FAKE_KEY, expires, ws_signature(FAKE_SECRET, expires)]}
            )
        )
        assert json.loads(sock.recv()) == {
            "success": True,
            "ret_msg": "",
            "op": "auth",
            "conn_id": "fake-conn-1",
        }
        sock.send(json.dumps({"op": "subscribe", "req_id": "s1", "args": ["execution"]}))
        reply = json.loads(sock.recv())
        assert reply["success"] is True and reply["req_id"] == "s1"
    finally:
        sock.close()


def test_the_documented_auth_signature_vector() -> None:
    vector = fixture("ws_private.json")["auth"]["computed_test_vector"]
    assert ws_signature(vector["api_secret"], vector["expires"]) == vector["signature_hex"]
