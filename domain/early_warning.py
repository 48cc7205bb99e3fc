"""Predictive warnings: a RED rule about to fire, said before it does. Pure maths.

See ``docs/alerts.md``. The win-rate warning uses a Beta-binomial model: the chance of a
win is unknown, with a uniform Beta(1, 1) prior updated by the wins and non-wins in the
current window. Under the posterior predictive (a Pólya urn), every sequence of the next
``horizon`` outcomes has an exact probability; the warning's probability is the total of
those sequences under which the window's win rate drops below the RED line at some step.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import product

PRIOR_WINS = 1.0
PRIOR_NON_WINS = 1.0


def red_win_rate_probability(
    window_outcomes: Sequence[bool],
    *,
    red_win_rate: float,
    window: int = 20,
    min_sample: int = 10,
    horizon: int = 5,
) -> float:
    """P(the last-``window`` win rate falls below ``red_win_rate`` within ``horizon`` trades).

    ``window_outcomes`` are the latest closed trades, oldest first (True for a win; at most
    ``window``). A step counts only once the window holds ``min_sample`` trades, as the
    controller's rule does. With no trades the probability is 0.
    """
    recent = list(window_outcomes)[-window:]
    if not recent:
        return 0.0
    a = PRIOR_WINS + sum(recent)
    b = PRIOR_NON_WINS + len(recent) - sum(recent)
    total = 0.0
    for future in product((True, False), repeat=horizon):
        probability, wins = 1.0, 0
        for step, won in enumerate(future):
            p_win = (a + wins) / (a + b + step)
            probability *= p_win if won else 1.0 - p_win
            wins += won
        if _falls_below(recent, future, red_win_rate, window, min_sample):
            total += probability
    return total


def _falls_below(
    recent: list[bool], future: Sequence[bool], limit: float, window: int, min_sample: int
) -> bool:
    outcomes = list(recent)
    for won in future:
        outcomes.append(won)
        current = outcomes[-window:]
        if len(current) >= min_sample and sum(current) / len(current) < limit:
            return True
    return False


def consecutive_losses_warning(consecutive_losses: int, limit: int, margin: int = 2) -> bool:
    """True exactly when the run of losses reaches ``limit − margin`` (two before RED)."""
    return limit - margin > 0 and consecutive_losses == limit - margin


def daily_loss_warning(today_loss: float, limit: float, share: float = 0.75) -> bool:
    """True when today's loss is past ``share`` of the daily limit but not over it yet."""
    return share * limit < today_loss <= limit
