"""What a sync from the lender does to the tracked positions of one linked account (SPEC §9).

``reconcile`` matches the lender's ongoing orders (``Snapshot``) to the positions we track by ``ref``: a new
order becomes a new position, a known one takes the lender's debt, rate, levels and collateral (a collateral
change is reported as added or removed) and is *recalibrated* — its ``calibration`` becomes the lender's
``currentLTV`` over the LTV we compute at this moment, so between syncs our live figure moves with prices from
the lender's own starting point. An order that is no longer there has *vanished*; ``explain`` says why from the
lender's histories: liquidated (the fee and what came back), repaid, or gone without a trace.

VIP orders give no collateral amounts, only the coins and their value after haircut; ``implied_collateral``
splits that value evenly over the coins at this sync's prices, so the LTV between syncs follows the prices of
the basket, and the next sync corrects it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from domain.errors import Rejected
from domain.events import Event
from domain.money import ONE, ZERO, fmt, fmt_ratio, round_down
from domain.tracking.position import Kind, Lender, Levels, Tracked, raw_ltv

CLOCK_SKEW = timedelta(minutes=5)  # the lender's clock and ours may disagree a little


@dataclass(frozen=True)
class Snapshot:
    """One ongoing order as the lender reports it."""

    ref: str
    kind: Kind
    loan_asset: str
    debt: Decimal
    collateral: Mapping[str, Decimal]
    current_ltv: Decimal
    levels: Levels
    apr: Decimal
    expires_at: datetime | None = None


@dataclass(frozen=True)
class LiquidationRecord:
    loan_asset: str
    collateral_asset: str
    debt: Decimal
    collateral_taken: Decimal
    returned: Decimal
    fee: Decimal
    price: Decimal
    at: datetime


@dataclass(frozen=True)
class RepayRecord:
    loan_asset: str
    amount: Decimal
    at: datetime
    collateral_asset: str = ""
    collateral_returned: Decimal = ZERO
    order_id: int | None = None


@dataclass
class Reconciled:
    new: list[Tracked] = field(default_factory=list)
    updated: list[Tracked] = field(default_factory=list)
    vanished: list[Tracked] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


def flexible_ref(loan: str, collateral: str) -> str:
    return f"flexible:{loan}:{collateral}"


def vip_ref(order_id: int) -> str:
    return f"vip:{order_id}"


def implied_collateral(coins: Sequence[str], value: Decimal, prices: Mapping[str, Decimal]) -> dict[str, Decimal]:
    """A VIP order's collateral value split evenly over its coins, as amounts at ``prices``."""
    priced = [c for c in coins if prices.get(c, ZERO) > 0]
    if not priced:
        raise Rejected("no_price", "no price for any collateral coin of this VIP loan")
    share = value / len(priced)
    return {c: share / prices[c] for c in priced}


def calibrate(t: Tracked, lender_ltv: Decimal, prices: Mapping[str, Decimal], now: datetime) -> None:
    """Our LTV at ``now`` becomes the lender's: ``calibration = lender_ltv / our raw LTV``."""
    try:
        ours = raw_ltv(t, prices, now)
    except Rejected:
        ours = ZERO
    t.calibration = lender_ltv / ours if ours > 0 and ours.is_finite() and lender_ltv > 0 else ONE
    t.synced_ltv = lender_ltv


def reconcile(owner: str, existing: Sequence[Tracked], fresh: Sequence[Snapshot], prices: Mapping[str, Decimal],
              now: datetime, new_id: Callable[[], int], precision: Callable[[str], int],
              first: bool = False) -> Reconciled:
    """Apply one sync; ``first``: the link's own sync (new positions are shown in its answer, not pushed)."""
    out = Reconciled()
    known = {t.ref: t for t in existing if t.lender is Lender.BINANCE}
    for s in fresh:
        t = known.pop(s.ref, None)
        if t is None:
            t = Tracked(new_id(), owner, Lender.BINANCE, s.kind, s.loan_asset, s.debt, now, s.apr, dict(s.collateral),
                        s.levels, now, ref=s.ref, expires_at=s.expires_at)
            calibrate(t, s.current_ltv, prices, now)
            t.synced_at = now
            out.new.append(t)
            if not first:
                out.events.append(Event(now, "tracked_found", owner, t.id, {
                    "lender": t.where, "asset": t.loan_asset, "debt": fmt(s.debt),
                    "collateral": {a: fmt(round_down(v, precision(a))) for a, v in s.collateral.items()},
                    "ltv": fmt_ratio(s.current_ltv)}))
            continue
        if s.kind is Kind.FLEXIBLE:
            out.events += _collateral_change(t, s, now, precision)
        t.debt, t.debt_at, t.apr, t.levels, t.expires_at = s.debt, now, s.apr, s.levels, s.expires_at
        t.collateral = dict(s.collateral)
        calibrate(t, s.current_ltv, prices, now)
        t.synced_at = now
        out.updated.append(t)
    out.vanished = list(known.values())
    return out


def _collateral_change(t: Tracked, s: Snapshot, now: datetime, precision: Callable[[str], int]) -> list[Event]:
    events = []
    for asset in sorted({*t.collateral, *s.collateral}):
        before, after = t.collateral.get(asset, ZERO), s.collateral.get(asset, ZERO)
        if before != after:
            change = after - before
            events.append(Event(now, "tracked_collateral_changed", t.owner, t.id, {
                "lender": t.where, "asset": t.loan_asset, "collateral_asset": asset,
                "change": "added" if change > 0 else "removed",
                "amount": fmt(round_down(abs(change), precision(asset))),
                "collateral": fmt(round_down(after, precision(asset)))}))
    return events


def explain(t: Tracked, liquidations: Sequence[LiquidationRecord], repayments: Sequence[RepayRecord],
            now: datetime) -> Event:
    """Why ``t`` is no longer at the lender: the newest matching liquidation or repayment since it was opened."""
    since = t.opened_at - CLOCK_SKEW
    collateral = next(iter(t.collateral), "")
    liq = [r for r in liquidations if r.loan_asset == t.loan_asset and r.collateral_asset == collateral
           and r.at >= since] if t.kind is Kind.FLEXIBLE else []
    if liq:
        r = max(liq, key=lambda r: r.at)
        return Event(now, "tracked_liquidated", t.owner, t.id, {
            "lender": t.where, "asset": t.loan_asset, "collateral_asset": r.collateral_asset,
            "debt_repaid": fmt(r.debt), "collateral_sold": fmt(r.collateral_taken), "fee": fmt(r.fee),
            "returned": fmt(r.returned), "price": fmt(r.price), "at": r.at.isoformat()})
    order = int(t.ref.split(":")[1]) if t.kind is Kind.VIP else None
    paid = [r for r in repayments if r.loan_asset == t.loan_asset and r.at >= since
            and (r.order_id == order if order is not None else r.collateral_asset == collateral)]
    if paid:
        p = max(paid, key=lambda r: r.at)
        return Event(now, "tracked_repaid", t.owner, t.id, {
            "lender": t.where, "asset": t.loan_asset, "amount": fmt(p.amount),
            "collateral_asset": p.collateral_asset, "collateral_returned": fmt(p.collateral_returned),
            "at": p.at.isoformat()})
    return Event(now, "tracked_gone", t.owner, t.id, {"lender": t.where, "asset": t.loan_asset})
