"""What every tradewatch event carries besides its facts: where it came from.

A signal starts a *correlation*; its entry, exit, the controller decisions that exit
caused and the alerts those raise all share the signal's correlation id. Each event
also names its *cause*: the id of the event (or the command) that led to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate


def event_id(originator_id: UUID, originator_version: int) -> str:
    """The stable id of a stored event: ``<aggregate uuid>:<version>``."""
    return f"{originator_id}:{originator_version}"


@dataclass(frozen=True, slots=True)
class Causation:
    """The correlation an event belongs to and the id of what caused it."""

    correlation_id: str
    causation_id: str

    @classmethod
    def command(cls, name: str, correlation_id: str) -> Causation:
        """Causation for an event a person asked for, e.g. ``command:exit``."""
        return cls(correlation_id=correlation_id, causation_id=f"command:{name}")

    def fields(self) -> dict[str, Any]:
        """The event fields that record this causation."""
        return {"correlation_id": self.correlation_id, "causation_id": self.causation_id}


class TracedEvent(Aggregate.Event):
    """Base of every aggregate event after creation: carries correlation and causation."""

    correlation_id: str
    causation_id: str

    @property
    def id(self) -> str:
        """This event's id (see :func:`event_id`)."""
        return event_id(self.originator_id, self.originator_version)


class TracedCreated(Aggregate.Created):
    """Base of every creation event: carries correlation and causation."""

    correlation_id: str
    causation_id: str

    @property
    def id(self) -> str:
        """This event's id (see :func:`event_id`)."""
        return event_id(self.originator_id, self.originator_version)
