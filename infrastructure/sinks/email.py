"""The e-mail sink: alerts from JetStream by SMTP, over STARTTLS, one mail per alert.

The connection is upgraded with STARTTLS (the server's certificate verified against the
system's CAs, or ``TRADEWATCH_SMTP_TLS_CA``) before any login or alert is sent; a server
that does not offer STARTTLS is refused. Each mail has a plain-text and an HTML part in
the V4 formats (:mod:`.messages`) and a ``Message-ID`` derived from the alert id, so even
a copy sent again in the sink's one unguarded moment (``docs/alerts.md``) is recognised
as the same mail by clients that deduplicate on it.

* Connection refused, timeouts, 4xx answers, a refused login, sender or recipients (a
  misconfiguration), TLS failures: retried with backoff until they work.
* A 5xx answer to the message itself (too large, rejected as content): the alert is
  refused for good, logged with its id, passed over.

Settings: ``TRADEWATCH_SMTP_HOST``, ``_PORT`` (587), ``_USER``, ``_PASSWORD``, ``_FROM``,
``_TO`` (comma-separated), ``_TLS_CA``, ``_TIMEOUT``, ``TRADEWATCH_EMAIL_TYPES`` (default
all) and ``TRADEWATCH_EMAIL_CONSUMER``.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import tzinfo
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
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

logger = logging.getLogger("tradewatch.sinks")
SUBJECT_PREFIX = "[tradewatch]"


@dataclass(frozen=True)
class EmailTransport:
    """Sends each alert as one mail through an SMTP server with STARTTLS."""

    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    zone: tzinfo
    user: str | None = None
    password: str | None = None
    ca_file: Path | None = None
    timeout: float = 20.0

    @property
    def target(self) -> str:
        """The server and recipients, for log lines."""
        return f"SMTP {self.host}:{self.port} to {', '.join(self.recipients)}"

    def parts(self, alert: AlertMessage) -> Sequence[EmailMessage]:
        """The alert as one mail."""
        return [self.mail(alert)]

    def mail(self, alert: AlertMessage) -> EmailMessage:
        """The mail of an alert: subject, text and HTML parts, headers naming the alert."""
        laid = messages.layout(alert, self.zone)
        mail = EmailMessage()
        mail["Subject"] = " ".join(f"{SUBJECT_PREFIX} {laid.subject}".split())
        mail["From"] = self.sender
        mail["To"] = ", ".join(self.recipients)
        mail["Date"] = format_datetime(alert.time)
        mail["Message-ID"] = f"<{alert.id.replace(':', '.')}@tradewatch.alerts>"
        mail["Auto-Submitted"] = "auto-generated"
        mail["X-Tradewatch-Alert-Id"] = alert.id
        mail["X-Tradewatch-Alert-Type"] = alert.type.value
        mail["X-Tradewatch-Severity"] = alert.severity.value
        mail.set_content(messages.plain_text(laid))
        mail.add_alternative(messages.email_html(laid), subtype="html")
        return mail

    async def send(self, part: EmailMessage) -> None:
        """Send one mail (in a worker thread: the event loop keeps running)."""
        await asyncio.to_thread(self._send, part)

    def _send(self, mail: EmailMessage) -> None:
        where = f"{self.host}:{self.port}"
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                smtp.ehlo()
                if not smtp.has_extn("starttls"):
                    raise SinkUnavailableError(
                        f"the SMTP server at {where} does not offer STARTTLS: no login or "
                        "alert is sent in clear text"
                    )
                context = ssl.create_default_context(
                    cafile=str(self.ca_file) if self.ca_file else None
                )
                smtp.starttls(context=context)
                smtp.ehlo()
                if self.user:
                    smtp.login(self.user, self.password or "")
                refused = smtp.send_message(mail)
        except smtplib.SMTPAuthenticationError as e:
            raise SinkUnavailableError(
                f"the SMTP server at {where} refused the login ({_reply(e)}): check "
                "TRADEWATCH_SMTP_USER and TRADEWATCH_SMTP_PASSWORD"
            ) from None
        except smtplib.SMTPRecipientsRefused as e:
            raise SinkUnavailableError(
                f"the SMTP server at {where} refused every recipient "
                f"({', '.join(e.recipients)}): check TRADEWATCH_SMTP_TO"
            ) from None
        except smtplib.SMTPSenderRefused as e:
            raise SinkUnavailableError(
                f"the SMTP server at {where} refused the sender {e.sender} ({_reply(e)}): "
                "check TRADEWATCH_SMTP_FROM"
            ) from None
        except smtplib.SMTPDataError as e:
            if 500 <= e.smtp_code < 600:
                raise AlertRefusedError(
                    f"the SMTP server at {where} refused the mail: {_reply(e)}"
                ) from None
            raise SinkUnavailableError(f"the SMTP server at {where}: {_reply(e)}") from None
        except (ssl.SSLError, ssl.CertificateError) as e:
            raise SinkUnavailableError(
                f"TLS with the SMTP server at {where} failed ({e}): check its certificate "
                "or TRADEWATCH_SMTP_TLS_CA"
            ) from None
        except smtplib.SMTPResponseException as e:
            raise SinkUnavailableError(f"the SMTP server at {where}: {_reply(e)}") from None
        except (smtplib.SMTPException, OSError) as e:
            reason = " ".join(str(e).split()) or type(e).__name__
            raise SinkUnavailableError(f"cannot send through {where}: {reason}") from None
        if refused:
            logger.warning(
                "alert %s: the SMTP server refused %s (sent to the others)",
                mail["X-Tradewatch-Alert-Id"],
                ", ".join(refused),
            )


def _reply(error: smtplib.SMTPResponseException) -> str:
    text = error.smtp_error.decode(errors="replace") if isinstance(error.smtp_error, bytes) else ""
    return f"{error.smtp_code} {' '.join(text.split())}".strip()


def transport(settings: Settings) -> EmailTransport:
    """The e-mail transport of the settings (``SinkSettingsError`` naming what is unset)."""
    require(
        "e-mail",
        settings,
        {
            "TRADEWATCH_SMTP_HOST": settings.smtp_host,
            "TRADEWATCH_SMTP_FROM": settings.smtp_from,
            "TRADEWATCH_SMTP_TO": settings.smtp_to,
        },
    )
    assert settings.smtp_host is not None and settings.smtp_from is not None
    password = settings.smtp_password
    return EmailTransport(
        host=settings.smtp_host,
        port=settings.smtp_port,
        sender=settings.smtp_from,
        recipients=settings.smtp_to,
        zone=zone_named(settings.timezone),
        user=settings.smtp_user,
        password=password.get_secret_value() if password is not None else None,
        ca_file=settings.smtp_tls_ca,
        timeout=settings.smtp_timeout,
    )


def sink(
    settings: Settings,
    *,
    on_delivered: Callable[[AlertMessage], None] | None = None,
    ack_wait: float = 10.0,
    backoff: Backoff | None = None,
) -> AlertSink[EmailMessage]:
    """The e-mail sink of the settings."""
    return build_sink(
        transport(settings),
        settings,
        settings.email_consumer,
        settings.email_types,
        on_delivered=on_delivered,
        ack_wait=ack_wait,
        backoff=backoff,
    )


async def serve(settings: Settings, stop: asyncio.Event, **options: Any) -> None:
    """Deliver alerts by e-mail until ``stop`` is set (options: see :func:`sink`)."""
    await sink(settings, **options).run(stop)


def run(settings: Settings, stop: threading.Event, **options: Any) -> None:
    """Deliver alerts by e-mail until ``stop`` is set: ``tradewatch run email``,
    ``tradewatch alerts email`` and the supervisor call this."""
    built = sink(settings, **options)
    run_async(built.run, stop)
