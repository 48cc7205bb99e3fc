"""The dashboard's Bokeh charts, and the chart-ready series computed once per page build.

Long series are thinned for the browser (:func:`decimate`): each of about 500 buckets keeps
its first, last, lowest and highest point, so peaks and troughs (and so the drawdowns) stay.
Times are UTC, as in ``docs/metrics.md``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from bokeh.models import (
    ColumnDataSource,
    FactorRange,
    HoverTool,
    NumeralTickFormatter,
    Range1d,
)
from bokeh.models.annotations import LabelSet, Span, Title, Whisker
from bokeh.plotting import figure

from projections.metrics import LAST_N, WIN, Performance, TradeColumns

Columns = dict[str, Any]

GREEN, YELLOW, RED = "#16a34a", "#eab308", "#dc2626"
BLUE, GREY, INK = "#2563eb", "#9ca3af", "#374151"
STATUS_COLOURS = {"green": GREEN, "yellow": YELLOW, "red": RED}
MAX_POINTS = 2000
PATCH_LIMIT = 50
DAY_MS = 86_400_000
_EMPTY_TIMES = np.array([], dtype="datetime64[ms]")


@dataclass(frozen=True)
class Series:
    """Chart-ready columns of one page."""

    equity: Columns
    pnl: Columns
    pnl_unit: str
    rolling: Columns
    timeline: Columns


def decimate(values: npt.NDArray[np.float64], limit: int = MAX_POINTS) -> npt.NDArray[np.int64]:
    """Indices of at most ``limit`` points: each bucket's first, last, lowest and highest."""
    n = len(values)
    if n <= limit:
        return np.arange(n, dtype=np.int64)
    edges = np.linspace(0, n, limit // 4 + 1).astype(np.int64)
    keep = [edges[:-1], edges[1:] - 1]
    lows, highs = [], []
    for start, end in itertools.pairwise(edges):
        chunk = values[start:end]
        lows.append(start + int(np.argmin(chunk)))
        highs.append(start + int(np.argmax(chunk)))
    keep += [np.array(lows, dtype=np.int64), np.array(highs, dtype=np.int64)]
    return np.unique(np.concatenate(keep))


def set_data(source: ColumnDataSource, columns: Columns) -> None:
    """Show ``columns`` in ``source``, sending the browser as little as possible.

    Nothing when they are the same; a patch of the values that changed when there are at
    most :data:`PATCH_LIMIT` (a timeline's right edge moving with the clock); else all of
    them. The source keeps its own copies, since a patch changes them in place and pages'
    columns are shared by every browser session.
    """
    old = source.data
    if old.keys() == columns.keys() and all(len(old[k]) == len(v) for k, v in columns.items()):
        patches: dict[str, list[tuple[int, Any]]] = {}
        for name, values in columns.items():
            before, after = np.asarray(old[name]), np.asarray(values)
            if before.dtype != after.dtype:
                break
            changed = _changed(before, after)
            if len(changed) > PATCH_LIMIT:
                break
            if len(changed):
                patches[name] = [(int(i), after[i]) for i in changed]
        else:
            if patches:
                source.patch(patches)
            return
    source.data = {
        name: np.array(values, copy=True) if isinstance(values, np.ndarray) else list(values)
        for name, values in columns.items()
    }


def _changed(before: npt.NDArray[Any], after: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    """Indices where two same-shaped columns differ (NaN equals NaN)."""
    differs = before != after
    if after.dtype.kind == "f":
        differs &= ~(np.isnan(before) & np.isnan(after))
    return np.flatnonzero(differs)


def series(
    performance: Performance,
    closed: TradeColumns,
    segments: Segments,
    now: datetime,
    start: datetime | None,
    min_sample: int,
) -> Series:
    """The chart columns of a page: ``closed`` are its closed trades (in exit order),
    ``start`` where its window starts (``None``: all time)."""
    times = performance.curve_ns.astype("datetime64[ns]").astype("datetime64[ms]")
    pnl, unit = _pnl_bars(performance)
    return Series(
        equity=_equity(performance.equity, times),
        pnl=pnl,
        pnl_unit=unit,
        rolling=_rolling(closed, times[1:], min_sample),
        timeline=_timeline(segments, now, start, times[0] if len(times) else None),
    )


def _equity(equity: npt.NDArray[np.float64], times: npt.NDArray[np.datetime64]) -> Columns:
    peak = np.maximum.accumulate(equity) if len(equity) else equity
    drawdown = np.divide(peak - equity, peak, out=np.zeros_like(equity), where=peak > 0)
    keep = np.union1d(decimate(equity), decimate(drawdown))
    return {
        "time": times[keep],
        "equity": equity[keep],
        "peak": peak[keep],
        "drawdown": drawdown[keep],
    }


def _rolling(closed: TradeColumns, exits: npt.NDArray[np.datetime64], min_sample: int) -> Columns:
    """Win rate over the last 20 closed trades after each exit (breakevens count as misses),
    from the exit where the controller's win-rate rules start to count (``min_sample``)."""
    wins = (closed.outcome == WIN).astype(np.float64)
    done = np.concatenate(([0.0], np.cumsum(wins)))
    upto = np.arange(1, len(wins) + 1)
    since = np.maximum(0, upto - LAST_N)
    rate = (done[upto] - done[since]) / np.maximum(upto - since, 1)
    first = min(max(min_sample, 1), len(rate)) - 1 if len(rate) else 0
    keep = first + decimate(rate[first:])
    return {"time": exits[keep], "rate": rate[keep], "n": (upto - since)[keep]}


def _pnl_bars(performance: Performance) -> tuple[Columns, str]:
    """P&L per UTC day; per week (from Monday) or month when the series is long."""
    pnl = performance.day_pnl
    dates = (performance.first_day + np.arange(len(pnl))).astype("datetime64[D]")
    if len(dates) <= 120:
        unit, starts, span = "day", dates, 1
    elif len(dates) <= 730:
        weekday = (dates.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
        unit, starts, span = "week", dates - weekday.astype("timedelta64[D]"), 7
    else:
        unit, starts, span = "month", dates.astype("datetime64[M]").astype("datetime64[D]"), 30
    buckets, which = np.unique(starts, return_inverse=True)
    sums = np.bincount(which, weights=pnl, minlength=len(buckets)) if len(pnl) else pnl
    labels = {
        "day": [str(b) for b in buckets],
        "week": [f"week of {b}" for b in buckets],
        "month": [str(b)[:7] for b in buckets],
    }[unit]
    centre = buckets.astype("datetime64[ms]") + np.timedelta64(span * DAY_MS // 2, "ms")
    columns = {
        "time": centre,
        "pnl": sums,
        "label": labels,
        "colour": [GREEN if p >= 0 else RED for p in sums],
        "width": np.full(len(buckets), span * DAY_MS * 0.8),
    }
    return columns, unit


@dataclass(frozen=True)
class Segments:
    """The traffic light over time: when each status change began, the status and why."""

    starts: npt.NDArray[np.datetime64]
    statuses: npt.NDArray[np.object_]
    reasons: npt.NDArray[np.object_]
    first_status: str | None
    """The status before the first change (``None``: no change yet)."""


def status_segments(decisions: Sequence[dict[str, Any]]) -> Segments:
    """The :class:`Segments` of the controller's decisions (oldest first)."""
    changes = [d for d in decisions if d["kind"] == "Controller.StatusChanged"]
    reasons = [
        "; ".join(r["text"] for r in c["data"]["rules"] if r.get("fired")) or "rules cleared"
        for c in changes
    ]
    return Segments(
        starts=np.array([c["at"].rstrip("Z") for c in changes], dtype="datetime64[ms]"),
        statuses=np.array([c["data"]["new_status"] for c in changes], dtype=np.object_),
        reasons=np.array(reasons, dtype=np.object_),
        first_status=changes[0]["data"]["old_status"] if changes else None,
    )


def _timeline(
    segments: Segments,
    now: datetime,
    start: datetime | None,
    first: np.datetime64 | None,
) -> Columns:
    """The light's colour over time, one segment per status change."""
    if segments.first_status is None:
        return {"left": _EMPTY_TIMES, "right": _EMPTY_TIMES, "status": [], "colour": [], "why": []}
    lefts, statuses, reasons = segments.starts, segments.statuses, segments.reasons
    end = np.datetime64(now.astimezone(UTC).replace(tzinfo=None), "ms")
    if first is not None and first < lefts[0]:
        lefts = np.concatenate(([first], lefts))
        statuses = np.concatenate(([segments.first_status], statuses))
        reasons = np.concatenate((["before the first decision"], reasons))
    rights = np.concatenate((lefts[1:], [end]))
    if start is not None:
        begin = np.datetime64(start.astimezone(UTC).replace(tzinfo=None), "ms")
        shown = rights > begin
        lefts, rights = np.maximum(lefts[shown], begin), rights[shown]
        statuses, reasons = statuses[shown], reasons[shown]
    return {
        "left": lefts.astype("datetime64[ms]"),
        "right": rights,
        "status": [s.upper() for s in statuses],
        "colour": [STATUS_COLOURS.get(s, GREY) for s in statuses],
        "why": list(reasons),
    }


def _figure(text: str, height: int, **options: Any) -> tuple[figure, Title]:
    title = Title(text=text, text_font_size="13px", text_color=INK)
    options.setdefault("tools", "pan,xwheel_zoom,box_zoom,reset,save")
    fig = figure(
        title=title,
        height=height,
        sizing_mode="stretch_width",
        toolbar_location="above",
        **options,
    )
    fig.toolbar.logo = None
    fig.toolbar.autohide = True
    fig.outline_line_color = None
    fig.grid.grid_line_color = "#eef0f3"
    fig.axis.axis_line_color = "#d1d5db"
    fig.axis.major_tick_line_color = "#d1d5db"
    fig.axis.minor_tick_line_color = None
    fig.axis.major_label_text_color = "#6b7280"
    fig.min_border_left = 56
    return fig, title


def _legend(fig: figure) -> None:
    fig.legend.location = "top_left"
    fig.legend.background_fill_alpha = 0.7
    fig.legend.border_line_color = None
    fig.legend.label_text_font_size = "11px"
    fig.legend.orientation = "horizontal"


class EquityChart:
    """The equity curve, its running peak, and the drawdown between them shaded."""

    def __init__(self, starting_balance: float) -> None:
        self.source = ColumnDataSource({"time": [], "equity": [], "peak": [], "drawdown": []})
        fig, self.title = _figure("Equity", 320, x_axis_type="datetime", name="tw-equity")
        self.figure = fig
        fig.varea(
            x="time",
            y1="equity",
            y2="peak",
            source=self.source,
            fill_color=RED,
            fill_alpha=0.25,
            legend_label="drawdown",
        )
        fig.line(
            "time",
            "peak",
            source=self.source,
            line_color=GREY,
            line_dash="dotted",
            legend_label="peak",
        )
        line = fig.line(
            "time",
            "equity",
            source=self.source,
            line_color=BLUE,
            line_width=2,
            legend_label="equity",
        )
        fig.add_layout(
            Span(location=starting_balance, dimension="width", line_color=GREY, line_dash="dashed")
        )
        fig.add_tools(
            HoverTool(
                renderers=[line],
                mode="vline",
                tooltips=[
                    ("time", "@time{%F %H:%M} UTC"),
                    ("equity", "@equity{0,0.00}"),
                    ("drawdown", "@drawdown{0.00%}"),
                ],
                formatters={"@time": "datetime"},
            )
        )
        fig.yaxis.formatter = NumeralTickFormatter(format="0,0")
        _legend(fig)

    def update(self, columns: Columns, title: str) -> None:
        """Show a page's equity series."""
        set_data(self.source, columns)
        self.title.text = title


class PnlChart:
    """P&L bars per UTC day (or week, or month), green up and red down."""

    def __init__(self) -> None:
        self.source = ColumnDataSource(
            {"time": [], "pnl": [], "label": [], "colour": [], "width": []}
        )
        fig, self.title = _figure("P&L per day", 260, x_axis_type="datetime", name="tw-pnl")
        self.figure = fig
        bars = fig.vbar(
            x="time", top="pnl", width="width", color="colour", source=self.source, alpha=0.85
        )
        fig.add_layout(Span(location=0, dimension="width", line_color=GREY))
        fig.add_tools(
            HoverTool(renderers=[bars], tooltips=[("", "@label"), ("P&L", "@pnl{+0,0.00}")])
        )
        fig.yaxis.formatter = NumeralTickFormatter(format="+0,0")

    def update(self, columns: Columns, unit: str) -> None:
        """Show a page's P&L bars."""
        set_data(self.source, columns)
        self.title.text = f"P&L per {unit} (UTC)"


class RollingWinRateChart:
    """Win rate over the last 20 trades after each exit, with the RED and YELLOW lines."""

    def __init__(self, red: float, yellow: float) -> None:
        self.source = ColumnDataSource({"time": [], "rate": [], "n": []})
        fig, self.title = _figure(
            f"Win rate of the last {LAST_N} trades — YELLOW below {yellow:.0%}, "
            f"RED below {red:.0%}",
            260,
            x_axis_type="datetime",
            y_range=Range1d(start=0, end=1.02),
            name="tw-rolling",
        )
        self.figure = fig
        line = fig.line("time", "rate", source=self.source, line_color=BLUE, line_width=1.5)
        for level, colour in ((yellow, YELLOW), (red, RED)):
            fig.add_layout(
                Span(
                    location=level,
                    dimension="width",
                    line_color=colour,
                    line_dash="dashed",
                    line_width=2,
                )
            )
        fig.add_tools(
            HoverTool(
                renderers=[line],
                mode="vline",
                tooltips=[
                    ("exit", "@time{%F %H:%M} UTC"),
                    ("win rate", "@rate{0.0%}"),
                    ("of trades", "@n"),
                ],
                formatters={"@time": "datetime"},
            )
        )
        fig.yaxis.formatter = NumeralTickFormatter(format="0%")

    def update(self, columns: Columns) -> None:
        """Show a page's rolling win rate."""
        set_data(self.source, columns)


class ReliabilityChart:
    """Model confidence against the actual win rate per bin, beside the diagonal."""

    def __init__(self) -> None:
        self.source = ColumnDataSource(
            {"confidence": [], "rate": [], "count": [], "size": [], "label": [], "bin": []}
        )
        fig, self.title = _figure(
            "Calibration",
            300,
            x_range=Range1d(start=0, end=1),
            y_range=Range1d(start=0, end=1.05),
            name="tw-calibration",
        )
        self.figure = fig
        fig.line([0, 1], [0, 1], line_color=GREY, line_dash="dashed", legend_label="perfect")
        fig.line("confidence", "rate", source=self.source, line_color=BLUE, line_alpha=0.4)
        dots = fig.scatter(
            "confidence",
            "rate",
            size="size",
            source=self.source,
            fill_color=BLUE,
            fill_alpha=0.6,
            line_color=BLUE,
            legend_label="bins (size: trades)",
        )
        fig.add_layout(
            LabelSet(
                x="confidence",
                y="rate",
                text="label",
                source=self.source,
                y_offset=9,
                x_offset=-8,
                text_font_size="10px",
                text_color=INK,
            )
        )
        fig.add_tools(
            HoverTool(
                renderers=[dots],
                tooltips=[
                    ("bin", "@bin"),
                    ("trades", "@count"),
                    ("mean confidence", "@confidence{0.0%}"),
                    ("win rate", "@rate{0.0%}"),
                ],
            )
        )
        fig.xaxis.axis_label = "model confidence"
        fig.yaxis.axis_label = "actual win rate"
        fig.xaxis.formatter = NumeralTickFormatter(format="0%")
        fig.yaxis.formatter = NumeralTickFormatter(format="0%")
        _legend(fig)

    def update(self, report: dict[str, Any]) -> None:
        """Show a calibration report's bins, ECE and Brier score."""
        bins = [b for b in report["bins"] if b["count"]]
        counts = np.array([b["count"] for b in bins], dtype=np.float64)
        biggest = counts.max() if len(counts) else 1.0
        set_data(
            self.source,
            {
                "confidence": [b["mean_confidence"] for b in bins],
                "rate": [b["win_rate"] for b in bins],
                "count": [b["count"] for b in bins],
                "size": list(8 + 22 * np.sqrt(counts / biggest)),
                "label": [f"n={b['count']}" for b in bins],
                "bin": [f"{b['low']:.1f}–{b['high']:.1f}" for b in bins],
            },
        )
        ece, brier = report["ece"], report["brier"]
        self.title.text = (
            f"Calibration — {report['count']} trades"
            + (f", ECE {ece:.3f}" if ece is not None else "")
            + (f", Brier {brier:.3f}" if brier is not None else "")
        )


class TheoryCharts:
    """Per theory: win rate with its 95 % Wilson interval and correct rate; weighted P&L."""

    def __init__(self) -> None:
        self.source = ColumnDataSource(
            {
                "theory": [],
                "win_rate": [],
                "low": [],
                "high": [],
                "correct": [],
                "weighted": [],
                "colour": [],
                "trades": [],
            }
        )
        self.rate_factors, self.pnl_factors = FactorRange(), FactorRange()
        rates, _ = _figure(
            "Win rate (95% Wilson interval) and correct rate",
            260,
            y_range=self.rate_factors,
            x_range=Range1d(start=0, end=1),
            name="tw-theory-rates",
        )
        bars = rates.hbar(
            y="theory",
            right="win_rate",
            height=0.6,
            source=self.source,
            fill_color=BLUE,
            fill_alpha=0.55,
            line_color=None,
            legend_label="win rate",
        )
        rates.add_layout(
            Whisker(source=self.source, base="theory", lower="low", upper="high", dimension="width")
        )
        rates.scatter(
            "correct",
            "theory",
            source=self.source,
            marker="diamond",
            size=12,
            color=INK,
            legend_label="correct rate",
        )
        rates.add_tools(
            HoverTool(
                renderers=[bars],
                tooltips=[
                    ("theory", "@theory"),
                    ("trades", "@trades"),
                    ("win rate", "@win_rate{0.0%} (@low{0.0%}–@high{0.0%})"),
                    ("correct rate", "@correct{0.0%}"),
                ],
            )
        )
        rates.xaxis.formatter = NumeralTickFormatter(format="0%")
        _legend(rates)
        rates.add_layout(rates.legend[0], "below")
        self.rates = rates
        pnl, _ = _figure(
            "Weighted P&L (score × P&L)", 260, y_range=self.pnl_factors, name="tw-theory-pnl"
        )
        pnl_bars = pnl.hbar(
            y="theory", left=0, right="weighted", height=0.6, color="colour", source=self.source
        )
        pnl.add_tools(
            HoverTool(
                renderers=[pnl_bars],
                tooltips=[("theory", "@theory"), ("weighted P&L", "@weighted{+0,0.00}")],
            )
        )
        pnl.xaxis.formatter = NumeralTickFormatter(format="+0,0")
        self.pnl = pnl

    def update(self, rows: Sequence[dict[str, Any]]) -> None:
        """Show theory attribution rows."""
        names = [str(r["theory"]) for r in rows]
        set_data(
            self.source,
            {
                "theory": names,
                "win_rate": [r["win_rate"] for r in rows],
                "low": [r["win_rate_low"] for r in rows],
                "high": [r["win_rate_high"] for r in rows],
                "correct": [r["correct_rate"] for r in rows],
                "weighted": [r["weighted_pnl"] for r in rows],
                "colour": [GREEN if float(r["weighted_pnl"]) >= 0 else RED for r in rows],
                "trades": [r["trades"] for r in rows],
            },
        )
        height = max(200, 60 + 34 * len(names))
        for factors in (self.rate_factors, self.pnl_factors):
            factors.factors = names[::-1]
        for fig in (self.rates, self.pnl):
            fig.height = height


class TimelineChart:
    """The traffic light's colour over time."""

    def __init__(self) -> None:
        self.source = ColumnDataSource(
            {"left": [], "right": [], "status": [], "colour": [], "why": []}
        )
        fig, self.title = _figure(
            "Traffic light over time", 130, x_axis_type="datetime", name="tw-timeline"
        )
        self.figure = fig
        quads = fig.quad(
            left="left",
            right="right",
            bottom=0,
            top=1,
            fill_color="colour",
            line_color=None,
            source=self.source,
        )
        fig.add_tools(
            HoverTool(
                renderers=[quads],
                tooltips=[
                    ("", "@status"),
                    ("from", "@left{%F %H:%M} UTC"),
                    ("until", "@right{%F %H:%M} UTC"),
                    ("why", "@why"),
                ],
                formatters={"@left": "datetime", "@right": "datetime"},
            )
        )
        fig.yaxis.visible = False
        fig.ygrid.grid_line_color = None

    def update(self, columns: Columns) -> None:
        """Show a page's status segments."""
        set_data(self.source, columns)
