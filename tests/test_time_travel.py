"""Time travel: ``Tradewatch.as_of(moment)`` shows the ledger as it stood at a market time.

Facts count from their business time (the ``at`` of a signal, entry, exit or skip). Each
test runs on SQLite and on a fresh PostgreSQL database; the CLI test runs once, on SQLite.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

from application.ledger import TradeLedger
from domain.signal import SignalDraft
from domain.trade import Fill
from domain.values import Direction
from infrastructure.bootstrap import Tradewatch, bootstrap
from infrastructure.settings import Settings
from projections.reports import Reports, TradeFilter

T0 = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
H = timedelta(hours=1)


@dataclass(frozen=True)
class Step:
    """One ledger command and the market time it speaks of."""

    at: datetime
    run: Callable[[TradeLedger], object]


def signal(signal_id: str, symbol: str, direction: Direction, at: datetime) -> Step:
    draft = SignalDraft(
        signal_id,
        symbol,
        direction,
        at,
        source="v7",
        confidence=0.7,
        model_version="v7.3",
        theories={"momentum": 0.4, "order_flow": 0.2},
    )
    return Step(at, lambda ledger: ledger.record_signal(draft))


def entry(signal_id: str, price: float, qty: float, at: datetime) -> Step:
    fill = Fill(price, qty, round(price * qty * 0.0005, 4), at)
    return Step(at, lambda ledger: ledger.record_entry(signal_id, fill, force=True))


def exit_(signal_id: str, price: float, reason: str, at: datetime) -> Step:
    return Step(at, lambda ledger: ledger.record_exit(signal_id, price, 0.05, reason, at))


def skip(signal_id: str, at: datetime) -> Step:
    return Step(at, lambda ledger: ledger.skip_signal(signal_id, "not taken", at))


STEPS = (  # in market-time order
    signal("a", "BTCUSDT", Direction.LONG, T0),
    entry("a", 100.0, 1.0, T0 + 1 * H),
    signal("b", "ETHUSDT", Direction.SHORT, T0 + 2 * H),
    entry("b", 50.0, 2.0, T0 + 2 * H),
    exit_("b", 48.0, "take_profit", T0 + 3 * H),
    exit_("a", 98.0, "stop_loss", T0 + 5 * H),
    signal("c", "SOLUSDT", Direction.LONG, T0 + 6 * H),
    entry("c", 20.0, 5.0, T0 + 6 * H),
    signal("d", "BTCUSDT", Direction.SHORT, T0 + 7 * H),
    skip("d", T0 + 7 * H),
    signal("e", "ETHUSDT", Direction.LONG, T0 + 25 * H),
    entry("e", 52.0, 1.0, T0 + 25 * H),
    exit_("e", 53.5, "take_profit", T0 + 27 * H),
)

MOMENTS = (
    T0 - H,
    T0 + 0.5 * H,
    T0 + 1 * H,
    T0 + 2.5 * H,
    T0 + 4 * H,
    T0 + 5 * H,
    T0 + 6.5 * H,
    T0 + 8 * H,
    T0 + 26 * H,
    T0 + 48 * H,
)


def run(tw: Tradewatch, steps: tuple[Step, ...] = STEPS) -> Tradewatch:
    for step in steps:
        step.run(tw.ledger)
    return tw


@pytest.fixture
def ledger_tw(tw: Tradewatch) -> Tradewatch:
    """The story above, recorded and projected."""
    run(tw)
    tw.engine.catch_up()
    return tw


def open_ids(reports: Reports) -> list[str]:
    return [p["signal_id"] for p in reports.positions()]


def closed_ids(reports: Reports) -> list[str]:
    return sorted(str(s) for s in reports.closed_trades().signal_id)


def test_before_the_entry_nothing_is_open_or_closed(ledger_tw: Tradewatch) -> None:
    before_anything = ledger_tw.as_of(T0 - H)
    assert before_anything.positions() == []
    assert before_anything.trades() == []
    assert before_anything.signal_counts() == {}
    before_entry = ledger_tw.as_of(T0 + 0.5 * H)
    assert open_ids(before_entry) == []
    assert closed_ids(before_entry) == []
    assert before_entry.trade("a") is None
    assert before_entry.signal_counts() == {"pending": 1}
    stats = before_entry.stats()
    assert (stats["total_trades"], stats["open_positions"]) == (0, 0)


def test_before_the_exit_the_trade_is_open_after_it_closed(ledger_tw: Tradewatch) -> None:
    at_entry = ledger_tw.as_of(T0 + 1 * H)  # a fact counts from its own moment on
    assert open_ids(at_entry) == ["a"]
    while_open = ledger_tw.as_of(T0 + 4 * H)
    assert open_ids(while_open) == ["a"]
    assert closed_ids(while_open) == ["b"]
    trade = while_open.trade("a")
    assert trade is not None
    assert (trade["status"], trade["exit_time"], trade["outcome"]) == ("open", None, None)
    at_exit = ledger_tw.as_of(T0 + 5 * H)
    assert open_ids(at_exit) == []
    assert closed_ids(at_exit) == ["a", "b"]
    closed = at_exit.trade("a")
    assert closed is not None
    assert (closed["status"], closed["outcome"]) == ("closed", "loss")
    assert closed["exit_time"] == (T0 + 5 * H).isoformat()
    assert closed == ledger_tw.reports.trade("a")
    later = ledger_tw.as_of(T0 + 6.5 * H)
    assert open_ids(later) == ["c"]
    assert later.signal_counts() == {"traded": 3}


def test_as_of_now_equals_the_live_read_model(ledger_tw: Tradewatch) -> None:
    now = datetime.now(UTC)
    travelled = ledger_tw.as_of(now)
    live = Reports(ledger_tw.store, starting_balance=ledger_tw.settings.starting_balance, now=now)
    assert travelled.stats() == live.stats()
    assert travelled.positions() == live.positions()
    assert travelled.trades(limit=100) == live.trades(limit=100)
    assert travelled.signal_counts() == live.signal_counts()


@pytest.fixture
def other_database_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A second empty database of the same kind (the live reference ledger's)."""
    if urlsplit(database_url).scheme == "sqlite":
        yield f"sqlite:///{tmp_path / 'reference.db'}"
        return
    name = urlsplit(database_url).path.lstrip("/") + "_ref"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield database_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_stats_as_of_equal_live_stats_of_a_ledger_with_only_the_earlier_facts(
    ledger_tw: Tradewatch, other_database_url: str, tmp_path: Path
) -> None:
    live = bootstrap(Settings(home=tmp_path / "reference", database_url=other_database_url))
    try:
        done = 0
        for moment in MOMENTS:
            while done < len(STEPS) and STEPS[done].at <= moment:
                STEPS[done].run(live.ledger)
                done += 1
            live.engine.catch_up()
            reports = Reports(
                live.store, starting_balance=live.settings.starting_balance, now=moment
            )
            travelled = ledger_tw.as_of(moment)
            for flt in (TradeFilter(), TradeFilter(days=1), TradeFilter(symbol="ethusdt")):
                assert travelled.stats(flt) == reports.stats(flt), (moment, flt)
            assert travelled.positions() == reports.positions(), moment
            assert travelled.trades(limit=100) == reports.trades(limit=100), moment
            assert travelled.theories() == reports.theories(), moment
            assert travelled.signal_counts() == reports.signal_counts(), moment
        assert done == len(STEPS)
    finally:
        live.close()


def test_an_entry_correction_counts_with_the_entry(tw: Tradewatch) -> None:
    run(tw, STEPS[:6])
    tw.ledger.correct_entry("a", "wrong quantity", price=100.0, qty=3.0, fee=0.15, at=T0 + 1 * H)
    tw.engine.catch_up()
    while_open = tw.as_of(T0 + 4 * H).trade("a")
    assert while_open is not None
    assert (while_open["status"], while_open["qty"]) == ("open", 3.0)
    closed = tw.as_of(T0 + 5 * H).trade("a")
    assert closed == tw.reports.trade("a")
    assert closed is not None
    assert closed["qty"] == 3.0


def test_a_correction_moving_the_entry_earlier_shows_the_trade_open_from_then(
    tw: Tradewatch,
) -> None:
    run(tw, (signal("f", "BTCUSDT", Direction.LONG, T0), entry("f", 100.0, 1.0, T0 + 2 * H)))
    tw.ledger.correct_entry("f", "entered an hour earlier", fee=0.05, at=T0 + 1 * H)
    tw.engine.catch_up()
    live = tw.reports.trade("f")
    assert live is not None
    assert live["entry_time"] == (T0 + 1 * H).isoformat()
    assert open_ids(tw.as_of(T0 + 1.5 * H)) == ["f"]


def test_a_correction_moving_the_entry_later_shows_nothing_before_it(tw: Tradewatch) -> None:
    run(tw, (signal("g", "BTCUSDT", Direction.LONG, T0), entry("g", 100.0, 1.0, T0 + 1 * H)))
    tw.ledger.correct_entry("g", "entered an hour later", fee=0.05, at=T0 + 2 * H)
    tw.engine.catch_up()
    live = tw.reports.trade("g")
    assert live is not None
    assert live["entry_time"] == (T0 + 2 * H).isoformat()
    assert open_ids(tw.as_of(T0 + 1.5 * H)) == []


# The real command line, once, on SQLite -------------------------------------------------------


def cli_json(run_cli: Callable[..., CompletedProcess[str]], *args: str) -> Any:
    result = run_cli(*args, "--json", check=True)
    return json.loads(result.stdout)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_cli_stats_and_positions_as_of(run_cli: Callable[..., CompletedProcess[str]]) -> None:
    opened = cli_json(
        run_cli,
        "entry",
        "100",
        "--symbol",
        "BTCUSDT",
        "--direction",
        "long",
        "--qty",
        "2",
        "--at",
        "2024-03-01T10:00:00Z",
    )
    signal_id = opened["signal_id"]
    closed = cli_json(
        run_cli, "exit", signal_id, "103", "take_profit", "--at", "2024-03-01T12:00:00+00:00"
    )
    assert (closed["outcome"], closed["status"]) == ("win", "closed")

    def stats(moment: str) -> dict[str, Any]:
        data: dict[str, Any] = cli_json(run_cli, "stats", "--as-of", moment)
        return data

    before = stats("2024-03-01T09:59:59Z")
    assert (before["total_trades"], before["open_positions"]) == (0, 0)
    assert cli_json(run_cli, "positions", "--as-of", "2024-03-01T09:59:59Z") == []

    during = stats("2024-03-01T11:00:00")  # no zone: UTC
    assert during["as_of"] == "2024-03-01T11:00:00+00:00"
    assert (during["total_trades"], during["open_positions"]) == (0, 1)
    positions = cli_json(run_cli, "positions", "--as-of", "2024-03-01T11:00:00Z")
    assert [(p["signal_id"], p["entry_time"], p["qty"]) for p in positions] == [
        (signal_id, "2024-03-01T10:00:00+00:00", 2.0)
    ]
    assert positions[0]["exit_time"] is None

    after = stats("2024-03-01T12:00:00Z")
    assert (after["total_trades"], after["wins"], after["open_positions"]) == (1, 1, 0)
    assert after["total_pnl"] == pytest.approx(6.0)
    assert cli_json(run_cli, "positions", "--as-of", "2024-03-01T12:00:00Z") == []
