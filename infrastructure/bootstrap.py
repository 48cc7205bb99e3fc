"""The composition root: builds the ledger, its read store, the projection engine and reports."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from application.ledger import TradeLedger
from infrastructure.readstore import PostgresReadStore, SQLiteReadStore
from infrastructure.settings import Settings, eventsourcing_env, sqlite_path
from projections.engine import Progress, ProjectionEngine
from projections.facts import Fact, RecorderLog
from projections.ledger import LedgerProjection
from projections.reports import Reports
from projections.store import ReadStore


@dataclass
class Tradewatch:
    """One wired-up tradewatch: write side, read side and the engine between them."""

    settings: Settings
    ledger: TradeLedger
    store: ReadStore
    engine: ProjectionEngine
    reports: Reports

    def sync(self, progress: Progress | None = None) -> int:
        """Bring every read model up to date with the log (the embedded mode's heartbeat)."""
        return self.engine.catch_up(progress=progress)

    def as_of(self, moment: datetime) -> Reports:
        """Reports as they stood at ``moment``: the events up to it replayed into memory.

        Facts count from their market time (the ``at`` of an entry or exit), so a trade
        whose exit came after ``moment`` shows as open.
        """
        store = SQLiteReadStore(":memory:")
        log = _UntilLog(RecorderLog(self.ledger.recorder), moment)
        ProjectionEngine(log, store, self.projections(), page_size=10_000).catch_up()
        return Reports(
            store,
            starting_balance=self.settings.starting_balance,
            timezone=self.settings.timezone,
            now=moment,
        )

    def projections(self) -> list[LedgerProjection]:
        """Fresh instances of every projection, configured from the settings."""
        return [LedgerProjection(self.settings.breakeven_pct)]

    def close(self) -> None:
        """Release database connections."""
        self.store.close()
        self.ledger.close()


class _UntilLog:
    """The log, less the facts that happened after a moment."""

    def __init__(self, log: RecorderLog, moment: datetime) -> None:
        self.log = log
        self.moment = moment

    def read(self, after: int, limit: int, until: int | None = None) -> list[Fact]:
        while facts := self.log.read(after, limit, until):
            kept = [f for f in facts if f.business_time <= self.moment]
            if kept:
                return kept
            after = facts[-1].id
        return []

    def last_id(self) -> int:
        return self.log.last_id()


def open_read_store(url: str) -> ReadStore:
    """The read store beside the events for a database URL."""
    if urlsplit(url).scheme == "sqlite":
        return SQLiteReadStore(sqlite_path(url))
    return PostgresReadStore(url)


def bootstrap(settings: Settings | None = None) -> Tradewatch:
    """Wire tradewatch from settings (environment and ``tradewatch.toml``)."""
    settings = settings or Settings()
    url = settings.database
    ledger = TradeLedger(env=eventsourcing_env(url))
    store = open_read_store(url)
    projections = [LedgerProjection(settings.breakeven_pct)]
    engine = ProjectionEngine(RecorderLog(ledger.recorder), store, projections)
    reports = Reports(store, starting_balance=settings.starting_balance, timezone=settings.timezone)
    return Tradewatch(settings, ledger, store, engine, reports)
