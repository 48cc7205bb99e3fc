"""Benchmark the dashboard over a large ledger (SQLite): page data, first paint, live update.

Run ``python -m scripts.bench_dashboard --help``. The ledger holds ``--trades`` closed
trades (100,000 by default) recorded through the domain in batches, one after another over
three years, with the demo's signals, theories and confidences, and brought up to date
(read models, controller decisions, alerts) before anything is measured. ``--ledger DIR``
keeps it there and reuses it on the next run.

* **server**: building the page's data from the read models (``build_shared`` and
  ``build_page``: traffic light, stats, series, theories, calibration, trades, today's
  signals, decisions, alerts), cold, and again from the dashboard's cache (same read-model
  position). Beside it, measured in the same run: the naive ``Reports.stats()`` that
  recomputes the stats from the whole ``trades`` table, and a raw SQL read of the same rows.
* **browser**: headless Chromium (Debian's ``/usr/bin/chromium``) against the real
  ``tradewatch dashboard``: time from navigation to the banner, the cards and the equity
  curve drawn (the Bokeh plot view finished with data in it), over ``--loads`` loads.
* **live**: a new entry recorded (by another process, as the CLI would) while the page is
  open and drawn, until the page shows it; ``LIVE_SAMPLES`` times.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from application.demo import DemoTrade, generate, record
from domain.signal import SignalDraft
from domain.trade import Fill
from domain.values import Direction
from infrastructure.bootstrap import Tradewatch, bootstrap
from infrastructure.settings import Settings
from projections.reports import TradeFilter
from ui.dashboard.data import Hub

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "bench-Password!"
HISTORY_DAYS = 3 * 365
BROWSER_TARGET_S = 2.0
SERVER_TARGET_MS = 100.0
LIVE_TARGET_S = 2.0
LIVE_SAMPLES = 5
READY = """() => {
  if (!document.querySelector || !window.Bokeh || !Bokeh.index) return false;
  const view = [...Bokeh.index.all_views()].find(v => v.model.name === "tw-equity");
  return !!view && view.has_finished()
    && view.model.renderers.some(r => r.data_source && r.data_source.get_length() > 0);
}"""


def say(text: str) -> None:
    """Progress on stderr, so ``--json`` output stays clean."""
    print(text, file=sys.stderr, flush=True)


def history(trades: int, end: datetime) -> Iterator[DemoTrade]:
    """``trades`` closed trades (and the skipped signals between them), one after another.

    The demo's yearly histories (seeds 1, 2, …) are laid end to end over three years up to
    ``end``, each signal traded and closed before the next, as one careful trader would.
    """
    traded = signals = 0
    span = timedelta(days=HISTORY_DAYS)
    gap = span / (trades * 1.2)
    start = end - span
    for seed in range(1, 10_000):
        for item in generate(days=365, seed=seed, end=datetime(2025, 1, 1, tzinfo=UTC)):
            if not item.skipped and item.exit_price is None:
                continue  # still open at the end of that year
            at = start + signals * gap
            signals += 1
            draft = replace(item.draft, signal_id=f"b{seed:03d}-{item.draft.signal_id[5:]}", at=at)
            if item.skipped or item.entry is None:
                yield replace(item, draft=draft)
                continue
            yield replace(
                item, draft=draft, entry=replace(item.entry, at=at), exit_at=at + gap * 0.8
            )
            traded += 1
            if traded >= trades:
                return


def closed_trades(settings: Settings) -> int:
    """How many closed trades the ledger's read model holds (0 if there is none)."""
    path = settings.home / "tradewatch.db"
    if not path.exists():
        return 0
    with contextlib.closing(sqlite3.connect(path)) as conn:
        try:
            row = conn.execute("SELECT COUNT(*) FROM trades WHERE status = 'closed'").fetchone()
        except sqlite3.OperationalError:
            return 0
    return int(row[0])


def prepare(settings: Settings, trades: int) -> dict[str, float]:
    """Record the history unless the ledger already holds it; returns the timings."""
    if closed_trades(settings) >= trades:
        say(f"reusing the ledger in {settings.home} ({closed_trades(settings)} closed trades)")
        return {}
    if settings.home.exists():
        shutil.rmtree(settings.home)
    tw = bootstrap(settings)
    try:
        say(f"recording {trades} trades …")
        started = time.perf_counter()
        record(tw.ledger, history(trades, datetime.now(UTC) - timedelta(hours=2)), batch=5000)
        recorded = time.perf_counter()
        say("projecting, deciding and alerting …")
        tw.sync()
        synced = time.perf_counter()
    finally:
        tw.close()
    return {"record_s": recorded - started, "sync_s": synced - recorded}


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """The median wall time of ``fn`` in seconds, and its last result."""
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def server_side(tw: Tradewatch, repeat: int) -> dict[str, float]:
    """Page data as the dashboard builds it, beside the naive stats and a raw read of the
    trades, measured in the same run."""
    flt = TradeFilter()
    hub = Hub(tw)
    started = time.perf_counter()
    page = hub.page(flt)
    first = time.perf_counter() - started
    after_event = []
    for n in range(repeat):
        record_trade(tw, n)
        began = time.perf_counter()
        page = hub.page(flt)
        after_event.append(time.perf_counter() - began)
    windows = {}
    for label, other in (
        ("today", TradeFilter(today=True)),
        ("30d", TradeFilter(days=30)),
        ("symbol", TradeFilter(symbol="BTCUSDT")),
        ("short", TradeFilter(direction="short")),
    ):
        began = time.perf_counter()
        hub.page(other)
        windows[label] = time.perf_counter() - began
    cached, _ = timed(lambda: hub.page(flt), 20)
    naive, _ = timed(lambda: tw.reports.stats(flt), repeat)

    def raw() -> float:
        with tw.store.reading() as cur:
            cur.execute(
                "SELECT pnl_quote, outcome FROM trades WHERE status = 'closed' "
                "ORDER BY exit_time, signal_id"
            )
            rows = cur.fetchall()
        return float(sum(r[0] for r in rows))

    raw_s, _ = timed(raw, repeat)
    return {
        "trades": page.stats["total_trades"],
        "page_first_ms": first * 1000,
        "page_after_event_ms": statistics.median(after_event) * 1000,
        "page_after_event_max_ms": max(after_event) * 1000,
        **{f"page_{label}_ms": seconds * 1000 for label, seconds in windows.items()},
        "page_cached_ms": cached * 1000,
        "naive_stats_ms": naive * 1000,
        "raw_sql_read_ms": raw_s * 1000,
    }


def record_trade(tw: Tradewatch, n: int) -> None:
    """Record a signal, its entry and its exit, then bring everything up to date."""
    at = datetime.now(UTC)
    signal_id = f"bench-{at.timestamp():.0f}-{n}"
    tw.ledger.record_signal(
        SignalDraft(signal_id=signal_id, symbol="ETHUSDT", direction=Direction.SHORT, at=at)
    )
    tw.ledger.record_entry(signal_id, Fill.checked(3_000, 0.1, 0.1, at, "entry"), force=True)
    tw.ledger.record_exit(signal_id, 2_990, 0.1, "take_profit", at)
    tw.sync()


@contextlib.contextmanager
def dashboard(settings: Settings, port: int) -> Iterator[str]:
    """The real ``tradewatch dashboard`` over the ledger; yields its URL once it answers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWATCH_")}
    env.update(
        TRADEWATCH_HOME=str(settings.home),
        TRADEWATCH_DATABASE_URL=settings.database,
        TRADEWATCH_DASHBOARD_PASSWORD=PASSWORD,
    )
    command = str(Path(sys.executable).with_name("tradewatch"))
    log = settings.home / "dashboard.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [command, "dashboard", "--port", str(port)], env=env, stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 600
        while True:
            try:
                with urllib.request.urlopen(url + "login", timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the dashboard did not start:\n{log.read_text()}") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def browser_side(settings: Settings, loads: int, port: int) -> dict[str, Any]:
    """Navigation to banner, cards and equity curve; then a live entry until it shows."""
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - only with a browser

    say("starting the dashboard …")
    started = time.perf_counter()
    with dashboard(settings, port) as url, sync_playwright() as playwright:
        startup = time.perf_counter() - started
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.goto(url)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_function(READY, timeout=60_000)
        page.close()
        times = []
        for _ in range(loads):
            page = context.new_page()
            began = time.perf_counter()
            page.goto(url)
            page.wait_for_selector(".tw-banner")
            page.wait_for_selector("[data-key=open_positions]")
            page.wait_for_function(READY, timeout=60_000)
            times.append(time.perf_counter() - began)
            page.close()
        page = context.new_page()
        page.goto(url)
        page.wait_for_function(READY, timeout=60_000)
        page.get_by_text("Recent trades").wait_for()  # the details are drawn: the page is open
        lives = []
        for _ in range(LIVE_SAMPLES):
            time.sleep(1.0)
            opened = json.loads(
                page.locator("[data-key=open_positions]").first.get_attribute("data-value") or "0"
            )
            recorded = record_entry(settings)
            page.wait_for_selector(
                f"[data-key=open_positions][data-value='{opened + 1}']", timeout=120_000
            )
            lives.append(time.perf_counter() - recorded)
        browser.close()
    return {
        "server_start_s": startup,
        "load_median_s": statistics.median(times),
        "load_max_s": max(times),
        "loads": loads,
        "live_update_median_s": statistics.median(lives),
        "live_update_max_s": max(lives),
        "live_samples": len(lives),
    }


def record_entry(settings: Settings) -> float:
    """Record a new signal and its entry as the CLI would; returns when it was done."""
    tw = bootstrap(settings)
    try:
        at = datetime.now(UTC)
        signal_id = f"live-{at.timestamp():.0f}"
        tw.ledger.record_signal(
            SignalDraft(signal_id=signal_id, symbol="BTCUSDT", direction=Direction.LONG, at=at)
        )
        tw.ledger.record_entry(signal_id, Fill.checked(60_000, 0.01, 0.3, at, "entry"), force=True)
        tw.sync()
        return time.perf_counter()
    finally:
        tw.close()


def free_port() -> int:
    """A TCP port nothing listens on."""
    import socket  # noqa: PLC0415

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def verdict(value: float, target: float) -> str:
    """``met`` or ``MISSED`` against an upper bound."""
    return "met" if value < target else "MISSED"


def report(results: dict[str, Any]) -> str:
    """The figures for people, each beside its baseline and target."""
    s, b = results["server"], results.get("browser")
    lines = [
        f"dashboard benchmark — {s['trades']:,} closed trades, SQLite, "
        f"{results['machine']['cpus']} CPUs, Python {results['machine']['python']}",
    ]
    if results["prepare"]:
        p = results["prepare"]
        lines.append(
            f"  ledger recorded in {p['record_s']:.1f} s, brought up to date in {p['sync_s']:.1f} s"
        )
    lines += [
        "server: page data from the read models (the dashboard's hub, 'All' unless named)",
        f"  first build after start (history read)  {s['page_first_ms']:9.1f} ms",
        f"  after a new exit (median, max)          {s['page_after_event_ms']:9.1f} ms, "
        f"{s['page_after_event_max_ms']:.1f} ms   target < {SERVER_TARGET_MS:.0f} ms: "
        f"{'met' if s['page_after_event_max_ms'] < SERVER_TARGET_MS else 'MISSED'}",
        f"  other filters: today {s['page_today_ms']:.1f} ms, 30 d {s['page_30d_ms']:.1f} ms, "
        f"BTCUSDT {s['page_symbol_ms']:.1f} ms, short {s['page_short_ms']:.1f} ms",
        f"  cached (same position)                  {s['page_cached_ms']:9.2f} ms",
        f"  naive Reports.stats() from all trades   {s['naive_stats_ms']:9.1f} ms",
        f"  raw SQL read of the closed trades       {s['raw_sql_read_ms']:9.1f} ms",
        f"  ratio after-event / naive {s['page_after_event_ms'] / s['naive_stats_ms']:.3f}; "
        f"after-event / raw read {s['page_after_event_ms'] / s['raw_sql_read_ms']:.3f}",
    ]
    if b:
        lines += [
            "browser: navigation to banner, cards and equity curve drawn (headless Chromium)",
            f"  median of {b['loads']} loads {b['load_median_s']:.2f} s "
            f"({verdict(b['load_median_s'], BROWSER_TARGET_S)}), slowest {b['load_max_s']:.2f} s "
            f"({verdict(b['load_max_s'], BROWSER_TARGET_S)}); target < {BROWSER_TARGET_S:.0f} s",
            f"  server start (ledger synced, default page built) {b['server_start_s']:.1f} s",
            f"  live: a new entry shown on the open page {b['live_update_median_s']:.2f} s after "
            f"it was recorded (median of {b['live_samples']}, "
            f"{verdict(b['live_update_median_s'], LIVE_TARGET_S)}), slowest "
            f"{b['live_update_max_s']:.2f} s ({verdict(b['live_update_max_s'], LIVE_TARGET_S)}); "
            f"target < {LIVE_TARGET_S:.0f} s",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, prepare the ledger, measure, print."""
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench_dashboard", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--trades", type=int, default=100_000, help="closed trades in the ledger")
    parser.add_argument("--ledger", type=Path, help="keep (and reuse) the ledger in this folder")
    parser.add_argument("--loads", type=int, default=5, help="browser page loads to time")
    parser.add_argument("--repeat", type=int, default=3, help="server-side repetitions")
    parser.add_argument("--no-browser", action="store_true", help="server side only")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = parser.parse_args(argv)
    home = args.ledger or Path(tempfile.mkdtemp(prefix="tw-bench-dashboard-"))
    settings = Settings(home=home, database_url=f"sqlite:///{home / 'tradewatch.db'}")
    try:
        results: dict[str, Any] = {
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "prepare": prepare(settings, args.trades),
        }
        tw = bootstrap(settings)
        try:
            say("measuring the server side …")
            results["server"] = server_side(tw, args.repeat)
        finally:
            tw.close()
        if not args.no_browser and Path(CHROMIUM).exists():
            results["browser"] = browser_side(settings, args.loads, free_port())
        print(json.dumps(results, indent=2) if args.json else report(results))
    finally:
        if args.ledger is None:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
