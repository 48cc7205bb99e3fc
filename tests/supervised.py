"""A small real application under the supervisor, for the shutdown tests to signal.

``python -m tests.supervised DIR [--stubborn] [--grace S] [--log-format json]`` runs:

* ``writer``: SQLite transactions of 10 rows into ``DIR/work.db``; its third batch stops
  half-way until the stop signal comes (``DIR/writer.inflight`` marks the moment), then
  finishes: work in flight is completed whole. It writes ``DIR/writer.stopped`` on return.
* ``ticker``: logs a line every 50 ms; ``DIR/ticker.stopped`` on return.
* ``child``: a child process (``DIR/child.pid``) that writes ``DIR/child.stopped`` on
  SIGTERM.
* ``stubborn`` (``--stubborn``): opens a transaction in ``DIR/stubborn.db``, inserts a row
  (``DIR/stubborn.inside``) and never returns: abandoned at the deadline, its row rolled
  back by the process's exit.
"""

from __future__ import annotations

import argparse
import logging
import sqlite3
import sys
import threading
from pathlib import Path

from infrastructure import logs
from infrastructure.supervisor import Component, StopSignal, Supervisor, process_component, serve

log = logging.getLogger("tradewatch.test")

CHILD = """
import os, signal, sys, time
from pathlib import Path
home = Path(sys.argv[1])
def stop(signum, frame):
    (home / "child.stopped").write_text("sigterm")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
(home / "child.pid.tmp").write_text(str(os.getpid()))
(home / "child.pid.tmp").rename(home / "child.pid")
print("child is up", flush=True)
while True:
    time.sleep(0.05)
"""


def writer(home: Path) -> Component:
    def run(stop: StopSignal) -> None:
        db = sqlite3.connect(home / "work.db", isolation_level=None)
        db.execute("CREATE TABLE IF NOT EXISTS work (batch INTEGER, row INTEGER)")
        batches = 0
        while not stop.is_set():
            batch = batches + 1
            db.execute("BEGIN")
            for row in range(10):
                db.execute("INSERT INTO work VALUES (?, ?)", (batch, row))
                if batch == 3 and row == 4:
                    (home / "writer.inflight").write_text(str(batch))
                    stop.wait()  # the signal comes in the middle of this batch
            db.execute("COMMIT")
            batches = batch
            log.info("batch %d committed", batch)
        db.close()
        (home / "writer.stopped").write_text(str(batches))

    return Component("writer", run)


def ticker(home: Path) -> Component:
    def run(stop: StopSignal) -> None:
        ticks = 0
        while not stop.wait(0.05):
            ticks += 1
            log.info("tick %d", ticks)
        (home / "ticker.stopped").write_text(str(ticks))

    return Component("ticker", run)


def stubborn(home: Path) -> Component:
    def run(stop: StopSignal) -> None:
        db = sqlite3.connect(home / "stubborn.db", isolation_level=None)
        db.execute("CREATE TABLE IF NOT EXISTS work (n INTEGER)")
        db.execute("BEGIN")
        db.execute("INSERT INTO work VALUES (1)")
        (home / "stubborn.inside").write_text("1")
        threading.Event().wait()  # never returns, whatever the stop signal says

    return Component("stubborn", run)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("home", type=Path)
    parser.add_argument("--stubborn", action="store_true")
    parser.add_argument("--grace", type=float, default=10.0)
    parser.add_argument("--log-format", default="json")
    args = parser.parse_args()
    logs.configure(args.log_format, component="up")
    home: Path = args.home
    components = [
        writer(home),
        ticker(home),
        process_component("child", [sys.executable, "-c", CHILD, str(home)]),
    ]
    if args.stubborn:
        components.append(stubborn(home))
    sys.exit(serve(Supervisor(components, grace=args.grace)))


if __name__ == "__main__":
    main()
