"""The rules of the door, in the domain: what every intake (command, import, generator)
gets for free. Pure tests, no database; the same rules through the CLI and the import are
in ``test_bad_input.py``."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from domain.errors import DomainError
from domain.events import Causation
from domain.pnl import Outcome, classify, trade_pnl
from domain.signal import Gate, QualityGate, Signal, SignalDraft
from domain.trade import Fill, Trade
from domain.values import (
    FUTURE_TOLERANCE,
    Direction,
    clean_text,
    plausible_time,
    valid_price,
    valid_quantity,
)

NOW = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
T0 = NOW - timedelta(days=1)
CAUSE = Causation.command("test", "corr")
LONG, SHORT = Direction.LONG, Direction.SHORT


def draft(**facts: Any) -> SignalDraft:
    facts.setdefault("at", T0)
    return SignalDraft(signal_id=facts.pop("signal_id", "s1"), symbol="BTCUSDT", **facts)


def signal(**facts: Any) -> Signal:
    facts.setdefault("direction", LONG)
    return Signal.record(draft(**facts), Gate(), CAUSE, now=NOW)


def entered(price: float = 100.0, qty: float = 1.0, at: datetime = T0) -> Trade:
    return Trade.enter(signal(), Fill.checked(price, qty, 0.0, at, "entry"), CAUSE, now=NOW)


# Times -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "message"),
    [
        (datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC), "is more than 5 minutes ahead of now"),
        (NOW + FUTURE_TOLERANCE + timedelta(seconds=1), "is more than 5 minutes ahead of now"),
        (datetime(226, 11, 30, 10, tzinfo=UTC), r"0226-11-30T10:00:00\+00:00 is before 2009-01-01"),
        (datetime(2008, 12, 31, 23, 59, tzinfo=UTC), "is before 2009-01-01"),
        # the offset pushes it past the largest datetime: refused, not an OverflowError
        (datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-5))), "is out of range"),
        (datetime(1, 1, 1, 0, 0, tzinfo=timezone(timedelta(hours=5))), "is out of range"),
    ],
)
def test_implausible_times_are_refused(moment: datetime, message: str) -> None:
    with pytest.raises(DomainError, match=message):
        plausible_time("exit time", moment, NOW)


def test_the_clock_tolerance_and_the_earliest_day_are_accepted() -> None:
    assert plausible_time("t", NOW + FUTURE_TOLERANCE, NOW) == NOW + FUTURE_TOLERANCE
    assert plausible_time("t", datetime(2009, 1, 1, tzinfo=UTC), NOW).year == 2009
    plus_two = timezone(timedelta(hours=2))
    assert plausible_time("t", datetime(2026, 11, 30, 18, tzinfo=plus_two), NOW) == NOW


def test_every_fact_time_meets_the_clock() -> None:
    ahead = NOW + timedelta(hours=1)
    with pytest.raises(DomainError, match=r"signal time .* ahead of now"):
        Signal.record(draft(direction=LONG, at=ahead), Gate(), CAUSE, now=NOW)
    with pytest.raises(DomainError, match=r"entry time .* ahead of now"):
        entered(at=ahead)
    trade = entered()
    with pytest.raises(DomainError, match=r"exit time .* ahead of now"):
        trade.record_exit(110.0, 0.0, "manual", ahead, CAUSE, now=NOW)
    with pytest.raises(DomainError, match=r"skip time .* ahead of now"):
        signal().skip("no", ahead, CAUSE, now=NOW)
    with pytest.raises(DomainError, match="signal time 2008"):
        draft(direction=LONG, at=datetime(2008, 6, 1, tzinfo=UTC))
    with pytest.raises(DomainError, match="entry time 2008"):
        Fill.checked(100.0, 1.0, 0.0, datetime(2008, 6, 1, tzinfo=UTC), "entry")


def test_an_entry_and_a_skip_may_not_precede_their_signal() -> None:
    early = T0 - timedelta(minutes=1)
    with pytest.raises(DomainError, match=r"entry time .* is before the signal time"):
        entered(at=early)
    with pytest.raises(DomainError, match=r"skip time .* is before the signal time"):
        signal().skip("no", early, CAUSE, now=NOW)
    trade = entered(at=T0)
    with pytest.raises(DomainError, match=r"entry time .* is before the signal time"):
        trade.correct_entry("typo", CAUSE, now=NOW, signal_at=T0, at=early)
    with pytest.raises(DomainError, match=r"exit time .* is before the entry time"):
        trade.record_exit(110.0, 0.0, "manual", early, CAUSE, now=NOW)


# Numbers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [1e-200, 5e-324, 1e-13, 1e13, 1e308, math.inf, 0.0, -1.0])
def test_prices_outside_the_range_are_refused(bad: float) -> None:
    with pytest.raises(DomainError, match="entry price"):
        Fill.checked(bad, 1.0, 0.0, T0, "entry")
    with pytest.raises(DomainError, match="exit price"):
        entered().record_exit(bad, 0.0, "manual", NOW, CAUSE, now=NOW)
    with pytest.raises(DomainError, match="stop loss"):
        draft(direction=SHORT, stop_loss=bad)


@pytest.mark.parametrize("bad", [1e-200, 5e-324, 1e-13, 1e16, 1e308])
def test_quantities_outside_the_range_are_refused(bad: float) -> None:
    with pytest.raises(DomainError, match="qty"):
        Fill.checked(100.0, bad, 0.0, T0, "entry")
    with pytest.raises(DomainError, match="position size"):
        draft(direction=LONG, position_size=bad)


def test_the_range_ends_are_accepted_and_their_pnl_is_finite() -> None:
    assert valid_price("p", 1e-12) == 1e-12 and valid_price("p", 1e12) == 1e12
    assert valid_quantity("q", 1e-12) == 1e-12 and valid_quantity("q", 1e15) == 1e15
    for entry, exit_price, qty in [(1e-12, 1e12, 1e15), (1e12, 1e-12, 1e15), (1e-12, 2e-12, 1e-12)]:
        for direction in (LONG, SHORT):
            pnl = trade_pnl(direction, entry, exit_price, qty, 0.0)
            assert all(math.isfinite(x) for x in (pnl.gross_quote, pnl.net_quote, pnl.pct))


def test_a_fee_above_the_notional_is_refused() -> None:
    with pytest.raises(DomainError, match="fee 101 is larger than the notional 100"):
        Fill.checked(100.0, 1.0, 101.0, T0, "entry")
    assert Fill.checked(100.0, 1.0, 100.0, T0, "entry").fee == 100.0
    with pytest.raises(DomainError, match="fee 5 is larger than the notional 4"):
        entered(qty=0.04).record_exit(100.0, 5.0, "manual", NOW, CAUSE, now=NOW)


@pytest.mark.parametrize("bad", [1e308, -1e7, math.inf, math.nan])
def test_theory_scores_outside_the_range_are_refused(bad: float) -> None:
    with pytest.raises(DomainError, match="theory 'x' score"):
        draft(direction=LONG, theories={"x": bad})


def test_theories_and_quality_gates_are_bounded() -> None:
    with pytest.raises(DomainError, match="at most 100 theories"):
        draft(direction=LONG, theories={f"t{i}": 0.1 for i in range(101)})
    with pytest.raises(DomainError, match="quality gate 'liquidity' value"):
        draft(direction=LONG, quality_gates={"liquidity": QualityGate(math.inf, 1.0, True)})


def test_a_pnl_that_cannot_be_computed_is_refused() -> None:
    with pytest.raises(DomainError, match=r"notional 0\.0 is not a positive normal number"):
        trade_pnl(LONG, 1e-200, 2e-200, 1e-200)
    with pytest.raises(DomainError, match="not a positive normal number"):
        trade_pnl(LONG, 5e-324, 1.0, 1.0)
    with pytest.raises(DomainError, match="notional inf"):
        trade_pnl(LONG, 1e308, 1.5e308, 2.0)


# The breakeven boundary -----------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1e-9, 1e-4, 0.1, 1.0, 100.0, 64_000.0, 1e9])
def test_half_a_percent_is_a_breakeven_at_every_price_level(scale: float) -> None:
    """0.1 → 0.1005 computes as +0.5000000000000004 %: still the same +0.5 %."""
    assert classify(trade_pnl(LONG, scale, scale * 1.005).pct) is Outcome.BREAKEVEN
    assert classify(trade_pnl(SHORT, scale, scale * 0.995).pct) is Outcome.BREAKEVEN
    assert classify(trade_pnl(LONG, scale, scale * 0.995).pct) is Outcome.BREAKEVEN
    assert classify(trade_pnl(LONG, scale, scale * 1.00501).pct) is Outcome.WIN
    assert classify(trade_pnl(SHORT, scale, scale * 1.00501).pct) is Outcome.LOSS


def test_the_issue_examples_are_breakevens() -> None:
    assert trade_pnl(LONG, 0.1, 0.1005).pct != 0.5  # the float noise the rounding removes
    for direction, entry, exit_price in [
        (LONG, 100.0, 100.5),
        (LONG, 0.1, 0.1005),
        (SHORT, 0.1, 0.0995),
    ]:
        assert classify(trade_pnl(direction, entry, exit_price).pct) is Outcome.BREAKEVEN


# Text ------------------------------------------------------------------------------------------

CONTROL = ["\x00", "\x07", "\x1b[31m", "\x7f", "\x85", "\x9b", "\u202e", "\u2066", "\u2028", "a\nb"]


@pytest.mark.parametrize("bad", CONTROL)
def test_control_characters_are_refused(bad: str) -> None:
    with pytest.raises(DomainError, match=r"^symbol contains the control character U\+"):
        clean_text("symbol", f"BTC{bad}USDT")


@pytest.mark.parametrize(
    ("field", "facts"),
    [
        ("signal id", {"signal_id": "s\x00"}),
        ("source", {"source": "v7\u202e"}),
        ("timeframe", {"timeframe": "15m\x1b"}),
        ("model version", {"model_version": "v\x857"}),
        ("inputs digest", {"inputs_digest": "ab\x00"}),
        ("theory name", {"theories": {"mo\x00m": 0.5}}),
        ("quality gate name", {"quality_gates": {"li\x07q": QualityGate(1.0, 1.0, True)}}),
    ],
)
def test_every_text_field_of_a_signal_is_clean(field: str, facts: dict[str, Any]) -> None:
    with pytest.raises(DomainError, match=f"^{field} contains the control character"):
        draft(direction=LONG, **facts)


def test_reasons_are_clean_and_bounded() -> None:
    with pytest.raises(DomainError, match="exit reason contains the control character U\\+0000"):
        entered().record_exit(110.0, 0.0, "stop\x00", NOW, CAUSE, now=NOW)
    with pytest.raises(DomainError, match="reason is longer than 500 characters"):
        signal().skip("x" * 501, NOW, CAUSE, now=NOW)
    with pytest.raises(DomainError, match="reason contains the control character U\\+202E"):
        entered().void("oops\u202e", CAUSE, now=NOW)
    with pytest.raises(DomainError, match="symbol is longer than 40 characters"):
        SignalDraft("s1", "B" * 41, LONG, T0)


def test_clean_text_keeps_ordinary_unicode() -> None:
    assert clean_text("reason", "  Stopp – zu früh ✓ 止损  ") == "Stopp – zu früh ✓ 止损"
    assert clean_text("id", "v7[/]") == "v7[/]"
