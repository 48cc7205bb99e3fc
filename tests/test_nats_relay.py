"""The NATS relay against a real nats-server: subjects and payloads, outages, crashes, the CLI.

Each test starts its own ``nats-server`` with JetStream on a free port and a temporary store,
so it can kill it and start it again on the same port and store. Tests marked
``SQLITE_ONLY`` run on SQLite; the others on SQLite and on a fresh PostgreSQL database.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, PubAck
from pydantic import ValidationError

from domain.alert import AlertType, Severity
from domain.signal import SignalDraft
from domain.trade import Fill
from domain.values import Direction
from infrastructure.alert_message import MAX_BYTES, AlertMessage, json_schema
from infrastructure.bootstrap import Tradewatch
from infrastructure.nats_relay import (
    RELAY_NAME,
    Backoff,
    RelayUnavailableError,
    publish_pending,
)
from tests.conftest import TRADEWATCH
from tests.nats_support import (
    WAIT,
    Background,
    Collector,
    Lines,
    NatsServer,
    RecordedBackoff,
    publishable,
    raise_alerts,
    record_signals,
    relay_for,
    stored,
    stream_count,
    wait_for,
)

MakeTradewatch = Callable[..., Tradewatch]
RunCli = Callable[..., subprocess.CompletedProcess[str]]
ROOT = Path(__file__).resolve().parent.parent
QUIET = datetime(2026, 11, 9, 7, 0, tzinfo=UTC)
"""Monday before 08:00 UTC: no scheduled report is due."""
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsServer]:
    """A fresh nats-server of this test's own."""
    found = NatsServer(tmp_path / "jetstream")
    found.start()
    yield found
    found.kill()


@pytest.fixture
def make_relayed(make_tradewatch: MakeTradewatch, server: NatsServer) -> MakeTradewatch:
    """Tradewatch instances pointed at the test's server, with the policy's clock pinned."""

    def make(**overrides: Any) -> Tradewatch:
        tw = make_tradewatch(nats_url=server.url, **overrides)
        tw.alerts.clock = lambda: QUIET
        return tw

    return make


# Subjects and payloads ------------------------------------------------------------------


def trade(tw: Tradewatch, signal_id: str, outcome: str, minute: int) -> None:
    at = datetime(2026, 11, 10, 10, minute, tzinfo=UTC)
    tw.ledger.record_signal(SignalDraft(signal_id, "BTCUSDT", Direction.LONG, at))
    tw.ledger.record_entry(signal_id, Fill.checked(100.0, 1.0, 0.0, at, "entry"), force=True)
    price = 101.0 if outcome == "W" else 99.0
    tw.ledger.record_exit(signal_id, price, 0.0, "manual", at)


def test_each_type_is_published_on_its_subject_with_its_payload(
    make_relayed: MakeTradewatch, server: NatsServer
) -> None:
    tw = make_relayed(min_sample=4, alerts_daily_status="silent")
    tw.controller.clock = lambda: datetime(2026, 11, 10, 23, 0, tzinfo=UTC)
    tw.alerts.clock = lambda: datetime(2026, 11, 10, 9, 0, tzinfo=UTC)  # reports due
    for i, outcome in enumerate("WWWWWWLLLL"):  # signals, predictive, YELLOW, then RED
        trade(tw, f"t{i}", outcome, i)
        tw.sync()  # as each command does: every alert is news when it is raised
    relay = relay_for(tw)
    assert asyncio.run(publish_pending(relay)) == len(publishable(tw))

    messages = asyncio.run(stored(server.url))
    facts = {f.event_id: f for f in publishable(tw)}
    assert [m.headers["Nats-Msg-Id"] for m in messages if m.headers] == list(facts)
    for msg in messages:
        alert = AlertMessage.decode(msg.data)
        fact = facts[alert.id]
        s = fact.state
        assert msg.subject == f"tradewatch.alerts.{s['type']}.{s['severity']}"
        assert alert.schema_version == 1
        assert (alert.type.value, alert.severity.value) == (s["type"], s["severity"])
        assert (alert.title, alert.text, alert.causes) == (s["title"], s["text"], s["causes"])
        assert alert.correlation_id == s["correlation_id"]
        assert alert.time == fact.business_time
        assert alert.data == json.loads(json.dumps(s["data"]))
        assert alert.truncated is False
    subjects = {m.subject for m in messages}
    assert subjects == {
        "tradewatch.alerts.signal.info",
        "tradewatch.alerts.weekly_report.info",
        "tradewatch.alerts.predictive_warning.warning",
        "tradewatch.alerts.warning.warning",
        "tradewatch.alerts.critical.critical",
    }
    silent = [f for f in tw.engine.log.read(0, 100_000) if f.kind == "Alert.Raised"]
    assert any(f.state["type"] == "daily_status" and not f.state["publish"] for f in silent)
    assert relay.position() == tw.engine.log.last_id()  # silent alerts are passed, not held


# Outage, order and crashes ----------------------------------------------------------------


@SQLITE_ONLY
def test_alerts_raised_while_nats_is_down_arrive_once_and_in_order(
    make_relayed: MakeTradewatch, server: NatsServer
) -> None:
    writer = make_relayed()
    follower = make_relayed()
    backoff = RecordedBackoff(0.1, 1.0)
    relay = relay_for(follower, backoff=backoff)
    background = Background(follower, relay, heartbeat_interval=60)
    record_signals(writer, 0, 5)
    wait_for(lambda: relay.stats.published == 5)

    server.kill()
    before = len(backoff.delays)
    record_signals(writer, 5, 100)
    wait_for(lambda: len(backoff.delays) >= before + 5)
    assert background.alive
    assert backoff.delays[before : before + 5] == [0.1, 0.2, 0.4, 0.8, 1.0]  # not spinning
    assert relay.position() < writer.engine.log.last_id()

    server.start()
    wait_for(lambda: relay.position() == writer.engine.log.last_id())
    background.stop()

    async def read_durably() -> list[Msg]:
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        sub = await js.pull_subscribe(
            "tradewatch.alerts.>",
            durable="test-reader",
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT),
        )
        received: list[Msg] = []
        while len(received) < 105:
            batch = await sub.fetch(50, timeout=WAIT)
            for msg in batch:
                await msg.ack()
            received.extend(batch)
        with pytest.raises(nats.errors.TimeoutError):
            await sub.fetch(1, timeout=0.3)
        await nc.close()
        return received

    received = asyncio.run(read_durably())
    ids = [AlertMessage.decode(m.data).id for m in received]
    assert ids == [f.event_id for f in publishable(writer)]
    assert len(set(ids)) == 105
    signal_ids = [AlertMessage.decode(m.data).data["signal_id"] for m in received]
    assert signal_ids == [f"s{i:04d}" for i in range(105)]


@SQLITE_ONLY
def test_a_server_killed_mid_stream_loses_nothing_and_reorders_nothing(
    make_relayed: MakeTradewatch, server: NatsServer
) -> None:
    tw = make_relayed()
    ids = raise_alerts(tw, 3000)
    killer = threading.Thread(target=server.kill)

    def kill_while_publishing(message: AlertMessage, ack: PubAck) -> None:
        if killer.ident is None and relay.stats.published == 300:
            killer.start()  # the relay carries on publishing the next window meanwhile

    relay = relay_for(
        tw, window=64, backoff=Backoff(0.1, 0.5), ack_timeout=1.0, on_ack=kill_while_publishing
    )
    background = Background(tw, relay, heartbeat_interval=60)
    wait_for(lambda: killer.ident is not None)
    killer.join()
    assert relay.stats.published < 3000
    wait_for(lambda: relay.stats.failures >= 1)  # the relay has noticed
    server.start()
    wait_for(lambda: relay.position() == tw.engine.log.last_id(), timeout=30)
    background.stop()

    messages = asyncio.run(stored(server.url))
    assert [AlertMessage.decode(m.data).id for m in messages] == ids
    assert relay.stats.failures >= 1


def test_a_crash_after_the_ack_before_the_tracking_write_publishes_nothing_twice(
    make_relayed: MakeTradewatch, server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    tw = make_relayed()
    record_signals(tw, 0, 3)
    recorder = tw.ledger.tracking
    insert = recorder.insert_tracking
    crashes: list[Any] = []

    def crash_once(tracking: Any) -> None:
        if tracking.application_name == RELAY_NAME and not crashes:
            crashes.append(tracking)
            raise RuntimeError("killed between the ack and the tracking write")
        insert(tracking)

    monkeypatch.setattr(recorder, "insert_tracking", crash_once)
    relay = relay_for(tw)

    async def crash_then_restart() -> None:
        with pytest.raises(RuntimeError, match="killed"):
            await relay.drain()
        assert relay.stats.published == 3
        assert relay.position() == 0
        assert await relay.drain() == 3  # again: the server acknowledges them as duplicates
        await relay.close()

    asyncio.run(crash_then_restart())
    assert (relay.stats.published, relay.stats.duplicates) == (3, 3)
    assert relay.position() == tw.engine.log.last_id()
    messages = asyncio.run(stored(server.url))
    assert len(messages) == 3

    async def publish_again() -> bool | None:
        nc = await nats.connect(server.url)
        first = messages[0]
        ack = await nc.jetstream().publish(first.subject, first.data, headers=first.headers)
        await nc.close()
        return ack.duplicate

    assert asyncio.run(publish_again()) is True
    assert asyncio.run(stream_count(server.url)) == 3


@SQLITE_ONLY
def test_a_relay_killed_by_sigkill_after_the_ack_is_deduplicated_on_restart(
    make_relayed: MakeTradewatch,
    server: NatsServer,
    run_cli: RunCli,
    cli_env: dict[str, str],
) -> None:
    cli_env.update(
        TRADEWATCH_NATS_URL=server.url,
        TRADEWATCH_ALERTS_DAILY_STATUS="off",
        TRADEWATCH_ALERTS_WEEKLY_REPORT="off",
    )
    tw = make_relayed()
    raise_alerts(tw, 4)
    killer = (
        "import asyncio, os, signal\n"
        "from infrastructure.bootstrap import bootstrap\n"
        "from infrastructure import nats_relay\n"
        "tw = bootstrap()\n"
        "tw.ledger.tracking.insert_tracking = lambda t: os.kill(os.getpid(), signal.SIGKILL)\n"
        "relay = nats_relay.AlertRelay(tw.ledger, tw.engine.log,"
        " nats_relay.connect_options(tw.settings))\n"
        "asyncio.run(nats_relay.publish_pending(relay))\n"
    )
    killed = subprocess.run(
        [sys.executable, "-c", killer],
        check=False,
        env=cli_env,
        cwd=ROOT,
        capture_output=True,
        timeout=60,
    )
    assert killed.returncode == -signal.SIGKILL
    assert asyncio.run(stream_count(server.url)) == 4
    assert tw.ledger.tracking.max_tracking_id(RELAY_NAME) is None

    restarted = run_cli("alerts", "relay", "--once", check=True)
    assert "published 0 alerts to TRADEWATCH_ALERTS (4 were already there)" in restarted.stdout
    assert asyncio.run(stream_count(server.url)) == 4


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("server_options", "good", "bad"),
    [
        (
            ("--user", "relay", "--pass", "s3cret"),
            {"nats_user": "relay", "nats_password": "s3cret"},
            {"nats_user": "relay", "nats_password": "wrong"},
        ),
        (("--auth", "t0ken"), {"nats_token": "t0ken"}, {"nats_token": "wrong"}),
    ],
)
def test_the_relay_authenticates_with_the_credentials_in_the_settings(
    make_tradewatch: MakeTradewatch,
    tmp_path: Path,
    server_options: tuple[str, ...],
    good: dict[str, str],
    bad: dict[str, str],
) -> None:
    server = NatsServer(tmp_path / "secured", *server_options)
    server.start()
    try:
        tw = make_tradewatch(nats_url=server.url, **good)
        raise_alerts(tw, 1)
        assert asyncio.run(publish_pending(relay_for(tw))) == 1
        refused = make_tradewatch(nats_url=server.url, **bad)
        with pytest.raises(RelayUnavailableError, match="cannot connect to NATS") as raised:
            asyncio.run(publish_pending(relay_for(refused)))
        assert "wrong" not in str(raised.value)
    finally:
        server.kill()


# The schema ---------------------------------------------------------------------------------

VALID: dict[str, Any] = {
    "id": "f8c4e2ed-0d33-5aa1-82b9-edea5aba6c65:1",
    "type": "signal",
    "severity": "info",
    "time": "2026-11-10T12:00:00Z",
    "title": "BTCUSDT LONG signal 1",
    "text": "BTCUSDT LONG\nEntry: 100",
    "data": {"signal_id": "1"},
    "correlation_id": "c",
    "causes": ["x:1"],
}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"title": "t" * 201}, "title"),
        ({"title": ""}, "title"),
        ({"text": "t" * 4001}, "text"),
        ({"causes": ["c"] * 101}, "causes"),
        ({"data": {"blob": "x" * MAX_BYTES}}, "over the 65536-byte limit"),
        ({"type": "gossip"}, "type"),
        ({"severity": "loud"}, "severity"),
        ({"time": "2026-11-10T12:00:00"}, "time"),
        ({"id": "not-an-event-id"}, "id"),
        ({"schema_version": 2}, "schema_version"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_the_schema_refuses_malformed_or_oversized_messages(
    change: dict[str, Any], problem: str
) -> None:
    AlertMessage.model_validate(VALID)
    with pytest.raises(ValidationError, match=problem):
        AlertMessage.model_validate({**VALID, **change})
    with pytest.raises(ValidationError):
        AlertMessage.decode(json.dumps({**VALID, **change}).encode())


def test_docs_hold_the_generated_json_schema() -> None:
    written = json.loads((ROOT / "docs" / "alert-schema.json").read_text())
    assert written == json_schema()


@SQLITE_ONLY
def test_an_oversized_alert_is_published_cut_and_flagged_not_blocked(
    make_relayed: MakeTradewatch, server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    tw = make_relayed()
    (big,) = raise_alerts(tw, 1, body="x" * 10_000, data={"blob": "y" * 100_000})
    record_signals(tw, 0, 1)
    with caplog.at_level(logging.WARNING, logger="tradewatch.relay"):
        asyncio.run(publish_pending(relay_for(tw)))

    first, second = asyncio.run(stored(server.url))
    cut = AlertMessage.decode(first.data)
    assert (cut.id, cut.truncated, cut.data) == (big, True, {})
    assert len(cut.text) == 4000
    assert cut.text.endswith("…")
    assert len(first.data) <= MAX_BYTES
    assert AlertMessage.decode(second.data).type is AlertType.SIGNAL
    assert [r.getMessage() for r in caplog.records] == [
        f"alert {big} was cut to fit the message limits (truncated)"
    ]


# The command line ---------------------------------------------------------------------------


@SQLITE_ONLY
def test_relay_once_publishes_what_is_pending_and_exits(
    server: NatsServer, run_cli: RunCli, cli_env: dict[str, str]
) -> None:
    cli_env.update(
        TRADEWATCH_NATS_URL=server.url,
        TRADEWATCH_ALERTS_DAILY_STATUS="off",
        TRADEWATCH_ALERTS_WEEKLY_REPORT="off",
    )
    for signal_id in ("1", "2"):
        run_cli(
            "signal", "add", signal_id, "--symbol", "BTCUSDT", "--direction", "long", check=True
        )

    first = run_cli("alerts", "relay", "--once", check=True)
    assert first.stdout.strip() == "published 2 alerts to TRADEWATCH_ALERTS"
    second = run_cli("alerts", "relay", "--once", check=True)
    assert second.stdout.strip() == "published 0 alerts to TRADEWATCH_ALERTS"
    titles = [AlertMessage.decode(m.data).title for m in asyncio.run(stored(server.url))]
    assert titles == ["BTCUSDT LONG signal 1", "BTCUSDT LONG signal 2"]

    server.kill()
    unreachable = run_cli("alerts", "relay", "--once")
    assert unreachable.returncode == 1
    assert unreachable.stderr.count("\n") == 1
    assert f"error: cannot connect to NATS at {server.url}" in unreachable.stderr


@SQLITE_ONLY
def test_without_a_nats_url_the_relay_exits_2_and_alerts_are_still_listed(
    run_cli: RunCli,
) -> None:
    run_cli("signal", "add", "1", "--symbol", "BTCUSDT", "--direction", "long", check=True)
    relay = run_cli("alerts", "relay")
    assert relay.returncode == 2
    assert relay.stderr.count("\n") == 1
    assert "TRADEWATCH_NATS_URL is unset" in relay.stderr
    listed = run_cli("alerts", "--type", "signal", "--json", check=True)
    assert [a["title"] for a in json.loads(listed.stdout)] == ["BTCUSDT LONG signal 1"]


@SQLITE_ONLY
def test_tail_prints_each_alert_on_a_line_and_reports_bad_messages(
    make_relayed: MakeTradewatch, server: NatsServer, cli_env: dict[str, str], tmp_path: Path
) -> None:
    cli_env.update(TRADEWATCH_NATS_URL=server.url)
    tails = {
        mode: subprocess.Popen(
            [TRADEWATCH, "alerts", "tail", *args],
            env=cli_env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for mode, args in (("lines", []), ("json", ["--json"]))
    }
    outputs = {mode: (Lines(p.stdout), Lines(p.stderr)) for mode, p in tails.items()}
    for _, errors in outputs.values():
        assert "tailing tradewatch.alerts.> on" in errors.next()

    tw = make_relayed()
    record_signals(tw, 0, 1)

    async def publish_junk() -> None:
        nc = await nats.connect(server.url)
        await nc.jetstream().publish("tradewatch.alerts.signal.info", b'{"not": "an alert"}')
        await nc.close()

    asyncio.run(publish_junk())
    record_signals(tw, 1, 1)
    asyncio.run(publish_pending(relay_for(tw)))

    lines = {}
    for mode, (printed, errors) in outputs.items():
        lines[mode] = [printed.next(), printed.next()]
        assert errors.next().startswith(
            "error: message on tradewatch.alerts.signal.info is not a valid alert: "
        )
        tails[mode].send_signal(signal.SIGINT)
        assert tails[mode].wait(WAIT) == 0
    assert lines["lines"] == [
        "2026-11-10T12:00:00+00:00  signal  info  BTCUSDT LONG signal s0000\n",
        "2026-11-10T12:00:00+00:00  signal  info  BTCUSDT LONG signal s0001\n",
    ]
    assert [json.loads(line)["title"] for line in lines["json"]] == [
        "BTCUSDT LONG signal s0000",
        "BTCUSDT LONG signal s0001",
    ]


# Heartbeat, schedules and the done criterion ------------------------------------------------


@SQLITE_ONLY
def test_the_heartbeat_carries_version_uptime_position_and_lags(
    make_relayed: MakeTradewatch, server: NatsServer
) -> None:
    tw = make_relayed()
    record_signals(tw, 0, 2)
    collector = Collector(server.url, "tradewatch.heartbeat")
    relay = relay_for(tw)
    background = Background(tw, relay, heartbeat_interval=0.2)
    try:
        beats = [json.loads(collector.next("tradewatch.heartbeat").data) for _ in range(3)]
    finally:
        background.stop()
        collector.close()
    last = beats[-1]
    assert last["version"] == version("tradewatch")
    assert last["interval_seconds"] == 0.2
    assert beats[0]["uptime_seconds"] < beats[1]["uptime_seconds"] < last["uptime_seconds"]
    assert last["last_event_id"] == tw.engine.log.last_id()
    assert last["lag"] == {
        "projections": {"ledger": 0, "audit": 0},
        "controller": 0,
        "alerts": 0,
        "relay": 0,
    }
    assert last["relay"]["published"] == 2
    assert datetime.fromisoformat(last["time"]).tzinfo is not None


@SQLITE_ONLY
def test_the_daily_status_is_published_when_its_time_comes(
    make_relayed: MakeTradewatch, server: NatsServer
) -> None:
    tw = make_relayed(timezone="Europe/Berlin")
    now = [datetime(2026, 11, 10, 6, 59, 59, tzinfo=UTC)]  # 07:59:59 in Berlin
    consulted = [0]

    def clock() -> datetime:
        consulted[0] += 1
        return now[0]

    tw.alerts.clock = clock
    collector = Collector(server.url, "tradewatch.alerts.>")
    relay = relay_for(tw)
    background = Background(tw, relay, heartbeat_interval=60, sync_interval=0.1)
    try:
        wait_for(lambda: consulted[0] >= 3)  # the policy looked at 07:59:59 three times
        wait_for(lambda: relay.position() == tw.engine.log.last_id())
        assert not [f for f in publishable(tw) if f.state["type"] == "daily_status"]
        assert not any("daily_status" in m.subject for m in list(collector.messages.queue))
        now[0] = datetime(2026, 11, 10, 7, 0, tzinfo=UTC)  # 08:00 in Berlin
        msg = collector.next("tradewatch.alerts.daily_status.info")
    finally:
        background.stop()
        collector.close()
    daily = AlertMessage.decode(msg.data)
    assert daily.title == "Daily status 2026-11-10: GREEN"
    assert daily.time == datetime(2026, 11, 10, 7, 0, tzinfo=UTC)


@SQLITE_ONLY
def test_done_five_losses_through_the_cli_bring_a_critical_alert(
    server: NatsServer, run_cli: RunCli, cli_env: dict[str, str], tmp_path: Path
) -> None:
    cli_env.update(
        TRADEWATCH_NATS_URL=server.url,
        TRADEWATCH_MIN_SAMPLE="20",  # the most allowed: only the consecutive-loss rule can fire
        TRADEWATCH_ALERTS_DAILY_STATUS="off",
        TRADEWATCH_ALERTS_WEEKLY_REPORT="off",
    )
    collector = Collector(server.url, "tradewatch.alerts.>", "tradewatch.heartbeat")
    relay = subprocess.Popen(
        [TRADEWATCH, "alerts", "relay", "--heartbeat-interval", "1"],
        env=cli_env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        collector.next("tradewatch.heartbeat")  # the relay is up
        for _ in range(5):
            entered = run_cli(
                "entry", "--symbol", "BTCUSDT", "--direction", "long", "100", "--json", check=True
            )
            signal_id = json.loads(entered.stdout)["signal_id"]
            run_cli("exit", signal_id, "99", "stop_loss", check=True)
        msg = collector.next("tradewatch.alerts.critical")  # the fifth loss turned it RED
        critical = AlertMessage.decode(msg.data)
    finally:
        relay.send_signal(signal.SIGTERM)
        relay_exit = relay.wait(WAIT)
        collector.close()
    assert relay_exit == 0
    assert critical.severity is Severity.CRITICAL
    assert critical.title == "RED: stop trading"
    assert "consecutive_losses = 5 >= 5" in critical.text
