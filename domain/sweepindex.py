"""The sweep index: which positions a price tick can possibly affect, found by a range query, not a scan.

For a flexible position with one collateral asset held from a single source (Spot *or* Earn),

    LTV ≥ L  ⇔  D × P_loan ≥ L × C × P_coll
             ⇔  s_debt × I_debt × P_loan ≥ L × s_coll × I_coll × P_coll
             ⇔  k = s_debt / s_coll ≥ L × (P_coll / P_loan) × (I_coll / I_debt)

where ``s_coll`` is the exact Spot amount (``I_coll = 1``) or the Earn shares (``I_coll`` = the Earn index).
``k`` changes only when the borrower (or a liquidation) acts, so storage keeps it in an indexed column, next to
the position's *group* ``LOAN/COLL/spot|earn`` and its alert *state*; the right-hand side is one number per
(group, level) per tick. ``SweepPlan`` holds those numbers and says, for an index ``Entry``, whether the
position can change at this tick. It is only a filter: the sweep then judges every candidate with the exact
Decimal rules of ``domain.watch.sweep.check``; ``domain.watch.sweep.plan`` builds a tick's plan from the desk.

Exact keys, no floats. ``k`` and the bounds are Decimals written as 48-digit text (``key``: 24 integer digits
then 24 decimals, zero-padded): digit strings of equal width compare exactly like the numbers, in SQL on any
database and collation and in Python, so the index sorts numerically without a float anywhere. ``k`` is cut
(rounded down) to 24 decimals; a lower bound ("k ≥ b") is rounded down and an upper bound ("k < b") up, so
the comparisons can only admit more. The domain rounds debts and Earn amounts to 18 decimals, a relative
error ≤ 5e-13 because positions with ``s_debt`` or ``s_coll`` below ``DUST`` (1e-6) are not keyed (both
indices are ≥ 1); every bound is also widened by ``MARGIN`` (1e-9), so the candidates are always a superset
of the positions the exact rules would act on; the few extra ones are checked and left alone.

What each state needs at a tick (levels from ``Desk.thresholds``; ``w`` is the effective warning level):

- ``QUIET`` (not warned, no margin call): only if the LTV may have reached ``w`` (the lowest level: ``w`` is
  below the margin call, which is below liquidation): ``k ≥ rise``.
- ``WARNED``: a margin call or liquidation (``k ≥ escalate``) or re-arming below ``w − gap`` (``k < rearm``).
- ``CALLED`` (in margin call): liquidation (``k ≥ liquidate``), clearing below ``mc − gap`` (``k < clear``) or
  an hourly reminder due (``margin_call_at ≤ now − repeat``).
- ``DIRECT``: judged at every tick — Fixed and VIP loans, several collateral assets, Spot and Earn mixed, a
  debt index other than the loan asset's, dust, a VIP liquidation pending. They are few.

A personal warning level (``Account.warning_ltv`` below the margin call) replaces ``w`` for that borrower's
positions: the default bands cover everyone at the product level, and the book adds the positions of the
accounts with a personal level, judged with ``SweepPlan.band(group, level)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from enum import IntEnum

from domain.markets import Thresholds
from domain.positions import Position, Product, Source

DUST = Decimal("0.000001")
MARGIN = Decimal("1e-9")
KEY_PLACES = 24
KEY_DIGITS = 48  # 24 integer digits, then 24 decimals
KEY_LIMIT = Decimal(10) ** (KEY_DIGITS - KEY_PLACES)  # larger k (never seen in practice) are judged directly
NEVER = ""  # every key sorts at or above the empty text: a ``k < NEVER`` bound that nothing meets
ABOVE_ALL = "9" * (KEY_DIGITS + 1)  # sorts above every key: a bound beyond KEY_LIMIT


def key(x: Decimal, rounding: str = ROUND_DOWN) -> str:
    """``0 ≤ x < KEY_LIMIT`` as exact, order-preserving text: 48 digits, zero-padded, 24 of them decimals."""
    if x >= KEY_LIMIT:
        return ABOVE_ALL
    return f"{int(x.quantize(Decimal(1).scaleb(-KEY_PLACES), rounding=rounding).scaleb(KEY_PLACES)):0{KEY_DIGITS}d}"


class State(IntEnum):
    QUIET = 0
    WARNED = 1
    CALLED = 2
    DIRECT = 3


@dataclass(frozen=True)
class Entry:
    """What the index keeps for one active position."""

    state: State
    group: str = ""  # "" for DIRECT
    k: str | None = None  # ``key(s_debt / s_coll)``; None for DIRECT
    called_at: datetime | None = None  # CALLED: when the margin call (or its last reminder) went out


def group_of(loan: str, collateral: str, source: Source) -> str:
    return f"{loan}/{collateral}/{source.value}"


def entry_of(p: Position) -> Entry | None:
    """The index entry of ``p``; None when the sweep never looks at it (closed, or no collateral)."""
    if not p.active or not p.collateral_assets:
        return None
    asset = p.single_collateral
    if (p.product is not Product.FLEXIBLE or p.rate_key != p.loan_asset or asset is None
            or p.risk.liquidation_pending_since is not None
            or (p.risk.margin_call and p.risk.margin_call_at is None)):
        return Entry(State.DIRECT)
    holding = p.collateral[asset]
    if holding.spot != 0 and holding.earn_shares != 0:
        return Entry(State.DIRECT)  # two sources, two indices: no single k
    source, s_coll = (Source.SPOT, holding.spot) if holding.spot != 0 else (Source.EARN, holding.earn_shares)
    if s_coll < DUST or (p.debt_shares != 0 and p.debt_shares < DUST):
        return Entry(State.DIRECT)  # 18-decimal rounding would matter relative to amounts this small
    k_exact = p.debt_shares / s_coll
    if k_exact >= KEY_LIMIT:
        return Entry(State.DIRECT)
    k = key(k_exact)
    group = group_of(p.loan_asset, asset, source)
    if p.risk.margin_call:
        return Entry(State.CALLED, group, k, p.risk.margin_call_at)
    return Entry(State.WARNED if p.risk.warned else State.QUIET, group, k)


@dataclass(frozen=True)
class Band:
    """Bounds on ``k`` for one group at one warning level, as keys (already widened by ``MARGIN``)."""

    rise: str
    escalate: str
    rearm: str
    liquidate: str
    clear: str


@dataclass(frozen=True)
class Group:
    """One (loan, collateral, source) at this tick: ``x = (P_coll / P_loan) × (I_coll / I_debt)``."""

    x: Decimal
    levels: Thresholds


def _low(level: Decimal, x: Decimal) -> str:
    return key(level * x * (1 - MARGIN), ROUND_DOWN)


def _high(level: Decimal, x: Decimal) -> str:
    return key(level * x * (1 + MARGIN), ROUND_UP) if level > 0 else NEVER


class SweepPlan:
    """The bounds of one tick: per group and warning level, and when margin-call reminders fall due."""

    def __init__(self, groups: dict[str, Group], gap: Decimal, remind_before: datetime) -> None:
        self.groups = groups
        self.gap = gap
        self.remind_before = remind_before
        self.bands = {g: self.band(g) for g in groups}

    def band(self, group: str, personal: Decimal | None = None) -> Band:
        g = self.groups[group]
        th = g.levels
        w = personal if personal is not None and personal < th.margin_call else th.warning
        return Band(rise=_low(w, g.x), escalate=_low(th.margin_call, g.x), rearm=_high(w - self.gap, g.x),
                    liquidate=_low(th.liquidation, g.x), clear=_high(th.margin_call - self.gap, g.x))

    def is_personal(self, group: str, level: Decimal | None) -> bool:
        """Whether ``level`` changes the bands of ``group`` (a personal level below its margin call)."""
        g = self.groups.get(group)
        return g is not None and level is not None and level < g.levels.margin_call and level != g.levels.warning

    def admits(self, e: Entry, personal: Decimal | None = None) -> bool:
        """Whether a position with index entry ``e`` (and that personal level) can change at this tick."""
        if e.state is State.DIRECT or e.k is None:
            return True
        if e.group not in self.groups:
            return False  # a price is missing: the sweep could not judge it either
        b = self.band(e.group, personal) if self.is_personal(e.group, personal) else self.bands[e.group]
        if e.state is State.QUIET:
            return e.k >= b.rise
        if e.state is State.WARNED:
            return e.k >= b.escalate or e.k < b.rearm
        return (e.k >= b.liquidate or e.k < b.clear
                or (e.called_at is not None and e.called_at <= self.remind_before))
