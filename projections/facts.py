"""Stored events as the projections read them: decoded once, cheaply, with no domain objects.

Projections work on the stored JSON rather than on rebuilt domain event objects:
it is the published form of the facts, and decoding it is the raw limit of a replay.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from eventsourcing.persistence import ApplicationRecorder

from domain.errors import DomainError


@dataclass(frozen=True, slots=True)
class Fact:
    """One stored event: its position in the log, its aggregate, kind and decoded state."""

    id: int
    aggregate_id: str
    version: int
    kind: str
    state: dict[str, Any]
    topic: str = ""
    raw: bytes = b""

    @property
    def event_id(self) -> str:
        """The event's stable id, ``<aggregate uuid>:<version>``."""
        return f"{self.aggregate_id}:{self.version}"

    @property
    def recorded_at(self) -> datetime:
        """When the event was recorded."""
        return as_time(self.state["timestamp"])

    @property
    def business_time(self) -> datetime:
        """When the fact happened (its ``at`` or ``decided_at``), else when it was recorded."""
        at = self.state.get("at") or self.state.get("decided_at")
        return as_time(at) if at is not None else self.recorded_at


def as_time(value: Any) -> datetime:
    """Decode a stored datetime (``{"_type_": "datetime_iso", "_data_": ...}`` or ISO text);
    a datetime is returned as it is."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, dict):
        value = value["_data_"]
    return datetime.fromisoformat(value)


READABLE_FROM = datetime(1970, 1, 1, tzinfo=UTC)
READABLE_UNTIL = datetime(2200, 1, 1, tzinfo=UTC)
"""Times the readers hold: the metrics count time in int64 nanoseconds since 1970 (which
end in 2262), and the controller counts days. The domain accepts far fewer (2009 to now)."""


def readable_time(value: Any) -> datetime:
    """:func:`as_time`, refusing (``ValueError``) a naive time or one outside the range the
    readers hold; such a fact is left out by whoever reads it."""
    moment = as_time(value)
    if moment.utcoffset() is None or not READABLE_FROM <= moment < READABLE_UNTIL:
        raise ValueError(f"time {moment.isoformat()} is outside the range the reports hold")
    return moment


def plain(value: Any) -> Any:
    """A stored value with transcoded types (datetimes, UUIDs) turned into plain text."""
    if isinstance(value, dict):
        if set(value) == {"_type_", "_data_"}:
            return value["_data_"]
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def kind_of(topic: str) -> str:
    """``domain.trade:Trade.ExitRecorded`` → ``Trade.ExitRecorded``."""
    return topic.rpartition(":")[2]


class UnreadableEventError(DomainError):
    """A stored event whose state is not JSON: it was changed outside tradewatch."""

    def __init__(self, notification_id: int, kind: str) -> None:
        super().__init__(
            f"event {notification_id} ({kind}) cannot be read: its stored state is not JSON"
        )
        self.notification_id = notification_id
        self.kind = kind


class UnreadableState(dict[str, Any]):
    """The state of an event stored as something other than JSON. The event keeps its
    place in the log (its id, kind and raw bytes: the audit chain still covers it), but any
    look inside raises :class:`UnreadableEventError`, a ``ValueError``: a reader leaves it
    out and names it (:mod:`projections.faults`), and a command says so in one line."""

    def __init__(self, error: UnreadableEventError) -> None:
        super().__init__()
        self.error = error

    def __getitem__(self, key: str) -> Any:
        raise self.error

    def get(self, key: str, default: Any = None) -> Any:
        raise self.error

    def __contains__(self, key: object) -> bool:
        raise self.error

    def __iter__(self) -> Any:
        raise self.error

    def keys(self) -> Any:
        raise self.error

    def values(self) -> Any:
        raise self.error

    def items(self) -> Any:
        raise self.error


def decoded(notification_id: int, topic: str, state: bytes) -> dict[str, Any]:
    """A stored state as a dict; an :class:`UnreadableState` when it is not JSON."""
    try:
        found = orjson.loads(state)
    except orjson.JSONDecodeError:
        return UnreadableState(UnreadableEventError(notification_id, kind_of(topic)))
    if not isinstance(found, dict):
        return UnreadableState(UnreadableEventError(notification_id, kind_of(topic)))
    return found


class EventLog(Protocol):
    """The application's notification log, read in order."""

    def read(self, after: int, limit: int, until: int | None = None) -> Sequence[Fact]:
        """Up to ``limit`` facts with ids > ``after`` (and <= ``until`` when given)."""
        ...

    def last_id(self) -> int:
        """The id of the last stored event, 0 when the log is empty."""
        ...


class RecorderLog:
    """An :class:`EventLog` over an eventsourcing application recorder (SQLite or PostgreSQL)."""

    def __init__(self, recorder: ApplicationRecorder) -> None:
        self.recorder = recorder

    def read(self, after: int, limit: int, until: int | None = None) -> Sequence[Fact]:
        """Decode a page of notifications (a state that is not JSON: see :func:`decoded`)."""
        notifications = self.recorder.select_notifications(
            after, limit, stop=until, inclusive_of_start=False
        )
        return [
            Fact(
                n.id,
                str(n.originator_id),
                n.originator_version,
                kind_of(n.topic),
                decoded(n.id, n.topic, n.state),
                n.topic,
                n.state,
            )
            for n in notifications
        ]

    def last_id(self) -> int:
        """The largest notification id."""
        return self.recorder.max_notification_id() or 0
