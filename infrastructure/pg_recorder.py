"""A PostgreSQL process recorder that inserts large saves in chunks, in one transaction.

eventsourcing sends a save as one ``INSERT … SELECT FROM unnest(%s)`` statement in
psycopg's pipeline mode. With a multi-megabyte parameter (a bulk import) that statement
never completes here: the client waits for results while the server waits for input.
This recorder sends the same rows as statements of ``CHUNK`` events each, after the same
table lock and NOTIFY, in the same transaction, so an import stays all or nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresProcessRecorder
from psycopg import Cursor
from psycopg.rows import DictRow

CHUNK = 1000
"""Events per INSERT statement."""


class ChunkedPostgresProcessRecorder(PostgresProcessRecorder):
    """:class:`PostgresProcessRecorder` that inserts at most ``CHUNK`` events per statement."""

    def _insert_stored_events(
        self,
        curs: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        **kwargs: Any,
    ) -> None:
        self._lock_table(curs)
        self._notify_channel(curs)
        self._chunk_ids: list[int] = []
        for start in range(0, len(stored_events), CHUNK):
            chunk = stored_events[start : start + CHUNK]
            rows = [
                self.construct_pg_stored_event(
                    e.originator_id, e.originator_version, e.topic, e.state
                )
                for e in chunk
            ]
            curs.execute(query=self.insert_events_statement, params=(rows,))
            self._chunk_ids.extend(row["notification_id"] for row in curs.fetchall())

    def _fetch_ids_after_insert_events(
        self,
        curs: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        **_: Any,
    ) -> Sequence[int] | None:
        return self._chunk_ids
