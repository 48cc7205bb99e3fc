"""The traffic-light controller policy, as a table of cases."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.controller_policy import (
    ControllerState,
    Decision,
    Measurements,
    RuleResult,
    RuleState,
    Status,
    Thresholds,
    evaluate,
    next_state,
    pause,
    resume,
)

RED_AT = datetime(2026, 11, 20, 14, 3, tzinfo=UTC)
LATER_SAME_DAY = datetime(2026, 11, 20, 23, 59, tzinfo=UTC)
NEXT_DAY = datetime(2026, 11, 21, 0, 0, tzinfo=UTC)

RED_WIN_RATE = "red_win_rate"
YELLOW_WIN_RATE = "yellow_win_rate"
ALL_RULES = (
    RED_WIN_RATE,
    YELLOW_WIN_RATE,
    "today_loss_pct",
    "consecutive_losses",
    "drawdown",
    "manual_pause",
    "cool_down",
)


def measure(
    win_rate: float | None = 0.80,
    trades: int = 20,
    pnl: float = 0.0,
    losses: int = 0,
    drawdown: float | None = 0.0,
) -> Measurements:
    """Healthy numbers unless told otherwise."""
    return Measurements(
        win_rate_last_20=win_rate,
        sample_size=trades,
        today_pnl_fraction=pnl,
        consecutive_losses=losses,
        drawdown=drawdown,
    )


def fired(decision: Decision) -> set[tuple[str, Status]]:
    return {(rule.rule, rule.severity) for rule in decision.fired_rules()}


def rule(decision: Decision, name: str, severity: Status = Status.RED) -> RuleResult:
    (found,) = (r for r in decision.rules if r.rule == name and r.severity is severity)
    return found


def red_state() -> ControllerState:
    """The state after the numbers turned RED at RED_AT."""
    decision = evaluate(measure(losses=5), ControllerState(), RED_AT)
    return next_state(ControllerState(), decision)


WR_RED = (RED_WIN_RATE, Status.RED)
WR_YELLOW = (YELLOW_WIN_RATE, Status.YELLOW)
DAILY = ("today_loss_pct", Status.RED)
STREAK = ("consecutive_losses", Status.RED)
DRAWDOWN = ("drawdown", Status.RED)

POLICY_TABLE: list[Any] = [
    pytest.param({}, Status.GREEN, set(), id="healthy"),
    # win rate over the last 20 trades
    pytest.param({"win_rate": 12 / 20}, Status.RED, {WR_RED, WR_YELLOW}, id="win-rate-0.60"),
    pytest.param({"win_rate": 13 / 20}, Status.YELLOW, {WR_YELLOW}, id="win-rate-exactly-0.65"),
    pytest.param({"win_rate": 0.68}, Status.YELLOW, {WR_YELLOW}, id="win-rate-0.68"),
    pytest.param({"win_rate": 14 / 20}, Status.GREEN, set(), id="win-rate-exactly-0.70"),
    pytest.param({"win_rate": 0.0}, Status.RED, {WR_RED, WR_YELLOW}, id="win-rate-zero"),
    # today's loss
    pytest.param({"pnl": -0.04}, Status.GREEN, set(), id="daily-loss-exactly-4%"),
    pytest.param({"pnl": -0.0401}, Status.RED, {DAILY}, id="daily-loss-4.01%"),
    pytest.param({"pnl": -0.05}, Status.RED, {DAILY}, id="daily-loss-5%"),
    pytest.param({"pnl": 0.10}, Status.GREEN, set(), id="daily-profit"),
    # losing streak
    pytest.param({"losses": 4}, Status.GREEN, set(), id="4-losses-in-a-row"),
    pytest.param({"losses": 5}, Status.RED, {STREAK}, id="5-losses-in-a-row"),
    pytest.param({"losses": 8}, Status.RED, {STREAK}, id="8-losses-in-a-row"),
    # drawdown from the equity peak
    pytest.param({"drawdown": 0.1499}, Status.GREEN, set(), id="drawdown-14.99%"),
    pytest.param({"drawdown": 0.15}, Status.RED, {DRAWDOWN}, id="drawdown-exactly-15%"),
    pytest.param({"drawdown": None}, Status.GREEN, set(), id="drawdown-unknown"),
    # minimum sample for the win-rate rules
    pytest.param({"win_rate": 0.1, "trades": 9}, Status.GREEN, set(), id="9-trades-too-few"),
    pytest.param(
        {"win_rate": 0.1, "trades": 10}, Status.RED, {WR_RED, WR_YELLOW}, id="10-trades-enough"
    ),
    pytest.param({"win_rate": None, "trades": 0}, Status.GREEN, set(), id="no-trades"),
    # combinations: RED wins, every fired rule is listed
    pytest.param(
        {"win_rate": 0.68, "losses": 5}, Status.RED, {WR_YELLOW, STREAK}, id="yellow-and-red"
    ),
    pytest.param(
        {"win_rate": 0.68, "pnl": -0.03, "drawdown": 0.10},
        Status.YELLOW,
        {WR_YELLOW},
        id="yellow-with-losses-inside-limits",
    ),
    pytest.param(
        {"win_rate": 0.5, "pnl": -0.06, "losses": 6, "drawdown": 0.2},
        Status.RED,
        {WR_RED, WR_YELLOW, DAILY, STREAK, DRAWDOWN},
        id="everything-wrong",
    ),
    pytest.param(
        {"win_rate": 0.1, "trades": 4, "pnl": -0.05},
        Status.RED,
        {DAILY},
        id="too-few-trades-but-daily-loss",
    ),
]


@pytest.mark.parametrize(("numbers", "status", "fired_rules"), POLICY_TABLE)
def test_policy_table(
    numbers: dict[str, Any], status: Status, fired_rules: set[tuple[str, Status]]
) -> None:
    decision = evaluate(measure(**numbers), ControllerState(), RED_AT)

    assert decision.status is status
    assert fired(decision) == fired_rules
    assert tuple(r.rule for r in decision.rules) == ALL_RULES
    assert decision.decided_at == RED_AT


@pytest.mark.parametrize(
    ("numbers", "multiplier"),
    [({}, 1.0), ({"win_rate": 0.68}, 0.5), ({"losses": 5}, 0.0)],
)
def test_multiplier_follows_status(numbers: dict[str, Any], multiplier: float) -> None:
    assert evaluate(measure(**numbers), ControllerState(), RED_AT).multiplier == multiplier


def test_multipliers_are_configurable() -> None:
    thresholds = Thresholds(green_multiplier=0.8, yellow_multiplier=0.25, red_multiplier=0.0)

    decision = evaluate(measure(win_rate=0.68), ControllerState(), RED_AT, thresholds)

    assert decision.multiplier == 0.25
    assert thresholds.multiplier(Status.GREEN) == 0.8


@pytest.mark.parametrize(
    ("win_rate", "trades", "state"),
    [
        (0.1, 9, RuleState.INSUFFICIENT_DATA),
        (None, 0, RuleState.INSUFFICIENT_DATA),
        (0.1, 10, RuleState.FIRED),
        (0.9, 10, RuleState.OK),
    ],
)
def test_win_rate_rules_report_the_sample(
    win_rate: float | None, trades: int, state: RuleState
) -> None:
    decision = evaluate(measure(win_rate=win_rate, trades=trades), ControllerState(), RED_AT)

    assert rule(decision, RED_WIN_RATE, Status.RED).state is state
    assert rule(decision, YELLOW_WIN_RATE, Status.YELLOW).state is state


def test_min_sample_and_window_are_configurable() -> None:
    thresholds = Thresholds(min_sample=3, window=5)

    decision = evaluate(measure(win_rate=1 / 3, trades=3), ControllerState(), RED_AT, thresholds)

    assert decision.status is Status.RED


@pytest.mark.parametrize(
    ("numbers", "name", "severity", "text"),
    [
        (
            {"win_rate": 0.60},
            RED_WIN_RATE,
            Status.RED,
            "red_win_rate: win_rate_last_20 = 0.60 < 0.65",
        ),
        (
            {"win_rate": 0.60},
            YELLOW_WIN_RATE,
            Status.YELLOW,
            "yellow_win_rate: win_rate_last_20 = 0.60 < 0.70",
        ),
        (
            {"win_rate": 0.8},
            RED_WIN_RATE,
            Status.RED,
            "red_win_rate: win_rate_last_20 = 0.80 >= 0.65 (ok)",
        ),
        (
            {"win_rate": 0.1, "trades": 4},
            RED_WIN_RATE,
            Status.RED,
            "red_win_rate: insufficient data (4 < 10 trades)",
        ),
        (
            {"win_rate": None, "trades": 0},
            YELLOW_WIN_RATE,
            Status.YELLOW,
            "yellow_win_rate: insufficient data (0 < 10 trades)",
        ),
        ({"losses": 5}, "consecutive_losses", Status.RED, "consecutive_losses = 5 >= 5"),
        ({"losses": 4}, "consecutive_losses", Status.RED, "consecutive_losses = 4 < 5 (ok)"),
        ({"pnl": -0.0401}, "today_loss_pct", Status.RED, "today_loss_pct = 0.0401 > 0.04"),
        ({"pnl": 0.02}, "today_loss_pct", Status.RED, "today_loss_pct = 0.00 <= 0.04 (ok)"),
        ({"drawdown": 0.2}, "drawdown", Status.RED, "drawdown = 0.20 >= 0.15"),
        (
            {"drawdown": None},
            "drawdown",
            Status.RED,
            "drawdown: insufficient data (no equity history)",
        ),
        ({}, "manual_pause", Status.RED, "manual_pause: not paused"),
        ({}, "cool_down", Status.RED, "cool_down: not holding"),
    ],
)
def test_describe(numbers: dict[str, Any], name: str, severity: Status, text: str) -> None:
    decision = evaluate(measure(**numbers), ControllerState(), RED_AT)

    assert rule(decision, name, severity).describe() == text


def test_reasons_list_every_fired_rule_in_order() -> None:
    decision = evaluate(measure(win_rate=0.60, losses=5), ControllerState(), RED_AT)

    assert decision.reasons() == [
        "red_win_rate: win_rate_last_20 = 0.60 < 0.65",
        "yellow_win_rate: win_rate_last_20 = 0.60 < 0.70",
        "consecutive_losses = 5 >= 5",
    ]


def test_green_has_no_reasons() -> None:
    assert evaluate(measure(), ControllerState(), RED_AT).reasons() == []


# cool-down


def test_red_holds_for_the_rest_of_the_utc_day() -> None:
    decision = evaluate(measure(), red_state(), LATER_SAME_DAY)

    assert decision.status is Status.RED
    assert decision.multiplier == 0.0
    assert fired(decision) == {("cool_down", Status.RED)}
    assert rule(decision, "cool_down").state is RuleState.HELD
    assert decision.reasons() == [
        "cool_down: red since 2026-11-20T14:03Z, holds until next UTC day or resume"
    ]


def test_held_red_still_lists_a_yellow_rule() -> None:
    decision = evaluate(measure(win_rate=0.68), red_state(), LATER_SAME_DAY)

    assert decision.status is Status.RED
    assert fired(decision) == {WR_YELLOW, ("cool_down", Status.RED)}


def test_cool_down_is_not_reported_while_the_numbers_are_red() -> None:
    decision = evaluate(measure(losses=6), red_state(), LATER_SAME_DAY)

    assert fired(decision) == {STREAK}
    assert rule(decision, "cool_down").state is RuleState.OK


def test_next_utc_day_lets_the_numbers_decide() -> None:
    state = red_state()
    decision = evaluate(measure(), state, NEXT_DAY)

    assert decision.status is Status.GREEN
    assert next_state(state, decision) == ControllerState()


def test_next_utc_day_with_bad_numbers_stays_red_since_the_first_decision() -> None:
    state = red_state()
    decision = evaluate(measure(losses=5), state, NEXT_DAY)
    after = next_state(state, decision)

    assert decision.status is Status.RED
    assert after.red_since == RED_AT
    assert after.last_red_at == NEXT_DAY


def test_red_again_on_a_later_day_holds_through_that_day() -> None:
    state = red_state()
    state = next_state(state, evaluate(measure(losses=5), state, NEXT_DAY))

    held = evaluate(measure(), state, NEXT_DAY + timedelta(hours=12))
    recovered = evaluate(measure(), state, NEXT_DAY + timedelta(days=1))

    assert held.status is Status.RED
    assert held.reasons() == [
        "cool_down: red since 2026-11-20T14:03Z, holds until next UTC day or resume"
    ]
    assert recovered.status is Status.GREEN


def test_a_held_red_does_not_extend_the_cool_down() -> None:
    state = red_state()
    state = next_state(state, evaluate(measure(), state, LATER_SAME_DAY))

    assert state.last_red_at == RED_AT
    assert evaluate(measure(), state, NEXT_DAY).status is Status.GREEN


def test_cool_down_counts_utc_days_not_local_days() -> None:
    state = red_state()
    local_midnight_passed = datetime(2026, 11, 21, 0, 30, tzinfo=timezone(timedelta(hours=2)))

    assert evaluate(measure(), state, local_midnight_passed).status is Status.RED


def test_resume_clears_the_cool_down() -> None:
    state = resume(red_state(), "alice", "checked the numbers", RED_AT + timedelta(hours=1))

    decision = evaluate(measure(), state, RED_AT + timedelta(hours=2))

    assert decision.status is Status.GREEN
    assert state.last_resume is not None
    assert state.last_resume.by == "alice"


# manual pause


def test_pause_forces_red_whatever_the_numbers() -> None:
    state = pause(ControllerState(), "alice", "tilted", datetime(2026, 11, 20, 15, tzinfo=UTC))

    decision = evaluate(measure(), state, NEXT_DAY + timedelta(days=3))

    assert state.paused
    assert state.status is Status.RED
    assert decision.status is Status.RED
    assert fired(decision) == {("manual_pause", Status.RED)}
    assert decision.reasons() == ["manual_pause: paused by alice at 2026-11-20T15:00Z (tilted)"]


def test_pause_survives_next_state() -> None:
    state = pause(ControllerState(), "alice", "tilted", RED_AT)
    state = next_state(state, evaluate(measure(), state, NEXT_DAY))

    assert state.paused
    assert evaluate(measure(), state, NEXT_DAY + timedelta(days=1)).status is Status.RED


def test_resume_after_pause_lets_the_numbers_decide() -> None:
    paused = pause(red_state(), "alice", "tilted", RED_AT + timedelta(minutes=5))
    paused = next_state(paused, evaluate(measure(), paused, RED_AT + timedelta(minutes=10)))
    resumed = resume(paused, "bob", "calm again", RED_AT + timedelta(hours=1))

    assert not resumed.paused
    assert evaluate(measure(), resumed, LATER_SAME_DAY).status is Status.GREEN
    assert evaluate(measure(win_rate=0.68), resumed, LATER_SAME_DAY).status is Status.YELLOW
    assert evaluate(measure(losses=5), resumed, LATER_SAME_DAY).status is Status.RED


def test_pause_keeps_the_start_of_an_ongoing_red() -> None:
    state = pause(red_state(), "alice", "tilted", LATER_SAME_DAY)

    assert state.red_since == RED_AT


def test_pausing_twice_is_refused() -> None:
    state = pause(ControllerState(), "alice", "tilted", RED_AT)

    with pytest.raises(ValueError, match="already paused by alice"):
        pause(state, "bob", "me too", RED_AT)


@pytest.mark.parametrize(("by", "reason"), [("", "tilted"), ("alice", "  ")])
def test_manual_actions_need_who_and_why(by: str, reason: str) -> None:
    with pytest.raises(ValueError, match="must"):
        pause(ControllerState(), by, reason, RED_AT)
    with pytest.raises(ValueError, match="must"):
        resume(ControllerState(), by, reason, RED_AT)


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        evaluate(measure(), ControllerState(), datetime(2026, 11, 20, 14, 3))


# validation


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"red_win_rate": 0.75}, "Thresholds.red_win_rate must be within [0, yellow_win_rate=0.7]"),
        ({"red_win_rate": -0.1}, "Thresholds.red_win_rate"),
        ({"red_win_rate": math.nan}, "Thresholds.red_win_rate"),
        ({"yellow_win_rate": 1.5}, "Thresholds.yellow_win_rate must be within [0, 1], got 1.5"),
        ({"max_daily_loss": 0.0}, "Thresholds.max_daily_loss must be within (0, 1], got 0.0"),
        ({"max_consecutive_losses": 0}, "Thresholds.max_consecutive_losses must be >= 1, got 0"),
        ({"max_drawdown": 0.0}, "Thresholds.max_drawdown"),
        ({"window": 0, "min_sample": 0}, "Thresholds.window must be >= 1, got 0"),
        ({"min_sample": -1}, "Thresholds.min_sample must be within [0, window=20], got -1"),
        ({"min_sample": 21}, "Thresholds.min_sample"),
        ({"green_multiplier": 1.5}, "Thresholds.green_multiplier"),
        ({"yellow_multiplier": 1.5}, "Thresholds.yellow_multiplier"),
        ({"red_multiplier": 0.6}, "Thresholds.red_multiplier"),
    ],
)
def test_thresholds_reject_bad_values(bad: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        Thresholds(**bad)

    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "bad",
    [
        {"win_rate": 1.2},
        {"win_rate": math.nan},
        {"win_rate": 0.5, "trades": 0},
        {"win_rate": None, "trades": 3},
        {"trades": -1},
        {"pnl": math.inf},
        {"losses": -1},
        {"drawdown": -0.1},
    ],
)
def test_measurements_reject_impossible_numbers(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must"):
        measure(**bad)


# properties


measurements = st.builds(
    measure,
    win_rate=st.floats(0, 1),
    trades=st.integers(1, 20),
    pnl=st.floats(-1, 1),
    losses=st.integers(0, 10),
    drawdown=st.none() | st.floats(0, 1),
)


@given(measurements)
def test_status_is_the_most_severe_fired_rule(m: Measurements) -> None:
    decision = evaluate(m, ControllerState(), RED_AT)
    severities = {r.severity for r in decision.fired_rules()}

    expected = max(
        severities, key=[Status.GREEN, Status.YELLOW, Status.RED].index, default=Status.GREEN
    )
    assert decision.status is expected
    assert decision.multiplier == Thresholds().multiplier(expected)


@given(measurements, st.floats(0, 1))
def test_a_worse_win_rate_never_improves_the_light(m: Measurements, worse: float) -> None:
    order = [Status.GREEN, Status.YELLOW, Status.RED].index
    assert m.win_rate_last_20 is not None
    worse_m = measure(
        win_rate=min(worse, m.win_rate_last_20),
        trades=m.sample_size,
        pnl=m.today_pnl_fraction,
        losses=m.consecutive_losses,
        drawdown=m.drawdown,
    )

    before = evaluate(m, ControllerState(), RED_AT).status
    after = evaluate(worse_m, ControllerState(), RED_AT).status

    assert order(after) >= order(before)
