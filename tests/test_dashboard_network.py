"""The dashboard on a network: origins, strict cookies, throttled logins, a logout that ends
the session, exact passwords, private files.

Each test that needs a server starts the real ``tradewatch dashboard`` on a free port (its
own: the throttling test locks its client out). HTTP is spoken with urllib and Tornado's
websocket client; the cross-site test drives Debian's Chromium.
"""

from __future__ import annotations

import asyncio
import http.server
import stat
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest
from bokeh.util.token import generate_jwt_token, generate_session_id
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from infrastructure.bootstrap import bootstrap
from infrastructure.settings import Settings
from tests.conftest import CHROMIUM, free_port
from tests.test_dashboard import dashboard, environment, log_in
from ui.dashboard.auth import SESSION_COOKIE, LoginThrottle, Sessions
from ui.dashboard.server import DashboardError, origin_pattern, origins

PASSWORD = "  padded pass  "
"""Spaces at both ends: a password is compared exactly as given."""
AUTH_COOKIES = ("user", "id_token", SESSION_COOKIE)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def request(
    url: str, *, form: dict[str, str] | None = None, cookies: str = "", **headers: str
) -> tuple[int, Any, str]:
    """GET (or POST ``form``) without following redirects: status, headers, body."""
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    sent = urllib.request.Request(url, data=data, headers={"Cookie": cookies, **headers})
    try:
        with OPENER.open(sent, timeout=60) as answer:
            return answer.status, answer.headers, answer.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def log_in_http(url: str, password: str = PASSWORD, **headers: str) -> tuple[int, Any]:
    status, answer, _ = request(
        url + "login", form={"username": "trader", "password": password}, **headers
    )
    return status, answer


def cookie_header(answer: Any) -> str:
    """The cookies a response set, as a request's ``Cookie`` header."""
    jar: SimpleCookie = SimpleCookie()
    for line in answer.get_all("Set-Cookie") or []:
        jar.load(line)
    return "; ".join(f"{k}={m.value}" for k, m in jar.items() if m.value)


def websocket_status(url: str, origin: str, cookies: str) -> int:
    """101 if the dashboard's websocket accepts the handshake, else the HTTP status."""

    async def connect() -> int:
        ws_url = url.replace("http://", "ws://") + "ws"
        headers = {"Origin": origin, "Cookie": cookies}
        try:
            connection = await websocket_connect(HTTPRequest(ws_url, headers=headers))
        except HTTPClientError as e:
            return e.code
        connection.close()
        return 101

    return asyncio.run(connect())


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """An empty SQLite ledger and the password."""
    return environment(
        tmp_path, f"sqlite:///{tmp_path / 'ledger.db'}", TRADEWATCH_DASHBOARD_PASSWORD=PASSWORD
    )


@pytest.fixture
def url(env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    with dashboard(env, tmp_path / "dashboard.log") as served:
        yield served


def test_the_auth_cookies_are_httponly_samesite_strict_and_secure_behind_tls(url: str) -> None:
    status, answer = log_in_http(url)
    assert status == 302
    set_cookies = {line.split("=", 1)[0]: line for line in answer.get_all("Set-Cookie")}
    for name in AUTH_COOKIES:
        assert "HttpOnly" in set_cookies[name] and "SameSite=Strict" in set_cookies[name]
        assert "Secure" not in set_cookies[name]  # plain HTTP: a Secure cookie would be lost
    _, proxied = log_in_http(url, **{"X-Forwarded-Proto": "https"})
    for line in proxied.get_all("Set-Cookie"):
        if line.split("=", 1)[0] in AUTH_COOKIES:
            assert "Secure" in line and "SameSite=Strict" in line


def test_a_password_is_compared_exactly_as_given(url: str) -> None:
    for wrong in (PASSWORD.strip(), PASSWORD + " ", PASSWORD.upper()):
        status, answer = log_in_http(url, wrong)
        assert (status, answer["Location"]) == (302, "/login?error=Invalid+username+or+password%21")
    status, answer = log_in_http(url)
    assert (status, answer["Location"]) == (302, "/")
    assert request(url, cookies=cookie_header(answer))[0] == 200


def test_logout_ends_the_session_its_cookies_open_nothing(url: str) -> None:
    _, answer = log_in_http(url)
    stolen = cookie_header(answer)
    assert request(url, cookies=stolen)[0] == 200
    assert websocket_status(url, url.rstrip("/"), stolen) == 101
    status, _, page = request(url + "logout", cookies=stolen)
    assert status == 200 and "logged out" in page
    status, after, _ = request(url, cookies=stolen)  # the same cookies, kept by someone
    assert (status, after["Location"]) == (302, "./login?next=%2F")
    assert websocket_status(url, url.rstrip("/"), stolen) == 403
    _, again = log_in_http(url)
    assert request(url, cookies=cookie_header(again))[0] == 200


def test_failed_logins_are_throttled(url: str) -> None:
    for _ in range(6):  # five free failures, then a lock-out
        assert log_in_http(url, "guess")[0] == 302
    status, _, page = request(url + "login", form={"username": "trader", "password": PASSWORD})
    assert status == 429  # even the right password waits out the lock-out
    assert "Too many failed logins: try again in" in page


def test_the_websocket_accepts_only_the_bound_origin_and_the_allowed_ones(
    env: dict[str, str], tmp_path: Path
) -> None:
    options = ("--host", "0.0.0.0", "--allow-origin", "https://dash.example.com")
    with dashboard(env, tmp_path / "dashboard.log", *options) as url:
        _, answer = log_in_http(url)
        cookies = cookie_header(answer)
        port = urllib.parse.urlsplit(url).port
        assert websocket_status(url, f"http://127.0.0.1:{port}", cookies) == 101
        assert websocket_status(url, "https://dash.example.com", cookies) == 101
        for elsewhere in ("http://evil.example", f"http://evil.example:{port}", "null"):
            assert websocket_status(url, elsewhere, cookies) == 403, elsewhere


def test_origins_and_allow_origin_values() -> None:
    assert origins("127.0.0.1", 5006) == ["127.0.0.1:5006", "localhost:5006"]
    assert origins("10.1.2.3", 80, ["https://dash.example.com", "proxy:8443"]) == [
        "10.1.2.3:80",
        "dash.example.com",
        "proxy:8443",
    ]
    wildcard = origins("0.0.0.0", 5006)
    assert "127.0.0.1:5006" in wildcard and all(o.endswith(":5006") for o in wildcard)
    assert "*" not in wildcard
    assert origin_pattern("http://Example.org:8080/") == "example.org:8080"
    for bad in ("https://x.example/path", "http://", "host:port", "https://[::1]:5006"):
        with pytest.raises(DashboardError, match="--allow-origin"):
            origin_pattern(bad)


def test_a_bad_allow_origin_is_a_one_line_error(env: dict[str, str]) -> None:
    import subprocess  # noqa: PLC0415

    from tests.conftest import TRADEWATCH  # noqa: PLC0415

    done = subprocess.run(
        [TRADEWATCH, "dashboard", "--port", str(free_port()), "--allow-origin", "ftp://x/y"],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "--allow-origin 'ftp://x/y'" in done.stderr


def test_lockouts_double_up_to_the_longest_and_a_success_clears_them() -> None:
    now = [0.0]
    throttle = LoginThrottle(clock=lambda: now[0], free=2, longest=8.0)
    throttle.failed("a")
    throttle.failed("a")
    assert throttle.wait("a") == 0.0
    lockouts = []
    for _ in range(6):
        throttle.failed("a")
        lockouts.append(throttle.wait("a"))
    assert lockouts == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert throttle.wait("b") == 0.0  # another address is not held up
    now[0] += 3.0
    assert throttle.wait("a") == 5.0
    throttle.succeeded("a")
    assert throttle.wait("a") == 0.0


def test_sessions_end_on_logout_and_expire() -> None:
    now = [1000.0]
    sessions = Sessions(lifetime=60.0, clock=lambda: now[0])
    first, second = sessions.open("ann"), sessions.open("bob")
    assert first != second
    assert (sessions.user(first), sessions.user(second)) == ("ann", "bob")
    sessions.end(first)
    assert sessions.user(first) is None and sessions.user(second) == "bob"
    now[0] += 60.0
    assert sessions.user(second) is None
    assert sessions.user(None) is None and sessions.user("made-up") is None


def test_home_is_made_0700_and_the_sqlite_files_0600(tmp_path: Path) -> None:
    home = tmp_path / "new" / "home"
    tw = bootstrap(Settings(home=home))
    try:
        tw.sync()
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
        files = sorted(home.glob("tradewatch.db*"))
        assert {p.name for p in files} >= {"tradewatch.db", "tradewatch.db.setup-lock"}
        for path in files:  # the journal files (-wal, -shm) too, while they exist
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    finally:
        tw.close()
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    bootstrap(Settings(home=shared)).close()
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755  # a directory the user made: theirs


# A page of another site, in the browser -------------------------------------------------------

CONNECT_JS = """({url, token}) => new Promise(done => {
  const ws = new WebSocket(url, ["bokeh", token]);
  ws.onopen = () => { ws.close(); done("open"); };
  ws.onclose = () => done("closed");
})"""
"""Open the dashboard's websocket with a session token; whether it opened."""


@contextmanager
def another_site() -> Iterator[str]:
    """A page on http://localhost:<port>/ (another site than http://127.0.0.1)."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<!DOCTYPE html><title>elsewhere</title><p>another site</p>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's /usr/bin/chromium")
def test_a_page_of_another_site_cannot_use_the_traders_login(
    browser: Any, env: dict[str, str], tmp_path: Path
) -> None:
    """Logged in at 127.0.0.1, the trader visits another site, whose page opens the websocket
    with a session token it made up. Even with its origin allowed (so only the cookies stand
    in the way), the SameSite=Strict cookies stay home and the websocket is refused."""
    with another_site() as elsewhere:
        allowed = elsewhere.rstrip("/")
        with dashboard(env, tmp_path / "dashboard.log", "--allow-origin", allowed) as url:
            context = browser.new_context()
            context.set_default_timeout(120_000)
            page = context.new_page()
            log_in(page, url, PASSWORD)
            page.wait_for_selector(".tw-banner")
            cookies = {c["name"]: c for c in context.cookies() if c["name"] in AUTH_COOKIES}
            assert set(cookies) == set(AUTH_COOKIES)
            assert all(c["httpOnly"] and c["sameSite"] == "Strict" for c in cookies.values())
            ws = url.replace("http://", "ws://") + "ws"

            def connect() -> str:
                token = generate_jwt_token(generate_session_id())
                result: str = page.evaluate(CONNECT_JS, {"url": ws, "token": token})
                return result

            assert connect() == "open"  # the dashboard's own site: the cookies go along
            page.goto(elsewhere)
            assert connect() == "closed"
            context.close()
