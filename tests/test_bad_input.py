"""Bad input through every command and the import, on SQLite and PostgreSQL: each case
gets exit code 2, one line on stderr naming the problem, and nothing stored.

The commands run in process (``CliRunner``, the same ``app`` the console script runs), on
one seeded ledger per database that no case may change; a few cases also run through the
installed command. The rules themselves are the domain's (``test_door.py``).
"""

from __future__ import annotations

import csv
import io
import json
import secrets
import subprocess
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from application.importing import COLUMNS
from domain.signal import SignalDraft
from domain.trade import Fill
from domain.values import Direction
from infrastructure.bootstrap import Tradewatch, bootstrap
from infrastructure.settings import Settings
from tests.conftest import PG_ADMIN_URL, _admin
from ui.cli import app

T0 = datetime(2024, 1, 2, tzinfo=UTC)
FAR = "9999-12-31T23:59:59Z"  # a common "no end" sentinel
OLD = "0226-11-30T10:00:00Z"  # a typo'd year
WRAP = "9999-12-31T23:00:00-05:00"  # past the largest datetime once in UTC
AHEAD = "is more than 5 minutes ahead of now"
RunCli = Callable[..., subprocess.CompletedProcess[str]]


def seed(tw: Tradewatch) -> None:
    """``pending`` (a signal), ``open`` (entered an hour later), ``closed`` (and exited)."""
    for signal_id in ("pending", "open", "closed"):
        tw.ledger.record_signal(SignalDraft(signal_id, "BTCUSDT", Direction.LONG, T0))
    for signal_id in ("open", "closed"):
        tw.ledger.record_entry(
            signal_id, Fill.checked(100.0, 1.0, 0.0, T0 + timedelta(hours=1), "entry")
        )
    tw.ledger.record_exit("closed", 110.0, 0.0, "manual", T0 + timedelta(hours=2))
    tw.sync()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def ledger(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Tradewatch]:
    """One seeded ledger per database kind, shared by the module's cases."""
    home = tmp_path_factory.mktemp("bad-input")
    name = None
    if request.param == "sqlite":
        url = f"sqlite:///{home / 'ledger.db'}"
    else:
        name = f"tw_test_{secrets.token_hex(4)}"
        _admin(f"CREATE DATABASE {name}")
        url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    tw = bootstrap(Settings(home=home, database_url=url))
    try:
        seed(tw)
        yield tw
    finally:
        tw.close()
        if name:
            _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def invoke(tw: Tradewatch, *args: str) -> Result:
    env = {
        "TRADEWATCH_HOME": str(tw.settings.home),
        "TRADEWATCH_DATABASE_URL": tw.settings.database,
    }
    return CliRunner().invoke(app, list(args), env=env, prog_name="tradewatch")


def stored(tw: Tradewatch) -> list[tuple[str, str, int]]:
    """Every signal, trade and controller event stored (alerts are raised by the clock)."""
    return [
        (f.kind, f.aggregate_id, f.version)
        for f in tw.engine.log.read(0, 100_000)
        if f.kind.startswith(("Signal.", "Trade.", "Controller.Paused", "Controller.Resumed"))
    ]


def refused(
    tw: Tradewatch, result: Result, needle: str, before: list[tuple[str, str, int]]
) -> None:
    """Exit code 2, exactly one line on stderr naming the problem, and nothing stored."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert needle in lines[0], (needle, lines[0])
    assert result.stdout == ""
    assert stored(tw) == before


COMMANDS: list[tuple[list[str], str]] = [
    # signal add
    (
        ["signal", "add", "n", "--symbol", "BTCUSDT", "--direction", "long", "--at", FAR],
        f"signal time 9999-12-31T23:59:59+00:00 {AHEAD}",
    ),
    (
        ["signal", "add", "n", "--symbol", "BTCUSDT", "--direction", "long", "--at", OLD],
        "signal time 0226-11-30T10:00:00+00:00 is before 2009-01-01",
    ),
    (
        ["signal", "add", "n", "--symbol", "BTCUSDT", "--direction", "long", "--at", WRAP],
        "is out of range",
    ),
    (
        ["signal", "add", "n", "--symbol", "BTCUSDT", "--direction", "long", "--entry", "1e-200"],
        "entry low must be within [1e-12, 1e+12], got 1e-200",
    ),
    (
        ["signal", "add", "n", "--symbol", "BTCUSDT", "--direction", "short", "--stop", "1e308"],
        "stop loss must be within [1e-12, 1e+12]",
    ),
    (
        ["signal", "add", "n", "--symbol", "BTCUSDT", "--direction", "long", "--size", "5e-324"],
        "position size must be within",
    ),
    (
        ["signal", "add", "n", "--symbol", "BTCUSDT", "--direction", "long", "--theory", "x=1e308"],
        "theory 'x' score must be within ±1e+06",
    ),
    (
        [
            "signal",
            "add",
            "n",
            "--symbol",
            "BTCUSDT",
            "--direction",
            "long",
            "--theory",
            "x=1",
            "--theory",
            "x=2",
        ],
        "theory 'x' is given twice",
    ),
    (
        ["signal", "add", "n", "--symbol", "BTC\x00USDT", "--direction", "long"],
        "symbol contains the control character U+0000",
    ),
    (
        ["signal", "add", "n\u202e1", "--symbol", "BTCUSDT", "--direction", "long"],
        "signal id contains the control character U+202E",
    ),
    (
        [
            "signal",
            "add",
            "n",
            "--symbol",
            "BTCUSDT",
            "--direction",
            "long",
            "--source",
            "v7\x1b[31m",
        ],
        "source contains the control character U+001B",
    ),
    (
        [
            "signal",
            "add",
            "n",
            "--symbol",
            "BTCUSDT",
            "--direction",
            "long",
            "--timeframe",
            "1\n5m",
        ],
        "timeframe contains the control character U+000A",
    ),
    (
        [
            "signal",
            "add",
            "n",
            "--symbol",
            "BTCUSDT",
            "--direction",
            "long",
            "--model-version",
            "v\x857",
        ],
        "model version contains the control character U+0085",
    ),
    (
        ["signal", "add", "n", "--symbol", "B" * 41, "--direction", "long"],
        "symbol is longer than 40 characters",
    ),
    (
        ["signal", "add", "n", "--symbol", "BTCUSDT", "--direction", "long", "--theory", "m\x07=1"],
        "theory name contains the control character U+0007",
    ),
    # the same facts at another time: a conflict, not "already recorded"
    (
        [
            "signal",
            "add",
            "pending",
            "--symbol",
            "BTCUSDT",
            "--direction",
            "long",
            "--at",
            "2024-01-02T00:05:00Z",
        ],
        "signal pending is already recorded with a different time",
    ),
    # signal skip
    (["signal", "skip", "pending", "--at", FAR], f"skip time 9999-12-31T23:59:59+00:00 {AHEAD}"),
    (
        ["signal", "skip", "pending", "--at", "2024-01-01T00:00:00Z"],
        "skip time 2024-01-01T00:00:00+00:00 is before the signal time 2024-01-02T00:00:00+00:00",
    ),
    (
        ["signal", "skip", "pending", "--reason", "no\x00"],
        "reason contains the control character U+0000",
    ),
    (["signal", "skip", "pending", "--reason", "x" * 501], "reason is longer than 500 characters"),
    # entry
    (
        ["entry", "pending", "1e-200", "--qty", "1e-200"],
        "entry price must be within [1e-12, 1e+12], got 1e-200",
    ),
    (["entry", "pending", "1e308", "--qty", "2"], "entry price must be within"),
    (["entry", "pending", "5e-324"], "entry price must be within"),
    (["entry", "pending", "100", "--qty", "1e16"], "qty must be within [1e-12, 1e+15]"),
    (["entry", "pending", "100", "--fee", "101"], "fee 101 is larger than the notional 100"),
    (["entry", "pending", "100", "--at", FAR], f"entry time 9999-12-31T23:59:59+00:00 {AHEAD}"),
    (
        ["entry", "pending", "100", "--at", OLD],
        "entry time 0226-11-30T10:00:00+00:00 is before 2009-01-01",
    ),
    (
        ["entry", "pending", "100", "--at", "2024-01-01T23:00:00Z"],
        "entry time 2024-01-01T23:00:00+00:00 is before the signal time",
    ),
    (
        ["entry", "--symbol", "BTC\u202eUSDT", "--direction", "long", "100"],
        "symbol contains the control character U+202E",
    ),
    (
        ["entry", "--symbol", "BTCUSDT", "--direction", "long", "100", "--at", FAR],
        f"signal time 9999-12-31T23:59:59+00:00 {AHEAD}",
    ),
    # entry --correct
    (["entry", "open", "1e-200", "--correct"], "entry price must be within"),
    (
        ["entry", "open", "100", "--correct", "--at", FAR],
        f"entry time 9999-12-31T23:59:59+00:00 {AHEAD}",
    ),
    (
        ["entry", "open", "100", "--correct", "--at", "2024-01-01T00:00:00Z"],
        "is before the signal time",
    ),
    (
        ["entry", "open", "99", "--correct", "--reason", "typo\x07"],
        "reason contains the control character U+0007",
    ),
    (
        ["entry", "open", "100", "--correct", "--fee", "500"],
        "fee 500 is larger than the notional 100",
    ),
    (["entry", "open", "100", "--correct"], "the entry of signal open already has these values"),
    # exit
    (["exit", "open", "90", "--at", FAR], f"exit time 9999-12-31T23:59:59+00:00 {AHEAD}"),
    (
        ["exit", "open", "90", "--at", OLD],
        "exit time 0226-11-30T10:00:00+00:00 is before 2009-01-01",
    ),
    (["exit", "open", "90", "--at", WRAP], "is out of range"),
    (["exit", "open", "1e-200"], "exit price must be within"),
    (["exit", "open", "1.5e308"], "exit price must be within"),
    (["exit", "open", "90", "--fee", "91"], "fee 91 is larger than the notional 90"),
    (["exit", "open", "90", "stop\x00loss"], "exit reason contains the control character U+0000"),
    (["exit", "open", "90", "x" * 201], "exit reason is longer than 200 characters"),
    (
        ["exit", "open", "90", "--reason", "why"],
        "--reason is why an exit is corrected: use it with --correct",
    ),
    (["exit", "closed", "120"], "signal closed already exited at 110"),
    # exit --correct
    (["exit", "closed", "1e-200", "--correct"], "exit price must be within"),
    (
        ["exit", "closed", "110", "--correct", "--at", FAR],
        f"exit time 9999-12-31T23:59:59+00:00 {AHEAD}",
    ),
    (
        ["exit", "closed", "110", "--correct", "--at", "2024-01-02T00:30:00Z"],
        "is before the entry time 2024-01-02T01:00:00+00:00",
    ),
    (
        ["exit", "closed", "111", "--correct", "--reason", "typo\u2066"],
        "reason contains the control character U+2066",
    ),
    (["exit", "closed", "110", "--correct"], "the exit of signal closed already has these values"),
    (["exit", "open", "100", "--correct"], "signal open has no exit to correct"),
    # trade void
    (
        ["trade", "void", "closed", "--reason", "oops\x1b"],
        "reason contains the control character U+001B",
    ),
    (["trade", "void", "closed", "--reason", "  "], "reason must not be empty"),
    (["trade", "void", "nope", "--reason", "typo"], "unknown signal 'nope'"),
    # controller
    (
        ["controller", "pause", "--reason", "stop\x00"],
        "reason contains the control character U+0000",
    ),
    (
        ["controller", "pause", "--reason", "ok", "--by", "me\u202e"],
        "who contains the control character U+202E",
    ),
]


@pytest.mark.parametrize(
    ("args", "needle"), COMMANDS, ids=[f"{a[0]}-{i}" for i, (a, _) in enumerate(COMMANDS)]
)
def test_a_bad_command_is_refused_and_stores_nothing(
    ledger: Tradewatch, args: list[str], needle: str
) -> None:
    before = stored(ledger)
    refused(ledger, invoke(ledger, *args), needle, before)


def good_row(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "signal_id": "imp",
        "symbol": "BTCUSDT",
        "direction": "long",
        "entry_time": "2024-02-01T00:00:00Z",
        "entry_price": 100,
        "exit_time": "2024-02-01T06:00:00Z",
        "exit_price": 110,
        "qty": 1,
        "fee": 0,
        "exit_reason": "take_profit",
        "theories": "momentum=0.5",
        "source": "v7",
    }
    row.update(changes)
    return row


ROWS: list[tuple[dict[str, Any], str]] = [
    (good_row(exit_time=FAR), f"exit time 9999-12-31T23:59:59+00:00 {AHEAD}"),
    (good_row(entry_time=OLD), "0226-11-30T10:00:00+00:00 is before 2009-01-01"),
    (good_row(exit_time=WRAP), "is out of range"),
    (good_row(entry_price="1e-200", qty="1e-200"), "entry price must be within"),
    (good_row(entry_price="1e308", qty=2, exit_price="1.5e308"), "entry price must be within"),
    (good_row(entry_price="5e-324", exit_price=1), "entry price must be within"),
    (good_row(qty="1e16"), "qty must be within"),
    (good_row(fee=101), "fee 101 is larger than the notional 100"),
    (good_row(exit_price="1e-200"), "exit price must be within"),
    (good_row(symbol="BTC\x00USDT"), "symbol contains the control character U+0000"),
    (good_row(signal_id="i\u202em"), "signal id contains the control character U+202E"),
    (good_row(exit_reason="stop\x07loss"), "exit_reason contains the control character U+0007"),
    (good_row(source="v7\x9b"), "source contains the control character U+009B"),
    (good_row(theories="x=1e308"), "theory 'x' score must be within"),
    (good_row(theories="x=1;x=2"), "theory 'x' is given twice"),
    (good_row(theories="m\x00=1"), "theory name contains the control character U+0000"),
    (
        good_row(exit_time="2024-01-31T00:00:00Z"),
        "exit time 2024-01-31T00:00:00+00:00 is before the entry time",
    ),
]


def csv_of(*rows: dict[str, Any], header: Sequence[str] = COLUMNS) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["csv", "json"])
@pytest.mark.parametrize(("row", "needle"), ROWS, ids=[str(i) for i in range(len(ROWS))])
def test_a_bad_import_row_refuses_the_file_and_stores_nothing(
    ledger: Tradewatch, tmp_path: Path, fmt: str, row: dict[str, Any], needle: str
) -> None:
    good = good_row(signal_id="fine")
    path = tmp_path / f"history.{fmt}"
    path.write_text(
        csv_of(good, row) if fmt == "csv" else json.dumps([good, row]), encoding="utf-8"
    )
    before = stored(ledger)
    where = "line 3: " if fmt == "csv" else "item 2: "
    result = invoke(ledger, "import", str(path))
    refused(ledger, result, needle, before)
    assert where in result.stderr


FILES: list[tuple[str, str, str]] = [
    ("csv", csv_of(good_row(), header=[*COLUMNS, "qty"]), "line 1: column(s) qty given twice"),
    (
        "csv",
        csv_of(good_row(exit_reason="x" * 131_073)),
        "line 2: a field is longer than 131072 characters",
    ),
    (
        "csv",
        csv_of(good_row()).replace("BTCUSDT", "BTC\x00USDT"),
        "line 2: symbol contains the control character U+0000",
    ),
    (
        "json",
        json.dumps([good_row(symbol={"a": 1})]),
        "item 1: symbol must be a string, not {'a': 1}",
    ),
    (
        "json",
        json.dumps([good_row(entry_price=[100])]),
        "item 1: entry_price must be a number, not [100]",
    ),
    (
        "json",
        json.dumps([good_row(signal_id=True)]),
        "item 1: signal_id must be a string or an integer, not True",
    ),
    ("json", json.dumps([good_row(direction=1)]), "item 1: direction must be a string, not 1"),
    (
        "json",
        json.dumps([good_row(theories={"x": "1"})]),
        "item 1: theory 'x' score must be a number, not '1'",
    ),
    (
        "json",
        json.dumps([good_row()]).replace('"qty": 1', '"qty": 1, "qty": 2'),
        "item 1: key 'qty' is given twice",
    ),
    (
        "json",
        json.dumps([good_row(theories={"x": 1})]).replace('{"x": 1}', '{"x": 1, "x": 2}'),
        "item 1: theory 'x' is given twice",
    ),
    ("json", "[" * 100_000 + "]" * 100_000, "line 1: invalid JSON (nested too deeply)"),
]


@pytest.mark.parametrize(
    ("fmt", "text", "needle"), FILES, ids=[f"{f}-{i}" for i, (f, _, _) in enumerate(FILES)]
)
def test_a_malformed_file_is_a_one_line_error(
    ledger: Tradewatch, tmp_path: Path, fmt: str, text: str, needle: str
) -> None:
    path = tmp_path / f"history.{fmt}"
    path.write_text(text, encoding="utf-8")
    before = stored(ledger)
    refused(ledger, invoke(ledger, "import", str(path)), needle, before)


def test_a_signal_retried_without_a_time_is_still_a_no_op(ledger: Tradewatch) -> None:
    before = stored(ledger)
    result = invoke(
        ledger, "signal", "add", "pending", "--symbol", "BTCUSDT", "--direction", "long"
    )
    assert result.exit_code == 0, result.output
    assert "already recorded (no change)" in result.stdout
    assert stored(ledger) == before


# Through the installed command -------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["exit", "s1", "90", "--at", FAR], f"exit time 9999-12-31T23:59:59+00:00 {AHEAD}"),
        (["entry", "s1", "1e-200", "--qty", "1e-200"], "entry price must be within"),
    ],
)
def test_the_installed_command_refuses_them_too(
    run_cli: RunCli, tw: Tradewatch, args: list[str], needle: str
) -> None:
    tw.ledger.record_signal(SignalDraft("s1", "BTCUSDT", Direction.LONG, T0))
    if args[0] == "exit":
        tw.ledger.record_entry("s1", Fill.checked(100.0, 1.0, 0.0, T0, "entry"))
    before = stored(tw)
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [f"error: {result.stderr.strip()[7:]}"]
    assert needle in result.stderr
    assert stored(tw) == before
    assert run_cli("stats", "--json").returncode == 0


@pytest.mark.parametrize(
    ("variable", "value", "needle"),
    [
        (
            "TRADEWATCH_BREAKEVEN_PCT",
            "inf",
            "TRADEWATCH_BREAKEVEN_PCT: Input should be a finite number",
        ),
        (
            "TRADEWATCH_STARTING_BALANCE",
            "inf",
            "TRADEWATCH_STARTING_BALANCE: Input should be a finite number",
        ),
        (
            "TRADEWATCH_STARTING_BALANCE",
            "nan",
            "TRADEWATCH_STARTING_BALANCE: Input should be a finite number",
        ),
        (
            "TRADEWATCH_TIMEZONE",
            "Mars/Olympus",
            "TRADEWATCH_TIMEZONE: Value error, unknown time zone 'Mars/Olympus'",
        ),
    ],
)
def test_a_setting_that_cannot_work_is_a_one_line_error(
    tmp_path: Path, variable: str, value: str, needle: str
) -> None:
    env = {"TRADEWATCH_HOME": str(tmp_path), variable: value}
    result = CliRunner().invoke(app, ["stats", "--json"], env=env)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("error: bad setting: ") and needle in result.stderr
    assert not (tmp_path / "tradewatch.db").exists()  # refused before the ledger was opened
