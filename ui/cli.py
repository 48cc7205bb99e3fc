"""The ``tradewatch`` command line."""

from __future__ import annotations

import json
import math
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from application.importing import import_history, parse_theories, parse_time
from application.ledger import exit_reason
from domain.alert import AlertType
from domain.errors import DomainError
from domain.signal import SignalDraft
from domain.trade import Fill
from domain.values import Direction, utc
from infrastructure.bootstrap import Tradewatch, bootstrap
from projections import audit, faults
from projections.ledger import stamp
from projections.reports import Reports, TradeFilter
from ui import cli_errors

app = typer.Typer(
    help="tradewatch: do your trading signals make money? Record signals, entries and exits; "
    "see win rate, P&L and risk.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
signal_app = typer.Typer(help="Record or skip trading signals.", no_args_is_help=True)
app.add_typer(signal_app, name="signal")
controller_app = typer.Typer(
    help="The traffic light: pause, resume, or run it live.", no_args_is_help=True
)
app.add_typer(controller_app, name="controller")
alerts_app = typer.Typer(
    help="Alerts: list what was raised; relay them to NATS; tail them live.",
    invoke_without_command=True,
)
app.add_typer(alerts_app, name="alerts")
trade_app = typer.Typer(
    help="Mend a recorded trade: void one entered in error.", no_args_is_help=True
)
app.add_typer(trade_app, name="trade")

out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)

DECISION_KINDS = ("Controller.StatusChanged", "Controller.Paused", "Controller.Resumed")
NUMERIC_ARGS = {"ignore_unknown_options": True}
"""Let a negative price through to the domain, which names the problem."""

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]
MAX_DAYS = 36_500
"""The longest report window, 100 years (a larger one is a usage error, not an overflow)."""
DaysOpt = Annotated[
    int | None,
    typer.Option("--days", min=1, max=MAX_DAYS, help="Only trades closed in the last N days."),
]
TodayOpt = Annotated[
    bool,
    typer.Option("--today", help="Only trades closed today (TRADEWATCH_TIMEZONE's calendar day)."),
]
SourceOpt = Annotated[
    str | None, typer.Option("--source", help="Only signals from this source, e.g. v7.")
]
SymbolOpt = Annotated[str | None, typer.Option("--symbol", help="Only this symbol, e.g. BTCUSDT.")]
DirectionOpt = Annotated[str | None, typer.Option("--direction", help="Only long or short trades.")]
AsOfOpt = Annotated[
    str | None, typer.Option("--as-of", help="Report as things stood at this ISO 8601 time.")
]
AtOpt = Annotated[
    str | None,
    typer.Option("--at", help="When it happened (ISO 8601; default now; UTC if no zone)."),
]


def fail(message: str, code: int = 2) -> NoReturn:
    """Print a one-line error and exit with ``code``."""
    cli_errors.print_error(err, message)
    raise typer.Exit(code)


@contextmanager
def opened() -> Iterator[Tradewatch]:
    """A wired tradewatch, brought up to date; domain errors become one-line errors."""
    try:
        tw = bootstrap()
    except ValidationError as e:
        fail(f"bad setting: {setting_errors(e)}")
    except ValueError as e:  # a threshold or database URL the settings could not refuse alone
        fail(f"bad setting: {e}")
    except Exception as e:
        fail(f"cannot open the ledger: {e}", 1)
    try:
        tw.sync()
        warn_unreadable(tw)
        yield tw
        tw.sync()
    except DomainError as e:
        fail(str(e))
    finally:
        tw.close()


def warn_unreadable(tw: Tradewatch) -> None:
    """One line on stderr when stored events had to be left out of the reports."""
    left_out = tw.unreadable()
    if left_out:
        err.print(
            f"[bold yellow]warning:[/] {escape(faults.summary(left_out))}; the reports answer "
            "without it: see 'tradewatch audit verify'",
            highlight=False,
            soft_wrap=True,
        )


def setting_errors(error: ValidationError) -> str:
    """Pydantic's settings errors on one line, named as the environment variables."""
    return "; ".join(
        f"TRADEWATCH_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']} (got {e['input']!r})"
        for e in error.errors()
    )


def number(name: str, text: str) -> float:
    """Parse a number from the command line, refusing NaN and infinities."""
    try:
        value = float(text)
    except ValueError:
        fail(f"{name} must be a number, not {text!r}")
    if not math.isfinite(value):
        fail(f"{name} must be a finite number, got {text}")
    return value


def moment(text: str | None) -> datetime:
    """``--at`` as a UTC datetime (now when not given)."""
    if text is None:
        return datetime.now(UTC)
    try:
        return parse_time(text)
    except DomainError as e:
        fail(str(e))


def since_stamp(text: str | None) -> str | None:
    """``--since`` as the read models store times: the instant, whatever its offset."""
    if text is None:
        return None
    try:
        return stamp(utc(moment(text)))
    except DomainError as e:
        fail(str(e))


def print_json(data: Any) -> None:
    """Stable JSON for scripts: sorted keys, two-space indent."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def reports_for(tw: Tradewatch, as_of: str | None) -> Reports:
    """Live reports, or the reports as of a past moment."""
    return tw.as_of(moment(as_of)) if as_of else tw.reports


def trade_filter(
    days: int | None,
    source: str | None,
    symbol: str | None,
    direction: str | None,
    today: bool = False,
) -> TradeFilter:
    """A filter from the common report options."""
    if today and days is not None:
        fail("use --today or --days, not both")
    if direction is not None:
        try:
            direction = Direction.parse(direction).value
        except DomainError as e:
            fail(str(e))
    return TradeFilter(days=days, source=source, symbol=symbol, direction=direction, today=today)


# Signals ------------------------------------------------------------------------------


@signal_app.command("add", context_settings=NUMERIC_ARGS)
def signal_add(
    signal_id: Annotated[str, typer.Argument(help="Your id for the signal (e.g. the V7 id).")],
    symbol: Annotated[str, typer.Option(help="Instrument, e.g. BTCUSDT.")],
    direction: Annotated[str, typer.Option(help="long or short.")],
    source: Annotated[str, typer.Option(help="Strategy or generator that issued it.")] = "manual",
    confidence: Annotated[str | None, typer.Option(help="Model confidence, 0 to 1.")] = None,
    entry: Annotated[str | None, typer.Option(help="Entry price (or the low of the zone).")] = None,
    entry_high: Annotated[str | None, typer.Option(help="High of the entry zone.")] = None,
    stop: Annotated[str | None, typer.Option(help="Stop-loss price.")] = None,
    take_profit: Annotated[str | None, typer.Option(help="Take-profit price.")] = None,
    size: Annotated[str | None, typer.Option(help="Position size.")] = None,
    timeframe: Annotated[str | None, typer.Option(help="Timeframe, e.g. 15m.")] = None,
    model_version: Annotated[
        str | None, typer.Option(help="Model version that produced it.")
    ] = None,
    theory: Annotated[
        list[str] | None, typer.Option(help="Theory contribution as name=score; repeatable.")
    ] = None,
    at: AtOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record a signal. The same id with the same facts again is a no-op."""

    def opt(name: str, value: str | None) -> float | None:
        return None if value is None else number(name, value)

    with opened() as tw:
        draft = SignalDraft(
            signal_id=signal_id,
            symbol=symbol,
            direction=Direction.parse(direction),
            at=moment(at),
            source=source,
            confidence=opt("confidence", confidence),
            entry_low=opt("entry", entry),
            entry_high=opt("entry-high", entry_high),
            stop_loss=opt("stop", stop),
            take_profit=opt("take-profit", take_profit),
            position_size=opt("size", size),
            timeframe=timeframe,
            model_version=model_version,
            theories=parse_theories(";".join(theory or [])),
        )
        result = tw.ledger.record_signal(draft, timed=at is not None)
    report(
        as_json,
        {"signal_id": signal_id, "stored": result.stored},
        f"signal {signal_id} recorded"
        if result.stored
        else f"signal {signal_id} already recorded (no change)",
    )


@signal_app.command("skip")
def signal_skip(
    signal_id: Annotated[str, typer.Argument(help="The signal not taken.")],
    reason: Annotated[str, typer.Option(help="Why it was not traded.")] = "not taken",
    at: AtOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Mark a signal as not traded, so ignored signals are tracked too."""
    with opened() as tw:
        tw.ledger.skip_signal(signal_id, reason, moment(at))
    report(
        as_json, {"signal_id": signal_id, "skipped": True}, f"signal {signal_id} skipped: {reason}"
    )


# Entries and exits ----------------------------------------------------------------------


@app.command(context_settings=NUMERIC_ARGS)
def entry(
    args: Annotated[
        list[str],
        typer.Argument(
            help="SIGNAL_ID PRICE, or just PRICE with --symbol and --direction.",
            metavar="[SIGNAL_ID] PRICE",
        ),
    ],
    qty: Annotated[
        str | None, typer.Option(help="Quantity (units of the base asset; default 1).")
    ] = None,
    fee: Annotated[
        str | None,
        typer.Option(help="Fee paid, an amount in quote currency (not a rate; default 0)."),
    ] = None,
    symbol: Annotated[str | None, typer.Option(help="For a manual trade without a signal.")] = None,
    direction: Annotated[
        str | None, typer.Option(help="For a manual trade: long or short.")
    ] = None,
    source: Annotated[str, typer.Option(help="Source of a manual trade's signal.")] = "manual",
    correct: Annotated[
        bool,
        typer.Option(
            "--correct",
            help="Correct the recorded entry (kept in history); what is not given is kept.",
        ),
    ] = False,
    reason: Annotated[str, typer.Option(help="Why the entry is corrected.")] = "correction",
    force: Annotated[
        bool, typer.Option("--force", help="Enter a signal the controller blocked (recorded).")
    ] = False,
    at: AtOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record a trade entry on a signal (or a manual trade without one)."""
    if len(args) == 1 and symbol and direction:
        price_text, signal_id = args[0], None
    elif len(args) == 2 and not (symbol or direction):
        signal_id, price_text = args
    else:
        fail("give SIGNAL_ID PRICE, or PRICE with --symbol and --direction")
    with opened() as tw:
        if correct and signal_id is not None:
            result = tw.ledger.correct_entry(
                signal_id,
                reason,
                price=number("entry price", price_text),
                qty=None if qty is None else number("qty", qty),
                fee=None if fee is None else number("fee", fee),
                at=None if at is None else moment(at),
            )
            trade = tw.ledger.trade(signal_id)
            assert trade is not None
            fill = trade.entry
        else:
            fill = Fill.checked(
                number("entry price", price_text),
                number("qty", qty or "1"),
                number("fee", fee or "0"),
                moment(at),
                "entry",
            )
            if signal_id is None:
                side = Direction.parse(str(direction))
                gate = tw.ledger.gate_in_force()
                if gate.blocked and not force:
                    again = cli_errors.forced_entry(
                        symbol, side.value, price_text, qty or "1", fee or "0", source, at
                    )
                    fail(
                        f"the controller is {gate.status.upper()}: no trade was recorded; "
                        f"to record it anyway, run: {again}"
                    )
                result = tw.ledger.record_manual_trade(str(symbol), side, fill, source, force=force)
            else:
                result = tw.ledger.record_entry(signal_id, fill, force=force)
    what = "corrected" if correct else "recorded"
    report(
        as_json,
        {"signal_id": result.signal_id, "price": fill.price, "qty": fill.qty},
        f"entry {what} for signal {result.signal_id} @ {fill.price:g}"
        + ("" if signal_id else f"\n{result.signal_id}"),
    )


@app.command("exit", context_settings=NUMERIC_ARGS)
def exit_(
    signal_id: Annotated[str, typer.Argument(help="The signal whose trade is closed.")],
    price: Annotated[str, typer.Argument(help="Exit price.")],
    reason: Annotated[
        str | None,
        typer.Argument(
            help="take_profit, stop_loss, manual, timeout, liquidation, or your own words."
        ),
    ] = None,
    fee: Annotated[
        str | None, typer.Option(help="Exit fee, an amount in quote currency (default 0).")
    ] = None,
    correct: Annotated[
        bool,
        typer.Option(
            "--correct",
            help="Correct the recorded exit (kept in history); what is not given is kept.",
        ),
    ] = False,
    why: Annotated[
        str | None, typer.Option("--reason", help="With --correct: why the exit is corrected.")
    ] = None,
    at: AtOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record the exit of a trade: P&L, outcome and hold time follow."""
    if why is not None and not correct:
        fail("--reason is why an exit is corrected: use it with --correct")
    with opened() as tw:
        if correct:
            tw.ledger.correct_exit(
                signal_id,
                why or "correction",
                price=number("exit price", price),
                fee=None if fee is None else number("fee", fee),
                exit_reason=None if reason is None else exit_reason(reason),
                at=None if at is None else moment(at),
            )
        else:
            tw.ledger.record_exit(
                signal_id,
                number("exit price", price),
                number("fee", fee or "0"),
                exit_reason(reason),
                moment(at),
            )
        tw.sync()
        trade = tw.reports.trade(signal_id)
    data = trade or {"signal_id": signal_id}
    text = (
        f"{data.get('outcome')} on signal {signal_id}: {data.get('pnl_pct', 0):+.2f}% "
        f"({data.get('pnl_quote', 0):+.2f} quote), held {data.get('hold_minutes', 0):.0f} min"
    )
    report(as_json, data, ("exit corrected: " if correct else "") + text)


@trade_app.command("void")
def trade_void(
    signal_id: Annotated[str, typer.Argument(help="The signal whose trade was entered in error.")],
    reason: Annotated[str, typer.Option(help="Why the trade is void (recorded).")],
    as_json: JsonOpt = False,
) -> None:
    """Void a trade entered in error: kept in history and the audit trail, out of every metric."""
    with opened() as tw:
        tw.ledger.void_trade(signal_id, reason)
    report(as_json, {"signal_id": signal_id, "voided": True}, f"trade of signal {signal_id} void")


def report(as_json: bool, data: Any, text: str) -> None:
    """Print either JSON or a line for people."""
    if as_json:
        print_json(data)
    else:
        out.print(text, markup=False, highlight=False)


# Reports --------------------------------------------------------------------------------


def fmt(value: Any, kind: str = "") -> str:
    """A metric for people: percentages, fractions, money, or a dash for null."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return "∞" if value == "inf" else value
    if kind == "fraction":
        return f"{value * 100:.1f}%"
    if kind == "pct":
        return f"{value:+.2f}%"
    if kind == "money":
        return f"{value:,.2f}"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


STAT_ROWS = (
    ("Closed trades", "total_trades", ""),
    ("Wins / losses / breakevens", None, ""),
    ("Win rate", "win_rate", "fraction"),
    ("Win rate, last 20", "win_rate_last_20", "fraction"),
    ("Average win", "avg_win_pct", "pct"),
    ("Average loss", "avg_loss_pct", "pct"),
    ("Average trade", "avg_pnl_pct", "pct"),
    ("Total P&L", "total_pnl", "money"),
    ("Profit factor", "profit_factor", ""),
    ("Expectancy (per trade)", "expectancy", "money"),
    ("Expectancy ratio", "expectancy_ratio", ""),
    ("SQN", "sqn", ""),
    ("Sharpe (daily, √365)", "sharpe", ""),
    ("Sortino (daily, √365)", "sortino", ""),
    ("Max drawdown", "max_drawdown", "fraction"),
    ("Calmar", "calmar", ""),
    ("Current streak", "current_streak", ""),
    ("Consecutive losses", "consecutive_losses", ""),
    ("Today's P&L", "today_pnl", "money"),
    ("Today's P&L (of equity)", "today_pnl_pct", "fraction"),
    ("Equity", "final_equity", "money"),
    ("Open positions", "open_positions", ""),
)


@app.command()
def stats(
    days: DaysOpt = None,
    today: TodayOpt = False,
    source: SourceOpt = None,
    symbol: SymbolOpt = None,
    direction: DirectionOpt = None,
    as_of: AsOfOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Win rate, P&L, profit factor and risk metrics (definitions: docs/metrics.md)."""
    flt = trade_filter(days, source, symbol, direction, today)
    with opened() as tw:
        reports = reports_for(tw, as_of)
        positions = reports.positions(flt)
        data = reports.stats_of(reports.performance(flt).report(), flt, positions)
        recent = reports.trades(flt, limit=10)
    if as_json:
        print_json(data)
        return
    table = Table(title=f"Performance — {flt.describe()}", show_header=False, title_justify="left")
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    for label, key, kind in STAT_ROWS:
        if key is None:
            table.add_row(label, f"{data['wins']} / {data['losses']} / {data['breakevens']}")
        else:
            table.add_row(label, fmt(data[key], kind))
    out.print(table)
    out.print(trades_table("Open positions", positions))
    out.print(trades_table("Recent trades", recent))


def trades_table(title: str, rows: list[dict[str, Any]]) -> Table:
    """A rich table of trades."""
    table = Table(title=title, title_justify="left")
    for column in (
        "signal",
        "symbol",
        "side",
        "entry",
        "exit",
        "qty",
        "P&L %",
        "P&L",
        "outcome",
        "reason",
    ):
        table.add_column(
            column,
            justify="right" if column in ("entry", "exit", "qty", "P&L %", "P&L") else "left",
        )
    for t in rows:
        outcome = t["outcome"] or "open"
        colour = {"win": "green", "loss": "red"}.get(outcome, "")
        table.add_row(
            t["signal_id"],
            t["symbol"],
            t["direction"],
            f"{t['entry_price']:g}",
            "—" if t["exit_price"] is None else f"{t['exit_price']:g}",
            f"{t['qty']:g}",
            fmt(t["pnl_pct"], "pct"),
            fmt(t["pnl_quote"], "money"),
            f"[{colour}]{outcome}[/]" if colour else outcome,
            t["exit_reason"] or "",
        )
    if not rows:
        table.add_row(*(["—"] + [""] * 9))
    return table


@app.command()
def positions(as_of: AsOfOpt = None, as_json: JsonOpt = False) -> None:
    """Open trades."""
    with opened() as tw:
        rows = reports_for(tw, as_of).positions()
    if as_json:
        print_json(rows)
    else:
        out.print(trades_table("Open positions", rows))


@app.command()
def trades(
    limit: Annotated[int, typer.Option(min=1, help="How many of the latest trades.")] = 20,
    source: SourceOpt = None,
    symbol: SymbolOpt = None,
    direction: DirectionOpt = None,
    as_of: AsOfOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The latest trades, open and closed."""
    flt = trade_filter(None, source, symbol, direction)
    with opened() as tw:
        rows = reports_for(tw, as_of).trades(flt, limit=limit)
    if as_json:
        print_json(rows)
    else:
        out.print(trades_table(f"Latest {limit} trades", rows))


@app.command()
def theories(
    days: DaysOpt = None, source: SourceOpt = None, as_of: AsOfOpt = None, as_json: JsonOpt = False
) -> None:
    """Which theories' signals make money (with 95 % Wilson intervals on win rates)."""
    flt = trade_filter(days, source, None, None)
    with opened() as tw:
        rows = reports_for(tw, as_of).theories(flt)
    if as_json:
        print_json(rows)
        return
    table = Table(title="Theory attribution", title_justify="left")
    for column in (
        "theory",
        "signals",
        "trades",
        "mean score",
        "win rate",
        "95% interval",
        "P&L",
        "weighted P&L",
        "correct",
    ):
        table.add_column(column, justify="left" if column == "theory" else "right")
    for r in rows:
        low, high = r["win_rate_low"], r["win_rate_high"]
        interval = "—" if low is None else f"{fmt(low, 'fraction')}–{fmt(high, 'fraction')}"
        table.add_row(
            str(r["theory"]),
            str(r["signals"]),
            str(r["trades"]),
            fmt(r["mean_contribution"]),
            fmt(r["win_rate"], "fraction"),
            interval,
            fmt(r["pnl"], "money"),
            fmt(r["weighted_pnl"], "money"),
            fmt(r["correct_rate"], "fraction"),
        )
    out.print(table)


@app.command()
def calibration(
    days: DaysOpt = None, source: SourceOpt = None, as_of: AsOfOpt = None, as_json: JsonOpt = False
) -> None:
    """Is the model's confidence honest? Reliability bins, ECE and Brier score."""
    flt = trade_filter(days, source, None, None)
    with opened() as tw:
        data = reports_for(tw, as_of).calibration(flt)
    if as_json:
        print_json(data)
        return
    overall: dict[str, Any] = data["overall"]  # type: ignore[assignment]
    table = Table(
        title=f"Calibration — {overall['count']} trades with a confidence; "
        f"ECE {fmt(overall['ece'])}, Brier {fmt(overall['brier'])}",
        title_justify="left",
    )
    for column in ("confidence bin", "trades", "mean confidence", "actual win rate"):
        table.add_column(column, justify="right")
    for b in overall["bins"]:
        table.add_row(
            f"{b['low']:.1f}–{b['high']:.1f}",
            str(b["count"]),
            fmt(b["mean_confidence"], "fraction"),
            fmt(b["win_rate"], "fraction"),
        )
    out.print(table)


@app.command()
def equity(
    days: DaysOpt = None, source: SourceOpt = None, as_of: AsOfOpt = None, as_json: JsonOpt = False
) -> None:
    """The equity curve, daily P&L and drawdown."""
    flt = trade_filter(days, source, None, None)
    with opened() as tw:
        data = reports_for(tw, as_of).equity(flt)
    if as_json:
        print_json(data)
        return
    out.print(
        f"Equity {fmt(data['starting_balance'], 'money')} → {fmt(data['final_equity'], 'money')}; "
        f"max drawdown {fmt(data['max_drawdown'], 'fraction')} "
        f"({data['max_drawdown_start'] or '—'} → {data['max_drawdown_end'] or '—'})",
        highlight=False,
    )
    table = Table(title="Daily P&L", title_justify="left")
    table.add_column("date")
    table.add_column("P&L", justify="right")
    for day in data["daily_pnl"][-30:]:
        colour = "green" if day["pnl"] > 0 else "red" if day["pnl"] < 0 else ""
        table.add_row(
            day["date"], f"[{colour}]{day['pnl']:+,.2f}[/]" if colour else f"{day['pnl']:+,.2f}"
        )
    out.print(table)


# Bulk work --------------------------------------------------------------------------


def progress_bar(description: str) -> Progress:
    """A progress bar on stderr, so ``--json`` output stays clean."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="CSV (with header) or JSON file of trades.")],
    fmt_: Annotated[
        str | None, typer.Option("--format", help="csv or json (default: from the file name).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Import trade history, all or nothing per file; importing the same file twice adds nothing."""
    try:
        text = file.read_text(encoding="utf-8-sig")
    except OSError as e:
        fail(f"cannot read {file}: {e.strerror}")
    except UnicodeDecodeError:
        fail(f"{file} is not UTF-8 text")
    kind = (fmt_ or file.suffix.lstrip(".")).lower()
    if kind not in ("csv", "json"):
        fail(f"cannot tell the format of {file.name}; pass --format csv or --format json")
    rows = max(text.count("\n"), 1)
    with opened() as tw, progress_bar(f"importing {file.name}") as bar:
        task = bar.add_task(f"importing {file.name}", total=rows)
        summary = import_history(tw.ledger, text, kind, progress=lambda n: bar.advance(task, n))
        bar.update(task, completed=rows)
        tw.sync()
    data = {
        "rows": summary.rows,
        "signals": summary.signals,
        "entries": summary.entries,
        "exits": summary.exits,
        "unchanged": summary.unchanged,
    }
    report(
        as_json,
        data,
        f"imported {file.name}: {summary.signals} signals, {summary.entries} entries, "
        f"{summary.exits} exits; {summary.unchanged} rows already known",
    )


@app.command()
def replay(
    projection: Annotated[
        str | None, typer.Option(help="Rebuild only this read model (default: all).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Rebuild read models from event 0, beside the live ones, and swap them in when caught up."""
    with opened() as tw:
        if projection is not None and projection not in tw.engine.projections:
            known = ", ".join(sorted(tw.engine.projections))
            fail(f"unknown read model {projection!r} for --projection; one of {known}")
        with progress_bar("replaying") as bar:
            task = bar.add_task("replaying", total=None)

            def advance(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            started = datetime.now(UTC)
            position = tw.engine.replay([projection] if projection else None, advance)
            seconds = (datetime.now(UTC) - started).total_seconds()
    report(
        as_json,
        {
            "events": position,
            "seconds": seconds,
            "projections": [projection] if projection else list(tw.engine.projections),
        },
        f"replayed {position} events in {seconds:.2f}s",
    )


@app.command()
def project(
    follow: Annotated[
        bool, typer.Option("--follow", help="Keep following the log until stopped (Ctrl-C).")
    ] = False,
    poll: Annotated[float, typer.Option(help="Fallback poll interval in seconds.")] = 1.0,
) -> None:
    """Bring the read models up to date; with --follow, keep them live (for PostgreSQL)."""
    from infrastructure.live import waiter_for  # noqa: PLC0415 - only the daemon needs it

    with opened() as tw:
        applied = tw.sync()
        out.print(f"read models up to date ({applied} events applied); lag {tw.engine.lag()}")
        if not follow:
            return
        stop = threading.Event()
        out.print("following the event log; Ctrl-C to stop")
        try:
            tw.engine.follow(waiter_for(tw.settings.database), stop, poll_interval=poll)
        except KeyboardInterrupt:
            stop.set()


@app.command()
def demo(
    if_empty: Annotated[
        bool, typer.Option("--if-empty", help="Do nothing if the ledger already has signals.")
    ] = False,
    days: Annotated[int, typer.Option(min=1, max=3650, help="Days of history.")] = 90,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed, the same history.")] = 7,
) -> None:
    """Fill the ledger with a realistic, deterministic demo history (recorded as events)."""
    from application.demo import generate, has_demo, record  # noqa: PLC0415 - only the demo

    with opened() as tw:
        if if_empty and sum(tw.reports.signal_counts().values()) > 0:
            out.print(f"ledger at {tw.settings.database} already has history; demo not added")
            return
        if has_demo(tw.ledger):
            fail(
                f"the ledger at {tw.settings.database} already has the demo history; "
                "a demo is added once (use another TRADEWATCH_HOME for a fresh one)"
            )
        with progress_bar("recording demo history") as bar:
            task = bar.add_task("recording demo history", total=None)
            count = record(
                tw.ledger,
                generate(days=days, seed=seed),
                batch=10,
                progress=lambda n: bar.advance(task, n),
                after_batch=tw.sync,
            )
        tw.sync()
    out.print(f"recorded {count} demo signals over {days} days in {tw.settings.database}")


# Controller and audit -----------------------------------------------------------------

STATUS_COLOURS = {
    "green": "bold white on green",
    "yellow": "bold black on yellow",
    "red": "bold white on red",
}


def status_data(tw: Tradewatch) -> dict[str, Any]:
    """The controller status as the CLI and JSON show it."""
    controller = tw.controller.controller()
    changes = audit.by_kind(tw.store, ("Controller.StatusChanged",), last=1)
    rules = changes[-1]["data"]["rules"] if changes else []
    changed_at = controller.changed_at
    since = (datetime.now(UTC) - changed_at).total_seconds() if changed_at else None
    state = controller.state
    return {
        "status": controller.status.value,
        "multiplier": controller.multiplier,
        "paused": state.paused,
        "pause": None
        if state.pause is None
        else {"by": state.pause.by, "reason": state.pause.reason},
        "red_since": state.red_since.isoformat() if state.red_since else None,
        "changed_at": changed_at.isoformat() if changed_at else None,
        "seconds_since_change": since,
        "decision_id": controller.last_decision_id,
        "rules": rules,
        "fired": [r["text"] for r in rules if r.get("fired")],
    }


def age(seconds: float | None) -> str:
    """``3h 12m`` from seconds."""
    if seconds is None:
        return "never changed"
    minutes = int(seconds // 60)
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    return (f"{days}d " if days else "") + (f"{hours}h " if hours or days else "") + f"{mins}m"


@app.command()
def status(as_json: JsonOpt = False) -> None:
    """The traffic light: GREEN, YELLOW or RED, its size multiplier and the rules behind it."""
    with opened() as tw:
        data = status_data(tw)
    if as_json:
        print_json(data)
        return
    colour = STATUS_COLOURS[data["status"]]
    out.print(
        f"[{colour}] {data['status'].upper()} [/] size x{data['multiplier']:g}, "
        f"for {age(data['seconds_since_change'])}",
        highlight=False,
    )
    if data["pause"]:
        out.print(
            f"paused by {data['pause']['by']}: {data['pause']['reason']}",
            markup=False,
            highlight=False,
        )
    for rule in data["rules"]:
        mark = "[red]✗[/]" if rule.get("fired") else "[green]✓[/]"
        out.print(f"  {mark} {escape(rule['text'])}", highlight=False)


def operator() -> str:
    """Who is at the keyboard, for the record."""
    import getpass  # noqa: PLC0415

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@controller_app.command("pause")
def controller_pause(
    reason: Annotated[str, typer.Option(help="Why trading stops (recorded).")],
    by: Annotated[str | None, typer.Option(help="Who pauses (default: your user name).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Stop trading now: RED until resumed; recorded with who and why."""
    with opened() as tw:
        tw.controller.pause(by or operator(), reason)
        tw.sync()
        data = status_data(tw)
    report(as_json, data, f"trading paused: {reason}")


@controller_app.command("resume")
def controller_resume(
    reason: Annotated[str, typer.Option(help="Why trading may resume (recorded).")],
    by: Annotated[str | None, typer.Option(help="Who resumes (default: your user name).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Lift a pause or a RED cool-down; the numbers decide the colour at once."""
    with opened() as tw:
        tw.controller.resume(by or operator(), reason)
        tw.sync()
        data = status_data(tw)
    report(as_json, data, f"resumed: now {data['status'].upper()} (size x{data['multiplier']:g})")


@controller_app.command("run")
def controller_run(
    poll: Annotated[float, typer.Option(help="Fallback poll interval in seconds.")] = 1.0,
) -> None:
    """Follow the log live and decide on every exit and day boundary (PostgreSQL deployments)."""
    from infrastructure.live import waiter_for  # noqa: PLC0415 - only the daemon needs it

    with opened() as tw:
        waiter = waiter_for(tw.settings.database)
        out.print("controller following the event log; Ctrl-C to stop")
        try:
            while True:
                tw.sync()
                waiter.wait(poll)
        except KeyboardInterrupt:
            out.print("stopped")


def audit_data(tw: Tradewatch, signal_id: str) -> dict[str, Any]:
    """The causal trail of one signal: itself, the gate in force, entry, exit, decisions, alerts."""
    signal = tw.ledger.signal(signal_id)
    steps = audit.trail(tw.store, str(signal.id))
    gate_decision = (
        audit.event(tw.store, signal.gate.decision_id) if signal.gate.decision_id else None
    )
    trade = tw.reports.trade(signal_id)
    return {
        "signal_id": signal_id,
        "correlation_id": str(signal.id),
        "gate": {
            "status": signal.gate.status,
            "multiplier": signal.gate.multiplier,
            "blocked": signal.gate.blocked,
            "decision": gate_decision,
        },
        "pnl": None
        if trade is None
        else {k: trade[k] for k in ("pnl_pct", "pnl_quote", "outcome", "status")},
        "steps": steps,
    }


def describe_step(step: dict[str, Any]) -> str:
    """One line per audit step."""
    data, kind = step["data"], step["kind"]
    if kind.startswith("Signal.") and "symbol" in data:
        theories = ", ".join(f"{k}={v:g}" for k, v in data.get("theories", {}).items())
        extra = f" model {data['model_version']}" if data.get("model_version") else ""
        gates = data.get("quality_gates") or {}
        gate_text = "; ".join(
            f"{k} {g['value']:g} vs {g['threshold']:g} {'ok' if g['passed'] else 'FAIL'}"
            for k, g in gates.items()
        )
        return (
            f"{data['direction']} {data['symbol']} conf {data.get('confidence')}{extra}"
            f" [{data['controller_status']} x{data['size_multiplier']:g}"
            f"{', BLOCKED' if data['blocked'] else ''}]"
            + (f" theories {theories}" if theories else "")
            + (f" gates {gate_text}" if gate_text else "")
        )
    if kind == "Trade.EntryRecorded":
        return f"entry {data['price']:g} x {data['qty']:g}, fee {data['fee']:g}" + (
            " (FORCED past the controller)" if data.get("forced") else ""
        )
    if kind == "Trade.EntryCorrected":
        return f"entry corrected to {data['price']:g} x {data['qty']:g}: {data['reason']}"
    if kind == "Trade.ExitRecorded":
        return f"exit {data['price']:g} ({data['reason']}), fee {data['fee']:g}"
    if kind == "Trade.ExitCorrected":
        return f"exit corrected to {data['price']:g} ({data['exit_reason']}): {data['reason']}"
    if kind == "Trade.Voided":
        return f"trade voided: {data['reason']}"
    if kind == "Controller.StatusChanged":
        fired = "; ".join(r["text"] for r in data["rules"] if r.get("fired")) or "rules cleared"
        change = f"{data['old_status']} -> {data['new_status']} x{data['multiplier']:g}"
        return f"controller {change}: {fired}"
    if kind == "Alert.Raised":
        return f"{data['type']} alert ({data['severity']}): {data['title']}"
    if kind in ("Controller.Paused", "Controller.Resumed"):
        return f"{kind.split('.')[1].lower()} by {data['by']}: {data['reason']}"
    return ", ".join(f"{k}={v}" for k, v in data.items())


@app.command("audit")
def audit_cmd(
    target: Annotated[
        str | None,
        typer.Argument(help="A SIGNAL_ID to trace, or 'verify' to check the hash chain."),
    ] = None,
    controller: Annotated[
        bool, typer.Option("--controller", help="List every controller decision with its reasons.")
    ] = False,
    since: Annotated[
        str | None, typer.Option(help="With --controller: only from this time.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Why did it tell me to trade, at what size, and why did it stop me? The causal trail."""
    with opened() as tw:
        if target == "verify":
            check = audit.verify_chain(tw.engine.log, tw.store)
            left_out = tw.unreadable()
            data: Any = {
                "ok": check.ok,
                "checked": check.checked,
                "problem": check.problem,
                "notification_id": check.notification_id,
                "unreadable": [vars(found) for found in left_out],
            }
            if as_json:
                print_json(data)
            elif check.ok:
                out.print(f"hash chain intact over {check.checked} events")
            if not check.ok:
                fail(f"tamper evidence: {check.problem}", 1)
            events = faults.by_event(left_out)
            for group in events if not as_json else ():
                out.print(f"left out: {faults.summary(group)}", markup=False, highlight=False)
            if events:
                fail(f"{len(events)} stored event(s) cannot be read into the reports", 1)
            return
        if controller:
            stamp_ = since_stamp(since)
            data = audit.by_kind(tw.store, DECISION_KINDS, stamp_)
            if as_json:
                print_json(data)
                return
            for step in data:
                out.print(
                    f"{step['at']}  #{step['notification_id']}  {describe_step(step)}",
                    markup=False,
                    highlight=False,
                )
            if not data:
                out.print("no controller decisions yet")
            return
        if target is None:
            fail("give a SIGNAL_ID, 'verify', or --controller")
        data = audit_data(tw, target)
    if as_json:
        print_json(data)
        return
    gate = data["gate"]
    decision = gate["decision"]
    out.print(
        f"[bold]signal {escape(target)}[/] — controller was {gate['status'].upper()} "
        f"x{gate['multiplier']:g}"
        + (
            f", set by decision {decision['event_id']} (#{decision['notification_id']})"
            if decision
            else ""
        ),
        highlight=False,
    )
    for step in data["steps"]:
        out.print(
            f"{step['at']}  #{step['notification_id']}  {step['kind']}: {describe_step(step)}",
            markup=False,
            highlight=False,
        )
    if data["pnl"] and data["pnl"]["pnl_pct"] is not None:
        p = data["pnl"]
        out.print(
            f"P&L {p['pnl_pct']:+.2f}% ({p['pnl_quote']:+.2f}), {p['outcome']}", highlight=False
        )


SEVERITY_STYLES = {"info": "cyan", "warning": "yellow", "critical": "bold red"}


@alerts_app.callback()
def alerts_list(
    ctx: typer.Context,
    since: Annotated[str | None, typer.Option(help="Only alerts from this ISO 8601 time.")] = None,
    type_: Annotated[
        AlertType | None, typer.Option("--type", help="Only this type, e.g. critical.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest last.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """List raised alerts from the read model (published or not)."""
    if ctx.invoked_subcommand is not None:
        return
    stamp_ = since_stamp(since)
    with opened() as tw:
        rows = audit.by_kind(tw.store, ("Alert.Raised",), stamp_)
    rows = [r for r in rows if type_ is None or r["data"]["type"] == type_.value][-limit:]
    alerts = [
        {
            "id": r["event_id"],
            "notification_id": r["notification_id"],
            "at": r["at"],
            **{k: r["data"][k] for k in ("type", "severity", "title", "text", "data", "publish")},
        }
        for r in rows
    ]
    if as_json:
        print_json(alerts)
        return
    for a in alerts:
        style = SEVERITY_STYLES.get(a["severity"], "")
        quiet = "" if a["publish"] else " (silent)"
        out.print(
            f"{a['at']}  [{style}]{a['type']}[/]{quiet}  {escape(a['title'])}", highlight=False
        )
    if not alerts:
        out.print("no alerts")


NO_NATS = (
    "TRADEWATCH_NATS_URL is unset: alerts are recorded and listed by 'tradewatch alerts' but not "
    "relayed; set it, e.g. TRADEWATCH_NATS_URL=nats://127.0.0.1:4222"
)


@alerts_app.command("relay")
def alerts_relay(
    once: Annotated[
        bool, typer.Option("--once", help="Publish what is pending (acknowledged), then exit.")
    ] = False,
    heartbeat_interval: Annotated[
        float,
        typer.Option(min=0.1, help="Seconds between heartbeats on tradewatch.heartbeat."),
    ] = 30.0,
) -> None:
    """Publish alerts to NATS JetStream in order, with a heartbeat, until Ctrl-C or SIGTERM."""
    import asyncio  # noqa: PLC0415 - only the NATS commands need these
    import logging  # noqa: PLC0415

    from infrastructure import nats_relay  # noqa: PLC0415

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logging.getLogger("tradewatch").addHandler(handler)
    logging.getLogger("tradewatch").setLevel(logging.INFO)
    with opened() as tw:
        if not tw.settings.nats_url:
            fail(NO_NATS)
        try:
            options = nats_relay.connect_options(tw.settings)
        except OSError as e:
            fail(f"cannot use the NATS TLS files: {e}")
        relay = nats_relay.AlertRelay(tw.ledger, tw.engine.log, options)
        if once:
            try:
                asyncio.run(nats_relay.publish_pending(relay))
            except nats_relay.RelayUnavailableError as e:
                fail(str(e), 1)
            done = relay.stats
            already = f" ({done.duplicates} were already there)" if done.duplicates else ""
            out.print(f"published {done.published} alerts to {nats_relay.STREAM}{already}")
            return
        err.print(
            f"relaying alerts to {nats_relay.servers_text(options)} "
            f"(stream {nats_relay.STREAM}); Ctrl-C to stop",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        nats_relay.run_until_signalled(
            lambda stop: nats_relay.serve(tw, relay, stop, heartbeat_interval=heartbeat_interval)
        )


@alerts_app.command("tail")
def alerts_tail(
    subject: Annotated[
        str, typer.Option(help="Subjects to follow, within tradewatch.alerts.>.")
    ] = "tradewatch.alerts.>",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print each raw JSON payload on a line of its own.")
    ] = False,
) -> None:
    """Print alerts as they are published, one line each (time, type, severity, title)."""
    from infrastructure import nats_relay  # noqa: PLC0415 - only the NATS commands need it
    from infrastructure.settings import Settings  # noqa: PLC0415

    if subject != "tradewatch.alerts.>" and not subject.startswith("tradewatch.alerts."):
        fail(f"--subject must be within tradewatch.alerts.>, not {subject!r}")
    try:
        settings = Settings()
        options = nats_relay.connect_options(settings, reconnect=True)
    except nats_relay.RelayUnavailableError:
        fail(NO_NATS)
    except (ValueError, OSError) as e:
        fail(f"bad settings: {e}")

    def ready() -> None:
        err.print(
            f"tailing {subject} on {nats_relay.servers_text(options)}; Ctrl-C to stop",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )

    async def show() -> None:
        async for payload, message in nats_relay.tail(options, subject, ready):
            if isinstance(message, str):
                err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
            elif as_json:
                sys.stdout.write(payload.decode(errors="replace") + "\n")
                sys.stdout.flush()
            else:
                style = SEVERITY_STYLES.get(message.severity.value, "")
                out.print(
                    f"{message.time.isoformat()}  [{style}]{message.type.value}[/]  "
                    f"{message.severity.value}  {escape(message.title)}",
                    highlight=False,
                    soft_wrap=True,
                )

    try:
        nats_relay.run_until_signalled(lambda stop: nats_relay.until(stop, show()))
    except nats_relay.RelayUnavailableError as e:
        fail(str(e), 1)


@app.command()
def dashboard(
    host: Annotated[
        str, typer.Option(help="Address to listen on; anything but loopback needs a password.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 5006,
    allow_origin: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-origin",
            help="Another origin whose pages may connect, e.g. https://dash.example.com "
            "(a reverse proxy's); repeatable. Default: the bound host and port only.",
        ),
    ] = None,
) -> None:
    """The live web dashboard: traffic light, numbers, charts, signals, trades and audit.

    Log in with the password in TRADEWATCH_DASHBOARD_PASSWORD (any user name),
    or as a user of the JSON file TRADEWATCH_DASHBOARD_USERS names.

    On PostgreSQL, run `project --follow` and `controller run` beside it.
    """
    from ui.dashboard import DashboardError, access, serve  # noqa: PLC0415 - loads Panel

    try:
        users = access(host)
    except DashboardError as e:
        fail(str(e))
    with opened() as tw:
        try:
            serve(
                tw,
                host,
                port,
                users,
                lambda text: out.print(text, markup=False),
                allow_origin or (),
            )
        except DashboardError as e:
            fail(str(e))


def main(args: list[str] | None = None) -> None:
    """Console-script entry point: every error ends as one line (see :mod:`ui.cli_errors`)."""
    sys.exit(cli_errors.run(app, args, err))
