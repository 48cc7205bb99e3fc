"""The NATS relay: recorded alerts published to JetStream (an outbox), a heartbeat, a tail.

* **Outbox.** The relay follows ``Alert.Raised`` events in the log from its own tracking
  position, ``nats-relay``, in the event store, and publishes each alert whose ``publish``
  is true to the stream ``TRADEWATCH_ALERTS``. The position moves only past alerts the
  server has acknowledged: no alert is lost. A crash between an ack and the position write
  publishes the alert again, and the server drops the copy by its ``Nats-Msg-Id`` (the
  alert's event id) within the stream's duplicate window.
* **Order.** Alerts go out in log order, a window at a time without waiting for each ack;
  every message after the first of a window carries ``Nats-Expected-Last-Msg-Id``, so the
  stream refuses one that would overtake a lost predecessor, and the retry restores order.
* **Outage.** While NATS is unreachable alerts wait in the event store; the relay retries
  with exponential backoff (0.1 s doubling to 5 s) and publishes them in order when it can.
* **Heartbeat.** A core-NATS message on ``tradewatch.heartbeat`` every 30 s: a dead-man
  switch for monitors.
"""

from __future__ import annotations

import asyncio
import logging
import math
import signal
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import nats
import orjson
from eventsourcing.persistence import RecordConflictError, Tracking
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy, PubAck, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError
from pydantic import ValidationError

from application.ledger import TradeLedger
from infrastructure.alert_message import MAX_BYTES, SUBJECT_PREFIX, AlertMessage, one_line
from infrastructure.bootstrap import Tradewatch
from infrastructure.settings import Settings
from projections.facts import EventLog, Fact

logger = logging.getLogger("tradewatch.relay")

RELAY_NAME = "nats-relay"
"""The relay's tracking key in the event store."""
STREAM = "TRADEWATCH_ALERTS"
STREAM_SUBJECTS = f"{SUBJECT_PREFIX}.>"
HEARTBEAT_SUBJECT = "tradewatch.heartbeat"
DUPLICATE_WINDOW = 24 * 3600.0
"""Seconds the server remembers a ``Nats-Msg-Id``: a re-publish within it is dropped."""
MAX_AGE = 30 * 24 * 3600.0
"""Seconds an alert stays in the stream (the event store keeps it for ever)."""
ALERT_KIND = "Alert.Raised"
MSG_ID = "Nats-Msg-Id"
EXPECTED_LAST_MSG_ID = "Nats-Expected-Last-Msg-Id"
NATS_ERRORS: tuple[type[BaseException], ...] = (nats.errors.Error, OSError, TimeoutError)
"""What a NATS client call raises when the server is unreachable or refuses."""


class RelayUnavailableError(Exception):
    """NATS cannot be reached, or it refused what the relay asked."""


@dataclass
class Backoff:
    """Exponential backoff: ``first`` seconds, doubling up to ``cap``; reset on success."""

    first: float = 0.1
    cap: float = 5.0
    _next: float = field(default=0.0, init=False)

    def next(self) -> float:
        """The delay before the next attempt."""
        delay = self._next or self.first
        self._next = min(delay * 2, self.cap)
        return delay

    def reset(self) -> None:
        """Start again from ``first``."""
        self._next = 0.0


@dataclass
class RelayStats:
    """What the relay has done since it started."""

    published: int = 0
    """Alerts the server stored."""
    duplicates: int = 0
    """Alerts the server acknowledged as already stored (a re-publish after a crash)."""
    failures: int = 0
    """Failed attempts (connecting or publishing), each followed by a backoff."""


# Connecting ----------------------------------------------------------------------------


def connect_options(settings: Settings, *, reconnect: bool = False) -> dict[str, Any]:
    """``nats.connect`` arguments from the settings: servers, credentials and TLS.

    Without ``reconnect`` a lost connection stays lost (the relay reconnects by itself,
    with its backoff); with it the client reconnects for ever (``alerts tail``).
    """
    if not settings.nats_url:
        raise RelayUnavailableError("TRADEWATCH_NATS_URL is unset")
    options: dict[str, Any] = {
        "servers": [s.strip() for s in settings.nats_url.split(",") if s.strip()],
        "name": "tradewatch",
        "connect_timeout": 2,
        "allow_reconnect": reconnect,
        "max_reconnect_attempts": -1 if reconnect else 1,
        "reconnect_time_wait": 1 if reconnect else 0,
        "error_cb": _on_error,
        "disconnected_cb": _on_disconnect,
    }
    if settings.nats_user is not None:
        options.update(user=settings.nats_user, password=settings.nats_password)
    if settings.nats_token is not None:
        options["token"] = settings.nats_token
    if settings.nats_creds is not None:
        options["user_credentials"] = str(settings.nats_creds)
    if settings.nats_tls_ca is not None or settings.nats_tls_cert is not None:
        context = ssl.create_default_context(
            cafile=str(settings.nats_tls_ca) if settings.nats_tls_ca else None
        )
        if settings.nats_tls_cert is not None:
            key = settings.nats_tls_key
            context.load_cert_chain(str(settings.nats_tls_cert), str(key) if key else None)
        options["tls"] = context
    return options


def servers_text(options: Mapping[str, Any]) -> str:
    """The servers of ``options`` for messages, without credentials."""
    shown = []
    for server in options["servers"]:
        parts = urlsplit(server)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        shown.append(urlunsplit(parts._replace(netloc=netloc)))
    return ", ".join(shown)


def describe(error: BaseException) -> str:
    """An exception as a short phrase."""
    return str(error).strip() or type(error).__name__


async def _on_error(error: Exception) -> None:
    logger.debug("nats client: %s", describe(error))


async def _on_disconnect() -> None:
    logger.debug("nats client: disconnected")


async def connect(options: Mapping[str, Any], timeout: float = 10.0) -> Client:
    """A connected client; ``RelayUnavailableError`` (one line) when that fails."""
    try:
        return await asyncio.wait_for(nats.connect(**options), timeout)
    except TimeoutError:
        reason = f"no connection within {timeout:g} s"
    except NATS_ERRORS as e:
        reason = describe(e)
    raise RelayUnavailableError(f"cannot connect to NATS at {servers_text(options)}: {reason}")


async def ensure_stream(js: JetStreamContext) -> None:
    """Create ``TRADEWATCH_ALERTS`` if it is missing (an existing one is left as it is)."""
    try:
        await js.stream_info(STREAM)
    except NotFoundError:
        await js.add_stream(
            StreamConfig(
                name=STREAM,
                description="tradewatch alerts (published by tradewatch alerts relay)",
                subjects=[STREAM_SUBJECTS],
                retention=RetentionPolicy.LIMITS,
                storage=StorageType.FILE,
                max_age=MAX_AGE,
                max_msg_size=MAX_BYTES + 1024,
                duplicate_window=DUPLICATE_WINDOW,
            )
        )


# The outbox ----------------------------------------------------------------------------


class AlertRelay:
    """Publishes recorded alerts to JetStream in log order, from its own tracking position."""

    def __init__(
        self,
        ledger: TradeLedger,
        log: EventLog,
        options: Mapping[str, Any],
        *,
        window: int = 256,
        page_size: int = 2000,
        ack_timeout: float = 5.0,
        backoff: Backoff | None = None,
        on_ack: Callable[[AlertMessage, PubAck], None] | None = None,
    ) -> None:
        self.ledger = ledger
        self.log = log
        self.options = options
        self.window = window
        self.page_size = page_size
        self.ack_timeout = ack_timeout
        self.backoff = backoff or Backoff()
        self.on_ack = on_ack
        self.stats = RelayStats()
        self.nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._settled = 0

    @property
    def connected(self) -> bool:
        """Whether the relay holds a live connection."""
        return self.nc is not None and self.nc.is_connected

    def position(self) -> int:
        """The id of the last event the relay has settled (published, or nothing to publish)."""
        return self.ledger.tracking.max_tracking_id(RELAY_NAME) or 0

    async def connect(self) -> JetStreamContext:
        """Connect afresh and make sure the stream exists."""
        await self.close()
        nc = await connect(self.options, timeout=self.ack_timeout * 2)
        js = nc.jetstream(timeout=self.ack_timeout)
        try:
            await ensure_stream(js)
        except NATS_ERRORS as e:
            await nc.close()
            raise RelayUnavailableError(
                f"cannot use JetStream at {servers_text(self.options)}: {describe(e)}"
            ) from e
        self.nc, self._js = nc, js
        return js

    async def close(self) -> None:
        """Close the connection, if any."""
        nc, self.nc, self._js = self.nc, None, None
        if nc is not None and not nc.is_closed:
            with suppress(*NATS_ERRORS):
                await nc.close()

    async def drain(self) -> int:
        """Publish every pending alert, in order; returns how many the server acknowledged.

        Raises ``RelayUnavailableError`` when NATS fails; what was acknowledged stays done.
        """
        js = self._js if self._js is not None and self.connected else await self.connect()
        acked = 0
        while True:
            self._settled = await asyncio.to_thread(self.position)
            facts = await asyncio.to_thread(self.log.read, self._settled, self.page_size)
            if not facts:
                return acked
            acked += await self._relay_page(js, facts)

    async def run(self, stop: asyncio.Event, *, poll: float = 0.05) -> None:
        """Publish alerts as they are recorded until ``stop`` is set; never gives up."""
        seen = -1

        async def step() -> None:
            nonlocal seen
            last = await asyncio.to_thread(self.log.last_id)
            if last != seen or not self.connected:
                await self.drain()
                seen = last

        await repeat("publishing alerts", step, stop, poll, self.backoff, self.stats)

    async def _relay_page(self, js: JetStreamContext, facts: Sequence[Fact]) -> int:
        window: list[tuple[int, AlertMessage]] = []  # (position before it, message)
        acked, before = 0, self._settled
        for fact in facts:
            message = self._message(fact)
            if message is not None:
                window.append((before, message))
                if len(window) == self.window:
                    acked += await self._publish(js, window, fact.id)
                    window = []
            before = fact.id
        return acked + await self._publish(js, window, facts[-1].id)

    def _message(self, fact: Fact) -> AlertMessage | None:
        if fact.kind != ALERT_KIND or not fact.state["publish"]:
            return None
        try:
            message = AlertMessage.for_alert(fact)
        except ValidationError as e:
            logger.error(
                "alert %s refused by the schema, not published: %s", fact.event_id, one_line(e)
            )
            return None
        if message.truncated:
            logger.warning("alert %s was cut to fit the message limits (truncated)", fact.event_id)
        return message

    async def _publish(
        self, js: JetStreamContext, window: list[tuple[int, AlertMessage]], end: int
    ) -> int:
        """Publish a window, await its acks in order, and settle up to the last acked."""
        futures: list[asyncio.Future[PubAck]] = []
        error: BaseException | None = None
        previous: str | None = None
        try:
            for _, message in window:
                headers = {MSG_ID: message.id}
                if previous is not None:
                    headers[EXPECTED_LAST_MSG_ID] = previous
                futures.append(
                    await js.publish_async(message.subject, message.encode(), headers=headers)
                )
                previous = message.id
        except NATS_ERRORS as e:
            error = e
        if futures:
            await asyncio.wait(
                futures, timeout=self.ack_timeout, return_when=asyncio.FIRST_EXCEPTION
            )
        acked = 0
        for future, (_, message) in zip(futures, window, strict=False):
            if not future.done():
                error = TimeoutError(f"no ack within {self.ack_timeout:g} s")
                break
            if (failed := future.exception()) is not None:
                error = failed
                break
            ack = future.result()
            if ack.duplicate:
                self.stats.duplicates += 1
            else:
                self.stats.published += 1
            if self.on_ack is not None:
                self.on_ack(message, ack)
            acked += 1
        for future in futures[acked:]:
            future.cancel()
        await self._settle(end if acked == len(window) and error is None else window[acked][0])
        if error is not None:
            raise RelayUnavailableError(
                f"publishing to {servers_text(self.options)} failed: {describe(error)}"
            ) from error
        return acked

    async def _settle(self, position: int) -> None:
        if position <= self._settled:
            return
        with suppress(RecordConflictError):  # another relay settled as far, or further
            await asyncio.to_thread(
                self.ledger.tracking.insert_tracking, Tracking(RELAY_NAME, position)
            )
        self._settled = position


async def publish_pending(relay: AlertRelay) -> int:
    """Publish what is pending, then close (``tradewatch alerts relay --once``)."""
    try:
        return await relay.drain()
    finally:
        await relay.close()


# Running -------------------------------------------------------------------------------


async def repeat(
    what: str,
    step: Callable[[], Awaitable[None]],
    stop: asyncio.Event,
    pause: float,
    backoff: Backoff,
    stats: RelayStats | None = None,
) -> None:
    """Run ``step`` every ``pause`` seconds until ``stop``; a failure is logged on one line
    and retried after a backoff, so a daemon outlives NATS or database outages."""
    failing = False
    while not stop.is_set():
        try:
            await step()
        except Exception as e:  # a daemon loop: log, back off, try again
            delay = backoff.next()
            if stats is not None:
                stats.failures += 1
            level = logging.DEBUG if failing else logging.WARNING
            logger.log(level, "%s failed: %s; retrying with backoff", what, describe(e))
            failing = True
            await sleep(stop, delay)
            continue
        if failing:
            logger.warning("%s: recovered", what)
            failing = False
        backoff.reset()
        await sleep(stop, pause)


async def sleep(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less if ``stop`` is set meanwhile."""
    with suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


class Heartbeat:
    """Publishes the relay's vital signs on ``tradewatch.heartbeat`` every ``interval``."""

    def __init__(self, tw: Tradewatch, relay: AlertRelay, interval: float = 30.0) -> None:
        self.tw = tw
        self.relay = relay
        self.interval = interval
        self.started = time.monotonic()

    def payload(self) -> dict[str, Any]:
        """The heartbeat's fields (reads the event store and the read models)."""
        last = self.tw.engine.log.last_id()
        return {
            "schema_version": 1,
            "service": "tradewatch-relay",
            "version": version("tradewatch"),
            "time": datetime.now(UTC).isoformat(),
            "uptime_seconds": round(time.monotonic() - self.started, 3),
            "interval_seconds": self.interval,
            "last_event_id": last,
            "lag": {
                "projections": self.tw.engine.lag(),
                "controller": last - self.tw.controller.position(),
                "alerts": last - self.tw.alerts.position(),
                "relay": last - self.relay.position(),
            },
            "relay": asdict(self.relay.stats),
        }

    async def beat(self) -> bool:
        """Publish one heartbeat (core NATS: it is not kept); False while not connected."""
        nc = self.relay.nc
        if nc is None or not nc.is_connected:
            return False
        body = await asyncio.to_thread(self.payload)
        await nc.publish(HEARTBEAT_SUBJECT, orjson.dumps(body))
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Beat every ``interval`` until ``stop``; while NATS is down, as soon as it is back."""
        while not stop.is_set():
            sent = False
            try:
                sent = await self.beat()
            except Exception as e:  # a daemon loop: log and carry on
                logger.warning("heartbeat failed: %s", describe(e))
            await sleep(stop, self.interval if sent else 0.1)


async def serve(
    tw: Tradewatch,
    relay: AlertRelay,
    stop: asyncio.Event,
    *,
    heartbeat_interval: float = 30.0,
    sync_interval: float = 1.0,
    poll: float = 0.05,
) -> None:
    """Keep the ledger in sync, publish alerts and beat the heartbeat until ``stop`` is set.

    ``tw.sync()`` (projections, controller, alert policy) runs in a worker thread whenever
    the log moves and at least every ``sync_interval`` seconds, for the scheduled reports.
    """
    seen, synced_at = -1, -math.inf

    async def sync() -> None:
        nonlocal seen, synced_at
        last = await asyncio.to_thread(tw.engine.log.last_id)
        if last != seen or time.monotonic() - synced_at >= sync_interval:
            seen, synced_at = last, time.monotonic()
            await asyncio.to_thread(tw.sync)

    try:
        await asyncio.gather(
            repeat("sync", sync, stop, poll, Backoff()),
            relay.run(stop, poll=poll),
            Heartbeat(tw, relay, heartbeat_interval).run(stop),
        )
    finally:
        await relay.close()


def run_until_signalled(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``main(stop)`` in a new event loop; Ctrl-C (SIGINT) or SIGTERM sets ``stop``."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await main(stop)

    asyncio.run(runner())


async def until(stop: asyncio.Event, work: Awaitable[None]) -> None:
    """Run ``work`` until it ends or ``stop`` is set (then cancel it); its errors propagate."""
    working = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({working, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    working.cancel()
    with suppress(asyncio.CancelledError):
        await working


# Tailing -------------------------------------------------------------------------------


async def tail(
    options: Mapping[str, Any], subject: str, ready: Callable[[], None]
) -> AsyncIterator[tuple[bytes, AlertMessage | str]]:
    """Alerts stored from now on under ``subject``: ``(payload, message)``, or
    ``(payload, one-line error)`` for a payload that is not a valid alert."""
    nc = await connect(options, timeout=5.0)
    try:
        js = nc.jetstream()
        await ensure_stream(js)
        sub = await js.subscribe(
            subject, stream=STREAM, ordered_consumer=True, deliver_policy=DeliverPolicy.NEW
        )
        ready()
        async for msg in sub.messages:
            try:
                yield msg.data, AlertMessage.decode(msg.data)
            except ValidationError as e:
                yield msg.data, f"message on {msg.subject} is not a valid alert: {one_line(e)}"
    finally:
        with suppress(*NATS_ERRORS):
            await nc.close()
