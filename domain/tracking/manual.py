"""``/track``: a loan at any lender, entered by hand, and its edits (SPEC §9).

The borrower gives the debt, the collateral, optionally the lender's levels (default: the desk's flexible
85% / 91%) and the APR (default 0: the debt stays as typed until edited). Edits record the debt or the
collateral as they are *now*: a debt edit replaces the accrued debt, a collateral edit first fixes the interest
accrued so far into the debt, so interest keeps running from the edit on at the same APR. Only manual
positions are edited by hand: a Binance position is whatever the last sync says.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from domain.errors import Rejected
from domain.money import ONE, ZERO
from domain.tracking.position import Kind, Lender, Levels, Tracked, debt_at

DEFAULT_LEVELS = Levels(Decimal("0.85"), Decimal("0.91"))
MAX_APR = ONE  # 100% a year: anything above is surely a typo ("6" for "6%" is read as 6%, see parsing)


@dataclass(frozen=True)
class TrackRequest:
    owner: str
    loan_asset: str
    debt: Decimal
    collateral_asset: str
    collateral: Decimal
    levels: Levels = DEFAULT_LEVELS
    apr: Decimal = ZERO


def track(req: TrackRequest, pid: int, now: datetime, known: Collection[str]) -> Tracked:
    """A new manual position ``pid``; raises ``Rejected`` (nothing recorded) on bad input."""
    for asset in (req.loan_asset, req.collateral_asset):
        if asset not in known:
            raise Rejected("unknown_asset", f"{asset} has no price here; tracked loans use the assets of /markets")
    if req.loan_asset == req.collateral_asset:
        raise Rejected("same_asset", "the loan and the collateral must be different assets")
    if req.debt <= 0:
        raise Rejected("bad_amount", "the debt must be above 0")
    if req.collateral <= 0:
        raise Rejected("bad_amount", "the collateral must be above 0")
    if not ZERO <= req.apr <= MAX_APR:
        raise Rejected("bad_apr", "the APR must be between 0% and 100%")
    req.levels.check()
    return Tracked(pid, req.owner, Lender.MANUAL, Kind.MANUAL, req.loan_asset, req.debt, now, req.apr,
                   {req.collateral_asset: req.collateral}, req.levels, now)


def editable(t: Tracked | None, owner: str, pid: int) -> Tracked:
    """The owner's manual position ``pid``, or ``Rejected``: another's is as unknown as a missing one."""
    if t is None or t.owner != owner:
        raise Rejected("no_position", f"you have no position #{pid}")
    if t.lender is not Lender.MANUAL:
        raise Rejected("synced", f"#{pid} is synced from {t.where}: it changes when it changes there")
    return t


def edit_debt(t: Tracked, debt: Decimal, now: datetime) -> None:
    """The debt is ``debt`` now (interest accrued before is replaced by what the lender says)."""
    if debt <= 0:
        raise Rejected("bad_amount", "the debt must be above 0 (use /untrack when the loan is repaid)")
    t.debt, t.debt_at = debt, now


def edit_collateral(t: Tracked, amount: Decimal, now: datetime) -> None:
    """The collateral is ``amount`` now; the interest accrued so far stays in the debt."""
    if amount <= 0:
        raise Rejected("bad_amount", "the collateral must be above 0 (use /untrack when the loan is closed)")
    t.debt, t.debt_at = debt_at(t, now), now
    asset = next(iter(t.collateral))
    t.collateral = {asset: amount}
