"""Bulk import of trade history (CSV or JSON): all or nothing per file, idempotent.

Columns (CSV header row, or the keys of each JSON object)::

    signal_id,symbol,direction,entry_time,entry_price,exit_time,exit_price,
    qty,fee,exit_reason,confidence,theories,source

``exit_*`` empty for an open trade; ``qty`` (default 1), ``fee`` (default 0, the trade's
total fee in quote currency, booked on the entry), ``exit_reason`` (default ``manual``),
``confidence``, ``theories`` (``name=score;name=score``) and ``source`` (default
``manual``) optional. Times are ISO 8601; a time without a zone is UTC.

A header naming a column twice, a JSON object with a key twice, and a JSON value of
the wrong type (text columns take strings, ``signal_id`` also an integer; number
columns numbers or numeric strings; ``theories`` an object of numbers or the text
form) are refused, never coerced. The values then meet the domain's rules, the same
as any command's.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import RecordConflictError

from application.ledger import MAX_ATTEMPTS, TradeLedger
from domain.errors import ConflictError, DomainError
from domain.events import Causation
from domain.signal import MANUAL_SOURCE, Gate, Signal, SignalDraft, signal_uuid
from domain.trade import Fill, Trade
from domain.values import Direction, clean_text, shown

COLUMNS = (
    "signal_id",
    "symbol",
    "direction",
    "entry_time",
    "entry_price",
    "exit_time",
    "exit_price",
    "qty",
    "fee",
    "exit_reason",
    "confidence",
    "theories",
    "source",
)
REQUIRED = ("signal_id", "symbol", "direction", "entry_time", "entry_price")
_TEXT_COLUMNS = ("symbol", "direction", "entry_time", "exit_time", "exit_reason", "source")
_NUMBER_COLUMNS = ("entry_price", "exit_price", "qty", "fee", "confidence")


class ImportRefusedError(DomainError):
    """A file was refused; the message names the line."""


@dataclass(frozen=True)
class ImportRow:
    """One validated line of an import file."""

    line: int
    draft: SignalDraft
    entry: Fill
    exit_price: float | None
    exit_time: datetime | None
    exit_reason: str


@dataclass(frozen=True)
class ImportSummary:
    """What an import stored: new signals, entries and exits, and rows already known."""

    rows: int
    signals: int
    entries: int
    exits: int
    unchanged: int
    last_notification_id: int | None


def parse_time(text: str) -> datetime:
    """ISO 8601 (``Z`` allowed); a time without a zone is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise DomainError(f"not an ISO 8601 time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_theories(text: str) -> dict[str, float]:
    """``momentum=0.6;volume=0.4`` → ``{"momentum": 0.6, "volume": 0.4}``; a name given
    twice is refused."""
    theories: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, sep, score = part.partition("=")
        if not sep or not name.strip():
            raise DomainError(f"theory {shown(part)} is not name=score")
        if name.strip() in theories:
            raise DomainError(f"theory {shown(name.strip())} is given twice")
        theories[name.strip()] = _number(f"theory {name.strip()} score", score)
    return theories


def _number(name: str, text: Any) -> float:
    if isinstance(text, bool):
        raise DomainError(f"{name} is not a number: {text!r}")
    if isinstance(text, int | float):
        return float(text)
    try:
        return float(str(text).strip())
    except ValueError:
        raise DomainError(f"{name} is not a number: {shown(text)}") from None


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


class _JsonObject(dict[str, Any]):
    """A decoded JSON object that remembers the keys it was given more than once."""

    duplicates: tuple[str, ...] = ()


def _json_object(pairs: list[tuple[str, Any]]) -> _JsonObject:
    found = _JsonObject(pairs)
    if len(found) != len(pairs):
        keys = [key for key, _ in pairs]
        found.duplicates = tuple(sorted({key for key in keys if keys.count(key) > 1}))
    return found


def read_records(text: str, fmt: str) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """(line number, record) pairs from CSV (header on line 1) or a JSON list of objects."""
    if fmt == "csv":
        yield from _csv_records(text)
    elif fmt == "json":
        yield from _json_records(text)
    else:
        raise ImportRefusedError(f"unknown format {shown(fmt)}; use csv or json")


def _csv_records(text: str) -> Iterator[tuple[int, Mapping[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text))
    read = 0  # the lines read so far: a record that fails to parse starts after them
    try:
        header = reader.fieldnames or []
        read = 1
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise ImportRefusedError(f"line 1: the header lacks column(s) {', '.join(missing)}")
        unknown = [c for c in header if c not in COLUMNS]
        if unknown:
            names = ", ".join(shown(c) if not c.isidentifier() else c for c in unknown)
            raise ImportRefusedError(f"line 1: unknown column(s) {names}")
        twice = sorted({c for c in header if header.count(c) > 1})
        if twice:
            raise ImportRefusedError(f"line 1: column(s) {', '.join(twice)} given twice")
        for record in reader:
            if None in record:
                raise ImportRefusedError(f"line {reader.line_num}: more fields than the header has")
            yield reader.line_num, record
            read = reader.line_num
    except csv.Error as e:
        line = read + 1
        if "field larger than field limit" in str(e):
            limit = csv.field_size_limit()
            raise ImportRefusedError(
                f"line {line}: a field is longer than {limit} characters"
            ) from None
        raise ImportRefusedError(f"line {line}: not valid CSV ({e})") from None


def _json_records(text: str) -> Iterator[tuple[int, Mapping[str, Any]]]:
    try:
        data = json.loads(text, object_pairs_hook=_json_object)
    except json.JSONDecodeError as e:
        raise ImportRefusedError(f"line {e.lineno}: invalid JSON ({e.msg})") from None
    except RecursionError:
        raise ImportRefusedError("line 1: invalid JSON (nested too deeply)") from None
    if not isinstance(data, list):
        raise ImportRefusedError("line 1: the JSON must be a list of objects")
    for index, record in enumerate(data, start=1):
        if not isinstance(record, dict):
            raise ImportRefusedError(f"item {index}: not a JSON object")
        unknown = [c for c in record if c not in COLUMNS]
        if unknown:
            raise ImportRefusedError(
                f"item {index}: unknown key(s) {', '.join(map(shown, unknown))}"
            )
        problem = _json_type_problem(record)
        if problem:
            raise ImportRefusedError(f"item {index}: {problem}")
        yield index, record


def _json_type_problem(record: Mapping[str, Any]) -> str | None:
    """Why a JSON record's values are of the wrong type, or ``None`` when they are fine."""
    if isinstance(record, _JsonObject) and record.duplicates:
        return f"key {shown(record.duplicates[0])} is given twice"
    for column, value in record.items():
        if value is None:
            continue
        if column == "signal_id":
            ok = isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
            wanted = "a string or an integer"
        elif column in _TEXT_COLUMNS:
            ok, wanted = isinstance(value, str), "a string"
        elif column in _NUMBER_COLUMNS:
            ok = isinstance(value, str | int | float) and not isinstance(value, bool)
            wanted = "a number"
        else:  # theories
            ok, wanted = isinstance(value, str | dict), "an object of scores or name=score text"
            if isinstance(value, _JsonObject) and value.duplicates:
                return f"theory {shown(value.duplicates[0])} is given twice"
        if not ok:
            return f"{column} must be {wanted}, not {shown(value)}"
    return None


def parse_row(line: int, record: Mapping[str, Any], label: str = "line") -> ImportRow:
    """Validate one record; any problem is an ``ImportRefusedError`` naming the line (or item)."""
    try:
        for column in REQUIRED:
            if _blank(record.get(column)):
                raise DomainError(f"{column} is missing")
        entry_time = parse_time(str(record["entry_time"]))
        draft = SignalDraft(
            signal_id=str(record["signal_id"]),
            symbol=str(record["symbol"]),
            direction=Direction.parse(str(record["direction"])),
            at=entry_time,
            source=MANUAL_SOURCE if _blank(record.get("source")) else str(record["source"]),
            confidence=None
            if _blank(record.get("confidence"))
            else _number("confidence", record["confidence"]),
            theories={} if _blank(record.get("theories")) else _theories(record["theories"]),
        )
        entry = Fill.checked(
            _number("entry_price", record["entry_price"]),
            1.0 if _blank(record.get("qty")) else _number("qty", record["qty"]),
            0.0 if _blank(record.get("fee")) else _number("fee", record["fee"]),
            entry_time,
            "entry",
        )
        has_price, has_time = (
            not _blank(record.get("exit_price")),
            not _blank(record.get("exit_time")),
        )
        if has_price != has_time:
            raise DomainError("exit_price and exit_time must both be given, or neither")
        exit_reason = (
            "manual"
            if _blank(record.get("exit_reason"))
            else clean_text("exit_reason", str(record["exit_reason"]))
        )
        return ImportRow(
            line=line,
            draft=draft,
            entry=entry,
            exit_price=_number("exit_price", record["exit_price"]) if has_price else None,
            exit_time=parse_time(str(record["exit_time"])) if has_time else None,
            exit_reason=exit_reason,
        )
    except DomainError as e:
        raise ImportRefusedError(f"{label} {line}: {e}") from None


def _theories(value: Any) -> dict[str, float]:
    if isinstance(value, dict):
        scores = {}
        for name, score in value.items():
            if not isinstance(score, int | float) or isinstance(score, bool):
                raise DomainError(
                    f"theory {shown(name)} score must be a number, not {shown(score)}"
                )
            scores[name] = float(score)
        return scores
    return parse_theories(str(value))


def import_history(
    ledger: TradeLedger,
    text: str,
    fmt: str,
    progress: Callable[[int], None] | None = None,
) -> ImportSummary:
    """Import a file's rows; refuse the whole file on the first bad line.

    Rows already in the ledger with the same facts are skipped, so importing the same
    file twice adds nothing; an open trade whose exit appears in a later file is closed.
    An import that races another writer (the same file imported twice at once) is
    staged again on the ledger as it now is, so the loser finds its rows already known.
    """
    for attempt in range(MAX_ATTEMPTS):
        try:
            return _import_once(ledger, text, fmt, progress if attempt == 0 else None)
        except RecordConflictError:
            continue
    raise ConflictError("the ledger kept changing under concurrent writers; nothing was imported")


def _import_once(
    ledger: TradeLedger, text: str, fmt: str, progress: Callable[[int], None] | None
) -> ImportSummary:
    pending: list[Aggregate] = []
    now = ledger.clock()
    seen: dict[str, int] = {}
    signals = entries = exits = unchanged = rows = 0
    label = "line" if fmt == "csv" else "item"
    for line, record in read_records(text, fmt):
        row = parse_row(line, record, label)
        rows += 1
        sid = row.draft.signal_id
        if sid in seen:
            raise ImportRefusedError(
                f"{label} {line}: signal {sid} appears twice (first on {label} {seen[sid]})"
            )
        seen[sid] = line
        try:
            changed = _stage(ledger, row, pending, now)
        except DomainError as e:
            raise ImportRefusedError(f"{label} {line}: {e}") from None
        signals += changed[0]
        entries += changed[1]
        exits += changed[2]
        unchanged += not any(changed)
        if progress:
            progress(1)
    last = ledger.save_all(pending) if pending else None
    return ImportSummary(rows, signals, entries, exits, unchanged, last)


def _stage(
    ledger: TradeLedger, row: ImportRow, pending: list[Aggregate], now: datetime
) -> tuple[bool, bool, bool]:
    """Add to ``pending`` what ``row`` adds to the ledger; returns (signal, entry, exit) added."""
    correlation = str(signal_uuid(row.draft.signal_id))
    cause = Causation.command("import", correlation)
    signal: Signal | None
    try:
        signal = ledger.signal(row.draft.signal_id)
    except DomainError:
        signal = None
    new_signal = signal is None
    if signal is None:
        signal = Signal.record(row.draft, Gate(), cause, now=now)
        pending.append(signal)
    else:
        signal.check_same_as(row.draft)
    trade = None if new_signal else ledger.trade(row.draft.signal_id)
    new_entry = trade is None
    if trade is None:
        trade = Trade.enter(signal, row.entry, cause, now=now)
        if not new_signal:
            pending.append(signal)
        pending.append(trade)
    elif trade.entry_facts() != {
        "price": row.entry.price,
        "qty": row.entry.qty,
        "fee": row.entry.fee,
        "at": row.entry.at,
    }:
        raise DomainError(f"signal {row.draft.signal_id} already has a different entry")
    new_exit = False
    if row.exit_price is not None and row.exit_time is not None:
        if trade.exit is None:
            trade.record_exit(row.exit_price, 0.0, row.exit_reason, row.exit_time, cause, now=now)
            new_exit = True
            if not new_entry:
                pending.append(trade)
        elif (trade.exit.price, trade.exit.at, trade.exit_reason) != (
            row.exit_price,
            row.exit_time,
            row.exit_reason,
        ):
            raise DomainError(f"signal {row.draft.signal_id} already exited differently")
    return new_signal, new_entry, new_exit
