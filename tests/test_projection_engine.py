"""The projection engine on real databases: exactly once, crash-safe, blue/green, live.

Every test runs on SQLite and on a fresh PostgreSQL database (see ``conftest.py``). The
read models the engine builds are compared with a replay from event 0 into a separate
in-memory SQLite store, so the reference shares no state with the store under test.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from application.demo import DemoTrade, generate, record
from domain.pnl import classify
from domain.signal import SignalDraft
from domain.trade import Fill
from domain.values import Direction
from infrastructure.bootstrap import Tradewatch, bootstrap, open_read_store
from infrastructure.live import EVENTS_CHANNEL, ListenWaiter, PollingWaiter, waiter_for
from infrastructure.readstore import SQLiteReadStore
from infrastructure.settings import Settings
from projections.engine import (
    POSITIONS,
    OutdatedSettingsError,
    Projection,
    ProjectionEngine,
    Table,
)
from projections.facts import Fact, RecorderLog
from projections.ledger import SIGNALS, TRADES, LedgerProjection
from projections.store import Cursor, ReadStore
from tests.conftest import POSTGRES_ONLY

END = datetime(2024, 6, 1, tzinfo=UTC)
"""Demo histories end here, so that a seed always gives the same events."""
WAIT = 30.0
"""How long a test waits for a condition before it fails (generous: the machine is shared)."""
NEVER = 3600.0
"""A fallback poll interval no test waits out: only a waiter can wake the follower."""

Rows = list[tuple[Any, ...]]


# Helpers ---------------------------------------------------------------------------------


def is_sqlite(url: str) -> bool:
    return urlsplit(url).scheme == "sqlite"


def dump(store: ReadStore, table: Table) -> Rows:
    """Every row of a read-model table, every column, sorted by primary key."""
    columns = [c.split()[0] for c in table.columns]
    key = columns.index(table.primary_key)
    with store.reading() as cur:
        cur.execute(f"SELECT {', '.join(columns)} FROM {table.name}")
        rows = [tuple(row) for row in cur.fetchall()]
    return sorted(rows, key=lambda row: row[key])


def dumps(store: ReadStore, projections: Sequence[Projection] = ()) -> dict[str, Rows]:
    """Full dumps of ``signals`` and ``trades``, and of the tables of ``projections``."""
    tables = {table.name: table for table in (SIGNALS, TRADES)}
    tables |= {table.name: table for p in projections for table in p.tables}
    return {name: dump(store, table) for name, table in sorted(tables.items())}


def count(store: ReadStore, table: str) -> int:
    with store.reading() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {table}")
        return int(cur.fetchone()[0])


def all_facts(tw: Tradewatch) -> Sequence[Fact]:
    return RecorderLog(tw.ledger.recorder).read(0, 1_000_000)


def projections_of(tw: Tradewatch) -> list[Projection]:
    """The projections tradewatch wires (the ledger and whatever else it projects)."""
    return list(tw.engine.projections.values())


def reference(tw: Tradewatch, projections: Sequence[Projection] = ()) -> dict[str, Rows]:
    """The read models replayed from event 0 into a fresh in-memory SQLite store.

    ``projections`` are tradewatch's own unless given.
    """
    store = SQLiteReadStore(":memory:")
    try:
        chosen = list(projections) or projections_of(tw)
        ProjectionEngine(RecorderLog(tw.ledger.recorder), store, chosen).catch_up()
        return dumps(store, chosen)
    finally:
        store.close()


def projected(tw: Tradewatch, store: ReadStore | None = None) -> dict[str, Rows]:
    """The read models in ``store`` (tradewatch's own by default), as :func:`reference` dumps."""
    return dumps(store or tw.store, projections_of(tw))


def at_log_end(tw: Tradewatch, engine: ProjectionEngine) -> bool:
    last = tw.ledger.recorder.max_notification_id() or 0
    return set(engine.positions().values()) == {last}


def engine_on(
    tw: Tradewatch,
    store: ReadStore,
    *projections: Projection,
    page_size: int = 2000,
    replay_page_size: int = 10_000,
) -> ProjectionEngine:
    """Another engine over tradewatch's log, on ``store``, with its projections by default."""
    return ProjectionEngine(
        RecorderLog(tw.ledger.recorder),
        store,
        list(projections) or projections_of(tw),
        page_size=page_size,
        replay_page_size=replay_page_size,
    )


@contextmanager
def read_store(url: str) -> Iterator[ReadStore]:
    """Another connection to the read store of ``url``."""
    store = open_read_store(url)
    try:
        yield store
    finally:
        store.close()


def history(days: int, seed: int) -> list[DemoTrade]:
    return list(generate(days=days, seed=seed, end=END))


def assert_exactly_once(tw: Tradewatch, tables: Mapping[str, Rows]) -> None:
    """One row per signal and per trade, and each correction counted exactly once."""
    facts = all_facts(tw)
    signals = {f.aggregate_id for f in facts if f.kind in ("Signal.Recorded", "Signal.Generated")}
    entries = {f.aggregate_id for f in facts if f.kind == "Trade.EntryRecorded"}
    corrections: dict[str, int] = {}
    for fact in facts:
        if fact.kind == "Trade.EntryCorrected":
            corrections[fact.aggregate_id] = corrections.get(fact.aggregate_id, 0) + 1
    signal_ids = [row[0] for row in tables["signals"]]
    trade_ids = [row[0] for row in tables["trades"]]
    assert sorted(signal_ids) == sorted(signals)
    assert sorted(trade_ids) == sorted(entries)
    column = [c.split()[0] for c in TRADES.columns].index("corrections")
    assert {row[0]: row[column] for row in tables["trades"]} == {
        trade: corrections.get(trade, 0) for trade in entries
    }


class SimulatedCrashError(Exception):
    """A simulated crash of the projecting process."""


class CrashingProjection:
    """The ledger projection, crashing once in the batch that holds fact ``crash_at``.

    The facts before it (and, when ``after`` is set, the fact itself) are applied first,
    so the crash leaves a half-written batch in the open transaction.
    """

    def __init__(self, inner: LedgerProjection, crash_at: int, *, after: bool) -> None:
        self.inner = inner
        self.crash_at = crash_at
        self.after = after
        self.name = inner.name
        self.tables = inner.tables

    def config(self) -> str:
        return self.inner.config()

    def apply(self, cursor: Cursor, tables: Mapping[str, str], facts: Sequence[Fact]) -> None:
        ids = [fact.id for fact in facts]
        if self.crash_at not in ids:
            self.inner.apply(cursor, tables, facts)
            return
        cut = ids.index(self.crash_at) + (1 if self.after else 0)
        self.inner.apply(cursor, tables, facts[:cut])
        raise SimulatedCrashError(self.crash_at)


def extra_commands(tw: Tradewatch, items: Sequence[DemoTrade], rng: random.Random) -> None:
    """Random corrections, late exits, and signals recorded then skipped, via the ledger."""
    traded = [item for item in items if item.entry is not None]
    for item in rng.sample(traded, min(len(traded), rng.randint(0, 3))):
        trade = tw.ledger.trade(item.draft.signal_id)
        assert trade is not None
        entry = trade.entry
        qty = round(entry.qty * rng.choice((0.5, 1.5, 2.0)), 6)
        tw.ledger.correct_entry(item.draft.signal_id, "wrong quantity", qty=qty, fee=0.01)
    for item in traded:
        if item.exit_at is None and rng.random() < 0.5:
            assert item.entry is not None
            at = item.entry.at + timedelta(hours=1)
            tw.ledger.record_exit(item.draft.signal_id, item.entry.price * 1.01, 0.0, "manual", at)
    for _ in range(rng.randint(0, 2)):
        signal_id = f"x-{rng.getrandbits(40):010x}"
        draft = SignalDraft(signal_id, "BTCUSDT", Direction.LONG, END, source="manual")
        tw.ledger.record_signal(draft)
        if rng.random() < 0.5:
            tw.ledger.skip_signal(signal_id, "not taken", END)


@contextmanager
def fresh_tradewatch(database_url: str, tmp_path: Path, tag: str) -> Iterator[Tradewatch]:
    """A tradewatch on an empty database of the kind of ``database_url``.

    SQLite: a new file. PostgreSQL: the test's database with its public schema emptied, so
    that every Hypothesis example starts from nothing without creating a database each time.
    """
    if is_sqlite(database_url):
        url = f"sqlite:///{tmp_path / f'example-{tag}.db'}"
    else:
        url = database_url
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DROP SCHEMA public CASCADE")
            conn.execute("CREATE SCHEMA public")
    tw = bootstrap(Settings(home=tmp_path, database_url=url))
    try:
        yield tw
    finally:
        tw.close()


# 1. Crash-safe incremental projection equals a replay from zero ----------------------------


@dataclass(frozen=True)
class Plan:
    """One random run: a demo history cut in chunks, a page size, and crashes in each chunk."""

    seed: int
    days: int
    chunks: int
    page_size: int
    crashes: tuple[tuple[float, bool], ...]
    command_seed: int


plans = st.builds(
    Plan,
    seed=st.integers(0, 10_000),
    days=st.integers(1, 4),
    chunks=st.integers(1, 3),
    page_size=st.integers(1, 50),
    crashes=st.lists(st.tuples(st.floats(0, 1), st.booleans()), max_size=4).map(tuple),
    command_seed=st.integers(0, 2**32),
)


def crash_once(tw: Tradewatch, fraction: float, after: bool, page_size: int) -> None:
    """Crash a fresh engine inside the batch of a fact between its position and the log's end."""
    with read_store(tw.settings.database) as store:
        position = min(engine_on(tw, store).positions().values())
        ahead = [fact.id for fact in all_facts(tw) if fact.id > position]
        if not ahead:
            return
        crash_at = ahead[int(fraction * (len(ahead) - 1))]
        projections = [
            CrashingProjection(p, crash_at, after=after) if isinstance(p, LedgerProjection) else p
            for p in projections_of(tw)
        ]
        engine = engine_on(tw, store, *projections, page_size=page_size)
        with pytest.raises(SimulatedCrashError):
            engine.catch_up()
        assert max(engine.positions().values()) < crash_at  # the whole batch rolled back


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=plans)
def test_crashing_incremental_projection_equals_replay_from_zero(
    database_url: str, tmp_path: Path, plan: Plan
) -> None:
    rng = random.Random(plan.command_seed)
    items = history(plan.days, plan.seed)
    size = max(1, -(-len(items) // plan.chunks))
    chunks = [items[i : i + size] for i in range(0, len(items), size)] or [[]]
    tag = f"{plan.seed}-{plan.command_seed}-{time.monotonic_ns()}"
    with fresh_tradewatch(database_url, tmp_path, tag) as tw:
        for number, chunk in enumerate(chunks):
            record(tw.ledger, iter(chunk), batch=rng.randint(1, 10))
            extra_commands(tw, chunk, rng)
            for fraction, after in plan.crashes[number :: len(chunks)]:
                crash_once(tw, fraction, after, plan.page_size)
            with read_store(tw.settings.database) as store:  # a restarted process resumes
                engine = engine_on(tw, store, page_size=plan.page_size)
                engine.catch_up()
                assert at_log_end(tw, engine)
                assert set(engine.lag().values()) == {0}
        with read_store(tw.settings.database) as store:
            tables = projected(tw, store)
        assert tables == reference(tw)
        assert_exactly_once(tw, tables)


# 2. Exactly once with two engines racing -----------------------------------------------------


def race(engines: Sequence[ProjectionEngine], *also: Callable[[], object]) -> list[int]:
    """Run every engine's catch_up (and ``also``) at once; re-raise the first error."""
    barrier = threading.Barrier(len(engines) + len(also))
    applied: list[int] = []
    errors: list[BaseException] = []

    def run(work: Callable[[], object], is_engine: bool) -> None:
        try:
            barrier.wait(timeout=WAIT)
            result = work()
            if is_engine:
                assert isinstance(result, int)
                applied.append(result)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(e.catch_up, True)) for e in engines]
    threads += [threading.Thread(target=run, args=(work, False)) for work in also]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    if errors:
        raise errors[0]
    return applied


def test_two_engines_racing_apply_each_event_exactly_once(tw: Tradewatch) -> None:
    items = history(12, seed=3)
    record(tw.ledger, iter(items), batch=25)
    extra_commands(tw, items, random.Random(5))
    tw.engine.setup()
    url = tw.settings.database
    with read_store(url) as first, read_store(url) as second:
        engines = [engine_on(tw, first, page_size=7), engine_on(tw, second, page_size=5)]

        def write_more() -> None:
            for item in history(3, seed=11):
                draft = SignalDraft(
                    "late-" + item.draft.signal_id, "ETHUSDT", Direction.SHORT, item.draft.at
                )
                tw.ledger.record_signal(draft)

        applied = race(engines, write_more)
        drained = engines[0].catch_up()
        assert sum(applied) + drained == tw.ledger.recorder.max_notification_id()
        assert at_log_end(tw, engines[0]) and at_log_end(tw, engines[1])
        tables = projected(tw, first)
        assert projected(tw, second) == tables
    assert tables == reference(tw)
    assert_exactly_once(tw, tables)


def test_two_engines_setting_up_a_fresh_store_at_once(tw: Tradewatch) -> None:
    """Two processes starting on a fresh database (a follower and a CLI command, say)."""
    record(tw.ledger, iter(history(8, seed=4)))
    url = tw.settings.database
    read_tables = [POSITIONS, *(t.name for p in projections_of(tw) for t in p.tables)]
    for _ in range(3):  # the race is lost most times; three rounds make it (nearly) certain
        with tw.store.transaction() as cur:  # a fresh read store: bootstrap set this one up
            for table in read_tables:
                cur.execute(f"DROP TABLE IF EXISTS {table}")
        with read_store(url) as first, read_store(url) as second:
            engines = [engine_on(tw, first, page_size=9), engine_on(tw, second, page_size=4)]
            applied = race(engines)
            assert sum(applied) == tw.ledger.recorder.max_notification_id()
            tables = projected(tw, first)
        assert tables == reference(tw)


# 3. Blue/green replay ------------------------------------------------------------------------


def test_replay_swaps_complete_tables_readers_never_see_half_built_ones(tw: Tradewatch) -> None:
    record(tw.ledger, iter(history(10, seed=8)))
    tw.engine.catch_up()
    old = projected(tw)
    assert old["trades"]
    added = history(5, seed=9)
    for item in added:  # more events, not yet projected: only the replay brings them in
        tw.ledger.record_signal(
            SignalDraft("new-" + item.draft.signal_id, "SOLUSDT", Direction.LONG, item.draft.at)
        )
    last = tw.ledger.recorder.max_notification_id()
    seen: list[tuple[int, dict[str, Rows]]] = []
    with read_store(tw.settings.database) as reader:

        def watch(done: int, total: int) -> None:
            assert 0 < done <= total
            seen.append((done, projected(tw, reader)))

        tw.engine.replay_page_size = 25
        replayed = tw.engine.replay(progress=watch)
        after = projected(tw, reader)
    assert replayed == last
    during = [tables for _, tables in seen[:-1]]  # the last call comes after the swap
    assert len(during) >= 3
    assert all(tables == old for tables in during)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert after == reference(tw) != old
    assert len(after["signals"]) == len(old["signals"]) + len(added)
    assert at_log_end(tw, tw.engine)
    with tw.store.reading() as cur:
        for table in ("signals__next", "trades__next"):
            assert not tw.store.table_exists(cur, table)


def test_replay_of_a_named_projection_and_of_an_unknown_one(tw: Tradewatch) -> None:
    record(tw.ledger, iter(history(4, seed=2)))
    tw.engine.catch_up()
    before = projected(tw)
    last = tw.ledger.recorder.max_notification_id()
    assert tw.engine.replay(["ledger"]) == last
    assert projected(tw) == before == reference(tw)
    assert tw.engine.positions()["ledger"] == last
    known = ", ".join(sorted(tw.engine.projections))
    with pytest.raises(ValueError, match=rf"unknown projection 'ledgr'.*known: {known}$"):
        tw.engine.replay(["ledgr"])
    assert projected(tw) == before


def test_catch_up_after_a_replay_continues_from_the_replayed_position(tw: Tradewatch) -> None:
    record(tw.ledger, iter(history(4, seed=21)))
    tw.engine.catch_up()
    tw.engine.replay()
    for n in range(3):
        tw.ledger.record_signal(SignalDraft(f"after-{n}", "BTCUSDT", Direction.LONG, END))
    assert tw.engine.catch_up() == 3
    assert projected(tw) == reference(tw)


# 4. A changed threshold replays automatically -----------------------------------------------


def outcomes(store: ReadStore) -> dict[str, tuple[str, float]]:
    """Closed trades: signal id -> (outcome, P&L %)."""
    with store.reading() as cur:
        cur.execute("SELECT signal_id, outcome, pnl_pct FROM trades WHERE status = 'closed'")
        return {sid: (outcome, pct) for sid, outcome, pct in cur.fetchall()}


def test_changed_breakeven_threshold_recomputes_outcomes(
    make_tradewatch: Callable[..., Tradewatch],
) -> None:
    first = make_tradewatch(breakeven_pct=0.5)
    record(first.ledger, iter(history(20, seed=13)))
    first.engine.catch_up()
    before = outcomes(first.store)
    modest_wins = {sid for sid, (o, pct) in before.items() if o == "win" and pct <= 5.0}
    assert modest_wins, "the demo history should have wins below 5 %"
    assert all(o == classify(pct, 0.5).value for o, pct in before.values())

    second = make_tradewatch(breakeven_pct=5.0)
    second.engine.setup()
    assert second.engine.catch_up() == 0  # nothing new to apply: the replay did the work
    after = outcomes(second.store)
    assert after.keys() == before.keys()
    assert all(o == classify(pct, 5.0).value for o, pct in after.values())
    assert all(after[sid][0] == "breakeven" for sid in modest_wins)
    assert {sid: pct for sid, (_, pct) in after.items()} == {
        sid: pct for sid, (_, pct) in before.items()
    }
    with second.store.reading() as cur:
        cur.execute(f"SELECT config, position FROM {POSITIONS} WHERE name = 'ledger'")
        config, position = cur.fetchone()
    assert config.startswith("breakeven_pct=5.0;")
    assert position == second.ledger.recorder.max_notification_id()
    assert projected(second) == reference(second)


def test_setup_replays_a_changed_projection_with_progress(tw: Tradewatch) -> None:
    record(tw.ledger, iter(history(6, seed=14)))
    tw.engine.catch_up()
    before = outcomes(tw.store)
    changed = [
        LedgerProjection(2.0) if isinstance(p, LedgerProjection) else p for p in projections_of(tw)
    ]
    calls: list[tuple[int, int]] = []
    engine = engine_on(tw, tw.store, *changed, replay_page_size=20)
    engine.setup(progress=lambda done, total: calls.append((done, total)))
    last = tw.ledger.recorder.max_notification_id()
    assert len(calls) >= 3
    assert calls[-1] == (last, last)
    assert outcomes(tw.store) != before
    assert dumps(tw.store, changed) == reference(tw, changed)


def test_running_engine_with_an_old_threshold_refuses_to_mix_outcomes(
    make_tradewatch: Callable[..., Tradewatch],
) -> None:
    old = make_tradewatch(breakeven_pct=0.5)  # e.g. `tradewatch project --follow`, started first
    record(old.ledger, iter(history(10, seed=15)))
    old.engine.catch_up()
    new = make_tradewatch(breakeven_pct=5.0)  # the trader raised the threshold, ran a command
    new.engine.catch_up()
    old.ledger.record_signal(SignalDraft("late", "BTCUSDT", Direction.LONG, END))
    old.ledger.record_entry("late", Fill(100.0, 1.0, 0.0, END), force=True)
    old.ledger.record_exit("late", 102.0, 0.0, "take_profit", END + timedelta(hours=1))
    with pytest.raises(OutdatedSettingsError, match="restart it with the same settings"):
        old.engine.catch_up()  # the follower, still running with 0.5, refuses to mix
    new.engine.catch_up()
    with new.store.reading() as cur:
        cur.execute(f"SELECT config FROM {POSITIONS} WHERE name = 'ledger'")
        config = cur.fetchone()[0]
    threshold = float(config.split(";")[0].partition("=")[2])
    assert threshold == 5.0
    outcome, pct = outcomes(new.store)["late"]  # +2 %: a breakeven under the 5 % in force
    assert outcome == classify(pct, threshold).value == "breakeven"
    assert all(o == classify(p, threshold).value for o, p in outcomes(new.store).values())


# 5. Live following -------------------------------------------------------------------------------


@contextmanager
def following(engine: ProjectionEngine, url: str, poll_interval: float) -> Iterator[None]:
    """``engine.follow`` in a thread with the waiter for ``url``; stopped and joined on exit."""
    waiter = waiter_for(url)
    assert isinstance(waiter, PollingWaiter if is_sqlite(url) else ListenWaiter)
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            engine.follow(waiter, stop, poll_interval=poll_interval)
        except BaseException as e:
            errors.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        if isinstance(waiter, ListenWaiter):
            with psycopg.connect(url, autocommit=True) as conn:  # wake it from a long wait
                conn.execute(f'NOTIFY "{EVENTS_CHANNEL}"')
        thread.join(timeout=WAIT)
        if isinstance(waiter, ListenWaiter):
            waiter.close()
    assert not thread.is_alive(), "follow did not stop"
    assert not errors, errors


def eventually(check: Callable[[], bool], within: float = WAIT) -> None:
    """Poll ``check`` until true; fails after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"not true within {within} s")
        time.sleep(0.01)


def has_trade(tw: Tradewatch, signal_id: str, status: str) -> bool:
    trade = tw.reports.trade(signal_id)
    return trade is not None and trade["status"] == status


def test_follow_projects_new_events_as_they_are_recorded(tw: Tradewatch) -> None:
    tw.engine.catch_up()
    url = tw.settings.database
    with read_store(url) as store, following(engine_on(tw, store), url, poll_interval=0.5):
        for n in range(3):
            tw.ledger.record_signal(
                SignalDraft(f"live-{n}", "BTCUSDT", Direction.LONG, END, source="v7")
            )
            tw.ledger.record_entry(f"live-{n}", Fill(100.0, 1.0, 0.1, END))
            eventually(partial(has_trade, tw, f"live-{n}", "open"))
        tw.ledger.record_exit("live-0", 101.0, 0.1, "manual", END + timedelta(minutes=5))
        eventually(partial(has_trade, tw, "live-0", "closed"))
    assert [p["signal_id"] for p in tw.reports.positions()] == ["live-1", "live-2"]
    assert at_log_end(tw, tw.engine)


def test_follow_is_woken_by_its_waiter_not_by_the_poll_interval(tw: Tradewatch) -> None:
    """With an hour's fallback poll, only the waiter (NOTIFY on PostgreSQL) wakes the follower."""
    tw.engine.catch_up()
    url = tw.settings.database
    with read_store(url) as store, following(engine_on(tw, store), url, poll_interval=NEVER):
        if not is_sqlite(url):  # a NOTIFY before the waiter's first LISTEN would go unheard
            eventually(lambda: bool(listening_pids(url)))
        for n in range(2):
            draft = SignalDraft(f"woken-{n}", "ETHUSDT", Direction.SHORT, END)
            outcome = tw.ledger.record_signal(draft)
            assert outcome.last_notification_id is not None
            assert tw.engine.wait_for(outcome.last_notification_id, timeout=WAIT)
    assert tw.reports.signal_counts() == {"pending": 2}


def test_wait_for_true_once_projected_false_on_timeout(tw: Tradewatch) -> None:
    tw.engine.catch_up()
    outcome = tw.ledger.record_signal(SignalDraft("w", "BTCUSDT", Direction.LONG, END))
    target = outcome.last_notification_id
    assert target is not None
    assert not tw.engine.wait_for(target, timeout=0.05)  # nobody is projecting yet
    url = tw.settings.database
    with read_store(url) as store, following(engine_on(tw, store), url, poll_interval=0.2):
        assert tw.engine.wait_for(target, timeout=WAIT)
        assert not tw.engine.wait_for(target + 1000, timeout=0.3)  # never recorded
    assert tw.engine.positions()["ledger"] == target
    assert tw.reports.signal_counts() == {"pending": 1}


def test_catch_up_until_stops_at_that_event(tw: Tradewatch) -> None:
    record(tw.ledger, iter(history(5, seed=31)))
    ids = [fact.id for fact in all_facts(tw)]
    middle = ids[len(ids) // 2]
    assert tw.engine.catch_up(until=middle) == ids.index(middle) + 1
    assert set(tw.engine.positions().values()) == {middle}
    assert tw.engine.catch_up(until=middle) == 0
    store = SQLiteReadStore(":memory:")
    try:
        partial_reference = engine_on(tw, store)
        partial_reference.catch_up(until=middle)
        assert projected(tw) == projected(tw, store)
    finally:
        store.close()
    assert tw.engine.catch_up() == len(ids) - ids.index(middle) - 1
    assert projected(tw) == reference(tw)


def test_replay_while_a_follower_and_a_writer_run(tw: Tradewatch) -> None:
    record(tw.ledger, iter(history(15, seed=41)))
    tw.engine.catch_up()
    url = tw.settings.database
    written = threading.Event()

    def write() -> None:
        for item in history(4, seed=42):
            draft = SignalDraft("w-" + item.draft.signal_id, "BTCUSDT", Direction.LONG, END)
            tw.ledger.record_signal(draft)
            time.sleep(0.005)
        written.set()

    writer = threading.Thread(target=write)
    with read_store(url) as store, following(engine_on(tw, store), url, poll_interval=0.05):
        writer.start()
        with read_store(url) as other:
            replayer = engine_on(tw, other, replay_page_size=30)
            replayer.replay(progress=lambda done, total: time.sleep(0.01))
        writer.join(timeout=60)
        assert written.is_set()
        eventually(partial(at_log_end, tw, tw.engine))
    assert projected(tw) == reference(tw)
    assert_exactly_once(tw, projected(tw))


def terminate(url: str, pid: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


def listening_pids(url: str) -> list[int]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND query LIKE 'LISTEN %%' AND pid <> pg_backend_pid()"
        ).fetchall()
    return [int(row[0]) for row in rows]


@POSTGRES_ONLY
def test_follower_listens_again_after_its_listen_connection_drops(tw: Tradewatch) -> None:
    """ListenWaiter reconnects; with an hour's fallback poll only a new LISTEN can wake it."""
    url = tw.settings.database
    with read_store(url) as store, following(engine_on(tw, store), url, poll_interval=NEVER):
        eventually(lambda: bool(listening_pids(url)))
        dropped = listening_pids(url)
        for pid in dropped:
            terminate(url, pid)
        eventually(lambda: bool(set(listening_pids(url)) - set(dropped)))
        outcome = tw.ledger.record_signal(SignalDraft("after-drop", "BTCUSDT", Direction.LONG, END))
        assert outcome.last_notification_id is not None
        assert tw.engine.wait_for(outcome.last_notification_id, timeout=WAIT)


@POSTGRES_ONLY
def test_follower_survives_a_dropped_read_store_connection(tw: Tradewatch) -> None:
    url = tw.settings.database
    store = open_read_store(url)
    try:
        with following(engine_on(tw, store), url, poll_interval=0.2):
            first = tw.ledger.record_signal(SignalDraft("before", "BTCUSDT", Direction.LONG, END))
            assert first.last_notification_id is not None
            assert tw.engine.wait_for(first.last_notification_id, timeout=WAIT)  # store in use
            with store.reading() as cur:
                cur.execute("SELECT pg_backend_pid()")
                pid = int(cur.fetchone()[0])
            terminate(url, pid)
            outcome = tw.ledger.record_signal(
                SignalDraft("after-drop", "BTCUSDT", Direction.LONG, END)
            )
            assert outcome.last_notification_id is not None
            assert tw.engine.wait_for(outcome.last_notification_id, timeout=WAIT)
    finally:
        store.close()
