"""The composition root: builds the ledger, its read store, the projection engine and reports."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

from application.alerts import AlertPolicy
from application.bookkeeping import Bookkeeper
from application.controller import ControllerProcess
from application.ledger import TradeLedger
from domain.days import zone_named
from infrastructure.readstore import PostgresReadStore, SQLiteReadStore
from infrastructure.settings import Settings, eventsourcing_env, private_file, sqlite_path
from projections import faults
from projections.audit import AuditProjection
from projections.engine import Progress, Projection, ProjectionEngine
from projections.facts import Fact, RecorderLog
from projections.ledger import LedgerProjection
from projections.reports import Reports
from projections.store import ReadStore

ENTRY_KINDS = ("Trade.EntryRecorded", "Trade.EntryCorrected")
EXIT_KINDS = ("Trade.ExitRecorded", "Trade.ExitCorrected")


@dataclass
class Tradewatch:
    """One wired-up tradewatch: write side, read side and the engine between them."""

    settings: Settings
    ledger: TradeLedger
    store: ReadStore
    engine: ProjectionEngine
    reports: Reports
    controller: ControllerProcess
    alerts: AlertPolicy

    def sync(self, progress: Progress | None = None) -> int:
        """Bring read models, the controller and the alerts up to date (embedded mode)."""
        applied = self.engine.catch_up(progress=progress)
        self.controller.run_once()
        applied += self.engine.catch_up()  # the controller's decisions, if any
        self.alerts.run_once()
        return applied + self.engine.catch_up()  # the alerts, if any

    def unreadable(self) -> list[faults.Unreadable]:
        """The stored events some reader had to leave out (see :mod:`projections.faults`)."""
        return faults.listed(self.store)

    def as_of(self, moment: datetime) -> Reports:
        """Reports as they stood at ``moment``: the events up to it replayed into memory.

        Facts count from their market time (the ``at`` of an entry or exit), so a trade
        whose exit came after ``moment`` shows as open.
        """
        store = SQLiteReadStore(":memory:")
        log = _UntilLog(RecorderLog(self.ledger.recorder), moment)
        ProjectionEngine(log, store, projections_for(self.settings), page_size=10_000).catch_up()
        return Reports(
            store,
            starting_balance=self.settings.starting_balance,
            timezone=self.settings.timezone,
            now=moment,
        )

    def close(self) -> None:
        """Release database connections."""
        self.store.close()
        self.ledger.close()


class _UntilLog:
    """The log, less the facts that happened after a moment.

    A trade counts as entered at its *effective* entry time, the time of its last entry
    or correction, so a correction that moves the entry earlier or later moves the trade;
    its exit likewise counts at the time of its last exit or exit correction.
    """

    def __init__(self, log: RecorderLog, moment: datetime) -> None:
        self.log = log
        self.moment = moment
        self.effective: dict[tuple[str, str], datetime] = {}
        position = 0
        while facts := log.read(position, 10_000):
            for fact in facts:
                group = _group(fact.kind)
                if group:
                    with suppress(*faults.UNREADABLE):
                        self.effective[(fact.aggregate_id, group)] = fact.business_time
            position = facts[-1].id

    def _happened(self, fact: Fact) -> bool:
        group = _group(fact.kind)
        try:
            at = self.effective[(fact.aggregate_id, group)] if group else fact.business_time
            return at <= self.moment
        except faults.UNREADABLE:
            return True  # no readable time: the read models leave it out, and name it

    def read(self, after: int, limit: int, until: int | None = None) -> list[Fact]:
        while facts := self.log.read(after, limit, until):
            kept = [f for f in facts if self._happened(f)]
            if kept:
                return kept
            after = facts[-1].id
        return []

    def last_id(self) -> int:
        return self.log.last_id()


def _group(kind: str) -> str | None:
    """``entry`` or ``exit`` for the facts that fix a trade's entry or exit, else ``None``."""
    return "entry" if kind in ENTRY_KINDS else "exit" if kind in EXIT_KINDS else None


def open_read_store(url: str) -> ReadStore:
    """The read store beside the events for a database URL."""
    if urlsplit(url).scheme == "sqlite":
        return SQLiteReadStore(sqlite_path(url))
    return PostgresReadStore(url)


def projections_for(settings: Settings) -> list[Projection]:
    """Every read model, configured from the settings."""
    return [LedgerProjection(settings.breakeven_pct), AuditProjection()]


SETUP_LOCK = 7_146_201_802
"""The advisory-lock key held while tradewatch creates its tables on PostgreSQL."""


@contextmanager
def setting_up(url: str) -> Iterator[None]:
    """Hold off other tradewatch processes while this one creates tables.

    Two commands started together on a fresh database would otherwise race in the
    eventsourcing library's table creation. SQLite: a lock file beside the database;
    PostgreSQL: a session advisory lock.
    """
    if urlsplit(url).scheme == "sqlite":
        path = sqlite_path(url)
        if path == ":memory:":
            yield
            return
        with private_file(Path(f"{path}.setup-lock")).open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        return
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (SETUP_LOCK,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (SETUP_LOCK,))


def bootstrap(settings: Settings | None = None) -> Tradewatch:
    """Wire tradewatch from settings (environment and ``tradewatch.toml``)."""
    settings = settings or Settings()
    url = settings.database
    env = eventsourcing_env(url)
    with setting_up(url):
        ledger = TradeLedger(env=env)
        store = open_read_store(url)
        log = RecorderLog(ledger.recorder)
        engine = ProjectionEngine(log, store, projections_for(settings))
        engine.setup()
    return _wire(settings, ledger, store, log, engine)


def _wire(
    settings: Settings,
    ledger: TradeLedger,
    store: ReadStore,
    log: RecorderLog,
    engine: ProjectionEngine,
) -> Tradewatch:
    reports = Reports(store, starting_balance=settings.starting_balance, timezone=settings.timezone)
    thresholds = settings.thresholds()
    books = Bookkeeper(
        ledger,
        reports,
        starting_balance=settings.starting_balance,
        window=thresholds.window,
        breakeven_pct=settings.breakeven_pct,
        zone=zone_named(settings.timezone),
    )
    fault_log = faults.FaultLog(store)
    controller = ControllerProcess(ledger, log, books, fault_log, thresholds=thresholds)
    ledger.gate_in_force = controller.gate
    alerts = AlertPolicy(ledger, log, books, reports, settings.alert_settings(), fault_log)
    return Tradewatch(settings, ledger, store, engine, reports, controller, alerts)
