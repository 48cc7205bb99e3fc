"""The components tradewatch runs, by the names ``tradewatch run <name>`` takes.

``tradewatch up`` runs the ones :func:`selected` picks for the settings under one
supervisor; a multi-process deployment runs each as its own service (``deploy/``). Every
component is safe to run twice at once (each follows the log from its own tracking
position, or a durable consumer).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from infrastructure.settings import Settings


class ComponentName(StrEnum):
    """A component, as ``tradewatch run`` names it."""

    GENERATOR = "generator"
    MONITOR = "monitor"
    PROJECTIONS = "projections"
    CONTROLLER = "controller"
    ALERTS = "alerts"
    RELAY = "relay"
    DASHBOARD = "dashboard"
    TELEGRAM = "telegram"
    EMAIL = "email"


@dataclass(frozen=True)
class ComponentInfo:
    """What a component does, and the settings it cannot run without."""

    name: ComponentName
    summary: str
    needs: tuple[str, ...] = ()


COMPONENTS: dict[ComponentName, ComponentInfo] = {
    info.name: info
    for info in (
        ComponentInfo(ComponentName.GENERATOR, "signals from the models on each candle close"),
        ComponentInfo(ComponentName.MONITOR, "fills, take-profits and stops, every 5 minutes"),
        ComponentInfo(ComponentName.PROJECTIONS, "the read models, live"),
        ComponentInfo(ComponentName.CONTROLLER, "the traffic light, on every exit and day"),
        ComponentInfo(
            ComponentName.ALERTS, "the alert policy and its schedule (daily status, weekly report)"
        ),
        ComponentInfo(
            ComponentName.RELAY,
            "recorded alerts to NATS JetStream, and the heartbeat",
            ("TRADEWATCH_NATS_URL",),
        ),
        ComponentInfo(ComponentName.DASHBOARD, "the Panel dashboard"),
        ComponentInfo(
            ComponentName.TELEGRAM,
            "alerts from JetStream to a Telegram chat",
            ("TRADEWATCH_NATS_URL", "TRADEWATCH_TELEGRAM_BOT_TOKEN", "TRADEWATCH_TELEGRAM_CHAT_ID"),
        ),
        ComponentInfo(
            ComponentName.EMAIL,
            "alerts from JetStream by e-mail (SMTP, STARTTLS)",
            (
                "TRADEWATCH_NATS_URL",
                "TRADEWATCH_SMTP_HOST",
                "TRADEWATCH_SMTP_FROM",
                "TRADEWATCH_SMTP_TO",
            ),
        ),
    )
}


def missing(name: ComponentName, settings: Settings) -> list[str]:
    """The settings ``name`` needs that are not set."""
    present = {
        "TRADEWATCH_NATS_URL": bool(settings.nats_url),
        "TRADEWATCH_TELEGRAM_BOT_TOKEN": settings.telegram_bot_token is not None,
        "TRADEWATCH_TELEGRAM_CHAT_ID": bool(settings.telegram_chat_id),
        "TRADEWATCH_SMTP_HOST": bool(settings.smtp_host),
        "TRADEWATCH_SMTP_FROM": bool(settings.smtp_from),
        "TRADEWATCH_SMTP_TO": bool(settings.smtp_to),
    }
    return [need for need in COMPONENTS[name].needs if not present[need]]


def selected(settings: Settings) -> list[ComponentName]:
    """The components ``tradewatch up`` runs: all whose settings are complete."""
    return [name for name in ComponentName if not missing(name, settings)]
