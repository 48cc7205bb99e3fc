"""Helpers of the alert-sink tests: alerts published straight into a test's own stream, a
sink running in a thread, and the consumer's state as the server sees it."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js.errors import NotFoundError

from infrastructure.alert_message import AlertMessage
from infrastructure.nats_relay import MSG_ID, STREAM, ensure_stream
from infrastructure.sinks.consumer import AlertSink
from infrastructure.supervisor import run_async
from tests.nats_support import WAIT, NatsServer

SEVERITY = {
    "signal": "info",
    "warning": "warning",
    "critical": "critical",
    "daily_status": "info",
    "weekly_report": "info",
    "predictive_warning": "warning",
}
AT = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A nats-server with JetStream of the test's own."""
    server = NatsServer(tmp_path / "nats")
    server.start()
    yield server
    server.kill()


def make_alert(type_: str = "signal", title: str = "alert", **fields: Any) -> AlertMessage:
    """A valid alert of ``type_``; its data empty unless given, so it is shown by its title
    (the head) and text."""
    values: dict[str, Any] = {
        "id": f"{uuid.uuid4()}:1",
        "type": type_,
        "severity": SEVERITY[type_],
        "time": AT,
        "title": title,
        "text": "",
        "data": {},
        "correlation_id": "c1",
        "causes": ["e1"],
    }
    values.update(fields)
    return AlertMessage.model_validate(values)


def publish(url: str, *alerts: AlertMessage, msg_id: str | None = None) -> None:
    """Store ``alerts`` in the stream as the relay does (``Nats-Msg-Id`` = the alert id)."""

    async def main() -> None:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            await ensure_stream(js)
            for alert in alerts:
                headers = {MSG_ID: msg_id or alert.id}
                await js.publish(alert.subject, alert.encode(), headers=headers)
        finally:
            await nc.close()

    asyncio.run(main())


def publish_raw(url: str, subject: str, payload: bytes) -> None:
    """Store any payload on ``subject`` (a message that is not a valid alert)."""

    async def main() -> None:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            await ensure_stream(js)
            await js.publish(subject, payload)
        finally:
            await nc.close()

    asyncio.run(main())


def consumer_state(url: str, durable: str) -> tuple[int, int] | None:
    """(alerts not yet delivered, alerts delivered and not acknowledged) of ``durable``;
    None while it does not exist."""

    async def main() -> tuple[int, int] | None:
        nc = await nats.connect(url)
        try:
            info = await nc.jetstream().consumer_info(STREAM, durable)
        except NotFoundError:
            return None
        finally:
            await nc.close()
        return info.num_pending or 0, info.num_ack_pending or 0

    return asyncio.run(main())


class Running:
    """A sink running in a thread of its own, as the supervisor runs it."""

    def __init__(self, sink: AlertSink[Any]) -> None:
        self.sink = sink
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            run_async(self.sink.run, self._stop)
        except BaseException as e:
            self.error = e

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(WAIT)
        assert not self._thread.is_alive()
        if self.error is not None:
            raise self.error

    def __enter__(self) -> Running:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
