"""The dashboard's data: everything a page shows, read from the read models only (CQRS).

All database work runs on one thread, the :class:`Hub`'s, so the Panel event loop never
waits on the database and no connection is shared between threads. The hub polls the
read models' position four times a second (bringing them up to date first in the embedded
SQLite mode) and caches each page on that position, so that browsers share one build per
change, and a page is rebuilt at the latest a minute after the last build (the clock moves
"today" and the day windows even when nothing is recorded).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

from domain.signal import copy_block
from infrastructure.bootstrap import Tradewatch
from projections import audit
from projections.history import TradeHistory
from projections.metrics import calibration, theory_attribution
from projections.reports import Reports, TradeFilter
from ui.cli import DECISION_KINDS, status_data
from ui.dashboard.charts import Segments, Series, series, status_segments

T = TypeVar("T")
Position = tuple[int, ...]

ALERT_KINDS = ("Alert.Raised",)
WINDOWS: dict[str, tuple[bool, int | None]] = {
    "Today": (True, None),
    "7 d": (False, 7),
    "30 d": (False, 30),
    "All": (False, None),
}
"""The window filter: (``TradeFilter.today``, ``TradeFilter.days``) of each choice."""
POLL_SECONDS = 0.1
FULL_REFRESH_SECONDS = 60.0
RECENT_TRADES = 200
ALERTS_SHOWN = 100
SIGNAL_CHOICES = 500
CACHED_FILTERS = 16
REBUILT_AHEAD = 4
"""How many of the latest filters' pages are rebuilt as soon as the read models move on."""

log = logging.getLogger("tradewatch.dashboard")


@dataclass(frozen=True)
class Shared:
    """What every filter shares: the traffic light, decisions, alerts and choices."""

    status: dict[str, Any]
    decisions: list[dict[str, Any]]
    """Every controller decision, oldest first."""
    segments: Segments
    """The traffic light over time, from the decisions."""
    alerts: list[dict[str, Any]]
    """The latest alerts, newest first."""
    symbols: list[str]
    signal_ids: list[str]
    """The latest signals' ids, newest first (choices of the audit drill-down)."""


@dataclass(frozen=True)
class Page:
    """One filter's view of the ledger at one read-model position."""

    flt: TradeFilter
    position: Position
    shared: Shared
    stats: dict[str, Any]
    series: Series
    calibration: dict[str, Any]
    theories: list[dict[str, Any]]
    positions: list[dict[str, Any]]
    trades: list[dict[str, Any]]
    signals: list[dict[str, Any]]
    """Today's signals (in the configured zone), newest first, with their trade if any."""
    as_of: datetime
    build_seconds: float


def position_of(tw: Tradewatch) -> Position:
    """Where the read models stand: every projection's last applied event."""
    return tuple(position for _, position in sorted(tw.engine.positions().items()))


class Decisions:
    """Every controller decision, oldest first, read incrementally, with its segments."""

    def __init__(self) -> None:
        self.all: list[dict[str, Any]] = []
        self.segments = status_segments([])

    def refresh(self, tw: Tradewatch) -> None:
        """Read the decisions recorded since the last refresh."""
        after = self.all[-1]["notification_id"] if self.all else 0
        new = audit.by_kind(tw.store, DECISION_KINDS, after=after)
        if new:
            self.all = self.all + new
            self.segments = status_segments(self.all)


def build_shared(tw: Tradewatch, history: TradeHistory, decisions: Decisions) -> Shared:
    """The filter-independent part of a page (``history`` and ``decisions`` refreshed)."""
    with tw.store.reading() as cur:
        cur.execute("SELECT signal_id FROM signals ORDER BY at DESC LIMIT ?", (SIGNAL_CHOICES,))
        signal_ids = [row[0] for row in cur.fetchall()]
    return Shared(
        status=status_data(tw),
        decisions=decisions.all,
        segments=decisions.segments,
        alerts=audit.by_kind(tw.store, ALERT_KINDS, last=ALERTS_SHOWN)[::-1],
        symbols=history.symbols(),
        signal_ids=signal_ids,
    )


def build_page(
    tw: Tradewatch,
    history: TradeHistory,
    flt: TradeFilter,
    shared: Shared,
    position: Position = (),
) -> Page:
    """Everything one filter's page shows, from the read models (``history`` already
    refreshed), as of now."""
    started = time.perf_counter()
    now = datetime.now(UTC)
    reports = Reports(
        tw.store,
        starting_balance=tw.settings.starting_balance,
        timezone=tw.settings.timezone,
        now=now,
        history=history,
    )
    closed = reports.closed_trades(flt)
    performance = reports.performance(flt, closed)
    positions = reports.positions(flt)
    signal_scores = history.signal_scores(
        symbol=flt.symbol, direction=flt.direction, source=flt.source
    )
    return Page(
        flt=flt,
        position=position,
        shared=shared,
        stats=reports.stats_of(dict(performance.figures), flt, positions),
        series=series(
            performance, closed, shared.segments, now, reports.since(flt), tw.settings.min_sample
        ),
        calibration=calibration(closed),
        theories=theory_attribution(signal_scores, closed),
        positions=positions,
        trades=reports.trades(flt, limit=RECENT_TRADES),
        signals=[{**row, "copy": copy_block(row)} for row in reports.todays_signals(flt)],
        as_of=now,
        build_seconds=time.perf_counter() - started,
    )


@dataclass
class _Cached:
    page: Page
    built: float = field(default_factory=time.monotonic)


class Hub:
    """The dashboard's one database thread: polls, syncs (embedded mode) and builds pages."""

    def __init__(self, tw: Tradewatch) -> None:
        self.tw = tw
        self.embedded = urlsplit(tw.settings.database).scheme == "sqlite"
        self.position: Position = ()
        """The read models' position at the last poll (read by the browser sessions)."""
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="tradewatch-db")
        self._stop = threading.Event()
        self._poller = threading.Thread(
            target=self._poll_forever, name="tradewatch-poll", daemon=True
        )
        self._synced_last = -1
        self._synced_at = -FULL_REFRESH_SECONDS
        self._shared: tuple[Position, float, Shared] | None = None
        self._pages: OrderedDict[TradeFilter, _Cached] = OrderedDict()
        self.history = TradeHistory()
        self.decisions = Decisions()
        self._history_position: Position | None = None
        self._listeners: set[Callable[[], None]] = set()
        self._listening = threading.Lock()
        ledger = tw.engine.projections["ledger"]
        self._ledger_config = ledger.config()

    def start(self) -> None:
        """Take the first position, build the default page, then poll in the background."""
        self.position = self.call(self.poll)
        self.call(self.page, TradeFilter())
        self._poller.start()

    def stop(self) -> None:
        """Stop polling and finish the database work under way."""
        self._stop.set()
        if self._poller.is_alive():
            self._poller.join()
        self._executor.shutdown(wait=True)

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Run ``fn(*args)`` on the database thread."""
        return self._executor.submit(fn, *args)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the database thread and wait for it."""
        return self.submit(fn, *args).result()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the database thread without blocking the event loop."""
        return await asyncio.wrap_future(self.submit(fn, *args))

    def listen(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (from the polling thread) when the read models move on, once the
        pages already asked for are rebuilt."""
        with self._listening:
            self._listeners.add(callback)

    def forget(self, callback: Callable[[], None]) -> None:
        """Stop calling ``callback``."""
        with self._listening:
            self._listeners.discard(callback)

    def _poll_forever(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            try:
                position = self.call(self.poll)
                moved = position != self.position
                if moved:
                    self.call(self._rebuild)
                self.position = position
            except Exception:
                log.exception("polling the read models failed; retrying")
                continue
            if moved:
                with self._listening:
                    listeners = list(self._listeners)
                for callback in listeners:
                    try:
                        callback()
                    except Exception:
                        log.exception("a dashboard session could not be told; forgetting it")
                        self.forget(callback)

    def _rebuild(self) -> None:
        """Rebuild the pages browsers showed last, ahead of their asking."""
        for flt in list(self._pages)[-REBUILT_AHEAD:]:
            self.page(flt)

    def poll(self) -> Position:
        """The read models' position; in the embedded mode, brought up to date first.

        ``tw.sync()`` runs only when the log grew, or once a minute for the controller's
        day boundary, so that an idle tick costs two small queries.
        """
        if self.embedded:
            last = self.tw.engine.log.last_id()
            now = time.monotonic()
            if last != self._synced_last or now - self._synced_at >= FULL_REFRESH_SECONDS:
                self.tw.sync()
                self._synced_last = self.tw.engine.log.last_id()
                self._synced_at = now
        return position_of(self.tw)

    def page(self, flt: TradeFilter) -> Page:
        """The page of ``flt`` at the current position, built at most a minute ago."""
        position = position_of(self.tw)
        now = time.monotonic()
        cached = self._pages.get(flt)
        if (
            cached is not None
            and cached.page.position == position
            and now - cached.built < FULL_REFRESH_SECONDS
        ):
            self._pages.move_to_end(flt)
            return cached.page
        if self._history_position != position:
            self.history.refresh(self.tw.store, self._ledger_config)
            self.decisions.refresh(self.tw)
            self._history_position = position
        if (
            self._shared is None
            or self._shared[0] != position
            or now - self._shared[1] >= FULL_REFRESH_SECONDS
        ):
            self._shared = (position, now, build_shared(self.tw, self.history, self.decisions))
        page = build_page(self.tw, self.history, flt, self._shared[2], position)
        self._pages[flt] = _Cached(page)
        self._pages.move_to_end(flt)
        while len(self._pages) > CACHED_FILTERS:
            self._pages.popitem(last=False)
        return page
