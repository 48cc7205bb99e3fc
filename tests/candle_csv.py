"""A tiny reader of the candle file format, for tests: a header, then one bar a line.

Columns: ``symbol,open_time,open,high,low,close,volume``; ``open_time`` is ISO 8601 in UTC
(``2026-01-05T00:00:00Z``). The real reader is the replay market adapter; the paper
exchange's tests must not depend on it, so they read with this.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

from domain.candles import Candle

FIXTURES = Path(__file__).parent / "fixtures" / "candles"
FIFTEEN_MINUTES = timedelta(minutes=15)
HEADER = ["symbol", "open_time", "open", "high", "low", "close", "volume"]


def parse_candles(text: str, interval: timedelta = FIFTEEN_MINUTES) -> list[Candle]:
    """The candles in ``text`` (with its header line), in file order; a bad bar raises."""
    rows = list(csv.reader(io.StringIO(text)))
    if rows[0] != HEADER:
        raise ValueError(f"candle file header is {rows[0]}, not {HEADER}")
    candles = []
    for symbol, open_time, *numbers in (row for row in rows[1:] if row):
        opened = datetime.fromisoformat(open_time.replace("Z", "+00:00")).astimezone(UTC)
        o, h, low, c, v = (float(n) for n in numbers)
        candle = Candle(symbol, opened, interval, o, h, low, c, v)
        if candle.problem():
            raise ValueError(candle.problem())
        candles.append(candle)
    return candles


def load_candles(name: str, interval: timedelta = FIFTEEN_MINUTES) -> list[Candle]:
    """The candles of ``tests/fixtures/candles/<name>.csv``."""
    return parse_candles((FIXTURES / f"{name}.csv").read_text(), interval)
