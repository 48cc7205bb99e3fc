"""Read-store adapters: the read models live beside the events, in SQLite or PostgreSQL."""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg


class SQLiteReadStore:
    """Read models in a SQLite file (WAL mode), or in memory for time travel."""

    transient_errors: tuple[type[Exception], ...] = (sqlite3.OperationalError,)
    data_errors: tuple[type[Exception], ...] = (sqlite3.DataError, sqlite3.IntegrityError)

    def __init__(self, path: str) -> None:
        self._conn = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        if path != ":memory:":
            self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._lock = threading.RLock()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Cursor]:
        """``BEGIN IMMEDIATE`` takes the write lock at once, serialising writers."""
        with self._lock:
            cursor = self._conn.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                yield cursor
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Cursor]:
        """A deferred transaction: a consistent snapshot for several statements."""
        with self._lock:
            cursor = self._conn.cursor()
            cursor.execute("BEGIN")
            try:
                yield cursor
            finally:
                cursor.execute("COMMIT")

    def lock_suffix(self) -> str:
        """SQLite locks the whole database on write: nothing to add."""
        return ""

    def lock_schema(self, cursor: Any) -> None:
        """``BEGIN IMMEDIATE`` already serialises writers."""

    def table_exists(self, cursor: Any, name: str) -> bool:
        """Whether the table exists."""
        cursor.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
        return cursor.fetchone() is not None

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()


SCHEMA_LOCK = 7_146_201_801
"""The advisory-lock key tradewatch takes while it changes read-model tables."""

_PLACEHOLDER = re.compile(r"\?")


class _PostgresCursor:
    """Translates the projections' ``?`` placeholders to psycopg's ``%s``."""

    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self._cursor = cursor

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._cursor.execute(_PLACEHOLDER.sub("%s", sql), params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Any:
        return self._cursor.executemany(_PLACEHOLDER.sub("%s", sql), rows)

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    def fetchone(self) -> Any:
        return self._cursor.fetchone()


class PostgresReadStore:
    """Read models in the same PostgreSQL database as the events."""

    transient_errors: tuple[type[Exception], ...] = (psycopg.OperationalError,)
    data_errors: tuple[type[Exception], ...] = (psycopg.DataError, psycopg.IntegrityError)

    def __init__(self, url: str) -> None:
        self._url = url
        self._conn = psycopg.connect(url, autocommit=False)
        self._lock = threading.RLock()

    def _connection(self) -> psycopg.Connection[Any]:
        """The connection, opened again if it was closed or broken."""
        if self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(self._url, autocommit=False)
        return self._conn

    @contextmanager
    def transaction(self) -> Iterator[_PostgresCursor]:
        """One transaction; the engine serialises writers with ``SELECT … FOR UPDATE``."""
        with self._lock:
            conn = self._connection()
            with conn.transaction(), conn.cursor() as cursor:
                yield _PostgresCursor(cursor)

    @contextmanager
    def reading(self) -> Iterator[_PostgresCursor]:
        """A repeatable-read snapshot for several statements."""
        with self._lock:
            conn = self._connection()
            with conn.transaction(), conn.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                yield _PostgresCursor(cursor)

    def lock_suffix(self) -> str:
        """Row locks on the positions serialise engines."""
        return " FOR UPDATE"

    def lock_schema(self, cursor: Any) -> None:
        """A transaction-scoped advisory lock: one process creates or swaps tables at a time."""
        cursor.execute("SELECT pg_advisory_xact_lock(?)", (SCHEMA_LOCK,))

    def table_exists(self, cursor: Any, name: str) -> bool:
        """Whether the table exists in the search path."""
        cursor.execute("SELECT to_regclass(?)", (name,))
        return cursor.fetchone()[0] is not None

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()
