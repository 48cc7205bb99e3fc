"""Direction-aware profit-and-loss maths, pure and exact to the written definitions.

See ``docs/metrics.md``. A long earns when the price rises, a short when it falls:
the V7 plan's ``exit - entry`` turned every short winner into a loser.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from domain.errors import DomainError
from domain.values import Direction

DEFAULT_BREAKEVEN_PCT = 0.5
"""A trade within ±0.5 % (net) of its entry is a breakeven, as in the V7 plan."""

MAX_PNL = 1e30
"""No P&L is larger: the validated ranges keep one within ±1e27, and the reports sum them."""

OUTCOME_DECIMALS = 9
"""The outcome is decided on ``pnl_pct`` rounded to this many decimals (1e-9 percentage
points), so float noise such as 0.5000000000000004 cannot turn a breakeven into a win:
the same economic result is the same outcome at every price level."""


class Outcome(StrEnum):
    """How a closed trade ended, judged on its net P&L %."""

    WIN = "win"
    LOSS = "loss"
    BREAKEVEN = "breakeven"


@dataclass(frozen=True, slots=True)
class TradePnl:
    """The P&L of one closed trade.

    ``gross_quote`` is the price move times the quantity; ``net_quote`` subtracts all
    fees; ``pct`` is ``net_quote`` as a percentage of the entry notional.
    """

    gross_quote: float
    net_quote: float
    pct: float


def price_return(direction: Direction, entry: float, exit_price: float) -> float:
    """The price move as a fraction.

    Long: ``(exit − entry) / entry``; short: ``(entry − exit) / entry``.
    """
    move = (exit_price - entry) / entry
    return move if direction is Direction.LONG else -move


def trade_pnl(
    direction: Direction, entry: float, exit_price: float, qty: float = 1.0, fees: float = 0.0
) -> TradePnl:
    """P&L of a trade of ``qty`` units, net of ``fees`` (an amount in quote currency).

    Raises ``DomainError`` when the entry notional is not a positive normal float or a
    result is not finite (or above :data:`MAX_PNL`): such a trade has no P&L. The
    validators keep those out of the ledger; this guards what reads events stored
    without them.
    """
    notional = entry * qty
    if not (math.isfinite(notional) and notional >= sys.float_info.min):
        raise DomainError(f"the entry notional {notional!r} is not a positive normal number")
    gross = price_return(direction, entry, exit_price) * notional
    net = gross - fees
    pct = net / notional * 100.0
    if not (abs(gross) <= MAX_PNL and abs(net) <= MAX_PNL and math.isfinite(pct)):
        raise DomainError(
            f"the P&L of entry {entry!r} and exit {exit_price!r} is not a finite number "
            f"within ±{MAX_PNL:g}"
        )
    return TradePnl(gross_quote=gross, net_quote=net, pct=pct)


def classify(pnl_pct: float, breakeven_pct: float = DEFAULT_BREAKEVEN_PCT) -> Outcome:
    """``win`` above ``+breakeven_pct``, ``loss`` below ``−breakeven_pct``, else ``breakeven``,
    judged on ``pnl_pct`` rounded to :data:`OUTCOME_DECIMALS` decimals."""
    rounded = round(pnl_pct, OUTCOME_DECIMALS)
    if rounded > breakeven_pct:
        return Outcome.WIN
    if rounded < -breakeven_pct:
        return Outcome.LOSS
    return Outcome.BREAKEVEN


def hold_minutes(entry_time: datetime, exit_time: datetime) -> float:
    """Minutes between entry and exit."""
    return (exit_time - entry_time).total_seconds() / 60.0
