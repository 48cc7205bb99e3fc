"""Alerts as people read them: the V4 plan's six formats, for Telegram and for e-mail.

:func:`layout` turns a published :class:`~infrastructure.alert_message.AlertMessage` (and
nothing else: a sink reads no database) into one neutral :class:`Layout`: a head (an icon
and a few words, as the plan's ``🌅 <b>Daily Status</b>``), then fields (``Win Rate:
72.0%``), lines of text, bullets and a preformatted block (a signal's copy-paste block).
The renderers draw that layout as Telegram HTML (:func:`telegram_parts`: escaped, split
into parts of at most 4,096 characters), as plain text and as e-mail HTML.

A layout never fails: an alert whose ``data`` lacks what its type's format needs (cut to
fit, or from another version) is shown with its title and text.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import tzinfo
from enum import StrEnum
from typing import Any

from domain.alert import AlertType
from infrastructure.alert_message import AlertMessage

TELEGRAM_LIMIT = 4096
"""Telegram's limit on one message's text after entity parsing (counted here in UTF-16
code units, as Telegram counts, so an emoji counts 2)."""
_PART_MARK = 9
"""Room kept on each part's head for `` (99/99)``."""
LIGHTS = {"green": "🟢", "yellow": "🟡", "red": "🔴"}
ICONS = {
    AlertType.DAILY_STATUS: "🌅",
    AlertType.SIGNAL: "📈",
    AlertType.WARNING: "🟡",
    AlertType.CRITICAL: "🔴",
    AlertType.WEEKLY_REPORT: "📊",
    AlertType.PREDICTIVE_WARNING: "⚠️",
}
TRUNCATED = "Cut to fit; the whole alert: tradewatch alerts --json"


class Kind(StrEnum):
    """How a block of a layout is drawn."""

    FIELD = "field"
    TEXT = "text"
    BULLET = "bullet"
    PRE = "pre"


@dataclass(frozen=True)
class Block:
    """One block: a ``label: text`` field, a line of text, a bullet or a preformatted block."""

    kind: Kind
    text: str
    label: str = ""

    @property
    def visible(self) -> str:
        """The block as the reader sees it."""
        if self.kind is Kind.FIELD:
            return f"{self.label}: {self.text}"
        if self.kind is Kind.BULLET:
            return f"• {self.text}"
        return self.text


@dataclass(frozen=True)
class Layout:
    """An alert laid out for people: a head (icon, title) and blocks."""

    icon: str
    head: str
    blocks: tuple[Block, ...]

    @property
    def subject(self) -> str:
        """One line: the head, for an e-mail subject."""
        return " ".join(f"{self.icon} {self.head}".split())


def field(label: str, text: str) -> Block:
    """A ``label: text`` line."""
    return Block(Kind.FIELD, text, label)


# Figures --------------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def percent(value: Any) -> str:
    """A fraction as a percentage (``0.72`` → ``72.0%``); ``n/a`` when unknown."""
    x = _number(value)
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.1%}"


def money(value: Any) -> str:
    """An amount with its sign, as the plan shows P&L (``+$12.50``); ``n/a`` when unknown."""
    x = _number(value)
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{'-' if x < 0 else '+'}${abs(x):,.2f}"


def decimal(value: Any, places: int = 2) -> str:
    """A number with ``places`` decimals; ``∞`` for infinity; ``n/a`` when unknown."""
    x = _number(value)
    if x is None or math.isnan(x):
        return "n/a"
    return "∞" if math.isinf(x) else f"{x:.{places}f}"


def count(value: Any) -> str:
    """A whole number; ``n/a`` when unknown."""
    x = _number(value)
    return "n/a" if x is None or not math.isfinite(x) else str(int(x))


def light(status: Any) -> str:
    """``green`` → ``🟢 GREEN``."""
    name = str(status).lower()
    return f"{LIGHTS.get(name, '⚪')} {name.upper()}"


def plain(value: Any) -> str:
    """A name or other short value; ``n/a`` when missing."""
    return "n/a" if value is None or value == "" else str(value)


# The six formats -------------------------------------------------------------------------


def _when(message: AlertMessage, zone: tzinfo) -> Block:
    return field("Time", message.time.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z"))


def _daily(m: AlertMessage, zone: tzinfo) -> Layout:
    d = m.data
    day = m.time.astimezone(zone).strftime("%a %d %b %Y")
    return Layout(
        ICONS[m.type],
        "Daily Status",
        (
            field("Date", day),
            field("Status", light(d["status"])),
            field("Win Rate (last 20)", percent(d["win_rate_last_20"])),
            field("Today's P&L", money(d["today_pnl"])),
            field("Yesterday's P&L", money(d["yesterday_pnl"])),
            field("Signals Ready", count(d["signals_ready"])),
            field("Open Positions", count(d["open_positions"])),
        ),
    )


def _signal(m: AlertMessage, zone: tzinfo) -> Layout:
    d = m.data
    side = str(d["direction"]).upper()
    blocks = [field("Confidence", percent(d.get("confidence")))] if d.get("confidence") else []
    blocks.append(Block(Kind.PRE, m.text))
    status = d.get("controller_status")
    if status:
        multiplier = _number(d.get("size_multiplier"))
        size = f" (size x{multiplier:g})" if multiplier is not None and multiplier != 1 else ""
        blocks.append(field("Status", light(status) + size))
    for label, key in (("Timeframe", "timeframe"), ("Model", "model_version")):
        if d.get(key):
            blocks.append(field(label, str(d[key])))
    blocks += [field("Signal", str(d["signal_id"])), _when(m, zone)]
    icon = "📉" if side == "SHORT" else ICONS[m.type]
    return Layout(icon, f"Signal: {d['symbol']} {side}", tuple(blocks))


def _controller(m: AlertMessage, zone: tzinfo) -> Layout:
    d = m.data
    red = str(d["new_status"]).lower() == "red"
    multiplier = _number(d["multiplier"])
    blocks = [
        field("Size", "n/a" if multiplier is None else f"x{multiplier:g}"),
        field("Was", light(d["old_status"])),
        Block(Kind.TEXT, "Rules:"),
        *(Block(Kind.BULLET, line) for line in m.text.splitlines() if line.strip()),
        _when(m, zone),
    ]
    head = "RED - Stop Trading" if red else "YELLOW - Reduce Risk"
    return Layout(ICONS[m.type], head, tuple(blocks))


def _weekly(m: AlertMessage, zone: tzinfo) -> Layout:
    d = m.data
    return Layout(
        ICONS[m.type],
        "Weekly Report",
        (
            field("Week", f"the 7 days to {m.time.astimezone(zone).date().isoformat()}"),
            field("Trades", count(d["trades"])),
            field("Win Rate", percent(d["win_rate"])),
            field("P&L", money(d["pnl"])),
            field("Profit Factor", decimal(d["profit_factor"])),
            field("Max Drawdown", percent(d["max_drawdown"])),
            field("Best Theory", plain(d["best_theory"])),
            field("Worst Theory", plain(d["worst_theory"])),
            field("Calibration ECE", decimal(d["calibration_ece"], 3)),
            field("Status", light(d["status"])),
        ),
    )


def _predictive(m: AlertMessage, zone: tzinfo) -> Layout:
    blocks = [Block(Kind.TEXT, m.title)]
    blocks += [Block(Kind.TEXT, line) for line in m.text.splitlines() if line.strip()]
    return Layout(ICONS[m.type], "Predictive Warning", (*blocks, _when(m, zone)))


def _as_recorded(m: AlertMessage, zone: tzinfo) -> Layout:
    lines = [Block(Kind.TEXT, line) for line in m.text.splitlines() if line.strip()]
    return Layout(ICONS[m.type], m.title, (*lines, _when(m, zone)))


_FORMATS: Mapping[AlertType, Callable[[AlertMessage, tzinfo], Layout]] = {
    AlertType.DAILY_STATUS: _daily,
    AlertType.SIGNAL: _signal,
    AlertType.WARNING: _controller,
    AlertType.CRITICAL: _controller,
    AlertType.WEEKLY_REPORT: _weekly,
    AlertType.PREDICTIVE_WARNING: _predictive,
}


def layout(message: AlertMessage, zone: tzinfo) -> Layout:
    """The alert in its type's format, times shown in ``zone``; its title and text when
    its data does not fit the format."""
    try:
        laid = _FORMATS[message.type](message, zone)
    except (KeyError, TypeError, ValueError, AttributeError):
        laid = _as_recorded(message, zone)
    if message.truncated:
        laid = Layout(laid.icon, laid.head, (*laid.blocks, Block(Kind.TEXT, TRUNCATED)))
    return laid


# Rendering -------------------------------------------------------------------------------


def units(text: str) -> int:
    """``text``'s length as Telegram counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def escape(text: str) -> str:
    """Text safe in Telegram's HTML: ``<``, ``>`` and ``&`` as entities."""
    return html.escape(text, quote=False)


def _html(block: Block) -> str:
    if block.kind is Kind.PRE:
        return f"<pre>{escape(block.text)}</pre>"
    return escape(block.visible)


def _chunks(text: str, budget: int) -> list[str]:
    """``text`` in pieces of at most ``budget`` units, cut at line ends where possible."""
    pieces: list[str] = []
    current = ""
    for line in text.split("\n"):
        candidate = line if not current else f"{current}\n{line}"
        if units(candidate) <= budget:
            current = candidate
            continue
        if current:
            pieces.append(current)
        rest = line
        while units(rest) > budget:
            cut = budget
            while units(rest[:cut]) > budget:
                cut -= 1
            pieces.append(rest[:cut])
            rest = rest[cut:]
        current = rest
    pieces.append(current)
    return pieces


def telegram_parts(laid: Layout, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """The layout as Telegram HTML messages of at most ``limit`` visible units each.

    Blocks are packed whole into as few messages as fit; a block too long for one is cut
    at line ends (a preformatted block stays preformatted in each piece). When there is
    more than one part, each head says which it is: ``🌅 <b>Daily Status</b> (1/2)``.
    """
    head_units = units(f"{laid.icon} {laid.head}") + _PART_MARK
    budget = limit - head_units - 1
    blocks: list[Block] = []
    for block in laid.blocks:
        if units(block.visible) <= budget:
            blocks.append(block)
            continue
        prefix = units(block.visible) - units(block.text)
        for piece in _chunks(block.text, budget - prefix):
            blocks.append(Block(block.kind, piece, block.label))
    parts: list[list[Block]] = [[]]
    used = 0
    for block in blocks:
        size = units(block.visible) + 1
        if parts[-1] and used + size > budget + 1:
            parts.append([])
            used = 0
        parts[-1].append(block)
        used += size
    total = len(parts)
    rendered = []
    for index, part in enumerate(parts, start=1):
        mark = f" ({index}/{total})" if total > 1 else ""
        head = f"{escape(laid.icon)} <b>{escape(laid.head)}</b>{mark}"
        rendered.append("\n".join([head, *(_html(b) for b in part)]))
    return rendered


def plain_text(laid: Layout) -> str:
    """The layout as plain text (an e-mail's text part)."""
    return "\n".join([f"{laid.icon} {laid.head}", "", *(b.visible for b in laid.blocks)]) + "\n"


def email_html(laid: Layout) -> str:
    """The layout as a small HTML document (an e-mail's HTML part)."""
    body: list[str] = [f"<p>{escape(laid.icon)} <b>{escape(laid.head)}</b></p>"]
    lines: list[str] = []
    for block in laid.blocks:
        if block.kind is Kind.PRE:
            if lines:
                body.append(f"<p>{'<br>'.join(lines)}</p>")
                lines = []
            body.append(f"<pre>{escape(block.text)}</pre>")
        else:
            lines.append(escape(block.visible))
    if lines:
        body.append(f"<p>{'<br>'.join(lines)}</p>")
    return (
        '<!DOCTYPE html><html><body style="font-family: sans-serif">'
        + "".join(body)
        + "</body></html>\n"
    )
