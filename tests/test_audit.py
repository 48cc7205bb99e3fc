"""The audit trail and its hash chain, through the command line, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from domain.signal import SignalDraft, signal_uuid
from domain.trade import Fill
from domain.values import Direction
from infrastructure.bootstrap import Tradewatch
from projections.audit import by_kind, verify_chain

DAY = datetime(2026, 11, 10, tzinfo=UTC)
DAY_END = datetime(2026, 11, 10, 23, 0, tzinfo=UTC)
CHANGED = "Controller.StatusChanged"
MakeTradewatch = Callable[..., Tradewatch]
RunCli = Callable[..., Any]


def losing_day(tw: Tradewatch) -> list[str]:
    """Five losing trades on one day: the fifth exit turns the controller RED."""
    tw.controller.clock = lambda: DAY_END
    ids = []
    for n in range(1, 6):
        at = DAY + timedelta(hours=n)
        signal_id = f"s{n}"
        tw.ledger.record_signal(SignalDraft(signal_id, "BTCUSDT", Direction.LONG, at))
        fill = Fill.checked(100.0, 1.0, 0.0, at + timedelta(minutes=1), "entry")
        tw.ledger.record_entry(signal_id, fill)
        tw.ledger.record_exit(signal_id, 99.0, 0.0, "stop_loss", at + timedelta(minutes=30))
        ids.append(signal_id)
    tw.sync()
    return ids


def execute(database_url: str, sqlite_sql: str, postgres_sql: str, params: tuple[Any, ...]) -> int:
    """Change the event store behind the application's back; returns rows touched."""
    if database_url.startswith("sqlite"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
            return conn.execute(sqlite_sql, params).rowcount
    with psycopg.connect(database_url, autocommit=True) as conn:
        return conn.execute(postgres_sql, params).rowcount


def stored_state(database_url: str, notification_id: int) -> bytes:
    if database_url.startswith("sqlite"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
            row = conn.execute(
                "SELECT state FROM stored_events WHERE rowid = ?", (notification_id,)
            ).fetchone()
    else:
        with psycopg.connect(database_url) as conn:
            row = conn.execute(
                "SELECT state FROM tradewatch_events WHERE notification_id = %s",
                (notification_id,),
            ).fetchone()
    return bytes(row[0])


def test_audit_of_a_signal_shows_signal_entry_exit_and_the_decision_it_caused(
    tw: Tradewatch, run_cli: RunCli
) -> None:
    fifth = losing_day(tw)[-1]
    data = json.loads(run_cli("audit", fifth, "--json", check=True).stdout)

    assert data["correlation_id"] == str(signal_uuid(fifth))
    wanted = ["Signal.Recorded", "Trade.EntryRecorded", "Trade.ExitRecorded", CHANGED]
    assert data["steps"][0]["kind"] == "Signal.Recorded"
    # other events of the correlation (e.g. a signal marked traded) may sit between them
    steps = [s for s in data["steps"] if s["kind"] in wanted]
    assert [s["kind"] for s in steps] == wanted
    ids = [s["notification_id"] for s in steps]
    assert ids == sorted(ids)
    assert len(set(ids)) == 4
    assert all(s["at"] and s["recorded_at"] for s in steps)
    assert steps[0]["at"].startswith("2026-11-10T05:00")
    assert steps[2]["at"].startswith("2026-11-10T05:30")
    exit_step, decision = steps[2], steps[3]
    assert decision["causation_id"] == exit_step["event_id"]
    assert decision["data"]["caused_by"] == [exit_step["notification_id"]]
    assert (decision["data"]["old_status"], decision["data"]["new_status"]) == ("green", "red")
    assert any(r["text"] == "consecutive_losses = 5 >= 5" for r in decision["data"]["rules"])
    assert data["gate"]["status"] == "green"
    assert data["pnl"]["outcome"] == "loss"

    # A signal recorded under RED shows the gate in force and the decision behind it.
    tw.ledger.record_signal(SignalDraft("late", "ETHUSDT", Direction.SHORT, DAY_END))
    late = json.loads(run_cli("audit", "late", "--json", check=True).stdout)
    gate = late["gate"]
    assert (gate["status"], gate["multiplier"], gate["blocked"]) == ("red", 0.0, True)
    assert gate["decision"]["event_id"] == decision["event_id"]
    assert gate["decision"]["notification_id"] == decision["notification_id"]
    assert gate["decision"]["kind"] == CHANGED
    assert [s["kind"] for s in late["steps"]] == ["Signal.Recorded"]
    assert late["steps"][0]["data"]["blocked"] is True


def test_verify_passes_on_an_untouched_log(tw: Tradewatch, run_cli: RunCli) -> None:
    losing_day(tw)
    check = verify_chain(tw.engine.log, tw.store)
    assert (check.ok, check.checked, check.problem) == (True, tw.engine.log.last_id(), None)
    shown = run_cli("audit", "verify", "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert (data["ok"], data["checked"], data["problem"]) == (True, tw.engine.log.last_id(), None)


def test_verify_names_an_event_altered_in_the_database(
    tw: Tradewatch, database_url: str, run_cli: RunCli
) -> None:
    losing_day(tw)
    exits = [f for f in tw.engine.log.read(0, 1000) if f.kind == "Trade.ExitRecorded"]
    target = exits[2].id
    original = stored_state(database_url, target)
    altered = original.replace(b"99.0", b"101.0")
    assert altered != original
    touched = execute(
        database_url,
        "UPDATE stored_events SET state = ? WHERE rowid = ?",
        "UPDATE tradewatch_events SET state = %s WHERE notification_id = %s",
        (altered, target),
    )
    assert touched == 1

    check = verify_chain(tw.engine.log, tw.store)
    assert not check.ok
    assert check.notification_id == target
    assert check.checked == target - 1
    assert check.problem == f"event {target} (Trade.ExitRecorded) was altered after it was recorded"

    shown = run_cli("audit", "verify", "--json")
    assert shown.returncode != 0
    data = json.loads(shown.stdout)
    assert (data["ok"], data["notification_id"]) == (False, target)
    assert f"event {target}" in shown.stderr
    assert "altered" in shown.stderr


def test_verify_names_an_event_removed_from_the_database(
    tw: Tradewatch, database_url: str, run_cli: RunCli
) -> None:
    losing_day(tw)
    tw.ledger.record_signal(SignalDraft("untraded", "ETHUSDT", Direction.LONG, DAY_END))
    tw.ledger.record_signal(SignalDraft("after", "ETHUSDT", Direction.LONG, DAY_END))
    tw.sync()
    target = next(
        f.id for f in tw.engine.log.read(0, 1000) if f.aggregate_id == str(signal_uuid("untraded"))
    )
    touched = execute(
        database_url,
        "DELETE FROM stored_events WHERE rowid = ?",
        "DELETE FROM tradewatch_events WHERE notification_id = %s",
        (target,),
    )
    assert touched == 1

    check = verify_chain(tw.engine.log, tw.store)
    assert (check.ok, check.notification_id) == (False, target)
    assert check.problem == f"event {target} was removed from the log"

    shown = run_cli("audit", "verify", "--json")
    assert shown.returncode != 0
    assert json.loads(shown.stdout)["notification_id"] == target
    assert f"event {target} was removed" in shown.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_audit_verify_without_json_reports_the_intact_chain(
    tw: Tradewatch, run_cli: RunCli
) -> None:
    losing_day(tw)
    shown = run_cli("audit", "verify", check=True)
    assert f"hash chain intact over {tw.engine.log.last_id()} events" in shown.stdout


def test_by_kind_can_return_only_the_latest_events(tw: Tradewatch) -> None:
    kinds = ("Controller.Paused", "Controller.Resumed")
    tw.controller.pause("alice", "tilt")
    tw.controller.resume("alice", "calm again")
    tw.sync()
    every = by_kind(tw.store, kinds)
    assert [e["kind"] for e in every] == ["Controller.Paused", "Controller.Resumed"]
    assert by_kind(tw.store, kinds, last=1) == every[-1:]
    assert by_kind(tw.store, kinds, last=5) == every
