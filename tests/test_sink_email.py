"""The e-mail sink against a local SMTP server (aiosmtpd) with STARTTLS and a login, on a
throwaway self-signed certificate, and a nats-server of the test's own."""

from __future__ import annotations

import logging
import os
import shutil
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from infrastructure.nats_relay import Backoff
from infrastructure.settings import Settings
from infrastructure.sinks import email
from infrastructure.sinks.consumer import SinkSettingsError
from tests.conftest import free_port
from tests.nats_support import WAIT, NatsServer, wait_for
from tests.sink_support import Running, consumer_state, make_alert, nats_server, publish

__all__ = ["nats_server"]  # the fixture, imported for the tests below
ROOT = Path(__file__).resolve().parent.parent
USER, PASSWORD = "alerts@example.org", "s3cret-pass"
SENDER, RECIPIENTS = "tradewatch@example.org", ("trader@example.org", "desk@example.org")
DURABLE = "tradewatch-email"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1 (openssl), and its key."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to make a test certificate")
    home = tmp_path_factory.mktemp("tls")
    cert, key = home / "cert.pem", home / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=WAIT,
    )  # fmt: skip
    return cert, key


@dataclass
class Inbox:
    """What the SMTP server accepted; a subject containing ``refuse`` gets a 554."""

    mails: list[EmailMessage] = field(default_factory=list)
    sessions: list[tuple[bool, Any]] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd's name
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        mail = message_from_bytes(content, policy=policy.default)
        assert isinstance(mail, EmailMessage)
        if "refuse" in str(mail["Subject"]):
            return "554 5.7.1 rejected as content"
        login = session.auth_data if session.authenticated else None
        self.sessions.append((session.ssl is not None, login))
        self.mails.append(mail)
        return "250 OK"

    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for m in self.mails]


def _login(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False, auth_data=USER if ok else None)


class SmtpServer:
    """aiosmtpd on 127.0.0.1: STARTTLS required before login and mail (unless ``tls`` is
    False: then it offers no STARTTLS at all)."""

    def __init__(self, certificate: tuple[Path, Path], *, tls: bool = True) -> None:
        self.port = free_port()
        self.inbox = Inbox()
        context = None
        if tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*certificate)
        self.controller = Controller(
            self.inbox,
            hostname="127.0.0.1",
            port=self.port,
            tls_context=context,
            require_starttls=tls,
            authenticator=_login,
            auth_required=tls,
            auth_require_tls=True,
        )

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()


@pytest.fixture
def smtp(certificate: tuple[Path, Path]) -> Iterator[SmtpServer]:
    server = SmtpServer(certificate).start()
    yield server
    server.stop()


def settings(
    tmp_path: Path, nats: NatsServer, port: int, ca: Path, **overrides: Any
) -> dict[str, Any]:
    values: dict[str, Any] = {
        "home": tmp_path,
        "nats_url": nats.url,
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_user": USER,
        "smtp_password": PASSWORD,
        "smtp_from": SENDER,
        "smtp_to": ",".join(RECIPIENTS),
        "smtp_tls_ca": ca,
        "smtp_timeout": 5.0,
        "timezone": "UTC",
    }
    values.update(overrides)
    return values


def sink(tmp_path: Path, nats: NatsServer, port: int, ca: Path, **overrides: Any) -> Running:
    built = email.sink(
        Settings(**settings(tmp_path, nats, port, ca, **overrides)),
        backoff=Backoff(first=0.05, cap=0.2),
    )
    return Running(built)


def settled(nats: NatsServer) -> bool:
    return consumer_state(nats.url, DURABLE) == (0, 0)


def test_each_alert_is_mailed_once_over_starttls_with_a_login(
    tmp_path: Path, nats_server: NatsServer, smtp: SmtpServer, certificate: tuple[Path, Path]
) -> None:
    data = {"old_status": "yellow", "new_status": "red", "multiplier": 0.0, "rules": []}
    critical = make_alert("critical", title="RED", text="<script>x</script> & co", data=data)
    publish(nats_server.url, critical, make_alert(title="second"))
    with sink(tmp_path, nats_server, smtp.port, certificate[0]) as running:
        wait_for(lambda: len(smtp.inbox.mails) == 2 and settled(nats_server))
        assert running.sink.stats.delivered == 2
    assert smtp.inbox.sessions == [(True, USER), (True, USER)]
    mail = smtp.inbox.mails[0]
    assert mail["Subject"] == "[tradewatch] 🔴 RED - Stop Trading"
    assert mail["From"] == SENDER and mail["To"] == ", ".join(RECIPIENTS)
    assert mail["Message-ID"] == f"<{critical.id.replace(':', '.')}@tradewatch.alerts>"
    assert mail["X-Tradewatch-Alert-Id"] == critical.id
    assert mail["Auto-Submitted"] == "auto-generated"
    text = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert text is not None and html is not None
    assert "• <script>x</script> & co" in text.get_content()
    assert "&lt;script&gt;x&lt;/script&gt; &amp; co" in html.get_content()
    assert "<script>" not in html.get_content()
    assert smtp.inbox.subjects()[1] == "[tradewatch] 📈 second"


def test_an_smtp_server_that_refuses_connections_then_comes_up_loses_nothing(
    tmp_path: Path, nats_server: NatsServer, certificate: tuple[Path, Path]
) -> None:
    later = SmtpServer(certificate)
    publish(nats_server.url, *(make_alert(title=f"alert {i}") for i in range(3)))
    with sink(tmp_path, nats_server, later.port, certificate[0]) as running:
        wait_for(lambda: running.sink.stats.failures >= 3)
        later.start()
        try:
            wait_for(lambda: len(later.inbox.mails) == 3 and settled(nats_server))
        finally:
            later.stop()
    assert later.inbox.subjects() == [f"[tradewatch] 📈 alert {i}" for i in range(3)]


def test_a_server_without_starttls_is_never_sent_an_alert(
    tmp_path: Path, nats_server: NatsServer, certificate: tuple[Path, Path],
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.WARNING, logger="tradewatch.sinks")
    plain = SmtpServer(certificate, tls=False).start()
    try:
        publish(nats_server.url, make_alert(title="secret"))
        with sink(tmp_path, nats_server, plain.port, certificate[0]) as running:
            wait_for(lambda: running.sink.stats.failures >= 2)
        assert plain.inbox.mails == []
    finally:
        plain.stop()
    assert any("does not offer STARTTLS" in r.getMessage() for r in caplog.records)
    assert not settled(nats_server)  # still held for later


def test_a_refused_login_waits_for_the_fix(
    tmp_path: Path, nats_server: NatsServer, smtp: SmtpServer, certificate: tuple[Path, Path],
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.WARNING, logger="tradewatch.sinks")
    publish(nats_server.url, make_alert(title="waits"))
    ca = certificate[0]
    with sink(tmp_path, nats_server, smtp.port, ca, smtp_password="wrong") as running:
        wait_for(lambda: running.sink.stats.failures >= 2)
    assert smtp.inbox.mails == []
    assert any("TRADEWATCH_SMTP_PASSWORD" in r.getMessage() for r in caplog.records)
    with sink(tmp_path, nats_server, smtp.port, ca):  # restarted with the right password
        wait_for(lambda: len(smtp.inbox.mails) == 1 and settled(nats_server))
    assert smtp.inbox.subjects() == ["[tradewatch] 📈 waits"]


def test_a_certificate_that_does_not_verify_is_refused(
    tmp_path: Path, nats_server: NatsServer, smtp: SmtpServer
) -> None:
    publish(nats_server.url, make_alert(title="not to a stranger"))
    with sink(tmp_path, nats_server, smtp.port, ca=None) as running:  # type: ignore[arg-type]
        wait_for(lambda: running.sink.stats.failures >= 2)
    assert smtp.inbox.mails == []


def test_a_mail_refused_for_good_is_passed_over(
    tmp_path: Path, nats_server: NatsServer, smtp: SmtpServer, certificate: tuple[Path, Path]
) -> None:
    publish(nats_server.url, make_alert(title="refuse me"), make_alert(title="next"))
    with sink(tmp_path, nats_server, smtp.port, certificate[0]) as running:
        wait_for(lambda: len(smtp.inbox.mails) == 1 and settled(nats_server))
        assert running.sink.stats.refused == 1
    assert smtp.inbox.subjects() == ["[tradewatch] 📈 next"]


def test_types_are_routed_by_the_setting(
    tmp_path: Path, nats_server: NatsServer, smtp: SmtpServer, certificate: tuple[Path, Path]
) -> None:
    publish(nats_server.url, *(make_alert(k, title=k) for k in ("signal", "critical", "warning")))
    with sink(tmp_path, nats_server, smtp.port, certificate[0], email_types="critical") as running:
        wait_for(lambda: settled(nats_server) and running.sink.stats.skipped == 2)
    assert smtp.inbox.subjects() == ["[tradewatch] 🔴 critical"]


def test_the_sink_killed_after_delivery_before_its_ack_mails_nothing_twice(
    tmp_path: Path, nats_server: NatsServer, smtp: SmtpServer, certificate: tuple[Path, Path]
) -> None:
    publish(nats_server.url, *(make_alert(title=f"alert {i}") for i in range(3)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWATCH_")}
    values = settings(tmp_path, nats_server, smtp.port, certificate[0])
    env.update({f"TRADEWATCH_{k.upper()}": str(v) for k, v in values.items()})
    env["PYTHONPATH"] = str(ROOT)
    child = subprocess.run(
        [sys.executable, "-m", "tests.sink_process", "email", "--die-after", "1",
         "--ack-wait", "1"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=WAIT * 2, check=False,
    )  # fmt: skip
    assert child.returncode == -9, child.stderr
    assert smtp.inbox.subjects() == ["[tradewatch] 📈 alert 0"]
    with sink(tmp_path, nats_server, smtp.port, certificate[0]) as running:
        wait_for(lambda: len(smtp.inbox.mails) == 3 and settled(nats_server))
        assert running.sink.stats.duplicates == 1
    assert smtp.inbox.subjects() == [f"[tradewatch] 📈 alert {i}" for i in range(3)]


def test_missing_settings_are_named(tmp_path: Path) -> None:
    with pytest.raises(SinkSettingsError) as found:
        email.transport(Settings(home=tmp_path, nats_url="nats://127.0.0.1:4222"))
    assert str(found.value) == (
        "the e-mail sink needs TRADEWATCH_SMTP_HOST, TRADEWATCH_SMTP_FROM, TRADEWATCH_SMTP_TO"
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"smtp_to": "trader@example.org, not an address"}, "is not an e-mail address"),
        ({"smtp_from": "nobody"}, "is not an e-mail address"),
        ({"smtp_port": "0"}, "greater than or equal to 1"),
        ({"email_types": "critical,loud"}, "'loud' is not an alert type"),
    ],
)
def test_bad_email_settings_are_refused(values: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings(**values)  # type: ignore[arg-type]
