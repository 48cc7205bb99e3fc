"""Shared fixtures: every ledger test runs on SQLite and on the real PostgreSQL on localhost."""

from __future__ import annotations

import os
import random
import secrets
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from infrastructure.bootstrap import Tradewatch, bootstrap
from infrastructure.settings import Settings
from tests.fakes.bybit import FakeBybit
from tests.fakes.bybit_account import FakeAccount
from tests.fakes.bybit_private import bybit_account

PG_ADMIN_URL = os.environ.get("TRADEWATCH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
TRADEWATCH = str(Path(sys.executable).with_name("tradewatch"))
POSTGRES = pytest.param("postgres", marks=pytest.mark.postgres)
"""The PostgreSQL parameter of ``database_url``, marked so that ``-m "not postgres"`` skips it."""
POSTGRES_ONLY = pytest.mark.parametrize("database_url", [POSTGRES], indirect=True)
"""Run a ``database_url`` test on PostgreSQL only."""
CHROMIUM = Path("/usr/bin/chromium")
"""Debian's Chromium, which the browser tests drive (``make browser`` installs it)."""
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium, one per test module (never ``playwright install``)."""
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's /usr/bin/chromium (make browser installs it)")
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - only with a browser

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards."""
    name = f"tw_test_{secrets.token_hex(4)}"
    _admin(f"CREATE DATABASE {name}")
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", POSTGRES])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database of each kind: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def make_tradewatch(tmp_path: Path, database_url: str) -> Iterator[Callable[..., Tradewatch]]:
    """Build wired tradewatch instances on the test database (closed afterwards)."""
    opened: list[Tradewatch] = []

    def make(**overrides: object) -> Tradewatch:
        settings = Settings(home=tmp_path, database_url=database_url, **overrides)  # type: ignore[arg-type]
        tw = bootstrap(settings)
        opened.append(tw)
        return tw

    yield make
    for tw in opened:
        tw.close()


@pytest.fixture
def tw(make_tradewatch: Callable[..., Tradewatch]) -> Tradewatch:
    """A wired tradewatch on a fresh database of each kind."""
    return make_tradewatch()


@pytest.fixture
def cli_env(tmp_path: Path, database_url: str) -> dict[str, str]:
    """Environment for running the real ``tradewatch`` command against the test database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWATCH_")}
    env.update(TRADEWATCH_HOME=str(tmp_path / "home"), TRADEWATCH_DATABASE_URL=database_url)
    env["COLUMNS"] = "200"
    return env


@pytest.fixture
def run_cli(
    cli_env: dict[str, str], tmp_path: Path
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the installed ``tradewatch`` console script end to end."""

    def run(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [TRADEWATCH, *args],
            check=False,
            env=cli_env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"tradewatch {' '.join(args)} failed: {result.stderr}")
        return result

    return run


@pytest.fixture
def fake_bybit() -> Iterator[FakeBybit]:
    """A fake Bybit V5 server on 127.0.0.1 (see ``tests/fakes/bybit.py``), stopped afterwards."""
    with FakeBybit() as fake:
        yield fake


FAKE_KEY, FAKE_SECRET = "FAKEAPIKEY0001", "fake-test-secret-0123456789"
"""The invented key and secret of ``tests/fixtures/bybit/auth.json``'s test vectors."""


@pytest.fixture
def fake_account(fake_bybit: FakeBybit) -> FakeAccount:
    """A fake Bybit linear account on ``fake_bybit`` (keys ``FAKE_KEY`` / ``FAKE_SECRET``),
    10,000 USDT, BTCUSDT at 50,000 and ETHUSDT at 3,000."""
    fake_bybit.api_keys[FAKE_KEY] = FAKE_SECRET
    account = bybit_account(fake_bybit)
    account.set_price("BTCUSDT", "50000")
    account.set_price("ETHUSDT", "3000")
    return account


# Running in parallel (make test: pytest-xdist, 2 workers) ------------------------------

PORTS_PER_WORKER = 2000
FIRST_PORT = 20_000
"""Test servers listen on ports below the kernel's ephemeral range (32768 and up), each
worker in its own block: a port a test frees and binds again (a nats-server restarted on
its port) cannot meanwhile be handed to another worker or to an outgoing connection."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on, from this worker's block."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    first = FIRST_PORT + (int(worker) % 6 if worker.isdigit() else 0) * PORTS_PER_WORKER
    for port in random.sample(range(first, first + PORTS_PER_WORKER), PORTS_PER_WORKER):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {first}-{first + PORTS_PER_WORKER - 1}")


ONE_WORKER = ("tests/test_dashboard",)
"""Test files (by prefix) run together on one worker: the browser tests share one Chromium
and one dashboard server, and two browsers at once would starve a 2-core machine."""


def together(nodeid: str) -> str:
    """The scheduling unit of a test: its file's group for :data:`ONE_WORKER`, else itself."""
    path = nodeid.split("::", 1)[0]
    return "browser" if path.startswith(ONE_WORKER) else nodeid


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist load`` (the default of ``-n``), but :data:`ONE_WORKER` files on one worker.

    xdist's own ``loadgroup`` would do with ``xdist_group`` marks, but pytest 9.2 no longer
    lets a plugin rename a test's node id, which is how loadgroup groups them.
    """
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling  # noqa: PLC0415 - only under xdist

    class Scheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return together(nodeid)

    return Scheduling(config, log)
