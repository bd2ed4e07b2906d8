"""``/borrow``, in one line or step by step. A complete ``/borrow`` previews at once; a partial one becomes a
draft (``bot.service.store.Draft``) and the bot asks for what is missing — the loan asset, Flexible or a Fixed
term (with their rates and levels), the collateral asset (buttons), the amount (a plain-text reply, checked
against the order limits at once), the target LTV (buttons, up to the product's initial LTV) — then previews.
The draft lives in the database, so a restart in the middle loses nothing. Mixed into ``bot.chat.desk.ChatDesk``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal

from bot.chat import parsing
from bot.chat.parsing import Usage
from bot.render import buttons, common, guide
from bot.render.common import Reply, TapAnswer
from bot.service.loans import LoanService
from bot.service.store import StateStore
from bot.service.usecases import Borrow
from domain.money import AmountError, fmt, parse_amount, pct

TARGETS = ("30", "40", "50", "60")


class GuidedBorrow:
    store: StateStore  # units of work run on its thread pool: ``await self.store.run(fn, …)``
    service: LoanService
    loans: list[str]
    collateral: list[str]
    prices: Callable[[], Awaitable[dict[str, Decimal]]]
    _preview: Callable[..., Awaitable[list[Reply]]]
    _guarded: Callable[[Awaitable[list[Reply]]], Awaitable[list[Reply]]]

    async def cmd_borrow(self, user: str, args: list[str]) -> list[Reply]:
        """A full /borrow previews at once; a partial one continues with buttons."""
        b = parsing.borrow(args, self.loans, self.collateral)
        product = "vip" if b.vip else "fixed" if b.term_days is not None else "flexible"
        if b.vip and not b.collateral:
            raise Usage("A VIP borrow names its collateral amounts (… with 1.5 BTC vip).", "borrow")
        if b.complete and b.amount is not None and b.loan is not None:
            if b.collateral:
                return await self._preview(user, Borrow(b.loan, b.amount, b.collateral, product, b.term_days))
            assert b.collateral_asset is not None and b.target is not None
            return await self._borrow_at(user, b.loan, b.amount, b.collateral_asset, b.target, b.term_days)
        if b.collateral and (b.loan is None or b.amount is None):
            raise Usage("Say how much of which asset to borrow.", "borrow")
        if b.amount is not None and b.loan is not None:
            self._check_amount(b.loan, b.amount)
        if b.term_days is not None:
            self._check_term(b.loan, b.term_days)
        # a command that already says what it wants (an amount, a collateral) is Flexible unless it says fixed
        chosen = (f"fixed:{b.term_days}" if b.term_days is not None
                  else "flexible" if b.amount is not None or b.collateral_asset is not None else None)
        await self.store.run(self.service.draft, user, reset="1", loan=b.loan, collateral=b.collateral_asset,
                           amount=None if b.amount is None else str(b.amount), product=chosen)
        return await self._guide(user)

    async def _borrow_at(self, user: str, loan: str, amount: Decimal, coll: str, target: Decimal,
                         term_days: int | None) -> list[Reply]:
        qty = await self.store.read(self.service.size_collateral, user, loan, amount, coll, target, await self.prices())
        product = "fixed" if term_days else "flexible"
        return await self._preview(user, Borrow(loan, amount, {coll: qty}, product, term_days, target))

    def _check_term(self, loan: str | None, days: int) -> None:
        terms = self.service.catalog.loans[loan].fixed_apr if loan else self.service.catalog.desk.fixed_terms
        if days not in terms:
            raise Usage(f"There is no {days}-day term{f' for {loan}' if loan else ''}; the terms are "
                        f"{', '.join(f'{t}d' for t in sorted(terms))}.", "borrow")

    def _check_amount(self, loan: str, amount: Decimal) -> None:
        """The order limits, at once (not only after the LTV step)."""
        market = self.service.catalog.loans[loan]
        if amount < market.min_borrow:
            raise Usage(f"The smallest {loan} loan is {fmt(market.min_borrow)}.", "borrow")
        if amount > market.max_borrow:
            raise Usage(f"The largest {loan} order is {fmt(market.max_borrow)}.", "borrow")

    async def guided_text(self, user: str, text: str) -> list[Reply]:
        """Plain text: the amount a guided /borrow asked for; otherwise a pointer to /help."""
        draft = await self.store.read(self.service.current_draft, user)
        if draft is None or draft.loan is None or draft.collateral is None or draft.amount is not None:
            return [Reply("Send /help to see what I can do.")]
        try:
            value = parse_amount(text)
        except AmountError as exc:
            return [Reply(f"{common.e(exc)}. How much {common.e(draft.loan)} do you want to borrow?")]
        try:
            self._check_amount(draft.loan, value)
        except Usage as exc:
            return [Reply(f"{common.e(exc.message.splitlines()[0])} How much {common.e(draft.loan)} "
                          "do you want to borrow?")]
        await self.store.run(self.service.draft, user, amount=str(value))
        return await self._guarded(self._guide(user))

    async def guided_tap(self, user: str, tap: buttons.Guide) -> TapAnswer:
        draft = await self.store.read(self.service.current_draft, user)
        if tap.step == buttons.LOAN and tap.value in self.loans:
            await self.store.run(self.service.draft, user, reset="1", loan=tap.value)
        elif tap.step == buttons.PRODUCT and draft is not None and draft.loan is not None and (
                tap.value == buttons.FLEX or (tap.value.isdigit()
                and int(tap.value) in self.service.catalog.loans[draft.loan].fixed_apr)):
            product = "flexible" if tap.value == buttons.FLEX else f"fixed:{tap.value}"
            await self.store.run(self.service.draft, user, product=product)
        elif tap.step == buttons.COLLATERAL and tap.value in self.collateral:
            await self.store.run(self.service.draft, user, collateral=tap.value)
        elif tap.step == buttons.TARGET and tap.value in TARGETS:
            if draft is None or not (draft.loan and draft.collateral and draft.amount):
                return TapAnswer("That choice has expired; send /borrow again.", clear_buttons=True)
            replies = await self._guarded(self._borrow_at(user, draft.loan, Decimal(draft.amount), draft.collateral,
                                                          Decimal(tap.value) / 100, draft.term_days))
            return TapAnswer(replies=replies, clear_buttons=True)
        else:
            return TapAnswer("That button is not valid any more.", clear_buttons=True)
        return TapAnswer(replies=await self._guarded(self._guide(user)), clear_buttons=True)

    async def _guide(self, user: str) -> list[Reply]:
        d = await self.store.read(self.service.current_draft, user)
        cat = self.service.catalog
        if d is None or d.loan is None:
            return [common.choose("What do you want to borrow?", self.loans, f"{buttons.LOAN}:")]
        if d.product is None:
            return [guide.product(d.loan, await self.store.read(self.service.apr, d.loan), cat)]
        if d.collateral is None:
            options = [c for c in self.collateral if c != d.loan]
            return [common.choose(f"Borrow {d.loan} against which collateral?", options, f"{buttons.COLLATERAL}:")]
        fixed = f" fixed {d.term_days}d" if d.term_days else ""
        if d.amount is None:
            return [Reply(f"How much {common.e(d.loan)} do you want to borrow against {common.e(d.collateral)}"
                          f"{common.e(guide.product_name(d.term_days))}? Reply with the amount, e.g. 500.\n"
                          f"(Or in one line: /borrow 500 {common.e(d.loan)} with 0.01 {common.e(d.collateral)}"
                          f"{fixed})")]
        limit = (cat.products["fixed"].initial_ltv if d.term_days else None) or cat.collateral[d.collateral].initial_ltv
        options = [t for t in TARGETS if Decimal(t) <= limit * 100]
        rows = [[(f"{t}% LTV", buttons.guide(buttons.TARGET, t)) for t in options]]
        return [Reply(f"Borrow {common.e(d.amount)} {common.e(d.loan)}{common.e(guide.product_name(d.term_days))}: "
                      f"how much {common.e(d.collateral)} collateral? Pick a target LTV (lower is safer; the limit is "
                      f"{common.e(pct(limit))}).", rows)]
