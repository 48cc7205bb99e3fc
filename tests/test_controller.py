"""The controller process through the application: decisions, exactly-once, races, pause/resume.

Every test taking ``make_tradewatch`` runs on SQLite and on a fresh real PostgreSQL database.
The controller's clock is always pinned: the trades happen on 2026-11-10 (UTC).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from domain.controller import CONTROLLER_ID
from domain.errors import DomainError
from domain.signal import SignalDraft, signal_uuid
from domain.trade import Fill, trade_uuid
from domain.values import Direction
from infrastructure.bootstrap import Tradewatch
from projections.facts import Fact

DAY = datetime(2026, 11, 10, tzinfo=UTC)
DAY_END = datetime(2026, 11, 10, 23, 0, tzinfo=UTC)
NEXT_DAY = datetime(2026, 11, 11, 9, 0, tzinfo=UTC)
CHANGED = "Controller.StatusChanged"

# 28 closed trades whose last 20 hold 13 wins and 7 losses, never 5 losses in a row, and never
# below the red win-rate line once the sample is large enough. Exactly 20 trades cannot do it:
# for the next 4 losses to keep 13/20 the 4 oldest of the window must be losses, and then the
# first 10 trades hold at most 6 wins (0.60 < 0.65, RED with a same-day cool-down).
PREFIX = "WWWWWWWW" + "LLLL" + "WWWLWWLWWLWWWWWW"
MakeTradewatch = Callable[..., Tradewatch]


class Trader:
    """Records whole trades (signal, entry at 100, exit at 101 or 99) ten minutes apart."""

    def __init__(self, tw: Tradewatch, start: datetime = DAY) -> None:
        self.tw = tw
        self.at = start
        self.count = 0

    def trade(self, outcome: str, *, at: datetime | None = None) -> str:
        self.count += 1
        signal_id = f"t{self.count:03d}"
        self.at = at or self.at + timedelta(minutes=10)
        self.tw.ledger.record_signal(
            SignalDraft(signal_id, "BTCUSDT", Direction.LONG, self.at - timedelta(minutes=2))
        )
        fill = Fill.checked(100.0, 1.0, 0.0, self.at - timedelta(minutes=1), "entry")
        # forced only matters when the signal was blocked (EntryRecorded.forced stays False else)
        self.tw.ledger.record_entry(signal_id, fill, force=True)
        self.close(signal_id, outcome)
        return signal_id

    def close(self, signal_id: str, outcome: str) -> None:
        price = {"W": 101.0, "L": 99.0}[outcome]
        self.tw.ledger.record_exit(signal_id, price, 0.0, "manual", self.at)


def pin_clock(tw: Tradewatch, moment: list[datetime]) -> Tradewatch:
    tw.controller.clock = lambda: moment[0]
    return tw


def facts(tw: Tradewatch) -> list[Fact]:
    return list(tw.engine.log.read(0, 100_000))


def changes(tw: Tradewatch) -> list[Fact]:
    return [f for f in facts(tw) if f.kind == CHANGED]


def exit_fact(tw: Tradewatch, signal_id: str) -> Fact:
    (found,) = [
        f
        for f in facts(tw)
        if f.kind == "Trade.ExitRecorded" and f.aggregate_id == str(trade_uuid(signal_id))
    ]
    return found


def fired(change: Fact) -> list[str]:
    return [r["text"] for r in change.state["rules"] if r["fired"]]


def five_losses(tw: Tradewatch) -> list[str]:
    trader = Trader(tw)
    return [trader.trade("L") for _ in range(5)]


# 1. The whole story: YELLOW, RED on five losses, blocked signal, cool-down, next day GREEN ----


def test_controller_scenario_yellow_red_blocked_then_green_on_the_next_day(
    make_tradewatch: MakeTradewatch,
    database_url: str,
    run_cli: Callable[..., Any],
) -> None:
    now = [DAY_END]
    tw = pin_clock(make_tradewatch(), now)
    trader = Trader(tw)
    for outcome in PREFIX:
        trader.trade(outcome)
    tw.sync()

    controller = tw.controller.controller()
    assert (controller.status.value, controller.multiplier) == ("yellow", 0.5)
    assert all(c.state["new_status"] != "red" for c in changes(tw))
    yellow = changes(tw)[-1]
    assert yellow.state["new_status"] == "yellow"
    assert fired(yellow) == ["yellow_win_rate: win_rate_last_20 = 0.65 < 0.70"]
    red_line = next(r for r in yellow.state["rules"] if r["severity"] == "red")
    assert (red_line["rule"], red_line["measure"]) == ("red_win_rate", "win_rate_last_20")
    assert red_line["state"] == "ok"  # 0.65 is not below the red line

    if database_url.startswith("sqlite"):
        shown = run_cli("status", "--json", check=True)
        status = json.loads(shown.stdout)
        assert (status["status"], status["multiplier"], status["paused"]) == ("yellow", 0.5, False)
        assert status["fired"] == ["yellow_win_rate: win_rate_last_20 = 0.65 < 0.70"]
        lines = [r["rule"] for r in status["rules"] if r.get("measure") == "win_rate_last_20"]
        assert lines == ["red_win_rate", "yellow_win_rate"]

    losses = [trader.trade("L") for _ in range(4)]
    tw.sync()
    assert tw.controller.controller().status.value == "yellow"

    losses.append(trader.trade("L"))
    tw.sync()
    controller = tw.controller.controller()
    assert (controller.status.value, controller.multiplier) == ("red", 0.0)
    red = changes(tw)[-1]
    assert red.state["new_status"] == "red"
    assert "consecutive_losses = 5 >= 5" in fired(red)
    fifth = exit_fact(tw, losses[-1])
    assert red.state["caused_by"] == [fifth.id]
    assert red.state["cause_event_ids"] == [fifth.event_id]
    assert red.state["causation_id"] == fifth.event_id
    assert red.state["correlation_id"] == str(signal_uuid(losses[-1]))
    assert red.state["correlation_id"] == fifth.state["correlation_id"]

    if database_url.startswith("sqlite"):
        status = json.loads(run_cli("status", "--json", check=True).stdout)
        assert (status["status"], status["multiplier"]) == ("red", 0.0)
        assert "consecutive_losses = 5 >= 5" in status["fired"]

    # A signal recorded under RED is blocked and sized to zero.
    tw.ledger.record_signal(
        SignalDraft("blocked", "BTCUSDT", Direction.LONG, trader.at, position_size=2.0)
    )
    tw.sync()
    with tw.store.reading() as cur:
        cur.execute(
            "SELECT blocked, size_multiplier, controller_status, controller_decision_id "
            "FROM signals WHERE signal_id = ?",
            ("blocked",),
        )
        assert tuple(cur.fetchone()) == (1, 0.0, "red", red.event_id)
    (recorded,) = [f for f in facts(tw) if f.aggregate_id == str(signal_uuid("blocked"))]
    assert recorded.state["sized_position"] == 0.0
    fill = Fill.checked(100.0, 1.0, 0.0, trader.at + timedelta(minutes=1), "entry")
    with pytest.raises(DomainError, match="blocked"):
        tw.ledger.record_entry("blocked", fill)
    tw.ledger.record_entry("blocked", fill, force=True)
    entry = [f for f in facts(tw) if f.aggregate_id == str(trade_uuid("blocked"))]
    assert [(f.kind, f.state["forced"]) for f in entry] == [("Trade.EntryRecorded", True)]

    # Six wins the same day bring the numbers back to GREEN (14/20 = 0.70, no losing run),
    # but the cool-down holds RED through the UTC day.
    trader.at += timedelta(minutes=10)
    trader.close("blocked", "W")
    for _ in range(5):
        trader.trade("W")
    tw.sync()
    assert tw.controller.controller().status.value == "red"
    assert changes(tw)[-1].id == red.id

    # The next UTC day: the day boundary lets the numbers decide, GREEN at full size.
    now[0] = NEXT_DAY
    tw.sync()
    controller = tw.controller.controller()
    assert (controller.status.value, controller.multiplier) == ("green", 1.0)
    green = changes(tw)[-1]
    assert (green.state["old_status"], green.state["new_status"]) == ("red", "green")
    assert green.state["caused_by"] == []
    assert green.state["cause_event_ids"] == ["clock:2026-11-11"]
    assert fired(green) == []
    # With RED already lifted by the new day, a resume has nothing left to lift.
    with pytest.raises(DomainError, match="nothing to resume"):
        tw.controller.resume("alice", "new day")


def test_a_resume_lifts_the_same_day_cool_down_and_the_numbers_decide(
    make_tradewatch: MakeTradewatch,
) -> None:
    now = [DAY_END]
    tw = pin_clock(make_tradewatch(), now)
    trader = Trader(tw)
    for _ in range(5):
        trader.trade("L")
    trader.trade("W")  # the losing run is broken; 6 trades are below the minimum sample
    tw.sync()
    assert tw.controller.controller().status.value == "red"  # held by the cool-down

    controller = tw.controller.resume("alice", "reviewed the losses")
    assert (controller.status.value, controller.multiplier) == ("green", 1.0)
    kinds = [f.kind for f in facts(tw) if f.aggregate_id == str(CONTROLLER_ID)]
    assert kinds[-2:] == ["Controller.Resumed", CHANGED]
    resumed = [f for f in facts(tw) if f.kind == "Controller.Resumed"][-1]
    assert (resumed.state["by"], resumed.state["reason"]) == ("alice", "reviewed the losses")
    assert changes(tw)[-1].state["new_status"] == "green"


# 2. Exactly once across a crash between deciding and recording ------------------------------


def test_a_crash_between_deciding_and_recording_records_the_decision_once(
    make_tradewatch: MakeTradewatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [DAY_END]
    tw = pin_clock(make_tradewatch(), now)
    losses = five_losses(tw)
    tw.engine.catch_up()

    decided: list[Any] = []

    def crash(*args: Any, **kwargs: Any) -> None:
        decided.append(args)
        raise RuntimeError("power cut")

    monkeypatch.setattr(tw.ledger.events, "put", crash)
    with pytest.raises(RuntimeError, match="power cut"):
        tw.controller.run_once()
    assert decided, "the decision was made before the crash"
    monkeypatch.undo()
    assert changes(tw) == []
    assert tw.controller.position() == 0

    fresh = pin_clock(make_tradewatch(), now)
    assert fresh.controller.run_once() == 1
    (change,) = changes(fresh)
    assert change.state["caused_by"] == [exit_fact(fresh, losses[-1]).id]
    assert fresh.controller.position() == fresh.engine.log.last_id()
    assert fresh.controller.run_once() == 0
    assert len(changes(fresh)) == 1


def test_a_running_controller_keeps_its_book_and_rebuilds_it_after_a_failed_pass(
    tw: Tradewatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    pin_clock(tw, [DAY_END])
    reads: list[int] = []
    source = tw.controller.books.trades

    class Counting:
        def closed_until(self, notification_id: int) -> Any:
            reads.append(notification_id)
            return source.closed_until(notification_id)

    monkeypatch.setattr(tw.controller.books, "trades", Counting())
    trader = Trader(tw)
    trader.trade("W")
    tw.engine.catch_up()
    tw.controller.run_once()
    assert len(reads) == 1, "the first pass reads the closed trades"
    for _ in range(3):
        trader.trade("L")
        tw.engine.catch_up()
        tw.controller.run_once()
    assert len(reads) == 1, "later passes carry on with the same book"

    trader.trade("L")
    trader.trade("L")  # the fifth loss in a row: a RED decision that fails to save
    tw.engine.catch_up()

    def lost(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    with monkeypatch.context() as broken:
        broken.setattr(tw.ledger.events, "put", lost)
        with pytest.raises(OSError, match="disk full"):
            tw.controller.run_once()
    assert tw.controller.run_once() == 1
    assert len(reads) == 2, "a failed pass leaves no book to carry on with"
    (red,) = [c for c in changes(tw) if c.state["new_status"] == "red"]
    assert "consecutive_losses = 5 >= 5" in " ".join(fired(red))


# 3. Two controller processes racing on the same exits ------------------------------------------


def test_two_controllers_racing_record_one_change_per_change(
    make_tradewatch: MakeTradewatch,
) -> None:
    now = [DAY_END]
    first, second = (pin_clock(make_tradewatch(), now) for _ in range(2))
    trader = Trader(first)
    for _ in range(5):
        trader.trade("L")

    def race() -> list[int]:
        first.engine.catch_up()
        barrier = threading.Barrier(2)
        results: list[int] = []
        errors: list[BaseException] = []

        def run(tw: Tradewatch) -> None:
            barrier.wait()
            try:
                results.append(tw.controller.run_once())
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=run, args=(tw,)) for tw in (first, second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert errors == []
        return results

    counts = race()
    assert [c.state["new_status"] for c in changes(first)] == ["red"], counts
    assert sorted(counts) == [0, 1]  # exactly one of the two recorded it

    # A win on the next day: the cool-down is over and six trades are too few for a win rate.
    trader.trade("W", at=NEXT_DAY)
    counts = race()
    assert [c.state["new_status"] for c in changes(first)] == ["red", "green"], counts
    assert sorted(counts) == [0, 1]  # exactly one of the two recorded it
    for tw in (first, second):
        assert tw.controller.controller().status.value == "green"


# 4. Pause and resume through the command line ---------------------------------------------------


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_pause_and_resume_through_the_cli(run_cli: Callable[..., Any]) -> None:
    paused = run_cli("controller", "pause", "--reason", "tilt", "--by", "alice", "--json")
    assert paused.returncode == 0, paused.stderr
    data = json.loads(paused.stdout)
    assert (data["status"], data["multiplier"], data["paused"]) == ("red", 0.0, True)
    status = json.loads(run_cli("status", "--json", check=True).stdout)
    assert (status["status"], status["paused"]) == ("red", True)
    assert status["pause"] == {"by": "alice", "reason": "tilt"}

    again = run_cli("controller", "pause", "--reason", "more tilt")
    assert again.returncode == 2
    assert len(again.stderr.strip().splitlines()) == 1
    assert "already paused by alice" in again.stderr

    resumed = run_cli("controller", "resume", "--reason", "ok", "--by", "bob", "--json")
    assert resumed.returncode == 0, resumed.stderr
    data = json.loads(resumed.stdout)
    assert (data["status"], data["multiplier"], data["paused"]) == ("green", 1.0, False)

    trail = json.loads(run_cli("audit", "--controller", "--json", check=True).stdout)
    manual = [(s["kind"], s["data"]["by"], s["data"]["reason"]) for s in trail if "by" in s["data"]]
    assert manual == [("Controller.Paused", "alice", "tilt"), ("Controller.Resumed", "bob", "ok")]
    assert trail[-1]["kind"] == CHANGED
    assert trail[-1]["data"]["new_status"] == "green"


KILLED_MID_DECISION = """
import os, signal, sys
from datetime import UTC, datetime
from infrastructure.bootstrap import bootstrap
from infrastructure.settings import Settings

tw = bootstrap(Settings(home=sys.argv[1], database_url=sys.argv[2]))
tw.controller.clock = lambda: datetime(2026, 11, 10, 23, tzinfo=UTC)
tw.engine.catch_up()
tw.ledger.events.put = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
tw.controller.run_once()
"""


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_process_killed_while_deciding_leaves_the_decision_to_the_next_run(
    make_tradewatch: MakeTradewatch, database_url: str, tmp_path: Any
) -> None:
    now = [DAY_END]
    tw = pin_clock(make_tradewatch(), now)
    losses = five_losses(tw)
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_MID_DECISION, str(tmp_path), database_url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert changes(tw) == []

    assert tw.controller.run_once() == 1
    (change,) = changes(tw)
    assert change.state["caused_by"] == [exit_fact(tw, losses[-1]).id]
    assert tw.controller.run_once() == 0
    assert len(changes(tw)) == 1
