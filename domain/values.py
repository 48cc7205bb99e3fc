"""Value objects and validation shared by the aggregates."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from enum import StrEnum

from domain.errors import DomainError


class Direction(StrEnum):
    """Which way a signal or trade bets."""

    LONG = "long"
    SHORT = "short"

    @classmethod
    def parse(cls, text: str) -> Direction:
        """Read a direction, refusing anything but ``long`` or ``short``."""
        try:
            return cls(text.strip().lower())
        except ValueError:
            raise DomainError(f"direction must be 'long' or 'short', not {text!r}") from None


class ExitReason(StrEnum):
    """The usual reasons a trade is closed; any other free text is allowed too."""

    TAKE_PROFIT = "take_profit"
    STOP_LOSS = "stop_loss"
    MANUAL = "manual"
    TIMEOUT = "timeout"
    LIQUIDATION = "liquidation"


def positive_price(name: str, value: float) -> float:
    """Return ``value`` as a float if it is finite and > 0, else raise ``DomainError``."""
    number = _number(name, value)
    if number <= 0:
        raise DomainError(f"{name} must be greater than 0, got {value}")
    return number


def non_negative(name: str, value: float) -> float:
    """Return ``value`` as a float if it is finite and >= 0, else raise ``DomainError``."""
    number = _number(name, value)
    if number < 0:
        raise DomainError(f"{name} must not be negative, got {value}")
    return number


def fraction(name: str, value: float) -> float:
    """Return ``value`` if it is finite and within [0, 1], else raise ``DomainError``."""
    number = _number(name, value)
    if not 0.0 <= number <= 1.0:
        raise DomainError(f"{name} must be between 0 and 1, got {value}")
    return number


def _number(name: str, value: float) -> float:
    if isinstance(value, bool):
        raise DomainError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DomainError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise DomainError(f"{name} must be a finite number, got {value}")
    return number


def utc(moment: datetime) -> datetime:
    """Return ``moment`` in UTC, refusing naive datetimes (their zone is a guess)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise DomainError(f"time {moment.isoformat()} has no time zone")
    return moment.astimezone(UTC)


def text(name: str, value: str, *, max_length: int = 200) -> str:
    """Return ``value`` stripped, refusing empty or overlong text."""
    stripped = value.strip()
    if not stripped:
        raise DomainError(f"{name} must not be empty")
    if len(stripped) > max_length:
        raise DomainError(f"{name} is longer than {max_length} characters")
    return stripped
