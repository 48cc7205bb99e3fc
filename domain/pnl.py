"""Direction-aware profit-and-loss maths, pure and exact to the written definitions.

See ``docs/metrics.md``. A long earns when the price rises, a short when it falls:
the V7 plan's ``exit - entry`` turned every short winner into a loser.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from domain.values import Direction

DEFAULT_BREAKEVEN_PCT = 0.5
"""A trade within ±0.5 % (net) of its entry is a breakeven, as in the V7 plan."""


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
    """P&L of a trade of ``qty`` units, net of ``fees`` (an amount in quote currency)."""
    gross = price_return(direction, entry, exit_price) * entry * qty
    net = gross - fees
    return TradePnl(gross_quote=gross, net_quote=net, pct=net / (entry * qty) * 100.0)


def classify(pnl_pct: float, breakeven_pct: float = DEFAULT_BREAKEVEN_PCT) -> Outcome:
    """``win`` above ``+breakeven_pct``, ``loss`` below ``−breakeven_pct``, else ``breakeven``."""
    if pnl_pct > breakeven_pct:
        return Outcome.WIN
    if pnl_pct < -breakeven_pct:
        return Outcome.LOSS
    return Outcome.BREAKEVEN


def hold_minutes(entry_time: datetime, exit_time: datetime) -> float:
    """Minutes between entry and exit."""
    return (exit_time - entry_time).total_seconds() / 60.0
