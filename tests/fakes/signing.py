"""Bybit V5 request signing, as ``tests/fixtures/bybit/auth.json`` describes it.

``X-BAPI-SIGN`` = lowercase hex HMAC-SHA256(secret, timestamp + api_key + recv_window +
payload), where the payload is the query string exactly as sent (GET) or the raw JSON body
(POST). The timestamp must satisfy ``server - recv_window <= timestamp < server + 1000``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_RECV_WINDOW = 5000


@dataclass(frozen=True)
class AuthFailure:
    """Why Bybit would refuse a private request: a retCode (HTTP 200), or an HTTP status."""

    code: int
    message: str
    http_status: int = 200


def signature(secret: str, timestamp: str, api_key: str, recv_window: str, payload: str) -> str:
    """The ``X-BAPI-SIGN`` value for one request."""
    text = f"{timestamp}{api_key}{recv_window}{payload}"
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


def signed_payload(method: str, raw_query: str, body: bytes) -> str:
    """What is signed: the raw query string (GET) or the raw body (POST), as received."""
    return raw_query if method == "GET" else body.decode("utf-8", errors="replace")


def check_signature(
    headers: Mapping[str, str],
    payload: str,
    secrets: Mapping[str, str],
    now_ms: int,
) -> AuthFailure | None:
    """``None`` if the ``X-BAPI-*`` headers (lower-case keys) sign ``payload`` correctly.

    ``secrets`` maps API keys to their secrets; ``now_ms`` is the server's clock.
    """
    key = headers.get("x-bapi-api-key")
    sign = headers.get("x-bapi-sign")
    timestamp = headers.get("x-bapi-timestamp")
    if not (key and sign and timestamp):
        return AuthFailure(
            401, "Invalid request: authentication params missing from the header", 401
        )
    secret = secrets.get(key)
    if secret is None:
        return AuthFailure(10003, "API key is invalid.")
    recv_window = headers.get("x-bapi-recv-window", str(DEFAULT_RECV_WINDOW))
    if not (timestamp.isdigit() and recv_window.isdigit()):
        return AuthFailure(10001, "params error: X-BAPI-TIMESTAMP and X-BAPI-RECV-WINDOW")
    if not now_ms - int(recv_window) <= int(timestamp) < now_ms + 1000:
        return AuthFailure(
            10002,
            f"invalid request, please check your server timestamp or recv_window param. "
            f"req_timestamp[{timestamp}],server_timestamp[{now_ms}],recv_window[{recv_window}]",
        )
    expected = signature(secret, timestamp, key, recv_window, payload)
    if not hmac.compare_digest(expected, sign.lower()):
        return AuthFailure(10004, "Error sign, please check your signature generation algorithm.")
    return None
