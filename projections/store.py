"""The port through which read models are stored: a SQL database, SQLite or PostgreSQL.

Read-model SQL is written once, with ``?`` placeholders and portable types; each
adapter (``infrastructure/readstore.py``) translates what its database needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol


class Cursor(Protocol):
    """The few DB-API cursor calls the projections use."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement."""
        ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Any:
        """Run one statement for many parameter rows."""
        ...

    def fetchall(self) -> list[Any]:
        """All rows of the last query."""
        ...

    def fetchone(self) -> Any:
        """The next row of the last query, or ``None``."""
        ...


class ReadStore(Protocol):
    """A database holding read models and their tracking positions."""

    def transaction(self) -> AbstractContextManager[Cursor]:
        """A write transaction; concurrent writers are serialised; commits on success."""
        ...

    def reading(self) -> AbstractContextManager[Cursor]:
        """A read-only snapshot."""
        ...

    transient_errors: tuple[type[Exception], ...]
    """Errors after which a follower should wait and retry (a dropped connection)."""

    data_errors: tuple[type[Exception], ...]
    """Errors the database raises on a value it cannot store (text with NUL on PostgreSQL,
    a missing required field): the value's fault, not the database's."""

    def lock_schema(self, cursor: Cursor) -> None:
        """Serialise schema changes (creating or swapping tables) across processes."""
        ...

    def lock_suffix(self) -> str:
        """What to append to a SELECT to lock its rows until commit (``FOR UPDATE`` or '')."""
        ...

    def table_exists(self, cursor: Cursor, name: str) -> bool:
        """Whether a table of that name exists."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...
