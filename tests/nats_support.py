"""Helpers of the NATS tests: a nats-server of a test's own, a relay in the background,
core-NATS and stdout collectors, and waiting on conditions (never on the clock)."""

from __future__ import annotations

import asyncio
import queue
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import nats
import pytest
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy

from domain.alert import Alert, AlertType, Severity
from domain.events import Causation
from domain.signal import SignalDraft
from domain.values import Direction
from infrastructure.bootstrap import Tradewatch
from infrastructure.nats_relay import STREAM, AlertRelay, Backoff, connect_options, serve
from projections.facts import Fact
from tests.conftest import free_port

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
WAIT = 30.0
"""How long a test waits for a condition (a message, a state) before it fails."""
DAY = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
"""When the helpers' signals and alerts happen."""


class NatsServer:
    """A nats-server with JetStream on a free port; kill it and start it again at will."""

    def __init__(self, store: Path, *options: str) -> None:
        self.port = free_port()
        self.store = store
        self.options = options
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        address = ("-a", "127.0.0.1", "-p", str(self.port))
        self.process = subprocess.Popen(
            [NATS_SERVER, *address, "-js", "-sd", str(self.store), *self.options],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.process.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("nats-server did not start")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@dataclass
class RecordedBackoff(Backoff):
    """A backoff that keeps every delay it gave."""

    delays: list[float] = field(default_factory=list)

    def next(self) -> float:
        delay = super().next()
        self.delays.append(delay)
        return delay


def relay_for(tw: Tradewatch, **options: Any) -> AlertRelay:
    return AlertRelay(tw.ledger, tw.engine.log, connect_options(tw.settings), **options)


async def stored(url: str, subject: str = "tradewatch.alerts.>") -> list[Msg]:
    """Every message in the stream, in order, read with an ordered consumer."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        count = (await js.stream_info(STREAM)).state.messages
        sub = await js.subscribe(subject, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL)
        messages = [await sub.next_msg(timeout=WAIT) for _ in range(count)]
        with pytest.raises(nats.errors.TimeoutError):
            await sub.next_msg(timeout=0.2)
        return messages
    finally:
        await nc.close()


async def stream_count(url: str) -> int:
    nc = await nats.connect(url)
    try:
        return (await nc.jetstream().stream_info(STREAM)).state.messages
    finally:
        await nc.close()


def wait_for(predicate: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


class Background:
    """``serve()`` in a thread with its own event loop, as ``tradewatch alerts relay`` runs."""

    def __init__(self, tw: Tradewatch, relay: AlertRelay, **options: Any) -> None:
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, args=(tw, relay, options), daemon=True)
        self._thread.start()
        assert self._ready.wait(WAIT)

    def _run(self, tw: Tradewatch, relay: AlertRelay, options: dict[str, Any]) -> None:
        async def main() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            self._ready.set()
            await serve(tw, relay, self._stop, **options)

        try:
            asyncio.run(main())
        except BaseException as e:
            self.error = e

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(WAIT)
        assert not self._thread.is_alive()
        if self.error is not None:
            raise self.error


class Collector:
    """A core-NATS subscriber in a thread: every message, in arrival order."""

    def __init__(self, url: str, *subjects: str) -> None:
        self.messages: queue.Queue[Msg] = queue.Queue()
        self._ready = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._run(url, subjects),))
        self._thread.start()
        assert self._ready.wait(WAIT)

    async def _run(self, url: str, subjects: tuple[str, ...]) -> None:
        nc = await nats.connect(url)

        async def received(msg: Msg) -> None:
            self.messages.put(msg)

        for subject in subjects:
            await nc.subscribe(subject, cb=received)
        await nc.flush()
        self._ready.set()
        while not self._done.is_set():
            await asyncio.sleep(0.02)
        await nc.close()

    def next(self, subject_prefix: str, timeout: float = WAIT) -> Msg:
        deadline = time.monotonic() + timeout
        while True:
            msg = self.messages.get(timeout=max(deadline - time.monotonic(), 0.01))
            if msg.subject.startswith(subject_prefix):
                return msg

    def close(self) -> None:
        self._done.set()
        self._thread.join(WAIT)


class Lines:
    """The lines of a child's output, read in a thread, each awaited with a timeout."""

    def __init__(self, stream: IO[str] | None) -> None:
        assert stream is not None
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line)

    def next(self, timeout: float = WAIT) -> str:
        return self._lines.get(timeout=timeout)


def record_signals(tw: Tradewatch, first: int, count: int) -> None:
    for i in range(first, first + count):
        tw.ledger.record_signal(SignalDraft(f"s{i:04d}", "BTCUSDT", Direction.LONG, DAY))
    tw.sync()


def raise_alerts(tw: Tradewatch, count: int, **fields: Any) -> list[str]:
    """Record ``count`` alerts directly (not through the policy); returns their event ids."""
    made = []
    for i in range(count):
        values: dict[str, Any] = {"title": f"alert {i}", "body": "text", "data": {"i": i}}
        values.update(fields)
        made.append(
            Alert.raise_alert(
                f"test:{i}",
                AlertType.SIGNAL,
                Severity.INFO,
                values["title"],
                values["body"],
                values["data"],
                causes=[f"test:{i}"],
                caused_by=[],
                publish=True,
                at=DAY,
                causation=Causation(f"test:{i}", "command:test"),
            )
        )
    tw.ledger.save_all(made)
    return [f"{a.id}:1" for a in made]


def publishable(tw: Tradewatch) -> list[Fact]:
    return [
        f
        for f in tw.engine.log.read(0, 1_000_000)
        if f.kind == "Alert.Raised" and f.state["publish"]
    ]
