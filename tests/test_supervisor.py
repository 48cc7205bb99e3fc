"""The supervisor: restarts with capped, jittered backoff; a status for the heartbeat;
SIGTERM stops a real process within its deadline; structured logs name the component.

No assert is on a duration: tests wait for conditions with generous timeouts and assert
on what the components recorded, on the exit codes and on the log lines.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from infrastructure import logs
from infrastructure.supervisor import (
    Component,
    RestartBackoff,
    StopSignal,
    Supervisor,
    process_component,
)
from tests.nats_support import WAIT, wait_for

log = logging.getLogger("tradewatch.test")
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class RecordedBackoff(RestartBackoff):
    """A restart backoff that keeps each (attempt, delay) it gave."""

    given: list[tuple[int, float]] = field(default_factory=list)

    def delay(self, attempt: int) -> float:
        delay = super().delay(attempt)
        self.given.append((attempt, delay))
        return delay


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """Logs as JSON lines into a buffer; the previous set-up restored afterwards."""
    root = logging.getLogger()
    before = list(root.handlers)
    buffer = io.StringIO()
    logs.configure(logs.LogFormat.JSON, stream=buffer)
    yield buffer
    for handler in list(root.handlers):
        if handler not in before:
            root.removeHandler(handler)


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def running(supervisor: Supervisor, name: str, restarts: int) -> bool:
    status = supervisor.status()[name]
    return bool(status["state"] == "running" and status["restarts"] == restarts)


def crashing(times: int, runs: list[int]) -> Component:
    """Fails its first ``times`` runs, then works until stopped."""

    def run(stop: StopSignal) -> None:
        runs.append(len(runs) + 1)
        if len(runs) <= times:
            raise RuntimeError(f"boom {len(runs)}")
        stop.wait()

    return Component("crasher", run)


def test_a_crashing_component_is_restarted_with_capped_jittered_backoff() -> None:
    backoff = RecordedBackoff(first=0.01, cap=0.04, jitter=0.5, random=lambda: 0.5)
    runs: list[int] = []
    supervisor = Supervisor([crashing(5, runs)], backoff=backoff)
    supervisor.start()
    wait_for(lambda: running(supervisor, "crasher", 5))
    assert runs == [1, 2, 3, 4, 5, 6]
    assert [a for a, _ in backoff.given] == [1, 2, 3, 4, 5]
    bounds = [0.01, 0.02, 0.04, 0.04, 0.04]  # doubling, capped at 0.04
    assert [d for _, d in backoff.given] == pytest.approx([b * 0.75 for b in bounds])
    status = supervisor.status()["crasher"]
    assert status["last_error"] == "RuntimeError: boom 5"
    assert status["last_error_at"] is not None and status["next_restart_in"] is None
    assert supervisor.stop() == {"crasher": "stopped"}
    assert supervisor.status()["crasher"]["state"] == "stopped"


def test_jitter_stays_within_its_band() -> None:
    backoff = RestartBackoff(first=1.0, cap=8.0, jitter=0.5)
    for attempt in range(1, 8):
        bound = min(8.0, 2.0 ** (attempt - 1))
        delays = [backoff.delay(attempt) for _ in range(200)]
        assert all(bound * 0.5 <= d <= bound for d in delays)
        assert len(set(delays)) > 1


def test_a_component_that_ran_healthy_restarts_from_the_first_delay() -> None:
    backoff = RecordedBackoff(first=0.01, cap=1.0, random=lambda: 0.0)
    runs: list[int] = []
    supervisor = Supervisor([crashing(3, runs)], backoff=backoff, healthy_after=0.0)
    supervisor.start()
    wait_for(lambda: running(supervisor, "crasher", 3))
    assert backoff.given == [(1, 0.01), (1, 0.01), (1, 0.01)]
    supervisor.stop()


def test_returning_before_the_stop_counts_as_a_failure() -> None:
    runs: list[int] = []

    def run(stop: StopSignal) -> None:
        runs.append(1)
        if len(runs) > 2:
            stop.wait()

    supervisor = Supervisor([Component("quitter", run)], backoff=RestartBackoff(first=0.01))
    supervisor.start()
    wait_for(lambda: running(supervisor, "quitter", 2))
    assert supervisor.status()["quitter"]["last_error"] == "returned before it was asked to stop"
    supervisor.stop()


def test_a_failure_while_stopping_is_logged_not_restarted(json_logs: io.StringIO) -> None:
    runs: list[int] = []

    def run(stop: StopSignal) -> None:
        runs.append(1)
        stop.wait()
        raise RuntimeError("could not flush")

    supervisor = Supervisor([Component("flusher", run)])
    supervisor.start()
    wait_for(lambda: runs == [1])
    assert supervisor.stop() == {"flusher": "stopped"}
    assert runs == [1]
    errors = [r for r in lines(json_logs) if r["level"] == "error"]
    assert [r["component"] for r in errors] == ["flusher"]
    assert "could not flush" in errors[0]["message"]
    assert "RuntimeError: could not flush" in errors[0]["traceback"]


def test_a_component_that_ignores_the_stop_is_abandoned_at_the_deadline(
    json_logs: io.StringIO,
) -> None:
    release = threading.Event()
    stopped = threading.Event()

    def polite(stop: StopSignal) -> None:
        stop.wait()
        stopped.set()

    def deaf(stop: StopSignal) -> None:
        release.wait()

    supervisor = Supervisor([Component("polite", polite), Component("deaf", deaf)])
    supervisor.start()
    wait_for(lambda: all(s["state"] == "running" for s in supervisor.status().values()))
    try:
        assert supervisor.stop(grace=1.0) == {"polite": "stopped", "deaf": "abandoned"}
        assert stopped.is_set()
        assert supervisor.status()["deaf"]["state"] == "abandoned"
        abandoned = [r for r in lines(json_logs) if "abandoned" in r["message"]]
        assert {r["component"] for r in abandoned} == {"deaf", "supervisor"}
    finally:
        release.set()


def test_component_names_are_unique() -> None:
    noop = Component("x", lambda stop: None)
    with pytest.raises(ValueError, match="unique"):
        Supervisor([noop, noop])


def test_the_stop_signal_keeps_its_first_deadline() -> None:
    stop = StopSignal()
    assert stop.deadline is None and stop.remaining() == float("inf")
    stop.request(30.0)
    first = stop.deadline
    stop.request(0.0)
    assert stop.is_set() and stop.deadline == first and 0 < stop.remaining() <= 30.0


def test_every_line_names_its_component_in_threads_tasks_and_worker_threads(
    json_logs: io.StringIO,
) -> None:
    done = threading.Event()

    def talker(stop: StopSignal) -> None:
        async def main() -> None:
            log.info("from a task")
            await asyncio.to_thread(log.info, "from a worker thread")

        log.info("from the thread")
        asyncio.run(main())
        done.set()
        stop.wait()

    supervisor = Supervisor([Component("talker", talker)])
    supervisor.start()
    wait_for(done.is_set)
    supervisor.stop()
    records = lines(json_logs)
    mine = {r["message"]: r["component"] for r in records if r["logger"] == "tradewatch.test"}
    assert mine == {
        "from the thread": "talker",
        "from a task": "talker",
        "from a worker thread": "talker",
    }
    assert {"started", "stopped"} <= {r["message"] for r in records if r["component"] == "talker"}
    assert all({"time", "level", "component", "logger", "message"} <= r.keys() for r in records)


def test_text_logs_are_one_line_each_even_with_a_traceback() -> None:
    buffer = io.StringIO()
    root = logging.getLogger()
    before = list(root.handlers)
    logs.configure("text", stream=buffer, component="relay")
    try:
        try:
            raise ValueError("bad\nvalue")
        except ValueError:
            log.exception("failed with\na newline", extra={"alert": "a1"})
    finally:
        for handler in list(root.handlers):
            if handler not in before:
                root.removeHandler(handler)
    (line,) = buffer.getvalue().splitlines()
    assert logs.is_record(line, logs.LogFormat.TEXT)
    assert " ERROR relay: failed with\\na newline alert=a1 | Traceback" in line
    assert "ValueError: bad\\nvalue" in line


CRASH_ONCE = """
import signal, sys, time
from pathlib import Path
home = Path(sys.argv[1])
runs = home / "runs"
runs.write_text(str(int(runs.read_text() or 0) + 1) if runs.exists() else "1")
if runs.read_text() == "1":
    print("bad config: no token", file=sys.stderr)
    sys.exit(3)
def stop(signum, frame):
    (home / "stopped").write_text("yes")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
(home / "up").write_text("yes")
while True:
    time.sleep(0.05)
"""


def test_a_child_process_that_exits_is_restarted_and_stopped_with_sigterm(
    tmp_path: Path, json_logs: io.StringIO
) -> None:
    child = process_component("child", [sys.executable, "-c", CRASH_ONCE, str(tmp_path)])
    supervisor = Supervisor([child], backoff=RestartBackoff(first=0.01))
    supervisor.start()
    wait_for(lambda: (tmp_path / "up").exists() and running(supervisor, "child", 1))
    status = supervisor.status()["child"]
    assert status["last_error"] == (
        "ComponentExitedError: exited with code 3: bad config: no token"
    )
    assert supervisor.stop() == {"child": "stopped"}
    assert (tmp_path / "stopped").read_text() == "yes"
    output = [r for r in lines(json_logs) if r.get("stream") == "output"]
    assert [(r["component"], r["message"]) for r in output] == [("child", "bad config: no token")]


DEAF_CHILD = """
import signal, sys, time
from pathlib import Path
signal.signal(signal.SIGTERM, signal.SIG_IGN)
Path(sys.argv[1], "up").write_text("yes")
while True:
    time.sleep(0.05)
"""


def test_a_child_that_ignores_sigterm_is_killed_before_the_deadline(
    tmp_path: Path, json_logs: io.StringIO
) -> None:
    child = process_component("deaf", [sys.executable, "-c", DEAF_CHILD, str(tmp_path)])
    supervisor = Supervisor([child])
    supervisor.start()
    wait_for((tmp_path / "up").exists)
    assert supervisor.stop(grace=2.0) == {"deaf": "stopped"}
    assert any("killed" in r["message"] for r in lines(json_logs) if r["component"] == "deaf")


# A real process under the supervisor, signalled ------------------------------------------


def start_app(home: Path, *options: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.supervised", str(home), *options],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def rows(db: Path) -> list[tuple[int, ...]]:
    with sqlite3.connect(db) as conn:
        return [tuple(r) for r in conn.execute("SELECT * FROM work ORDER BY rowid")]


def test_sigterm_stops_every_component_after_its_work_in_flight(tmp_path: Path) -> None:
    app = start_app(tmp_path, "--log-format", "json")
    wait_for(lambda: (tmp_path / "writer.inflight").exists() and (tmp_path / "child.pid").exists())
    child_pid = int((tmp_path / "child.pid").read_text())
    app.send_signal(signal.SIGTERM)
    _, err = app.communicate(timeout=WAIT)
    assert app.returncode == 0, err
    # the batch in flight at the signal was finished whole, then the writer stopped
    assert (tmp_path / "writer.stopped").read_text() == "3"
    assert rows(tmp_path / "work.db") == [(b, r) for b in (1, 2, 3) for r in range(10)]
    assert int((tmp_path / "ticker.stopped").read_text()) >= 0
    assert (tmp_path / "child.stopped").read_text() == "sigterm"
    assert not alive(child_pid)
    records = [json.loads(line) for line in err.splitlines()]
    assert all(r["component"] for r in records)
    by = {(r["component"], r["message"]) for r in records}
    assert {("writer", "stopped"), ("ticker", "stopped"), ("child", "stopped")} <= by
    assert ("child", "child is up") in by  # the child's plain output, as its records
    assert ("supervisor", "SIGTERM received") in by
    assert ("supervisor", "every component stopped") in by


def test_a_component_stuck_past_the_deadline_is_abandoned_and_rolled_back(
    tmp_path: Path,
) -> None:
    app = start_app(tmp_path, "--stubborn", "--grace", "2", "--log-format", "json")
    ready = ("writer.inflight", "stubborn.inside", "child.pid")
    wait_for(lambda: all((tmp_path / name).exists() for name in ready))
    app.send_signal(signal.SIGTERM)
    _, err = app.communicate(timeout=WAIT)
    assert app.returncode == 1, err
    assert rows(tmp_path / "stubborn.db") == []  # its open transaction died with the process
    assert (tmp_path / "writer.stopped").read_text() == "3"
    assert (tmp_path / "child.stopped").read_text() == "sigterm"
    records = [json.loads(line) for line in err.splitlines()]
    abandoned = [r for r in records if r["level"] == "error" and "abandoned" in r["message"]]
    assert {r["component"] for r in abandoned} == {"stubborn", "supervisor"}


def test_a_second_signal_exits_at_once(tmp_path: Path) -> None:
    app = start_app(tmp_path, "--stubborn", "--grace", "600", "--log-format", "json")
    wait_for((tmp_path / "stubborn.inside").exists)
    app.send_signal(signal.SIGINT)
    wait_for((tmp_path / "writer.stopped").exists)
    app.send_signal(signal.SIGINT)
    _, err = app.communicate(timeout=WAIT)
    assert app.returncode == 128 + signal.SIGINT
    assert "SIGINT again: exiting now" in err


def test_children_die_with_a_killed_supervisor(tmp_path: Path) -> None:
    app = start_app(tmp_path)
    wait_for((tmp_path / "child.pid").exists)
    child_pid = int((tmp_path / "child.pid").read_text())
    app.kill()
    app.communicate(timeout=WAIT)
    wait_for(lambda: not alive(child_pid))
    assert (tmp_path / "child.stopped").read_text() == "sigterm"  # it was told, not killed
