"""One "today": the configured zone's calendar day, the same for ``stats --today``,
``today_pnl``, the daily status and the controller's daily-loss rule and cool-down.
Three zones, the days their clocks change included (docs/metrics.md, "Today")."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from domain.days import TradingDay
from domain.signal import SignalDraft
from domain.trade import Fill
from domain.trade_book import TradeBook
from domain.values import Direction
from infrastructure.bootstrap import Tradewatch
from projections.reports import Reports, TradeFilter
from ui.cli import app

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
S = timedelta(seconds=1)
BALANCE = 10_000.0

DAYS = [
    # (zone, local day, its length): Tokyo has no DST; the moment is 1 Dec 01:00 there
    ("Asia/Tokyo", date(2026, 12, 1), timedelta(hours=24)),
    ("America/New_York", date(2026, 3, 8), timedelta(hours=23)),  # clocks spring forward
    ("America/New_York", date(2026, 11, 1), timedelta(hours=25)),  # clocks fall back
    ("Australia/Sydney", date(2026, 4, 5), timedelta(hours=25)),  # southern autumn: back
    ("Australia/Sydney", date(2026, 10, 4), timedelta(hours=23)),  # southern spring: forward
]


def record(tw: Tradewatch, exits: list[tuple[datetime, float]]) -> None:
    """One long trade of 1 unit at 100 per (exit time, P&L), entered a minute before it."""
    for i, (at, pnl) in enumerate(exits):
        sid = f"t{i}"
        tw.ledger.record_signal(SignalDraft(sid, "BTCUSDT", Direction.LONG, at - 60 * S))
        fill = Fill.checked(100.0, 1.0, 0.0, at - 60 * S, "entry")
        tw.ledger.record_entry(sid, fill, force=True)  # entered even under RED
        tw.ledger.record_exit(sid, 100.0 + pnl, 0.0, "manual", at)
    tw.sync()


@SQLITE_ONLY
@pytest.mark.parametrize(("zone", "day", "length"), DAYS, ids=[f"{z}-{d}" for z, d, _ in DAYS])
def test_today_is_the_zones_calendar_day_everywhere(
    tw: Tradewatch, zone: str, day: date, length: timedelta
) -> None:
    start = datetime.combine(day, datetime.min.time(), ZoneInfo(zone)).astimezone(UTC)
    today = TradingDay.on(day, ZoneInfo(zone))
    assert (today.start, today.end - today.start) == (start, length)
    # yesterday's last second (+1), then today's first instant (+2), an hour in (+4), its
    # last second (+8); the P&L is the price move of 1 unit, so it is exact
    end = start + length
    record(tw, [(start - S, 1.0), (start, 2.0), (start + timedelta(hours=1), 4.0), (end - S, 8.0)])
    now = end - S
    reports = Reports(tw.store, starting_balance=BALANCE, timezone=zone, now=now)
    window = reports.performance(TradeFilter(today=True)).figures
    assert (window["total_trades"], window["total_pnl"], window["today_pnl"]) == (3, 14.0, 14.0)
    assert reports.performance().figures["today_pnl"] == 14.0
    assert reports.performance().figures["today_pnl_pct"] == pytest.approx(14.0 / (BALANCE + 1))
    daily = reports.daily_figures(now)
    assert (daily["today_pnl"], daily["yesterday_pnl"]) == (14.0, 1.0)
    book = TradeBook.of(reports.closed_until(tw.engine.log.last_id()), BALANCE, zone=ZoneInfo(zone))
    assert book.measurements(now).today_pnl_fraction == pytest.approx(14.0 / (BALANCE + 1))
    # a second later it is tomorrow: nothing today, and today's trades are yesterday's
    tomorrow = Reports(tw.store, starting_balance=BALANCE, timezone=zone, now=end)
    assert tomorrow.performance(TradeFilter(today=True)).figures["total_trades"] == 0
    assert tomorrow.performance().figures["today_pnl"] == 0.0
    assert tomorrow.daily_figures(end)["yesterday_pnl"] == 14.0
    assert book.measurements(end).today_pnl_fraction == 0.0


@SQLITE_ONLY
def test_stats_today_and_today_pnl_agree_in_tokyo(tw: Tradewatch) -> None:
    """The issue's case: as of 2026-11-30T16:00Z, Tokyo's today began at 15:00Z."""
    record(
        tw,
        [
            (datetime(2026, 11, 30, 14, 30, tzinfo=UTC), 3.0),
            (datetime(2026, 11, 30, 15, 30, tzinfo=UTC), 5.0),
        ],
    )
    env = {
        "TRADEWATCH_HOME": str(tw.settings.home),
        "TRADEWATCH_DATABASE_URL": tw.settings.database,
        "TRADEWATCH_TIMEZONE": "Asia/Tokyo",
    }
    args = ["stats", "--today", "--as-of", "2026-11-30T16:00:00Z", "--json"]
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert (stats["total_trades"], stats["total_pnl"], stats["today_pnl"]) == (1, 5.0, 5.0)


@SQLITE_ONLY
@pytest.mark.parametrize(("zone", "after_the_win"), [("Asia/Tokyo", "green"), ("UTC", "red")])
def test_the_controller_counts_the_zones_day(
    make_tradewatch: Callable[..., Tradewatch], zone: str, after_the_win: str
) -> None:
    """A 5.4 % loss at 23:59 in Tokyo turns the light RED. A small win two minutes later is
    on Tokyo's next day: its daily loss is 0 and the cool-down is over, so GREEN. In UTC
    both exits fall on 30 November: the day's loss is still 5.39 %, and the light stays RED."""
    tw = make_tradewatch(timezone=zone, max_daily_loss=0.04)
    loss_at, win_at = (datetime(2026, 11, 30, 14, 59, tzinfo=UTC) + m * 60 * S for m in (0, 2))
    tw.controller.clock = lambda: loss_at + 30 * S
    tw.ledger.record_signal(SignalDraft("loss", "BTCUSDT", Direction.LONG, loss_at - 60 * S))
    tw.ledger.record_entry("loss", Fill.checked(100.0, 60.0, 0.0, loss_at - 60 * S, "entry"))
    tw.ledger.record_exit("loss", 91.0, 0.0, "stop_loss", loss_at)  # -540 on 10,000
    tw.sync()
    assert status(tw) == "red"
    tw.controller.clock = lambda: win_at + 30 * S
    record(tw, [(win_at, 1.0)])
    assert status(tw) == after_the_win


def status(tw: Tradewatch) -> str:
    """The light, once the controller has read every exit."""
    tw.sync()
    return tw.controller.controller().status.value
