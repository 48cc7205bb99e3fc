"""The supervisor: runs named components, restarts the ones that crash, stops all on time.

A :class:`Component` is a name and a callable ``run(stop)`` that works until ``stop`` (a
:class:`StopSignal`, a ``threading.Event`` that also carries a deadline) is set, then
returns. Each runs in a thread of its own, under its name in every log line. A component
may also be a child process (:func:`process_component`: ``tradewatch run <name>``),
supervised through the same callable, for isolation on a multi-core machine.

* **Restarts.** A component that raises (or returns, or a child that exits, before it was
  asked to stop) is restarted after an exponential backoff with jitter, capped
  (:class:`RestartBackoff`); one that ran ``healthy_after`` seconds before failing starts
  again from the first delay. :meth:`Supervisor.status` holds each component's state,
  restarts and last error, for the heartbeat and ``tradewatch doctor``.
* **Shutdown.** :func:`serve` turns SIGTERM and SIGINT into :meth:`Supervisor.stop`: the
  stop signal is set with a deadline (``grace``, 10 s); each component finishes the step
  in flight (a transaction commits whole, or is not begun) and returns; a child process
  gets SIGTERM, then SIGKILL shortly before the deadline. A component still running at
  the deadline is *abandoned*: logged by name, and the process exits anyway, so its open
  transaction is rolled back by the database. A second signal exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import math
import os
import random
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from types import FrameType
from typing import IO, Any

from infrastructure import logs

logger = logging.getLogger("tradewatch.supervisor")
SUPERVISOR = {"component": "supervisor"}
"""``extra`` for the supervisor's own lines."""


class StopSignal(threading.Event):
    """Set when components must stop; :attr:`deadline` is when they must have stopped."""

    def __init__(self) -> None:
        super().__init__()
        self._deadline: float | None = None
        self._guard = threading.Lock()

    def request(self, grace: float) -> None:
        """Ask to stop within ``grace`` seconds (a second request keeps the first deadline)."""
        with self._guard:
            if self._deadline is None:
                self._deadline = time.monotonic() + grace
        self.set()

    @property
    def deadline(self) -> float | None:
        """The ``time.monotonic()`` by which to have stopped; None until requested."""
        return self._deadline

    def remaining(self) -> float:
        """Seconds left before the deadline (inf when none was given)."""
        if self._deadline is None:
            return math.inf
        return max(self._deadline - time.monotonic(), 0.0)


@dataclass(frozen=True)
class Component:
    """A named piece of work: ``run(stop)`` until ``stop`` is set."""

    name: str
    run: Callable[[StopSignal], None]


@dataclass(frozen=True)
class RestartBackoff:
    """Restart delays: ``first`` seconds doubling per failure up to ``cap``, each shortened by
    a random fraction of up to ``jitter`` (so components that failed together do not all
    restart at the same instant)."""

    first: float = 0.5
    cap: float = 60.0
    jitter: float = 0.5
    random: Callable[[], float] = random.random

    def bound(self, attempt: int) -> float:
        """The delay before restart number ``attempt`` (1, 2, …) without jitter."""
        return float(min(self.cap, self.first * 2.0 ** (attempt - 1)))

    def delay(self, attempt: int) -> float:
        """The delay before restart number ``attempt``: within
        ``[bound · (1 - jitter), bound]``."""
        return self.bound(attempt) * (1.0 - self.jitter * self.random())


@dataclass
class ComponentStatus:
    """How one component is doing (JSON-ready, for the heartbeat)."""

    name: str
    state: str = "starting"
    """``starting``, ``running``, ``restarting`` (waiting out a backoff), ``stopped`` or
    ``abandoned`` (did not stop by the deadline)."""
    restarts: int = 0
    last_error: str | None = None
    last_error_at: str | None = None
    running_since: str | None = None
    next_restart_in: float | None = None


class ComponentExitedError(Exception):
    """A child process ended before it was asked to stop."""


def describe(error: BaseException) -> str:
    """An exception as one line: ``Type: message``."""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class Supervisor:
    """Runs components in threads, restarts them with backoff, stops them by a deadline."""

    def __init__(
        self,
        components: Sequence[Component],
        *,
        grace: float = 10.0,
        backoff: RestartBackoff | None = None,
        healthy_after: float = 60.0,
    ) -> None:
        names = [c.name for c in components]
        if len(set(names)) != len(names):
            raise ValueError(f"component names must be unique: {', '.join(names)}")
        self.components = tuple(components)
        self.grace = grace
        self.backoff = backoff or RestartBackoff()
        self.healthy_after = healthy_after
        self.stop_signal = StopSignal()
        self._lock = threading.Lock()
        self._status = {c.name: ComponentStatus(c.name) for c in components}
        self._threads: dict[str, threading.Thread] = {}

    def start(self) -> None:
        """Start every component, each in a thread of its own."""
        for c in self.components:
            thread = threading.Thread(
                target=self._keep, args=(c,), name=f"tradewatch-{c.name}", daemon=True
            )
            self._threads[c.name] = thread
            thread.start()
        logger.info(
            "running %s", ", ".join(c.name for c in self.components) or "nothing", extra=SUPERVISOR
        )

    def status(self) -> dict[str, dict[str, Any]]:
        """Each component's :class:`ComponentStatus`, as plain data."""
        with self._lock:
            return {name: asdict(s) for name, s in self._status.items()}

    def stop(self, grace: float | None = None) -> dict[str, str]:
        """Stop every component within ``grace`` seconds (default :attr:`grace`).

        Returns each component's outcome: ``stopped``, or ``abandoned`` if it was still
        running at the deadline.
        """
        grace = self.grace if grace is None else grace
        self.stop_signal.request(grace)
        logger.info("stopping within %g s", grace, extra=SUPERVISOR)
        outcome: dict[str, str] = {}
        for name, thread in self._threads.items():
            thread.join(self.stop_signal.remaining())
            if thread.is_alive():
                outcome[name] = "abandoned"
                self._update(name, state="abandoned")
                logger.error(
                    "did not stop within %g s: abandoned (its work in flight is rolled back "
                    "when the process exits)",
                    grace,
                    extra={"component": name},
                )
            else:
                outcome[name] = "stopped"
        left = [n for n, o in outcome.items() if o == "abandoned"]
        if left:
            logger.error("abandoned %s", ", ".join(left), extra=SUPERVISOR)
        else:
            logger.info("every component stopped", extra=SUPERVISOR)
        return outcome

    def run(self, stop: threading.Event, grace: float | None = None) -> dict[str, str]:
        """Start, run until ``stop`` is set, then :meth:`stop`."""
        self.start()
        while not stop.wait(0.5):
            pass
        return self.stop(grace)

    def _update(self, name: str, **fields: Any) -> None:
        with self._lock:
            status = self._status[name]
            for key, value in fields.items():
                setattr(status, key, value)

    def _keep(self, c: Component) -> None:
        """Run ``c`` until stopped, restarting it after each failure."""
        stop = self.stop_signal
        attempt = 0
        with logs.component(c.name):
            while not stop.is_set():
                began = time.monotonic()
                self._update(c.name, state="running", running_since=_now(), next_restart_in=None)
                logger.info("started")
                try:
                    c.run(stop)
                except (Exception, SystemExit) as e:
                    if stop.is_set():
                        logger.error("failed while stopping: %s", describe(e), exc_info=True)
                        break
                    error = describe(e)
                    logger.error("crashed: %s", error, exc_info=True)
                else:
                    if stop.is_set():
                        break
                    error = "returned before it was asked to stop"
                    logger.error(error)
                if time.monotonic() - began >= self.healthy_after:
                    attempt = 0
                attempt += 1
                delay = self.backoff.delay(attempt)
                with self._lock:
                    status = self._status[c.name]
                    status.state, status.next_restart_in = "restarting", round(delay, 3)
                    status.last_error, status.last_error_at = error, _now()
                    restarts = status.restarts + 1
                logger.warning("restarting in %.2f s", delay, extra={"restart": restarts})
                if stop.wait(delay):
                    break
                self._update(c.name, restarts=restarts)
            self._update(c.name, state="stopped", next_restart_in=None)
            logger.info("stopped")


def run_async(main: Callable[[asyncio.Event], Awaitable[None]], stop: threading.Event) -> None:
    """Run the asyncio ``main(done)`` in a loop of this thread's own, ``done`` set when
    ``stop`` is: an asyncio component (a sink, the relay) as a supervised callable."""

    async def runner() -> None:
        done = asyncio.Event()

        async def watch() -> None:
            while not stop.is_set():
                await asyncio.sleep(0.05)
            done.set()

        watcher = asyncio.create_task(watch())
        try:
            await main(done)
        finally:
            watcher.cancel()

    asyncio.run(runner())


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


# Child processes -----------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1
_prctl: Any = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def _child_setup(parent: int) -> Callable[[], None]:
    """Run in the child before exec: die (SIGTERM) with the thread that started it, so a
    ``kill -9`` of the supervisor leaves no orphan; and exit if the parent is gone already."""

    def setup() -> None:
        if _prctl is not None:
            _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:
            os._exit(1)

    return setup


class _Output:
    """Passes a child's output lines on: a record of this process's log format as it is,
    anything else (a traceback, a library's print) as a record of the component."""

    def __init__(self, stream: IO[str], name: str) -> None:
        self.name = name
        self.last = ""
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[str]) -> None:
        fmt = logs.configured_format()
        for raw in stream:
            line = raw.rstrip("\n")
            if not line.strip():
                continue
            self.last = line.strip()[-300:]
            if logs.is_record(line, fmt):
                logs.write_line(line)
            else:
                logger.warning("%s", line, extra={"component": self.name, "stream": "output"})

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


def process_component(
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    kill_margin: float = 0.5,
) -> Component:
    """A component that runs ``argv`` as a child process (e.g. ``tradewatch run relay``).

    On stop the child gets SIGTERM, and SIGKILL ``kill_margin`` seconds before the
    deadline if it is still running; a child that exits on its own is a failure (restarted
    with backoff). The child gets ``TRADEWATCH_LOG_FORMAT`` of this process, so its lines
    pass through as they are; it dies with the supervisor (Linux: ``PR_SET_PDEATHSIG``).
    """
    child_env = dict(os.environ if env is None else env)
    child_env.setdefault("TRADEWATCH_LOG_FORMAT", logs.configured_format().value)

    def run(stop: StopSignal) -> None:
        child = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=child_env,
            text=True,
            start_new_session=True,  # a terminal's Ctrl-C reaches the supervisor only
            preexec_fn=_child_setup(os.getpid()),  # noqa: PLW1509 - prctl only, no locks
        )
        assert child.stdout is not None
        output = _Output(child.stdout, name)
        logger.info("child %d: %s", child.pid, shlex.join(argv))
        try:
            while child.poll() is None:
                if stop.wait(0.1):
                    _terminate(child, stop, kill_margin)
        finally:
            if child.poll() is None:
                child.kill()
            child.wait()
            output.join(5.0)
        if not stop.is_set():
            detail = f": {output.last}" if output.last else ""
            raise ComponentExitedError(f"exited with code {child.returncode}{detail}")

    return Component(name, run)


def _terminate(child: subprocess.Popen[str], stop: StopSignal, margin: float) -> None:
    child.send_signal(signal.SIGTERM)
    remaining = stop.remaining()
    wait = 10.0 if math.isinf(remaining) else max(remaining - margin, 0.05)
    try:
        child.wait(wait)
    except subprocess.TimeoutExpired:
        logger.error("child %d did not stop in time: killed", child.pid)
        child.kill()


# Running until signalled ---------------------------------------------------------------


def exit_now(code: int) -> None:
    """Flush the logs and standard streams, then end the process at once (``os._exit``):
    abandoned threads may hold locks a normal interpreter exit would wait on."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def serve(supervisor: Supervisor, *, grace: float | None = None) -> int:
    """Run ``supervisor`` until SIGTERM or SIGINT, then stop it within ``grace`` seconds.

    Returns 0 when every component stopped in time. When one had to be abandoned, the
    process exits with 1 at once (:func:`exit_now`). A second signal exits at once with
    ``128 + signal``. Call it from the main thread (signal handlers live there).
    """
    requested = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if requested.is_set():
            logger.warning("%s again: exiting now", name, extra=SUPERVISOR)
            exit_now(128 + signum)
        logger.info("%s received", name, extra=SUPERVISOR)
        requested.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        outcome = supervisor.run(requested, grace)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if any(o == "abandoned" for o in outcome.values()):
        exit_now(1)
    return 0
