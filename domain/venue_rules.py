"""Rules over venue facts: why a position closed, which order id a signal gets, and
whether the venue's closed P&L agrees with the fills.

- **Exit reasons** come from the venue's own fields (Bybit's ``execType``,
  ``stopOrderType``, ``createType``), never from prices: ``exit_reason``. A combination
  the table does not know, or whose fields contradict each other, is ``UNKNOWN`` (shown to
  the trader, never guessed).
- **orderLinkId** is derived from the signal id: ``order_link_id`` (always hashed).
- **P&L check**: the P&L computed from fills and funding is compared with the venue's
  closed P&L; a difference beyond rounding is reported, not accepted either way:
  ``check_closed_pnl``.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from domain.errors import DomainError
from domain.values import Direction
from domain.venue import MAX_LINK_ID, ClosedPnl, Execution, FundingPayment, VenueExit

LINK_PREFIX = "tw1"
"""Marks (and versions) the order ids tradewatch derives: ``tw1-<hash>-<leg>``."""
_LINK_HASH_CHARS = 26
_LEG = re.compile(r"[a-z0-9]{1,5}")
_OURS = re.compile(rf"{LINK_PREFIX}-([a-z2-7]{{{_LINK_HASH_CHARS}}})-([a-z0-9]{{1,5}})")

_BY_STOP_TYPE = {
    "TakeProfit": VenueExit.TAKE_PROFIT,
    "PartialTakeProfit": VenueExit.PARTIAL_TAKE_PROFIT,
    "StopLoss": VenueExit.STOP_LOSS,
    "PartialStopLoss": VenueExit.PARTIAL_STOP_LOSS,
    "TrailingStop": VenueExit.TRAILING_STOP,
    "MmRateClose": VenueExit.MANUAL,
    "Stop": VenueExit.MANUAL,
}
"""``Stop``: a conditional order someone placed; ``MmRateClose``: the web/app MMR close."""
_BY_CREATE_TYPE = {
    "CreateByTakeProfit": VenueExit.TAKE_PROFIT,
    "CreateByPartialTakeProfit": VenueExit.PARTIAL_TAKE_PROFIT,
    "CreateByStopLoss": VenueExit.STOP_LOSS,
    "CreateByPartialStopLoss": VenueExit.PARTIAL_STOP_LOSS,
    "CreateByTrailingStop": VenueExit.TRAILING_STOP,
    "CreateByTrailingProfit": VenueExit.TRAILING_STOP,
    "CreateByLiq": VenueExit.LIQUIDATION,
    "CreateByTakeOver_PassThrough": VenueExit.LIQUIDATION,
    "CreateByAdl_PassThrough": VenueExit.ADL,
    "CreateBySettle": VenueExit.DELIVERY,
    "CreateByClosing": VenueExit.MANUAL,
    "CreateByMmRateClose": VenueExit.MANUAL,
    "CreateByUser": VenueExit.MANUAL,
    "CreateByStopOrder": VenueExit.MANUAL,
}
_GENERIC_CREATE_TYPES = frozenset({"CreateByUser", "CreateByStopOrder"})
"""An order someone placed (by hand, another tool, or tradewatch itself: the caller tells
them apart by the fill's ``orderLinkId``). Generic: it never contradicts a stop type."""
_BY_EXEC_TYPE = {
    "BustTrade": VenueExit.LIQUIDATION,
    "AdlTrade": VenueExit.ADL,
    "Delivery": VenueExit.DELIVERY,
    "Settle": VenueExit.DELIVERY,
}
_NOT_A_STOP = ("", "UNKNOWN")


def exit_reason(exec_type: str, stop_order_type: str, create_type: str) -> VenueExit:
    """The reason a closing fill closed, from Bybit's ``execType``, ``stopOrderType`` and
    ``createType`` (the table in ``docs/exchange.md``; ``exit_reasons.json``).

    An exchange-made fill (``BustTrade``, ``AdlTrade``, ``Delivery``, ``Settle``) is told
    by ``execType``; a ``Trade`` by its stop type, else its create type. Two specific
    fields that disagree (a ``TakeProfit`` created ``CreateByStopLoss``), or a value this
    table does not know, give ``UNKNOWN``. A funding row is not a fill: ``DomainError``.
    """
    if exec_type == "Funding":
        raise DomainError("a funding row is not a fill and has no exit reason")
    stop = "" if stop_order_type in _NOT_A_STOP else stop_order_type
    by_stop = _BY_STOP_TYPE.get(stop) if stop else None
    by_create = _BY_CREATE_TYPE.get(create_type) if create_type else None
    if (stop and by_stop is None) or (create_type and by_create is None):
        return VenueExit.UNKNOWN
    generic = create_type in _GENERIC_CREATE_TYPES
    by_exec = _BY_EXEC_TYPE.get(exec_type)
    if by_exec is not None:
        agrees = by_stop is None and (by_create is None or generic or by_create is by_exec)
        return by_exec if agrees else VenueExit.UNKNOWN
    if exec_type != "Trade":
        return VenueExit.UNKNOWN
    if by_stop is not None:
        agrees = by_create is None or generic or by_create is by_stop
        return by_stop if agrees else VenueExit.UNKNOWN
    return by_create or VenueExit.UNKNOWN


def order_link_id(signal_id: str, leg: str = "e") -> str:
    """The ``orderLinkId`` for one leg of a signal: ``tw1-<26 base32 chars>-<leg>``.

    Always hashed, even when the signal id would fit: one rule, a fixed length that leaves
    room for the leg (a UUID signal id is already 36 characters), only ``[a-z0-9-]``, and a
    prefix that marks tradewatch's own orders. The hash is the first 130 bits of SHA-256 of
    the signal id (base32, lower case), so two signals never share an id in practice, and
    the same signal gets the same id after any restart. ``leg`` is 1-5 of ``[a-z0-9]``:
    ``e`` the entry, ``e2`` a second entry (Bybit never reuses an id, even a cancelled
    one's), ``x`` a close tradewatch places.
    """
    if not _LEG.fullmatch(leg):
        raise DomainError(f"order leg {leg!r} is not 1 to 5 of a-z and 0-9")
    link = f"{LINK_PREFIX}-{signal_key(signal_id)}-{leg}"
    assert len(link) <= MAX_LINK_ID
    return link


def signal_key(signal_id: str) -> str:
    """The hash part of every ``order_link_id`` of a signal (to match a fill to its signal)."""
    if not signal_id.strip():
        raise DomainError("signal id must not be empty")
    digest = hashlib.sha256(signal_id.encode()).digest()
    return base64.b32encode(digest).decode().lower()[:_LINK_HASH_CHARS]


def parse_link_id(link: str) -> tuple[str, str] | None:
    """``(signal_key, leg)`` of an id ``order_link_id`` made, else ``None`` (not ours)."""
    found = _OURS.fullmatch(link)
    return (found.group(1), found.group(2)) if found else None


# -- the P&L check ----------------------------------------------------------------------


ROUNDING_PER_AMOUNT = 1e-6
"""The default slack per amount summed: venues round fees and P&L to 1e-8..1e-6 quote."""


@dataclass(frozen=True, slots=True)
class PnlCheck:
    """Computed P&L (from fills and funding) against the venue's closed P&L."""

    symbol: str
    computed: float
    reported: float
    tolerance: float
    flat: bool

    @property
    def difference(self) -> float:
        """Venue minus computed."""
        return self.reported - self.computed

    @property
    def agrees(self) -> bool:
        """Within rounding."""
        return abs(self.difference) <= self.tolerance

    def describe(self) -> str:
        """One line for a report."""
        verdict = "agrees" if self.agrees else "DIFFERS"
        open_note = "" if self.flat else " (position still open: funding may be unassigned)"
        return (
            f"{self.symbol}: computed P&L {self.computed:.8f}, venue closed P&L "
            f"{self.reported:.8f}, {verdict} by {self.difference:+.8f} "
            f"(rounding allows {self.tolerance:.8f}){open_note}"
        )


def computed_pnl(
    fills: Iterable[Execution], funding: Iterable[FundingPayment] = ()
) -> tuple[float, bool]:
    """Net realised P&L of one position's fills and funding, and whether it is flat.

    Entry price is the volume-weighted average of the opening fills, each closing fill
    realises (exit − entry) × closed quantity (sign by direction); fees of the closing
    fills count whole, those of the opening fills pro rata to the part closed; funding adds
    with its sign. All fills must open the same direction.
    """
    opened = closed = cost = realised = fees = 0.0
    direction: Direction | None = None
    open_fees = 0.0
    for fill in sorted(fills, key=lambda f: (f.time, f.exec_id)):
        if fill.opened_qty > 0:
            if direction is None:
                direction = fill.side.direction
            elif fill.side.direction is not direction:
                raise DomainError(f"{fill.symbol}: fills open both a long and a short")
            share = fill.opened_qty / fill.qty
            opened += fill.opened_qty
            cost += fill.price * fill.opened_qty
            open_fees += fill.fee * share
        if fill.closed_qty > 0:
            if direction is None or opened <= 0:
                raise DomainError(f"{fill.symbol}: execution {fill.exec_id} closes nothing")
            sign = 1.0 if direction is Direction.LONG else -1.0
            realised += (fill.price - cost / opened) * fill.closed_qty * sign
            closed += fill.closed_qty
            fees += fill.fee * fill.closed_qty / fill.qty
    if opened > 0:
        fees += open_fees * min(closed / opened, 1.0)
    flat = opened > 0 and abs(opened - closed) <= 1e-9 * opened
    return realised - fees + sum(f.amount for f in funding), flat


def check_closed_pnl(
    symbol: str,
    fills: Iterable[Execution],
    funding: Iterable[FundingPayment],
    closed: Iterable[ClosedPnl],
    *,
    per_amount: float = ROUNDING_PER_AMOUNT,
) -> PnlCheck:
    """Compare ``computed_pnl`` with the sum of the venue's closed-P&L rows.

    The slack is ``per_amount`` for each amount summed on either side (fills, funding
    payments, closed rows). Meaningful for a position that is flat again; while it is
    open, how the venue assigns funding to partial closes is not documented.
    """
    fills, funding, closed = list(fills), list(funding), list(closed)
    computed, flat = computed_pnl(fills, funding)
    reported = sum(row.closed_pnl for row in closed)
    tolerance = per_amount * max(len(fills) + len(funding) + len(closed), 1)
    return PnlCheck(symbol, computed, reported, tolerance, flat)
