"""Logging in to the dashboard: exact passwords, throttled guesses, sessions a logout ends.

Panel's basic login is kept (its pages, its signed ``user`` cookie), with four changes:

* **Exact passwords.** The form's password is compared as typed, spaces included (Tornado
  strips arguments by default), in constant time.
* **Throttled guesses.** After :data:`FREE_FAILURES` failed logins from one address, each
  further failure locks that address out for twice as long as the one before (1 s, 2 s,
  4 s ... up to :data:`MAX_LOCKOUT`); a login during the lock-out is refused unchecked
  (HTTP 429). A success clears the count.
* **Sessions.** A login opens a server-side session, named in a signed cookie; every page
  and websocket needs a live one. ``/logout`` ends it, so the cookies it leaves behind (or
  a copy of them) open nothing. Sessions live in memory: a restart logs everyone out.
* **Strict cookies.** Every cookie the login sets is ``HttpOnly`` and ``SameSite=Strict``
  (another site's page cannot send them), and ``Secure`` when the page came over HTTPS
  (directly or through a proxy that says so in ``X-Forwarded-Proto``).
"""

from __future__ import annotations

import hmac
import math
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import tornado.escape
from panel.auth import BasicAuthProvider, BasicLoginHandler
from panel.auth import LogoutHandler as PanelLogoutHandler
from panel.config import config
from tornado.httputil import HTTPServerRequest
from tornado.web import RequestHandler

SESSION_COOKIE = "tradewatch_session"
FREE_FAILURES = 5
"""Failed logins from one address before the lock-outs begin."""
MAX_LOCKOUT = 300.0
"""The longest lock-out, in seconds."""
MAX_TRACKED = 10_000
"""Addresses remembered at most (the least recent are forgotten first)."""

Clock = Callable[[], float]


class LoginThrottle:
    """Failed logins per client address, and until when each address is locked out."""

    def __init__(
        self,
        clock: Clock = time.monotonic,
        free: int = FREE_FAILURES,
        longest: float = MAX_LOCKOUT,
    ) -> None:
        self.clock = clock
        self.free = free
        self.longest = longest
        self._failures: dict[str, int] = {}
        self._locked_until: dict[str, float] = {}

    def wait(self, client: str) -> float:
        """Seconds before ``client`` may try again; 0 when it may now."""
        return max(0.0, self._locked_until.get(client, 0.0) - self.clock())

    def failed(self, client: str) -> None:
        """Count a failed login; past the free ones, lock the address out."""
        failures = self._failures.pop(client, 0) + 1
        self._failures[client] = failures  # (re)inserted last: the most recent
        if failures > self.free:
            lockout = min(2.0 ** (failures - self.free - 1), self.longest)
            self._locked_until[client] = self.clock() + lockout
        while len(self._failures) > MAX_TRACKED:
            oldest = next(iter(self._failures))
            del self._failures[oldest]
            self._locked_until.pop(oldest, None)

    def succeeded(self, client: str) -> None:
        """A good login: start the count again."""
        self._failures.pop(client, None)
        self._locked_until.pop(client, None)


class Sessions:
    """Logged-in sessions by random id: who, and until when."""

    def __init__(self, lifetime: float, clock: Clock = time.time) -> None:
        self.lifetime = lifetime
        self.clock = clock
        self._open: dict[str, tuple[str, float]] = {}

    def open(self, user: str) -> str:
        """Start a session for ``user``; its id."""
        now = self.clock()
        self._open = {k: v for k, v in self._open.items() if v[1] > now}  # forget the expired
        session_id = secrets.token_urlsafe(32)
        self._open[session_id] = (user, now + self.lifetime)
        return session_id

    def user(self, session_id: str | None) -> str | None:
        """Whose live session this is; None when unknown, ended or expired."""
        found = self._open.get(session_id or "")
        if found is None or found[1] <= self.clock():
            return None
        return found[0]

    def end(self, session_id: str | None) -> None:
        """End a session (log out)."""
        self._open.pop(session_id or "", None)


def is_https(request: HTTPServerRequest) -> bool:
    """Whether the browser reached us over HTTPS (directly, or via a proxy that says so)."""
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return request.protocol == "https" or forwarded == "https"


def password_matches(users: Mapping[str, str], user: str, password: str) -> bool:
    """Whether ``password`` is exactly ``user``'s (compared in constant time)."""
    if user not in users:
        return False
    return hmac.compare_digest(password.encode("utf-8"), users[user].encode("utf-8"))


class _StrictCookies(RequestHandler):
    """Every cookie set here is HttpOnly and SameSite=Strict, and Secure over HTTPS."""

    def set_cookie(self, name: str, value: str | bytes, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("httponly", True)
        kwargs.setdefault("samesite", "Strict")
        kwargs.setdefault("secure", is_https(self.request))
        super().set_cookie(name, value, *args, **kwargs)

    def session_id(self) -> str | None:
        """The session this request names, if its cookie is genuine."""
        signed = self.get_secure_cookie(SESSION_COOKIE, max_age_days=config.oauth_expiry)
        return signed.decode("utf-8") if signed else None


class LoginHandler(_StrictCookies, BasicLoginHandler):
    """``/login``: the exact password, throttled per address, opens a session."""

    auth: ClassVar[TradewatchAuth]

    def post(self) -> None:
        """Check the form; log in, or say why not."""
        client = self.request.remote_ip or "unknown"
        wait = self.auth.throttle.wait(client)
        if wait > 0:
            self.set_status(429)
            self.write(
                self._login_template.render(
                    login_endpoint=self._login_endpoint,
                    errormessage=f"Too many failed logins: try again in {math.ceil(wait)} s.",
                )
            )
            return
        user = self.get_argument("username", "", strip=False)
        password = self.get_argument("password", "", strip=False)
        if not password_matches(self.auth.users, user, password):
            self.auth.throttle.failed(client)
            error = tornado.escape.url_escape("Invalid username or password!")
            self.redirect(f"{self.request.path}?error={error}")
            return
        self.auth.throttle.succeeded(client)
        self.set_current_user(user)
        self.redirect(self.auth.next_url(self.get_cookie("next_url")))

    def set_current_user(self, user: str) -> None:
        """Panel's user cookies, and a new session's."""
        super().set_current_user(user)  # type: ignore[no-untyped-call]
        self.set_secure_cookie(
            SESSION_COOKIE,
            self.auth.sessions.open(user),
            expires_days=config.oauth_expiry,
            path=config.cookie_path,
        )


class LogoutHandler(_StrictCookies, PanelLogoutHandler):
    """``/logout``: end the session, then clear the cookies (Panel's page)."""

    auth: ClassVar[TradewatchAuth]

    def get(self) -> None:
        """Log out."""
        self.auth.sessions.end(self.session_id())
        self.clear_cookie(SESSION_COOKIE, path=config.cookie_path)
        super().get()  # type: ignore[no-untyped-call]


class TradewatchAuth(BasicAuthProvider):
    """Panel's basic login with exact passwords, throttling and revocable sessions."""

    def __init__(
        self,
        users: Mapping[str, str],
        *,
        login_template: str,
        logout_template: str,
        throttle: LoginThrottle | None = None,
        sessions: Sessions | None = None,
    ) -> None:
        super().__init__(  # type: ignore[no-untyped-call]
            login_template=login_template, logout_template=logout_template
        )
        self.users = users
        self.throttle = throttle or LoginThrottle()
        self.sessions = sessions or Sessions(lifetime=config.oauth_expiry * 86_400)

    def next_url(self, wanted: str | None) -> str:
        """Where to go after logging in: a path on this server (the page by default)."""
        if not wanted or not wanted.startswith("/") or wanted.startswith("//") or "\\" in wanted:
            return "/"
        return wanted

    @property
    def get_user(self) -> Callable[[RequestHandler], str | None]:  # type: ignore[override]
        """The user of a request with a live session; None sends it to the login page."""
        panel_user = super().get_user

        def get_user(handler: RequestHandler) -> str | None:
            signed = handler.get_secure_cookie(SESSION_COOKIE, max_age_days=config.oauth_expiry)
            session_user = self.sessions.user(signed.decode("utf-8") if signed else None)
            if session_user is None:
                return None
            user: str | None = panel_user(handler)
            return user if user == session_user else None

        return get_user

    @property
    def login_handler(self) -> type[RequestHandler]:
        """Our login page handler, bound to this provider."""
        LoginHandler.auth = self
        LoginHandler._login_endpoint = self._login_endpoint
        LoginHandler._login_template = self._login_template
        return LoginHandler

    @property
    def logout_handler(self) -> type[RequestHandler]:
        """Our logout handler, bound to this provider."""
        LogoutHandler.auth = self
        LogoutHandler._logout_template = self._logout_template
        LogoutHandler._login_endpoint = self._login_endpoint
        return LogoutHandler
