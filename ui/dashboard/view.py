"""One browser session of the dashboard: its layout, and keeping it live.

The first screen (traffic light, numbers, today's signals, alerts, equity) is in the page;
the sections below it follow once the page is up, so that it shows sooner. Twice a second
the session compares the hub's read-model position with its page's and fetches a new page
when they differ (or a minute has passed); pages are built on the hub's database thread, so
a slow build never freezes the page. Numbers shown carry their exact value in a
``data-value`` attribute (JSON), for tests and scripts."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd  # type: ignore[import-untyped]
import panel as pn
from panel.io import hold

from domain.errors import DomainError
from projections.reports import TradeFilter, parse_time
from ui.cli import age, audit_data, describe_step, fmt
from ui.dashboard.charts import (
    EquityChart,
    PnlChart,
    ReliabilityChart,
    RollingWinRateChart,
    TheoryCharts,
    TimelineChart,
)
from ui.dashboard.data import (
    ALERT_KINDS,
    ALERTS_SHOWN,
    FULL_REFRESH_SECONDS,
    WINDOWS,
    Hub,
    Page,
)

TICK_MS = 1000
DETAILS_DELAY_MS = 400
STATIC_ROUTE = "tw-static"
"""Where the server serves :data:`CSS` and :data:`TABLE_CSS` (one download, not one per pane)."""
STYLESHEET = f"./{STATIC_ROUTE}/dashboard.css"
TABLE_STYLESHEET = f"./{STATIC_ROUTE}/tables.css"
DECISIONS_SHOWN = 60
SIGNALS_SHOWN = 12
"""Today's signals drawn as cards at first (newest first); a button draws the rest."""
STEP_CHARS = 400
ALL_SYMBOLS, BOTH_DIRECTIONS = "All symbols", "Both directions"

CSS = """
:host { width: 100%; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
.tw-banner { display: flex; flex-wrap: wrap; align-items: center; gap: 8px 24px;
  padding: 14px 22px; border-radius: 12px; color: #fff; }
.tw-banner.green { background: linear-gradient(90deg, #15803d, #16a34a); }
.tw-banner.yellow { background: linear-gradient(90deg, #facc15, #fde047); color: #1f2937; }
.tw-banner.red { background: linear-gradient(90deg, #991b1b, #dc2626); }
.tw-light { font-size: 2.1rem; font-weight: 800; letter-spacing: .06em; }
.tw-meta { font-size: 1.05rem; opacity: .95; }
.tw-meta b { font-size: 1.25rem; }
.tw-rules { flex-basis: 100%; display: flex; flex-wrap: wrap; gap: 6px; }
.tw-rule { background: rgba(255,255,255,.18); border: 1px solid rgba(255,255,255,.35);
  border-radius: 999px; padding: 2px 12px; font-size: .9rem; }
.yellow .tw-rule { background: rgba(0,0,0,.06); border-color: rgba(0,0,0,.2); }
.tw-rule.ok { opacity: .75; font-size: .8rem; }
.tw-cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(230px, 1fr));
  gap: 12px; }
.tw-card { background: #fff; border: 1px solid #e5e7eb; border-radius: 12px;
  padding: 12px 16px; box-shadow: 0 1px 2px rgba(16,24,40,.05); }
.tw-card .label { font-size: .72rem; text-transform: uppercase; letter-spacing: .06em;
  color: #6b7280; }
.tw-card .value { font-size: 1.6rem; font-weight: 700; color: #111827; line-height: 1.3; }
.tw-card .sub { font-size: .8rem; color: #6b7280; }
.pos { color: #15803d !important; } .neg { color: #b91c1c !important; }
.tw-muted { color: #6b7280; font-size: .85rem; }
.tw-list { list-style: none; margin: 0; padding: 0; font-size: .85rem; }
.tw-list li { padding: 6px 2px; border-bottom: 1px solid #f1f5f9; line-height: 1.35; }
.tw-list .when { color: #6b7280; font-variant-numeric: tabular-nums; margin-right: 6px; }
.tw-dot { display: inline-block; width: 10px; height: 10px; border-radius: 50%;
  margin-right: 6px; vertical-align: middle; }
.tw-dot.green { background: #16a34a; } .tw-dot.yellow { background: #eab308; }
.tw-dot.red { background: #dc2626; } .tw-dot.grey { background: #9ca3af; }
.tw-badge { display: inline-block; border-radius: 6px; padding: 0 7px; font-size: .75rem;
  font-weight: 600; margin-left: 4px; background: #e5e7eb; color: #374151; }
.tw-badge.traded { background: #dbeafe; color: #1d4ed8; }
.tw-badge.skipped { background: #f3f4f6; color: #6b7280; }
.tw-badge.pending { background: #fef9c3; color: #854d0e; }
.tw-badge.blocked, .tw-badge.critical { background: #fee2e2; color: #b91c1c; }
.tw-badge.warning { background: #fef3c7; color: #92400e; }
.tw-badge.info { background: #e0f2fe; color: #075985; }
.tw-badge.long { background: #dcfce7; color: #166534; }
.tw-badge.short { background: #fee2e2; color: #991b1b; }
.tw-signal-head { display: flex; gap: 10px; align-items: center; font-size: .9rem;
  flex-wrap: wrap; }
.tw-signal-head .sym { font-weight: 700; }
.tw-grid { display: grid; grid-template-columns: max-content 1fr; gap: 3px 14px;
  font-size: .85rem; }
.tw-grid dt { color: #6b7280; } .tw-grid dd { margin: 0; font-variant-numeric: tabular-nums; }
.tw-bar { display: inline-block; height: 8px; border-radius: 4px; vertical-align: middle;
  margin-right: 6px; }
pre.tw-copy-block { background: #f8fafc; border: 1px solid #e5e7eb; border-radius: 8px;
  padding: 8px 10px; font-size: .85rem; margin: 8px 0 0; }
.tw-alert-title { font-weight: 600; }
.tw-alert-text { white-space: pre-wrap; color: #374151; margin-top: 2px; }
.tw-live { font-size: .8rem; color: #6b7280; }
.tw-live .beat { color: #16a34a; }
a.tw-logout { display: inline-block; margin-top: 6px; color: #b91c1c; font-weight: 600; }
"""

TABLE_CSS = """
.tabulator, .tabulator-row, .tabulator-cell, .tabulator-col-title { font-size: 12px !important; }
.tabulator-row .tabulator-cell { padding: 5px 6px !important; }
.tabulator-col .tabulator-col-content { padding: 4px 6px !important; }
.tabulator-header-filter input { padding: 1px 4px !important; font-size: 12px !important; }
"""

COPY_JS = """
const done = () => {
  cb_obj.label = "Copied ✓";
  setTimeout(() => { cb_obj.label = "Copy"; }, 1500);
};
const fallback = () => {
  const area = document.createElement("textarea");
  area.value = text;
  area.style.position = "fixed";
  area.style.opacity = "0";
  document.body.appendChild(area);
  area.select();
  document.execCommand("copy");
  area.remove();
  done();
};
if (navigator.clipboard && window.isSecureContext) {
  navigator.clipboard.writeText(text).then(done, fallback);
} else {
  fallback();
}
"""


def html(text: str, **options: Any) -> pn.pane.HTML:
    """An HTML pane with the dashboard's styles."""
    return pn.pane.HTML(  # type: ignore[no-untyped-call]
        text, stylesheets=[STYLESHEET], sizing_mode="stretch_width", **options
    )


def bokeh(fig: Any) -> pn.pane.Bokeh:
    """A Bokeh chart pane."""
    return pn.pane.Bokeh(fig, sizing_mode="stretch_width")  # type: ignore[no-untyped-call]


def value_attrs(key: str, value: Any) -> str:
    """``data-key`` and ``data-value`` (JSON) attributes of a shown number."""
    return f'data-key="{escape(key)}" data-value="{escape(json.dumps(value))}"'


def signed(value: float | None, kind: str = "money") -> str:
    """A signed figure: money, or a fraction as a percentage."""
    if value is None:
        return "—"
    if kind == "fraction":
        return f"{value * 100:+.2f}%"
    return f"{value:+,.2f}"


def tone(value: Any) -> str:
    """``pos`` or ``neg`` by sign, for colouring."""
    if isinstance(value, int | float):
        return "pos" if value > 0 else "neg" if value < 0 else ""
    return ""


def banner_html(status: dict[str, Any], now: datetime) -> str:
    """The traffic light: colour, size multiplier, fired rules with values, time since change."""
    colour = str(status["status"])
    changed = status["changed_at"]
    since = (now - datetime.fromisoformat(changed)).total_seconds() if changed else None
    rules = status["rules"]
    fired = [r for r in rules if r.get("fired")]
    chips = [f'<span class="tw-rule fired">✗ {escape(r["text"])}</span>' for r in fired]
    if not fired:
        chips.append('<span class="tw-rule ok">✓ every rule within its limit</span>')
    if status["pause"]:
        pause = status["pause"]
        chips.insert(
            0,
            f'<span class="tw-rule fired">⏸ paused by {escape(pause["by"])}: '
            f"{escape(pause['reason'])}</span>",
        )
    since_text = f"for {age(since)}" if since is not None else "never changed"
    changed_text = (
        f" (since {datetime.fromisoformat(changed).astimezone(UTC):%Y-%m-%d %H:%M} UTC)"
        if changed
        else ""
    )
    return (
        f'<div class="tw-banner {escape(colour)}" data-status="{escape(colour)}">'
        f'<span class="tw-light">{escape(colour.upper())}</span>'
        f'<span class="tw-meta">size <b {value_attrs("multiplier", status["multiplier"])}>'
        f"×{status['multiplier']:g}</b></span>"
        f'<span class="tw-meta">{since_text}{changed_text}</span>'
        f'<div class="tw-rules">{"".join(chips)}</div></div>'
    )


def cards_html(stats: dict[str, Any], filter_text: str) -> str:
    """The headline numbers, each with its exact value."""
    streak = stats["current_streak"]
    streak_text = f"{streak:+d}" if streak else "0"
    streak_sub = (
        f"{abs(streak)} {'wins' if streak > 0 else 'losses'} in a row" if streak else "no streak"
    )
    cards = [
        (
            "Win rate · last 20",
            "win_rate_last_20",
            fmt(stats["win_rate_last_20"], "fraction"),
            "",
            f"of the last {stats['last_20_count']} trades",
        ),
        (
            "Today's P&L",
            "today_pnl",
            signed(stats["today_pnl"]),
            tone(stats["today_pnl"]),
            f"<span {value_attrs('today_pnl_pct', stats['today_pnl_pct'])} "
            f'class="{tone(stats["today_pnl_pct"])}">'
            f"{signed(stats['today_pnl_pct'], 'fraction')}</span> of equity",
        ),
        ("Sharpe", "sharpe", fmt(stats["sharpe"]), "", "daily returns, √365"),
        ("Current streak", "current_streak", streak_text, tone(streak), streak_sub),
        (
            "Profit factor",
            "profit_factor",
            fmt(stats["profit_factor"]),
            "",
            f"{stats['total_trades']} closed trades",
        ),
        (
            "Max drawdown",
            "max_drawdown",
            fmt(stats["max_drawdown"], "fraction"),
            "neg" if stats["max_drawdown"] else "",
            f"now {fmt(stats['current_drawdown'], 'fraction')} below the peak",
        ),
        ("Open positions", "open_positions", str(stats["open_positions"]), "", "trades open"),
        (
            "Equity",
            "final_equity",
            fmt(stats["final_equity"], "money"),
            "",
            f'total P&L <span class="{tone(stats["total_pnl"])}">'
            f"{signed(stats['total_pnl'])}</span>",
        ),
    ]
    body = "".join(
        f'<div class="tw-card"><div class="label">{label}</div>'
        f'<div class="value {css}" {value_attrs(key, stats[key])}>{escape(shown)}</div>'
        f'<div class="sub">{sub}</div></div>'
        for label, key, shown, css, sub in cards
    )
    return f'<div class="tw-cards" data-filter="{escape(filter_text)}">{body}</div>'


def _price(value: float | None) -> str:
    return "—" if value is None else f"{value:,.6g}"


def signal_head_html(row: dict[str, Any], zone: ZoneInfo) -> str:
    """One line per signal: time, symbol, side, confidence, state, result."""
    badges = [f'<span class="tw-badge {escape(row["state"])}">{escape(row["state"])}</span>']
    if row["blocked"]:
        badges.append('<span class="tw-badge blocked">blocked</span>')
    trade = row["trade"]
    result = ""
    if trade and trade["pnl_pct"] is not None:
        result = (
            f'<span class="{tone(trade["pnl_pct"])}">{trade["pnl_pct"]:+.2f}% '
            f"{escape(str(trade['outcome']))}</span>"
        )
    elif trade:
        result = '<span class="tw-muted">open</span>'
    confidence = row["confidence"]
    return (
        f'<div class="tw-signal-head" data-signal="{escape(row["signal_id"])}">'
        f'<span class="when">{row["at"].astimezone(zone):%H:%M}</span>'
        f'<span class="sym">{escape(row["symbol"])}</span>'
        f'<span class="tw-badge {escape(row["direction"])}">'
        f"{escape(row['direction'].upper())}</span>"
        f"<span>{escape(row['signal_id'])}</span>"
        + (f'<span class="tw-muted">conf {confidence:.0%}</span>' if confidence is not None else "")
        + "".join(badges)
        + result
        + "</div>"
    )


def signal_body_html(row: dict[str, Any]) -> str:
    """A signal's details: levels, size, confidence, theories, quality gates, state."""
    low, high = row["entry_low"], row["entry_high"]
    entry = _price(low) if low == high else f"{_price(low)} – {_price(high)}"
    size = row["sized_position"] if row["sized_position"] is not None else row["position_size"]
    size_text = _price(size)
    if row["position_size"] is not None and row["size_multiplier"] != 1:
        size_text += f" (×{row['size_multiplier']:g} of {_price(row['position_size'])})"
    state = row["state"] + (f": {row['skip_reason']}" if row["skip_reason"] else "")
    if row["blocked"]:
        state += " — blocked by the controller"
    trade = row["trade"]
    if trade:
        state += f"; trade {trade['status']}" + (" (forced)" if trade["forced"] else "")
        if trade["pnl_quote"] is not None:
            state += f", {trade['pnl_pct']:+.2f}% ({trade['pnl_quote']:+,.2f})"
    confidence = row["confidence"]
    facts = [
        ("Entry zone", entry),
        ("Stop loss", _price(row["stop_loss"])),
        ("Take profit", _price(row["take_profit"])),
        ("Size", size_text),
        ("Confidence", f"{confidence:.1%}" if confidence is not None else "—"),
        ("Controller", f"{row['controller_status'].upper()} ×{row['size_multiplier']:g}"),
        (
            "Source",
            " · ".join(
                str(v) for v in (row["source"], row["model_version"], row["timeframe"]) if v
            ),
        ),
        ("State", state),
    ]
    grid = "".join(f"<dt>{k}</dt><dd>{escape(v)}</dd>" for k, v in facts)
    theories = row["theories"]
    if theories:
        widest = max(abs(v) for v in theories.values()) or 1.0
        grid += (
            "<dt>Theories</dt><dd>"
            + "<br>".join(
                f'<span class="tw-bar" style="width:{60 * abs(v) / widest:.0f}px;'
                f'background:{"#16a34a" if v >= 0 else "#dc2626"}"></span>{escape(k)} {v:+.3f}'
                for k, v in sorted(theories.items(), key=lambda kv: -kv[1])
            )
            + "</dd>"
        )
    gates = row["quality_gates"]
    if gates:
        grid += (
            "<dt>Quality gates</dt><dd>"
            + "<br>".join(
                f"{'✓' if g['passed'] else '✗'} {escape(k)} {g['value']:g} vs {g['threshold']:g}"
                for k, g in gates.items()
            )
            + "</dd>"
        )
    return f'<dl class="tw-grid">{grid}</dl><pre class="tw-copy-block">{escape(row["copy"])}</pre>'


def decisions_html(decisions: Sequence[dict[str, Any]]) -> str:
    """The controller's decisions, newest first, with their reasons."""
    if not decisions:
        return '<p class="tw-muted">No controller decisions yet.</p>'
    items = []
    for step in list(decisions)[-DECISIONS_SHOWN:][::-1]:
        status = step["data"].get("new_status") or (
            "red" if step["kind"] == "Controller.Paused" else "grey"
        )
        items.append(
            f'<li><span class="tw-dot {escape(status)}"></span>'
            f'<span class="when">{_when(step["at"])}</span>{escape(describe_step(step))}</li>'
        )
    more = len(decisions) - DECISIONS_SHOWN
    tail = f'<p class="tw-muted">… and {more} earlier decisions</p>' if more > 0 else ""
    return f'<ul class="tw-list">{"".join(items)}</ul>{tail}'


def alerts_html(alerts: Sequence[dict[str, Any]]) -> str:
    """The alert feed, newest first."""
    if not alerts:
        return '<p class="tw-muted">No alerts yet.</p>'
    items = []
    for step in alerts:
        data = step["data"]
        severity = str(data.get("severity", "info"))
        items.append(
            f'<li><span class="when">{_when(step["at"])}</span>'
            f'<span class="tw-badge {escape(severity)}">{escape(severity)}</span> '
            f'<span class="tw-alert-title">{escape(str(data.get("title", data.get("type"))))}'
            f'</span><div class="tw-alert-text">{escape(str(data.get("text", "")))}</div></li>'
        )
    return f'<ul class="tw-list">{"".join(items)}</ul>'


def trail_html(data: dict[str, Any]) -> str:
    """A signal's causal trail (``tradewatch audit SIGNAL_ID``)."""
    gate = data["gate"]
    decision = gate["decision"]
    head = (
        f"<p><b>signal {escape(data['signal_id'])}</b> — the controller was "
        f'<span class="tw-dot {escape(gate["status"])}"></span>'
        f"<b>{escape(gate['status'].upper())}</b> ×{gate['multiplier']:g}"
        + (", blocked" if gate["blocked"] else "")
        + (
            f", set by decision #{decision['notification_id']} ({escape(describe_step(decision))})"
            if decision
            else ""
        )
        + "</p>"
    )
    steps = "".join(
        f'<li><span class="when">{_when(s["at"])} #{s["notification_id"]}</span>'
        f"<b>{escape(s['kind'])}</b>: {escape(step_text(s))}</li>"
        for s in data["steps"]
    )
    pnl = data["pnl"]
    tail = ""
    if pnl and pnl["pnl_pct"] is not None:
        tail = (
            f'<p>P&amp;L <span class="{tone(pnl["pnl_pct"])}">{pnl["pnl_pct"]:+.2f}% '
            f"({pnl['pnl_quote']:+,.2f})</span>, {escape(str(pnl['outcome']))}</p>"
        )
    return f'{head}<ul class="tw-list">{steps}</ul>{tail}'


def step_text(step: dict[str, Any]) -> str:
    """One line per audit step; an alert by its title."""
    data = step["data"]
    if step["kind"] in ALERT_KINDS:
        return f"{data.get('type')} alert ({data.get('severity')}): {data.get('title')}"
    text = describe_step(step)
    return text if len(text) <= STEP_CHARS else text[: STEP_CHARS - 1] + "…"


def _when(stamp: str) -> str:
    return f"{parse_time(stamp):%Y-%m-%d %H:%M}"


TRADE_COLUMNS = {
    "signal_id": "signal",
    "symbol": "symbol",
    "direction": "side",
    "entry_time": "entry time (UTC)",
    "entry_price": "entry",
    "qty": "qty",
    "exit_time": "exit time (UTC)",
    "exit_price": "exit",
    "exit_reason": "reason",
    "pnl_pct": "P&L %",
    "pnl_quote": "P&L",
    "outcome": "outcome",
}
FILTERED_COLUMNS = {"signal", "symbol", "side", "source", "reason", "outcome", "theory"}
OPEN_COLUMNS = ("signal_id", "symbol", "direction", "source", "entry_time", "entry_price", "qty")


def trades_frame(
    rows: Sequence[dict[str, Any]], columns: Sequence[str] = tuple(TRADE_COLUMNS)
) -> pd.DataFrame:
    """Trades as a table: one row each, times to the minute."""
    frame = pd.DataFrame(list(rows), columns=list(columns))
    for column in ("entry_time", "exit_time"):
        if column in frame:
            frame[column] = frame[column].map(
                lambda t: t[:16].replace("T", " ") if isinstance(t, str) else ""
            )
    return blank_missing(frame.rename(columns=TRADE_COLUMNS))


def blank_missing(frame: pd.DataFrame) -> pd.DataFrame:
    """Missing numbers (an open trade's exit) shown empty rather than as NaN."""
    return frame.astype(object).where(frame.notna(), None)


THEORY_COLUMNS = {
    "theory": "theory",
    "signals": "signals",
    "trades": "trades",
    "win_rate": "win rate",
    "win_rate_low": "95% low",
    "win_rate_high": "95% high",
    "pnl": "P&L",
    "weighted_pnl": "weighted P&L",
    "correct_rate": "correct rate",
    "mean_contribution": "mean score",
}


def table(frame: pd.DataFrame, formatters: dict[str, Any], page_size: int) -> pn.widgets.Tabulator:
    """A read-only, sortable table; its text columns have header filters."""
    filters = {
        column: {"type": "input", "func": "like", "placeholder": "filter"}
        for column in frame.columns
        if column in FILTERED_COLUMNS
    }
    return pn.widgets.Tabulator(  # type: ignore[no-untyped-call]
        frame,
        formatters=formatters,
        header_filters=filters,
        disabled=True,
        show_index=False,
        pagination="local",
        page_size=page_size,
        layout="fit_data_stretch",
        sizing_mode="stretch_width",
        stylesheets=[TABLE_STYLESHEET],
    )


def set_value(widget: pn.widgets.Tabulator, frame: pd.DataFrame) -> None:
    """Show new rows in a table, unless they are the same (which spares the browser a redraw)."""
    if not frame.equals(widget.value):
        widget.value = frame


_MONEY = {"type": "money", "precision": 2, "thousand": ","}
TRADE_FORMATS = {
    "P&L %": {"type": "money", "precision": 2, "symbol": "%", "symbolAfter": True},
    "P&L": _MONEY,
}
THEORY_FORMATS = {
    "P&L": _MONEY,
    "weighted P&L": _MONEY,
    "win rate": {"type": "money", "precision": 3},
    "95% low": {"type": "money", "precision": 3},
    "95% high": {"type": "money", "precision": 3},
    "correct rate": {"type": "money", "precision": 3},
    "mean score": {"type": "money", "precision": 3},
}


def row(*objects: Any) -> pn.Row:
    """Objects side by side, sharing the width."""
    return pn.Row(*objects, sizing_mode="stretch_width")


def section(title: str, *objects: Any) -> pn.Card:
    """A titled, non-collapsible card."""
    return pn.Card(  # type: ignore[no-untyped-call]
        *objects,
        title=title,
        collapsible=False,
        sizing_mode="stretch_width",
        styles={"border-radius": "12px"},
        header_background="#f8fafc",
    )


class Details:
    """The sections below the first screen: built once the page is up, so it shows sooner."""

    def __init__(self, hub: Hub) -> None:
        settings = hub.tw.settings
        self.hub = hub
        self.pnl = PnlChart()
        self.rolling = RollingWinRateChart(settings.red_win_rate, settings.yellow_win_rate)
        self.reliability = ReliabilityChart()
        self.theory_charts = TheoryCharts()
        self.timeline = TimelineChart()
        self.decisions = html("", max_height=420, styles={"overflow-y": "auto"})
        self.open_table = table(trades_frame([], OPEN_COLUMNS), TRADE_FORMATS, 10)
        self.trades_table = table(trades_frame([]), TRADE_FORMATS, 15)
        self.theory_table = table(
            pd.DataFrame(columns=list(THEORY_COLUMNS.values())), THEORY_FORMATS, 12
        )
        self.audit_pick = pn.widgets.AutocompleteInput(  # type: ignore[no-untyped-call]
            name="Signal id",
            options=[],
            restrict=False,
            min_characters=1,
            case_sensitive=False,
            search_strategy="includes",
            placeholder="type a signal id",
        )
        self.trail = html("")
        self.sections = [
            row(
                section("P&L", bokeh(self.pnl.figure)),
                section("Rolling win rate", bokeh(self.rolling.figure)),
            ),
            row(
                section("Controller", bokeh(self.timeline.figure), self.decisions),
                section("Calibration", bokeh(self.reliability.figure)),
            ),
            section(
                "Theory attribution",
                row(bokeh(self.theory_charts.rates), bokeh(self.theory_charts.pnl)),
                self.theory_table,
            ),
            section("Open positions", self.open_table),
            section("Recent trades", self.trades_table),
            section("Audit trail", self.audit_pick, self.trail),
        ]
        self.audit_pick.param.watch(self._on_audit, "value")

    def render(self, page: Page) -> None:
        """Show a page's details (sent to the browser as one change)."""
        with hold():
            self._render(page)

    def _render(self, page: Page) -> None:
        series = page.series
        self.pnl.update(series.pnl, series.pnl_unit)
        self.rolling.update(series.rolling)
        self.reliability.update(page.calibration)
        self.theory_charts.update(page.theories)
        self.timeline.update(series.timeline)
        self.decisions.object = decisions_html(page.shared.decisions)
        set_value(self.open_table, trades_frame(page.positions, OPEN_COLUMNS))
        set_value(self.trades_table, trades_frame(page.trades))
        set_value(
            self.theory_table,
            blank_missing(
                pd.DataFrame(page.theories, columns=list(THEORY_COLUMNS)).rename(
                    columns=THEORY_COLUMNS
                )
            ),
        )
        if self.audit_pick.options != page.shared.signal_ids:
            self.audit_pick.options = page.shared.signal_ids
        if not self.audit_pick.value and page.shared.signal_ids:
            self.audit_pick.value = page.shared.signal_ids[0]

    async def _on_audit(self, event: Any) -> None:
        signal_id = str(event.new or "").strip()
        if not signal_id:
            self.trail.object = ""
            return
        try:
            data = await self.hub.run(audit_data, self.hub.tw, signal_id)
        except DomainError as e:
            self.trail.object = f'<p class="tw-muted">{escape(str(e))}</p>'
            return
        self.trail.object = trail_html(data)


class Dashboard:
    """One browser session: the first screen at once, the details when the page is up."""

    def __init__(self, hub: Hub, *, logout: bool) -> None:
        self.hub = hub
        settings = hub.tw.settings
        self.zone = ZoneInfo(settings.timezone)
        self.flt = TradeFilter()
        self._refreshing = self._again = False
        self._rendered = 0.0
        self._signal_cards: dict[str, SignalCard] = {}
        self._no_signals = html('<p class="tw-muted">No signals today.</p>')
        self._all_signals = False
        self._more_signals = pn.widgets.Button(  # type: ignore[no-untyped-call]
            name="", button_type="light", css_classes=["tw-more-signals"]
        )
        self._more_signals.on_click(self._show_all_signals)
        self._banner_text = ""
        self.details: Details | None = None

        self.window = pn.widgets.RadioButtonGroup(  # type: ignore[no-untyped-call]
            name="Window",
            options=list(WINDOWS),
            value="All",
            button_type="primary",
            button_style="outline",
            width=210,
        )
        self.symbol = pn.widgets.Select(  # type: ignore[no-untyped-call]
            name="Symbol", options=[ALL_SYMBOLS], width=210
        )
        self.direction = pn.widgets.Select(  # type: ignore[no-untyped-call]
            name="Direction", options=[BOTH_DIRECTIONS, "long", "short"], width=210
        )
        self.live = pn.pane.HTML("", stylesheets=[STYLESHEET], width=210)  # type: ignore[no-untyped-call]
        self.banner = html("")
        self.cards = html("")
        self.signals = pn.Column(sizing_mode="stretch_width", scroll=True, max_height=640)
        self.alerts = html("", max_height=420, styles={"overflow-y": "auto"})
        self.equity = EquityChart(settings.starting_balance)
        self.page = hub.call(hub.page, self.flt)
        self.render(self.page)
        for widget in (self.window, self.symbol, self.direction):
            widget.param.watch(self._on_filter, "value")

        sidebar: list[Any] = [
            pn.pane.Markdown("### Filters"),  # type: ignore[no-untyped-call]
            self.window,
            self.symbol,
            self.direction,
            self.live,
        ]
        if logout:
            sidebar.append(html('<a class="tw-logout" href="./logout">Log out</a>'))
        self.main = pn.Column(
            self.banner,
            self.cards,
            row(
                section("Today's signals", self.signals),
                section(f"Latest alerts (up to {ALERTS_SHOWN})", self.alerts),
            ),
            section("Equity and drawdown", bokeh(self.equity.figure)),
            sizing_mode="stretch_width",
        )
        self.template = pn.template.BootstrapTemplate(  # type: ignore[no-untyped-call]
            title="tradewatch",
            sidebar=[pn.Column(*sidebar, width=220)],
            sidebar_width=250,
            header_background="#111827",
            main=[self.main],
        )
        pn.state.onload(self._loaded)

    def _loaded(self) -> None:
        """Start following the ledger; add the details once the browser has drawn the first
        screen (building them in the browser would hold up its first paint)."""
        pn.state.add_periodic_callback(self._tick, period=TICK_MS)  # type: ignore[arg-type]
        doc = pn.state.curdoc
        if doc is None:
            self._add_details()
            return
        doc.add_timeout_callback(self._add_details, DETAILS_DELAY_MS)

        def moved() -> None:  # from the hub's polling thread: hand over to the session
            doc.add_next_tick_callback(self._on_filter)

        self.hub.listen(moved)
        doc.on_session_destroyed(lambda _: self.hub.forget(moved))

    def _add_details(self) -> None:
        self.details = Details(self.hub)
        self.details.render(self.page)
        self.main.extend(self.details.sections)

    def _filter(self) -> TradeFilter:
        today, days = WINDOWS[self.window.value]
        return TradeFilter(
            today=today,
            days=days,
            symbol=None if self.symbol.value == ALL_SYMBOLS else self.symbol.value,
            direction=None if self.direction.value == BOTH_DIRECTIONS else self.direction.value,
        )

    def _on_filter(self, *_: Any) -> None:
        """Show the page of the chosen filter (also when the read models moved on)."""
        self.flt = self._filter()
        # Charts change only under the document lock, which session callbacks hold (across
        # their awaits, too): refresh in a one-off callback, as the periodic tick does.
        pn.state.add_periodic_callback(self._refresh, period=1, count=1)  # type: ignore[arg-type]

    async def _tick(self) -> None:
        stale = time.monotonic() - self._rendered >= FULL_REFRESH_SECONDS
        if self.hub.position != self.page.position or stale:
            await self._refresh()
        else:
            self._render_banner(self.page)

    async def _refresh(self) -> None:
        if self._refreshing:
            self._again = True
            return
        self._refreshing = True
        try:
            while True:
                self._again = False
                self.render(await self.hub.run(self.hub.page, self.flt))
                if not self._again:
                    break
        finally:
            self._refreshing = False

    def _render_banner(self, page: Page) -> None:
        text = banner_html(page.shared.status, datetime.now(UTC))
        if text != self._banner_text:
            self.banner.object = self._banner_text = text

    def render(self, page: Page) -> None:
        """Show a page (sent to the browser as one change)."""
        with hold():
            self._render(page)

    def _render(self, page: Page) -> None:
        self.page = page
        self._rendered = time.monotonic()
        stats = page.stats
        self._render_banner(page)
        self.cards.object = cards_html(stats, page.flt.describe())
        symbols = [ALL_SYMBOLS, *page.shared.symbols]
        if self.symbol.options != symbols:
            self.symbol.options = symbols
        self.equity.update(
            page.series.equity,
            f"Equity {fmt(stats['final_equity'], 'money')} — max drawdown "
            f"{fmt(stats['max_drawdown'], 'fraction')} ({page.flt.describe()})",
        )
        self.alerts.object = alerts_html(page.shared.alerts)
        self._render_signals(page)
        doc = pn.state.curdoc
        if self.details is not None and doc is not None:
            # The details a moment later: the browser shows the first screen before redrawing them.
            doc.add_timeout_callback(partial(self.details.render, page), DETAILS_DELAY_MS)
        self.live.object = (
            f'<div class="tw-live"><span class="beat">●</span> live — as of '
            f"{page.as_of:%H:%M:%S} UTC<br>read models at event "
            f"{max(page.position, default=0)}; page built in "
            f"{page.build_seconds * 1000:.0f} ms</div>"
        )

    def _show_all_signals(self, *_: Any) -> None:
        self._all_signals = True
        with hold():
            self._render_signals(self.page)

    def _render_signals(self, page: Page) -> None:
        """One card per signal of today (the newest :data:`SIGNALS_SHOWN` until asked for
        all): new ones added, known ones updated in place."""
        shown: list[Any] = []
        drawn = page.signals if self._all_signals else page.signals[:SIGNALS_SHOWN]
        for signal in drawn:
            card = self._signal_cards.get(signal["signal_id"])
            if card is None:
                card = self._signal_cards[signal["signal_id"]] = SignalCard(signal, self.zone)
            else:
                card.update(signal, self.zone)
            shown.append(card.card)
        today = {signal["signal_id"] for signal in drawn}
        for gone in set(self._signal_cards) - today:
            del self._signal_cards[gone]
        if not shown:
            shown = [self._no_signals]
        if len(drawn) < len(page.signals):
            self._more_signals.name = f"Show all {len(page.signals)} signals of today"
            shown.append(self._more_signals)
        if [id(o) for o in self.signals.objects] != [id(o) for o in shown]:
            self.signals.objects = shown


class SignalCard:
    """A signal of today: a one-line header that expands to its details and a Copy button."""

    def __init__(self, signal: dict[str, Any], zone: ZoneInfo) -> None:
        self.head = html(signal_head_html(signal, zone))
        self.body = html(signal_body_html(signal))
        button = pn.widgets.Button(  # type: ignore[no-untyped-call]
            name="Copy", button_type="primary", width=90, css_classes=["tw-copy"]
        )
        button.js_on_click(args={"text": signal["copy"]}, code=COPY_JS)
        self.card = pn.Card(  # type: ignore[no-untyped-call]
            self.body,
            button,
            header=self.head,
            collapsed=True,
            sizing_mode="stretch_width",
            css_classes=["tw-signal"],
            margin=(4, 0),
        )

    def update(self, signal: dict[str, Any], zone: ZoneInfo) -> None:
        """Show the signal's latest state (its copy block never changes)."""
        self.head.object = signal_head_html(signal, zone)
        self.body.object = signal_body_html(signal)
