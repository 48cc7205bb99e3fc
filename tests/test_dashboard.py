"""The dashboard end to end: the real ``tradewatch dashboard`` in a real (headless) Chromium.

Debian's /usr/bin/chromium drives the pages (``make browser`` installs it); without it the
browser tests skip. The ledger is built through the application, the server is the
installed console script on a free port, and every number on the page is compared with
``tradewatch stats --json`` on the same ledger.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest
from bokeh.document import Document
from bokeh.document.events import ColumnsPatchedEvent
from bokeh.models import ColumnDataSource

from application.ledger import exit_reason
from domain.signal import QualityGate, SignalDraft, copy_block
from domain.trade import Fill
from domain.values import Direction
from infrastructure.bootstrap import bootstrap
from infrastructure.settings import Settings
from projections.history import TradeHistory
from projections.reports import TradeFilter
from tests.conftest import CHROMIUM, TRADEWATCH, free_port
from ui.dashboard.charts import decimate, set_data
from ui.dashboard.data import Decisions, build_page, build_shared
from ui.dashboard.server import DashboardError, cookie_secret, credentials, is_loopback

PASSWORD = "Exact-Case Pass!9"
WAIT = 120.0
"""How long a test waits for a condition on the page before it fails (seconds): generous, as
a page on a loaded machine can take half a minute to draw all of today's signals."""
WAIT_MS = int(WAIT * 1000)
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
DOCS_SCREENSHOT = ROOT / "docs" / "dashboard.png"
CARD_KEYS = (
    "win_rate_last_20",
    "today_pnl",
    "today_pnl_pct",
    "sharpe",
    "current_streak",
    "profit_factor",
    "max_drawdown",
    "open_positions",
)
CHART_DRAWN = """(name) => {
  if (!window.Bokeh || !Bokeh.index) return false;
  const view = [...Bokeh.index.all_views()].find(v => v.model.name === name);
  return !!view && view.has_finished()
    && view.model.renderers.some(r => r.data_source && r.data_source.get_length() > 0);
}"""
"""Whether the Bokeh chart of that name is drawn, with data in it."""
NEXT_FRAMES = "() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))"
"""Resolves once the browser has laid out and painted twice more (after a resize)."""

needs_browser = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's /usr/bin/chromium (make browser installs it)"
)


def environment(home: Path, database_url: str, **extra: str) -> dict[str, str]:
    """The test's environment for tradewatch processes: no TRADEWATCH_* of the caller's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWATCH_")}
    env.update(TRADEWATCH_HOME=str(home), TRADEWATCH_DATABASE_URL=database_url, **extra)
    return env


@contextmanager
def dashboard(env: dict[str, str], log: Path, *options: str) -> Iterator[str]:
    """``tradewatch dashboard [OPTIONS]`` on a free port; yields its URL once it answers."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [TRADEWATCH, "dashboard", "--port", str(port), *options],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "login", timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the dashboard did not start:\n{log.read_text()}")
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def scenario_clock() -> tuple[datetime, timedelta]:
    """The scenario's start and step: 45 steps ending now, all of them today (UTC)."""
    now = datetime.now(UTC)
    start = max(now - timedelta(minutes=45), now.replace(hour=0, minute=0, second=0))
    return start, (now - start) / 46


def record_scenario(settings: Settings) -> None:
    """An open BTC trade, 12 winning and then 5 losing ETH trades, then late signals.

    The win rate of the last 20 stays at 12/17 = 0.71 (>= 0.70), so only the run of five
    losses turns the light RED; the signals after that are recorded as blocked. Everything
    happens today, so that all of it is among today's signals.
    """
    start, step = scenario_clock()
    tw = bootstrap(settings)
    ledger = tw.ledger
    ledger.record_signal(
        SignalDraft(
            signal_id="open-1",
            symbol="BTCUSDT",
            direction=Direction.LONG,
            at=start,
            source="v7",
            confidence=0.81,
            entry_low=50_000,
            entry_high=50_100,
            stop_loss=49_000,
            take_profit=52_000,
            position_size=0.1,
            timeframe="15m",
            model_version="v7.3",
            theories={"momentum": 0.6, "volume": -0.2},
            quality_gates={"liquidity": QualityGate(value=1.5, threshold=1.0, passed=True)},
        )
    )
    ledger.record_entry("open-1", Fill.checked(50_050, 0.1, 2.5, start, "entry"))
    for i in range(17):
        at = start + (2 * i + 1) * step
        signal_id = f"t{i:02d}"
        ledger.record_signal(
            SignalDraft(signal_id=signal_id, symbol="ETHUSDT", direction=Direction.LONG, at=at)
        )
        ledger.record_entry(signal_id, Fill.checked(100, 1, 0, at, "entry"))
        win = i < 12
        ledger.record_exit(
            signal_id,
            102 if win else 99,
            0,
            exit_reason("take_profit" if win else "stop_loss"),
            at + step,
        )
        tw.sync()
    late = start + 40 * step
    for signal_id in ("late-1", "skip-1"):
        ledger.record_signal(
            SignalDraft(signal_id=signal_id, symbol="SOLUSDT", direction=Direction.SHORT, at=late)
        )
    ledger.skip_signal("skip-1", "not in the plan", late)
    tw.sync()
    tw.close()


def scenario_env(home: Path) -> dict[str, str]:
    """A SQLite ledger with the scenario in ``home``; the environment of a dashboard over it."""
    url = f"sqlite:///{home / 'ledger.db'}"
    record_scenario(Settings(home=home, database_url=url))
    return environment(home, url, TRADEWATCH_DASHBOARD_PASSWORD=PASSWORD)


@pytest.fixture(scope="module")
def ledger_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A SQLite ledger with the scenario, shared by the tests that only read it."""
    return scenario_env(tmp_path_factory.mktemp("dashboard"))


@pytest.fixture(scope="module")
def server(ledger_env: dict[str, str]) -> Iterator[str]:
    """The dashboard over the scenario ledger."""
    with dashboard(ledger_env, Path(ledger_env["TRADEWATCH_HOME"]) / "dashboard.log") as url:
        yield url


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page (no cookies) that may use the clipboard; ``page.requests`` lists URLs."""
    context = browser.new_context(
        viewport={"width": 1400, "height": 900}, permissions=["clipboard-read", "clipboard-write"]
    )
    context.set_default_timeout(WAIT_MS)
    new = context.new_page()
    requests: list[str] = []
    new.on("request", lambda request: requests.append(request.url))
    new.on("websocket", lambda ws: requests.append(ws.url))
    new.requests = requests
    yield new
    context.close()


def show_all_signals(page: Any, count: int) -> None:
    """Draw all ``count`` signals of today with the button under the first ones."""
    button = page.locator(".tw-more-signals button")
    assert button.inner_text() == f"Show all {count} signals of today"
    button.click()
    page.locator(".tw-signal-head").nth(count - 1).wait_for()
    assert page.locator(".tw-signal-head").count() == count


def log_in(page: Any, url: str, password: str = PASSWORD) -> None:
    """Open the dashboard and log in."""
    page.goto(url)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def shown_value(page: Any, key: str) -> Any:
    """The exact value behind a number on the page (its JSON ``data-value``)."""
    return json.loads(page.locator(f"[data-key={key}]").first.get_attribute("data-value"))


def cli_json(env: dict[str, str], *args: str) -> Any:
    """Run ``tradewatch ... --json`` and parse its output."""
    done = subprocess.run(
        [TRADEWATCH, *args, "--json"],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# Browser tests over the scenario ledger (SQLite) ------------------------------------------


@needs_browser
def test_wrong_password_is_refused_and_the_exact_one_opens_the_dashboard(
    server: str, page: Any
) -> None:
    for wrong in ("wrong", PASSWORD.lower()):
        log_in(page, server, wrong)
        assert "/login" in page.url
        assert "Invalid username or password" in page.locator("#error-message").inner_text()
    log_in(page, server)
    page.wait_for_selector(".tw-banner")
    assert "/login" not in page.url
    page.goto(server + "logout")
    assert "logged out" in page.content()
    page.goto(server)
    assert "/login" in page.url


@needs_browser
def test_banner_is_red_for_five_losses_in_a_row_and_states_are_shown(
    server: str, page: Any
) -> None:
    log_in(page, server)
    banner = page.locator(".tw-banner")
    banner.wait_for()
    assert banner.get_attribute("data-status") == "red"
    assert "RED" in banner.inner_text()
    fired = page.locator(".tw-rule.fired").all_inner_texts()
    assert any("consecutive_losses = 5 >= 5" in text for text in fired), fired
    assert not any("win_rate_last_20" in text for text in fired), fired
    assert shown_value(page, "multiplier") == 0
    page.wait_for_selector(".tw-signal-head[data-signal='late-1']")
    assert page.locator(".tw-signal-head").count() == 12  # the newest, at first
    show_all_signals(page, 20)
    heads = {
        signal: page.locator(f".tw-signal-head[data-signal='{signal}']").inner_text()
        for signal in ("open-1", "late-1", "skip-1")
    }
    assert "traded" in heads["open-1"] and "blocked" not in heads["open-1"]
    assert "blocked" in heads["late-1"]
    assert "skipped" in heads["skip-1"]


@needs_browser
def test_cards_show_the_numbers_of_stats_json(
    server: str, page: Any, ledger_env: dict[str, str]
) -> None:
    log_in(page, server)
    page.wait_for_selector("[data-key=open_positions]")
    expected = cli_json(ledger_env, "stats")
    for key in CARD_KEYS:
        shown = shown_value(page, key)
        if isinstance(expected[key], float):
            assert shown == pytest.approx(expected[key], rel=1e-12, abs=1e-12), key
        else:
            assert shown == expected[key], key
    assert expected["open_positions"] == 1
    assert expected["current_streak"] == -5


@needs_browser
def test_copy_button_copies_the_signals_block(
    server: str, page: Any, ledger_env: dict[str, str]
) -> None:
    log_in(page, server)
    show_all_signals(page, 20)
    page.locator(".tw-signal-head[data-signal='open-1']").click()
    card = page.locator(".tw-signal", has=page.locator("[data-signal='open-1']"))
    button = card.locator(".tw-copy button")
    button.click()
    expected = copy_block(
        {
            "symbol": "BTCUSDT",
            "direction": "long",
            "entry_low": 50_000.0,
            "entry_high": 50_100.0,
            "stop_loss": 49_000.0,
            "take_profit": 52_000.0,
            "position_size": 0.1,
            "sized_position": 0.1,
        }
    )
    deadline = time.monotonic() + WAIT
    while page.evaluate("navigator.clipboard.readText()") != expected:
        assert time.monotonic() < deadline, page.evaluate("navigator.clipboard.readText()")
        page.wait_for_timeout(100)
    assert expected == "BTCUSDT LONG\nEntry: 50000 - 50100\nSL: 49000\nTP: 52000\nSize: 0.1"


@needs_browser
def test_no_request_leaves_the_machine(server: str, page: Any) -> None:
    log_in(page, server)
    page.wait_for_function(CHART_DRAWN, arg="tw-equity", timeout=WAIT_MS)
    page.locator(".tabulator-row").first.wait_for()
    page.get_by_role("button", name="7 d").click()
    page.wait_for_selector(".tw-cards[data-filter='last 7 days']")
    page.get_by_role("button", name="Today", exact=True).click()
    page.wait_for_selector(".tw-cards[data-filter='today']")
    page.goto(server + "logout")
    assert len(page.requests) > 10
    elsewhere = [
        url
        for url in page.requests
        if urlsplit(url).scheme in ("http", "https", "ws", "wss")
        and urlsplit(url).hostname != "127.0.0.1"
    ]
    assert not elsewhere


@needs_browser
def test_a_new_exit_shows_without_a_reload(page: Any, tmp_path: Path) -> None:
    """The page follows the ledger: an exit recorded by the command line appears by itself.

    How quickly is measured by ``make bench`` (scripts/bench_dashboard.py), not here.
    """
    env = scenario_env(tmp_path)
    with dashboard(env, tmp_path / "dashboard.log") as url:
        log_in(page, url)
        page.wait_for_selector("[data-key=open_positions][data-value='1']")
        done = subprocess.run(
            [TRADEWATCH, "exit", "open-1", "51000", "take_profit"],
            check=False,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        page.wait_for_selector("[data-key=open_positions][data-value='0']", timeout=WAIT_MS)
        assert shown_value(page, "current_streak") == 1
        assert shown_value(page, "today_pnl") == pytest.approx(cli_json(env, "stats")["today_pnl"])


@needs_browser
def test_screenshot_of_the_demo_ledger(browser: Any, tmp_path: Path) -> None:
    env = environment(
        tmp_path, f"sqlite:///{tmp_path / 'demo.db'}", TRADEWATCH_DASHBOARD_PASSWORD=PASSWORD
    )
    demo = subprocess.run(
        [TRADEWATCH, "demo"], check=False, env=env, capture_output=True, text=True, timeout=120
    )
    assert demo.returncode == 0, demo.stderr
    with dashboard(env, tmp_path / "dashboard.log") as url:
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        log_in(page, url)
        for chart in ("tw-equity", "tw-pnl", "tw-calibration", "tw-theory-pnl"):
            page.wait_for_function(CHART_DRAWN, arg=chart, timeout=WAIT_MS)
        page.locator(".tabulator-row").first.wait_for()
        height = page.evaluate("() => document.getElementById('main').scrollHeight")
        page.set_viewport_size({"width": 1400, "height": height + 70})
        for chart in ("tw-equity", "tw-pnl", "tw-calibration", "tw-theory-pnl"):
            page.wait_for_function(CHART_DRAWN, arg=chart, timeout=WAIT_MS)
        page.evaluate(NEXT_FRAMES)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-demo.png"), full_page=True)
        if not DOCS_SCREENSHOT.exists() or os.environ.get("TRADEWATCH_UPDATE_SCREENSHOT"):
            page.screenshot(path=str(DOCS_SCREENSHOT), full_page=True)
        context.close()
    assert not errors
    assert (ARTIFACTS / "dashboard-demo.png").stat().st_size > 50_000


@needs_browser
@pytest.mark.postgres
def test_dashboard_on_postgresql(browser: Any, postgres_url: str, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, database_url=postgres_url)
    tw = bootstrap(settings)
    at = datetime.now(UTC) - timedelta(minutes=5)
    tw.ledger.record_signal(
        SignalDraft(signal_id="pg-1", symbol="BTCUSDT", direction=Direction.LONG, at=at)
    )
    tw.ledger.record_entry("pg-1", Fill.checked(100, 1, 0, at, "entry"))
    tw.sync()
    tw.close()
    env = environment(tmp_path, postgres_url, TRADEWATCH_DASHBOARD_PASSWORD=PASSWORD)
    with dashboard(env, tmp_path / "dashboard.log") as url:
        context = browser.new_context()
        page = context.new_page()
        log_in(page, url)
        assert page.locator(".tw-banner").get_attribute("data-status") == "green"
        assert shown_value(page, "open_positions") == 1
        context.close()


# Without a browser -----------------------------------------------------------------------


def test_a_public_host_needs_a_password(tmp_path: Path) -> None:
    env = environment(tmp_path, f"sqlite:///{tmp_path / 'ledger.db'}")
    done = subprocess.run(
        [TRADEWATCH, "dashboard", "--host", "0.0.0.0", "--port", str(free_port())],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "without a password" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_loopback_hosts() -> None:
    assert all(map(is_loopback, ("127.0.0.1", "localhost", "::1", "127.0.0.2")))
    assert not any(map(is_loopback, ("0.0.0.0", "192.168.1.2", "example.org", "::")))


def test_cookie_secret_is_made_once_and_private(tmp_path: Path) -> None:
    secret = cookie_secret(tmp_path / "home")
    path = tmp_path / "home" / "cookie_secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(secret) >= 40
    path.chmod(0o644)
    assert cookie_secret(tmp_path / "home") == secret
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_credentials_from_the_environment(tmp_path: Path) -> None:
    assert credentials({}) is None
    anyone = credentials({"TRADEWATCH_DASHBOARD_PASSWORD": "Pa55 Word"})
    assert anyone is not None and "whoever" in anyone and anyone["whoever"] == "Pa55 Word"
    users = tmp_path / "users.json"
    users.write_text(json.dumps({"ann": "One!", "bob": "Two?"}))
    env = {"TRADEWATCH_DASHBOARD_USERS": str(users), "TRADEWATCH_DASHBOARD_PASSWORD": "x"}
    found = credentials(env)
    assert found == {"ann": "One!", "bob": "Two?"} and "eve" not in found
    users.write_text(json.dumps(["ann"]))
    with pytest.raises(DashboardError, match="JSON object"):
        credentials(env)
    with pytest.raises(DashboardError, match="cannot read"):
        credentials({"TRADEWATCH_DASHBOARD_USERS": str(tmp_path / "missing.json")})


def test_decimate_keeps_the_extremes() -> None:
    rng = np.random.default_rng(1)
    values = np.cumsum(rng.normal(size=100_000))
    keep = decimate(values, 2000)
    assert len(keep) <= 2000
    assert {0, len(values) - 1, int(np.argmin(values)), int(np.argmax(values))} <= set(keep)
    assert list(decimate(values[:10], 2000)) == list(range(10))


def test_page_data_reads_the_read_models(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'ledger.db'}")
    record_scenario(settings)
    tw = bootstrap(settings)
    try:
        history = TradeHistory()
        history.refresh(tw.store, tw.engine.projections["ledger"].config())
        decisions = Decisions()
        decisions.refresh(tw)
        shared = build_shared(tw, history, decisions)
        page = build_page(tw, history, TradeFilter(), shared)
        curves = ("equity_curve", "daily_pnl")
        full = {k: v for k, v in tw.reports.stats().items() if k not in curves}
        assert page.stats == {**full, "as_of": page.stats["as_of"]}
        assert [s["signal_id"] for s in page.signals][-1] == "open-1"
        assert len(page.series.rolling["rate"]) == 17 - 9  # from the 10th exit on
        assert page.series.rolling["rate"][-1] == pytest.approx(12 / 17)
        assert page.series.timeline["status"][-1] == "RED"
        assert shared.status["status"] == "red"
    finally:
        tw.close()


def test_chart_data_is_sent_whole_patched_or_not_at_all() -> None:
    source = ColumnDataSource(data={"x": np.array([], dtype=np.float64)})
    times = np.array(["2024-01-01T00:00", "2024-01-02T00:00"], dtype="datetime64[ms]")
    first = {"t": times, "y": np.array([1.0, np.nan]), "why": ["a", "b"]}
    set_data(source, first)
    assert source.data["t"] is not times, "the source keeps its own copy"
    document = Document()
    document.add_root(source)
    sent: list[Any] = []
    document.on_change(
        lambda event: sent.append(
            event.patches if isinstance(event, ColumnsPatchedEvent) else "data"
        )
    )
    set_data(source, {**first, "y": np.array([1.0, np.nan])})
    assert sent == [], "same values (NaN included): nothing to send"
    later = times.copy()
    later[-1] = np.datetime64("2024-01-03T00:00", "ms")
    set_data(source, {**first, "t": later})
    assert sent == [{"t": [(1, later[1])]}], "one moved edge: a patch of one value"
    assert times[-1] == np.datetime64("2024-01-02T00:00", "ms"), "the page's columns untouched"
    set_data(source, {"t": later[:1], "y": np.array([2.0]), "why": ["c"]})
    assert sent[-1] == "data" and list(source.data["why"]) == ["c"]
