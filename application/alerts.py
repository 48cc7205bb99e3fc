"""The alert policy: decides what to tell the trader, and records each alert as an event.

It follows the event log with its own tracking position, saved atomically with the alerts
it raises, so a crash never loses or doubles one. Alerts about a day or a week are keyed by
the period, so they are raised once however often the clock is consulted. Publishing is
someone else's job (the NATS relay); here alerts are only decided and recorded.

History is not news: an alert about the past is recorded (the audit keeps it) but marked
not to publish. A signal's alert is published only while the signal is still actionable
(:func:`domain.alert.still_actionable`); a warning or critical alert only for the colour
change in force when the policy handles it; a predictive warning only for the latest exit.
Importing a year of history therefore sends nothing but the status in force now.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from eventsourcing.domain import Aggregate

from application.bookkeeping import Bookkeeper, ExitReader, KeptBook, VoidedTrade
from application.ledger import TradeLedger
from application.process import FaultSink, TrackedProcess
from domain.alert import Alert, AlertType, Mode, Severity, alert_uuid, still_actionable
from domain.controller import CONTROLLER_ID, Controller
from domain.controller_policy import Thresholds
from domain.days import TradingDay
from domain.early_warning import (
    consecutive_losses_warning,
    daily_loss_warning,
    red_win_rate_probability,
)
from domain.events import Causation
from domain.signal import copy_block
from domain.trade_book import ClosedTradeFact, TradeBook
from projections.facts import EventLog, Fact, plain

PROCESS_NAME = "alerts"
"""The alert policy's tracking key in the event store."""

PREDICTIVE_PROBABILITY = 0.5
"""Warn when the chance of the win-rate RED rule firing within 5 trades passes this."""


class AlertFigures(Protocol):
    """The read-model figures behind the scheduled reports."""

    def daily_figures(self, now: datetime) -> dict[str, Any]:
        """Figures for the daily status at ``now``."""
        ...

    def weekly_figures(self, now: datetime) -> dict[str, Any]:
        """Figures for the weekly report of the week that ended at ``now``."""
        ...

    def last_exit_notification_id(self) -> int:
        """The log position of the latest exit (or exit correction) projected, 0 if none."""
        ...


@dataclass(frozen=True)
class AlertSettings:
    """Which types are on, silent or off; when the reports are due; the controller's limits."""

    modes: Mapping[AlertType, Mode] = field(default_factory=dict)
    timezone: str = "UTC"
    report_time: time = time(8, 0)
    thresholds: Thresholds = field(default_factory=Thresholds)
    signal_max_age: timedelta = timedelta(hours=1)
    """How long a signal without a timeframe stays actionable (its alert published)."""

    def mode(self, type_: AlertType) -> Mode:
        """The mode of a type (on unless set)."""
        return self.modes.get(type_, Mode.ON)


@dataclass
class _Draft:
    key: str
    type: AlertType
    severity: Severity
    title: str
    text: str
    data: dict[str, Any]
    correlation_id: str
    causes: list[str]
    caused_by: list[int]
    at: datetime
    per_period: bool = False
    news: bool = True
    """False for an alert about the past: recorded, not published."""


class AlertPolicy(TrackedProcess):
    """Turns signals, controller decisions, exits and the clock into recorded alerts."""

    name = PROCESS_NAME

    def __init__(
        self,
        ledger: TradeLedger,
        log: EventLog,
        books: Bookkeeper,
        figures: AlertFigures,
        settings: AlertSettings,
        faults: FaultSink,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        page_size: int = 1000,
    ) -> None:
        super().__init__(ledger, log, faults, page_size)
        self._raised: set[str] = set()
        self.books = books
        self.kept = KeptBook(books)
        self.figures = figures
        self.settings = settings
        self.clock = clock

    def handler(self, position: int) -> Callable[[Fact], Sequence[Aggregate]]:
        """The alerts each fact raises, with the book of closed trades kept up to date."""
        book = self.kept.at(position)
        exits = self.books.reader()
        self._raised = set()
        now = self.clock()
        controller = self.ledger.find(CONTROLLER_ID)
        in_force = controller.last_change_id if isinstance(controller, Controller) else None
        latest_exit = self.figures.last_exit_notification_id()

        def handle(fact: Fact) -> Sequence[Aggregate]:
            self.kept.handling()
            drafts = self._alerts_for(fact, book, exits)
            for draft in drafts:
                draft.news = self._is_news(draft, fact, now, in_force, latest_exit)
            raised = [alert for d in drafts if (alert := self._new_alert(d)) is not None]
            self.kept.handled(fact.id)
            return raised

        return handle

    def after_events(self) -> None:
        """Raise the daily status and the weekly report when they are due."""
        self._schedules()

    def _is_news(
        self, draft: _Draft, fact: Fact, now: datetime, in_force: str | None, latest_exit: int
    ) -> bool:
        """Whether an alert raised while handling ``fact`` is about the present."""
        if draft.type is AlertType.SIGNAL:
            timeframe = fact.state["timeframe"]
            return still_actionable(draft.at, timeframe, now, self.settings.signal_max_age)
        if draft.type in (AlertType.WARNING, AlertType.CRITICAL):
            return fact.event_id == in_force
        return fact.id >= latest_exit  # a predictive warning: no later exit is known

    def _alerts_for(self, fact: Fact, book: TradeBook, exits: ExitReader) -> list[_Draft]:
        if fact.kind in ("Signal.Recorded", "Signal.Generated"):
            return self._signal(fact)
        if fact.kind == "Controller.StatusChanged":
            return self._controller(fact)
        change = exits.closed_trade(fact)
        if change is None:
            return []
        if isinstance(change, VoidedTrade):
            book.remove(change.signal_id)
            return []
        return self._predictive(fact, change, book)

    def _signal(self, fact: Fact) -> list[_Draft]:
        s = fact.state
        if s["blocked"]:
            return []  # withheld by the controller: not a signal to act on
        confidence = f", confidence {s['confidence']:.2f}" if s["confidence"] is not None else ""
        return [
            _Draft(
                key=f"signal:{fact.aggregate_id}",
                type=AlertType.SIGNAL,
                severity=Severity.INFO,
                title=f"{s['symbol']} {s['direction'].upper()} signal {s['signal_id']}{confidence}",
                text=copy_block(s),
                data={k: plain(s[k]) for k in _SIGNAL_FIELDS},
                correlation_id=s["correlation_id"],
                causes=[fact.event_id],
                caused_by=[fact.id],
                at=fact.business_time,
            )
        ]

    def _controller(self, fact: Fact) -> list[_Draft]:
        s = fact.state
        if s["new_status"] == "green":
            return []
        red = s["new_status"] == "red"
        fired = [r["text"] for r in s["rules"] if r.get("fired")]
        return [
            _Draft(
                key=f"controller:{fact.event_id}",
                type=AlertType.CRITICAL if red else AlertType.WARNING,
                severity=Severity.CRITICAL if red else Severity.WARNING,
                title=(
                    "RED: stop trading" if red else f"YELLOW: trade at x{s['multiplier']:g} size"
                ),
                text="\n".join(fired) or "no rule fired",
                data={
                    "old_status": s["old_status"],
                    "new_status": s["new_status"],
                    "multiplier": s["multiplier"],
                    "rules": s["rules"],
                },
                correlation_id=s["correlation_id"],
                causes=[fact.event_id, *s["cause_event_ids"]],
                caused_by=[fact.id, *s["caused_by"]],
                at=fact.business_time,
            )
        ]

    def _predictive(self, fact: Fact, closed: ClosedTradeFact, book: TradeBook) -> list[_Draft]:
        t = self.settings.thresholds
        probability_before = self._red_probability(book)
        book.put(closed)
        now = closed.exit_time
        m = book.measurements(now)
        drafts: list[_Draft] = []

        def warn(
            key: str, title: str, text: str, data: dict[str, Any], per_period: bool = False
        ) -> None:
            drafts.append(
                _Draft(
                    key=key,
                    type=AlertType.PREDICTIVE_WARNING,
                    severity=Severity.WARNING,
                    title=title,
                    text=text,
                    data=data,
                    correlation_id=fact.state["correlation_id"],
                    causes=[fact.event_id],
                    caused_by=[fact.id],
                    at=now,
                    per_period=per_period,
                )
            )

        if consecutive_losses_warning(m.consecutive_losses, t.max_consecutive_losses):
            warn(
                f"predictive:consecutive_losses:{fact.event_id}",
                f"{m.consecutive_losses} losses in a row: RED at {t.max_consecutive_losses}",
                f"consecutive_losses = {m.consecutive_losses}, RED at {t.max_consecutive_losses}",
                {
                    "rule": "consecutive_losses",
                    "value": m.consecutive_losses,
                    "threshold": t.max_consecutive_losses,
                },
            )
        if daily_loss_warning(m.today_loss_pct, t.max_daily_loss):
            day = TradingDay.of(now, book.zone).day.isoformat()
            warn(
                f"predictive:daily_loss:{day}",
                f"today's loss {m.today_loss_pct:.2%}: RED past {t.max_daily_loss:.2%}",
                f"today_loss_pct = {m.today_loss_pct:.4f}, 75 % of the {t.max_daily_loss} limit",
                {
                    "rule": "today_loss_pct",
                    "value": m.today_loss_pct,
                    "threshold": t.max_daily_loss,
                },
                per_period=True,
            )
        probability = self._red_probability(book)
        above_red = m.win_rate_last_20 is None or m.win_rate_last_20 >= t.red_win_rate
        if above_red and probability > PREDICTIVE_PROBABILITY >= probability_before:
            warn(
                f"predictive:win_rate:{fact.event_id}",
                f"{probability:.0%} chance the win rate falls below {t.red_win_rate:.2f} "
                "within 5 trades",
                f"P(win_rate_last_20 < {t.red_win_rate} within 5 trades) = {probability:.3f} "
                "(Beta-binomial on the last 20 trades)",
                {
                    "rule": "win_rate_last_20",
                    "probability": probability,
                    "threshold": t.red_win_rate,
                    "win_rate_last_20": m.win_rate_last_20,
                },
            )
        return drafts

    def _red_probability(self, book: TradeBook) -> float:
        t = self.settings.thresholds
        return red_win_rate_probability(
            book.recent_wins(),
            red_win_rate=t.red_win_rate,
            window=t.window,
            min_sample=t.min_sample,
        )

    # Schedules ----------------------------------------------------------------------------

    def _schedules(self) -> None:
        now = self.clock()
        local = now.astimezone(ZoneInfo(self.settings.timezone))
        due_today = datetime.combine(local.date(), self.settings.report_time, local.tzinfo)
        if local >= due_today:
            self._scheduled(f"daily_status:{local.date().isoformat()}", AlertType.DAILY_STATUS, now)
        monday = due_today - timedelta(days=local.weekday())
        if local >= monday:
            year, week, _ = monday.isocalendar()
            self._scheduled(f"weekly_report:{year}-W{week:02d}", AlertType.WEEKLY_REPORT, now)

    def _scheduled(self, key: str, type_: AlertType, now: datetime) -> None:
        if self.settings.mode(type_) is Mode.OFF or self.ledger.find(alert_uuid(key)) is not None:
            return
        status = self._status()
        if type_ is AlertType.DAILY_STATUS:
            data = {"status": status, **self.figures.daily_figures(now)}
            title = f"Daily status {key.split(':')[1]}: {status.upper()}"
        else:
            data = {"status": status, **self.figures.weekly_figures(now)}
            covered = now.astimezone(ZoneInfo(self.settings.timezone)).date()
            title = f"Weekly report: the 7 days to {covered.isoformat()}"
        draft = _Draft(
            key=key,
            type=type_,
            severity=Severity.INFO,
            title=title,
            text="\n".join(f"{k}: {_show(v)}" for k, v in data.items()),
            data=data,
            correlation_id=f"schedule:{key}",
            causes=[f"clock:{now.isoformat()}"],
            caused_by=[],
            at=now,
            per_period=True,
        )
        alert = self._new_alert(draft)
        if alert is not None:
            self.save(alert)

    def _status(self) -> str:
        found = self.ledger.find(CONTROLLER_ID)
        return found.status.value if isinstance(found, Controller) else "green"

    def _new_alert(self, draft: _Draft) -> Aggregate | None:
        """The alert, unless its type is off or it was raised already.

        An alert about one fact is raised only while that fact is handled, which happens
        once; only alerts about a period (a day, a week) need a look in the store.
        """
        mode = self.settings.mode(draft.type)
        if mode is Mode.OFF or draft.key in self._raised:
            return None
        if draft.per_period and self.ledger.find(alert_uuid(draft.key)) is not None:
            return None
        self._raised.add(draft.key)
        return Alert.raise_alert(
            draft.key,
            draft.type,
            draft.severity,
            draft.title,
            draft.text,
            draft.data,
            causes=draft.causes,
            caused_by=draft.caused_by,
            publish=mode is Mode.ON and draft.news,
            at=draft.at,
            causation=Causation(draft.correlation_id, draft.causes[0]),
        )


_SIGNAL_FIELDS = (
    "signal_id",
    "symbol",
    "direction",
    "source",
    "confidence",
    "entry_low",
    "entry_high",
    "stop_loss",
    "take_profit",
    "position_size",
    "sized_position",
    "timeframe",
    "model_version",
    "theories",
    "quality_gates",
    "controller_status",
    "size_multiplier",
)


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
