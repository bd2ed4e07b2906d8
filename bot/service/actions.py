"""What each use case does to the desk: one handler per type of ``bot.service.usecases``, in one table.

``apply`` runs an action on a ``Desk`` inside the caller's unit of work: for a preview that unit of work is
rolled back afterwards (``trial``), so the preview shows exactly what Confirm will do; on Confirm it commits.
A handler returns what the answer needs (the position it touched, the borrow preview, the quote, the sheet).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from bot.service.usecases import (
    Action,
    AddCollateral,
    Borrow,
    Close,
    Credit,
    Debit,
    IssueTermSheet,
    Repay,
    RepayWithCollateral,
    ResumeLiquidations,
    SetRate,
    Transfer,
    WithdrawCollateral,
)
from domain.desk import Desk
from domain.errors import Rejected
from domain.loans import servicing
from domain.loans.borrow import borrow, preview_borrow
from domain.loans.common import BorrowPreview, BorrowRequest
from domain.loans.servicing import CollateralQuote
from domain.loans.vip import issue_term_sheet
from domain.positions import Product, Source
from domain.prices import Prices
from domain.termsheet import TermSheet
from domain.watch import breaker


@dataclass(frozen=True)
class Applied:
    """What an action did: the action as it will be confirmed (a quote filled in), and numbers for the answer."""

    action: Action
    position: int | None = None
    borrow: BorrowPreview | None = None
    quote: CollateralQuote | None = None
    sheet: TermSheet | None = None


Handler = Callable[[Desk, str, Any, Prices, datetime, bool], Applied]


def _borrow(desk: Desk, owner: str, a: Borrow, prices: Prices, now: datetime, trial: bool) -> Applied:
    req = BorrowRequest(owner, a.loan, a.amount, dict(a.collateral), Product(a.product), Source.SPOT, a.term_days)
    shown = preview_borrow(desk, req, prices, now) if trial else None
    position, _ = borrow(desk, req, prices, now)
    return Applied(a, position.id, borrow=shown)


def _add(desk: Desk, owner: str, a: AddCollateral, prices: Prices, now: datetime, trial: bool) -> Applied:
    servicing.add_collateral(desk, owner, a.pid, a.asset, a.amount, prices, now, Source(a.source))
    return Applied(a, a.pid)


def _withdraw(desk: Desk, owner: str, a: WithdrawCollateral, prices: Prices, now: datetime, trial: bool) -> Applied:
    servicing.withdraw_collateral(desk, owner, a.pid, a.asset, a.amount, prices, now)
    return Applied(a, a.pid)


def _repay(desk: Desk, owner: str, a: Repay, prices: Prices, now: datetime, trial: bool) -> Applied:
    servicing.repay(desk, owner, a.pid, a.amount, now)
    return Applied(a, a.pid)


def _repay_collateral(desk: Desk, owner: str, a: RepayWithCollateral, prices: Prices, now: datetime,
                      trial: bool) -> Applied:
    quote = a.quote or servicing.quote_repay_with_collateral(desk, owner, a.pid, a.amount, prices, now)
    servicing.repay_with_collateral(desk, owner, a.pid, a.amount, prices, now, quote)
    return Applied(replace(a, quote=quote), a.pid, quote=quote)


def _close(desk: Desk, owner: str, a: Close, prices: Prices, now: datetime, trial: bool) -> Applied:
    servicing.close(desk, owner, a.pid, now)
    return Applied(a, a.pid)


def _transfer(desk: Desk, owner: str, a: Transfer, prices: Prices, now: datetime, trial: bool) -> Applied:
    desk.transfer(owner, a.asset, a.amount, Source(a.to), now)
    return Applied(a)


def _credit(desk: Desk, owner: str, a: Credit, prices: Prices, now: datetime, trial: bool) -> Applied:
    desk.deposit(a.user, a.asset, a.amount, now, kind="operator_credit")
    return Applied(a)


def _debit(desk: Desk, owner: str, a: Debit, prices: Prices, now: datetime, trial: bool) -> Applied:
    desk.withdraw_funds(a.user, a.asset, a.amount, now)
    return Applied(a)


def _set_rate(desk: Desk, owner: str, a: SetRate, prices: Prices, now: datetime, trial: bool) -> Applied:
    desk.set_rate(a.asset, a.apr, now)
    return Applied(a)


def _issue(desk: Desk, owner: str, a: IssueTermSheet, prices: Prices, now: datetime, trial: bool) -> Applied:
    sheet = TermSheet(a.user, tuple(a.loan), a.rate, a.apr, a.initial, a.margin_call, a.liquidation_ltv,
                      dict(a.collateral), a.liquidation, a.delay, a.min_order, a.max_borrow, {}, a.warning)
    return Applied(a, sheet=issue_term_sheet(desk, sheet, now, by=owner))


def _resume(desk: Desk, owner: str, a: ResumeLiquidations, prices: Prices, now: datetime, trial: bool) -> Applied:
    if breaker.paused(desk) is None:
        raise Rejected("not_paused", "liquidations are not paused")
    breaker.resume(desk, now, owner)
    return Applied(a)


HANDLERS: dict[type[Any], Handler] = {
    Borrow: _borrow, AddCollateral: _add, WithdrawCollateral: _withdraw, Repay: _repay,
    RepayWithCollateral: _repay_collateral, Close: _close, Transfer: _transfer, Credit: _credit, Debit: _debit,
    SetRate: _set_rate, IssueTermSheet: _issue, ResumeLiquidations: _resume,
}


def apply(desk: Desk, owner: str, action: Action, prices: Prices, now: datetime, trial: bool = False) -> Applied:
    """Do ``action`` for ``owner`` on ``desk``; raises ``Rejected`` (nothing done) when it is refused."""
    return HANDLERS[type(action)](desk, owner, action, prices, now, trial)
