"""Processes over the ledger's log that record events exactly once, with their own position.

A process reads the log after its tracking position; for each fact it may record events,
which are saved in one transaction with the fact's position (eventsourcing's process
recorder). A crash before that commit reprocesses the fact; a crash after it does not.
Two processes of the same name racing conflict on the aggregates they change, and the
loser starts again from the winner's position.

A fact the process cannot handle (an event stored without the domain's checks) is noted
with the :class:`FaultSink` and passed over: what the facts before it caused is saved,
and a fresh pass starts after it, so one event never stops the controller or the alerts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import RecordConflictError, Tracking

from application.ledger import TradeLedger
from domain.errors import ConflictError
from projections.facts import EventLog, Fact
from projections.faults import UNREADABLE

ATTEMPTS = 5


class FaultSink(Protocol):
    """Where a process notes a fact it could not handle."""

    def record(self, reader: str, fact: Fact, error: BaseException) -> None:
        """Note that ``reader`` left ``fact`` out because of ``error``."""
        ...


class TrackedProcess:
    """Base of the controller and the alert policy: follow the log, record, track."""

    name = "process"

    def __init__(
        self, ledger: TradeLedger, log: EventLog, faults: FaultSink, page_size: int = 1000
    ) -> None:
        self.ledger = ledger
        self.log = log
        self.faults = faults
        self.page_size = page_size
        self.recorded = 0

    def position(self) -> int:
        """The id of the last event this process has handled."""
        return self.ledger.tracking.max_tracking_id(self.name) or 0

    def run_once(self) -> int:
        """Handle every pending event, then :meth:`after_events`; returns aggregates saved."""
        self.recorded = 0
        stalled = 0
        while stalled < ATTEMPTS:
            started_at = self.position()
            try:
                self.follow()
                self.after_events()
                return self.recorded
            except RecordConflictError:
                # Another process recorded first: re-read and carry on. Only conflicts that
                # made no progress count against us; a racing winner moves the position.
                stalled = 0 if self.position() > started_at else stalled + 1
        raise ConflictError(f"the {self.name} kept conflicting with another {self.name}")

    def follow(self) -> None:
        """Hand each pending fact to :meth:`handler`; save a page's events with its position.

        The events a page of facts caused and the position of its last fact are saved in
        one transaction: after a crash the whole page is handled again, never half of it.
        """
        while self.position() < self.log.last_id() and not self._pass(self.position()):
            pass  # a fact was passed over: start again after it, with fresh state

    def _pass(self, position: int) -> bool:
        """Follow the log from ``position``; False when a fact could not be handled (it is
        noted, and the position moves past it)."""
        handle = self.handler(position)
        while facts := self.log.read(position, self.page_size):
            events: list[Any] = []
            changes = 0
            for fact in facts:
                try:
                    changed = handle(fact)
                except UNREADABLE as error:
                    self.faults.record(self.name, fact, error)
                    self._save(events, changes, fact.id)
                    return False
                events += [event for aggregate in changed for event in aggregate.collect_events()]
                changes += len(changed)
            position = facts[-1].id
            self._save(events, changes, position)
        return True

    def _save(self, events: list[Any], changes: int, position: int) -> None:
        """Save ``events`` with the tracking position, in one transaction."""
        if events:
            self.ledger.events.put(events, tracking=Tracking(self.name, position))
            self.recorded += changes
        else:
            self.ledger.tracking.insert_tracking(Tracking(self.name, position))

    def handler(self, position: int) -> Callable[[Fact], Sequence[Aggregate]]:
        """A function from a fact to the aggregates it changed, starting after ``position``."""
        raise NotImplementedError

    def after_events(self) -> None:
        """Work that is due once the log is handled (clock-driven decisions)."""

    def save(self, aggregate: Aggregate) -> None:
        """Save an aggregate changed outside the log (by the clock or a person)."""
        self.ledger.save(aggregate)
        self.recorded += 1
