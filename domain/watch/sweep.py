"""The risk sweep: personal warnings, margin calls (with hourly reminders and a 2-point re-arm) and liquidation
at confirmed prices (SPEC §5).

Warnings and margin calls may use the newest prices; liquidation only uses ``confirmed`` prices (see
``domain.prices.PriceGuard``), and only while the circuit breaker (``domain.watch.breaker``) lets a tick's
liquidations through. A position whose price is missing is left alone. The candidates come from the book's
sweep index (``plan`` gives a tick's bounds, ``domain.sweepindex`` explains them): a range query per (pair,
level), not a scan; each candidate is then judged exactly, in two passes: first every candidate is judged,
so the breaker sees the whole wave, then each one is acted on — all at once, or in parts (``Wave``), each of
which the live bot commits on its own so that a crash never holds the write lock for long.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from domain.desk import Desk
from domain.errors import Rejected
from domain.events import Event
from domain.loans.liquidation import cancel_pending, liquidate, liquidate_vip
from domain.markets import Thresholds
from domain.money import fmt, fmt_ratio, round_down, round_up
from domain.positions import Position, Product, Source
from domain.prices import Prices, price
from domain.sweepindex import Group, SweepPlan, group_of
from domain.watch import breaker


@dataclass(frozen=True)
class Judged:
    """One candidate at this tick: its levels, its LTV at the newest prices and at the confirmed ones."""

    position: Position
    levels: Thresholds
    current: Decimal
    sure: Decimal | None  # None: no confirmed price for one of its assets

    @property
    def liquidates(self) -> bool:
        level = self.levels.liquidation
        return self.sure is not None and self.sure >= level and self.current >= level


def sweep(desk: Desk, prices: Prices, now: datetime, confirmed: Prices | None = None,
          positions: Iterable[Position] | None = None, corroborated: Collection[str] = (),
          use_breaker: bool = True) -> list[Event]:
    """Check every active position that this tick can affect (or the given ones) against its levels; act and
    return the events. ``corroborated``: the assets whose confirmed price both sources agree on."""
    wave = Wave.survey(desk, prices, now, confirmed, positions, corroborated, use_breaker)
    return wave.notices + wave.part(desk)


Enough = Callable[[int], bool]  # given how many positions a part has acted on: whether the part ends here
READ_AHEAD = 25  # candidates left for a later part are read this many at a time


@dataclass
class Wave:
    """One sweep's work at one tick: every candidate judged at once (the breaker sees the whole wave), then acted
    on in parts, in the candidates' order. ``part`` acts until ``enough`` says so; a caller that commits each part
    in its own transaction keeps the write lock for short stretches, and a position is never half acted on (a
    liquidation and its events are in one part). Candidates left for a later part are read and judged again then
    (at the wave's prices and time): a repayment in between is seen."""

    prices: Prices
    confirmed: Prices
    now: datetime
    may_liquidate: bool
    notices: list[Event]  # the breaker's, emitted when the wave was surveyed
    judged: deque[Judged]  # judged in the surveying part, not acted on yet
    left: deque[int] = field(default_factory=deque)  # ids of candidates for later parts

    @classmethod
    def survey(cls, desk: Desk, prices: Prices, now: datetime, confirmed: Prices | None = None,
               positions: Iterable[Position] | None = None, corroborated: Collection[str] = (),
               use_breaker: bool = True) -> Wave:
        desk.accrue(now)
        confirmed = prices if confirmed is None else confirmed
        if positions is None:
            positions = desk.book.sweep_candidates(plan(desk, prices, now))
        judged = [j for p in list(positions) if (j := _judged(desk, p, prices, confirmed, now)) is not None]
        allowed, notices = True, list[Event]()
        if use_breaker:
            allowed, notices = breaker.admit(desk, [j.position for j in judged if j.liquidates], corroborated, now)
        return cls(prices, confirmed, now, allowed, notices, deque(judged))

    @property
    def done(self) -> bool:
        return not self.judged and not self.left

    def part(self, desk: Desk, enough: Enough | None = None) -> list[Event]:
        """Act on the next candidates (all of them when ``enough`` is None) with ``desk``; the events in order."""
        events: list[Event] = []
        acted = 0
        while not self.done and not (enough is not None and acted and enough(acted)):
            if not self.judged:  # read the next few left for this part, in one go, and judge them afresh
                ids = [self.left.popleft() for _ in range(min(READ_AHEAD, len(self.left)))]
                self.judged.extend(j for p in desk.book.get_positions(ids)
                                   if (j := _judged(desk, p, self.prices, self.confirmed, self.now)) is not None)
                continue
            events += act(desk, self.judged.popleft(), self.confirmed, self.prices, self.now, self.may_liquidate)
            acted += 1
        self.left.extendleft(reversed([j.position.id for j in self.judged]))  # the next part reads them afresh
        self.judged.clear()
        return events


def _judged(desk: Desk, p: Position, prices: Prices, confirmed: Prices, now: datetime) -> Judged | None:
    if not p.active or not p.collateral_assets:
        return None
    try:
        return judge(desk, p, prices, confirmed, now)
    except Rejected:
        return None  # no price for one of its assets: nothing can be judged now


def judge(desk: Desk, p: Position, prices: Prices, confirmed: Prices, now: datetime) -> Judged:
    current = desk.ltv(p, prices, now)
    try:
        sure: Decimal | None = desk.ltv(p, confirmed, now)
    except Rejected:
        sure = None
    return Judged(p, desk.thresholds(p), current, sure)


def check(desk: Desk, p: Position, prices: Prices, confirmed: Prices, now: datetime) -> list[Event]:
    """Judge and act on one position (no breaker: for callers that look at one position alone)."""
    return act(desk, judge(desk, p, prices, confirmed, now), confirmed, prices, now, True)


def act(desk: Desk, j: Judged, confirmed: Prices, prices: Prices, now: datetime, may_liquidate: bool) -> list[Event]:
    p, th, current = j.position, j.levels, j.current
    early: list[Event] = []  # VIP: a delayed liquidation started or cancelled (already emitted)
    if may_liquidate and j.liquidates:
        assert j.sure is not None
        if p.product is not Product.VIP:
            return liquidate(desk, p, confirmed, now, j.sure)
        early, done = liquidate_vip(desk, p, confirmed, now, j.sure)
        if done:
            return early
    elif p.risk.liquidation_pending_since is not None and current < th.liquidation:
        early = cancel_pending(desk, p, now, current)
    events: list[Event] = []
    risk = p.risk
    before = (risk.warned, risk.margin_call, risk.margin_call_at)
    gap = desk.catalog.desk.rearm_gap
    repeat = timedelta(minutes=desk.catalog.desk.margin_call_repeat_minutes)
    data = _numbers(desk, p, prices, now, current)
    if current >= th.margin_call:
        if not risk.margin_call:
            risk.margin_call, risk.margin_call_at, risk.warned = True, now, True
            events.append(Event(now, "margin_call", p.owner, p.id, data))
        elif risk.margin_call_at is not None and now - risk.margin_call_at >= repeat:
            risk.margin_call_at = now
            events.append(Event(now, "margin_call_reminder", p.owner, p.id, data))
    elif risk.margin_call and current < th.margin_call - gap:
        risk.margin_call, risk.margin_call_at = False, None
        events.append(Event(now, "margin_call_cleared", p.owner, p.id, data))
    if not risk.margin_call:
        level = desk.warning_level(p)
        if current >= level and not risk.warned:
            risk.warned = True
            events.append(Event(now, "warning", p.owner, p.id, {**data, "level": fmt_ratio(level)}))
        elif risk.warned and current < level - gap:
            risk.warned = False
    if (risk.warned, risk.margin_call, risk.margin_call_at) != before:
        desk.book.save_position(p)
    for e in events:
        desk.emit(e)
    return [*early, *events]


def _numbers(desk: Desk, p: Position, prices: Prices, now: datetime, ltv: Decimal) -> dict[str, object]:
    th = desk.thresholds(p)
    return {"ltv": fmt_ratio(ltv), "debt": fmt(round_up(desk.debt(p, now), desk.catalog.precision(p.loan_asset))),
            "collateral": {a: fmt(round_down(v, desk.catalog.precision(a)))
                           for a, v in desk.collateral_amounts(p, now).items()},
            "prices": {a: fmt(price(prices, a)) for a in [*p.collateral_assets, p.loan_asset]},
            "margin_call_ltv": fmt_ratio(th.margin_call), "liquidation_ltv": fmt_ratio(th.liquidation)}


def plan(desk: Desk, prices: Prices, now: datetime) -> SweepPlan:
    """The index bounds for ``prices`` at ``now`` (call after ``desk.accrue(now)``: the indices are current)."""
    cat = desk.catalog
    groups: dict[str, Group] = {}
    for loan in cat.loans:
        try:
            p_loan = price(prices, loan)
        except Rejected:
            continue
        i_debt = desk.market(loan, now).debt_index
        for coll, market in cat.collateral.items():
            try:
                p_coll = price(prices, coll)
            except Rejected:
                continue
            levels = cat.thresholds("flexible", coll)
            spot = p_coll / p_loan / i_debt
            groups[group_of(loan, coll, Source.SPOT)] = Group(spot, levels)
            groups[group_of(loan, coll, Source.EARN)] = Group(spot * desk.earn_index(market.asset, now), levels)
    remind = now - timedelta(minutes=cat.desk.margin_call_repeat_minutes)
    return SweepPlan(groups, cat.desk.rearm_gap, remind)
