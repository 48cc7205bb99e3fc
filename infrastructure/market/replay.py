"""A market replayed from a candle file (CSV), for backtests, demos and tests.

The file (README, "Candle files")::

    symbol,open_time,open,high,low,close,volume
    BTCUSDT,2024-03-01T00:00:00Z,61000.5,61210,60950.1,61100,12.5
    ETHUSDT,1709251200000,3400.25,3412,3391.5,3405.75,310

- a header row naming those seven columns (any order; other columns are ignored);
- ``open_time`` in ISO 8601 (no zone: UTC) or epoch **milliseconds**, 2009 to 2099;
- several symbols per file, rows in any order; one interval per file (passed in, default
  15 minutes): two bars of a symbol must be a whole number of intervals apart;
- prices finite and > 0, volume finite and >= 0, ``high >= max(open, close)``,
  ``low <= min(open, close)``, every number at most 1e18; no control characters;
- a gap (missing bars) is reported by ``closed_candles``, never filled in.

A bad file is refused whole with ``CandleFileError``: one line naming the line and column.
``now()`` is the close of the file's last bar, so "closed candles up to now" is the file.

Parquet is not read (it would need pyarrow): ``pandas.read_parquet(p).to_csv(c, index=False)``.
"""

from __future__ import annotations

import bisect
import csv
import io
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

from application.ports import CandleBatch, MarketUnavailable
from domain.candles import Candle, Instrument
from domain.errors import DomainError
from domain.values import utc
from infrastructure.market.series import gaps_between, on_grid

COLUMNS = ("symbol", "open_time", "open", "high", "low", "close", "volume")
EARLIEST = datetime(2009, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
MAX_NUMBER = 1e18
DEFAULT_MIN_NOTIONAL = 5.0
"""Bybit's usual minimum order value for a USDT perpetual, in USDT."""

INSTRUMENTS: Mapping[str, Instrument] = {
    # BTCUSDT: Bybit's documented example (instruments_info.json); maxOrderQty 1190 for
    # limit orders, maxMktOrderQty 500 for market orders: the smaller one is kept.
    "BTCUSDT": Instrument("BTCUSDT", 0.1, 0.001, 0.001, 5.0, 500.0),
    # ETHUSDT and SOLUSDT: Bybit's usual filters (not in the documented example).
    "ETHUSDT": Instrument("ETHUSDT", 0.01, 0.01, 0.01, 5.0, 724.0),
    "SOLUSDT": Instrument("SOLUSDT", 0.01, 0.1, 0.1, 5.0, 7977.0),
}
"""The built-in trading rules of a replay; pass ``instruments`` to override or add."""

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_SYMBOL = re.compile(r"[A-Z0-9]{2,30}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class CandleFileError(DomainError):
    """A candle file was refused; the message names the line (and column)."""


@dataclass(frozen=True)
class _Row:
    line: int
    candle: Candle


_Refuse = Callable[[str, str], CandleFileError]


def default_instrument(symbol: str, price: float) -> Instrument:
    """Trading rules for a symbol the table lacks, from a typical price of it.

    The rule: the tick keeps six significant digits of ``price``
    (``10**(floor(log10(price)) - 5)``); the lot step and the minimum quantity are the
    power of ten worth between 10 and 100 quote units at ``price``
    (``10**ceil(log10(10 / price))``); the minimum order value is 5. For BTCUSDT at
    60,000 this gives 0.1 / 0.001, as on Bybit.
    """
    tick = _power_of_ten(math.floor(math.log10(price)) - 5)
    step = _power_of_ten(math.ceil(math.log10(10 / price)))
    return Instrument(symbol, tick, step, step, DEFAULT_MIN_NOTIONAL)


class ReplayMarket:
    """The ``MarketData`` port over candles loaded from a file (or given directly)."""

    def __init__(
        self,
        candles: Iterable[Candle],
        interval: timedelta = timedelta(minutes=15),
        *,
        instruments: Mapping[str, Instrument] | None = None,
        name: str = "the candle file",
    ) -> None:
        """``candles`` must already be valid, unique and on ``interval``'s grid."""
        self.interval = interval
        self._name = name
        self._series: dict[str, list[Candle]] = {}
        for candle in sorted(candles, key=lambda c: (c.symbol, c.open_time)):
            self._series.setdefault(candle.symbol, []).append(candle)
        self._opens = {s: [c.open_time for c in bars] for s, bars in self._series.items()}
        self._instruments = {**INSTRUMENTS, **(instruments or {})}
        closes = [bars[-1].close_time for bars in self._series.values()]
        self._now = max(closes) if closes else EARLIEST

    @classmethod
    def from_file(
        cls,
        path: Path,
        interval: timedelta = timedelta(minutes=15),
        *,
        instruments: Mapping[str, Instrument] | None = None,
    ) -> ReplayMarket:
        """Load a candle CSV; a bad file raises ``CandleFileError`` naming line and column."""
        if path.suffix.lower() == ".parquet":
            raise CandleFileError(
                f"{path.name}: Parquet is not read; export it to CSV "
                "(pandas.read_parquet(path).to_csv(csv_path, index=False))"
            )
        try:
            data = path.read_bytes()
        except OSError as e:
            raise CandleFileError(f"{path}: cannot read ({e.strerror or e})") from None
        candles = read_candles(_decode(path.name, data), interval, name=path.name)
        return cls(candles, interval, instruments=instruments, name=path.name)

    @property
    def symbols(self) -> tuple[str, ...]:
        """The symbols in the file, sorted."""
        return tuple(self._series)

    def now(self) -> datetime:
        """The close of the file's last bar."""
        return self._now

    def instrument(self, symbol: str) -> Instrument:
        """The built-in or given rules, else ``default_instrument`` at the median close."""
        known = self._instruments.get(symbol)
        if known is not None:
            return known
        bars = self._series.get(symbol)
        if not bars:
            raise MarketUnavailable(f"{symbol}: not in {self._name}")
        median_close = sorted(c.close for c in bars)[len(bars) // 2]
        rules = self._instruments[symbol] = default_instrument(symbol, median_close)
        return rules

    def closed_candles(
        self,
        symbol: str,
        interval: timedelta,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 200,
    ) -> CandleBatch:
        """Up to ``limit`` bars: from ``start`` on, or the last ones closing by ``end``."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        if interval != self.interval:
            raise MarketUnavailable(
                f"{symbol}: {self._name} holds {_span(self.interval)} bars, not {_span(interval)}"
            )
        bars = self._series.get(symbol)
        if bars is None:
            raise MarketUnavailable(f"{symbol}: not in {self._name}")
        opens = self._opens[symbol]
        cutoff = self._now if end is None else min(utc(end), self._now)
        stop = bisect.bisect_right(opens, cutoff - interval)  # bars closing by the cutoff
        if start is None:
            chosen = bars[max(0, stop - limit) : stop]
        else:
            first = bisect.bisect_left(opens, utc(start))
            chosen = bars[first : min(stop, first + limit)]
        return CandleBatch(symbol, interval, tuple(chosen), gaps_between(chosen))


def read_candles(text: str, interval: timedelta, *, name: str = "the file") -> list[Candle]:
    """Every bar of a candle CSV, validated; ``CandleFileError`` on the first problem."""
    rows = list(_rows(text, interval, name))
    if not rows:
        raise CandleFileError(f"{name}: holds no candles")
    by_symbol: dict[str, list[_Row]] = {}
    for row in sorted(rows, key=lambda r: (r.candle.symbol, r.candle.open_time)):
        by_symbol.setdefault(row.candle.symbol, []).append(row)
    for series in by_symbol.values():
        for before, after in pairwise(series):
            b, a = before.candle, after.candle
            where = f"{name} line {max(before.line, after.line)}"
            if a.open_time == b.open_time:
                raise CandleFileError(
                    f"{where}: a second {a.symbol} bar at {a.open_time.isoformat()} "
                    f"(lines {min(before.line, after.line)} and {max(before.line, after.line)})"
                )
            if not on_grid(b.open_time, a.open_time, interval):
                raise CandleFileError(
                    f"{where}, column open_time: {a.symbol} bars at {b.open_time.isoformat()} "
                    f"and {a.open_time.isoformat()} are not a whole number of "
                    f"{_span(interval)} apart (is the file's interval {_span(interval)}?)"
                )
    return [row.candle for row in rows]


def _rows(text: str, interval: timedelta, name: str) -> Iterator[_Row]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    index: dict[str, int] = {}
    try:
        for fields in reader:
            line = reader.line_num
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue  # a blank line
            _no_control(name, line, header, fields)
            names = [f.strip().lower() for f in fields]
            if header is None:
                header, index = names, _header(name, line, names)
                continue
            if names == header:
                raise CandleFileError(f"{name} line {line}: a second header row")
            if len(fields) != len(header):
                raise CandleFileError(
                    f"{name} line {line}: {len(fields)} fields, the header has {len(header)}"
                )
            cells = {column: fields[i] for column, i in index.items()}
            yield _Row(line, _candle(name, line, cells, interval))
    except csv.Error as e:
        raise CandleFileError(f"{name} line {reader.line_num}: not valid CSV ({e})") from None
    if header is None:
        raise CandleFileError(f"{name}: empty, expected the header {','.join(COLUMNS)}")


def _header(name: str, line: int, names: Sequence[str]) -> dict[str, int]:
    for column in names:
        if column and names.count(column) > 1:
            raise CandleFileError(f"{name} line {line}: column {column!r} twice in the header")
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise CandleFileError(
            f"{name} line {line}: the header lacks column(s) {', '.join(missing)} "
            f"(expected {','.join(COLUMNS)})"
        )
    return {c: names.index(c) for c in COLUMNS}


def _no_control(name: str, line: int, header: list[str] | None, fields: list[str]) -> None:
    for i, value in enumerate(fields):
        bad = next((ch for ch in value if unicodedata.category(ch) == "Cc"), None)
        if bad is not None:
            column = header[i] if header and i < len(header) else f"#{i + 1}"
            raise CandleFileError(
                f"{name} line {line}, column {column}: control character U+{ord(bad):04X}"
            )


def _candle(name: str, line: int, cells: dict[str, str], interval: timedelta) -> Candle:
    def refuse(column: str, why: str) -> CandleFileError:
        return CandleFileError(f"{name} line {line}, column {column}: {why}")

    symbol = cells["symbol"].strip().upper()
    if not _SYMBOL.fullmatch(symbol):
        raise refuse("symbol", f"{cells['symbol'].strip()!r:.40} is not a symbol")
    numbers: dict[str, float] = {}
    for column in ("open", "high", "low", "close", "volume"):
        text = cells[column].strip()
        value = float(text) if _NUMBER.fullmatch(text) else math.nan
        if not (math.isfinite(value) and abs(value) <= MAX_NUMBER):
            raise refuse(column, f"{text!r:.40} is not a number up to 1e18")
        least = 0.0 if column == "volume" else math.ulp(0.0)
        if value < least:
            raise refuse(column, f"{text} must be {'>= 0' if column == 'volume' else '> 0'}")
        numbers[column] = value
    candle = Candle(
        symbol,
        _open_time(cells["open_time"], refuse),
        interval,
        numbers["open"],
        numbers["high"],
        numbers["low"],
        numbers["close"],
        numbers["volume"],
    )
    if candle.high < max(candle.open, candle.close):
        raise refuse("high", f"{candle.high:g} is below the open or the close")
    if candle.low > min(candle.open, candle.close):
        raise refuse("low", f"{candle.low:g} is above the open or the close")
    return candle


def _open_time(text: str, refuse: _Refuse) -> datetime:
    text = text.strip()
    if text.isdigit():
        number = int(text)
        if EARLIEST.timestamp() <= number < LATEST.timestamp():
            raise refuse("open_time", f"{text} looks like epoch seconds; milliseconds expected")
        try:
            moment = _EPOCH + timedelta(milliseconds=number)
        except OverflowError:
            raise refuse("open_time", f"{text:.40} ms is out of range") from None
    else:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise refuse(
                "open_time", f"{text!r:.40} is neither ISO 8601 nor epoch milliseconds"
            ) from None
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    if not EARLIEST <= moment < LATEST:
        raise refuse("open_time", f"{moment.isoformat()} is outside 2009 to 2099")
    return moment


def _decode(name: str, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise CandleFileError(f"{name} line {line}: not UTF-8 text") from None


def _power_of_ten(exponent: int) -> float:
    return float(f"1e{exponent}")


def _span(interval: timedelta) -> str:
    minutes = interval / timedelta(minutes=1)
    return f"{minutes:g}m" if minutes < 60 or minutes % 60 else f"{minutes / 60:g}h"
