"""A fake Telegram Bot API for tests: 127.0.0.1, a free port, ``sendMessage`` as documented.

``POST /bot<token>/sendMessage`` with a JSON (or form) body answers as the Bot API does:

- ``{"ok": true, "result": {...}}`` for a message to a known chat;
- 401 ``Unauthorized`` for another token; 400 ``Bad Request: chat not found`` for another
  chat; 400 ``Bad Request: message text is empty``;
- with ``parse_mode=HTML``, the text is parsed strictly, as Telegram does: only the tags
  Telegram supports, balanced, and every ``<``, ``>`` and ``&`` that is not part of a tag
  or an entity (``&lt;``, ``&gt;``, ``&amp;``, ``&quot;``, ``&#NN;``) is an error: 400
  ``Bad Request: can't parse entities: ...``;
- 400 ``Bad Request: message is too long`` when the text, after entity parsing, is over
  4,096 UTF-16 code units.

Faults are scripted: ``fail(status, times=N, retry_after=S, after_delivered=K)`` answers
the next N requests (once K messages were accepted) with that error (a 429 carries
``parameters.retry_after``); ``down()`` answers 500 until ``up()``. Every request is kept
in ``requests``; every accepted message in ``delivered``.
"""

from __future__ import annotations

import html
import json
import re
import threading
from contextlib import suppress
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

from tests.conftest import free_port

TOKEN = "123456:TEST-token_for-the-fake"
CHAT = "-1001234567890"
LIMIT = 4096
TAGS = {
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler",
    "a", "code", "pre", "blockquote", "tg-emoji",
}  # fmt: skip
_TOKEN = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[^<>]*)?)>|&(#\d+|#x[0-9a-fA-F]+|\w+);")
_ENTITIES = {"lt", "gt", "amp", "quot"}


class EntityError(ValueError):
    """The text is not valid Telegram HTML (the reason as Telegram words it)."""


def parse_html(text: str) -> str:
    """The visible text of Telegram HTML, or ``EntityError`` for what Telegram refuses."""
    visible: list[str] = []
    open_tags: list[str] = []
    at = 0
    for found in _TOKEN.finditer(text):
        _plain(text[at : found.start()], at)
        visible.append(text[at : found.start()])
        at = found.end()
        closing, tag, _, entity = found.groups()
        if entity is not None:
            if entity.startswith("#") or entity in _ENTITIES:
                visible.append(html.unescape(found.group(0)))
                continue
            raise EntityError(f"Unsupported entity {entity!r} at byte offset {found.start()}")
        if tag.lower() not in TAGS:
            raise EntityError(f'Unsupported start tag "{tag}" at byte offset {found.start()}')
        if closing:
            if not open_tags or open_tags[-1] != tag.lower():
                raise EntityError(f"Unexpected end tag at byte offset {found.start()}")
            open_tags.pop()
        else:
            open_tags.append(tag.lower())
    _plain(text[at:], at)
    visible.append(text[at:])
    if open_tags:
        raise EntityError(f'Can\'t find end tag corresponding to start tag "{open_tags[-1]}"')
    return "".join(visible)


def _plain(chunk: str, offset: int) -> None:
    for char in "<>&":
        index = chunk.find(char)
        if index >= 0:
            raise EntityError(f"Unescaped {char!r} at byte offset {offset + index}")


def units(text: str) -> int:
    """UTF-16 code units, as Telegram counts a message's length."""
    return len(text.encode("utf-16-le")) // 2


@dataclass(frozen=True)
class Sent:
    """One accepted message."""

    chat_id: str
    text: str
    parse_mode: str | None
    visible: str


@dataclass
class _Fault:
    status: int
    description: str
    remaining: int | None
    retry_after: int | None = None
    after_delivered: int = 0


class FakeTelegram:
    """The fake Bot API. ``with FakeTelegram() as fake:`` starts it on a free port."""

    def __init__(self, token: str = TOKEN, chats: tuple[str, ...] = (CHAT,)) -> None:
        self.token = token
        self.chats = set(chats)
        self.requests: list[dict[str, Any]] = []
        self.delivered: list[Sent] = []
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._next_id = 1

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (the value for ``TRADEWATCH_TELEGRAM_API_URL``)."""
        if self._server is None:
            raise RuntimeError("the fake Telegram server is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def fail(
        self, status: int, *, times: int | None = 1, retry_after: int | None = None,
        description: str | None = None, after_delivered: int = 0,
    ) -> None:  # fmt: skip
        """Answer the next ``times`` requests (``None``: all, until ``up()``) with ``status``,
        once ``after_delivered`` messages were accepted."""
        text = description or {429: "Too Many Requests", 500: "Internal Server Error"}.get(
            status, f"Error {status}"
        )
        if status == 429 and retry_after is not None:
            text = f"Too Many Requests: retry after {retry_after}"
        with self._lock:
            self._faults.append(_Fault(status, text, times, retry_after, after_delivered))

    def down(self) -> None:
        """Answer 500 to everything until :meth:`up`."""
        self.fail(500, times=None)

    def up(self) -> None:
        """Drop every scripted fault."""
        with self._lock:
            self._faults.clear()

    def texts(self) -> list[str]:
        """The visible text of every accepted message, in order."""
        with self._lock:
            return [m.visible for m in self.delivered]

    def attempts(self) -> int:
        """How many sendMessage requests arrived (accepted or not)."""
        with self._lock:
            return len(self.requests)

    def answer(self, path: str, fields: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """The Bot API's answer to one request."""
        with self._lock:
            self.requests.append({"path": path, **fields})
            accepted = len(self.delivered)
            fault = next(
                (f for f in self._faults if f.remaining != 0 and accepted >= f.after_delivered),
                None,
            )
            if fault is not None:
                if fault.remaining is not None:
                    fault.remaining -= 1
                return fault.status, _error(fault.status, fault.description, fault.retry_after)
        if path != f"/bot{self.token}/sendMessage":
            if path.startswith("/bot") and path.endswith("/sendMessage"):
                return 401, _error(401, "Unauthorized")
            return 404, _error(404, "Not Found")
        chat = str(fields.get("chat_id", ""))
        if chat not in self.chats:
            return 400, _error(400, "Bad Request: chat not found")
        text = str(fields.get("text") or "")
        mode = fields.get("parse_mode")
        try:
            visible = parse_html(text) if mode == "HTML" else text
        except EntityError as e:
            return 400, _error(400, f"Bad Request: can't parse entities: {e}")
        if not visible.strip():
            return 400, _error(400, "Bad Request: message text is empty")
        if units(visible) > LIMIT:
            return 400, _error(400, "Bad Request: message is too long")
        with self._lock:
            self.delivered.append(Sent(chat, text, mode, visible))
            message_id, self._next_id = self._next_id, self._next_id + 1
        return 200, {"ok": True, "result": {"message_id": message_id, "text": visible}}

    def start(self) -> FakeTelegram:
        """Listen on 127.0.0.1 on a free port, serving from a background thread."""
        fake = self

        class _Bound(_Handler):
            server_fake = fake

        server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Bound)
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        threading.Thread(
            target=server.serve_forever, args=(0.05,), name="fake-telegram", daemon=True
        ).start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FakeTelegram:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _error(status: int, description: str, retry_after: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return body


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_fake: FakeTelegram

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        kind = self.headers.get("Content-Type", "")
        try:
            if kind.startswith("application/json"):
                fields = json.loads(body or b"{}")
            else:
                fields = dict(parse_qsl(body.decode(), keep_blank_values=True))
            status, answer = self.server_fake.answer(self.path, fields)
        except Exception as e:  # a broken request must show in the test, not hang it
            status, answer = 500, _error(500, f"fake Telegram failed: {e!r}")
        payload = json.dumps(answer).encode()
        with suppress(BrokenPipeError, ConnectionResetError):
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the fake's log is ``FakeTelegram.requests``."""
