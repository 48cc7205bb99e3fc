"""A realistic, deterministic demo history, recorded through the ledger's own commands.

About ``days`` days of signals on three symbols, with theories, confidences, skipped
signals, take-profits, stop-losses and timeouts. The model is slightly over-confident,
so the calibration report has something to say. The trader overrides about half of the
signals the controller blocks (recorded as forced entries) and withholds the rest.
The same seed gives the same history.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from eventsourcing.domain import Aggregate

from application.ledger import TradeLedger
from domain.events import Causation
from domain.signal import Signal, SignalDraft, signal_uuid
from domain.trade import Fill, Trade
from domain.values import Direction, ExitReason

SYMBOLS = {"BTCUSDT": 64_000.0, "ETHUSDT": 3_100.0, "SOLUSDT": 145.0}
THEORIES = ("momentum", "mean_reversion", "volume_profile", "funding_rate", "order_flow")
TAKER_FEE = 0.00055


@dataclass(frozen=True)
class DemoTrade:
    """One generated signal and, unless skipped, its trade."""

    draft: SignalDraft
    skipped: bool
    entry: Fill | None
    exit_price: float | None
    exit_fee: float
    exit_reason: str
    exit_at: datetime | None
    force_if_blocked: bool = False


def generate(days: int = 90, seed: int = 7, end: datetime | None = None) -> Iterator[DemoTrade]:
    """Yield the demo history in time order, ending at ``end`` (default: now)."""
    rng = random.Random(seed)
    end = end or datetime.now(UTC)
    start = end - timedelta(days=days)
    prices = dict(SYMBOLS)
    moment = start
    number = 0
    while True:
        moment += timedelta(minutes=rng.uniform(90, 600))
        if moment >= end:
            return
        number += 1
        symbol = rng.choice(list(prices))
        prices[symbol] *= 1 + rng.gauss(0, 0.01)
        price = round(prices[symbol], 2)
        direction = Direction.LONG if rng.random() < 0.55 else Direction.SHORT
        sign = 1 if direction is Direction.LONG else -1
        confidence = round(rng.uniform(0.55, 0.92), 3)
        take, stop = rng.uniform(0.006, 0.016), rng.uniform(0.01, 0.022)
        theories = {
            name: round(rng.uniform(-0.2, 0.6), 3)
            for name in rng.sample(THEORIES, rng.randint(2, 4))
        }
        draft = SignalDraft(
            signal_id=demo_id(number),
            symbol=symbol,
            direction=direction,
            at=moment,
            source=rng.choice(("v7", "v7", "v4-onnx")),
            confidence=confidence,
            entry_low=price,
            entry_high=price,
            stop_loss=round(price * (1 - sign * stop), 2),
            take_profit=round(price * (1 + sign * take), 2),
            position_size=round(1000 / price, 6),
            timeframe="15m",
            model_version=rng.choice(("v7.2", "v7.3")),
            theories=theories,
        )
        force = rng.random() < 0.5
        if rng.random() < 0.15:
            yield DemoTrade(draft, True, None, None, 0.0, "", None)
            continue
        qty = round(1000 / price, 6)
        entry = Fill(price=price, qty=qty, fee=round(price * qty * TAKER_FEE, 4), at=moment)
        held = timedelta(minutes=rng.uniform(20, 720))
        roll = rng.random()
        win_chance = confidence - 0.03
        if roll < win_chance:
            exit_price, reason = price * (1 + sign * take), ExitReason.TAKE_PROFIT.value
        elif roll < win_chance + 0.1:
            exit_price = price * (1 + sign * rng.uniform(-0.004, 0.004))
            reason = ExitReason.TIMEOUT.value
        else:
            exit_price, reason = price * (1 - sign * stop), ExitReason.STOP_LOSS.value
        exit_at = moment + held
        if exit_at > end:
            yield DemoTrade(draft, False, entry, None, 0.0, "", None, force)
            continue
        exit_price = round(exit_price, 2)
        exit_fee = round(exit_price * qty * TAKER_FEE, 4)
        yield DemoTrade(draft, False, entry, exit_price, exit_fee, reason, exit_at, force)


def has_demo(ledger: TradeLedger) -> bool:
    """Whether the demo history (or the start of it) is already in the ledger."""
    return ledger.find(signal_uuid(demo_id(1))) is not None


def demo_id(number: int) -> str:
    """The id of the demo's ``number``-th signal."""
    return f"demo-{number:05d}"


def record(
    ledger: TradeLedger,
    history: Iterator[DemoTrade],
    batch: int = 200,
    progress: Callable[[int], None] | None = None,
    after_batch: Callable[[], object] | None = None,
) -> int:
    """Record the history through the domain, ``batch`` signals per transaction.

    ``after_batch`` runs after each saved batch (the CLI brings the controller up to date
    there, so later signals are gated by it; a blocked signal is withheld, not traded).
    Returns the number of signals.
    """
    pending: list[Aggregate] = []
    count = 0
    for item in history:
        cause = Causation.command("demo", str(signal_uuid(item.draft.signal_id)))
        now = ledger.clock()
        signal = Signal.record(item.draft, ledger.gate_in_force(), cause, now=now)
        pending.append(signal)
        if item.skipped:
            signal.skip("outside trading hours", item.draft.at, cause, now=now)
        elif item.entry is not None and (item.force_if_blocked or not signal.gate.blocked):
            trade = Trade.enter(signal, item.entry, cause, now=now, forced=item.force_if_blocked)
            if item.exit_price is not None and item.exit_at is not None:
                trade.record_exit(
                    item.exit_price, item.exit_fee, item.exit_reason, item.exit_at, cause, now=now
                )
            pending.append(trade)
        count += 1
        if len(pending) >= batch:
            ledger.save_all(pending)
            pending = []
            if after_batch:
                after_batch()
        if progress:
            progress(1)
    if pending:
        ledger.save_all(pending)
    return count
