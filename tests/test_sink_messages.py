"""The six alert formats as people receive them (``infrastructure/sinks/messages.py``):
the V4 plan's layout, Telegram HTML that the (strict) fake Bot API parser accepts, trader
text escaped, Telegram's 4,096-character limit, and the e-mail renderings."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from infrastructure.alert_message import AlertMessage
from infrastructure.sinks import messages
from tests.fakes.telegram import parse_html, units

AT = datetime(2026, 11, 10, 7, 30, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")
SEVERITY = {
    "signal": "info",
    "warning": "warning",
    "critical": "critical",
    "daily_status": "info",
    "weekly_report": "info",
    "predictive_warning": "warning",
}


def alert(
    type_: str, data: dict[str, Any], title: str = "t", text: str = "", **kw: Any
) -> AlertMessage:
    return AlertMessage.model_validate(
        {
            "id": f"{uuid.uuid4()}:1",
            "type": type_,
            "severity": SEVERITY[type_],
            "time": AT,
            "title": title,
            "text": text,
            "data": data,
            "correlation_id": "c1",
            "causes": ["e1"],
            **kw,
        }
    )


def telegram(message: AlertMessage) -> list[str]:
    """The visible text of each Telegram part (each parsed as Telegram would)."""
    parts = messages.telegram_parts(messages.layout(message, BERLIN))
    visible = [parse_html(p) for p in parts]
    assert all(units(v) <= messages.TELEGRAM_LIMIT for v in visible)
    return visible


DAILY = {
    "status": "green",
    "win_rate_last_20": 0.72,
    "today_pnl": 12.5,
    "yesterday_pnl": -3.0,
    "signals_ready": 2,
    "open_positions": 1,
}


def test_daily_status_is_the_plans_format() -> None:
    message = alert("daily_status", DAILY, title="Daily status 2026-11-10: GREEN")
    parts = messages.telegram_parts(messages.layout(message, BERLIN))
    assert parts[0].startswith("🌅 <b>Daily Status</b>\n")
    (text,) = telegram(message)
    assert text.splitlines() == [
        "🌅 Daily Status",
        "Date: Tue 10 Nov 2026",
        "Status: 🟢 GREEN",
        "Win Rate (last 20): 72.0%",
        "Today's P&L: +$12.50",
        "Yesterday's P&L: -$3.00",
        "Signals Ready: 2",
        "Open Positions: 1",
    ]


def test_a_signal_carries_its_copy_paste_block_preformatted() -> None:
    block = "BTCUSDT LONG\nEntry: 50000 - 50100\nSL: 49000\nTP: 52000\nSize: 0.05"
    data = {
        "signal_id": "s1",
        "symbol": "BTCUSDT",
        "direction": "long",
        "confidence": 0.81,
        "controller_status": "yellow",
        "size_multiplier": 0.5,
        "timeframe": "15m",
        "model_version": "tw-1de2bb2ee1e5",
    }
    message = alert("signal", data, text=block)
    (part,) = messages.telegram_parts(messages.layout(message, BERLIN))
    assert f"<pre>{block}</pre>" in part
    (text,) = telegram(message)
    lines = text.splitlines()
    assert lines[:2] == ["📈 Signal: BTCUSDT LONG", "Confidence: 81.0%"]
    assert lines[2:7] == block.splitlines()
    assert "Status: 🟡 YELLOW (size x0.5)" in lines
    assert "Timeframe: 15m" in lines and "Model: tw-1de2bb2ee1e5" in lines
    assert "Time: 2026-11-10 08:30 CET" in lines
    short = alert("signal", {**data, "direction": "short"}, text=block)
    assert telegram(short)[0].startswith("📉 Signal: BTCUSDT SHORT")


@pytest.mark.parametrize(
    ("type_", "new", "old", "multiplier", "head"),
    [
        ("warning", "yellow", "green", 0.5, "🟡 YELLOW - Reduce Risk"),
        ("critical", "red", "yellow", 0.0, "🔴 RED - Stop Trading"),
    ],
)
def test_warnings_and_critical_name_the_light_and_the_rules(
    type_: str, new: str, old: str, multiplier: float, head: str
) -> None:
    data = {"old_status": old, "new_status": new, "multiplier": multiplier, "rules": []}
    rules = "win_rate_last_20 = 0.60 < 0.65\nconsecutive_losses = 5 >= 5"
    (text,) = telegram(alert(type_, data, text=rules))
    assert text.splitlines()[:6] == [
        head,
        f"Size: x{multiplier:g}",
        f"Was: {messages.light(old)}",
        "Rules:",
        "• win_rate_last_20 = 0.60 < 0.65",
        "• consecutive_losses = 5 >= 5",
    ]


def test_the_weekly_report() -> None:
    data = {
        "status": "red",
        "trades": 12,
        "win_rate": 2 / 3,
        "pnl": 1234.5,
        "profit_factor": float("inf"),
        "max_drawdown": 0.032,
        "best_theory": "momentum",
        "worst_theory": None,
        "calibration_ece": 0.0412,
    }
    (text,) = telegram(alert("weekly_report", data))
    assert text.splitlines() == [
        "📊 Weekly Report",
        "Week: the 7 days to 2026-11-10",
        "Trades: 12",
        "Win Rate: 66.7%",
        "P&L: +$1,234.50",
        "Profit Factor: ∞",
        "Max Drawdown: 3.2%",
        "Best Theory: momentum",
        "Worst Theory: n/a",
        "Calibration ECE: 0.041",
        "Status: 🔴 RED",
    ]


def test_a_predictive_warning_says_what_is_about_to_happen() -> None:
    message = alert(
        "predictive_warning",
        {"rule": "win_rate_last_20", "probability": 0.676},
        title="68% chance the win rate falls below 0.65 within 5 trades",
        text="P(win_rate_last_20 < 0.65 within 5 trades) = 0.676",
    )
    (text,) = telegram(message)
    assert text.splitlines()[:3] == [
        "⚠️ Predictive Warning",
        "68% chance the win rate falls below 0.65 within 5 trades",
        "P(win_rate_last_20 < 0.65 within 5 trades) = 0.676",
    ]


def test_trader_text_is_escaped_never_markup() -> None:
    evil = "<script>alert('x')</script> & <b>bold</b> &amp;"
    message = alert(
        "warning",
        {"old_status": "green", "new_status": "yellow", "multiplier": 0.5},
        title=evil,
        text=evil,
    )
    (part,) = messages.telegram_parts(messages.layout(message, BERLIN))
    assert "<script>" not in part and "&lt;script&gt;" in part
    (text,) = telegram(message)
    assert f"• {evil}" in text.splitlines()
    html = messages.email_html(messages.layout(message, BERLIN))
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_an_alert_whose_data_does_not_fit_its_format_shows_its_title_and_text() -> None:
    message = alert(
        "daily_status", {}, title="Daily status: <GREEN>", text="a: 1\nb: 2", truncated=True
    )
    (text,) = telegram(message)
    assert text.splitlines() == [
        "🌅 Daily status: <GREEN>",
        "a: 1",
        "b: 2",
        "Time: 2026-11-10 08:30 CET",
        messages.TRUNCATED,
    ]


def test_a_long_alert_is_split_into_parts_within_telegrams_limit() -> None:
    lines = [f"{i:04d} <&> " + "x" * 39 for i in range(81)]  # 3,968 characters
    title = "a long title " + "y" * 150  # with it, over 4,096
    message = alert("predictive_warning", {}, title=title, text="\n".join(lines))
    visible = telegram(message)
    assert len(visible) == 2
    assert visible[0].startswith("⚠️ Predictive Warning (1/2)\n")
    assert visible[1].startswith("⚠️ Predictive Warning (2/2)\n")
    body = [line for part in visible for line in part.splitlines()[1:]]
    assert [line for line in body if line.startswith("0")] == lines


def test_one_line_longer_than_a_message_is_cut_and_nothing_is_lost() -> None:
    line = "🚀" * 3000 + "<>" * 10  # 3,020 characters but 6,020 UTF-16 units
    message = alert("signal", {}, title="s", text=line)
    visible = telegram(message)
    assert len(visible) == 2
    body = "".join(part.split("\n", 1)[1].split("\nTime:")[0] for part in visible)
    assert body == line


def test_email_renderings_carry_the_same_fields() -> None:
    laid = messages.layout(alert("daily_status", DAILY), BERLIN)
    text = messages.plain_text(laid)
    assert text.startswith("🌅 Daily Status\n\nDate: Tue 10 Nov 2026\nStatus: 🟢 GREEN\n")
    html = messages.email_html(laid)
    assert "<b>Daily Status</b>" in html and "Today&#x27;s" not in html
    assert "Today's P&amp;L: +$12.50" in html
    assert laid.subject == "🌅 Daily Status"
