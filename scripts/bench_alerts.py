"""Benchmark the NATS alert relay: commit-to-ack latency and catch-up throughput.

Run ``python -m scripts.bench_alerts --help``. It starts its own ``nats-server`` (JetStream,
a temporary store, a free port) unless given ``--nats-url``, and records alerts in a
throwaway SQLite file, or with ``--database postgres`` in a fresh PostgreSQL database
(``tw_bench_alerts_<hex>``, dropped at the end). Each figure is printed beside a *raw
baseline* measured in the same run with the same payloads, and the ratio of the two:

* **latency**: alerts saved one at a time (``ledger.save``) at random intervals while
  ``serve()`` runs, as ``tradewatch alerts relay`` does (sync, publisher, heartbeat); for
  each alert, the time from the commit's return to the server's ack reaching the relay.
  Baseline: the same payloads with ``js.publish``, one at a time, publish to ack.
* **throughput**: ``--alerts`` alerts saved first, then one ``AlertRelay.drain()`` from
  position 0 (read the log, build and validate each message, publish a window at a time,
  advance the tracking position). Baseline: the same payloads and headers with
  ``js.publish_async`` in windows of the same size, each awaited, into a stream of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

import nats
import psycopg
from nats.js import JetStreamContext
from nats.js.api import PubAck, StorageType, StreamConfig

from domain.alert import Alert, AlertType, Severity
from domain.events import Causation
from infrastructure.alert_message import AlertMessage
from infrastructure.bootstrap import Tradewatch, bootstrap
from infrastructure.nats_relay import (
    DUPLICATE_WINDOW,
    MSG_ID,
    AlertRelay,
    connect_options,
    serve,
)
from infrastructure.settings import Settings
from projections.facts import Fact

LATENCY_P99_TARGET_MS = 100.0
THROUGHPUT_TARGET = 5_000.0
RAW_STREAM = "BENCH_RAW"
DEFAULT_PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PAYLOAD_TEXT = "BTCUSDT LONG\nEntry: 50000 - 50100\nSL: 49000\nTP: 52000\nSize: 0.1"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m scripts.bench_alerts", description=__doc__)
    parser.add_argument("--alerts", type=int, default=10_000, help="alerts to catch up")
    parser.add_argument("--latency-alerts", type=int, default=500, help="alerts timed one by one")
    parser.add_argument("--window", type=int, default=256, help="outstanding acks at most")
    parser.add_argument("--nats-url", help="use this server instead of starting one")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--pg-url", default=DEFAULT_PG_ADMIN, help="PostgreSQL admin URL")
    return parser.parse_args(argv)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by linear interpolation."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@contextmanager
def nats_server(url: str | None) -> Iterator[str]:
    """``url``, or a nats-server of our own with JetStream in a temporary directory."""
    if url is not None:
        yield url
        return
    store = Path(tempfile.mkdtemp(prefix="tw_bench_nats_"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    process = subprocess.Popen(
        [binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        yield f"nats://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait()
        shutil.rmtree(store, ignore_errors=True)


@contextmanager
def database(kind: str, pg_admin: str) -> Iterator[str]:
    """A throwaway database URL of ``kind``."""
    if kind == "sqlite":
        directory = Path(tempfile.mkdtemp(prefix="tw_bench_alerts_"))
        try:
            yield f"sqlite:///{directory / 'ledger.db'}"
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        return
    name = f"tw_bench_alerts_{secrets.token_hex(4)}"
    with psycopg.connect(pg_admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield pg_admin.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(pg_admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def new_alert(key: str) -> Alert:
    """An alert like a signal's, raised directly (the policy is not what is measured)."""
    return Alert.raise_alert(
        key,
        AlertType.SIGNAL,
        Severity.INFO,
        f"BTCUSDT LONG signal {key}, confidence 0.81",
        PAYLOAD_TEXT,
        {"signal_id": key, "symbol": "BTCUSDT", "confidence": 0.81, "theories": {"m": 0.6}},
        causes=[f"bench:{key}"],
        caused_by=[],
        publish=True,
        at=datetime.now(UTC),
        causation=Causation(f"bench:{key}", "command:bench"),
    )


def alert_facts(tw: Tradewatch, after: int) -> list[Fact]:
    """The alerts stored after ``after``."""
    return [f for f in tw.engine.log.read(after, 1_000_000) if f.kind == "Alert.Raised"]


async def raw_stream(js: JetStreamContext) -> None:
    """A fresh stream for the baseline, configured as the relay's."""
    with suppress(nats.js.errors.NotFoundError):
        await js.delete_stream(RAW_STREAM)
    await js.add_stream(
        StreamConfig(
            name=RAW_STREAM,
            subjects=["bench.raw.>"],
            storage=StorageType.FILE,
            duplicate_window=DUPLICATE_WINDOW,
        )
    )


async def raw_latency(url: str, messages: Sequence[AlertMessage]) -> list[float]:
    """Seconds from ``js.publish`` to its ack, one message at a time."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    await raw_stream(js)
    seconds = []
    for message in messages:
        started = time.perf_counter()
        await js.publish(f"bench.raw.{message.type.value}", message.encode(), headers=_id(message))
        seconds.append(time.perf_counter() - started)
    await nc.close()
    return seconds


async def raw_throughput(url: str, messages: Sequence[AlertMessage], window: int) -> float:
    """Messages per second with ``publish_async`` in awaited windows of ``window``."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    await raw_stream(js)
    payloads = [(f"bench.raw.{m.type.value}", m.encode(), m.id) for m in messages]
    started = time.perf_counter()
    for i in range(0, len(payloads), window):
        futures: list[asyncio.Future[PubAck]] = []
        for subject, payload, msg_id in payloads[i : i + window]:
            futures.append(await js.publish_async(subject, payload, headers={MSG_ID: msg_id}))
        await asyncio.gather(*futures)
    rate = len(payloads) / (time.perf_counter() - started)
    await nc.close()
    return rate


def _id(message: AlertMessage) -> dict[str, str]:
    return {MSG_ID: message.id}


def bench_latency(tw: Tradewatch, count: int) -> list[float]:
    """Seconds from each alert's commit to its ack, with ``serve()`` running."""
    committed: dict[str, float] = {}
    acked: dict[str, float] = {}
    everything_acked = threading.Event()

    def on_ack(message: AlertMessage, _: PubAck) -> None:
        acked[message.id] = time.perf_counter()
        if len(acked) == count:
            everything_acked.set()

    relay = AlertRelay(tw.ledger, tw.engine.log, connect_options(tw.settings), on_ack=on_ack)

    def write() -> None:
        rng = random.Random(7)
        for i in range(count):
            alert = new_alert(f"latency:{i}")
            tw.ledger.save(alert)
            committed[f"{alert.id}:1"] = time.perf_counter()
            time.sleep(rng.uniform(0.002, 0.010))

    async def run() -> None:
        stop = asyncio.Event()
        serving = asyncio.ensure_future(serve(tw, relay, stop))
        await asyncio.to_thread(write)
        await asyncio.to_thread(everything_acked.wait, 30)
        stop.set()
        await serving

    asyncio.run(run())
    return [acked[i] - committed[i] for i in committed]


def bench_throughput(tw: Tradewatch, count: int, window: int) -> tuple[float, list[AlertMessage]]:
    """Alerts per second for one catch-up of ``count`` alerts; and the messages sent."""
    after = tw.engine.log.last_id()
    for start in range(0, count, 1000):
        tw.ledger.save_all([new_alert(f"bulk:{i}") for i in range(start, min(start + 1000, count))])
    relay = AlertRelay(tw.ledger, tw.engine.log, connect_options(tw.settings), window=window)

    async def catch_up() -> float:
        await relay.connect()
        started = time.perf_counter()
        acked = await relay.drain()
        seconds = time.perf_counter() - started
        await relay.close()
        assert acked == count, f"{acked} of {count} acked"
        return count / seconds

    rate = asyncio.run(catch_up())
    return rate, [AlertMessage.for_alert(f) for f in alert_facts(tw, after)]


def verdict(ok: bool) -> str:
    """PASS or MISS."""
    return "PASS" if ok else "MISS"


def main(argv: Sequence[str] | None = None) -> int:
    """Run both measurements and print them; 0 when both targets are met."""
    args = parse_args(argv)
    with nats_server(args.nats_url) as url, database(args.database, args.pg_url) as db_url:
        home = Path(tempfile.mkdtemp(prefix="tw_bench_home_"))
        settings = Settings(home=home, database_url=db_url, nats_url=url)
        tw = bootstrap(settings)
        tw.alerts.clock = lambda: datetime(2026, 11, 9, 7, 0, tzinfo=UTC)  # no report due
        try:
            print(f"relay benchmark: {args.database}, NATS at {url}", flush=True)
            latencies = bench_latency(tw, args.latency_alerts)
            sent = [AlertMessage.for_alert(f) for f in alert_facts(tw, 0)]
            raw = asyncio.run(raw_latency(url, sent))
            rate, messages = bench_throughput(tw, args.alerts, args.window)
            raw_rate = asyncio.run(raw_throughput(url, messages, args.window))
        finally:
            tw.close()
            shutil.rmtree(home, ignore_errors=True)
    p50, p99 = percentile(latencies, 0.5) * 1e3, percentile(latencies, 0.99) * 1e3
    raw50, raw99 = percentile(raw, 0.5) * 1e3, percentile(raw, 0.99) * 1e3
    latency_ok = p99 < LATENCY_P99_TARGET_MS
    throughput_ok = rate >= THROUGHPUT_TARGET
    print(
        f"latency, commit -> ack, {len(latencies)} alerts: p50 {p50:.1f} ms, p99 {p99:.1f} ms "
        f"(target p99 < {LATENCY_P99_TARGET_MS:.0f} ms: {verdict(latency_ok)})\n"
        f"  raw js.publish -> ack, same payloads: p50 {raw50:.2f} ms, p99 {raw99:.2f} ms; "
        f"ratio p50 {p50 / raw50:.0f}x, p99 {p99 / raw99:.0f}x\n"
        f"throughput, catch-up of {args.alerts:,} alerts: {rate:,.0f} alerts/s "
        f"(target >= {THROUGHPUT_TARGET:,.0f}/s: {verdict(throughput_ok)})\n"
        f"  raw js.publish_async, same payloads, window {args.window}: {raw_rate:,.0f} msgs/s; "
        f"ratio {rate / raw_rate:.2f}",
        flush=True,
    )
    return 0 if latency_ok and throughput_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
