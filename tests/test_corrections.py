"""A way back for honest mistakes: corrections keep what they do not name, a voided trade
leaves every metric but not the history, and both replay the same. Old history (events as
today's code stored them, before the door's checks) still projects and replays the same.
On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from eventsourcing.utils import resolve_topic
from typer.testing import CliRunner, Result

from domain.events import Causation
from domain.signal import SignalDraft, signal_uuid
from domain.trade import Fill, Trade, trade_uuid
from domain.values import Direction
from infrastructure.bootstrap import Tradewatch
from ui.cli import app

T0 = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)
H = timedelta(hours=1)
LONG = Direction.LONG


def invoke(tw: Tradewatch, *args: str) -> Result:
    env = {
        "TRADEWATCH_HOME": str(tw.settings.home),
        "TRADEWATCH_DATABASE_URL": tw.settings.database,
    }
    result = CliRunner().invoke(app, list(args), env=env, prog_name="tradewatch")
    assert result.exit_code == 0, (args, result.output)
    return result


def as_json(tw: Tradewatch, *args: str) -> Any:
    return json.loads(invoke(tw, *args, "--json").stdout)


def trade_row(tw: Tradewatch, signal_id: str) -> dict[str, Any]:
    tw.sync()
    row = tw.reports.trade(signal_id)
    assert row is not None
    return row


def entered(tw: Tradewatch, signal_id: str, price: float = 3000.0, qty: float = 2.0) -> None:
    tw.ledger.record_signal(SignalDraft(signal_id, "ETHUSDT", LONG, T0))
    tw.ledger.record_entry(signal_id, Fill.checked(price, qty, 6.0, T0 + H, "entry"))


def test_a_price_only_entry_correction_keeps_qty_fee_and_time(tw: Tradewatch) -> None:
    entered(tw, "s1")
    tw.ledger.record_exit("s1", 3070.0, 0.0, "take_profit", T0 + 3 * H)
    # long 2 x 3000 -> 3070 = +140, 6 of fees: +134
    assert trade_row(tw, "s1")["pnl_quote"] == pytest.approx(134.0)
    assert (
        "entry corrected for signal s1 @ 2990"
        in invoke(tw, "entry", "s1", "2990", "--correct", "--reason", "typo").stdout
    )
    row = trade_row(tw, "s1")
    assert (row["entry_price"], row["qty"], row["fees"]) == (2990.0, 2.0, 6.0)
    assert datetime.fromisoformat(row["entry_time"]) == T0 + H  # not "now", not after the exit
    # (3070 - 2990) x 2 - 6 = 154
    assert row["pnl_quote"] == pytest.approx(154.0)
    trade = tw.ledger.trade("s1")
    assert trade is not None
    assert (trade.entry.qty, trade.entry.fee, trade.entry.at) == (2.0, 6.0, T0 + H)


def test_an_entry_correction_changes_only_what_it_names(tw: Tradewatch) -> None:
    entered(tw, "s1")
    invoke(tw, "entry", "s1", "3000", "--correct", "--qty", "3")
    assert tw.ledger.trade("s1").entry == Fill(3000.0, 3.0, 6.0, T0 + H)  # type: ignore[union-attr]
    invoke(tw, "entry", "s1", "3000", "--correct", "--fee", "0", "--at", "2024-03-04T09:30:00Z")
    assert tw.ledger.trade("s1").entry == Fill(3000.0, 3.0, 0.0, T0 + H / 2)  # type: ignore[union-attr]


def test_exit_correct_keeps_what_it_does_not_name(tw: Tradewatch) -> None:
    entered(tw, "s1")
    tw.ledger.record_exit("s1", 3070.0, 1.0, "take_profit", T0 + 3 * H)
    out = invoke(tw, "exit", "s1", "3080", "--correct", "--reason", "fat finger").stdout
    assert out.startswith("exit corrected: win on signal s1")
    row = trade_row(tw, "s1")
    assert (row["exit_price"], row["exit_reason"], row["fees"]) == (3080.0, "take_profit", 7.0)
    assert datetime.fromisoformat(row["exit_time"]) == T0 + 3 * H
    # (3080 - 3000) x 2 - 7 = 153
    assert row["pnl_quote"] == pytest.approx(153.0)
    # the exit reason and the time change when given
    invoke(tw, "exit", "s1", "3080", "stop_loss", "--correct", "--at", "2024-03-04T13:00:00Z")
    row = trade_row(tw, "s1")
    assert (row["exit_reason"], row["exit_time"]) == ("stop_loss", "2024-03-04T13:00:00+00:00")
    kinds = [s["kind"] for s in as_json(tw, "audit", "s1")["steps"]]
    assert kinds.count("Trade.ExitRecorded") == 1  # the wrong exit stays in history
    assert kinds.count("Trade.ExitCorrected") == 2
    trail = invoke(tw, "audit", "s1").stdout
    assert "exit corrected to 3080 (take_profit): fat finger" in trail
    assert as_json(tw, "stats")["total_pnl"] == pytest.approx(153.0)


def test_a_voided_trade_leaves_every_metric_but_not_the_history(tw: Tradewatch) -> None:
    entered(tw, "good")
    tw.ledger.record_exit("good", 3030.0, 0.0, "take_profit", T0 + 2 * H)
    entered(tw, "wrong", price=100.0, qty=1.0)
    tw.ledger.record_exit("wrong", 50.0, 0.0, "stop_loss", T0 + 2 * H)
    entered(tw, "open-wrong", price=100.0, qty=1.0)
    assert as_json(tw, "stats")["total_trades"] == 2
    invoke(tw, "trade", "void", "wrong", "--reason", "entered on the wrong account")
    invoke(tw, "trade", "void", "open-wrong", "--reason", "never filled")
    stats = as_json(tw, "stats")
    assert (stats["total_trades"], stats["open_positions"]) == (1, 0)
    assert stats["total_pnl"] == pytest.approx(54.0)  # 30 x 2 - 6: the good one alone
    assert as_json(tw, "positions") == []
    assert as_json(tw, "equity")["final_equity"] == pytest.approx(10_054.0)
    assert {t["signal_id"]: t["status"] for t in as_json(tw, "trades")} == {
        "good": "closed",
        "wrong": "void",
        "open-wrong": "void",
    }
    steps = as_json(tw, "audit", "wrong")["steps"]
    assert steps[-1]["kind"] == "Trade.Voided"
    assert steps[-1]["data"]["reason"] == "entered on the wrong account"
    assert "trade voided: entered on the wrong account" in invoke(tw, "audit", "wrong").stdout
    assert tw.reports.closed_until(tw.engine.log.last_id())[0].signal_id == "good"
    with pytest.raises(Exception, match="was voided"):
        tw.ledger.record_exit("open-wrong", 100.0, 0.0, "manual", T0 + 3 * H)
    with pytest.raises(Exception, match="was voided"):
        tw.ledger.void_trade("wrong", "again")


def test_a_void_reaches_the_controller(make_tradewatch: Any) -> None:
    """Five small losses make RED; voiding the last one ends the run of losses, and the
    light turns GREEN at once (the cool-down of that old day is over)."""
    tw: Tradewatch = make_tradewatch(max_consecutive_losses=5)
    for i in range(5):
        sid = f"l{i}"
        tw.ledger.record_signal(SignalDraft(sid, "ETHUSDT", LONG, T0 + i * H))
        tw.ledger.record_entry(sid, Fill.checked(100.0, 1.0, 0.0, T0 + i * H, "entry"))
        tw.ledger.record_exit(sid, 99.0, 0.0, "stop_loss", T0 + i * H + H / 2)
    tw.sync()
    assert as_json(tw, "status")["status"] == "red"
    invoke(tw, "trade", "void", "l4", "--reason", "a test order")
    status = as_json(tw, "status")
    assert status["status"] == "green", status
    rule = next(r for r in status["rules"] if r["rule"] == "consecutive_losses")
    assert rule["value"] == 4


def test_corrections_and_voids_replay_the_same(tw: Tradewatch) -> None:
    entered(tw, "a")
    tw.ledger.record_exit("a", 3070.0, 0.0, "take_profit", T0 + 3 * H)
    entered(tw, "b", price=100.0, qty=1.0)
    tw.ledger.record_exit("b", 90.0, 0.0, "stop_loss", T0 + 3 * H)
    tw.ledger.correct_entry("a", "typo", price=2990.0)
    tw.ledger.correct_exit("b", "fat finger", price=95.0, exit_reason="manual")
    tw.ledger.void_trade("b", "wrong account")
    tw.sync()
    before = (as_json(tw, "stats"), as_json(tw, "trades"), as_json(tw, "equity"))
    invoke(tw, "replay")
    after = (as_json(tw, "stats"), as_json(tw, "trades"), as_json(tw, "equity"))
    for report in (*before, *after):
        if isinstance(report, dict):
            report.pop("as_of", None)
    assert after == before
    assert before[0]["total_pnl"] == pytest.approx(154.0)


# Old history ----------------------------------------------------------------------------------

TOPICS = (
    "domain.signal:Signal.Recorded",
    "domain.signal:Signal.Traded",
    "domain.signal:Signal.Skipped",
    "domain.trade:Trade.EntryRecorded",
    "domain.trade:Trade.EntryCorrected",
    "domain.trade:Trade.ExitRecorded",
)


def test_old_topics_still_resolve() -> None:
    """Stored topics are ``module:qualname``: no old event class moved or was renamed."""
    for topic in (*TOPICS, "domain.signal:Signal.Generated", "domain.controller:Controller.Paused"):
        assert resolve_topic(topic).__qualname__ == topic.split(":")[1]


def test_history_stored_before_the_door_still_projects_and_replays_the_same(
    tw: Tradewatch,
) -> None:
    """Events the checks of today's door would refuse, stored as the code before it did:
    an entry before its signal, a fee above the notional, a tiny quantity, an exit
    reason with a tab. They were valid then; they must read the same now."""
    cause = Causation.command("entry", str(signal_uuid("old"))).fields()
    tw.ledger.record_signal(SignalDraft("old", "ETHUSDT", LONG, T0 + 2 * H))
    recorded = tw.ledger.signal("old")
    recorded.trigger_event(type(recorded).Traded, at=T0, **cause)
    trade = Trade._create(
        Trade.EntryRecorded,
        id=trade_uuid("old"),
        signal_id="old",
        symbol="ETHUSDT",
        direction="long",
        source="manual",
        price=100.0,
        qty=1e-13,
        fee=1.0,  # far above the notional of 1e-11
        at=T0,  # two hours before its signal
        stop_loss=None,
        take_profit=None,
        forced=False,
        **cause,
    )
    trade.trigger_event(
        Trade.ExitRecorded, price=110.0, fee=0.0, reason="tp\tlate", at=T0 + H, **cause
    )
    tw.ledger.save(recorded, trade)
    assert {f.topic for f in tw.engine.log.read(0, 100)} == set(TOPICS) - {
        "domain.signal:Signal.Skipped",
        "domain.trade:Trade.EntryCorrected",
    }
    row = trade_row(tw, "old")
    # long 1e-13 x 100 -> 110 = +1e-12, 1.0 of fees: -0.999999999999 on 1e-11
    assert row["pnl_quote"] == pytest.approx(1e-12 - 1.0)
    assert (row["outcome"], row["exit_reason"], row["status"]) == ("loss", "tp\tlate", "closed")
    assert tw.unreadable() == []
    before = as_json(tw, "trades")
    invoke(tw, "replay")
    assert as_json(tw, "trades") == before
