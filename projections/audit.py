"""The audit trail: every event by correlation and cause, and a hash chain over the log.

Each link of the chain is ``sha256(previous link + the stored event's bytes)``, where the
bytes are the aggregate id, version, topic and serialised state as stored. Recomputing
the chain from the events table names the first event altered or removed since.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from projections.engine import Table
from projections.facts import EventLog, Fact, plain
from projections.ledger import stamp
from projections.store import Cursor, ReadStore

GENESIS = "0" * 64

AUDIT_TRAIL = Table(
    name="audit_trail",
    columns=(
        "notification_id BIGINT NOT NULL",
        "event_id TEXT NOT NULL",
        "kind TEXT NOT NULL",
        "correlation_id TEXT",
        "causation_id TEXT",
        "at TEXT NOT NULL",
        "recorded_at TEXT NOT NULL",
        "data TEXT NOT NULL",
    ),
    primary_key="notification_id",
    indexes=("correlation_id", "event_id", "kind, notification_id"),
)

AUDIT_CHAIN = Table(
    name="audit_chain",
    columns=("notification_id BIGINT NOT NULL", "link TEXT NOT NULL"),
    primary_key="notification_id",
)

_OMITTED = ("timestamp", "originator_topic", "correlation_id", "causation_id")


def link(previous: str, fact_bytes: bytes) -> str:
    """The next link of the chain."""
    return hashlib.sha256(previous.encode() + fact_bytes).hexdigest()


def stored_bytes(aggregate_id: str, version: int, topic: str, state: bytes) -> bytes:
    """The stored event as the chain sees it."""
    return f"{aggregate_id}|{version}|{topic}|".encode() + state


class AuditProjection:
    """Projects every event into ``audit_trail`` and extends the hash chain."""

    name = "audit"
    tables = (AUDIT_TRAIL, AUDIT_CHAIN)

    def config(self) -> str:
        """No settings change its results; the version rebuilds older tables."""
        return "v2"

    def apply(self, cursor: Cursor, tables: Mapping[str, str], facts: Sequence[Fact]) -> None:
        """Record each fact and chain it to the previous link."""
        chain = tables["audit_chain"]
        cursor.execute(f"SELECT link FROM {chain} ORDER BY notification_id DESC LIMIT 1")
        row = cursor.fetchone()
        previous = row[0] if row else GENESIS
        trail, links = [], []
        for fact in facts:
            previous = link(
                previous, stored_bytes(fact.aggregate_id, fact.version, fact.topic, fact.raw)
            )
            links.append((fact.id, previous))
            trail.append(_trail_row(fact))
        cursor.executemany(
            f"INSERT INTO {tables['audit_trail']} (notification_id, event_id, kind, correlation_id,"
            " causation_id, at, recorded_at, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            trail,
        )
        cursor.executemany(f"INSERT INTO {chain} (notification_id, link) VALUES (?, ?)", links)


def _trail_row(fact: Fact) -> tuple[Any, ...]:
    """The audit-trail row of a fact. Never fails on what the fact holds: the trail is the
    record of the log, so a fact stored without the domain's checks is kept as well as it
    can be (an unreadable state is described, NUL characters are replaced)."""
    try:
        data = {k: plain(v) for k, v in fact.state.items() if k not in _OMITTED}
        text = orjson.dumps(data, default=str).decode()
        at, recorded_at = stamp(fact.business_time), stamp(fact.recorded_at)
        correlation, causation = fact.state.get("correlation_id"), fact.state.get("causation_id")
    except (ArithmeticError, LookupError, TypeError, ValueError, AttributeError) as error:
        text = orjson.dumps({"unreadable": f"{type(error).__name__}: {error}"}).decode()
        at = recorded_at = stamp(datetime(1970, 1, 1, tzinfo=UTC))
        correlation = causation = None
    return (
        fact.id,
        fact.event_id,
        _text(fact.kind),
        _text(correlation),
        _text(causation),
        at,
        recorded_at,
        text,
    )


def _text(value: Any) -> str | None:
    """Text any database stores (PostgreSQL refuses NUL), or ``None`` if not text."""
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else None


@dataclass(frozen=True)
class ChainCheck:
    """The result of ``audit verify``."""

    checked: int
    ok: bool
    problem: str | None = None
    notification_id: int | None = None


def _facts(log: EventLog, page: int = 5000) -> Iterator[Fact]:
    position = 0
    while facts := log.read(position, page):
        yield from facts
        position = facts[-1].id


def verify_chain(log: EventLog, store: ReadStore) -> ChainCheck:
    """Recompute the chain from the stored events and compare it with the recorded links."""
    with store.reading() as cur:
        cur.execute("SELECT notification_id, link FROM audit_chain ORDER BY notification_id")
        recorded = cur.fetchall()
    previous, checked = GENESIS, 0
    events = _facts(log)
    for notification_id, expected in recorded:
        fact = next(events, None)
        if fact is not None and fact.id < notification_id:
            return ChainCheck(checked, False, f"event {fact.id} was inserted into the log", fact.id)
        if fact is None or fact.id > notification_id:
            return ChainCheck(
                checked, False, f"event {notification_id} was removed from the log", notification_id
            )
        previous = link(
            previous, stored_bytes(fact.aggregate_id, fact.version, fact.topic, fact.raw)
        )
        if previous != expected:
            return ChainCheck(
                checked,
                False,
                f"event {notification_id} ({fact.kind}) was altered after it was recorded",
                notification_id,
            )
        checked += 1
    return ChainCheck(checked, True)


_TRAIL_COLUMNS = "notification_id, event_id, kind, causation_id, at, recorded_at, data"


def _select(
    store: ReadStore, where: str, params: Sequence[Any], last: int | None = None
) -> list[dict[str, Any]]:
    """Matching events in log order; only the ``last`` ones when given."""
    order = "DESC LIMIT ?" if last is not None else "ASC"
    with store.reading() as cur:
        cur.execute(
            f"SELECT {_TRAIL_COLUMNS} FROM audit_trail WHERE {where} "
            f"ORDER BY notification_id {order}",
            [*params, last] if last is not None else params,
        )
        rows = cur.fetchall()
    found = [_row(r) for r in rows]
    return found[::-1] if last is not None else found


def trail(store: ReadStore, correlation_id: str) -> list[dict[str, Any]]:
    """Every event of one correlation, in log order."""
    return _select(store, "correlation_id = ?", (correlation_id,))


def event(store: ReadStore, event_id: str) -> dict[str, Any] | None:
    """One event of the trail by its id."""
    found = _select(store, "event_id = ?", (event_id,))
    return found[0] if found else None


def by_kind(
    store: ReadStore,
    kinds: Sequence[str],
    since: str | None = None,
    last: int | None = None,
    after: int = 0,
) -> list[dict[str, Any]]:
    """Events of the given kinds (e.g. controller decisions), oldest first; ``since``: at or
    after that time, ``last``: only the latest so many, ``after``: only those recorded after
    that notification id."""
    where = f"kind IN ({', '.join('?' * len(kinds))})"
    params: list[Any] = list(kinds)
    if after:
        where += " AND notification_id > ?"
        params.append(after)
    if since:
        where += " AND at >= ?"
        params.append(since)
    return _select(store, where, params, last)


def _row(row: Sequence[Any]) -> dict[str, Any]:
    return {
        "notification_id": int(row[0]),
        "event_id": row[1],
        "kind": row[2],
        "causation_id": row[3],
        "at": row[4],
        "recorded_at": row[5],
        "data": orjson.loads(row[6]),
    }
