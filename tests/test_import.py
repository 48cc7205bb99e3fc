"""Import of trade history (CSV and JSON): all or nothing per file, idempotent.

In process through ``application.importing.import_history`` on both databases, and
through the installed ``tradewatch import`` command.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from application.importing import ImportRefusedError, import_history
from domain.signal import SignalDraft
from domain.values import Direction
from infrastructure.bootstrap import Tradewatch

RunCli = Callable[..., subprocess.CompletedProcess[str]]
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
HEADER = (
    "signal_id,symbol,direction,entry_time,entry_price,exit_time,exit_price,"
    "qty,fee,exit_reason,confidence,theories,source"
)
# A: closed long with everything; B: open short; C: closed short, times without a zone
ROW_A = (
    "A,BTCUSDT,long,2024-01-01T10:00:00Z,40000,2024-01-01T12:30:00Z,41000,0.5,4,"
    "take_profit,0.7,a=0.6;b=0.4,v7"
)
ROW_B = "B,ethusdt,short,2024-01-02T08:00:00+02:00,2500,,,2,,,,,"
ROW_B_CLOSED = "B,ethusdt,short,2024-01-02T08:00:00+02:00,2500,2024-01-03T06:00:00Z,2600,2,,,,,"
ROW_C = "C,SOLUSDT,short,2024-01-04T00:00:00,100,2024-01-04T01:00:00,99.8,10,1,,,,"


def csv_text(*rows: str, header: str = HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


def ledger_kinds(tw: Tradewatch) -> Counter[str]:
    """Signal and trade events; every entry must come with its Signal.Traded."""
    counted = Counter(
        f.kind for f in tw.engine.log.read(0, 100_000) if f.kind.startswith(("Signal.", "Trade."))
    )
    assert counted.pop("Signal.Traded", 0) == counted["Trade.EntryRecorded"]
    return counted


def by_signal(tw: Tradewatch) -> dict[str, dict[str, Any]]:
    tw.sync()
    return {t["signal_id"]: t for t in tw.reports.trades(limit=1000)}


# Happy paths ---------------------------------------------------------------------------------


def test_csv_import_records_signals_entries_and_exits(tw: Tradewatch) -> None:
    summary = import_history(tw.ledger, csv_text(ROW_A, ROW_B, ROW_C), "csv")
    assert (summary.rows, summary.signals, summary.entries, summary.exits) == (3, 3, 3, 2)
    assert summary.unchanged == 0
    assert summary.last_notification_id == tw.engine.log.last_id()
    assert ledger_kinds(tw) == {
        "Signal.Recorded": 3,
        "Trade.EntryRecorded": 3,
        "Trade.ExitRecorded": 2,
    }

    a = tw.ledger.signal("A")
    assert a.facts["theories"] == {"a": 0.6, "b": 0.4}
    assert a.facts["confidence"] == 0.7
    assert a.source == "v7"
    assert tw.ledger.signal("B").source == "manual"  # default source
    assert tw.ledger.signal("B").symbol == "ETHUSDT"

    trades = by_signal(tw)
    # A: long 0.5 BTC 40000 -> 41000 = +500, 4 of fees -> 496 on 20000 = 2.48 %
    assert trades["A"]["status"] == "closed"
    assert trades["A"]["pnl_quote"] == pytest.approx(496.0)
    assert trades["A"]["pnl_pct"] == pytest.approx(2.48)
    assert trades["A"]["outcome"] == "win"
    assert trades["A"]["exit_reason"] == "take_profit"
    assert trades["A"]["hold_minutes"] == pytest.approx(150.0)
    # B: open, qty 2, fee defaults to 0, entry at 06:00 UTC
    assert trades["B"]["status"] == "open"
    assert (trades["B"]["qty"], trades["B"]["fees"], trades["B"]["exit_price"]) == (2.0, 0.0, None)
    assert datetime.fromisoformat(trades["B"]["entry_time"]) == datetime(2024, 1, 2, 6, tzinfo=UTC)
    # C: short 10 x 100 -> 99.8 = +2, 1 of fees -> +1 on 1000 = +0.1 %: a breakeven;
    # a time without a zone is UTC; exit reason defaults to manual
    assert trades["C"]["pnl_quote"] == pytest.approx(1.0)
    assert trades["C"]["pnl_pct"] == pytest.approx(0.1)
    assert trades["C"]["outcome"] == "breakeven"
    assert trades["C"]["exit_reason"] == "manual"
    assert datetime.fromisoformat(trades["C"]["exit_time"]) == datetime(2024, 1, 4, 1, tzinfo=UTC)
    assert [p["signal_id"] for p in tw.reports.positions()] == ["B"]


def test_importing_the_same_file_twice_adds_nothing(tw: Tradewatch) -> None:
    text = csv_text(ROW_A, ROW_B, ROW_C)
    import_history(tw.ledger, text, "csv")
    count = tw.engine.log.last_id()
    again = import_history(tw.ledger, text, "csv")
    assert (again.rows, again.unchanged) == (3, 3)
    assert (again.signals, again.entries, again.exits) == (0, 0, 0)
    assert again.last_notification_id is None
    assert tw.engine.log.last_id() == count


def test_a_later_file_closes_an_open_trade(tw: Tradewatch) -> None:
    import_history(tw.ledger, csv_text(ROW_A, ROW_B), "csv")
    count = tw.engine.log.last_id()
    later = import_history(tw.ledger, csv_text(ROW_A, ROW_B_CLOSED), "csv")
    assert (later.signals, later.entries, later.exits, later.unchanged) == (0, 0, 1, 1)
    assert tw.engine.log.last_id() == count + 1
    b = by_signal(tw)["B"]
    # short 2 ETH 2500 -> 2600 = -200 on 5000 = -4 %
    assert b["status"] == "closed"
    assert b["pnl_quote"] == pytest.approx(-200.0)
    assert b["pnl_pct"] == pytest.approx(-4.0)
    assert b["outcome"] == "loss"
    assert tw.reports.positions() == []


def test_import_completes_a_signal_recorded_by_hand(tw: Tradewatch) -> None:
    tw.ledger.record_signal(
        SignalDraft("B", "ETHUSDT", Direction.SHORT, datetime(2024, 1, 2, 6, tzinfo=UTC))
    )
    summary = import_history(tw.ledger, csv_text(ROW_B_CLOSED), "csv")
    assert (summary.signals, summary.entries, summary.exits) == (0, 1, 1)
    assert ledger_kinds(tw) == {
        "Signal.Recorded": 1,
        "Trade.EntryRecorded": 1,
        "Trade.ExitRecorded": 1,
    }


def test_json_import(tw: Tradewatch) -> None:
    items = [
        {
            "signal_id": "J1",
            "symbol": "BTCUSDT",
            "direction": "long",
            "entry_time": "2024-02-01T00:00:00Z",
            "entry_price": 100,
            "exit_time": "2024-02-01T06:00:00Z",
            "exit_price": 90,
            "qty": 3,
            "fee": 0.3,
            "confidence": 0.55,
            "theories": {"a": 0.6, "b": 0.4},
        },
        {
            "signal_id": "J2",
            "symbol": "ETHUSDT",
            "direction": "short",
            "entry_time": "2024-02-02T00:00:00Z",
            "entry_price": "2000",
            "exit_time": None,
            "exit_price": None,
            "theories": "momentum=1",
        },
    ]
    text = json.dumps(items)
    summary = import_history(tw.ledger, text, "json")
    assert (summary.signals, summary.entries, summary.exits) == (2, 2, 1)
    assert tw.ledger.signal("J1").facts["theories"] == {"a": 0.6, "b": 0.4}
    assert tw.ledger.signal("J2").facts["theories"] == {"momentum": 1.0}
    trades = by_signal(tw)
    # long 3 x 100 -> 90 = -30, 0.3 of fees -> -30.3 on 300 = -10.1 %
    assert trades["J1"]["pnl_quote"] == pytest.approx(-30.3)
    assert trades["J1"]["pnl_pct"] == pytest.approx(-10.1)
    assert trades["J2"]["status"] == "open"
    count = tw.engine.log.last_id()
    assert import_history(tw.ledger, text, "json").unchanged == 2
    assert tw.engine.log.last_id() == count


# Refusals: the line is named and nothing is stored ---------------------------------------------


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            "B,ETHUSDT,long,2024-01-02T08:00:00+02:00,2500,,,2,,,,,",
            "line 3: signal B is already recorded with a different direction",
        ),
        (
            "B,ethusdt,short,2024-01-02T08:00:00+02:00,2400,,,2,,,,,",
            "line 3: signal B already has a different entry",
        ),
        (
            "A,BTCUSDT,long,2024-01-01T10:00:00Z,40000,2024-01-01T12:30:00Z,42000,0.5,4,"
            "take_profit,0.7,a=0.6;b=0.4,v7",
            "line 3: signal A already exited differently",
        ),
        (
            "A,BTCUSDT,long,2024-01-01T10:00:00Z,40000,2024-01-01T12:30:00Z,41000,0.5,4,"
            "take_profit,0.7,a=0.6,v7",
            "line 3: signal A is already recorded with a different theories",
        ),
        (  # only the exit reason differs: a conflict, not "already known"
            "A,BTCUSDT,long,2024-01-01T10:00:00Z,40000,2024-01-01T12:30:00Z,41000,0.5,4,"
            "stop_loss,0.7,a=0.6;b=0.4,v7",
            "line 3: signal A already exited differently",
        ),
        (  # only the time differs
            "A,BTCUSDT,long,2024-01-01T10:05:00Z,40000,2024-01-01T12:30:00Z,41000,0.5,4,"
            "take_profit,0.7,a=0.6;b=0.4,v7",
            "line 3: signal A is already recorded with a different time",
        ),
    ],
)
def test_conflicting_reimport_is_refused_naming_the_line(
    tw: Tradewatch, row: str, message: str
) -> None:
    import_history(tw.ledger, csv_text(ROW_A, ROW_B), "csv")
    count = tw.engine.log.last_id()
    # line 2 is new and valid, line 3 contradicts what is recorded: nothing of it is stored
    with pytest.raises(ImportRefusedError, match=f"^{message}"):
        import_history(tw.ledger, csv_text(ROW_C, row), "csv")
    assert tw.engine.log.last_id() == count
    assert tw.ledger.trade("C") is None


GOOD = "G,BTCUSDT,long,2024-01-01T00:00:00Z,100,2024-01-02T00:00:00Z,110,1,0,,,,"


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            csv_text(GOOD, "X,BTCUSDT,long,2024-01-01T00:00:00Z,abc,,,,,,,,"),
            "line 3: entry_price is not a number: 'abc'",
        ),
        (
            csv_text(GOOD, "X,BTCUSDT,long,2024-01-01T00:00:00Z,100,,,two,,,,,"),
            "line 3: qty is not a number: 'two'",
        ),
        (
            csv_text(GOOD, "X,BTCUSDT,long,2024-01-01T00:00:00Z,-100,,,,,,,,"),
            "line 3: entry price must be greater than 0",
        ),
        (
            csv_text(GOOD, "X,BTCUSDT,long,2024-01-01T00:00:00Z,nan,,,,,,,,"),
            "line 3: entry price must be a finite number",
        ),
        (
            csv_text(GOOD, "X,BTCUSDT,long,2024-01-01T00:00:00Z,100,,,1,-1,,,,"),
            "line 3: fee must not be negative",
        ),
        (
            csv_text(GOOD, "X,BTCUSDT,long,2024-01-01T00:00:00Z,100,,,,,,1.5,,"),
            "line 3: confidence must be between 0 and 1",
        ),
        (
            csv_text(GOOD, "X,BTCUSDT,sideways,2024-01-01T00:00:00Z,100,,,,,,,,"),
            "line 3: direction must be 'long' or 'short', not 'sideways'",
        ),
        (
            csv_text(GOOD, "X,,long,2024-01-01T00:00:00Z,100,,,,,,,,"),
            "line 3: symbol is missing",
        ),
        (
            csv_text(GOOD, "X,BTCUSDT,long"),
            "line 3: entry_time is missing",
        ),
        (
            csv_text(GOOD, "X,BTCUSDT,long,2024-01-01T00:00:00Z,100,,,,,,,,,extra"),
            "line 3: more fields than the header has",
        ),
        (
            csv_text(GOOD, "X,BTCUSDT,long,yesterday,100,,,,,,,,"),
            "line 3: not an ISO 8601 time: 'yesterday'",
        ),
        (
            csv_text(
                GOOD, "X,BTCUSDT,long,2024-01-02T00:00:00Z,100,2024-01-01T00:00:00Z,110,,,,,,"
            ),
            "line 3: exit time 2024-01-01T00:00:00+00:00 is before the entry time",
        ),
        (
            csv_text(GOOD, "X,BTCUSDT,long,2024-01-01T00:00:00Z,100,,110,,,,,,"),
            "line 3: exit_price and exit_time must both be given, or neither",
        ),
        (
            csv_text(GOOD, "X,BTCUSDT,long,2024-01-01T00:00:00Z,100,2024-01-02T00:00:00Z,-1,,,,,,"),
            "line 3: exit price must be greater than 0",
        ),
        (
            csv_text(GOOD, "X,BTCUSDT,long,2024-01-01T00:00:00Z,100,,,,,,,a:0.6,"),
            "line 3: theory 'a:0.6' is not name=score",
        ),
        (
            csv_text(GOOD, "X,BTCUSDT,long,2024-01-01T00:00:00Z,100,,,,,,,a=x,"),
            "line 3: theory a score is not a number: 'x'",
        ),
        (
            csv_text(GOOD, GOOD.replace("110", "120")),
            "line 3: signal G appears twice (first on line 2)",
        ),
        (
            csv_text(GOOD, GOOD),
            "line 3: signal G appears twice (first on line 2)",
        ),
        (
            csv_text(GOOD, header=HEADER.replace(",entry_price", "")),
            "line 1: the header lacks column(s) entry_price",
        ),
        (
            csv_text(GOOD + ",x", header=HEADER + ",colour"),
            "line 1: unknown column(s) colour",
        ),
        ("", "line 1: the header lacks column(s)"),
    ],
)
def test_malformed_csv_is_refused_naming_the_line(tw: Tradewatch, text: str, message: str) -> None:
    with pytest.raises(ImportRefusedError) as refused:
        import_history(tw.ledger, text, "csv")
    assert str(refused.value).startswith(message), str(refused.value)
    assert "\n" not in str(refused.value)
    assert tw.engine.log.last_id() == 0


def json_item(**changes: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "signal_id": "J",
        "symbol": "BTCUSDT",
        "direction": "long",
        "entry_time": "2024-02-01T00:00:00Z",
        "entry_price": 100,
    }
    item.update(changes)
    return item


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("text", "message"),
    [
        (json.dumps([json_item(), json_item(signal_id="K", entry_price="x")]), "item 2:"),
        (json.dumps([json_item(), json_item(signal_id="K", entry_price=True)]), "item 2:"),
        (json.dumps([json_item(), json_item(direction="up", signal_id="K")]), "item 2: direction"),
        (
            json.dumps([json_item(), json_item()]),
            "item 2: signal J appears twice (first on item 1)",
        ),
        (json.dumps([json_item(), json_item(signal_id="K", colour=1)]), "item 2: unknown key(s)"),
        (json.dumps([json_item(), 7]), "item 2: not a JSON object"),
        (json.dumps(json_item()), "line 1: the JSON must be a list of objects"),
        ('[\n{"signal_id": "J",\n"symbol": }\n]', "line 3: invalid JSON"),
    ],
)
def test_malformed_json_is_refused_naming_the_item(tw: Tradewatch, text: str, message: str) -> None:
    with pytest.raises(ImportRefusedError) as refused:
        import_history(tw.ledger, text, "json")
    assert str(refused.value).startswith(message), str(refused.value)
    assert tw.engine.log.last_id() == 0


@SQLITE_ONLY
def test_unknown_format_is_refused(tw: Tradewatch) -> None:
    with pytest.raises(ImportRefusedError, match="unknown format 'xml'"):
        import_history(tw.ledger, "<trades/>", "xml")


# Through the installed command -------------------------------------------------------------


def test_cli_import_is_idempotent_and_closes_later(
    run_cli: RunCli, tw: Tradewatch, tmp_path: Path
) -> None:
    first = tmp_path / "history.csv"
    first.write_text(csv_text(ROW_A, ROW_B, ROW_C), encoding="utf-8")
    result = run_cli("import", str(first), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary == {"rows": 3, "signals": 3, "entries": 3, "exits": 2, "unchanged": 0}
    count = tw.engine.log.last_id()

    # the same rows again as JSON (format from the .json name), with B now closed
    later = tmp_path / "later.json"
    rows = [dict(zip(HEADER.split(","), r.split(","), strict=True)) for r in (ROW_A, ROW_C)]
    rows.append(dict(zip(HEADER.split(","), ROW_B_CLOSED.split(","), strict=True)))
    later.write_text(json.dumps(rows), encoding="utf-8")
    result = run_cli("import", str(later), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary == {"rows": 3, "signals": 0, "entries": 0, "exits": 1, "unchanged": 2}
    assert ledger_kinds(tw) == {
        "Signal.Recorded": 3,
        "Trade.EntryRecorded": 3,
        "Trade.ExitRecorded": 3,
    }
    assert tw.engine.log.last_id() > count
    trades = by_signal(tw)
    assert {t["status"] for t in trades.values()} == {"closed"}
    assert trades["B"]["pnl_quote"] == pytest.approx(-200.0)


@SQLITE_ONLY
def test_cli_import_of_the_same_file_twice(run_cli: RunCli, tw: Tradewatch, tmp_path: Path) -> None:
    path = tmp_path / "history.csv"
    path.write_bytes(("\ufeff" + csv_text(ROW_A, ROW_B)).encode("utf-8"))  # with a BOM
    assert run_cli("import", str(path)).returncode == 0
    before = ledger_kinds(tw)
    result = run_cli("import", str(path))
    assert result.returncode == 0, result.stderr
    assert "0 signals, 0 entries, 0 exits; 2 rows already known" in result.stdout
    assert (
        ledger_kinds(tw)
        == before
        == {
            "Signal.Recorded": 2,
            "Trade.EntryRecorded": 2,
            "Trade.ExitRecorded": 1,
        }
    )


@SQLITE_ONLY
def test_cli_import_refuses_a_conflicting_file(
    run_cli: RunCli, tw: Tradewatch, tmp_path: Path
) -> None:
    import_history(tw.ledger, csv_text(ROW_A), "csv")
    before = ledger_kinds(tw)
    path = tmp_path / "conflict.csv"
    path.write_text(csv_text(ROW_B, ROW_A.replace("BTCUSDT", "XRPUSDT")), encoding="utf-8")
    result = run_cli("import", str(path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: line 3: signal A is already recorded with a different symbol"
    )
    assert ledger_kinds(tw) == before
