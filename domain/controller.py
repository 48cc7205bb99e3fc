"""The Controller aggregate: the traffic light's decisions, pauses and resumes, as events.

The rules themselves are pure (:mod:`domain.controller_policy`); this aggregate records
what was decided, why, and which events caused it, so every decision can be audited.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.controller_policy import (
    ControllerState,
    Decision,
    Status,
    Thresholds,
    pause,
    resume,
)
from domain.errors import DomainError
from domain.events import Causation, TracedCreated, TracedEvent, event_id
from domain.signal import Gate
from domain.values import clean_text, utc

CONTROLLER_ID: UUID = uuid5(NAMESPACE_URL, "https://tradewatch.invalid/controller")


def _time(value: datetime | None) -> datetime | None:
    return None if value is None else utc(value)


class Controller(Aggregate):
    """The one traffic light of a ledger. Starts GREEN."""

    def __init__(self) -> None:
        self.state = ControllerState()
        self.multiplier = 1.0
        self.changed_at: datetime | None = None
        self.last_decision_id: str | None = None
        self.last_change_id: str | None = None
        """The colour change in force (the last ``StatusChanged``), as ``<uuid>:<version>``."""

    class Started(TracedCreated):
        """The controller came into being (GREEN, multiplier 1)."""

        at: datetime

        def apply(self, aggregate: Controller) -> None:
            aggregate.changed_at = self.at

    class StatusChanged(TracedEvent):
        """The light changed colour; ``rules`` are every rule evaluated, with values."""

        old_status: str
        new_status: str
        multiplier: float
        rules: list[dict[str, Any]]
        caused_by: list[int]
        cause_event_ids: list[str]
        decided_at: datetime
        red_since: datetime | None
        last_red_at: datetime | None

        def apply(self, aggregate: Controller) -> None:
            old = aggregate.state
            aggregate.state = ControllerState(
                status=Status(self.new_status),
                red_since=self.red_since,
                last_red_at=self.last_red_at,
                pause=old.pause if self.new_status == Status.RED else None,
                last_resume=old.last_resume,
            )
            aggregate.multiplier = self.multiplier
            aggregate.changed_at = self.decided_at
            aggregate.last_decision_id = event_id(self.originator_id, self.originator_version)
            aggregate.last_change_id = aggregate.last_decision_id

    class ManualAction(TracedEvent):
        """A person acted on the controller: who, why and when."""

        by: str
        reason: str
        at: datetime

    class Paused(ManualAction):
        """Someone stopped trading by hand."""

        def apply(self, aggregate: Controller) -> None:
            was_red = aggregate.state.status is Status.RED
            aggregate.state = pause(aggregate.state, self.by, self.reason, self.at)
            aggregate.multiplier = 0.0
            if not was_red:
                aggregate.changed_at = self.at
            aggregate.last_decision_id = event_id(self.originator_id, self.originator_version)

    class Resumed(ManualAction):
        """Someone lifted a pause or cool-down; the numbers decide again."""

        def apply(self, aggregate: Controller) -> None:
            aggregate.state = resume(aggregate.state, self.by, self.reason, self.at)
            aggregate.last_decision_id = event_id(self.originator_id, self.originator_version)

    @classmethod
    def start(cls, at: datetime, causation: Causation) -> Controller:
        """The controller, GREEN."""
        return cls._create(cls.Started, id=CONTROLLER_ID, at=utc(at), **causation.fields())

    @property
    def status(self) -> Status:
        """The colour in force."""
        return self.state.status

    def gate(self) -> Gate:
        """What a new signal records: the status, its multiplier and the decision behind it."""
        return Gate(
            status=self.status.value, multiplier=self.multiplier, decision_id=self.last_decision_id
        )

    def decide(
        self,
        decision: Decision,
        caused_by: list[int],
        cause_event_ids: list[str],
        causation: Causation,
        thresholds: Thresholds,
    ) -> bool:
        """Record ``decision`` if it changes the colour; returns whether it did."""
        if decision.status is self.status:
            return False
        after = (
            ControllerState(
                status=Status.RED,
                red_since=self.state.red_since or decision.decided_at,
                last_red_at=decision.decided_at,
            )
            if decision.status is Status.RED
            else ControllerState(status=decision.status)
        )
        self.trigger_event(
            self.StatusChanged,
            old_status=self.status.value,
            new_status=decision.status.value,
            multiplier=thresholds.multiplier(decision.status),
            rules=[_rule(r) for r in decision.rules],
            caused_by=caused_by,
            cause_event_ids=cause_event_ids,
            decided_at=utc(decision.decided_at),
            red_since=_time(after.red_since),
            last_red_at=_time(after.last_red_at),
            **causation.fields(),
        )
        return True

    def pause_trading(self, by: str, reason: str, at: datetime, causation: Causation) -> None:
        """Force RED until resumed."""
        if self.state.paused:
            pause_ = self.state.pause
            assert pause_ is not None
            raise DomainError(f"trading is already paused by {pause_.by}: {pause_.reason}")
        self.trigger_event(
            self.Paused,
            by=clean_text("who", by),
            reason=clean_text("reason", reason, max_length=500),
            at=utc(at),
            **causation.fields(),
        )

    def resume_trading(self, by: str, reason: str, at: datetime, causation: Causation) -> None:
        """Lift a pause or a cool-down; refused when there is nothing to lift."""
        if not self.state.paused and self.status is not Status.RED:
            raise DomainError(f"nothing to resume: the controller is {self.status.value}")
        self.trigger_event(
            self.Resumed,
            by=clean_text("who", by),
            reason=clean_text("reason", reason, max_length=500),
            at=utc(at),
            **causation.fields(),
        )


def _rule(rule: Any) -> dict[str, Any]:
    data = asdict(rule)
    data["severity"] = rule.severity.value
    data["state"] = rule.state.value
    data["fired"] = rule.fired
    data["text"] = rule.describe()
    return data
