"""The delivery loop every sink shares: a durable JetStream consumer that acknowledges an
alert only after it was delivered, and a record of what was delivered.

* **Consumer.** A durable pull consumer on ``TRADEWATCH_ALERTS`` (created if missing, used
  as it is otherwise), explicit acks, unlimited redeliveries, one alert in flight at a time
  (``max_ack_pending=1``): alerts reach the person in the stream's order, and two
  processes of the same sink never hold the same alert. A consumer created now starts with
  the alerts stored ``backfill`` before now; later starts resume where it stopped.
* **Delivered ids.** A JetStream key-value bucket per sink, ``<consumer>-delivered``: the
  key is the alert id, the value how many of its parts (a long Telegram message is sent in
  several) were delivered. It is written after each part is delivered and before the ack.
  A redelivered alert (a crash after delivery and before the ack, a lost ack, a consumer
  recreated, the relay republishing after a restore) is found there and acknowledged
  without sending it again; an alert cut off mid-way resumes at its next part.
* **Failures.** The sink keeps the alert and retries: after the service's ``retry_after``
  when it gives one (Telegram's 429), else with exponential backoff; meanwhile (and while
  a part is being sent) it tells the server the alert is still being worked on, so it is
  not handed to another process. An alert held by a sink that died is redelivered after
  ``ack_wait`` (10 s). An
  alert the service refuses for good (it can never be delivered as it is) is logged with
  its id, recorded as refused and passed over: it stays in the event store. A payload that
  is not a valid alert is logged and terminated.
* **Limit.** A crash after the service accepted a part and before its record was written
  (one KV round trip, well under a millisecond on a local server) sends that part again
  on restart: delivery is at least once, doubled only in that window.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

import nats
import orjson
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    KeyValueConfig,
    StorageType,
)
from nats.js.errors import BadRequestError, BucketNotFoundError, KeyNotFoundError
from nats.js.kv import KeyValue
from pydantic import ValidationError

from domain.alert import AlertType
from infrastructure.alert_message import AlertMessage, one_line
from infrastructure.nats_relay import (
    NATS_ERRORS,
    STREAM,
    STREAM_SUBJECTS,
    Backoff,
    RelayUnavailableError,
    connect,
    connect_options,
    describe,
    ensure_stream,
    servers_text,
    sleep,
)
from infrastructure.settings import Settings

logger = logging.getLogger("tradewatch.sinks")

_RETRIED: tuple[type[BaseException], ...] = (RelayUnavailableError, *NATS_ERRORS)
DELIVERED_TTL = 90 * 24 * 3600.0
"""Seconds a delivered id is kept: three times the stream's 30-day retention."""


class SinkUnavailableError(Exception):
    """The service cannot take the alert now (down, rate-limited, misconfigured): retry,
    after ``retry_after`` seconds when the service said how long."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class AlertRefusedError(Exception):
    """The service refuses this alert for good (as it is, it can never be delivered)."""


Part = TypeVar("Part")


class Transport(Protocol[Part]):
    """Where a sink delivers: Telegram, SMTP."""

    @property
    def target(self) -> str:
        """Where alerts go, for log lines (never a secret)."""
        ...

    def parts(self, alert: AlertMessage) -> Sequence[Part]:
        """The pieces one alert is delivered as, in order (the same every time)."""
        ...

    async def send(self, part: Part) -> None:
        """Deliver one piece; raise ``SinkUnavailableError`` or ``AlertRefusedError``."""
        ...


@dataclass(frozen=True)
class SinkConfig:
    """How a sink consumes: its durable consumer, the types it delivers, its first start."""

    consumer: str
    types: frozenset[AlertType] = frozenset(AlertType)
    backfill: timedelta = timedelta(hours=1)
    ack_wait: float = 10.0
    """Seconds the server waits for an ack (or a progress report) before redelivering: how
    long an alert held by a sink that died waits before another process gets it."""
    fetch_timeout: float = 1.0

    @property
    def bucket(self) -> str:
        """The key-value bucket of delivered ids."""
        return f"{self.consumer}-delivered"


@dataclass
class SinkStats:
    """What a sink did since it started."""

    delivered: int = 0
    """Alerts delivered whole."""
    duplicates: int = 0
    """Redelivered alerts found delivered already: acknowledged, not sent again."""
    skipped: int = 0
    """Alerts of types not routed to this sink."""
    refused: int = 0
    """Alerts the service refused for good."""
    invalid: int = 0
    """Payloads that are not valid alerts."""
    failures: int = 0
    """Failed attempts (connecting, delivering or recording), each retried."""


@dataclass
class _Progress:
    done: int
    parts: int
    refused: str | None = None
    stored: bool = True
    """Whether the bucket holds this progress (False until a write after delivery lands)."""


@dataclass
class AlertSink(Generic[Part]):
    """A durable consumer that delivers each routed alert through ``transport``.

    ``on_delivered`` is called after an alert is delivered and recorded, before its ack.
    """

    transport: Transport[Part]
    options: Mapping[str, Any]
    config: SinkConfig
    backoff: Backoff = field(default_factory=lambda: Backoff(first=0.5, cap=30.0))
    on_delivered: Callable[[AlertMessage], None] | None = None
    stats: SinkStats = field(default_factory=SinkStats)
    _progress: dict[str, _Progress] = field(default_factory=dict)
    _failing: bool = False

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver alerts until ``stop`` is set; NATS going away is retried, never fatal."""
        while not stop.is_set():
            try:
                await self._session(stop)
            except _RETRIED as e:
                delay = self.backoff.next()
                self._failed(f"NATS at {servers_text(self.options)}: {describe(e)}", delay)
                await sleep(stop, delay)

    def _failed(self, reason: str, delay: float) -> None:
        self.stats.failures += 1
        level = logging.DEBUG if self._failing else logging.WARNING
        logger.log(level, "%s; retrying in %.3g s", reason, delay)
        self._failing = True

    def _recovered(self) -> None:
        if self._failing:
            logger.warning("delivering to %s again", self.transport.target)
        self._failing = False
        self.backoff.reset()

    async def _session(self, stop: asyncio.Event) -> None:
        nc = await connect(self.options, timeout=10.0)
        try:
            js = nc.jetstream(timeout=5.0)
            await ensure_stream(js)
            kv = await self._bucket(js)
            sub = await self._subscribe(js)
            logger.info(
                "consuming %s as %s, delivering to %s",
                STREAM,
                self.config.consumer,
                self.transport.target,
            )
            while not stop.is_set():
                try:
                    batch = await sub.fetch(1, timeout=self.config.fetch_timeout)
                except nats.errors.TimeoutError:
                    continue
                for msg in batch:
                    await self._handle(msg, kv, stop)
        finally:
            with suppress(*NATS_ERRORS):
                await nc.close()

    async def _bucket(self, js: JetStreamContext) -> KeyValue:
        try:
            return await js.key_value(self.config.bucket)
        except BucketNotFoundError:
            pass
        with suppress(BadRequestError):  # another process created it meanwhile
            return await js.create_key_value(
                KeyValueConfig(
                    bucket=self.config.bucket,
                    description=f"alert ids delivered by {self.config.consumer}",
                    history=1,
                    ttl=DELIVERED_TTL,
                    storage=StorageType.FILE,
                )
            )
        return await js.key_value(self.config.bucket)

    async def _subscribe(self, js: JetStreamContext) -> JetStreamContext.PullSubscription:
        config = ConsumerConfig(
            durable_name=self.config.consumer,
            description=f"tradewatch sink to {self.transport.target}",
            deliver_policy=DeliverPolicy.BY_START_TIME,
            opt_start_time=datetime.now(UTC) - self.config.backfill,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.config.ack_wait,
            max_deliver=-1,
            max_ack_pending=1,
        )
        try:
            return await js.pull_subscribe(
                STREAM_SUBJECTS, durable=self.config.consumer, stream=STREAM, config=config
            )
        except BadRequestError:  # another process created it meanwhile
            return await js.pull_subscribe_bind(durable=self.config.consumer, stream=STREAM)

    async def _handle(self, msg: Msg, kv: KeyValue, stop: asyncio.Event) -> None:
        try:
            alert = AlertMessage.decode(msg.data)
        except ValidationError as e:
            self.stats.invalid += 1
            logger.error(
                "message on %s is not a valid alert, passed over: %s", msg.subject, one_line(e)
            )
            await msg.term()
            return
        if alert.type not in self.config.types:
            self.stats.skipped += 1
            await msg.ack_sync()
            return
        keeper = asyncio.create_task(self._keep(msg))
        try:
            await self._deliver_whole(msg, alert, kv, stop)
        finally:
            keeper.cancel()

    async def _deliver_whole(
        self, msg: Msg, alert: AlertMessage, kv: KeyValue, stop: asyncio.Event
    ) -> None:
        parts = self.transport.parts(alert)
        progress = await self._recorded(kv, alert.id, len(parts))
        if progress.done >= progress.parts or progress.refused is not None:
            self.stats.duplicates += 1
            logger.info("alert %s was delivered already: not sent again", alert.id)
            if not progress.stored:
                await self._record(kv, alert.id, progress)
            await msg.ack_sync()
            return
        for index in range(progress.done, len(parts)):
            outcome = await self._deliver(alert, parts[index], stop)
            if outcome is None:  # stopping: let the next start (or another process) have it
                with suppress(*NATS_ERRORS):
                    await msg.nak()
                return
            if outcome:
                progress.refused = outcome
                await self._record(kv, alert.id, progress)
                await msg.ack_sync()
                return
            progress.done = index + 1
            await self._record(kv, alert.id, progress)
        self.stats.delivered += 1
        logger.info(
            "delivered alert %s (%s) to %s",
            alert.id,
            alert.type.value,
            self.transport.target,
            extra={"parts": len(parts)},
        )
        if self.on_delivered is not None:
            self.on_delivered(alert)
        await msg.ack_sync()

    async def _deliver(self, alert: AlertMessage, part: Part, stop: asyncio.Event) -> str | None:
        """Send ``part`` until it is taken (""), refused for good (the reason), or the
        sink is stopping (None)."""
        while not stop.is_set():
            try:
                await self.transport.send(part)
            except AlertRefusedError as e:
                self.stats.refused += 1
                logger.error(
                    "%s refused alert %s for good, passed over (it stays in the event store): %s",
                    self.transport.target,
                    alert.id,
                    e,
                )
                return str(e) or "refused"
            except SinkUnavailableError as e:
                delay = e.retry_after if e.retry_after is not None else self.backoff.next()
                self._failed(
                    f"cannot deliver alert {alert.id} to {self.transport.target}: {e}", delay
                )
                await sleep(stop, delay)
                continue
            self._recovered()
            return ""
        return None

    async def _keep(self, msg: Msg) -> None:
        """Tell the server, every third of ``ack_wait``, that ``msg`` is being worked on
        (while it is sent or waits for a retry), so it is not handed to another process."""
        while True:
            await asyncio.sleep(self.config.ack_wait / 3)
            with suppress(*NATS_ERRORS):
                await msg.in_progress()

    async def _recorded(self, kv: KeyValue, alert_id: str, parts: int) -> _Progress:
        known = self._progress.get(alert_id)
        if known is not None:
            return known
        try:
            entry = await kv.get(_key(alert_id))
        except KeyNotFoundError:
            progress = _Progress(0, parts)
        else:
            value = orjson.loads(entry.value or b"{}")
            progress = _Progress(int(value["done"]), int(value["parts"]), value.get("refused"))
        self._progress[alert_id] = progress
        return progress

    async def _record(self, kv: KeyValue, alert_id: str, progress: _Progress) -> None:
        """Write the progress (kept in memory first: if NATS fails here, the redelivered
        alert is still not sent twice by this process)."""
        progress.stored = False
        self._progress[alert_id] = progress
        value = {
            "done": progress.done,
            "parts": progress.parts,
            "refused": progress.refused,
            "at": datetime.now(UTC).isoformat(),
        }
        await kv.put(_key(alert_id), orjson.dumps(value))
        progress.stored = True
        if len(self._progress) > 10_000:  # only the latest matter: the store has the rest
            for old in list(self._progress)[:5_000]:
                del self._progress[old]


def _key(alert_id: str) -> str:
    """An alert id as a key of the bucket (``:`` is not allowed in keys)."""
    return alert_id.replace(":", ".")


# Building a sink from the settings -------------------------------------------------------


class SinkSettingsError(Exception):
    """A sink cannot run with these settings; the message names what is missing."""


def require(what: str, settings: Settings, names: Mapping[str, object]) -> None:
    """Raise ``SinkSettingsError`` naming every setting in ``names`` that is unset."""
    unset = [name for name, value in names.items() if value in (None, "", ())]
    if not settings.nats_url:
        unset.insert(0, "TRADEWATCH_NATS_URL")
    if unset:
        raise SinkSettingsError(f"the {what} sink needs {', '.join(unset)}")


def build_sink(
    transport: Transport[Part],
    settings: Settings,
    consumer: str,
    types: Sequence[AlertType],
    *,
    on_delivered: Callable[[AlertMessage], None] | None = None,
    ack_wait: float = 10.0,
    backoff: Backoff | None = None,
) -> AlertSink[Part]:
    """A sink delivering ``types`` through ``transport`` as durable consumer ``consumer``."""
    config = SinkConfig(
        consumer=consumer,
        types=frozenset(types),
        backfill=timedelta(minutes=settings.sinks_backfill_minutes),
        ack_wait=ack_wait,
    )
    sink = AlertSink(transport, connect_options(settings), config, on_delivered=on_delivered)
    if backoff is not None:
        sink.backoff = backoff
    return sink
