"""What "today" means: one calendar day of the trader's time zone, as the instants it spans.

Reports (``stats --today``, ``today_pnl``), the controller's daily-loss rule and its
cool-down, and the daily status all ask :class:`TradingDay` which trades fall on a day,
so they agree in every zone. A day runs from local midnight to the next local midnight:
23 hours on the day clocks spring forward, 25 on the day they fall back
(``docs/metrics.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from domain.errors import DomainError


def zone_named(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (e.g. ``Asia/Tokyo``); ``DomainError`` if unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise DomainError(
            f"unknown time zone {name!r}; use an IANA name like Europe/Berlin"
        ) from None


@dataclass(frozen=True, slots=True)
class TradingDay:
    """A calendar day of a time zone: ``start`` (inclusive) to ``end`` (exclusive), in UTC."""

    day: date
    start: datetime
    end: datetime
    zone: tzinfo

    @classmethod
    def on(cls, day: date, zone: tzinfo = UTC) -> TradingDay:
        """The day ``day`` of ``zone``."""
        try:
            start = datetime.combine(day, time(), zone).astimezone(UTC)
            end = datetime.combine(day + timedelta(days=1), time(), zone).astimezone(UTC)
        except OverflowError:
            raise DomainError(f"the day {day.isoformat()} is out of range") from None
        return cls(day, start, end, zone)

    @classmethod
    def of(cls, moment: datetime, zone: tzinfo = UTC) -> TradingDay:
        """The day of ``zone`` on which ``moment`` falls."""
        try:
            local = moment.astimezone(zone).date()
        except OverflowError:
            raise DomainError(f"time {moment.isoformat()} is out of range") from None
        return cls.on(local, zone)

    def __contains__(self, moment: datetime) -> bool:
        """Whether ``moment`` falls on this day."""
        return self.start <= moment < self.end

    def previous(self) -> TradingDay:
        """The day before, in the same zone."""
        return TradingDay.on(self.day - timedelta(days=1), self.zone)
