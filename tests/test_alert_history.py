"""History is not news: alerts about the past are recorded (the audit keeps them) but not
published. A signal's alert goes out only while the signal is actionable; warnings, critical
alerts and predictive warnings only for the status in force now.

"Queued for NATS" is what the relay would send: the ``Alert.Raised`` events with
``publish: true`` (the relay passes over the others). The last test runs the real relay.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from application.importing import import_history
from domain.alert import still_actionable, timeframe_length
from domain.controller import CONTROLLER_ID, Controller
from domain.signal import SignalDraft
from domain.values import Direction
from infrastructure.bootstrap import Tradewatch
from infrastructure.nats_relay import publish_pending
from projections.facts import Fact
from tests.nats_support import NatsServer, relay_for, stored

MakeTradewatch = Callable[..., Tradewatch]
RunCli = Callable[..., subprocess.CompletedProcess[str]]
NOW = datetime(2026, 11, 9, 7, 0, tzinfo=UTC)
"""The policy's and the controller's clock: a Monday before 08:00, so no report is due."""
HEADER = "signal_id,symbol,direction,entry_time,entry_price,exit_time,exit_price"


def history(outcomes: str, first_day: datetime) -> str:
    """A CSV of one long BTCUSDT trade a day at noon: 100 -> 101 (W) or 99 (L)."""
    lines = [HEADER]
    for number, outcome in enumerate(outcomes):
        entered = first_day + timedelta(days=number, hours=12)
        exited = entered + timedelta(hours=1)
        price = 101 if outcome == "W" else 99
        lines.append(
            f"h{number:03d},BTCUSDT,long,{entered.isoformat()},100,{exited.isoformat()},{price}"
        )
    return "\n".join(lines) + "\n"


def pinned(tw: Tradewatch, now: datetime = NOW) -> Tradewatch:
    tw.controller.clock = lambda: now
    tw.alerts.clock = lambda: now
    return tw


def alerts(tw: Tradewatch) -> list[Fact]:
    return [f for f in tw.engine.log.read(0, 1_000_000) if f.kind == "Alert.Raised"]


def queued(tw: Tradewatch) -> list[Fact]:
    """The alerts the NATS relay would publish."""
    return [a for a in alerts(tw) if a.state["publish"]]


def types(facts: list[Fact]) -> dict[str, int]:
    found: dict[str, int] = {}
    for fact in facts:
        found[fact.state["type"]] = found.get(fact.state["type"], 0) + 1
    return found


def test_imported_history_queues_nothing_and_a_fresh_signal_queues_one(
    make_tradewatch: MakeTradewatch,
) -> None:
    tw = pinned(make_tradewatch())
    # a year ago: 30 wins, five losses in a row (RED, with a predictive warning at the third),
    # then 20 wins: the light is GREEN again long before now
    import_history(
        tw.ledger, history("W" * 30 + "L" * 5 + "W" * 20, NOW - timedelta(days=365)), "csv"
    )
    tw.sync()

    recorded = types(alerts(tw))
    assert recorded["signal"] == 55
    assert recorded["critical"] == 1
    assert recorded["predictive_warning"] >= 1
    assert tw.controller.controller().status.value == "green"
    assert queued(tw) == []

    tw.ledger.record_signal(
        SignalDraft("fresh", "ETHUSDT", Direction.SHORT, NOW - timedelta(minutes=1))
    )
    tw.sync()
    (fresh,) = queued(tw)
    assert (fresh.state["type"], fresh.state["data"]["signal_id"]) == ("signal", "fresh")


def test_only_the_status_in_force_is_queued(make_tradewatch: MakeTradewatch) -> None:
    tw = pinned(make_tradewatch(min_sample=10))
    # GREEN, then YELLOW (win rate 0.67), then RED (five losses), GREEN again, and YELLOW at
    # the end (13 wins in the last 20 = 0.65: below the yellow line, not below the red)
    outcomes = "WWWWWWWWWW" + "LLLLL" + "WWWWWWWWWWWWWWW" + "LLWLLWLLWLW"
    import_history(tw.ledger, history(outcomes, NOW - timedelta(days=200)), "csv")
    tw.sync()

    controller = tw.ledger.find(CONTROLLER_ID)
    assert isinstance(controller, Controller) and controller.status.value == "yellow"
    decided = [a for a in alerts(tw) if a.state["type"] in ("warning", "critical")]
    assert len(decided) >= 3  # every transition is recorded ...
    sent = [a for a in queued(tw) if a.state["type"] in ("warning", "critical")]
    assert [a.state["causes"][0] for a in sent] == [controller.last_change_id]  # ... one sent
    assert sent[0].state["data"]["new_status"] == "yellow"
    last_exit = tw.reports.last_exit_notification_id()
    for warning in (a for a in queued(tw) if a.state["type"] == "predictive_warning"):
        assert warning.state["caused_by"] == [last_exit]
    assert not [a for a in queued(tw) if a.state["type"] == "signal"]


@pytest.mark.parametrize(
    ("timeframe", "age", "news"),
    [
        (None, timedelta(minutes=59), True),  # the default: an hour
        (None, timedelta(minutes=61), False),
        ("15m", timedelta(minutes=14), True),
        ("15m", timedelta(minutes=16), False),
        ("4h", timedelta(hours=3), True),
        ("1d", timedelta(hours=25), False),
    ],
)
def test_a_signal_alert_is_published_only_while_the_signal_is_actionable(
    make_tradewatch: MakeTradewatch, timeframe: str | None, age: timedelta, news: bool
) -> None:
    tw = pinned(make_tradewatch())
    tw.ledger.record_signal(
        SignalDraft("s", "BTCUSDT", Direction.LONG, NOW - age, timeframe=timeframe)
    )
    tw.sync()
    (alert,) = alerts(tw)
    assert alert.state["publish"] is news


@pytest.mark.parametrize(
    ("text", "length"),
    [
        ("15m", timedelta(minutes=15)),
        ("15", timedelta(minutes=15)),
        ("1H", timedelta(hours=1)),
        ("4h", timedelta(hours=4)),
        ("1d", timedelta(days=1)),
        ("D", timedelta(days=1)),
        ("W", timedelta(weeks=1)),
        ("30s", timedelta(seconds=30)),
        ("0m", None),
        ("swing", None),
        ("", None),
        (None, None),
    ],
)
def test_timeframe_length(text: str | None, length: timedelta | None) -> None:
    assert timeframe_length(text) == length


def test_a_signal_without_a_timeframe_uses_the_setting() -> None:
    hour = timedelta(hours=1)
    assert still_actionable(NOW - timedelta(minutes=90), None, NOW, 2 * hour)
    assert not still_actionable(NOW - timedelta(minutes=90), None, NOW, hour)
    assert still_actionable(NOW + timedelta(minutes=5), "15m", NOW, hour)  # not yet old


# End to end: the command line and the real relay -------------------------------------------


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    found = NatsServer(tmp_path / "jetstream")
    found.start()
    yield found
    found.kill()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_importing_a_year_of_history_sends_nothing_to_nats(
    run_cli: RunCli,
    cli_env: dict[str, str],
    make_tradewatch: MakeTradewatch,
    nats_server: NatsServer,
    tmp_path: Path,
) -> None:
    cli_env.update(
        TRADEWATCH_NATS_URL=nats_server.url,
        TRADEWATCH_ALERTS_DAILY_STATUS="off",  # about now: they would be sent, rightly
        TRADEWATCH_ALERTS_WEEKLY_REPORT="off",
    )
    year_ago = datetime.now(UTC) - timedelta(days=366)
    csv = tmp_path / "history.csv"
    csv.write_text(history("W" * 30 + "L" * 5 + "W" * 20, year_ago), encoding="utf-8")
    imported = json.loads(run_cli("import", str(csv), "--json", check=True).stdout)
    assert imported["signals"] == 55
    sent = run_cli("alerts", "relay", "--once", check=True)
    assert sent.stdout.strip() == "published 0 alerts to TRADEWATCH_ALERTS"
    listed = json.loads(run_cli("alerts", "--limit", "1000", "--json", check=True).stdout)
    assert len([a for a in listed if a["type"] == "signal" and not a["publish"]]) == 55

    run_cli("signal", "add", "now-1", "--symbol", "ETHUSDT", "--direction", "long", check=True)
    sent = run_cli("alerts", "relay", "--once", check=True)
    assert sent.stdout.strip() == "published 1 alerts to TRADEWATCH_ALERTS"
    tw = make_tradewatch(nats_url=nats_server.url)
    assert asyncio.run(publish_pending(relay_for(tw))) == 0
    (message,) = asyncio.run(stored(nats_server.url))
    assert json.loads(message.data)["data"]["signal_id"] == "now-1"
