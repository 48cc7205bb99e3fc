"""Benchmark tradewatch on PostgreSQL and SQLite: append, import, replay and live latency.

Run ``python -m scripts.bench --help`` (or ``make bench BENCH_ARGS="--events 30000"``).

Each database gets a fresh, throwaway database (PostgreSQL ``tw_bench_<hex>``, dropped at
the end) or SQLite file. Every figure is printed beside a *raw baseline* measured in the
same run on the same rows (what the database does with the same bytes without tradewatch)
and the ratio of the two, so a figure can be judged on any machine:

* **append**: events/s through ``TradeLedger`` commands, one command per call, on a sample;
  then the rest of the history saved in batches with ``application.demo.record``.
  Baseline: the same stored-event rows inserted raw into a table of the same shape,
  committed at the same transaction boundaries as the commands or the batches.
* **import**: the real ``tradewatch import FILE --format csv`` in a subprocess on a fresh
  database. Baseline: ``COPY`` of the same CSV into a plain table with the same columns
  (PostgreSQL); ``csv.reader`` + ``executemany`` in one transaction (SQLite has no COPY).
* **replay**: ``ProjectionEngine.replay`` of every read model from event 0, in a child
  process, with its peak RSS. Baseline: the same rows SELECTed in pages of the same size and
  each state decoded with ``orjson.loads``, no projection, in a child process too.
* **live**: time from a command's return to the read model showing its event, with a
  follower process running ``engine.follow(waiter_for(url), stop)``. Baseline: a raw
  follower that wakes the same way and only copies the new rows' position.
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import io
import json
import os
import platform
import pstats
import resource
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from types import FrameType
from typing import Any

import orjson
import psycopg
from eventsourcing.domain import Aggregate

from application.demo import DemoTrade, generate, record
from application.importing import COLUMNS
from application.ledger import CommandResult, TradeLedger
from infrastructure.bootstrap import Tradewatch, bootstrap
from infrastructure.live import PollingWaiter, waiter_for
from infrastructure.settings import Settings, eventsourcing_env, sqlite_path
from projections.engine import POSITIONS
from projections.facts import EventLog, Fact

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_EVENTS = 1_000_000
DEFAULT_PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
HISTORY_END = datetime(2025, 1, 1, tzinfo=UTC)
"""A fixed end, so that every run (and both databases) record the very same history."""
HISTORY_SEED, IMPORT_SEED, LIVE_SEED = 7, 11, 23
RAW_LIVE_CHANNEL = "tw_bench_raw_live"
RESULT_PREFIX = "BENCH-RESULT "
PHASES = ("append", "replay", "live", "import")

IMPORT_RATIO_TARGET = 0.3
REPLAY_RATIO_TARGET = 0.4
REPLAY_RSS_TARGET_MB = 400.0
LIVE_P99_TARGET_MS = 50.0

_STARTED = time.perf_counter()
_WHO = ["bench"]


def say(message: str) -> None:
    """One progress line on stderr, with the time since this process started."""
    elapsed = time.perf_counter() - _STARTED
    print(f"[{_WHO[0]} {elapsed:7.1f}s] {message}", file=sys.stderr, flush=True)


# Results ------------------------------------------------------------------------------------


@dataclass
class Figure:
    """One measured figure beside its raw baseline, and whether it meets its target."""

    database: str
    figure: str
    value: float
    unit: str
    baseline: float | None
    baseline_label: str
    target: str = "—"
    met: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """``value / baseline`` (for rates: the fraction of the raw limit reached)."""
        if self.baseline is None or self.baseline == 0:
            return None
        return self.value / self.baseline

    def as_json(self) -> dict[str, Any]:
        """The figure as JSON-friendly data, ratio included."""
        return {**asdict(self), "ratio": self.ratio}


def fmt_value(value: float | None, unit: str) -> str:
    """A value for people: rates and counts with thousands separators, times with decimals."""
    if value is None:
        return "—"
    if unit in ("ev/s", "rows/s", "cmd/s"):
        return f"{value:,.0f} {unit}"
    if unit == "MB":
        return f"{value:,.0f} MB"
    if unit == "ms":
        return f"{value:,.1f} ms"
    return f"{value:,.3g} {unit}"


def render(figures: Sequence[Figure]) -> str:
    """The results as a fixed-width table, then what each baseline is."""
    headers = ("database", "figure", "value", "baseline", "ratio", "target", "met?")
    rows = [
        (
            f.database,
            f.figure,
            fmt_value(f.value, f.unit),
            fmt_value(f.baseline, f.unit),
            "—" if f.ratio is None else f"{f.ratio:.3f}",
            f.target,
            {True: "yes", False: "NO", None: "—"}[f.met],
        )
        for f in figures
    ]
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    right = {2, 3, 4}

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    out.append("")
    out.append("baselines (raw, measured in the same run on the same rows) and notes:")
    for f in figures:
        note = f"; {f.note}" if f.note else ""
        out.append(f"  {f.database} / {f.figure}: {f.baseline_label}{note}")
    return "\n".join(out)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


# The history --------------------------------------------------------------------------------


SEGMENT_DAYS = 730
"""Days per history segment. The demo generator's prices are a random walk: over centuries
they drift to absurd levels (a price of 0.81 whose rounded take-profit equals the entry is
refused by the domain), so a long history is made of two-year segments, each with its own
seed and its own signal ids, as if from many accounts."""


def history(seed: int = HISTORY_SEED) -> Iterator[DemoTrade]:
    """The deterministic demo history, as long as wanted (the caller cuts it)."""
    segment = 0
    while True:
        items = generate(days=SEGMENT_DAYS, seed=seed + segment, end=HISTORY_END)
        for number, item in enumerate(items, start=1):
            draft = replace(item.draft, signal_id=f"demo-{segment:03d}-{number:04d}")
            yield replace(item, draft=draft)
        segment += 1


class UntilStored:
    """Yields demo signals until the ledger has stored ``target`` events.

    ``stored()`` is the last notification id the ledger committed: the cut is exact to
    within one batch, whatever the number of events the domain makes per signal.
    """

    def __init__(self, items: Iterable[DemoTrade], stored: Callable[[], int], target: int) -> None:
        self.items = items
        self.stored = stored
        self.target = target

    def __iter__(self) -> Iterator[DemoTrade]:
        for item in self.items:
            if self.stored() >= self.target:
                return
            yield item


class RecordingLedger(TradeLedger):
    """The real ledger, noting the last notification id of each transaction it commits."""

    name = "tradewatch"

    def __init__(self, env: dict[str, str] | None = None) -> None:
        super().__init__(env)
        self.boundaries: list[int] = []

    def save_all(self, aggregates: Sequence[Aggregate]) -> int | None:
        """Save as the ledger does; remember where the transaction ended."""
        last = super().save_all(aggregates)
        if last is not None:
            self.boundaries.append(last)
        return last


def run_commands(ledger: TradeLedger, item: DemoTrade) -> list[Callable[[], CommandResult]]:
    """The ledger commands a trader would issue, one per call, to record a demo signal."""
    draft = item.draft
    sid = draft.signal_id
    commands: list[Callable[[], CommandResult]] = [lambda: ledger.record_signal(draft)]
    if item.skipped:
        commands.append(lambda: ledger.skip_signal(sid, "outside trading hours", draft.at))
    elif item.entry is not None:
        entry = item.entry
        commands.append(lambda: ledger.record_entry(sid, entry))
        if item.exit_price is not None and item.exit_at is not None:
            price, fee, reason, at = item.exit_price, item.exit_fee, item.exit_reason, item.exit_at
            commands.append(lambda: ledger.record_exit(sid, price, fee, reason, at))
    return commands


# Databases ----------------------------------------------------------------------------------


class Database:
    """Fresh throwaway databases of one kind, and raw (non-tradewatch) access to them."""

    def __init__(self, kind: str, admin_url: str, workdir: Path) -> None:
        self.kind = kind
        self.admin_url = admin_url
        self.workdir = workdir / kind
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.created: list[str] = []
        self.tag = secrets.token_hex(4)

    def fresh(self, label: str) -> str:
        """The URL of a new, empty database (a PostgreSQL database or a SQLite file)."""
        if self.kind == "sqlite":
            return f"sqlite:///{self.workdir / f'{label}.db'}"
        name = f"tw_bench_{self.tag}_{label}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        self.created.append(name)
        return self.admin_url.rsplit("/", 1)[0] + f"/{name}"

    def raw_url(self, url: str) -> str:
        """Where raw baseline tables go: the same PostgreSQL database, a side SQLite file."""
        if self.kind == "sqlite":
            return f"sqlite:///{Path(sqlite_path(url)).with_suffix('.raw.db')}"
        return url

    def drop_all(self) -> None:
        """Drop every PostgreSQL database this run created."""
        for name in self.created:
            try:
                with psycopg.connect(self.admin_url, autocommit=True) as conn:
                    conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            except psycopg.Error as e:
                say(f"could not drop database {name}: {e}")
        self.created.clear()


class Raw:
    """A plain DB-API connection (autocommit off) with ``?`` placeholders on both databases."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.kind = "sqlite" if url.startswith("sqlite:") else "postgres"
        self._pg: psycopg.Connection[tuple[Any, ...]] | None = None
        self._lite: sqlite3.Connection | None = None
        if self.kind == "sqlite":
            # As eventsourcing opens its file: WAL, default (FULL) synchronous, explicit BEGIN.
            self._lite = sqlite3.connect(sqlite_path(url), isolation_level=None, timeout=30)
            self._lite.execute("PRAGMA journal_mode=WAL")
        else:
            self._pg = psycopg.connect(url, autocommit=False)

    def _sql(self, sql: str) -> str:
        return sql if self.kind == "sqlite" else sql.replace("?", "%s")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Run one statement; its rows (if any)."""
        if self._lite is not None:
            return self._lite.execute(sql, params).fetchall()
        assert self._pg is not None
        cur = self._pg.execute(self._sql(sql), params, prepare=True)
        return cur.fetchall() if cur.description else []

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for many rows (pipelined on PostgreSQL)."""
        if self._lite is not None:
            self._lite.executemany(sql, rows)
            return
        assert self._pg is not None
        with self._pg.cursor() as cur:
            cur.executemany(self._sql(sql), rows)

    def begin(self) -> None:
        """Start a transaction (PostgreSQL starts one implicitly)."""
        if self._lite is not None:
            self._lite.execute("BEGIN")

    def commit(self) -> None:
        """Commit the transaction."""
        if self._lite is not None:
            if self._lite.in_transaction:
                self._lite.execute("COMMIT")
        else:
            assert self._pg is not None
            self._pg.commit()

    def autocommit(self) -> None:
        """Every statement its own transaction (for pollers)."""
        if self._pg is not None:
            self._pg.autocommit = True

    @property
    def pg(self) -> psycopg.Connection[tuple[Any, ...]]:
        """The PostgreSQL connection (for COPY and NOTIFY)."""
        assert self._pg is not None
        return self._pg

    def close(self) -> None:
        """Close the connection."""
        if self._lite is not None:
            self._lite.close()
        if self._pg is not None:
            self._pg.close()


def events_table(url: str) -> str:
    """The table eventsourcing stores tradewatch's events in, for this database."""
    ledger = TradeLedger(env=eventsourcing_env(url))
    try:
        return str(getattr(ledger.recorder, "events_table_name", "stored_events"))
    finally:
        ledger.close()


def stored_count(url: str) -> int:
    """How many events are stored (the last notification id: the databases here are fresh)."""
    raw = Raw(url)
    try:
        rows = raw.execute(f"SELECT MAX({id_column(url)}) FROM {events_table(url)}")
        return int(rows[0][0] or 0)
    finally:
        raw.close()


def id_column(url: str) -> str:
    """The notification id column: SQLite's rowid, PostgreSQL's notification_id."""
    return "rowid" if url.startswith("sqlite:") else "notification_id"


def create_raw_events_table(raw: Raw, table: str) -> None:
    """A plain table shaped like the stored events (same columns, keys and indexes)."""
    if raw.kind == "sqlite":
        raw.execute(
            f"CREATE TABLE IF NOT EXISTS {table} (originator_id TEXT, originator_version INTEGER, "
            "topic TEXT, state BLOB, PRIMARY KEY (originator_id, originator_version))"
        )
    else:
        raw.execute(
            f"CREATE TABLE IF NOT EXISTS {table} (originator_id uuid NOT NULL, "
            "originator_version bigint NOT NULL, topic text, state bytea, "
            "notification_id bigserial NOT NULL, PRIMARY KEY (originator_id, originator_version))"
        )
        raw.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {table}_nid ON {table} (notification_id)")
    raw.commit()


def stored_rows(url: str, after: int, until: int, page: int = 10_000) -> Iterator[list[Any]]:
    """Pages of stored-event rows (id, originator_id, version, topic, state), in log order."""
    table, id_col = events_table(url), id_column(url)
    src = Raw(url)
    try:
        position = after
        while position < until:
            rows = src.execute(
                f"SELECT {id_col}, originator_id, originator_version, topic, state FROM {table} "
                f"WHERE {id_col} > ? AND {id_col} <= ? ORDER BY {id_col} LIMIT ?",
                (position, until, page),
            )
            src.commit()
            if not rows:
                return
            position = rows[-1][0]
            yield rows
    finally:
        src.close()


def raw_append(url: str, raw_url: str, boundaries: Sequence[int], after: int) -> tuple[int, float]:
    """Insert the stored rows ``after``..last boundary raw, committing at each boundary.

    Returns (rows, seconds spent inserting and committing; reading them back is not timed).
    """
    raw = Raw(raw_url)
    create_raw_events_table(raw, "bench_raw_events")
    insert = (
        "INSERT INTO bench_raw_events (originator_id, originator_version, topic, state) "
        "VALUES (?, ?, ?, ?)"
    )
    seconds = 0.0
    count = 0
    pending: list[Sequence[Any]] = []
    cuts = iter(boundaries)
    cut = next(cuts, None)
    try:
        for rows in stored_rows(url, after, boundaries[-1] if boundaries else after):
            for row in rows:
                pending.append(row[1:])
                if row[0] != cut:
                    continue
                started = time.perf_counter()
                raw.begin()
                if len(pending) == 1:
                    raw.execute(insert, pending[0])
                else:
                    raw.executemany(insert, pending)
                raw.commit()
                seconds += time.perf_counter() - started
                count += len(pending)
                pending = []
                cut = next(cuts, None)
    finally:
        raw.close()
    return count, seconds


# Phases -------------------------------------------------------------------------------------


@dataclass
class Options:
    """What the run was asked to do."""

    events: int
    command_events: int
    batch: int
    import_rows: int
    latency_commands: int
    import_stall: float
    import_fallback_rows: int
    phases: set[str]
    workdir: Path
    profile: Path | None


@dataclass
class DbReport:
    """Everything measured on one database."""

    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


def child_env(home: Path, url: str | None = None) -> dict[str, str]:
    """The environment for a child: no TRADEWATCH_* of the caller, no tradewatch.toml."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWATCH_")}
    env["TRADEWATCH_HOME"] = str(home)
    env["TRADEWATCH_CONFIG"] = str(home / "absent-tradewatch.toml")
    env["COLUMNS"] = "200"
    if url is not None:
        env["TRADEWATCH_DATABASE_URL"] = url
    return env


def run_child(mode: str, url: str, home: Path, *extra: str) -> dict[str, Any]:
    """Run ``python -m scripts.bench --child MODE`` and return the JSON it reports."""
    command = [sys.executable, "-m", "scripts.bench", "--child", mode, "--url", url]
    command += ["--home", str(home), *extra]
    done = subprocess.run(
        command, cwd=ROOT, env=child_env(home), stdout=subprocess.PIPE, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"child {mode} failed with exit code {done.returncode}")
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            result: dict[str, Any] = json.loads(line[len(RESULT_PREFIX) :])
            return result
    raise RuntimeError(f"child {mode} reported nothing")


def phase_append(db: Database, url: str, opts: Options, report: DbReport) -> None:
    """Record the history: a command-at-a-time sample, then the rest in batches."""
    label = db.kind
    sample = min(opts.command_events, opts.events // 5)
    ledger = RecordingLedger(env=eventsourcing_env(url))
    items = history()
    say(f"{label}: append, command at a time, first {sample:,} events (one command per call)")
    stored = 0
    command_times: list[float] = []
    step = max(sample // 5, 1)
    next_report = step
    for item in items:
        for command in run_commands(ledger, item):
            t0 = time.perf_counter()
            outcome = command()
            command_times.append(time.perf_counter() - t0)
            stored = outcome.last_notification_id or stored
        if stored >= next_report:
            say(f"{label}: append (commands): {stored:,}/{sample:,} events stored")
            next_report += step
        if stored >= sample:
            break
    command_seconds = sum(command_times)  # the commands only, not generating the history
    stored_after_commands = ledger.recorder.max_notification_id() or 0
    command_cuts = list(ledger.boundaries)
    ledger.boundaries.clear()

    rest = opts.events - stored_after_commands
    say(f"{label}: append, batched (demo.record, batch={opts.batch} aggregates), {rest:,} events")

    def last_saved() -> int:
        return ledger.boundaries[-1] if ledger.boundaries else stored_after_commands

    # The history is generated ahead, a chunk at a time, so only recording is timed.
    batch_seconds = 0.0
    step = max(rest // 10, 1)
    next_report = stored_after_commands + step
    while last_saved() < opts.events:
        chunk = list(islice(items, 5_000))
        until = UntilStored(chunk, last_saved, opts.events)
        started = time.perf_counter()
        record(ledger, iter(until), batch=opts.batch)
        batch_seconds += time.perf_counter() - started
        if last_saved() >= next_report:
            say(f"{label}: append (batched): {last_saved():,}/{opts.events:,} events stored")
            next_report = last_saved() + step
    total = ledger.recorder.max_notification_id() or 0
    batched_events = total - stored_after_commands
    batch_cuts = list(ledger.boundaries)
    ledger.close()

    say(f"{label}: raw baseline, {stored_after_commands:,} rows, one txn per command")
    raw_url = db.raw_url(url)
    raw_cmd_rows, raw_cmd_seconds = raw_append(url, raw_url, command_cuts, 0)
    say(f"{label}: raw baseline, {batched_events:,} rows in the same {len(batch_cuts):,} txns")
    raw_batch_rows, raw_batch_seconds = raw_append(url, raw_url, batch_cuts, stored_after_commands)

    command_rate = stored_after_commands / command_seconds
    report.figures.append(
        Figure(
            label,
            "append, command at a time",
            command_rate,
            "ev/s",
            raw_cmd_rows / raw_cmd_seconds,
            "the same rows INSERTed raw, in the same transactions (one per command)",
            note=f"{stored_after_commands:,} events, {len(command_times):,} commands; "
            f"command p50 {percentile(command_times, 50) * 1000:.1f} ms, "
            f"p99 {percentile(command_times, 99) * 1000:.1f} ms",
        )
    )
    report.figures.append(
        Figure(
            label,
            "append, batched (demo.record)",
            batched_events / batch_seconds,
            "ev/s",
            raw_batch_rows / raw_batch_seconds,
            "the same rows INSERTed raw (executemany) in the same transactions",
            note=f"{batched_events:,} events in {len(batch_cuts):,} transactions "
            f"of {opts.batch} aggregates",
        )
    )
    report.details["append"] = {
        "command_events": stored_after_commands,
        "commands": len(command_times),
        "command_seconds": command_seconds,
        "batched_events": batched_events,
        "batched_seconds": batch_seconds,
        "batched_transactions": len(batch_cuts),
        "raw_command_rows": raw_cmd_rows,
        "raw_command_seconds": raw_cmd_seconds,
        "raw_batched_rows": raw_batch_rows,
        "raw_batched_seconds": raw_batch_seconds,
        "events_total": total,
    }


def write_import_csv(path: Path, rows: int) -> int:
    """A CSV of ``rows`` closed or open trades in the import format; returns the rows written."""
    written = 0
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(COLUMNS)
        for item in history(seed=IMPORT_SEED):
            if item.skipped or item.entry is None:
                continue
            written += 1
            d = item.draft
            closed = item.exit_price is not None and item.exit_at is not None
            out.writerow(
                [
                    f"imp-{written:07d}",
                    d.symbol,
                    d.direction.value,
                    item.entry.at.isoformat(),
                    repr(item.entry.price),
                    item.exit_at.isoformat() if closed and item.exit_at else "",
                    repr(item.exit_price) if closed else "",
                    repr(item.entry.qty),
                    repr(round(item.entry.fee + item.exit_fee, 4)),
                    item.exit_reason if closed else "",
                    "" if d.confidence is None else repr(d.confidence),
                    ";".join(f"{k}={v!r}" for k, v in d.theories.items()),
                    d.source,
                ]
            )
            if written >= rows:
                break
    return written


IMPORT_TABLE_PG = (
    "CREATE TABLE bench_import_copy (signal_id text, symbol text, direction text, "
    "entry_time timestamptz, entry_price double precision, exit_time timestamptz, "
    "exit_price double precision, qty double precision, fee double precision, "
    "exit_reason text, confidence double precision, theories text, source text)"
)
IMPORT_TABLE_SQLITE = (
    "CREATE TABLE bench_import_copy (signal_id TEXT, symbol TEXT, direction TEXT, "
    "entry_time TEXT, entry_price REAL, exit_time TEXT, exit_price REAL, qty REAL, fee REAL, "
    "exit_reason TEXT, confidence REAL, theories TEXT, source TEXT)"
)


@dataclass
class ImportRun:
    """One run of ``tradewatch import``: wall time, its JSON summary, or that it hung."""

    seconds: float
    summary: dict[str, Any] | None
    hung: bool = False


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_import(url: str, csv_path: Path, home: Path, stall: float) -> ImportRun:
    """Run the real ``tradewatch import FILE --format csv --json`` on ``url``.

    The import is CPU-bound; when its process has used no CPU for ``stall`` seconds it is
    stuck (see docs/performance.md: a pipelined INSERT of a large save never returns), so
    it is killed and reported as hung.
    """
    script = Path(sys.executable).with_name("tradewatch")
    command = [str(script), "import", str(csv_path), "--format", "csv", "--json"]
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        env=child_env(home, url),
        cwd=home,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    last_cpu, last_check, last_progress = 0.0, started, started
    while True:
        try:
            out, err = process.communicate(timeout=2)
            break
        except subprocess.TimeoutExpired:
            now, cpu = time.perf_counter(), cpu_seconds(process.pid)
            busy = (cpu - last_cpu) / max(now - last_check, 1e-9)
            last_cpu, last_check = cpu, now
            if busy > 0.1:  # a waiting psycopg polls, using ~1 % of a core
                last_progress = now
            elif now - last_progress > stall:
                process.kill()
                process.communicate()
                return ImportRun(now - started, None, hung=True)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"tradewatch import failed: {err.strip()[-2000:]}")
    summary: dict[str, Any] = json.loads(out)
    return ImportRun(seconds, summary)


def copy_baseline(url: str, csv_path: Path) -> float:
    """Seconds to bulk-load the same CSV raw: COPY (PostgreSQL), executemany (SQLite)."""
    raw = Raw(url)
    try:
        if raw.kind == "postgres":
            raw.execute(IMPORT_TABLE_PG)
            raw.commit()
            started = time.perf_counter()
            data = csv_path.read_bytes()
            with (
                raw.pg.cursor() as cur,
                cur.copy("COPY bench_import_copy FROM STDIN WITH (FORMAT csv, HEADER true)") as cp,
            ):
                for start in range(0, len(data), 1 << 20):
                    cp.write(data[start : start + (1 << 20)])
            raw.commit()
            return time.perf_counter() - started
        raw.execute(IMPORT_TABLE_SQLITE)
        started = time.perf_counter()
        with csv_path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))[1:]
        raw.begin()
        raw.executemany(f"INSERT INTO bench_import_copy VALUES ({', '.join('?' * 13)})", rows)
        raw.commit()
        return time.perf_counter() - started
    finally:
        raw.close()


def phase_import(db: Database, opts: Options, csv_path: Path, rows: int, report: DbReport) -> None:
    """``tradewatch import`` of the CSV into a fresh database, beside a raw bulk load.

    If the import hangs, the hang is reported and the rate is measured on a file of
    ``opts.import_fallback_rows`` rows instead (labelled so).
    """
    label = db.kind
    home = db.workdir / "import-home"
    home.mkdir(exist_ok=True)
    empty = db.workdir / "empty.csv"
    empty.write_text(",".join(COLUMNS) + "\n", encoding="utf-8")
    say(f"{label}: import start-up cost (an empty CSV into a fresh database)")
    fixed = run_import(db.fresh("imp0"), empty, home, opts.import_stall).seconds
    url = db.fresh("imp")
    say(f"{label}: tradewatch import of {rows:,} CSV rows into a fresh database")
    run = run_import(url, csv_path, home, opts.import_stall)
    hung_note = ""
    if run.hung:
        hung_note = (
            f"{rows:,} rows HUNG: no CPU used for {opts.import_stall:.0f} s after "
            f"{run.seconds:.0f} s, killed; "
        )
        say(f"{label}: the import of {rows:,} rows hung; measuring a smaller file instead")
        rows = write_import_csv(db.workdir / "import-small.csv", opts.import_fallback_rows)
        csv_path = db.workdir / "import-small.csv"
        url = db.fresh("imp2")
        run = run_import(url, csv_path, home, opts.import_stall)
        if run.hung or run.summary is None:
            raise RuntimeError(f"tradewatch import of {rows:,} rows hung too")
        hung_note += f"measured on {rows:,} rows instead; "
    assert run.summary is not None
    seconds, summary = run.seconds, run.summary
    events = stored_count(url)
    say(f"{label}: raw baseline, bulk load of the same CSV")
    raw_seconds = copy_baseline(db.raw_url(url), csv_path)
    net = max(seconds - fixed, 1e-9)
    pg = db.kind == "postgres"
    ratio = (rows / seconds) / (rows / raw_seconds)
    ceiling = ""
    append = report.details.get("append")
    if append and append["raw_batched_seconds"] > 0 and events:
        # What an import could reach if storing its events cost no more than raw INSERTs.
        best = append["raw_batched_rows"] / append["raw_batched_seconds"] / (events / rows)
        ceiling = (
            f"; ceiling if its {events / rows:.1f} events/row were INSERTed raw (append "
            f"baseline): {best:,.0f} rows/s = ratio {best * raw_seconds / rows:.3f}"
        )
    report.figures.append(
        Figure(
            label,
            f"import (tradewatch import, {rows:,} rows)",
            rows / seconds,
            "rows/s",
            rows / raw_seconds,
            "COPY of the same CSV into a plain table with the same columns"
            if pg
            else "csv.reader + executemany INSERT, one transaction (SQLite has no COPY)",
            target=f"≥ {IMPORT_RATIO_TARGET}" + ("" if pg else " (PG only)"),
            met=(ratio >= IMPORT_RATIO_TARGET and not hung_note) if pg else None,
            note=f"{hung_note}{rows:,} rows = {events:,} events in {seconds:.2f} s wall, "
            f"including {fixed:.2f} s fixed start-up (without it: {rows / net:,.0f} rows/s)"
            f"{ceiling}",
        )
    )
    report.figures.append(
        Figure(
            label,
            "import, in events",
            events / seconds,
            "ev/s",
            events / raw_seconds,
            "the same raw bulk load, counted in the events the rows make",
        )
    )
    report.details["import"] = {
        "rows": rows,
        "events": events,
        "seconds": seconds,
        "startup_seconds": fixed,
        "raw_seconds": raw_seconds,
        "hung": hung_note,
        "summary": summary,
    }


def phase_replay(db: Database, url: str, report: DbReport, profile: Path | None) -> None:
    """Replay every read model from event 0 in a child; then the raw read in another child."""
    label = db.kind
    home = db.workdir / "home"
    home.mkdir(exist_ok=True)
    say(f"{label}: replay of all read models from event 0 (child process)")
    replay = run_child("replay", url, home)
    say(f"{label}: raw baseline, SELECT pages of the same size + orjson.loads (child process)")
    raw = run_child("raw-read", url, home)
    rate = replay["events"] / replay["seconds"]
    raw_rate = raw["events"] / raw["seconds"]
    pg = db.kind == "postgres"
    report.figures.append(
        Figure(
            label,
            "replay, all read models",
            rate,
            "ev/s",
            raw_rate,
            f"SELECT in pages of {raw['page_size']:,} + orjson.loads of each state, no projection",
            target=f"≥ {REPLAY_RATIO_TARGET}" + ("" if pg else " (PG only)"),
            met=(rate / raw_rate >= REPLAY_RATIO_TARGET) if pg else None,
            note=f"{replay['events']:,} events in {replay['seconds']:.1f} s; of which "
            f"{replay['read_seconds']:.1f} s reading+decoding in RecorderLog.read, "
            f"{replay['seconds'] - replay['read_seconds']:.1f} s projecting and writing",
        )
    )
    rss = replay["peak_rss_mb"]
    report.figures.append(
        Figure(
            label,
            "replay, peak RSS of the process",
            rss,
            "MB",
            raw["peak_rss_mb"],
            "peak RSS of the raw-read child (same imports, same pages)",
            target=f"< {REPLAY_RSS_TARGET_MB:.0f} MB",
            met=rss < REPLAY_RSS_TARGET_MB,
            note=f"VmHWM from /proc/self/status of the child; "
            f"ru_maxrss {replay['ru_maxrss_mb']:.0f} MB; "
            f"RSS before replay {replay['rss_before_mb']:.0f} MB",
        )
    )
    report.details["replay"] = replay
    report.details["raw_read"] = raw
    if profile is not None:
        say(f"{label}: profiled replay (not timed) -> {profile}")
        run_child("replay", url, home, "--profile-file", str(profile / f"replay-{label}.pstats"))


class Follower:
    """A child process running a follower (the engine's, or the raw one) until stopped."""

    def __init__(self, mode: str, url: str, home: Path) -> None:
        command = [sys.executable, "-m", "scripts.bench", "--child", mode, "--url", url]
        command += ["--home", str(home)]
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=child_env(home), stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("ready"):
            self.stop()
            raise RuntimeError(f"follower {mode} did not start")

    def stop(self) -> None:
        """SIGTERM, then wait (it stops within its poll interval)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def wait_visible(read: Callable[[], int], target: int, timeout: float = 10.0) -> float:
    """Poll ``read()`` until it reaches ``target``; when that was seen (perf_counter)."""
    deadline = time.perf_counter() + timeout
    while True:
        if read() >= target:
            return time.perf_counter()
        if time.perf_counter() > deadline:
            raise TimeoutError(f"position {target} not visible after {timeout} s")
        time.sleep(0.0002)


def live_items(n_commands: int) -> Iterator[DemoTrade]:
    """Closed trades (3 commands each) with ids of their own, enough for ``n_commands``."""
    count = 0
    for item in generate(days=n_commands + 365, seed=LIVE_SEED, end=HISTORY_END):
        if item.skipped or item.exit_price is None:
            continue
        count += 1
        yield replace(item, draft=replace(item.draft, signal_id=f"live-{count:05d}"))


def phase_live(db: Database, url: str, n_commands: int, report: DbReport) -> None:
    """Command return → read model shows it, with a follower process; then the raw floor."""
    label = db.kind
    home = db.workdir / "home"
    warmup = 6
    say(f"{label}: live latency, {n_commands} commands (+{warmup} warm-up), follower process")
    follower = Follower("follow", url, home)
    ledger = TradeLedger(env=eventsourcing_env(url))
    probe = Raw(url)
    probe.autocommit()

    def position() -> int:
        found = probe.execute(f"SELECT MIN(position) FROM {POSITIONS}")
        return int(found[0][0] or 0)

    latencies: list[float] = []
    command_times: list[float] = []
    try:
        done = 0
        for item in live_items(n_commands + warmup):
            for command in run_commands(ledger, item):
                t0 = time.perf_counter()
                outcome = command()
                t1 = time.perf_counter()
                assert outcome.last_notification_id is not None
                seen = wait_visible(position, outcome.last_notification_id)
                if done >= warmup:
                    latencies.append(seen - t1)
                    command_times.append(t1 - t0)
                done += 1
            if done >= n_commands + warmup:
                break
    finally:
        follower.stop()
        ledger.close()
        probe.close()

    say(f"{label}: raw baseline, raw follower (same waiter) copying the position only")
    raw_latencies = raw_live(db.raw_url(url), home, n_commands, warmup)
    p50, p99 = percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000
    raw_p50, raw_p99 = percentile(raw_latencies, 50) * 1000, percentile(raw_latencies, 99) * 1000
    waiter = "LISTEN/NOTIFY" if db.kind == "postgres" else "polling every 10 ms"
    report.figures.append(
        Figure(
            label,
            "live latency p50",
            p50,
            "ms",
            raw_p50,
            f"raw follower woken the same way ({waiter}): INSERT+commit → position visible",
            note=f"{len(latencies)} commands; command itself p50 "
            f"{percentile(command_times, 50) * 1000:.1f} ms",
        )
    )
    report.figures.append(
        Figure(
            label,
            "live latency p99",
            p99,
            "ms",
            raw_p99,
            "same raw follower, p99",
            target=f"< {LIVE_P99_TARGET_MS:.0f} ms",
            met=p99 < LIVE_P99_TARGET_MS,
            note=f"max {max(latencies) * 1000:.1f} ms; "
            f"command itself p99 {percentile(command_times, 99) * 1000:.1f} ms",
        )
    )
    report.details["live"] = {
        "latencies_ms": [x * 1000 for x in latencies],
        "command_ms": [x * 1000 for x in command_times],
        "raw_latencies_ms": [x * 1000 for x in raw_latencies],
    }


def raw_live(raw_url: str, home: Path, n_commands: int, warmup: int) -> list[float]:
    """Latency of a raw follower: INSERT (+NOTIFY) and commit, until it copies the position."""
    raw = Raw(raw_url)
    raw.execute("DROP TABLE IF EXISTS bench_live_events")
    raw.execute("DROP TABLE IF EXISTS bench_live_pos")
    if raw.kind == "sqlite":
        raw.execute("CREATE TABLE bench_live_events (id INTEGER PRIMARY KEY, state BLOB)")
    else:
        raw.execute("CREATE TABLE bench_live_events (id bigserial PRIMARY KEY, state bytea)")
    raw.execute("CREATE TABLE bench_live_pos (position BIGINT NOT NULL)")
    raw.execute("INSERT INTO bench_live_pos VALUES (0)")
    raw.commit()
    follower = Follower("raw-follow", raw_url, home)
    probe = Raw(raw_url)
    probe.autocommit()
    state = orjson.dumps({"price": 64000.5, "fee": 0.35, "reason": "take_profit", "at": "x"})
    latencies: list[float] = []
    try:
        for n in range(n_commands + warmup):
            raw.begin()
            if raw.kind == "sqlite":
                raw.execute("INSERT INTO bench_live_events (state) VALUES (?)", (state,))
                new_id = int(raw.execute("SELECT last_insert_rowid()")[0][0])
            else:
                new_id = int(
                    raw.execute(
                        "INSERT INTO bench_live_events (state) VALUES (?) RETURNING id", (state,)
                    )[0][0]
                )
                raw.execute(f"NOTIFY {RAW_LIVE_CHANNEL}")
            raw.commit()
            t1 = time.perf_counter()
            seen = wait_visible(
                lambda: int(probe.execute("SELECT position FROM bench_live_pos")[0][0]), new_id
            )
            if n >= warmup:
                latencies.append(seen - t1)
    finally:
        follower.stop()
        probe.close()
        raw.close()
    return latencies


# Child processes ----------------------------------------------------------------------------


def peak_rss_mb() -> tuple[float, float, float]:
    """(VmHWM, VmRSS, ru_maxrss) of this process, in MB."""
    found = {"VmHWM": 0.0, "VmRSS": 0.0}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in found:
                found[key] = float(value.split()[0]) / 1024
    except OSError:
        pass
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return found["VmHWM"] or maxrss, found["VmRSS"], maxrss


class TimedLog:
    """An :class:`EventLog` that adds up the time spent reading and decoding pages."""

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self.seconds = 0.0

    def read(self, after: int, limit: int, until: int | None = None) -> Sequence[Fact]:
        """Read a page, timing it."""
        started = time.perf_counter()
        facts = self.log.read(after, limit, until)
        self.seconds += time.perf_counter() - started
        return facts

    def last_id(self) -> int:
        """The last stored id."""
        return self.log.last_id()


def open_tradewatch(url: str, home: Path) -> Tradewatch:
    """tradewatch wired as the CLI wires it, on ``url``."""
    return bootstrap(Settings(home=home, database_url=url))


def child_replay(url: str, home: Path, profile_file: str | None) -> dict[str, Any]:
    """Replay every projection from event 0; rate, time reading, peak memory."""
    tw = open_tradewatch(url, home)
    tw.engine.setup()
    timed = TimedLog(tw.engine.log)
    tw.engine.log = timed
    _, rss_before, _ = peak_rss_mb()
    step = max(timed.last_id() // 10, 1)
    marks = {"next": step}

    def progress(done: int, total: int) -> None:
        if done >= marks["next"]:
            say(f"replay: {done:,}/{total:,} events")
            marks["next"] = done + step

    profiler = cProfile.Profile() if profile_file else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    events = tw.engine.replay(progress=progress)
    if profiler:
        profiler.disable()
    seconds = time.perf_counter() - started
    tw.close()
    hwm, _, maxrss = peak_rss_mb()
    if profiler and profile_file:
        profiler.dump_stats(profile_file)
        text = io.StringIO()
        pstats.Stats(profile_file, stream=text).sort_stats("tottime").print_stats(25)
        print(text.getvalue(), file=sys.stderr)
    return {
        "events": events,
        "seconds": seconds,
        "read_seconds": timed.seconds,
        "page_size": tw.engine.replay_page_size,
        "peak_rss_mb": hwm,
        "ru_maxrss_mb": maxrss,
        "rss_before_mb": rss_before,
    }


def child_raw_read(url: str, home: Path) -> dict[str, Any]:
    """Read every stored event in pages of the replay's size and decode each state."""
    tw = open_tradewatch(url, home)  # same imports and wiring as the replay child
    page = tw.engine.replay_page_size
    until = tw.engine.log.last_id()
    tw.close()
    table, id_col = events_table(url), id_column(url)
    raw = Raw(url)
    raw.autocommit()
    sql = (
        f"SELECT {id_col}, originator_id, originator_version, topic, state FROM {table} "
        f"WHERE {id_col} > ? ORDER BY {id_col} LIMIT ?"
    )
    events = 0
    position = 0
    started = time.perf_counter()
    while position < until:
        rows = raw.execute(sql, (position, page))
        if not rows:
            break
        decoded = [(r[0], r[1], r[2], r[3], orjson.loads(r[4])) for r in rows]
        events += len(decoded)
        position = rows[-1][0]
    seconds = time.perf_counter() - started
    raw.close()
    hwm, _, maxrss = peak_rss_mb()
    return {
        "events": events,
        "seconds": seconds,
        "page_size": page,
        "peak_rss_mb": hwm,
        "ru_maxrss_mb": maxrss,
    }


def child_follow(url: str, home: Path) -> None:
    """Keep the read models live with ``engine.follow(waiter_for(url), stop)`` until SIGTERM."""
    tw = open_tradewatch(url, home)
    tw.engine.catch_up()
    stop = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    print("ready", flush=True)
    tw.engine.follow(waiter_for(url), stop)
    tw.close()


def child_raw_follow(url: str) -> None:
    """The raw floor of following: wake as the engine does, copy the newest id, commit."""
    raw = Raw(url)
    waiter = PollingWaiter() if raw.kind == "sqlite" else None
    listen: psycopg.Connection[tuple[Any, ...]] | None = None
    if waiter is None:
        listen = psycopg.connect(url, autocommit=True)
        listen.execute(f"LISTEN {RAW_LIVE_CHANNEL}")
    stop = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    print("ready", flush=True)
    position = 0
    while not stop.is_set():
        raw.begin()
        rows = raw.execute("SELECT id, state FROM bench_live_events WHERE id > ?", (position,))
        if rows:
            _ = [orjson.loads(r[1]) for r in rows]
            position = int(rows[-1][0])
            raw.execute("UPDATE bench_live_pos SET position = ?", (position,))
        raw.commit()
        if waiter is not None:
            waiter.wait(1.0)
        elif listen is not None:
            for _ in listen.notifies(timeout=1.0, stop_after=1):
                break
    raw.close()
    if listen is not None:
        listen.close()


def run_child_mode(args: argparse.Namespace) -> int:
    """Entry point of ``--child``: run one measured task, print its JSON result."""
    url, home = str(args.url), Path(args.home)
    if args.child == "replay":
        result = child_replay(url, home, args.profile_file)
    elif args.child == "raw-read":
        result = child_raw_read(url, home)
    elif args.child == "follow":
        child_follow(url, home)
        return 0
    elif args.child == "raw-follow":
        child_raw_follow(url)
        return 0
    else:
        raise SystemExit(f"unknown child mode {args.child!r}")
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


# Main ---------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
    }
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory_gb"] = round(int(line.split()[1]) / 1024 / 1024, 1)
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    return info


def bench_database(
    kind: str, admin_url: str, opts: Options, csv_path: Path, csv_rows: int
) -> DbReport:
    """All phases on one kind of database; its databases are dropped afterwards."""
    report = DbReport()
    db = Database(kind, admin_url, opts.workdir)
    try:
        if kind == "postgres":
            with psycopg.connect(admin_url) as conn:
                row = conn.execute("SHOW server_version").fetchone()
                report.details["server_version"] = row[0] if row else "?"
        url = db.fresh("main")
        say(f"{kind}: fresh database {url}")
        if {"append", "replay", "live"} & opts.phases:
            phase_append(db, url, opts, report)
        if "replay" in opts.phases:
            phase_replay(db, url, report, opts.profile)
        if "live" in opts.phases:
            phase_live(db, url, opts.latency_commands, report)
        if "import" in opts.phases:
            phase_import(db, opts, csv_path, csv_rows, report)
    finally:
        db.drop_all()
    return report


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench",
        description="Measure tradewatch on a fresh PostgreSQL database and a fresh SQLite file: "
        "append (command at a time and batched), `tradewatch import`, replay of all read "
        "models (rate and peak RSS) and live latency; each beside a raw baseline measured "
        "in the same run, with the ratio and the target.",
        epilog="Progress goes to stderr, the table to stdout. PostgreSQL databases are named "
        "tw_bench_<hex>_* and dropped at the end; SQLite files live in a temporary directory.",
    )
    parser.add_argument(
        "--events",
        type=int,
        default=DEFAULT_EVENTS,
        metavar="N",
        help=f"events of demo history to record (default {DEFAULT_EVENTS:,}; a signal is ~3)",
    )
    parser.add_argument(
        "--only", choices=("sqlite", "postgres"), help="benchmark one database only"
    )
    parser.add_argument("--out", type=Path, metavar="FILE", help="also write the results as JSON")
    parser.add_argument(
        "--command-events",
        type=int,
        default=20_000,
        metavar="N",
        help="events recorded one command per call before batching (default 20,000; "
        "at most a fifth of --events)",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=200,
        metavar="N",
        help="aggregates per transaction in the batched append (default 200, as demo.record)",
    )
    parser.add_argument(
        "--import-rows",
        type=int,
        default=50_000,
        metavar="N",
        help="CSV rows for the `tradewatch import` measurement (default 50,000)",
    )
    parser.add_argument(
        "--import-stall",
        type=float,
        default=60.0,
        metavar="S",
        help="declare `tradewatch import` hung after S seconds without CPU use (default 60)",
    )
    parser.add_argument(
        "--import-fallback-rows",
        type=int,
        default=1_000,
        metavar="N",
        help="rows to import instead when the full import hangs (default 1,000)",
    )
    parser.add_argument(
        "--latency-commands",
        type=int,
        default=200,
        metavar="N",
        help="commands timed for the live latency (default 200)",
    )
    parser.add_argument(
        "--phases",
        default=",".join(PHASES),
        metavar="LIST",
        help=f"comma-separated phases to run (default all: {','.join(PHASES)}; "
        "replay and live record the history first)",
    )
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("TRADEWATCH_BENCH_PG", DEFAULT_PG_ADMIN),
        metavar="URL",
        help="PostgreSQL admin URL used to create and drop the throwaway databases "
        f"(default $TRADEWATCH_BENCH_PG or {DEFAULT_PG_ADMIN})",
    )
    parser.add_argument(
        "--workdir", type=Path, metavar="DIR", help="where SQLite files go (default: a temp dir)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the SQLite files (PG databases are dropped)"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="also run an untimed replay under cProfile and save the .pstats files in DIR",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    parser.add_argument("--profile-file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = set(args.phases.split(",")) - set(PHASES)
    if unknown:
        parser.error(f"unknown phase(s) {', '.join(sorted(unknown))}; known: {', '.join(PHASES)}")
    if args.child is None:
        for name in ("events", "command_events", "batch", "import_rows", "latency_commands"):
            if getattr(args, name) < 1:
                parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print the table; 0 when every measurement ran."""
    args = parse_args(argv)
    if args.child:
        _WHO[0] = f"child:{args.child}"
        return run_child_mode(args)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="tw_bench_"))
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ["TRADEWATCH_CONFIG"] = str(workdir / "absent-tradewatch.toml")
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    opts = Options(
        events=args.events,
        command_events=args.command_events,
        batch=args.batch,
        import_rows=args.import_rows,
        latency_commands=args.latency_commands,
        import_stall=args.import_stall,
        import_fallback_rows=args.import_fallback_rows,
        phases=set(args.phases.split(",")),
        workdir=workdir,
        profile=args.profile,
    )
    kinds = [args.only] if args.only else ["postgres", "sqlite"]
    started_at = datetime.now(UTC)
    load_start = os.getloadavg()[0]
    say(f"tradewatch bench: {args.events:,} events on {', '.join(kinds)}; workdir {workdir}")
    csv_path = workdir / "import.csv"
    csv_rows = 0
    if "import" in opts.phases:
        csv_rows = write_import_csv(csv_path, args.import_rows)
        say(f"import CSV: {csv_rows:,} rows in {csv_path}")
    reports: dict[str, DbReport] = {}
    try:
        for kind in kinds:
            started = time.perf_counter()
            say(f"{kind}: start (load average {os.getloadavg()[0]:.2f})")
            reports[kind] = bench_database(kind, args.pg_url, opts, csv_path, csv_rows)
            say(f"{kind}: done in {time.perf_counter() - started:.0f} s")
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    figures = [f for r in reports.values() for f in r.figures]
    load_end = os.getloadavg()[0]
    print(
        f"tradewatch bench, {started_at:%Y-%m-%d %H:%M} UTC, {args.events:,} events requested, "
        f"{os.cpu_count()} CPUs, total {time.perf_counter() - _STARTED:.0f} s, "
        f"load average {load_start:.2f} at start, {load_end:.2f} at end"
    )
    print(render(figures))
    if args.out:
        data = {
            "date": started_at.isoformat(),
            "events_requested": args.events,
            "machine": machine(),
            "load_average": {"start": load_start, "end": load_end},
            "options": {k: str(v) for k, v in vars(args).items() if not k.startswith("child")},
            "figures": [f.as_json() for f in figures],
            "details": {k: r.details for k, r in reports.items()},
        }
        args.out.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
        say(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
