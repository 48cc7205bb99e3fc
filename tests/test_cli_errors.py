"""One-line errors everywhere: usage errors, and the failures that used to be tracebacks.

Usage errors are checked in process through ``ui.cli.main`` (the console script's entry
point: a subprocess per case would cost seconds), a few of them through the installed
command too.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from application.importing import import_history
from domain.signal import SignalDraft
from domain.trade import Fill
from domain.values import Direction
from infrastructure.bootstrap import Tradewatch
from infrastructure.settings import sqlite_path
from tests.conftest import TRADEWATCH
from ui import cli

RunCli = Callable[..., subprocess.CompletedProcess[str]]
MakeTradewatch = Callable[..., Tradewatch]
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
HEADER = "signal_id,symbol,direction,entry_time,entry_price,exit_time,exit_price"


def one_line(code: int, stdout: str, stderr: str, *needles: str, exit_code: int = 2) -> str:
    """Exit code 2, nothing on stdout, one line on stderr: an error naming the problem."""
    assert code == exit_code, (code, stdout, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in stderr and "Usage" not in stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``tradewatch ARGS`` in process: its exit code, stdout and stderr."""
    with pytest.raises(SystemExit) as ended:
        cli.main(args)
    captured = capsys.readouterr()
    code = ended.value.code
    return (code if isinstance(code, int) else 1), captured.out, captured.err


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private TRADEWATCH_HOME for in-process commands."""
    for variable in [v for v in os.environ if v.startswith("TRADEWATCH_")]:
        monkeypatch.delenv(variable)
    monkeypatch.setenv("TRADEWATCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path / "home"


USAGE_ERRORS = [
    (["stats", "--days", "0"], ["--days", "tradewatch stats --help"]),
    (["stats", "--days", "x"], ["--days", "integer"]),
    (["stats", "--days", "-1"], ["--days"]),
    (["stats", "--days", "99999999999"], ["--days", "36500"]),
    (["stats", "--bogus"], ["no such option: --bogus"]),
    (["stats", "--json", "extra"], ["extra"]),
    (["theories", "--days", "0"], ["--days"]),
    (["trades", "--limit", "0"], ["--limit"]),
    (["trades", "--limit", "many"], ["--limit"]),
    (["alerts", "--limit", "0"], ["--limit"]),
    (["alerts", "--type", "bogus"], ["--type", "'bogus'", "critical"]),
    (["dashboard", "--port", "0"], ["--port"]),
    (["dashboard", "--port", "70000"], ["--port"]),
    (["dashboard", "--port", "http"], ["--port"]),
    (["demo", "--days", "0"], ["--days"]),
    (["demo", "--days", "4000"], ["--days"]),
    (["demo", "--seed", "x"], ["--seed"]),
    (["bogus"], ["no such command 'bogus'"]),
    (["signal", "bogus"], ["no such command 'bogus'", "tradewatch signal --help"]),
    (["controller", "bogus"], ["no such command 'bogus'"]),
    (["exit"], ["missing argument", "signal_id"]),
    (["exit", "s1"], ["missing argument", "price"]),
    (["signal", "add"], ["missing argument"]),
    (["signal", "add", "s1"], ["missing option", "--symbol"]),
    (["signal", "add", "s1", "--symbol", "BTCUSDT"], ["missing option", "--direction"]),
    (["controller", "pause"], ["missing option", "--reason"]),
    (["import"], ["missing argument", "file"]),
    (["entry"], ["missing argument"]),
    (["entry", "s1", "100", "--qty"], ["--qty", "requires an argument"]),
    (["alerts", "relay", "--heartbeat-interval", "0"], ["--heartbeat-interval"]),
    (["project", "--poll", "x"], ["--poll"]),
]


@pytest.mark.parametrize(
    ("args", "needles"), USAGE_ERRORS, ids=[" ".join(a) for a, _ in USAGE_ERRORS]
)
def test_a_usage_error_is_one_line_and_exit_code_2(
    home: Path, capsys: pytest.CaptureFixture[str], args: list[str], needles: list[str]
) -> None:
    one_line(*run_main(args, capsys), *needles)
    assert not home.exists(), "a usage error opens no ledger"


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("args", "needle"),
    [(["stats", "--days", "0"], "--days"), (["bogus"], "bogus"), (["exit"], "signal_id")],
)
def test_the_installed_command_prints_usage_errors_on_one_line(
    run_cli: RunCli, args: list[str], needle: str
) -> None:
    done = run_cli(*args)
    one_line(done.returncode, done.stdout, done.stderr, needle)


@SQLITE_ONLY
def test_help_is_still_the_full_help(run_cli: RunCli) -> None:
    done = run_cli("stats", "--help")
    assert done.returncode == 0, done.stderr
    for part in ("Usage: tradewatch stats", "--days", "--today", "--as-of", "--json"):
        assert part in done.stdout
    bare = run_cli("signal")
    assert bare.returncode == 2
    assert "Usage: tradewatch signal" in bare.stdout and "add" in bare.stdout


def test_an_unexpected_error_is_one_line_unless_debugging(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(tw: Tradewatch) -> dict[str, Any]:
        raise RuntimeError("boom")

    monkeypatch.setattr(cli, "status_data", broken)
    line = one_line(*run_main(["status"], capsys), "RuntimeError: boom", exit_code=1)
    assert "TRADEWATCH_DEBUG" in line
    monkeypatch.setenv("TRADEWATCH_DEBUG", "1")
    with pytest.raises(RuntimeError, match="boom"):
        cli.main(["status"])


# Failures that were tracebacks -----------------------------------------------------------------


def test_replay_of_an_unknown_read_model_is_refused(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one_line(*run_main(["replay", "--projection", "bogus"], capsys), "'bogus'", "audit, ledger")


@SQLITE_ONLY
def test_demo_run_twice_is_refused_the_second_time(run_cli: RunCli, tw: Tradewatch) -> None:
    run_cli("demo", "--days", "5", check=True)
    tw.sync()
    before = tw.engine.log.last_id()
    again = run_cli("demo", "--days", "5")
    one_line(again.returncode, again.stdout, again.stderr, "already has the demo history")
    tw.sync()
    assert tw.engine.log.last_id() == before


def alter_state_to_text(database_url: str, notification_id: int) -> None:
    """Overwrite a stored event's state with bytes that are not JSON, behind tradewatch."""
    if database_url.startswith("sqlite"):
        import sqlite3  # noqa: PLC0415

        with sqlite3.connect(sqlite_path(database_url)) as conn:
            conn.execute(
                "UPDATE stored_events SET state = ? WHERE rowid = ?", (b"hello", notification_id)
            )
        return
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE tradewatch_events SET state = %s WHERE notification_id = %s",
            (b"hello", notification_id),
        )


def test_audit_verify_names_an_event_whose_state_was_changed_to_text(
    tw: Tradewatch, database_url: str, run_cli: RunCli
) -> None:
    at = datetime(2026, 11, 2, 10, tzinfo=UTC)
    tw.ledger.record_signal(SignalDraft("a1", "BTCUSDT", Direction.LONG, at))
    tw.ledger.record_entry("a1", Fill.checked(100, 1, 0, at, "entry"))
    tw.ledger.record_signal(SignalDraft("a2", "BTCUSDT", Direction.LONG, at))
    tw.sync()
    entry = next(f for f in tw.engine.log.read(0, 1000) if f.kind == "Trade.EntryRecorded")
    alter_state_to_text(database_url, entry.id)

    done = run_cli("audit", "verify", "--json")
    assert done.returncode == 1
    data = json.loads(done.stdout)
    assert (data["ok"], data["notification_id"], data["checked"]) == (False, entry.id, entry.id - 1)
    one_line(1, "", done.stderr, f"event {entry.id} (Trade.EntryRecorded) was altered", exit_code=1)


def test_an_event_stored_as_text_is_left_out_and_named_and_commands_keep_answering(
    tw: Tradewatch, database_url: str, run_cli: RunCli
) -> None:
    at = datetime(2026, 11, 2, 10, tzinfo=UTC)
    tw.ledger.record_signal(SignalDraft("a1", "BTCUSDT", Direction.LONG, at))
    tw.sync()
    tw.ledger.record_signal(SignalDraft("a2", "ETHUSDT", Direction.LONG, at))
    second = tw.engine.log.last_id()
    alter_state_to_text(database_url, second)  # before any reader saw it

    stats = run_cli("stats", "--json")
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["total_trades"] == 0
    assert f"event {second}" in stats.stderr and "not JSON" in stats.stderr
    verify = run_cli("audit", "verify")
    assert verify.returncode == 1
    assert f"event {second}" in verify.stderr


def red(tw: Tradewatch) -> None:
    """Five losing trades in a row: the light is RED."""
    at = datetime.now(UTC) - timedelta(hours=1)
    for n in range(5):
        tw.ledger.record_signal(SignalDraft(f"l{n}", "BTCUSDT", Direction.LONG, at))
        tw.ledger.record_entry(f"l{n}", Fill.checked(100, 1, 0, at, "entry"))
        tw.ledger.record_exit(f"l{n}", 99, 0, "stop_loss", at + timedelta(minutes=n + 1))
    tw.sync()
    assert tw.controller.controller().status.value == "red"


@SQLITE_ONLY
def test_a_blocked_manual_entry_says_what_to_run_instead(run_cli: RunCli, tw: Tradewatch) -> None:
    red(tw)
    before = tw.engine.log.last_id()
    refused = run_cli("entry", "--symbol", "XRPUSDT", "--direction", "long", "1", "--qty", "5")
    run = "tradewatch entry --symbol XRPUSDT --direction long 1 --qty 5 --force"
    one_line(refused.returncode, refused.stdout, refused.stderr, "RED", f"run: {run}")
    tw.sync()
    assert tw.engine.log.last_id() == before  # nothing stored, no signal id to follow up on

    forced = json.loads(run_cli(*run.split()[1:], "--json", check=True).stdout)
    trade = tw.ledger.trade(forced["signal_id"])
    assert trade is not None and trade.symbol == "XRPUSDT"
    assert (forced["price"], forced["qty"]) == (1.0, 5.0)


@SQLITE_ONLY
def test_status_names_the_red_and_the_yellow_win_rate_lines_apart(
    run_cli: RunCli, tw: Tradewatch
) -> None:
    red(tw)
    shown = run_cli("status", check=True).stdout
    assert "red_win_rate: insufficient data (5 < 10 trades)" in shown
    assert "yellow_win_rate: insufficient data (5 < 10 trades)" in shown
    rules = json.loads(run_cli("status", "--json", check=True).stdout)["rules"]
    names = [r["rule"] for r in rules]
    assert len(names) == len(set(names))
    assert {"red_win_rate", "yellow_win_rate"} <= set(names)


# Two imports of one file at once -------------------------------------------------------------


def csv_history(rows: int) -> str:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    lines = [HEADER]
    for n in range(rows):
        entered = start + timedelta(hours=n)
        exited = (entered + timedelta(minutes=30)).isoformat()
        lines.append(f"i{n:04d},BTCUSDT,long,{entered.isoformat()},100,{exited},101")
    return "\n".join(lines) + "\n"


def test_an_import_that_loses_a_race_retries_and_finds_its_rows_known(
    make_tradewatch: MakeTradewatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = csv_history(20)
    loser, winner = make_tradewatch(), make_tradewatch()
    save = loser.ledger.save_all
    raced: list[int] = []

    def save_after_the_winner(aggregates: Any) -> int | None:
        if not raced:  # the other import commits while this one was staging the same rows
            raced.append(import_history(winner.ledger, text, "csv").signals)
        return save(aggregates)

    monkeypatch.setattr(loser.ledger, "save_all", save_after_the_winner)
    summary = import_history(loser.ledger, text, "csv")
    assert raced == [20]
    assert (summary.rows, summary.signals, summary.exits, summary.unchanged) == (20, 0, 0, 20)
    loser.sync()
    assert loser.reports.signal_counts() == {"traded": 20}


@SQLITE_ONLY
def test_two_imports_of_one_file_at_once_both_succeed_and_store_it_once(
    cli_env: dict[str, str], tmp_path: Path, tw: Tradewatch
) -> None:
    path = tmp_path / "history.csv"
    path.write_text(csv_history(300), encoding="utf-8")
    running = [
        subprocess.Popen(
            [TRADEWATCH, "import", str(path), "--json"],
            env=cli_env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    done = [(p.wait(120), *p.communicate()) for p in running]
    assert [code for code, _, _ in done] == [0, 0], done
    summaries = [json.loads(out) for _, out, _ in done]
    assert sorted(s["signals"] for s in summaries) == [0, 300]
    assert sorted(s["unchanged"] for s in summaries) == [0, 300]
    tw.sync()
    assert tw.reports.signal_counts() == {"traded": 300}
