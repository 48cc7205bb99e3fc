"""Alerts: what the trader is told, recorded as events before anything is sent.

An alert's id is derived from what it is about (a signal, a decision, a day), so the same
alert cannot be raised twice: a second attempt conflicts with the first and is dropped.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.events import Causation, TracedCreated
from domain.values import clean_text, utc

ALERT_NAMESPACE = uuid5(NAMESPACE_URL, "https://tradewatch.invalid/alert")
MAX_TEXT = 4000
"""Longer alert texts are cut (with an ellipsis) when raised."""


class AlertType(StrEnum):
    """The V4 plan's six alert types."""

    SIGNAL = "signal"
    WARNING = "warning"
    CRITICAL = "critical"
    DAILY_STATUS = "daily_status"
    WEEKLY_REPORT = "weekly_report"
    PREDICTIVE_WARNING = "predictive_warning"


class Severity(StrEnum):
    """How loud an alert is."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class Mode(StrEnum):
    """Per alert type: published, recorded only, or not raised at all."""

    ON = "on"
    SILENT = "silent"
    OFF = "off"


def alert_uuid(key: str) -> UUID:
    """The id of the alert about ``key`` (e.g. ``daily_status:2026-11-21``)."""
    return uuid5(ALERT_NAMESPACE, key)


class Alert(Aggregate):
    """One alert, raised once."""

    def __init__(self) -> None:
        self.type = AlertType.SIGNAL
        self.publish = True

    class Raised(TracedCreated):
        """An alert was decided; ``publish`` is false for silent types."""

        key: str
        type: str
        severity: str
        title: str
        text: str
        data: dict[str, Any]
        causes: list[str]
        caused_by: list[int]
        publish: bool
        at: datetime

        def apply(self, aggregate: Alert) -> None:
            aggregate.type = AlertType(self.type)
            aggregate.publish = self.publish

    @classmethod
    def raise_alert(
        cls,
        key: str,
        type_: AlertType,
        severity: Severity,
        title: str,
        body: str,
        data: dict[str, Any],
        *,
        causes: list[str],
        caused_by: list[int],
        publish: bool,
        at: datetime,
        causation: Causation,
    ) -> Alert:
        """Raise the alert about ``key``."""
        return cls._create(
            cls.Raised,
            id=alert_uuid(key),
            key=key,
            type=type_.value,
            severity=severity.value,
            title=clean_text("title", title, max_length=200),
            text=body if len(body) <= MAX_TEXT else body[: MAX_TEXT - 1] + "…",
            data=data,
            causes=causes,
            caused_by=caused_by,
            publish=publish,
            at=utc(at),
            **causation.fields(),
        )
