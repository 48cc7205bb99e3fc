"""Serving the dashboard: who may see it, the cookie secret, and resources served locally.

* **Who.** ``TRADEWATCH_DASHBOARD_USERS`` names a JSON file ``{"user": "password"}``; else
  ``TRADEWATCH_DASHBOARD_PASSWORD`` is one password for any user name. Passwords are
  compared exactly as given. Without either the dashboard is open to anyone who can reach
  it, so it refuses to listen on anything but a loopback address.
* **Cookies** are signed with a secret made once (``secrets.token_urlsafe``) and kept in
  ``$TRADEWATCH_HOME/cookie_secret``, readable by its owner only. Logging in, throttling
  and sessions: :mod:`ui.dashboard.auth`.
* **Origins.** The websocket that carries the page's data accepts only pages from the bound
  host and port (for ``0.0.0.0``, this machine's names and addresses) and the origins
  given with ``--allow-origin`` (a reverse proxy's public name, say).
* **Offline.** Bokeh, Panel and the Bootstrap template are served by this server (no CDN);
  the login and logout pages are tradewatch's own, with nothing to fetch.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import signal
import socket
import stat
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import panel as pn

from infrastructure.bootstrap import Tradewatch
from infrastructure.settings import private_dir
from ui.dashboard.auth import TradewatchAuth
from ui.dashboard.data import Hub
from ui.dashboard.view import CSS, STATIC_ROUTE, TABLE_CSS, Dashboard

PASSWORD_ENV = "TRADEWATCH_DASHBOARD_PASSWORD"
USERS_ENV = "TRADEWATCH_DASHBOARD_USERS"
COOKIE_SECRET_FILE = "cookie_secret"
WILDCARD_HOSTS = ("0.0.0.0", "::", "")


class DashboardError(Exception):
    """A reason the dashboard cannot start, in one line."""


class AnyUser(dict[str, str]):
    """One password for whatever user name is typed, as Panel's basic auth mapping.

    Panel would read a *string* password as the path of a users file when a file of that
    name happens to exist; a mapping is always taken as credentials.
    """

    def __init__(self, password: str) -> None:
        super().__init__(trader=password)
        self.password = password

    def __contains__(self, user: object) -> bool:
        return True

    def __getitem__(self, user: str) -> str:
        return self.password


def credentials(environ: Mapping[str, str]) -> dict[str, str] | None:
    """Who may log in, from the environment; ``None`` when no password is set."""
    path = environ.get(USERS_ENV)
    if path:
        try:
            users = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as e:
            raise DashboardError(f"cannot read {USERS_ENV} file {path}: {e.strerror}") from e
        except ValueError as e:
            raise DashboardError(f"{USERS_ENV} file {path} is not JSON: {e}") from e
        if (
            not isinstance(users, dict)
            or not users
            or not all(isinstance(k, str) and k for k in users)
            or not all(isinstance(v, str) and v for v in users.values())
        ):
            raise DashboardError(
                f'{USERS_ENV} file {path} must be a JSON object {{"user": "password"}} '
                "with non-empty names and passwords"
            )
        return users
    password = environ.get(PASSWORD_ENV)
    return AnyUser(password) if password else None


def is_loopback(host: str) -> bool:
    """Whether ``host`` is only reachable from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def access(host: str, environ: Mapping[str, str] = os.environ) -> dict[str, str] | None:
    """The credentials to serve ``host`` with; refuses a non-loopback host without any."""
    users = credentials(environ)
    if users is None and not is_loopback(host):
        raise DashboardError(
            f"refusing to serve the dashboard on {host} without a password: set "
            f"{PASSWORD_ENV} (or {USERS_ENV}), or use --host 127.0.0.1"
        )
    return users


def cookie_secret(home: Path) -> str:
    """The secret that signs login cookies: made once, kept in ``home`` with mode 0600."""
    path = private_dir(home) / COOKIE_SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if stat.S_IMODE(path.stat().st_mode) != 0o600:
            path.chmod(0o600)
        secret = path.read_text(encoding="utf-8").strip()
        if not secret:
            raise DashboardError(f"{path} is empty; delete it to make a new secret") from None
        return secret
    secret = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(secret + "\n")
    return secret


def origins(host: str, port: int, extra: Sequence[str] = ()) -> list[str]:
    """The page origins (``host:port``, as Bokeh's allowlist has them) whose websockets are
    accepted: the bound host and port (for a wildcard address, this machine's names and
    addresses), and the ``--allow-origin`` ones."""
    if host in WILDCARD_HOSTS:
        names = machine_names()
    elif is_loopback(host):
        names = {host, "localhost", "127.0.0.1"}
    else:
        names = {host}
    bound = {f"{n}:{port}" for n in names if ":" not in n}  # no IPv6 literal in Bokeh's list
    return sorted(bound | {origin_pattern(o) for o in extra})


def machine_names() -> set[str]:
    """The names and IPv4 addresses this machine is reached by."""
    name = socket.gethostname()
    names = {name, socket.getfqdn(), "localhost", "127.0.0.1"}
    try:
        infos = socket.getaddrinfo(name, None, socket.AF_INET)
    except OSError:
        infos = []
    return names | {str(info[4][0]) for info in infos}


def origin_pattern(text: str) -> str:
    """An ``--allow-origin`` value (``https://dash.example.com``, ``host:5006``) as Bokeh's
    allowlist wants it: ``host:port``, or ``host`` for the scheme's default port."""
    if text == "*":
        return text
    parts = urlsplit(text if "//" in text else f"//{text}")
    problem = f"--allow-origin {text!r} is not an origin such as https://dash.example.com"
    try:
        port = parts.port
    except ValueError:
        raise DashboardError(f"{problem} (bad port)") from None
    host = parts.hostname
    if not host or ":" in host or parts.path not in ("", "/") or parts.query or parts.username:
        raise DashboardError(problem)
    return host if port is None else f"{host}:{port}"


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>tradewatch — {title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ margin: 0; min-height: 100vh; display: grid; place-items: center; background: #111827;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }}
.box {{ background: #fff; border-radius: 14px; padding: 28px 32px; width: 300px;
  box-shadow: 0 10px 30px rgba(0,0,0,.35); }}
h1 {{ font-size: 1.3rem; margin: 0 0 4px; }} p {{ color: #6b7280; margin: 0 0 16px; }}
input {{ width: 100%; box-sizing: border-box; padding: 9px 10px; margin-bottom: 10px;
  border: 1px solid #d1d5db; border-radius: 8px; font-size: 1rem; }}
button, a.button {{ display: block; width: 100%; padding: 10px; border: 0; border-radius: 8px;
  background: #2563eb; color: #fff; font-size: 1rem; text-align: center;
  text-decoration: none; cursor: pointer; }}
.error {{ color: #b91c1c; font-weight: 600; }}
</style></head><body><div class="box"><h1>tradewatch</h1>{body}</div></body></html>
"""

LOGIN_PAGE = _PAGE.format(
    title="log in",
    body="""<p>Log in to the dashboard.</p>
<p class="error" id="error-message">{{ errormessage|escape }}</p>
<form action=".{{ login_endpoint }}" method="post">
<input name="username" type="text" value="trader" required autocapitalize="off"
  autocorrect="off" placeholder="user name" aria-label="user name">
<input name="password" type="password" required autofocus placeholder="password"
  aria-label="password">
<button type="submit">Log in</button></form>""",
)

LOGOUT_PAGE = _PAGE.format(
    title="logged out",
    body="""<p>You are logged out.</p>
<a class="button" href=".{{ LOGIN_ENDPOINT }}">Log in again</a>""",
)


def serve(
    tw: Tradewatch,
    host: str,
    port: int,
    users: dict[str, str] | None,
    announce: Callable[[str], None] = print,
    allow_origins: Sequence[str] = (),
) -> None:
    """Serve the dashboard until interrupted (Ctrl-C or SIGTERM)."""
    allowed = origins(host, port, allow_origins)
    secret = cookie_secret(tw.settings.home)
    pn.extension("tabulator")  # the tables arrive after the first screen: load their code now
    hub = Hub(tw)
    hub.start()
    try:
        with tempfile.TemporaryDirectory(prefix="tradewatch-dashboard-") as pages:
            login, logout = Path(pages, "login.html"), Path(pages, "logout.html")
            login.write_text(LOGIN_PAGE, encoding="utf-8")
            logout.write_text(LOGOUT_PAGE, encoding="utf-8")
            static = Path(pages, "static")
            static.mkdir()
            Path(static, "dashboard.css").write_text(CSS, encoding="utf-8")
            Path(static, "tables.css").write_text(TABLE_CSS, encoding="utf-8")
            auth: dict[str, Any] = {}
            if users is not None:
                auth = {
                    "auth_provider": TradewatchAuth(
                        users, login_template=str(login), logout_template=str(logout)
                    )
                }

            def app() -> pn.template.BootstrapTemplate:
                return Dashboard(hub, logout=users is not None).template

            try:
                server = pn.serve(  # type: ignore[no-untyped-call]
                    app,
                    port=port,
                    address=host,
                    websocket_origin=allowed,
                    cookie_secret=secret,
                    static_dirs={STATIC_ROUTE: str(static)},
                    title="tradewatch",
                    show=False,
                    start=False,
                    verbose=False,
                    **auth,
                )
            except OSError as e:
                raise DashboardError(f"cannot listen on {host}:{port}: {e.strerror}") from e
            shown = f"[{host}]" if ":" in host else host
            who = "no password (this machine only)" if users is None else "log in required"
            announce(f"dashboard at http://{shown}:{port}/ — {who}; Ctrl-C to stop")
            announce(f"pages from {', '.join(allowed)} may connect (more with --allow-origin)")
            loop = server.io_loop
            signal.signal(
                signal.SIGTERM, lambda *_: loop.asyncio_loop.call_soon_threadsafe(loop.stop)
            )
            server.start()
            try:
                loop.start()
            finally:
                server.stop()
    finally:
        hub.stop()
