"""Value objects and the validation every intake shares: the rules of the door.

Whatever records a fact (a command, an import, a generator) passes its values through
these validators, so a stored event always holds numbers whose products and P&L are
finite normal floats, times a trader could mean, and text that prints on one line.
"""

from __future__ import annotations

import math
import unicodedata
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from domain.errors import DomainError

EARLIEST = datetime(2009, 1, 1, tzinfo=UTC)
"""No market fact is older than Bitcoin (its genesis block: 3 January 2009)."""

FUTURE_TOLERANCE = timedelta(minutes=5)
"""How far ahead of the application's clock a fact may be dated (clock skew between hosts)."""

MIN_PRICE, MAX_PRICE = 1e-12, 1e12
"""Prices (and levels) lie in [1e-12, 1e12], so that with the quantities below every
notional, P&L, percentage and sum over a ledger stays a finite normal float."""

MIN_QUANTITY, MAX_QUANTITY = 1e-12, 1e15
"""Quantities and position sizes lie in [1e-12, 1e15] (a meme coin is bought by the
trillion): a notional is then within [1e-24, 1e27]."""

MAX_SCORE = 1e6
"""Theory scores lie in [−1e6, 1e6], so score × P&L stays finite."""

MAX_THEORIES = 100
"""At most this many theories (or quality gates) on one signal."""

_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
"""Bidirectional formatting characters: they reorder how text is displayed."""


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
            raise DomainError(f"direction must be 'long' or 'short', not {shown(text)}") from None


class ExitReason(StrEnum):
    """The usual reasons a trade is closed; any other free text is allowed too."""

    TAKE_PROFIT = "take_profit"
    STOP_LOSS = "stop_loss"
    MANUAL = "manual"
    TIMEOUT = "timeout"
    LIQUIDATION = "liquidation"


def shown(value: object, limit: int = 40) -> str:
    """``value`` for an error message: its repr, cut to ``limit`` characters (one line)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def valid_price(name: str, value: float) -> float:
    """A price or price level: a finite number within [1e-12, 1e12]."""
    return _bounded(name, value, MIN_PRICE, MAX_PRICE)


def valid_quantity(name: str, value: float) -> float:
    """A quantity or position size: a finite number within [1e-12, 1e15]."""
    return _bounded(name, value, MIN_QUANTITY, MAX_QUANTITY)


def valid_fee(name: str, value: float, notional: float) -> float:
    """A fee in quote currency: finite, >= 0, and not more than the ``notional`` it is paid on."""
    number = _number(name, value)
    if number < 0:
        raise DomainError(f"{name} must not be negative, got {value}")
    if number > notional:
        raise DomainError(f"{name} {number:g} is larger than the notional {notional:g}")
    return number


def valid_fraction(name: str, value: float) -> float:
    """Return ``value`` if it is finite and within [0, 1], else raise ``DomainError``."""
    number = _number(name, value)
    if not 0.0 <= number <= 1.0:
        raise DomainError(f"{name} must be between 0 and 1, got {value}")
    return number


def valid_score(name: str, value: float, limit: float = MAX_SCORE) -> float:
    """A theory score (or, with another ``limit``, a gate's value): finite, within ±limit."""
    number = _number(name, value)
    if abs(number) > limit:
        raise DomainError(f"{name} must be within ±{limit:g}, got {value}")
    return number


def _bounded(name: str, value: float, low: float, high: float) -> float:
    number = _number(name, value)
    if number <= 0:
        raise DomainError(f"{name} must be greater than 0, got {value}")
    if not low <= number <= high:
        raise DomainError(f"{name} must be within [{low:g}, {high:g}], got {value}")
    return number


def _number(name: str, value: float) -> float:
    if isinstance(value, bool):
        raise DomainError(f"{name} must be a number, got {shown(value)}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DomainError(f"{name} must be a number, got {shown(value)}") from None
    if not math.isfinite(number):
        raise DomainError(f"{name} must be a finite number, got {value}")
    return number


def utc(moment: datetime) -> datetime:
    """Return ``moment`` in UTC, refusing naive datetimes (their zone is a guess)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise DomainError(f"time {moment.isoformat()} has no time zone")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise DomainError(f"time {moment.isoformat()} is out of range") from None


def recorded_time(name: str, moment: datetime) -> datetime:
    """A time a fact may carry: zone-aware, in UTC, not before 2009-01-01."""
    at = utc(moment)
    if at < EARLIEST:
        raise DomainError(f"{name} {at.isoformat()} is before {EARLIEST.date().isoformat()}")
    return at


def not_ahead(name: str, moment: datetime, now: datetime) -> datetime:
    """Refuse a time more than :data:`FUTURE_TOLERANCE` ahead of ``now`` (the app's clock)."""
    if moment > utc(now) + FUTURE_TOLERANCE:
        minutes = int(FUTURE_TOLERANCE.total_seconds() // 60)
        raise DomainError(
            f"{name} {moment.isoformat()} is more than {minutes} minutes ahead of now"
        )
    return moment


def plausible_time(name: str, moment: datetime, now: datetime) -> datetime:
    """A fact's time: in UTC, not before 2009-01-01, not ahead of ``now`` (+ tolerance)."""
    return not_ahead(name, recorded_time(name, moment), now)


def not_before(name: str, moment: datetime, other_name: str, other: datetime) -> None:
    """Refuse ``moment`` earlier than ``other`` (an exit before its entry, say)."""
    if moment < other:
        raise DomainError(
            f"{name} {moment.isoformat()} is before the {other_name} {other.isoformat()}"
        )


def clean_text(name: str, value: str, *, max_length: int = 200) -> str:
    """Text fit for one line anywhere: stripped, not empty, at most ``max_length``
    characters, with no control characters (C0, DEL, C1, NUL), line or paragraph
    separators, or bidirectional controls (which reorder what a reader sees)."""
    if not isinstance(value, str):
        raise DomainError(f"{name} must be text, got {shown(value)}")
    stripped = value.strip()
    if not stripped:
        raise DomainError(f"{name} must not be empty")
    if len(stripped) > max_length:
        raise DomainError(f"{name} is longer than {max_length} characters")
    for char in stripped:
        if _unprintable(char):
            raise DomainError(f"{name} contains the control character U+{ord(char):04X}")
    return stripped


def optional_text(name: str, value: str | None, *, max_length: int = 200) -> str | None:
    """:func:`clean_text`, or ``None`` when ``value`` is ``None``."""
    return None if value is None else clean_text(name, value, max_length=max_length)


def _unprintable(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Zl", "Zp") or char in _BIDI_CONTROLS


def positive_price(name: str, value: float) -> float:
    """A finite number > 0, without the range of :func:`valid_price` (the paper exchange's
    orders check their fills' values themselves)."""
    number = _number(name, value)
    if number <= 0:
        raise DomainError(f"{name} must be greater than 0, got {value}")
    return number


fraction = valid_fraction
"""The first name of :func:`valid_fraction`."""

text = clean_text
"""The first name of :func:`clean_text`."""
