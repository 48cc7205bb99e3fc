"""The Telegram sink: alerts from JetStream to a chat, through the Bot API's ``sendMessage``.

Messages are HTML (``parse_mode=HTML``): every text from an alert is escaped, and a long
alert is split into parts of at most 4,096 characters (:mod:`.messages`). Telegram's
answers decide what happens next:

* 200 ``ok``: delivered.
* 429: wait the ``retry_after`` seconds it gives, then send again.
* 400 "can't parse entities": sent again as plain text (no parse mode), so a formatting
  slip never blocks an alert.
* 400 "chat not found", 401 (the token), 403 (the bot is not in the chat), 5xx, no
  answer: retried with backoff until it works (a misconfiguration loses nothing: fix the
  setting and the backlog goes out in order).
* Any other 400: the alert is refused for good, logged with its id, passed over.

Settings: ``TRADEWATCH_TELEGRAM_BOT_TOKEN``, ``TRADEWATCH_TELEGRAM_CHAT_ID``,
``TRADEWATCH_TELEGRAM_API_URL`` (default ``https://api.telegram.org``),
``TRADEWATCH_TELEGRAM_TYPES`` (default all) and ``TRADEWATCH_TELEGRAM_CONSUMER``.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from domain.days import zone_named
from infrastructure.alert_message import AlertMessage
from infrastructure.nats_relay import Backoff
from infrastructure.settings import Settings
from infrastructure.sinks import messages
from infrastructure.sinks.consumer import (
    AlertRefusedError,
    AlertSink,
    SinkUnavailableError,
    build_sink,
    require,
)
from infrastructure.supervisor import run_async

API_TIMEOUT = 5.0
"""Seconds to wait for the Bot API's answer (short: a shutdown waits for it)."""
_TAG = re.compile(r"<[^>]*>")


@dataclass(frozen=True)
class TelegramTransport:
    """Sends HTML messages to one chat."""

    token: str
    chat_id: str
    api_url: str
    zone: tzinfo
    timeout: float = API_TIMEOUT

    @property
    def target(self) -> str:
        """The chat, for log lines."""
        return f"Telegram chat {self.chat_id}"

    def parts(self, alert: AlertMessage) -> Sequence[str]:
        """The alert in its format, as HTML messages within Telegram's limit."""
        return messages.telegram_parts(messages.layout(alert, self.zone))

    async def send(self, part: str) -> None:
        """Send one message (in a worker thread: the event loop keeps running)."""
        await asyncio.to_thread(self._send, part)

    def _send(self, text: str) -> None:
        status, answer = self._post(text, html_mode=True)
        if status == 400 and "can't parse entities" in _description(answer).lower():
            plain = html.unescape(_TAG.sub("", text))
            status, answer = self._post(plain, html_mode=False)
        self._check(status, answer)

    def _post(self, text: str, *, html_mode: bool) -> tuple[int, dict[str, Any]]:
        fields: dict[str, Any] = {
            "chat_id": self.chat_id,
            "text": text,
            "disable_web_page_preview": True,
        }
        if html_mode:
            fields["parse_mode"] = "HTML"
        request = urllib.request.Request(
            f"{self.api_url}/bot{self.token}/sendMessage",
            data=json.dumps(fields).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return int(response.status), _json(response.read())
        except urllib.error.HTTPError as e:
            return int(e.code), _json(e.read())
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            reason = getattr(e, "reason", None) or e
            raise SinkUnavailableError(
                f"cannot reach the Telegram Bot API at {self.api_url}: {self._clean(reason)}"
            ) from None

    def _check(self, status: int, answer: dict[str, Any]) -> None:
        if status == 200 and answer.get("ok") is True:
            return
        what = self._clean(_description(answer) or f"HTTP {status}")
        if status == 429:
            retry_after = (answer.get("parameters") or {}).get("retry_after")
            wait = float(retry_after) if isinstance(retry_after, int | float) else None
            raise SinkUnavailableError(f"rate limited by Telegram ({what})", retry_after=wait)
        if status == 401:
            raise SinkUnavailableError(
                f"Telegram refused the bot token ({what}): check TRADEWATCH_TELEGRAM_BOT_TOKEN"
            )
        if status in (403, 404) or (status == 400 and "chat not found" in what.lower()):
            raise SinkUnavailableError(
                f"the bot cannot write to chat {self.chat_id} ({what}): check "
                "TRADEWATCH_TELEGRAM_CHAT_ID and that the bot is a member of the chat"
            )
        if status == 400:
            raise AlertRefusedError(f"Telegram refused the message: {what}")
        raise SinkUnavailableError(f"Telegram answered HTTP {status}: {what}")

    def _clean(self, text: object) -> str:
        """A one-line reason without the token (it is part of every request URL)."""
        return " ".join(str(text).replace(self.token, "<token>").split())


def _json(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _description(answer: dict[str, Any]) -> str:
    return str(answer.get("description") or "")


def transport(settings: Settings) -> TelegramTransport:
    """The Telegram transport of the settings (``SinkSettingsError`` naming what is unset)."""
    token = settings.telegram_bot_token
    require(
        "Telegram",
        settings,
        {
            "TRADEWATCH_TELEGRAM_BOT_TOKEN": token,
            "TRADEWATCH_TELEGRAM_CHAT_ID": settings.telegram_chat_id,
        },
    )
    assert token is not None and settings.telegram_chat_id is not None
    return TelegramTransport(
        token=token.get_secret_value(),
        chat_id=settings.telegram_chat_id,
        api_url=settings.telegram_api_url,
        zone=zone_named(settings.timezone),
    )


def sink(
    settings: Settings,
    *,
    on_delivered: Callable[[AlertMessage], None] | None = None,
    ack_wait: float = 10.0,
    backoff: Backoff | None = None,
) -> AlertSink[str]:
    """The Telegram sink of the settings."""
    return build_sink(
        transport(settings),
        settings,
        settings.telegram_consumer,
        settings.telegram_types,
        on_delivered=on_delivered,
        ack_wait=ack_wait,
        backoff=backoff,
    )


async def serve(settings: Settings, stop: asyncio.Event, **options: Any) -> None:
    """Deliver alerts to Telegram until ``stop`` is set (options: see :func:`sink`)."""
    await sink(settings, **options).run(stop)


def run(settings: Settings, stop: threading.Event, **options: Any) -> None:
    """Deliver alerts to Telegram until ``stop`` is set: ``tradewatch run telegram``,
    ``tradewatch alerts telegram`` and the supervisor call this."""
    built = sink(settings, **options)
    run_async(built.run, stop)
