"""How a follower learns of new events: PostgreSQL LISTEN/NOTIFY, or polling a SQLite file."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import psycopg

from projections.engine import Waiter

EVENTS_CHANNEL = "tradewatch_events"
"""The channel eventsourcing NOTIFYs on each insert into the ``tradewatch_events`` table."""


class PollingWaiter:
    """Sleeps a short interval: SQLite has no notifications, and polling it is cheap."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval

    def wait(self, timeout: float) -> None:
        """Sleep ``min(interval, timeout)``."""
        time.sleep(min(self.interval, timeout))


class ListenWaiter:
    """Waits for a NOTIFY on the events channel; reconnects if the connection drops."""

    def __init__(self, url: str, channel: str = EVENTS_CHANNEL) -> None:
        self.url = url
        self.channel = channel
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None

    def _connection(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.url, autocommit=True)
            self._conn.execute(f'LISTEN "{self.channel}"')
        return self._conn

    def wait(self, timeout: float) -> None:
        """Return at the first notification, or after ``timeout`` (the polling fallback)."""
        try:
            for _ in self._connection().notifies(timeout=timeout, stop_after=1):
                break
        except psycopg.OperationalError:
            self._conn = None
            time.sleep(min(timeout, 1.0))

    def close(self) -> None:
        """Stop listening."""
        if self._conn is not None:
            self._conn.close()


def waiter_for(url: str) -> Waiter:
    """LISTEN/NOTIFY on PostgreSQL, polling on SQLite."""
    if urlsplit(url).scheme == "sqlite":
        return PollingWaiter()
    return ListenWaiter(url)
