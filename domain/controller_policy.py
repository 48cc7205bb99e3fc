"""The traffic-light controller: a pure policy that sizes trading from recent results.

GREEN trades at full size, YELLOW at reduced size, RED stops trading. RED holds until the next
day (the cool-down; days are calendar days of the configured time zone, see
:mod:`domain.days`) or a manual resume; a manual pause forces RED until resumed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo
from enum import StrEnum
from typing import Literal

from domain.days import TradingDay

Comparison = Literal["<", ">", ">="]

_NEGATED: dict[Comparison, str] = {"<": ">=", ">": "<=", ">=": "<"}
WIN_RATE_MEASURE = "win_rate_last_20"
"""What the RED and the YELLOW win-rate lines are drawn on."""


class Status(StrEnum):
    """The traffic light shown to the trader."""

    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"


_SEVERITY_RANK = {Status.GREEN: 0, Status.YELLOW: 1, Status.RED: 2}


class RuleState(StrEnum):
    """How one rule came out in an evaluation."""

    FIRED = "fired"
    OK = "ok"
    INSUFFICIENT_DATA = "insufficient_data"
    HELD = "held"


@dataclass(frozen=True)
class Thresholds:
    """Configurable limits of the policy; validated on construction."""

    red_win_rate: float = 0.65
    yellow_win_rate: float = 0.70
    max_daily_loss: float = 0.04
    max_consecutive_losses: int = 5
    max_drawdown: float = 0.15
    min_sample: int = 10
    window: int = 20
    green_multiplier: float = 1.0
    yellow_multiplier: float = 0.5
    red_multiplier: float = 0.0

    def __post_init__(self) -> None:
        requirements: list[tuple[str, bool, str]] = [
            ("yellow_win_rate", 0 <= self.yellow_win_rate <= 1, "within [0, 1]"),
            (
                "red_win_rate",
                0 <= self.red_win_rate <= self.yellow_win_rate,
                f"within [0, yellow_win_rate={self.yellow_win_rate}]",
            ),
            ("max_daily_loss", 0 < self.max_daily_loss <= 1, "within (0, 1]"),
            ("max_consecutive_losses", self.max_consecutive_losses >= 1, ">= 1"),
            ("max_drawdown", 0 < self.max_drawdown <= 1, "within (0, 1]"),
            ("window", self.window >= 1, ">= 1"),
            (
                "min_sample",
                0 <= self.min_sample <= self.window,
                f"within [0, window={self.window}]",
            ),
            ("green_multiplier", 0 <= self.green_multiplier <= 1, "within [0, 1]"),
            (
                "yellow_multiplier",
                0 <= self.yellow_multiplier <= self.green_multiplier,
                f"within [0, green_multiplier={self.green_multiplier}]",
            ),
            (
                "red_multiplier",
                0 <= self.red_multiplier <= self.yellow_multiplier,
                f"within [0, yellow_multiplier={self.yellow_multiplier}]",
            ),
        ]
        for name, ok, requirement in requirements:
            if not ok:
                raise ValueError(
                    f"Thresholds.{name} must be {requirement}, got {getattr(self, name)!r}"
                )

    def multiplier(self, status: Status) -> float:
        """Position-size multiplier for a status."""
        return {
            Status.GREEN: self.green_multiplier,
            Status.YELLOW: self.yellow_multiplier,
            Status.RED: self.red_multiplier,
        }[status]


DEFAULT_THRESHOLDS = Thresholds()


@dataclass(frozen=True)
class Measurements:
    """What the trade history says right now.

    ``win_rate_last_20`` is the win rate over the last ``window`` closed trades (None when there
    are none) and ``sample_size`` the number of trades behind it. ``today_pnl_fraction`` is today's
    P&L as a fraction of equity at the start of the day (-0.05 is a 5 % loss). ``drawdown`` is
    the current fall of equity from its peak as a positive fraction (None without equity history).
    """

    win_rate_last_20: float | None
    sample_size: int
    today_pnl_fraction: float
    consecutive_losses: int
    drawdown: float | None

    def __post_init__(self) -> None:
        if self.win_rate_last_20 is not None and not 0 <= self.win_rate_last_20 <= 1:
            raise ValueError(f"win_rate_last_20 must be within [0, 1], got {self.win_rate_last_20}")
        if self.sample_size < 0:
            raise ValueError(f"sample_size must be >= 0, got {self.sample_size}")
        if (self.win_rate_last_20 is None) != (self.sample_size == 0):
            raise ValueError("win_rate_last_20 must be None exactly when sample_size is 0")
        if not math.isfinite(self.today_pnl_fraction):
            raise ValueError(f"today_pnl_fraction must be finite, got {self.today_pnl_fraction}")
        if self.consecutive_losses < 0:
            raise ValueError(f"consecutive_losses must be >= 0, got {self.consecutive_losses}")
        if self.drawdown is not None and not (math.isfinite(self.drawdown) and self.drawdown >= 0):
            raise ValueError(f"drawdown must be a finite fraction >= 0, got {self.drawdown}")

    @property
    def today_loss_pct(self) -> float:
        """Today's loss as a positive fraction of start-of-day equity; 0.0 on a winning day."""
        return max(0.0, -self.today_pnl_fraction)


@dataclass(frozen=True)
class RuleResult:
    """One rule as evaluated: the measured value, its limit, and whether it fired."""

    rule: str
    severity: Status
    state: RuleState
    value: float | None = None
    threshold: float | None = None
    comparison: Comparison | None = None
    detail: str = ""
    measure: str | None = None
    """What the value measures, when the rule is named otherwise (``win_rate_last_20`` for
    ``red_win_rate`` and ``yellow_win_rate``, the two lines drawn on one measure)."""

    @property
    def fired(self) -> bool:
        """Whether this rule pushes the status to its severity (a held cool-down counts)."""
        return self.state in (RuleState.FIRED, RuleState.HELD)

    def describe(self) -> str:
        """One line for the trader, e.g. ``red_win_rate: win_rate_last_20 = 0.60 < 0.65``."""
        if self.state is RuleState.INSUFFICIENT_DATA:
            return f"{self.rule}: insufficient data ({self.detail})"
        if self.comparison is None or self.value is None or self.threshold is None:
            return f"{self.rule}: {self.detail}"
        value, threshold = _number(self.value), _number(self.threshold)
        measured = f"{self.rule}: {self.measure}" if self.measure else self.rule
        if self.fired:
            return f"{measured} = {value} {self.comparison} {threshold}"
        return f"{measured} = {value} {_NEGATED[self.comparison]} {threshold} (ok)"


@dataclass(frozen=True)
class ManualAction:
    """Who paused or resumed trading, why, and when."""

    by: str
    reason: str
    at: datetime

    def __post_init__(self) -> None:
        if not self.by.strip():
            raise ValueError("a manual pause or resume must name who did it")
        if not self.reason.strip():
            raise ValueError("a manual pause or resume must give a reason")
        _require_aware(self.at, "at")


@dataclass(frozen=True)
class ControllerState:
    """What the policy remembers between evaluations; the default is the initial GREEN state.

    ``red_since`` is when the current RED spell began. ``last_red_at`` is the last time a rule
    (not the cool-down) decided RED; the cool-down holds RED through that day.
    """

    status: Status = Status.GREEN
    red_since: datetime | None = None
    last_red_at: datetime | None = None
    pause: ManualAction | None = None
    last_resume: ManualAction | None = None

    def __post_init__(self) -> None:
        if (self.status is Status.RED) != (self.red_since is not None):
            raise ValueError("red_since must be set exactly when the status is RED")
        if self.last_red_at is not None and self.red_since is None:
            raise ValueError("last_red_at needs red_since")
        if self.pause is not None and self.status is not Status.RED:
            raise ValueError("a paused controller must be RED")
        for name in ("red_since", "last_red_at"):
            moment = getattr(self, name)
            if moment is not None:
                _require_aware(moment, name)

    @property
    def paused(self) -> bool:
        """Whether trading is manually paused."""
        return self.pause is not None


@dataclass(frozen=True)
class Decision:
    """The status and size multiplier, with every rule evaluated to reach it."""

    status: Status
    multiplier: float
    decided_at: datetime
    rules: tuple[RuleResult, ...]

    def fired_rules(self) -> tuple[RuleResult, ...]:
        """The rules that fired or held, in evaluation order."""
        return tuple(rule for rule in self.rules if rule.fired)

    def reasons(self) -> list[str]:
        """Trader-readable lines explaining the status; empty when GREEN."""
        return [rule.describe() for rule in self.fired_rules()]


def evaluate(
    measurements: Measurements,
    state: ControllerState,
    now: datetime,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    zone: tzinfo = UTC,
) -> Decision:
    """Decide the traffic light from the measurements and the remembered state; the
    cool-down counts days in ``zone``."""
    now = _require_aware(now, "now")
    m, t = measurements, thresholds
    rules = [
        _win_rate_rule(m, t, t.red_win_rate, Status.RED),
        _win_rate_rule(m, t, t.yellow_win_rate, Status.YELLOW),
        _limit_rule("today_loss_pct", m.today_loss_pct, ">", t.max_daily_loss),
        _limit_rule("consecutive_losses", m.consecutive_losses, ">=", t.max_consecutive_losses),
        _drawdown_rule(m.drawdown, t.max_drawdown),
        _pause_rule(state.pause),
    ]
    red_by_rules = any(rule.fired and rule.severity is Status.RED for rule in rules)
    rules.append(_cool_down_rule(state, now, red_by_rules, zone))
    status = max(
        (rule.severity for rule in rules if rule.fired),
        key=_SEVERITY_RANK.__getitem__,
        default=Status.GREEN,
    )
    return Decision(status, t.multiplier(status), now, tuple(rules))


def next_state(state: ControllerState, decision: Decision) -> ControllerState:
    """The state to remember after acting on ``decision`` (which was evaluated from ``state``)."""
    if decision.status is not Status.RED:
        return ControllerState(status=decision.status, last_resume=state.last_resume)
    decided_red = any(
        rule.state is RuleState.FIRED and rule.severity is Status.RED for rule in decision.rules
    )
    return ControllerState(
        status=Status.RED,
        red_since=state.red_since or decision.decided_at,
        last_red_at=decision.decided_at if decided_red else state.last_red_at,
        pause=state.pause,
        last_resume=state.last_resume,
    )


def pause(state: ControllerState, by: str, reason: str, now: datetime) -> ControllerState:
    """Force RED until a manual resume."""
    if state.pause is not None:
        raise ValueError(f"already paused by {state.pause.by}")
    return ControllerState(
        status=Status.RED,
        red_since=state.red_since or _require_aware(now, "now"),
        last_red_at=state.last_red_at,
        pause=ManualAction(by, reason, now),
        last_resume=state.last_resume,
    )


def resume(state: ControllerState, by: str, reason: str, now: datetime) -> ControllerState:
    """Clear a manual pause and any cool-down; the next evaluation lets the numbers decide."""
    return ControllerState(
        status=state.status,
        red_since=state.red_since,
        last_resume=ManualAction(by, reason, now),
    )


def _win_rate_rule(m: Measurements, t: Thresholds, limit: float, severity: Status) -> RuleResult:
    """The RED or the YELLOW line on the win rate of the last trades: ``red_win_rate`` or
    ``yellow_win_rate``, named as their settings are."""
    rule = f"{severity.value}_win_rate"
    if m.win_rate_last_20 is None or m.sample_size < t.min_sample:
        return RuleResult(
            rule,
            severity,
            RuleState.INSUFFICIENT_DATA,
            m.win_rate_last_20,
            limit,
            "<",
            f"{m.sample_size} < {t.min_sample} trades",
            WIN_RATE_MEASURE,
        )
    crossed = _limit_rule(rule, m.win_rate_last_20, "<", limit, severity)
    return replace(crossed, measure=WIN_RATE_MEASURE)


def _drawdown_rule(drawdown: float | None, limit: float) -> RuleResult:
    if drawdown is None:
        return RuleResult(
            "drawdown",
            Status.RED,
            RuleState.INSUFFICIENT_DATA,
            None,
            limit,
            ">=",
            "no equity history",
        )
    return _limit_rule("drawdown", drawdown, ">=", limit)


def _limit_rule(
    rule: str,
    value: float,
    comparison: Comparison,
    limit: float,
    severity: Status = Status.RED,
) -> RuleResult:
    crossed = {"<": value < limit, ">": value > limit, ">=": value >= limit}[comparison]
    state = RuleState.FIRED if crossed else RuleState.OK
    return RuleResult(rule, severity, state, value, limit, comparison)


def _pause_rule(action: ManualAction | None) -> RuleResult:
    if action is None:
        return RuleResult("manual_pause", Status.RED, RuleState.OK, detail="not paused")
    detail = f"paused by {action.by} at {_minute(action.at)} ({action.reason})"
    return RuleResult("manual_pause", Status.RED, RuleState.FIRED, detail=detail)


def _cool_down_rule(
    state: ControllerState, now: datetime, red_by_rules: bool, zone: tzinfo
) -> RuleResult:
    last_red, red_since = state.last_red_at, state.red_since
    if (
        red_by_rules
        or last_red is None
        or red_since is None
        or TradingDay.of(now, zone).day > TradingDay.of(last_red, zone).day
    ):
        return RuleResult("cool_down", Status.RED, RuleState.OK, detail="not holding")
    detail = f"red since {_minute(red_since)}, holds until next {zone} day or resume"
    return RuleResult("cool_down", Status.RED, RuleState.HELD, detail=detail)


def _require_aware(moment: datetime, name: str) -> datetime:
    if moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {moment!r}")
    return moment.astimezone(UTC)


def _minute(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%dT%H:%M}Z"


def _number(x: float) -> str:
    """Integers as-is; fractions with 2 to 4 decimals, the fewest that show the exact value."""
    if isinstance(x, int):
        return str(x)
    for decimals in (2, 3):
        text = f"{x:.{decimals}f}"
        if float(text) == x:
            return text
    return f"{x:.4f}"
