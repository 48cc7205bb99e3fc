"""What the candle adapters share: the interval grid and the gaps between bars."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from itertools import pairwise

from application.ports import Gap
from domain.candles import Candle


def on_grid(earlier: datetime, later: datetime, interval: timedelta) -> bool:
    """Whether ``later`` opens a whole, positive number of intervals after ``earlier``."""
    step = later - earlier
    return step > timedelta(0) and step % interval == timedelta(0)


def gaps_between(candles: Sequence[Candle]) -> tuple[Gap, ...]:
    """The gaps between consecutive bars of one symbol (sorted, unique, on one grid).

    A gap runs from the close of the bar before it to the open of the bar after it, so
    ``Gap.missing`` is a whole number of intervals: the bars that never arrived.
    """
    return tuple(
        Gap(symbol=before.symbol, after=before.close_time, before=after.open_time)
        for before, after in pairwise(candles)
        if after.open_time > before.close_time
    )
