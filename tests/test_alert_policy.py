"""The alert policy through the application: each type, schedules, modes, exactly once.

Every test runs on SQLite and on a fresh real PostgreSQL database. Clocks are pinned: trades
happen on Tuesday 2026-11-10 (UTC), the controller's clock stands at the end of that day, and
the policy's clock at Monday 2026-11-09 07:00 UTC (no report due) unless a test moves it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from domain.signal import SignalDraft, copy_block, signal_uuid
from domain.trade import Fill
from domain.values import Direction
from infrastructure.bootstrap import Tradewatch
from projections.facts import Fact
from tests.conftest import POSTGRES_ONLY

MakeTradewatch = Callable[..., Tradewatch]
DAY = datetime(2026, 11, 10, tzinfo=UTC)
DAY_END = datetime(2026, 11, 10, 23, 0, tzinfo=UTC)
QUIET = datetime(2026, 11, 9, 7, 0, tzinfo=UTC)
"""Monday before 08:00 UTC: neither the daily status nor the weekly report is due."""


class Clock:
    """A clock a test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def pinned(tw: Tradewatch, policy: datetime = QUIET) -> Clock:
    """Pin the controller's clock to the trading day's end and return the policy's clock."""
    tw.controller.clock = Clock(DAY_END)
    clock = Clock(policy)
    tw.alerts.clock = clock
    return clock


class Trader:
    """Records whole trades (signal, entry at 100, exit at 101 or 99) ten minutes apart."""

    def __init__(self, tw: Tradewatch, start: datetime = DAY) -> None:
        self.tw = tw
        self.at = start
        self.count = 0

    def trade(self, outcome: str, qty: float = 1.0) -> str:
        self.count += 1
        signal_id = f"t{self.count:03d}"
        self.at += timedelta(minutes=10)
        self.tw.ledger.record_signal(
            SignalDraft(signal_id, "BTCUSDT", Direction.LONG, self.at - timedelta(minutes=2))
        )
        fill = Fill.checked(100.0, qty, 0.0, self.at - timedelta(minutes=1), "entry")
        self.tw.ledger.record_entry(signal_id, fill, force=True)
        price = {"W": 101.0, "L": 99.0}[outcome]
        self.tw.ledger.record_exit(signal_id, price, 0.0, "manual", self.at)
        return signal_id

    def trades(self, outcomes: str) -> None:
        for outcome in outcomes:
            self.trade(outcome)


def facts(tw: Tradewatch) -> list[Fact]:
    return list(tw.engine.log.read(0, 1_000_000))


def alerts(tw: Tradewatch, type_: str | None = None) -> list[Fact]:
    return [
        f
        for f in facts(tw)
        if f.kind == "Alert.Raised" and (type_ is None or f.state["type"] == type_)
    ]


def predictive(tw: Tradewatch, rule: str) -> list[Fact]:
    return [a for a in alerts(tw, "predictive_warning") if a.state["data"]["rule"] == rule]


def alert_keys(tw: Tradewatch) -> list[str]:
    return [a.state["key"] for a in alerts(tw)]


# Signals ------------------------------------------------------------------------------


def test_a_signal_raises_one_alert_with_the_copy_paste_block(tw: Tradewatch) -> None:
    pinned(tw)
    draft = SignalDraft(
        "v7-42",
        "ethusdt",
        Direction.SHORT,
        DAY,
        source="v7",
        confidence=0.81,
        entry_low=3000.0,
        entry_high=3010.0,
        stop_loss=3100.0,
        take_profit=2800.0,
        position_size=2.0,
    )
    tw.ledger.record_signal(draft)
    tw.sync()
    tw.sync()

    (alert,) = alerts(tw)
    (signal,) = [f for f in facts(tw) if f.kind == "Signal.Recorded"]
    s = alert.state
    assert (s["type"], s["severity"], s["publish"]) == ("signal", "info", True)
    assert s["title"] == "ETHUSDT SHORT signal v7-42, confidence 0.81"
    assert s["text"] == copy_block(signal.state)
    assert s["text"] == "ETHUSDT SHORT\nEntry: 3000 - 3010\nSL: 3100\nTP: 2800\nSize: 2"
    assert s["data"]["signal_id"] == "v7-42"
    assert s["data"]["controller_status"] == "green"
    assert s["causes"] == [signal.event_id]
    assert s["caused_by"] == [signal.id]
    assert s["correlation_id"] == str(signal_uuid("v7-42"))


def test_a_blocked_signal_raises_no_signal_alert(tw: Tradewatch) -> None:
    pinned(tw)
    tw.ledger.record_signal(SignalDraft("before", "BTCUSDT", Direction.LONG, DAY))
    tw.controller.pause("tester", "news event")
    tw.ledger.record_signal(SignalDraft("during", "BTCUSDT", Direction.LONG, DAY))
    tw.sync()

    recorded = {f.state["signal_id"]: f.state for f in facts(tw) if f.kind == "Signal.Recorded"}
    assert recorded["during"]["blocked"] is True
    assert [a.state["data"]["signal_id"] for a in alerts(tw, "signal")] == ["before"]


# Controller decisions -------------------------------------------------------------------


def test_yellow_raises_a_warning_and_red_a_critical_with_the_rules(tw: Tradewatch) -> None:
    pinned(tw)
    trader = Trader(tw)
    trader.trades("WWWWWWWWLLLLWWWLWWLWWLWWWWWW")  # ends YELLOW, never RED
    trader.trades("LLLLL")  # five in a row: RED
    tw.sync()

    changes = {f.event_id: f for f in facts(tw) if f.kind == "Controller.StatusChanged"}
    statuses = [c.state["new_status"] for c in changes.values()]
    assert "yellow" in statuses
    assert statuses[-1] == "red"
    decided = [a for a in alerts(tw) if a.state["type"] in ("warning", "critical")]
    assert len(decided) == len([s for s in statuses if s != "green"])
    for alert in decided:
        s = alert.state
        change = changes[s["causes"][0]]
        fired = [r["text"] for r in change.state["rules"] if r.get("fired")]
        if change.state["new_status"] == "yellow":
            assert (s["type"], s["severity"]) == ("warning", "warning")
            assert s["title"] == "YELLOW: trade at x0.5 size"
        else:
            assert (s["type"], s["severity"]) == ("critical", "critical")
            assert s["title"] == "RED: stop trading"
        assert s["text"] == "\n".join(fired)
        assert s["data"]["rules"] == change.state["rules"]
        assert s["caused_by"][0] == change.id
    red = decided[-1].state
    assert red["type"] == "critical"
    assert "consecutive_losses = 5 >= 5" in red["text"].splitlines()


# Predictive warnings -------------------------------------------------------------------


def test_three_losses_in_a_row_warn_once_before_the_limit_of_five(tw: Tradewatch) -> None:
    pinned(tw)
    trader = Trader(tw)
    trader.trades("WWLL")
    tw.sync()
    assert predictive(tw, "consecutive_losses") == []

    trader.trades("L")
    tw.sync()
    (warning,) = predictive(tw, "consecutive_losses")
    assert warning.state["severity"] == "warning"
    assert warning.state["data"] == {"rule": "consecutive_losses", "value": 3, "threshold": 5}
    assert warning.state["title"] == "3 losses in a row: RED at 5"

    trader.trades("L")  # four in a row: no second warning
    tw.sync()
    assert len(predictive(tw, "consecutive_losses")) == 1


def test_todays_loss_past_three_quarters_of_the_limit_warns_once_a_day(tw: Tradewatch) -> None:
    pinned(tw)
    trader = Trader(tw)
    trader.trade("L", qty=160)  # -160 of 10,000: 1.6 %
    tw.sync()
    assert predictive(tw, "today_loss_pct") == []

    trader.trade("L", qty=160)  # 3.2 %: past 75 % of 4 %, not over it
    trader.trade("L", qty=10)  # 3.3 %: still in the band, the same day
    tw.sync()
    (warning,) = predictive(tw, "today_loss_pct")
    assert warning.state["key"] == "predictive:daily_loss:2026-11-10"
    assert 0.03 < warning.state["data"]["value"] <= 0.04
    assert warning.state["data"]["threshold"] == 0.04

    next_day = Trader(tw, start=DAY + timedelta(days=1))
    next_day.count = trader.count
    next_day.trade("W")
    next_day.trade("L", qty=160)
    next_day.trade("L", qty=160)
    tw.sync()
    assert [w.state["key"] for w in predictive(tw, "today_loss_pct")] == [
        "predictive:daily_loss:2026-11-10",
        "predictive:daily_loss:2026-11-11",
    ]


def test_the_beta_binomial_warning_fires_on_the_transition_past_one_half(tw: Tradewatch) -> None:
    pinned(tw)
    trader = Trader(tw)
    trader.trades("WLWWWWLWWLW")  # P(RED within 5) stays below 0.5
    tw.sync()
    assert predictive(tw, "win_rate_last_20") == []

    trader.trade("L")  # 8 wins in 12: P(RED within 5) = 0.676
    tw.sync()
    (warning,) = predictive(tw, "win_rate_last_20")
    data = warning.state["data"]
    assert data["probability"] == pytest.approx(0.676, abs=5e-4)
    assert data["win_rate_last_20"] == pytest.approx(8 / 12)
    assert data["threshold"] == 0.65
    assert warning.state["title"] == "68% chance the win rate falls below 0.65 within 5 trades"

    trader.trade("W")  # still above one half after a win: no new transition, no new warning
    tw.sync()
    assert len(predictive(tw, "win_rate_last_20")) == 1


# Schedules ----------------------------------------------------------------------------


def test_the_daily_status_is_raised_at_0800_in_the_configured_zone_once_a_day(
    make_tradewatch: MakeTradewatch,
) -> None:
    tw = make_tradewatch(timezone="Europe/Berlin")  # UTC+1 in November
    clock = pinned(tw, datetime(2026, 11, 10, 6, 59, 59, tzinfo=UTC))  # 07:59:59 in Berlin
    tw.sync()
    assert alerts(tw, "daily_status") == []

    clock.now = datetime(2026, 11, 10, 7, 0, tzinfo=UTC)  # 08:00 in Berlin
    for _ in range(3):
        tw.sync()
    clock.now = datetime(2026, 11, 10, 22, 59, tzinfo=UTC)  # 23:59 in Berlin, the same day
    tw.sync()
    (daily,) = alerts(tw, "daily_status")
    s = daily.state
    assert s["key"] == "daily_status:2026-11-10"
    assert (s["severity"], s["publish"]) == ("info", True)
    assert s["title"] == "Daily status 2026-11-10: GREEN"
    assert {"status", "win_rate_last_20", "today_pnl", "yesterday_pnl", "signals_ready"} <= set(
        s["data"]
    )
    assert daily.business_time == datetime(2026, 11, 10, 7, 0, tzinfo=UTC)

    clock.now = datetime(2026, 11, 10, 23, 0, tzinfo=UTC)  # midnight in Berlin: not yet due
    tw.sync()
    clock.now = datetime(2026, 11, 11, 7, 0, tzinfo=UTC)
    tw.sync()
    assert [a.state["key"] for a in alerts(tw, "daily_status")] == [
        "daily_status:2026-11-10",
        "daily_status:2026-11-11",
    ]


def test_the_weekly_report_is_raised_on_monday_at_0800_once_a_week(
    make_tradewatch: MakeTradewatch,
) -> None:
    tw = make_tradewatch(timezone="Europe/Berlin")
    clock = pinned(tw, datetime(2026, 11, 9, 6, 59, tzinfo=UTC))  # Monday 07:59 in Berlin
    tw.sync()
    assert alerts(tw, "weekly_report") == []

    for moment in (
        datetime(2026, 11, 9, 7, 0, tzinfo=UTC),  # Monday 08:00 in Berlin
        datetime(2026, 11, 10, 12, 0, tzinfo=UTC),
        datetime(2026, 11, 15, 22, 59, tzinfo=UTC),  # Sunday 23:59 in Berlin
    ):
        clock.now = moment
        tw.sync()
    (weekly,) = alerts(tw, "weekly_report")
    assert weekly.state["key"] == "weekly_report:2026-W46"
    assert weekly.state["title"] == "Weekly report: the 7 days to 2026-11-09"
    assert {"trades", "win_rate", "pnl", "profit_factor", "status"} <= set(weekly.state["data"])

    clock.now = datetime(2026, 11, 16, 7, 0, tzinfo=UTC)  # the next Monday, 08:00 in Berlin
    tw.sync()
    assert [a.state["key"] for a in alerts(tw, "weekly_report")] == [
        "weekly_report:2026-W46",
        "weekly_report:2026-W47",
    ]


# Modes ---------------------------------------------------------------------------------


def test_mode_off_raises_nothing_and_silent_records_without_publishing(
    make_tradewatch: MakeTradewatch,
) -> None:
    due = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
    off = make_tradewatch(
        alerts_signal="off", alerts_daily_status="off", alerts_weekly_report="off"
    )
    pinned(off, due)
    off.ledger.record_signal(SignalDraft("quiet", "BTCUSDT", Direction.LONG, DAY))
    off.sync()
    assert alerts(off) == []

    silent = make_tradewatch(alerts_signal="silent", alerts_daily_status="silent")
    pinned(silent, due)
    silent.ledger.record_signal(SignalDraft("hushed", "BTCUSDT", Direction.LONG, DAY))
    silent.sync()
    published = {a.state["type"]: a.state["publish"] for a in alerts(silent)}
    assert published == {"signal": False, "daily_status": False, "weekly_report": True}
    (signal,) = alerts(silent, "signal")
    assert signal.state["data"]["signal_id"] == "hushed"


# Exactly once ---------------------------------------------------------------------------


def test_each_alert_is_raised_once_however_often_and_by_however_many_policies(
    make_tradewatch: MakeTradewatch,
) -> None:
    due = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
    writer = make_tradewatch(min_sample=4)
    pinned(writer, due)
    Trader(writer).trades("WWWWWWLLLLL")  # signals, predictive, YELLOW, RED

    policies = [make_tradewatch(min_sample=4) for _ in range(2)]
    for tw in policies:
        pinned(tw, due)
    assert race(policies, rounds=3) == []
    writer.sync()
    assert writer.alerts.run_once() == 0
    writer.sync()

    keys = alert_keys(writer)
    assert len(keys) == len(set(keys))
    types = [a.state["type"] for a in alerts(writer)]
    expected: dict[str, Any] = {
        "signal": 11,
        "daily_status": 1,
        "weekly_report": 1,
        "warning": 1,
        "critical": 1,
    }
    assert {t: types.count(t) for t in expected} == expected
    assert types.count("predictive_warning") >= 1
    assert all(tw.alerts.position() == tw.engine.log.last_id() for tw in policies)


@POSTGRES_ONLY
def test_a_policy_that_loses_races_to_another_does_not_fail(
    make_tradewatch: MakeTradewatch,
) -> None:
    writer = make_tradewatch()
    pinned(writer)
    for i in range(60):
        writer.ledger.record_signal(SignalDraft(f"s{i}", "BTCUSDT", Direction.LONG, DAY))
    policies = [make_tradewatch() for _ in range(2)]
    for tw in policies:
        pinned(tw)
    assert race(policies, rounds=1) == []


def race(instances: list[Tradewatch], rounds: int) -> list[BaseException]:
    """Run ``sync()`` on every instance at once, ``rounds`` times; returns what was raised."""
    barrier = threading.Barrier(len(instances))
    errors: list[BaseException] = []

    def run(tw: Tradewatch) -> None:
        barrier.wait()
        for _ in range(rounds):
            try:
                tw.sync()
            except Exception as e:
                errors.append(e)

    threads = [threading.Thread(target=run, args=(tw,)) for tw in instances]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return errors
