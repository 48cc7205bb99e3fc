"""A sink in a process of its own, for the tests that kill it.

``python -m tests.sink_process telegram|email [--die-after N] [--ack-wait S]`` runs the
sink with the settings of the environment (``TRADEWATCH_*``). With ``--die-after N`` it
kills itself (SIGKILL) right after the N-th alert was delivered and recorded, before that
alert is acknowledged.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading

from infrastructure.alert_message import AlertMessage
from infrastructure.nats_relay import Backoff
from infrastructure.settings import Settings
from infrastructure.sinks import email, telegram


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("sink", choices=["telegram", "email"])
    parser.add_argument("--die-after", type=int, default=0)
    parser.add_argument("--ack-wait", type=float, default=10.0)
    args = parser.parse_args()
    delivered = 0

    def on_delivered(alert: AlertMessage) -> None:
        nonlocal delivered
        delivered += 1
        print(f"delivered {alert.id}", flush=True)
        if delivered == args.die_after:
            os.kill(os.getpid(), signal.SIGKILL)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    module = telegram if args.sink == "telegram" else email
    module.run(
        Settings(),
        stop,
        on_delivered=on_delivered,
        ack_wait=args.ack_wait,
        backoff=Backoff(first=0.05, cap=0.2),
    )


if __name__ == "__main__":
    main()
