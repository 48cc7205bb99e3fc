"""Domain tests: the P&L maths of ``domain.pnl`` and the invariants of the aggregates.

Expected P&L figures are worked out by hand in the comments, never copied from the code.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import pytest

from domain.errors import ConflictError, DomainError
from domain.events import Causation
from domain.pnl import DEFAULT_BREAKEVEN_PCT, Outcome, classify, hold_minutes, trade_pnl
from domain.signal import Gate, Signal, SignalDraft, signal_uuid
from domain.trade import Fill, Trade, trade_uuid
from domain.values import Direction

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=1)
CAUSE = Causation.command("test", "corr-1")
LONG, SHORT = Direction.LONG, Direction.SHORT
BAD_NUMBERS = [-1.0, 0.0, math.nan, math.inf, -math.inf]


def draft(signal_id: str = "s1", direction: Direction = LONG, **facts: Any) -> SignalDraft:
    return SignalDraft(signal_id=signal_id, symbol="btcusdt", direction=direction, at=T0, **facts)


def signal(direction: Direction = LONG, gate: Gate | None = None, **facts: Any) -> Signal:
    return Signal.record(draft(direction=direction, **facts), gate or Gate(), CAUSE, now=NOW)


def fill(price: float = 100.0, qty: float = 1.0, fee: float = 0.0, at: datetime = T0) -> Fill:
    return Fill.checked(price, qty, fee, at, "entry")


def correct(trade: Trade, reason: str, **changes: Any) -> None:
    """Correct the entry of a trade whose signal was issued at T0."""
    trade.correct_entry(reason, CAUSE, now=NOW, signal_at=T0, **changes)


def kinds(aggregate: Signal | Trade) -> list[str]:
    return [type(e).__qualname__ for e in aggregate.collect_events()]


# P&L maths -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("direction", "entry", "exit_price", "qty", "fees", "gross", "net", "pct"),
    [
        # long 100 -> 110, 2 units: +20 gross, 1 of fees -> 19 net on 200 notional = 9.5 %
        (LONG, 100.0, 110.0, 2.0, 1.0, 20.0, 19.0, 9.5),
        # long 200 -> 190, 0.5 units: -5 gross, 0.5 of fees -> -5.5 on 100 = -5.5 %
        (LONG, 200.0, 190.0, 0.5, 0.5, -5.0, -5.5, -5.5),
        # short 100 -> 90, 1 unit, 0.2 of fees (docs/metrics.md example): 9.8 net, 9.8 %
        (SHORT, 100.0, 90.0, 1.0, 0.2, 10.0, 9.8, 9.8),
        # short 100 -> 105, 3 units: -15 gross, 0.3 fees -> -15.3 on 300 = -5.1 %
        (SHORT, 100.0, 105.0, 3.0, 0.3, -15.0, -15.3, -5.1),
        # short 3000 -> 2900, 2 units, 3 of fees: 200 - 3 = 197 on 6000 = 3.28333 %
        (SHORT, 3000.0, 2900.0, 2.0, 3.0, 200.0, 197.0, 197.0 / 6000.0 * 100.0),
        # flat long with fees is a small loss
        (LONG, 50.0, 50.0, 4.0, 2.0, 0.0, -2.0, -1.0),
    ],
)
def test_trade_pnl_long_and_short_with_qty_and_fees(
    direction: Direction,
    entry: float,
    exit_price: float,
    qty: float,
    fees: float,
    gross: float,
    net: float,
    pct: float,
) -> None:
    pnl = trade_pnl(direction, entry, exit_price, qty, fees)
    assert pnl.gross_quote == pytest.approx(gross)
    assert pnl.net_quote == pytest.approx(net)
    assert pnl.pct == pytest.approx(pct)


def test_short_winner_is_not_a_loser() -> None:
    """The V7 bug: ``exit - entry`` made every winning short a loss."""
    assert trade_pnl(SHORT, 100.0, 80.0).pct > 0
    assert trade_pnl(LONG, 100.0, 80.0).pct < 0
    assert trade_pnl(SHORT, 100.0, 120.0).pct < 0


def test_fees_are_an_amount_not_a_rate() -> None:
    # 0.1 of fees on a 10 000 notional is 0.001 % of it, not 0.1 %
    pnl = trade_pnl(LONG, 10_000.0, 10_000.0, 1.0, 0.1)
    assert pnl.net_quote == pytest.approx(-0.1)
    assert pnl.pct == pytest.approx(-0.001)


def test_pct_does_not_depend_on_qty_without_fees() -> None:
    one = trade_pnl(LONG, 250.0, 260.0, 1.0)
    many = trade_pnl(LONG, 250.0, 260.0, 7.0)
    assert many.net_quote == pytest.approx(7 * one.net_quote)
    assert many.pct == pytest.approx(one.pct) == pytest.approx(4.0)


@pytest.mark.parametrize(
    ("pct", "expected"),
    [
        (0.5, Outcome.BREAKEVEN),
        (-0.5, Outcome.BREAKEVEN),
        (0.0, Outcome.BREAKEVEN),
        (0.4999, Outcome.BREAKEVEN),
        (-0.4999, Outcome.BREAKEVEN),
        (0.5001, Outcome.WIN),
        (math.nextafter(0.5, 1.0), Outcome.BREAKEVEN),  # float noise: rounded away
        (0.500000001, Outcome.WIN),
        (-0.5001, Outcome.LOSS),
        (math.nextafter(-0.5, -1.0), Outcome.BREAKEVEN),
        (-0.500000001, Outcome.LOSS),
        (25.0, Outcome.WIN),
        (-25.0, Outcome.LOSS),
    ],
)
def test_classify_default_threshold(pct: float, expected: Outcome) -> None:
    assert DEFAULT_BREAKEVEN_PCT == 0.5
    assert classify(pct) is expected


@pytest.mark.parametrize(
    ("pct", "threshold", "expected"),
    [
        (0.8, 1.0, Outcome.BREAKEVEN),
        (-0.8, 1.0, Outcome.BREAKEVEN),
        (1.0, 1.0, Outcome.BREAKEVEN),
        (-1.0, 1.0, Outcome.BREAKEVEN),
        (1.01, 1.0, Outcome.WIN),
        (-1.01, 1.0, Outcome.LOSS),
        (0.0, 0.0, Outcome.BREAKEVEN),
        (1e-9, 0.0, Outcome.WIN),
        (-1e-9, 0.0, Outcome.LOSS),
        (0.3, 0.2, Outcome.WIN),
    ],
)
def test_classify_configurable_threshold(pct: float, threshold: float, expected: Outcome) -> None:
    assert classify(pct, threshold) is expected


def test_classify_of_a_real_trade() -> None:
    # long 100 -> 100.4 with no fees: +0.4 % -> breakeven; with a 1.0 threshold, 100 -> 102 win
    assert classify(trade_pnl(LONG, 100.0, 100.4).pct) is Outcome.BREAKEVEN
    assert classify(trade_pnl(SHORT, 100.0, 99.0).pct) is Outcome.WIN
    assert classify(trade_pnl(SHORT, 100.0, 99.0).pct, 1.5) is Outcome.BREAKEVEN


def test_hold_minutes() -> None:
    assert hold_minutes(T0, T0 + timedelta(hours=1, minutes=30)) == pytest.approx(90.0)
    assert hold_minutes(T0, T0 + timedelta(seconds=30)) == pytest.approx(0.5)
    assert hold_minutes(T0, T0) == 0.0
    # 14:00 at UTC+2 is 12:00 UTC: zero minutes after T0, and two days later is 2880
    plus_two = timezone(timedelta(hours=2))
    assert hold_minutes(T0, datetime(2024, 3, 1, 14, 0, tzinfo=plus_two)) == 0.0
    assert hold_minutes(T0, T0 + timedelta(days=2)) == pytest.approx(2880.0)


# Value validation ------------------------------------------------------------------------


@pytest.mark.parametrize("bad", BAD_NUMBERS)
def test_entry_price_must_be_finite_and_positive(bad: float) -> None:
    with pytest.raises(DomainError, match="entry price"):
        Fill.checked(bad, 1.0, 0.0, T0, "entry")


@pytest.mark.parametrize("bad", BAD_NUMBERS)
def test_qty_must_be_finite_and_positive(bad: float) -> None:
    with pytest.raises(DomainError, match="qty"):
        Fill.checked(100.0, bad, 0.0, T0, "entry")


@pytest.mark.parametrize("bad", [-0.01, math.nan, math.inf])
def test_fee_must_be_finite_and_not_negative(bad: float) -> None:
    with pytest.raises(DomainError, match="fee"):
        Fill.checked(100.0, 1.0, bad, T0, "entry")


def test_zero_fee_and_numeric_text_are_accepted() -> None:
    checked = Fill.checked("101.5", "2", 0, T0, "entry")  # type: ignore[arg-type]
    assert (checked.price, checked.qty, checked.fee) == (101.5, 2.0, 0.0)


@pytest.mark.parametrize("bad", [True, "abc", None])
def test_non_numbers_are_refused(bad: object) -> None:
    with pytest.raises(DomainError, match="must be a number"):
        Fill.checked(bad, 1.0, 0.0, T0, "entry")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", BAD_NUMBERS)
def test_exit_price_must_be_finite_and_positive(bad: float) -> None:
    trade = Trade.enter(signal(), fill(), CAUSE, now=NOW)
    with pytest.raises(DomainError, match="exit price"):
        trade.record_exit(bad, 0.0, "manual", T0 + timedelta(hours=1), CAUSE, now=NOW)
    assert trade.is_open
    assert kinds(trade) == ["Trade.EntryRecorded"]


def test_exit_fee_must_not_be_negative() -> None:
    trade = Trade.enter(signal(), fill(), CAUSE, now=NOW)
    with pytest.raises(DomainError, match="fee"):
        trade.record_exit(110.0, -1.0, "manual", T0 + timedelta(hours=1), CAUSE, now=NOW)
    assert trade.is_open


@pytest.mark.parametrize("bad", [-0.01, 1.01, math.nan, math.inf])
def test_confidence_must_be_within_zero_and_one(bad: float) -> None:
    with pytest.raises(DomainError, match="confidence"):
        draft(confidence=bad)


@pytest.mark.parametrize("good", [0.0, 0.5, 1.0])
def test_confidence_bounds_are_inclusive(good: float) -> None:
    assert draft(confidence=good).confidence == good


@pytest.mark.parametrize("name", ["entry_low", "entry_high", "stop_loss", "take_profit"])
@pytest.mark.parametrize("bad", [-5.0, 0.0, math.nan])
def test_signal_levels_must_be_positive(name: str, bad: float) -> None:
    with pytest.raises(DomainError, match=name.replace("_", " ")):
        levels: dict[str, Any] = {name: bad}
        draft(**levels)


@pytest.mark.parametrize(
    ("direction", "facts", "message"),
    [
        (LONG, {"entry_low": 100.0, "stop_loss": 101.0}, "stop loss 101.0 must be below"),
        (LONG, {"entry_low": 100.0, "stop_loss": 100.0}, "stop loss 100.0 must be below"),
        (LONG, {"entry_low": 100.0, "take_profit": 99.0}, "take profit 99.0 must be above"),
        (
            LONG,
            {"entry_low": 100.0, "entry_high": 105.0, "take_profit": 104.0},
            "take profit 104.0 must be above",
        ),
        (LONG, {"stop_loss": 110.0, "take_profit": 100.0}, "must be below take profit"),
        (SHORT, {"entry_low": 100.0, "stop_loss": 99.0}, "stop loss 99.0 must be above"),
        (SHORT, {"entry_low": 100.0, "take_profit": 101.0}, "take profit 101.0 must be below"),
        (
            SHORT,
            {"entry_low": 100.0, "entry_high": 105.0, "stop_loss": 104.0},
            "stop loss 104.0 must be above",
        ),
        (SHORT, {"stop_loss": 90.0, "take_profit": 100.0}, "must be above take profit"),
    ],
)
def test_stop_and_target_on_the_wrong_side_are_refused(
    direction: Direction, facts: dict[str, Any], message: str
) -> None:
    with pytest.raises(DomainError, match=message):
        draft(direction=direction, **facts)


def test_stop_and_target_on_the_right_side_are_accepted() -> None:
    long = draft(direction=LONG, entry_low=100.0, entry_high=102.0, stop_loss=95, take_profit=110)
    short = draft(direction=SHORT, entry_low=100.0, entry_high=102.0, stop_loss=105, take_profit=90)
    assert (long.stop_loss, long.take_profit) == (95.0, 110.0)
    assert (short.stop_loss, short.take_profit) == (105.0, 90.0)


def test_entry_zone_low_above_high_is_refused() -> None:
    with pytest.raises(
        DomainError, match=re.escape("entry zone low 101.0 is above its high 100.0")
    ):
        draft(entry_low=101.0, entry_high=100.0)


def test_entry_zone_of_one_price() -> None:
    assert (draft(entry_low=100.0, entry_high=100.0).entry_low) == 100.0
    only_high = draft(entry_high=120.0)
    assert (only_high.entry_low, only_high.entry_high) == (120.0, 120.0)


def test_entry_price_must_respect_the_signals_levels() -> None:
    long = signal(LONG, stop_loss=95.0, take_profit=110.0)
    with pytest.raises(
        DomainError, match=re.escape("stop loss 95.0 must be below the long entry 94")
    ):
        Trade.enter(long, fill(94.0), CAUSE, now=NOW)
    short = signal(SHORT, stop_loss=105.0, take_profit=90.0)
    with pytest.raises(
        DomainError, match=re.escape("take profit 90.0 must be below the short entry 89")
    ):
        Trade.enter(short, fill(89.0), CAUSE, now=NOW)
    assert Trade.enter(long, fill(100.0), CAUSE, now=NOW).entry.price == 100.0


@pytest.mark.parametrize("text", ["sideways", "", "buy"])
def test_unknown_direction_is_refused(text: str) -> None:
    with pytest.raises(DomainError, match="direction must be 'long' or 'short'"):
        Direction.parse(text)


def test_direction_parse_is_lenient_on_case_and_space() -> None:
    assert Direction.parse(" LONG ") is LONG
    assert Direction.parse("Short") is SHORT


@pytest.mark.parametrize("field", ["signal_id", "symbol", "source"])
def test_empty_text_is_refused(field: str) -> None:
    facts: dict[str, object] = {
        "signal_id": "s1",
        "symbol": "BTCUSDT",
        "direction": LONG,
        "at": T0,
        field: "   ",
    }
    with pytest.raises(DomainError, match="must not be empty"):
        SignalDraft(**facts)  # type: ignore[arg-type]


def test_non_finite_theory_score_is_refused() -> None:
    with pytest.raises(DomainError, match="theory 'a' score"):
        draft(theories={"a": math.nan})


# Trade lifecycle ---------------------------------------------------------------------------


def test_entry_and_exit_give_the_pnl() -> None:
    trade = Trade.enter(signal(SHORT), fill(3000.0, 2.0, 1.5), CAUSE, now=NOW)
    trade.record_exit(2900.0, 1.5, "take_profit", T0 + timedelta(minutes=90), CAUSE, now=NOW)
    pnl = trade.pnl()
    assert pnl is not None
    # (3000 - 2900) * 2 = 200 gross, 3 of fees -> 197 on 6000
    assert pnl.net_quote == pytest.approx(197.0)
    assert pnl.pct == pytest.approx(197.0 / 6000.0 * 100.0)
    assert not trade.is_open
    assert trade.exit_reason == "take_profit"
    assert kinds(trade) == ["Trade.EntryRecorded", "Trade.ExitRecorded"]


def test_open_trade_has_no_pnl() -> None:
    trade = Trade.enter(signal(), fill(), CAUSE, now=NOW)
    assert trade.is_open
    assert trade.pnl() is None


def test_exit_before_entry_is_refused() -> None:
    trade = Trade.enter(signal(), fill(at=T0), CAUSE, now=NOW)
    with pytest.raises(DomainError, match=r"exit time .* is before the entry time"):
        trade.record_exit(110.0, 0.0, "manual", T0 - timedelta(seconds=1), CAUSE, now=NOW)
    assert trade.is_open
    trade.record_exit(110.0, 0.0, "manual", T0, CAUSE, now=NOW)  # the same instant is allowed
    assert not trade.is_open


def test_double_exit_is_refused() -> None:
    trade = Trade.enter(signal(), fill(), CAUSE, now=NOW)
    trade.record_exit(110.0, 0.0, "manual", T0 + timedelta(hours=1), CAUSE, now=NOW)
    with pytest.raises(DomainError, match="already exited at 110"):
        trade.record_exit(120.0, 0.0, "manual", T0 + timedelta(hours=2), CAUSE, now=NOW)
    assert trade.exit is not None
    assert trade.exit.price == 110.0
    assert kinds(trade) == ["Trade.EntryRecorded", "Trade.ExitRecorded"]


def test_entry_on_a_skipped_signal_is_refused() -> None:
    sig = signal()
    sig.skip("not convinced", T0, CAUSE, now=NOW)
    assert sig.skipped
    with pytest.raises(DomainError, match="was skipped"):
        Trade.enter(sig, fill(), CAUSE, now=NOW)


def test_skip_after_trade_is_refused() -> None:
    sig = signal()
    Trade.enter(sig, fill(), CAUSE, now=NOW)
    with pytest.raises(DomainError, match="already traded"):
        sig.skip("changed my mind", T0, CAUSE, now=NOW)
    assert not sig.skipped
    assert kinds(sig) == ["Signal.Recorded", "Signal.Traded"]


def test_double_skip_is_refused() -> None:
    sig = signal()
    sig.skip("no", T0, CAUSE, now=NOW)
    with pytest.raises(DomainError, match="already skipped"):
        sig.skip("no again", T0, CAUSE, now=NOW)
    assert kinds(sig) == ["Signal.Recorded", "Signal.Skipped"]


def test_blocked_signal_needs_force() -> None:
    blocked = signal(gate=Gate(status="red", multiplier=0.0))
    assert blocked.gate.blocked
    with pytest.raises(DomainError, match="blocked by the controller \\(red\\); use --force"):
        Trade.enter(blocked, fill(), CAUSE, now=NOW)
    trade = Trade.enter(blocked, fill(), CAUSE, now=NOW, forced=True)
    events = trade.collect_events()
    assert isinstance(events[0], Trade.EntryRecorded)
    assert events[0].forced is True


def test_force_on_an_unblocked_signal_is_not_recorded_as_forced() -> None:
    trade = Trade.enter(
        signal(gate=Gate(status="amber", multiplier=0.5)), fill(), CAUSE, now=NOW, forced=True
    )
    event = trade.collect_events()[0]
    assert isinstance(event, Trade.EntryRecorded)
    assert event.forced is False


def test_entry_correction_keeps_history() -> None:
    trade = Trade.enter(signal(), fill(100.0, 1.0, 0.1), CAUSE, now=NOW)
    correct(trade, "typo", price=98.0, qty=2.0, fee=0.2, at=T0 + timedelta(minutes=5))
    assert (trade.entry.price, trade.entry.qty, trade.entry.fee) == (98.0, 2.0, 0.2)
    events = trade.collect_events()
    assert [type(e).__qualname__ for e in events] == ["Trade.EntryRecorded", "Trade.EntryCorrected"]
    first, second = events
    assert isinstance(first, Trade.EntryRecorded)
    assert isinstance(second, Trade.EntryCorrected)
    assert first.price == 100.0  # the wrong entry stays in history
    assert (second.price, second.qty, second.reason) == (98.0, 2.0, "typo")
    trade.record_exit(108.0, 0.0, "manual", T0 + timedelta(hours=1), CAUSE, now=NOW)
    pnl = trade.pnl()
    assert pnl is not None
    # P&L on the corrected entry: (108 - 98) * 2 - 0.2 = 19.8 on 196
    assert pnl.net_quote == pytest.approx(19.8)
    assert pnl.pct == pytest.approx(19.8 / 196.0 * 100.0)


def test_entry_correction_after_the_exit_time_is_refused() -> None:
    trade = Trade.enter(signal(), fill(at=T0), CAUSE, now=NOW)
    exit_at = T0 + timedelta(hours=1)
    trade.record_exit(110.0, 0.0, "manual", exit_at, CAUSE, now=NOW)
    with pytest.raises(DomainError, match=r"corrected entry time .* is after the exit"):
        correct(trade, "late", price=99.0, at=exit_at + timedelta(seconds=1))
    assert trade.entry.price == 100.0
    correct(trade, "at the exit is fine", price=99.0, at=exit_at)
    assert trade.entry.price == 99.0


def test_entry_correction_with_the_same_values_is_refused() -> None:
    trade = Trade.enter(signal(), fill(), CAUSE, now=NOW)
    with pytest.raises(DomainError, match="already has these values"):
        correct(trade, "nothing", price=100.0, qty=1.0, fee=0.0, at=T0)


def test_entry_correction_must_respect_the_levels() -> None:
    trade = Trade.enter(signal(LONG, stop_loss=95.0), fill(100.0), CAUSE, now=NOW)
    with pytest.raises(DomainError, match=re.escape("stop loss 95.0 must be below")):
        correct(trade, "typo", price=90.0)


# Time zones ---------------------------------------------------------------------------------

NAIVE = datetime(2024, 3, 1, 12, 0)


def test_naive_signal_time_is_refused() -> None:
    with pytest.raises(DomainError, match="has no time zone"):
        SignalDraft(signal_id="s1", symbol="BTCUSDT", direction=LONG, at=NAIVE)


def test_naive_entry_time_is_refused() -> None:
    with pytest.raises(DomainError, match="has no time zone"):
        Fill.checked(100.0, 1.0, 0.0, NAIVE, "entry")


def test_naive_exit_and_skip_times_are_refused() -> None:
    trade = Trade.enter(signal(), fill(), CAUSE, now=NOW)
    with pytest.raises(DomainError, match="has no time zone"):
        trade.record_exit(110.0, 0.0, "manual", NAIVE, CAUSE, now=NOW)
    with pytest.raises(DomainError, match="has no time zone"):
        signal().skip("no", NAIVE, CAUSE, now=NOW)


def test_times_are_stored_in_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    local = datetime(2024, 3, 1, 14, 0, tzinfo=plus_two)
    assert fill(at=local).at == T0
    assert fill(at=local).at.utcoffset() == timedelta(0)
    assert draft().at == T0


# Identity -------------------------------------------------------------------------------------


def test_signal_ids_are_deterministic() -> None:
    assert signal_uuid("v7-42") == signal_uuid("v7-42")
    assert signal_uuid("v7-42") != signal_uuid("v7-43")
    assert isinstance(signal_uuid("v7-42"), UUID)
    assert signal_uuid("v7-42").version == 5
    first = Signal.record(draft("v7-42"), Gate(), CAUSE, now=NOW)
    again = Signal.record(draft(" v7-42 "), Gate(), CAUSE, now=NOW)  # stripped to the same id
    assert first.id == again.id == signal_uuid("v7-42")
    assert Signal.create_id("v7-42") == first.id


def test_trade_id_follows_the_signal_id() -> None:
    trade = Trade.enter(Signal.record(draft("abc"), Gate(), CAUSE, now=NOW), fill(), CAUSE, now=NOW)
    assert trade.id == trade_uuid("abc")
    assert trade_uuid("abc") != signal_uuid("abc")
    assert trade_uuid("abc") != trade_uuid("abd")


def test_same_signal_with_other_facts_is_a_conflict_naming_the_field() -> None:
    recorded = Signal.record(draft(confidence=0.6), Gate(), CAUSE, now=NOW)
    recorded.check_same_as(draft(confidence=0.6))  # same facts: fine
    later = SignalDraft(
        signal_id="s1", symbol="BTCUSDT", direction=LONG, at=T0 + timedelta(hours=1), confidence=0.6
    )
    recorded.check_same_as(later, timed=False)  # a retry stamped "now": its time is not a fact
    with pytest.raises(ConflictError, match=r"different time$"):
        recorded.check_same_as(later)  # another time given: a conflict
    with pytest.raises(ConflictError, match=r"different confidence$"):
        recorded.check_same_as(draft(confidence=0.7))
    with pytest.raises(ConflictError, match=r"different direction, confidence$"):
        recorded.check_same_as(draft(direction=SHORT, confidence=0.7))
