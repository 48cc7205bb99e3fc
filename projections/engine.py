"""The projection engine: follows the event log into read models, exactly once, in batches.

* **Exactly once.** Each batch is applied in one read-store transaction that also moves
  the projection's position. The position row is locked first, so two engines on the
  same store never apply the same batch twice; a crash rolls back batch and position together.
* **Batching.** Catch-up reads pages of ``page_size`` events and applies each page in
  one transaction; live following applies whatever arrived since the last look.
* **Blue/green replay.** :meth:`ProjectionEngine.replay` rebuilds read models from event 0
  into ``<table>__next`` tables and swaps them in, in one transaction, once caught up.
* **No event is fatal.** A fact a projection cannot handle (see :mod:`projections.faults`)
  is left out of that projection alone and noted, inside the same transaction; the other
  facts of the page are applied as usual, so the read models keep answering.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from projections import faults
from projections.facts import EventLog, Fact
from projections.store import Cursor, ReadStore

POSITIONS = "projection_positions"
STAGING_SUFFIX = "__next"

Progress = Callable[[int, int], None]
"""Called with (events done, events in all) as work advances."""


class OutdatedSettingsError(RuntimeError):
    """Another process rebuilt a read model with other settings than this engine's."""


@dataclass(frozen=True)
class Table:
    """A read-model table: columns as portable SQL, a primary key and indexed columns."""

    name: str
    columns: Sequence[str]
    primary_key: str
    indexes: Sequence[str] = field(default_factory=tuple)

    def create(self, cursor: Cursor, physical: str) -> None:
        """Create the table under its physical name, with its indexes."""
        columns = ", ".join([*self.columns, f"PRIMARY KEY ({self.primary_key})"])
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {physical} ({columns})")
        tag = secrets.token_hex(3)
        for index in self.indexes:
            label = index.replace(",", "_").replace(" ", "")
            cursor.execute(
                f"CREATE INDEX IF NOT EXISTS ix_{self.name}_{label}_{tag} ON {physical} ({index})"
            )


class Projection(Protocol):
    """A read model: its tables, its configuration and how facts change it."""

    @property
    def name(self) -> str:
        """The projection's name (its tracking key)."""
        ...

    @property
    def tables(self) -> Sequence[Table]:
        """The tables it owns."""
        ...

    def config(self) -> str:
        """A fingerprint of settings that change its results (a change forces a replay)."""
        ...

    def apply(self, cursor: Cursor, tables: Mapping[str, str], facts: Sequence[Fact]) -> None:
        """Apply ``facts`` (in log order) using the physical table names in ``tables``."""
        ...


class Waiter(Protocol):
    """Blocks until new events may have been stored, or a timeout passes."""

    def wait(self, timeout: float) -> None:
        """Return on a notification of new events, or after ``timeout`` seconds."""
        ...


class ProjectionEngine:
    """Applies the event log to a set of projections in one read store."""

    def __init__(
        self,
        log: EventLog,
        store: ReadStore,
        projections: Sequence[Projection],
        *,
        page_size: int = 2000,
        replay_page_size: int = 10000,
    ) -> None:
        self.log = log
        self.store = store
        self.projections = {p.name: p for p in projections}
        self.page_size = page_size
        self.replay_page_size = replay_page_size
        self._set_up = False
        self._unreadable = faults.UNREADABLE + store.data_errors

    # Set-up --------------------------------------------------------------------------

    def setup(self, progress: Progress | None = None) -> None:
        """Create missing tables and positions; replay any projection whose config changed."""
        if self._set_up:
            return
        stale: list[str] = []
        with self.store.transaction() as cur:
            self.store.lock_schema(cur)
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {POSITIONS} (name TEXT PRIMARY KEY, "
                "position BIGINT NOT NULL, config TEXT NOT NULL)"
            )
            faults.create(cur)
            cur.execute(f"SELECT name, config FROM {POSITIONS}")
            known = dict(cur.fetchall())
            for projection in self.projections.values():
                if projection.name not in known:
                    for table in projection.tables:
                        table.create(cur, table.name)
                    cur.execute(
                        f"INSERT INTO {POSITIONS} (name, position, config) VALUES (?, 0, ?) "
                        "ON CONFLICT (name) DO NOTHING",
                        (projection.name, projection.config()),
                    )
                elif known[projection.name] != projection.config():
                    stale.append(projection.name)
        self._set_up = True
        if stale:
            self.replay(stale, progress)

    def positions(self) -> dict[str, int]:
        """Each projection's position: the id of the last event it has applied."""
        self.setup()
        with self.store.reading() as cur:
            cur.execute(f"SELECT name, position FROM {POSITIONS}")
            found = dict(cur.fetchall())
        return {name: int(found[name]) for name in self.projections}

    def lag(self) -> dict[str, int]:
        """How many events each projection is behind the log."""
        last = self.log.last_id()
        return {name: last - position for name, position in self.positions().items()}

    # Catching up ------------------------------------------------------------------

    def catch_up(self, until: int | None = None, progress: Progress | None = None) -> int:
        """Apply every stored event not yet applied (up to ``until``); returns how many."""
        self.setup(progress)
        applied = 0
        total = 0
        while True:
            positions = self.positions()
            low = min(positions.values(), default=0)
            if until is not None and low >= until:
                return applied
            facts = self.log.read(low, self.page_size, until)
            if not facts:
                return applied
            if progress and not total:
                total = self.log.last_id() - low
            if self._apply_page(facts, positions):
                applied += len(facts)
                if progress:
                    progress(applied, max(total, applied))

    def _apply_page(self, facts: Sequence[Fact], expected: Mapping[str, int]) -> bool:
        with self.store.transaction() as cur:
            locked = self._lock_positions(cur)
            if any(locked[name] != expected[name] for name in self.projections):
                return False  # another engine moved on: re-read from the new positions
            self._check_config(cur)
            moved = []
            for name, projection in self.projections.items():
                pending = [fact for fact in facts if fact.id > locked[name]]
                if pending:
                    for found in self._apply(cur, projection, _live_names(projection), pending):
                        faults.note(cur, found)
                    moved.append((facts[-1].id, name))
            cur.executemany(f"UPDATE {POSITIONS} SET position = ? WHERE name = ?", moved)
        return True

    def _apply(
        self,
        cur: Cursor,
        projection: Projection,
        tables: Mapping[str, str],
        facts: Sequence[Fact],
    ) -> list[faults.Unreadable]:
        """Apply ``facts``; those the projection cannot handle are left out and returned.

        The page is applied at once in a savepoint; only when that fails is it applied
        again one fact at a time, each in a savepoint of its own.
        """
        cur.execute("SAVEPOINT page")
        try:
            projection.apply(cur, tables, facts)
            cur.execute("RELEASE SAVEPOINT page")
            return []
        except self._unreadable:
            cur.execute("ROLLBACK TO SAVEPOINT page")
        left_out = []
        for fact in facts:
            cur.execute("SAVEPOINT fact")
            try:
                projection.apply(cur, tables, [fact])
            except self._unreadable as error:
                cur.execute("ROLLBACK TO SAVEPOINT fact")
                left_out.append(faults.unreadable(projection.name, fact, error))
            cur.execute("RELEASE SAVEPOINT fact")
        cur.execute("RELEASE SAVEPOINT page")
        return left_out

    def _check_config(self, cur: Cursor) -> None:
        cur.execute(f"SELECT name, config FROM {POSITIONS}")
        stored = dict(cur.fetchall())
        for name, projection in self.projections.items():
            if stored.get(name) != projection.config():
                raise OutdatedSettingsError(
                    f"read model {name!r} was rebuilt with {stored.get(name)} by another process; "
                    f"this one runs with {projection.config()}: restart it with the same settings"
                )

    def _lock_positions(self, cur: Cursor) -> dict[str, int]:
        cur.execute(f"SELECT name, position FROM {POSITIONS}{self.store.lock_suffix()}")
        return {name: int(position) for name, position in cur.fetchall()}

    # Live following ------------------------------------------------------------------

    def follow(
        self,
        waiter: Waiter,
        stop: threading.Event,
        *,
        poll_interval: float = 1.0,
        on_applied: Callable[[int], None] | None = None,
    ) -> None:
        """Apply events as they arrive until ``stop`` is set.

        ``waiter`` wakes the engine on new events (PostgreSQL LISTEN/NOTIFY, or a short
        sleep when polling SQLite); ``poll_interval`` bounds the wait as a fallback.
        """
        backoff = 0.1
        while not stop.is_set():
            try:
                applied = self.catch_up()
            except self.store.transient_errors:
                stop.wait(backoff)  # the database went away: wait, reconnect, carry on
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.1
            if applied and on_applied:
                on_applied(applied)
            waiter.wait(poll_interval)

    def wait_for(self, notification_id: int, timeout: float = 5.0) -> bool:
        """Block until every projection has applied ``notification_id``; False on timeout."""
        deadline = time.monotonic() + timeout
        while min(self.positions().values(), default=0) < notification_id:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    # Replay ----------------------------------------------------------------------------

    def replay(self, names: Sequence[str] | None = None, progress: Progress | None = None) -> int:
        """Rebuild projections from event 0 beside the live tables, then swap them in.

        Readers see the old tables until the swap commits, then the new ones: never a
        half-built read model. Returns the number of events replayed.
        """
        self.setup()
        chosen = [self._projection(name) for name in (names or list(self.projections))]
        staging = {p.name: {t.name: t.name + STAGING_SUFFIX for t in p.tables} for p in chosen}
        with self.store.transaction() as cur:
            self.store.lock_schema(cur)
            for projection in chosen:
                for table in projection.tables:
                    cur.execute(f"DROP TABLE IF EXISTS {staging[projection.name][table.name]}")
                    table.create(cur, staging[projection.name][table.name])
        position = 0
        total = self.log.last_id()
        left_out: list[faults.Unreadable] = []
        while facts := self.log.read(position, self.replay_page_size):
            with self.store.transaction() as cur:
                for projection in chosen:
                    left_out += self._apply(cur, projection, staging[projection.name], facts)
            position = facts[-1].id
            if progress:
                progress(position, max(total, position))
        with self.store.transaction() as cur:
            self._lock_positions(cur)  # hold off live engines while the last events land
            while facts := self.log.read(position, self.replay_page_size):
                for projection in chosen:
                    left_out += self._apply(cur, projection, staging[projection.name], facts)
                position = facts[-1].id
            faults.forget(cur, [projection.name for projection in chosen])
            for found in left_out:
                faults.note(cur, found)
            for projection in chosen:
                for table in projection.tables:
                    cur.execute(f"DROP TABLE IF EXISTS {table.name}")
                    cur.execute(
                        f"ALTER TABLE {staging[projection.name][table.name]} RENAME TO {table.name}"
                    )
                cur.execute(
                    f"UPDATE {POSITIONS} SET position = ?, config = ? WHERE name = ?",
                    (position, projection.config(), projection.name),
                )
        if progress:
            progress(position, max(total, position))
        return position

    def _projection(self, name: str) -> Projection:
        try:
            return self.projections[name]
        except KeyError:
            known = ", ".join(sorted(self.projections))
            raise ValueError(f"unknown projection {name!r}; known: {known}") from None


def _live_names(projection: Projection) -> dict[str, str]:
    return {table.name: table.name for table in projection.tables}
