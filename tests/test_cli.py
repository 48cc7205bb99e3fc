"""End-to-end tests of the installed ``tradewatch`` command, on SQLite and PostgreSQL.

Each subprocess costs about 0.4 s, so the state a bad-input test needs is set up through
the ledger in process (same database), and only the command under test runs as a subprocess.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from domain.signal import SignalDraft
from domain.trade import Fill
from domain.values import Direction
from infrastructure.bootstrap import Tradewatch
from tests.conftest import TRADEWATCH
from ui.cli import app

RunCli = Callable[..., subprocess.CompletedProcess[str]]
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
T0 = datetime(2024, 1, 2, tzinfo=UTC)
HEADER = (
    "signal_id,symbol,direction,entry_time,entry_price,exit_time,exit_price,"
    "qty,fee,exit_reason,confidence,theories,source"
)
STATS_KEYS = {
    "total_trades",
    "wins",
    "losses",
    "breakevens",
    "win_rate",
    "avg_win_pct",
    "avg_loss_pct",
    "avg_pnl_pct",
    "total_pnl",
    "profit_factor",
}


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"rc {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(ok(result))


def one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit code 2 and exactly one line on stderr, an error naming the problem."""
    assert result.returncode == 2, f"rc {result.returncode}\n{result.stdout}\n{result.stderr}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"stderr is not one line:\n{result.stderr}"
    line = lines[0]
    assert line.startswith("error: "), line
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    return line


def ledger_facts(tw: Tradewatch) -> list[tuple[str, str, dict[str, Any]]]:
    """Every signal and trade event stored, with its state (the controller's are left out)."""
    return [
        (f.kind, f.aggregate_id, f.state)
        for f in tw.engine.log.read(0, 100_000)
        if f.kind.startswith(("Signal.", "Trade."))
    ]


def seed(tw: Tradewatch, *, entry: float | None = None, exit_price: float | None = None) -> None:
    """Signal ``s1`` (long BTCUSDT), entered on 2 Jan 2024 and exited an hour later if asked."""
    tw.ledger.record_signal(SignalDraft("s1", "BTCUSDT", Direction.LONG, T0))
    if entry is not None:
        tw.ledger.record_entry("s1", Fill.checked(entry, 1.0, 0.0, T0, "entry"))
    if exit_price is not None:
        tw.ledger.record_exit("s1", exit_price, 0.0, "manual", T0 + timedelta(hours=1))


# The main sequence ---------------------------------------------------------------------------


def test_signal_entry_exit_manual_trade_and_stats(run_cli: RunCli) -> None:
    assert "signal 1 recorded" in ok(
        run_cli("signal", "add", "1", "--symbol", "BTCUSDT", "--direction", "long")
    )
    assert "signal 1" in ok(run_cli("entry", "1", "50000"))
    # long 50000 -> 51000: +2 %
    assert "win on signal 1: +2.00%" in ok(run_cli("exit", "1", "51000", "take_profit"))

    manual = ok(run_cli("entry", "--symbol", "ETHUSDT", "--direction", "short", "3000"))
    new_id = manual.strip().splitlines()[-1].strip()
    assert re.fullmatch(r"m-[0-9a-f]{8}", new_id), manual

    positions = as_json(run_cli("positions", "--json"))
    assert [(p["signal_id"], p["symbol"], p["direction"], p["status"]) for p in positions] == [
        (new_id, "ETHUSDT", "short", "open")
    ]
    assert positions[0]["entry_price"] == 3000.0

    # short 3000 -> 2900: +100 on 3000 = +3.33 %
    assert f"win on signal {new_id}: +3.33%" in ok(run_cli("exit", new_id, "2900"))

    stats = as_json(run_cli("stats", "--json"))
    assert stats.keys() >= STATS_KEYS
    assert stats["total_trades"] == 2
    assert (stats["wins"], stats["losses"], stats["breakevens"]) == (2, 0, 0)
    assert stats["win_rate"] == 1.0
    assert stats["profit_factor"] == "inf"
    assert stats["avg_win_pct"] == pytest.approx((2.0 + 100 / 30) / 2)
    assert stats["avg_pnl_pct"] == pytest.approx((2.0 + 100 / 30) / 2)
    assert stats["avg_loss_pct"] is None
    assert stats["total_pnl"] == pytest.approx(1000.0 + 100.0)
    assert stats["open_positions"] == 0

    trades = {t["signal_id"]: t for t in as_json(run_cli("trades", "--json"))}
    assert set(trades) == {"1", new_id}
    assert trades["1"]["exit_reason"] == "take_profit"
    assert trades[new_id]["exit_reason"] == "manual"
    assert trades[new_id]["pnl_quote"] == pytest.approx(100.0)
    assert all(t["status"] == "closed" and t["outcome"] == "win" for t in trades.values())


def command_paths() -> list[list[str]]:
    """Every command and group of the app, e.g. ``["signal", "add"]``."""

    def walk(command: Any, path: list[str]) -> list[list[str]]:
        found = [path]
        for name, sub in (getattr(command, "commands", None) or {}).items():
            found += walk(sub, [*path, name])
        return found

    return walk(typer.main.get_command(app), [])


@SQLITE_ONLY
def test_help_of_the_installed_command(run_cli: RunCli) -> None:
    out = ok(run_cli("--help"))
    assert "Usage: tradewatch" in out
    top = {path[0] for path in command_paths() if len(path) == 1}
    for name in top:
        assert re.search(rf"\b{re.escape(name)}\b", out), f"{name} missing from --help"
    assert "Usage: tradewatch signal add" in ok(run_cli("signal", "add", "--help"))


def test_every_command_has_help() -> None:
    """In process (a subprocess per command would cost seconds): the same ``app`` object."""
    paths = command_paths()
    names = {" ".join(p) for p in paths}
    assert {"signal add", "signal skip", "entry", "exit", "stats", "positions", "trades"} <= names
    assert {"import", "theories", "calibration", "equity", "replay"} <= names
    runner = CliRunner()
    for path in paths:
        result = runner.invoke(
            app, [*path, "--help"], prog_name="tradewatch", env={"COLUMNS": "200"}
        )
        assert result.exit_code == 0, (path, result.output)
        usage = " ".join(["Usage: tradewatch", *path])
        assert usage in " ".join(result.output.split()), result.output


# Bad input: one line on stderr, exit code 2, nothing stored -----------------------------------


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["entry", "s1", "-5"], ["entry price must be greater than 0", "-5"]),
        (["entry", "s1", "100", "--qty", "-2"], ["qty must be greater than 0"]),
        (["entry", "s1", "100", "--fee", "-1"], ["fee must not be negative"]),
    ],
)
def test_negative_numbers_are_refused(
    run_cli: RunCli, tw: Tradewatch, args: list[str], needles: list[str]
) -> None:
    seed(tw)
    before = ledger_facts(tw)
    one_line_error(run_cli(*args), *needles)
    assert ledger_facts(tw) == before
    assert tw.ledger.trade("s1") is None


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["entry", "s1", "nan"], ["entry price must be a finite number", "nan"]),
        (["entry", "s1", "lots"], ["entry price must be a number", "lots"]),
    ],
)
def test_non_finite_price_is_refused(
    run_cli: RunCli, tw: Tradewatch, args: list[str], needles: list[str]
) -> None:
    seed(tw)
    before = ledger_facts(tw)
    one_line_error(run_cli(*args), *needles)
    assert ledger_facts(tw) == before


@SQLITE_ONLY
def test_nan_exit_price_is_refused(run_cli: RunCli, tw: Tradewatch) -> None:
    seed(tw, entry=100.0)
    before = ledger_facts(tw)
    one_line_error(run_cli("exit", "s1", "NaN"), "exit price must be a finite number")
    assert ledger_facts(tw) == before
    trade = tw.ledger.trade("s1")
    assert trade is not None
    assert trade.is_open


def test_unknown_signal_is_refused(run_cli: RunCli, tw: Tradewatch) -> None:
    one_line_error(run_cli("entry", "nope", "100"), "unknown signal 'nope'")
    assert ledger_facts(tw) == []


@SQLITE_ONLY
@pytest.mark.parametrize(
    "args",
    [["exit", "nope", "100"], ["signal", "skip", "nope"], ["entry", "nope", "1", "--correct"]],
)
def test_unknown_signal_is_refused_by_every_command(run_cli: RunCli, args: list[str]) -> None:
    one_line_error(run_cli(*args), "unknown signal 'nope'")


@SQLITE_ONLY
def test_exit_before_the_entry_is_refused(run_cli: RunCli, tw: Tradewatch) -> None:
    seed(tw, entry=100.0)  # entered 2024-01-02T00:00Z
    before = ledger_facts(tw)
    result = run_cli("exit", "s1", "110", "--at", "2024-01-01T23:59:00Z")
    one_line_error(result, "exit time 2024-01-01T23:59:00+00:00 is before the entry time")
    assert ledger_facts(tw) == before
    trades = as_json(run_cli("trades", "--json"))
    assert [(t["signal_id"], t["status"], t["exit_price"]) for t in trades] == [
        ("s1", "open", None)
    ]


def test_double_exit_is_refused(run_cli: RunCli, tw: Tradewatch) -> None:
    seed(tw, entry=100.0, exit_price=110.0)
    before = ledger_facts(tw)
    one_line_error(run_cli("exit", "s1", "120"), "signal s1 already exited at 110")
    assert ledger_facts(tw) == before
    assert sum(kind == "Trade.ExitRecorded" for kind, _, _ in before) == 1
    stats = as_json(run_cli("stats", "--json"))
    assert stats["total_trades"] == 1
    assert stats["total_pnl"] == pytest.approx(10.0)


def write_bad_import(tmp_path: Path) -> Path:
    path = tmp_path / "history.csv"
    path.write_text(
        f"{HEADER}\n"
        "a1,BTCUSDT,long,2024-01-01T00:00:00Z,100,2024-01-02T00:00:00Z,110,1,0,,,,\n"
        "a2,ETHUSDT,short,2024-01-01T00:00:00Z,abc,,,,,,,,\n",
        encoding="utf-8",
    )
    return path


@SQLITE_ONLY
def test_malformed_import_row_refuses_the_whole_file(
    run_cli: RunCli, tw: Tradewatch, tmp_path: Path
) -> None:
    result = run_cli("import", str(write_bad_import(tmp_path)))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error == "error: line 3: entry_price is not a number: 'abc'"
    assert ledger_facts(tw) == []  # line 2 was fine, but the file is all or nothing


@SQLITE_ONLY
def test_malformed_import_error_is_one_line(run_cli: RunCli, tmp_path: Path) -> None:
    one_line_error(run_cli("import", str(write_bad_import(tmp_path))), "line 3")


@SQLITE_ONLY
def test_error_naming_text_in_brackets_is_one_line(run_cli: RunCli) -> None:
    one_line_error(run_cli("entry", "[/x]", "100"), "unknown signal '[/x]'")


@SQLITE_ONLY
def test_signal_id_with_brackets_is_reported(run_cli: RunCli, tw: Tradewatch) -> None:
    result = run_cli("signal", "add", "v7[/]", "--symbol", "BTCUSDT", "--direction", "long")
    assert tw.ledger.signal("v7[/]").symbol == "BTCUSDT"  # it is stored either way
    assert "signal v7[/] recorded" in ok(result)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_demo_if_empty_fills_a_ledger_that_only_has_alerts(run_cli: RunCli) -> None:
    """`make run` on a fresh machine: the first command may raise scheduled alerts."""
    run_cli("stats", "--json", check=True)
    assert "recorded" in run_cli("demo", "--if-empty", "--days", "3", check=True).stdout
    again = run_cli("demo", "--if-empty", "--days", "3", check=True).stdout
    assert "already has history" in again
    stats = json.loads(run_cli("stats", "--json", check=True).stdout)
    assert stats["total_trades"] > 0


def test_commands_started_together_on_a_fresh_ledger_all_succeed(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    """Set-up is serialised across processes: none races another creating the tables."""
    commands = [["stats", "--json"], ["alerts", "--json"], ["status", "--json"]] * 2
    running = [
        subprocess.Popen(
            [TRADEWATCH, *args],
            env=cli_env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in commands
    ]
    results = [(p.wait(60), p.stderr.read() if p.stderr else "") for p in running]
    assert [code for code, _ in results] == [0] * len(commands), results


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("TRADEWATCH_STARTING_BALANCE", "-5", "TRADEWATCH_STARTING_BALANCE"),
        ("TRADEWATCH_MIN_SAMPLE", "many", "TRADEWATCH_MIN_SAMPLE"),
        ("TRADEWATCH_RED_WIN_RATE", "0.9", "red_win_rate"),
        ("TRADEWATCH_DATABASE_URL", "mysql://x", "TRADEWATCH_DATABASE_URL"),
    ],
)
def test_a_bad_setting_is_a_one_line_error(
    run_cli: RunCli, cli_env: dict[str, str], variable: str, value: str, named: str
) -> None:
    cli_env[variable] = value
    result = run_cli("stats", "--json")
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: bad setting: ") and named in lines[0]


def test_stats_today_counts_only_todays_exits(run_cli: RunCli, tw: Tradewatch) -> None:
    seed(tw, entry=100.0, exit_price=110.0)  # exited in January 2024
    now = datetime.now(UTC)
    tw.ledger.record_signal(SignalDraft("s2", "ETHUSDT", Direction.SHORT, now))
    tw.ledger.record_entry("s2", Fill.checked(100.0, 1.0, 0.0, now, "entry"))
    tw.ledger.record_exit("s2", 95.0, 0.0, "take_profit", now)
    today = as_json(run_cli("stats", "--today", "--json"))
    assert (today["total_trades"], today["total_pnl"]) == (1, pytest.approx(5.0))
    assert today["filter"]["today"] is True
    assert as_json(run_cli("stats", "--json"))["total_trades"] == 2
    assert "Performance — today" in ok(run_cli("stats", "--today"))
    one_line_error(run_cli("stats", "--today", "--days", "3"), "use --today or --days, not both")
