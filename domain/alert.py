"""Alerts: what the trader is told, recorded as events before anything is sent.

An alert's id is derived from what it is about (a signal, a decision, a day), so the same
alert cannot be raised twice: a second attempt conflicts with the first and is dropped.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
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


_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86_400, "w": 604_800}
_BYBIT_INTERVALS = {"D": 86_400, "W": 604_800, "M": 30 * 86_400}
_TIMEFRAME = re.compile(r"(\d{1,6})\s*(s|m|min|h|d|w)?")


def timeframe_length(timeframe: str | None) -> timedelta | None:
    """How long one bar of a signal's timeframe lasts: ``15m``, ``4h``, ``1d``, ``1w``, or
    Bybit's intervals (``15`` minutes, ``D``, ``W``, ``M``); None when it says no length."""
    if timeframe is None:
        return None
    text = timeframe.strip()
    if text in _BYBIT_INTERVALS:
        return timedelta(seconds=_BYBIT_INTERVALS[text])
    found = _TIMEFRAME.fullmatch(text.lower())
    if found is None or int(found[1]) == 0:
        return None
    return timedelta(seconds=int(found[1]) * _UNITS[found[2] or "m"])


def still_actionable(
    signal_at: datetime, timeframe: str | None, now: datetime, max_age: timedelta
) -> bool:
    """Whether a signal is still news at ``now``: no older than one bar of its timeframe
    (``max_age`` when it has none). Alerts about older signals are history: recorded, not
    published."""
    return now - signal_at <= (timeframe_length(timeframe) or max_age)


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
