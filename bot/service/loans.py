"""The application service: one method per use case, each one unit of work around the domain.

Handlers (Telegram or console) call these methods and render what they return; nothing here formats text.
State-changing actions (``bot.service.usecases``) are two steps: ``preview`` validates the action by running it
(``bot.service.actions.apply``) in a unit of work that is rolled back, so the preview shows exactly what Confirm
will do, and stores a ``Preview`` with a one-time token; ``confirm`` re-runs it for real on current prices and
consumes the token in the same commit, so a second tap or a redelivered update finds it used and acts no more.
Only the preview's owner may confirm it, and only an operator an operator's action.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bot.service.actions import apply
from bot.service.store import Draft, Preview, StateStore, UnitOfWork
from bot.service.usecases import Action, position_of
from bot.service.views import BookView, PositionView, position_view
from domain.desk import Desk
from domain.errors import Rejected
from domain.events import Event
from domain.loans.common import BorrowPreview
from domain.loans.flexible import collateral_for_ltv
from domain.loans.servicing import CollateralQuote
from domain.markets import Catalog
from domain.money import pct
from domain.positions import Position
from domain.prices import Prices
from domain.termsheet import TermSheet

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
    borrow: BorrowPreview | None = None
    quote: CollateralQuote | None = None
    sheet: TermSheet | None = None

    @property
    def action(self) -> Action:
        return self.preview.action


@dataclass(frozen=True)
class Outcome:
    """What a Confirm or Cancel tap did. ``status``: done, already, cancelled, expired, refused, failed."""

    status: str
    action: Action | None = None
    message: str = ""
    after: PositionView | None = None


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
        return self.store.mark_seen(key)

    # ----------------------------------------------------------------- views

    def wallet(self, owner: str) -> dict[str, tuple[Decimal, Decimal]]:
        """Asset → (Spot, Earn) for every asset the borrower holds."""
        now = self.clock()
        with self.store.unit_of_work(read_only=True) as uow:
            desk = self._desk(uow)
            out = {a: (desk.spot(owner, a), desk.earn(owner, a, now)) for a in self.catalog.assets}
            return {a: v for a, v in out.items() if v[0] or v[1]}

    def positions(self, owner: str, prices: Prices, include_closed: bool = False) -> list[PositionView]:
        now = self.clock()
        with self.store.unit_of_work(read_only=True) as uow:
            desk = self._desk(uow)
            return [position_view(desk, p, prices, now) for p in sorted(uow.book.positions_of(owner), key=_pid)
                    if include_closed or p.active or p.debt_shares > 0]

    def position(self, owner: str, pid: int, prices: Prices) -> PositionView:
        with self.store.unit_of_work(read_only=True) as uow:
            desk = self._desk(uow)
            return position_view(desk, desk.own(owner, pid), prices, self.clock())

    def history(self, owner: str, pid: int | None) -> list[Event]:
        with self.store.unit_of_work(read_only=True) as uow:
            if pid is not None:
                self._desk(uow).own(owner, pid)
            return uow.bot.events(owner, pid)

    def alerts(self, owner: str) -> tuple[Decimal | None, Decimal]:
        """The borrower's own warning level (None: the default) and the default."""
        with self.store.unit_of_work(read_only=True) as uow:
            return uow.book.account(owner).warning_ltv, self.catalog.products["flexible"].warning_ltv

    def set_alert_ltv(self, owner: str, level: Decimal) -> Decimal:
        mc = min(c.margin_call_ltv for c in self.catalog.collateral.values())
        if not Decimal("0.05") <= level < mc:
            raise Rejected("bad_level", f"the warning level must be between 5% and {pct(mc)} "
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
        return self.aprs([asset])[asset]

    def aprs(self, assets: list[str] | None = None) -> dict[str, Decimal]:
        """The current Flexible APR of each loan asset (all of them by default), in one read."""
        with self.store.unit_of_work(read_only=True) as uow:
            out = {}
            for asset in assets if assets is not None else list(self.catalog.loans):
                state = uow.book.market(asset)
                out[asset] = state.current_apr if state else self.catalog.loans[asset].flexible_apr
            return out

    def book(self, prices: Prices) -> BookView:
        """The whole book for operators: open positions by LTV, totals per asset."""
        now = self.clock()
        with self.store.unit_of_work(read_only=True) as uow:
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
        with self.store.unit_of_work(read_only=True) as uow:
            return uow.bot.draft(owner)

    # ----------------------------------------------------------------- previews

    def preview(self, owner: str, action: Action, prices: Prices) -> Shown:
        """Validate ``action`` by doing it in a unit of work that is rolled back, then store its preview.

        Raises ``Rejected`` (nothing stored) when the action would be refused.
        """
        now = self.clock()
        pid = position_of(action)
        with self.store.unit_of_work() as trial:
            desk = self._desk(trial)
            before = position_view(desk, desk.own(owner, pid), prices, now) if pid is not None else None
            done = apply(desk, owner, action, prices, now, trial=True)
            found = desk.book.get_position(done.position) if done.position is not None else None
            after = position_view(desk, found, prices, now) if found is not None else None
            # no commit: the trial run is rolled back when the block ends
        expires = done.quote.expires if done.quote is not None else now + PREVIEW_TTL
        stored = Preview(secrets.token_urlsafe(9), owner, done.action, now, expires)
        with self.store.unit_of_work() as uow:
            uow.bot.add_preview(stored)
            uow.bot.save_draft(owner, None)
            uow.commit()
        return Shown(stored, before, after, done.borrow, done.quote, done.sheet)

    def confirm(self, user: str, token: str, prices: Prices | None, operator: bool = False) -> Outcome:
        now = self.clock()
        with self.store.unit_of_work() as uow:
            p = uow.bot.preview(token)
            if p is None:
                return Outcome("expired", message="That button has expired.")
            if p.owner != user or (p.action.operator and not operator):
                return Outcome("refused", p.action, "That button is not for you.")
            if p.state == "done":
                return Outcome("already", p.action, "Already done.")
            if p.state == "cancelled":
                return Outcome("cancelled", p.action, "That was cancelled; nothing was changed.")
            if now > p.expires:
                return Outcome("expired", p.action, "That preview has expired; nothing was changed. "
                                                    "Send the command again for fresh numbers.")
            if prices is None:
                return Outcome("failed", p.action, "")
            desk = self._desk(uow)
            try:
                done = apply(desk, user, p.action, prices, now)
            except Rejected as exc:
                return Outcome("failed", p.action, exc.message)
            found = desk.book.get_position(done.position) if done.position is not None else None
            after = position_view(desk, found, prices, now) if found is not None else None
            uow.bot.set_preview_state(token, "done")
            uow.commit()
            return Outcome("done", p.action, after=after)

    def cancel(self, user: str, token: str) -> Outcome:
        with self.store.unit_of_work() as uow:
            p = uow.bot.preview(token)
            if p is None:
                return Outcome("expired", message="That button has expired.")
            if p.owner != user:
                return Outcome("refused", p.action, "That button is not for you.")
            if p.state == "done":
                return Outcome("already", p.action, "Already done.")
            if p.state == "cancelled":
                return Outcome("cancelled", p.action, "Cancelled; nothing was changed.")
            uow.bot.set_preview_state(token, "cancelled")
            uow.commit()
            return Outcome("cancelled", p.action, "Cancelled; nothing was changed.")

    def size_collateral(self, owner: str, loan: str, amount: Decimal, coll: str, target: Decimal,
                        prices: Prices) -> Decimal:
        """Collateral that puts the loan at ``target`` LTV (``/borrow 500 USDT with BTC at 50%``), counting the
        open loan of the same pair that the borrow would add to."""
        with self.store.unit_of_work(read_only=True) as uow:
            return collateral_for_ltv(self._desk(uow), owner, loan, amount, coll, target, prices, self.clock())


def _pid(p: Position) -> int:
    return p.id
