"""Stored events a reader could not handle: left out, named, and never fatal.

The domain refuses bad input at the door, but the log may still hold an event that no
reader can use: one stored by an older version, or written into the database by hand.
A read model or a process that meets such an event leaves it out, notes here which
event and why, and carries on, so one event can never make the ledger unusable.
Reading commands name what was left out; ``tradewatch audit verify`` lists it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from projections.facts import Fact
from projections.store import Cursor, ReadStore

TABLE = "unreadable_events"

UNREADABLE: tuple[type[Exception], ...] = (
    ArithmeticError,
    AttributeError,
    LookupError,
    TypeError,
    ValueError,
)
"""What handling an event raises when the event itself is at fault (a missing or
ill-typed field, a number that does not compute); the database's own failures are not
among them, so a lost connection or a full disk still stops a reader."""

REASON_LENGTH = 300


@dataclass(frozen=True)
class Unreadable:
    """One stored event one reader left out, and why."""

    reader: str
    notification_id: int
    event_id: str
    kind: str
    reason: str


def by_event(found: Sequence[Unreadable]) -> list[list[Unreadable]]:
    """What was left out, one group per event, in log order."""
    groups: dict[int, list[Unreadable]] = {}
    for item in found:
        groups.setdefault(item.notification_id, []).append(item)
    return [groups[key] for key in sorted(groups)]


def summary(found: Sequence[Unreadable]) -> str:
    """One line: the first event left out, by which readers and why, and how many more."""
    first = found[0]
    readers = sorted({f.reader for f in found if f.notification_id == first.notification_id})
    events = len({f.notification_id for f in found})
    more = f" (and {events - 1} more event{'s' if events > 2 else ''})" if events > 1 else ""
    return (
        f"event #{first.notification_id} ({first.kind} {first.event_id}) is left out of "
        f"{', '.join(readers)}: {first.reason}{more}"
    )


def reason_of(error: BaseException) -> str:
    """The error as one short printable line."""
    text = f"{type(error).__name__}: {error}"
    line = "".join(" " if unicodedata.category(c)[0] in "CZ" and c != " " else c for c in text)
    return line if len(line) <= REASON_LENGTH else line[: REASON_LENGTH - 1] + "…"


def create(cursor: Cursor) -> None:
    """Create the table if it is missing."""
    cursor.execute(
        f"CREATE TABLE IF NOT EXISTS {TABLE} (reader TEXT NOT NULL, "
        "notification_id BIGINT NOT NULL, event_id TEXT NOT NULL, kind TEXT NOT NULL, "
        "reason TEXT NOT NULL, PRIMARY KEY (reader, notification_id))"
    )


def note(cursor: Cursor, found: Unreadable) -> None:
    """Record that ``found.reader`` left an event out (once)."""
    cursor.execute(
        f"INSERT INTO {TABLE} (reader, notification_id, event_id, kind, reason) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (reader, notification_id) DO NOTHING",
        (found.reader, found.notification_id, found.event_id, found.kind, found.reason),
    )


def unreadable(reader: str, fact: Fact, error: BaseException) -> Unreadable:
    """What to note when ``reader`` could not handle ``fact``."""
    return Unreadable(
        reader=reader,
        notification_id=fact.id,
        event_id=fact.event_id.replace("\x00", "\ufffd"),
        kind=fact.kind.replace("\x00", "\ufffd"),
        reason=reason_of(error),
    )


def forget(cursor: Cursor, readers: list[str]) -> None:
    """Drop what these readers noted (before they read the log again from event 0)."""
    marks = ", ".join("?" * len(readers))
    cursor.execute(f"DELETE FROM {TABLE} WHERE reader IN ({marks})", readers)


def listed(store: ReadStore) -> list[Unreadable]:
    """Every event left out, in log order."""
    with store.reading() as cur:
        if not store.table_exists(cur, TABLE):
            return []
        cur.execute(
            f"SELECT reader, notification_id, event_id, kind, reason FROM {TABLE} "
            "ORDER BY notification_id, reader"
        )
        rows = cur.fetchall()
    return [Unreadable(r[0], int(r[1]), r[2], r[3], r[4]) for r in rows]


class FaultLog:
    """Where a process notes an event it could not handle (in the read store)."""

    def __init__(self, store: ReadStore) -> None:
        self.store = store

    def record(self, reader: str, fact: Fact, error: BaseException) -> None:
        """Note, in a transaction of its own, that ``reader`` left ``fact`` out."""
        with self.store.transaction() as cur:
            create(cur)
            note(cur, unreadable(reader, fact, error))
