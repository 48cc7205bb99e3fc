"""No stored event may brick the ledger: events that bypassed the domain's checks.

Each case stores an event directly (as an older version, or a hand edit, could have),
through the aggregates' own event classes but none of their validation. Afterwards every
reading command still answers from the read models, with one warning line naming the
event; ``audit verify`` names it too; ``replay`` works; and new trades still count.
On SQLite and on PostgreSQL (where text with NUL cannot be stored as text at all).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from domain.events import Causation
from domain.signal import Signal, SignalDraft, signal_uuid
from domain.trade import Fill, Trade, trade_uuid
from domain.values import Direction
from infrastructure.bootstrap import Tradewatch
from ui.cli import app

T0 = datetime(2024, 1, 2, tzinfo=UTC)
LONG = Direction.LONG


def invoke(tw: Tradewatch, *args: str) -> Result:
    """Run a command in process against the test's database."""
    env = {
        "TRADEWATCH_HOME": str(tw.settings.home),
        "TRADEWATCH_DATABASE_URL": tw.settings.database,
    }
    return CliRunner().invoke(app, list(args), env=env, prog_name="tradewatch")


def strict_json(text: str) -> Any:
    """JSON as the spec has it: no NaN or Infinity."""

    def refuse(constant: str) -> Any:
        raise AssertionError(f"{constant} in the JSON output")

    return json.loads(text, parse_constant=refuse)


def cause(signal_id: str) -> dict[str, str]:
    return Causation.command("test", str(signal_uuid(signal_id))).fields()


def signal_directly(tw: Tradewatch | None, signal_id: str, **changes: Any) -> Signal:
    """A ``Signal.Recorded`` with ``changes`` over valid facts, unchecked (stored in
    ``tw`` when given)."""
    facts = SignalDraft(signal_id, "BTCUSDT", LONG, T0).facts()
    facts.update(changes)
    signal = Signal._create(
        Signal.Recorded,
        id=signal_uuid(signal_id),
        **facts,
        **cause(signal_id),
        controller_status="green",
        size_multiplier=1.0,
        controller_decision_id=None,
        blocked=False,
        sized_position=None,
    )
    if tw is not None:
        tw.ledger.save(signal)
    return signal


def without_a_field(tw: Tradewatch) -> None:
    """A ``Signal.Recorded`` whose stored state lacks its symbol."""
    (event,) = signal_directly(None, "bad").collect_events()
    del vars(event)["symbol"]
    tw.ledger.events.put([event])


def trade_directly(
    tw: Tradewatch,
    signal_id: str,
    price: float,
    qty: float,
    exit_price: float | None,
    exit_at: datetime = T0 + timedelta(hours=1),
    **signal_changes: Any,
) -> None:
    """A signal, its entry and (if given) its exit, stored with these values unchecked."""
    signal = signal_directly(tw, signal_id, **signal_changes)
    signal.trigger_event(Signal.Traded, at=T0, **cause(signal_id))
    trade = Trade._create(
        Trade.EntryRecorded,
        id=trade_uuid(signal_id),
        signal_id=signal_id,
        symbol=signal_changes.get("symbol", "BTCUSDT"),
        direction="long",
        source="manual",
        price=price,
        qty=qty,
        fee=0.0,
        at=T0,
        stop_loss=None,
        take_profit=None,
        forced=False,
        **cause(signal_id),
    )
    if exit_price is not None:
        trade.trigger_event(
            Trade.ExitRecorded,
            price=exit_price,
            fee=0.0,
            reason="manual",
            at=exit_at,
            **cause(signal_id),
        )
    tw.ledger.save(signal, trade)


def a_good_trade(tw: Tradewatch, signal_id: str, exit_price: float) -> None:
    """Recorded through the commands, with every check."""
    tw.ledger.record_signal(SignalDraft(signal_id, "ETHUSDT", LONG, T0))
    tw.ledger.record_entry(signal_id, Fill.checked(100.0, 1.0, 0.0, T0, "entry"))
    tw.ledger.record_exit(signal_id, exit_price, 0.0, "manual", T0 + timedelta(hours=2))


BRICKS: dict[str, Callable[[Tradewatch], None]] = {
    # the controller's day arithmetic overflowed on this one ("no end" sentinel)
    "exit in 9999": lambda tw: trade_directly(
        tw, "bad", 100.0, 1.0, 90.0, datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    ),
    # a typo'd year: strftime("%Y") did not zero-pad it, and every read broke
    "exit in 0226": lambda tw: trade_directly(
        tw, "bad", 100.0, 1.0, 90.0, datetime(226, 11, 30, 10, tzinfo=UTC)
    ),
    # entry × qty underflows to 0: the P&L percentage divided by zero
    "underflow": lambda tw: trade_directly(tw, "bad", 1e-200, 1e-200, 2e-200),
    # a notional of inf: a +50 % long classed breakeven, Infinity and NaN in the JSON
    "overflow": lambda tw: trade_directly(tw, "bad", 1e308, 2.0, 1.5e308),
    # a subnormal entry: "P&L and theory scores must be finite" on every stats
    "subnormal": lambda tw: trade_directly(tw, "bad", 5e-324, 1.0, 1.0),
    # score × P&L overflows in the theory report
    "theory score 1e308": lambda tw: trade_directly(
        tw, "bad", 100.0, 1.0, 110.0, theories={"x": 1e308}
    ),
    # PostgreSQL cannot store NUL in text: every read-model write failed with DataError
    "NUL in the symbol": lambda tw: trade_directly(tw, "bad", 100.0, 1.0, 110.0, symbol="BTC\x00"),
    # a field missing from the stored state
    "a field missing": without_a_field,
}


KEPT = {"theory score 1e308": {"sqlite", "postgres"}, "NUL in the symbol": {"sqlite"}}
"""Cases whose trade itself is sound, so it counts: its signal's scores are left out, or
SQLite stores the NUL that PostgreSQL cannot."""


@pytest.fixture
def bricked(tw: Tradewatch, request: pytest.FixtureRequest) -> Iterator[Tradewatch]:
    """A ledger with one good closed trade, then the case's event stored unchecked."""
    a_good_trade(tw, "good", 110.0)
    BRICKS[request.param](tw)
    yield tw


@pytest.mark.parametrize("bricked", list(BRICKS), indirect=True)
def test_an_unreadable_event_leaves_every_reading_command_working(
    bricked: Tradewatch, request: pytest.FixtureRequest
) -> None:
    kind = "sqlite" if bricked.settings.database.startswith("sqlite") else "postgres"
    kept = kind in KEPT.get(request.node.callspec.params["bricked"], set())
    stats = invoke(bricked, "stats", "--json")
    assert stats.exit_code == 0, stats.output
    warning = stats.stderr.strip().splitlines()
    assert len(warning) == 1 and warning[0].startswith("warning: event #"), stats.stderr
    assert "is left out of" in warning[0]
    report = strict_json(stats.stdout)
    assert report["total_trades"] == 1 + kept  # the good trade; the bad one is left out
    assert report["total_pnl"] == pytest.approx(10.0 * (1 + kept))
    for command in ("trades", "status", "theories", "equity"):
        result = invoke(bricked, command, "--json")
        assert result.exit_code == 0, (command, result.output)
        strict_json(result.stdout)

    replay = invoke(bricked, "replay", "--json")
    assert replay.exit_code == 0, replay.output
    assert strict_json(invoke(bricked, "stats", "--json").stdout)["total_trades"] == 1 + kept

    # the ledger still takes new facts, and they count
    a_good_trade(bricked, "later", 120.0)
    after = strict_json(invoke(bricked, "stats", "--json").stdout)
    assert after["total_trades"] == 2 + kept
    assert after["total_pnl"] == pytest.approx(30.0 + 10.0 * kept)


def test_the_warning_and_audit_verify_name_the_event_and_the_reason(tw: Tradewatch) -> None:
    trade_directly(tw, "bad", 100.0, 1.0, 90.0, datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC))
    tw.sync()
    left_out = tw.unreadable()
    exit_event = f"{trade_uuid('bad')}:2"
    assert {(f.event_id, f.kind) for f in left_out} == {(exit_event, "Trade.ExitRecorded")}
    by_reader = {f.reader: f.reason for f in left_out}
    assert set(by_reader) == {"ledger", "controller", "alerts"}
    assert "9999-12-31T23:59:59+00:00 is outside the range the reports hold" in by_reader["ledger"]
    warning = invoke(tw, "trades").stderr.strip()
    assert warning.startswith(f"warning: event #{left_out[0].notification_id} ")
    assert f"(Trade.ExitRecorded {exit_event}) is left out of alerts, controller, ledger" in warning
    assert "\n" not in warning
    # the trade stays open in the reports: its exit could not be read
    assert tw.reports.trade("bad")["status"] == "open"  # type: ignore[index]
    verify = invoke(tw, "audit", "verify", "--json")
    assert verify.exit_code == 1, verify.output
    listed = strict_json(verify.stdout)
    assert listed["ok"] is True  # the hash chain is intact: the event is stored as it was
    assert {(u["reader"], u["event_id"]) for u in listed["unreadable"]} == {
        (reader, exit_event) for reader in ("ledger", "controller", "alerts")
    }
    text = invoke(tw, "audit", "verify")
    assert f"left out: event #{left_out[0].notification_id} " in text.stdout
    assert text.stderr.strip().splitlines()[-1] == (
        "error: 1 stored event(s) cannot be read into the reports"
    )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_command_on_a_trade_that_cannot_be_read_back_is_a_one_line_error(
    tw: Tradewatch,
) -> None:
    tw.ledger.record_signal(SignalDraft("bad", "BTCUSDT", LONG, T0))
    tw.ledger.record_entry("bad", Fill.checked(100.0, 1.0, 0.0, T0, "entry"))
    trade = tw.ledger.trade("bad")
    assert trade is not None
    trade.trigger_event(Trade.ExitRecorded, price=90.0, fee=0.0, reason="x", at=T0, **cause("bad"))
    (event,) = trade.collect_events()
    del vars(event)["price"]
    tw.ledger.events.put([event])
    assert strict_json(invoke(tw, "stats", "--json").stdout)["total_trades"] == 0
    result = invoke(tw, "exit", "bad", "95", "--correct")
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()[-1:]
    assert line.startswith(f"error: the stored events of {trade_uuid('bad')} cannot be read back")
    assert "Traceback" not in result.output
