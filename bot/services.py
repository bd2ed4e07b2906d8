"""The application service: one method per use case, each one unit of work around the domain.

Handlers (Telegram or console) call these methods and render what they return; nothing here formats text.
State-changing actions are two steps: ``preview_*`` validates the action by running it in a unit of work that is
rolled back (so the preview shows exactly what Confirm will do) and stores a ``Preview`` with a one-time
token; ``confirm`` re-runs it for real on current prices and consumes the token in the same commit, so a
second tap or a redelivered update finds it used and acts no more. Only the preview's owner may confirm it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from bot.state import Draft, Preview, StateStore, UnitOfWork
from bot.views import BookView, PositionView, position_view
from domain import actions, vip
from domain.desk import Desk, Prices
from domain.errors import Rejected
from domain.events import Event
from domain.markets import Catalog
from domain.positions import Position, Product

PREVIEW_TTL = timedelta(minutes=5)
FAUCET = {"USDT": Decimal(10000), "BTC": Decimal(1), "ETH": Decimal(10)}
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Shown:
    """A stored preview and the numbers to show with it."""

    preview: Preview
    before: PositionView | None = None
    after: PositionView | None = None
    borrow: actions.BorrowPreview | None = None
    quote: actions.CollateralQuote | None = None


@dataclass(frozen=True)
class Outcome:
    """What a Confirm or Cancel tap did. ``status``: done, already, cancelled, expired, refused, failed."""

    status: str
    kind: str = ""
    message: str = ""
    after: PositionView | None = None
    params: Mapping[str, Any] | None = None


class LoanService:
    def __init__(self, catalog: Catalog, store: StateStore, *, demo: bool = False, clock: Clock = utcnow) -> None:
        self.catalog = catalog
        self.store = store
        self.demo = demo
        self.clock = clock

    def _desk(self, uow: UnitOfWork) -> Desk:
        return Desk(self.catalog, uow.domain_book)

    # ----------------------------------------------------------------- idempotency of updates

    def first_time(self, key: str) -> bool:
        """Record an update/callback key; False if it was processed before (Telegram redelivered it)."""
        with self.store.unit_of_work() as uow:
            fresh = uow.bot.mark_seen(key)
            if fresh:
                uow.commit()
            return fresh

    # ----------------------------------------------------------------- views

    def wallet(self, owner: str) -> dict[str, tuple[Decimal, Decimal]]:
        """Asset → (Spot, Earn) for every asset the borrower holds."""
        now = self.clock()
        with self.store.unit_of_work() as uow:
            desk = self._desk(uow)
            out = {a: (desk.spot(owner, a), desk.earn(owner, a, now)) for a in self.catalog.assets}
            return {a: v for a, v in out.items() if v[0] or v[1]}

    def positions(self, owner: str, prices: Prices, include_closed: bool = False) -> list[PositionView]:
        now = self.clock()
        with self.store.unit_of_work() as uow:
            desk = self._desk(uow)
            return [position_view(desk, p, prices, now) for p in sorted(uow.book.positions_of(owner), key=_pid)
                    if include_closed or p.active or p.debt_shares > 0]

    def position(self, owner: str, pid: int, prices: Prices) -> PositionView:
        with self.store.unit_of_work() as uow:
            desk = self._desk(uow)
            return position_view(desk, desk.own(owner, pid), prices, self.clock())

    def history(self, owner: str, pid: int | None) -> list[Event]:
        with self.store.unit_of_work() as uow:
            if pid is not None:
                self._desk(uow).own(owner, pid)
            return uow.bot.events(owner, pid)

    def alerts(self, owner: str) -> tuple[Decimal | None, Decimal]:
        """The borrower's own warning level (None: the default) and the default."""
        with self.store.unit_of_work() as uow:
            return uow.book.account(owner).warning_ltv, self.catalog.products["flexible"].warning_ltv

    def set_alert_ltv(self, owner: str, level: Decimal) -> Decimal:
        mc = min(c.margin_call_ltv for c in self.catalog.collateral.values())
        if not Decimal("0.05") <= level < mc:
            raise Rejected("bad_level", f"the warning level must be between 5% and {actions.pct(mc)} "
                                        "(below the margin call)")
        with self.store.unit_of_work() as uow:
            account = uow.book.account(owner)
            account.warning_ltv = level
            uow.book.save_account(account)
            uow.commit()
        return level

    def faucet(self, owner: str) -> dict[str, Decimal]:
        """Demo funds, once per UTC day."""
        if not self.demo:
            raise Rejected("not_demo", "the faucet only runs in demo mode")
        now = self.clock()
        with self.store.unit_of_work() as uow:
            if uow.bot.faucet_day(owner) == now.date().isoformat():
                raise Rejected("faucet_used", "you already used the faucet today; come back tomorrow (UTC)")
            desk = self._desk(uow)
            for asset, amount in FAUCET.items():
                desk.deposit(owner, asset, amount, now, kind="faucet")
            uow.bot.set_faucet_day(owner, now.date().isoformat())
            uow.commit()
        return dict(FAUCET)

    def apr(self, asset: str) -> Decimal:
        with self.store.unit_of_work() as uow:
            state = uow.book.market(asset)
            return state.current_apr if state else self.catalog.loans[asset].flexible_apr

    def book(self, prices: Prices) -> BookView:
        """The whole book for operators: open positions by LTV, totals per asset."""
        now = self.clock()
        with self.store.unit_of_work() as uow:
            desk = self._desk(uow)
            views = [position_view(desk, p, prices, now) for p in uow.book.active_positions()]
        debt: dict[str, Decimal] = {}
        coll: dict[str, Decimal] = {}
        for v in views:
            debt[v.loan_asset] = debt.get(v.loan_asset, Decimal(0)) + v.debt
            for a, amt in v.collateral.items():
                coll[a] = coll.get(a, Decimal(0)) + amt
        views.sort(key=lambda v: v.ltv if v.ltv is not None else Decimal(-1), reverse=True)
        return BookView(views, debt, coll)

    # ----------------------------------------------------------------- guided /borrow

    def draft(self, owner: str, **choices: str | None) -> Draft:
        """Update (or start, with ``reset``) the borrower's guided borrow and return it."""
        with self.store.unit_of_work() as uow:
            draft = Draft() if choices.pop("reset", None) else (uow.bot.draft(owner) or Draft())
            for key, value in choices.items():
                if value is not None:
                    setattr(draft, key, value)
            uow.bot.save_draft(owner, draft)
            uow.commit()
            return draft

    def current_draft(self, owner: str) -> Draft | None:
        with self.store.unit_of_work() as uow:
            return uow.bot.draft(owner)

    def drop_draft(self, owner: str) -> None:
        with self.store.unit_of_work() as uow:
            uow.bot.save_draft(owner, None)
            uow.commit()

    # ----------------------------------------------------------------- previews

    def preview(self, owner: str, kind: str, params: dict[str, Any], prices: Prices) -> Shown:
        """Validate ``kind`` by doing it in a unit of work that is rolled back, then store its preview.

        Raises ``Rejected`` (nothing stored) when the action would be refused.
        """
        now = self.clock()
        with self.store.unit_of_work() as trial:
            desk = self._desk(trial)
            before = position_view(desk, desk.own(owner, params["pid"]), prices, now) if "pid" in params else None
            extra = self._apply(desk, owner, kind, params, prices, now, trial_run=True)
            # no commit: the trial run is rolled back when the block ends
        stored = Preview(secrets.token_urlsafe(9), owner, kind, params, now, now + PREVIEW_TTL)
        quote = extra.get("quote")
        if isinstance(quote, actions.CollateralQuote):
            stored.expires = quote.expires
            stored.params = {**params, "quote": quote}
        with self.store.unit_of_work() as uow:
            uow.bot.add_preview(stored)
            uow.bot.save_draft(owner, None)
            uow.commit()
        return Shown(stored, before, extra.get("after"), extra.get("borrow"), quote)

    def confirm(self, user: str, token: str, prices: Prices | None, operator: bool = False) -> Outcome:
        now = self.clock()
        with self.store.unit_of_work() as uow:
            p = uow.bot.preview(token)
            if p is None:
                return Outcome("expired", message="That button has expired.")
            if p.owner != user or (p.kind in OPERATOR_KINDS and not operator):
                return Outcome("refused", p.kind, "That button is not for you.")
            if p.state == "done":
                return Outcome("already", p.kind, "Already done.")
            if p.state == "cancelled":
                return Outcome("cancelled", p.kind, "That was cancelled; nothing was changed.")
            if now > p.expires:
                return Outcome("expired", p.kind, "That preview has expired; nothing was changed. "
                                                  "Send the command again for fresh numbers.")
            if prices is None:
                return Outcome("failed", p.kind, "")
            try:
                extra = self._apply(self._desk(uow), user, p.kind, p.params, prices, now)
            except Rejected as exc:
                return Outcome("failed", p.kind, exc.message)
            uow.bot.set_preview_state(token, "done")
            uow.commit()
            return Outcome("done", p.kind, after=extra.get("after"), params=p.params)

    def cancel(self, user: str, token: str) -> Outcome:
        with self.store.unit_of_work() as uow:
            p = uow.bot.preview(token)
            if p is None:
                return Outcome("expired", message="That button has expired.")
            if p.owner != user:
                return Outcome("refused", p.kind, "That button is not for you.")
            if p.state == "done":
                return Outcome("already", p.kind, "Already done.")
            if p.state == "cancelled":
                return Outcome("cancelled", p.kind, "Cancelled; nothing was changed.")
            uow.bot.set_preview_state(token, "cancelled")
            uow.commit()
            return Outcome("cancelled", p.kind, "Cancelled; nothing was changed.")

    def _apply(self, desk: Desk, owner: str, kind: str, params: Mapping[str, Any], prices: Prices,
               now: datetime, trial_run: bool = False) -> dict[str, Any]:
        """Do ``kind`` on ``desk`` (inside a rolled-back unit of work for previews). Returns numbers for the answer."""
        out: dict[str, Any] = {}
        pid: int | None = params.get("pid")
        if kind == "borrow":
            req = borrow_request(owner, params)
            if trial_run:
                out["borrow"] = actions.preview_borrow(desk, req, prices, now)
            position, _ = actions.borrow(desk, req, prices, now)
            pid = position.id
        elif kind == "add":
            actions.add_collateral(desk, owner, params["pid"], params["asset"], params["amount"], prices, now)
        elif kind == "withdraw":
            actions.withdraw_collateral(desk, owner, params["pid"], params["asset"], params["amount"], prices, now)
        elif kind == "repay":
            actions.repay(desk, owner, params["pid"], params["amount"], now)
        elif kind == "close":
            actions.close(desk, owner, params["pid"], now)
        elif kind == "repay_collateral":
            quote = params.get("quote")
            if quote is None:
                quote = actions.quote_repay_with_collateral(desk, owner, params["pid"], params["amount"], prices, now)
                out["quote"] = quote
            actions.repay_with_collateral(desk, owner, params["pid"], params["amount"], prices, now, quote)
        elif kind == "credit":
            desk.deposit(params["user"], params["asset"], params["amount"], now, kind="operator_credit")
        elif kind == "debit":
            desk.withdraw_funds(params["user"], params["asset"], params["amount"], now)
        elif kind == "setrate":
            desk.set_rate(params["asset"], params["apr"], now)
        elif kind == "vip":
            from bot.vip_syntax import sheet_from
            out["sheet"] = vip.issue_term_sheet(desk, sheet_from(params), now, by=owner)
        else:
            raise Rejected("unknown_action", "that action is not known")
        found = desk.book.get_position(pid) if pid is not None else None
        if found is not None:
            out["after"] = position_view(desk, found, prices, now)
        return out


OPERATOR_KINDS = frozenset({"credit", "debit", "setrate", "vip"})


def borrow_request(owner: str, params: Mapping[str, Any]) -> actions.BorrowRequest:
    """The domain request; a term is passed on once the domain's ``BorrowRequest`` knows terms."""
    kw: dict[str, Any] = {"owner": owner, "loan_asset": params["loan"], "amount": params["amount"],
                          "collateral": dict(params["collateral"]),
                          "product": Product(params.get("product", "flexible"))}
    names = {f.name for f in fields(actions.BorrowRequest)}
    for name in ("term_days", "term"):
        if params.get("term_days") is not None and name in names:
            kw[name] = params["term_days"]
    return actions.BorrowRequest(**kw)


def _pid(p: Position) -> int:
    return p.id


def size_collateral(service: LoanService, loan: str, amount: Decimal, coll: str, target: Decimal,
                    prices: Prices) -> Decimal:
    """Collateral that puts a new loan at ``target`` LTV (``/borrow 500 USDT with BTC at 50%``)."""
    with service.store.unit_of_work() as uow:
        return actions.collateral_for_ltv(service._desk(uow), loan, amount, coll, target, prices)
