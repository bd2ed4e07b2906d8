"""The operators' commands on the book: fund or debit a user's Spot, set a flexible rate, read the whole book,
and let a liquidation wave paused by the circuit breaker through. Mixed into ``bot.chat.desk.ChatDesk``; the
router lets only operators in (``bot.chat.registry``), and the service checks again on Confirm."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal

from bot.chat import parsing
from bot.render import answers
from bot.render.common import Reply
from bot.service.loans import LoanService
from bot.service.store import StateStore
from bot.service.usecases import Credit, Debit, ResumeLiquidations, SetRate

RATE_WARNING = Decimal("0.5")  # an APR above 50% is previewed with a warning


class OperatorCommands:
    store: StateStore  # units of work run on its thread pool: ``await self.store.run(fn, …)``
    service: LoanService
    loans: list[str]
    _preview: Callable[..., Awaitable[list[Reply]]]
    _prices_or_empty: Callable[[], Awaitable[dict[str, Decimal]]]

    async def cmd_credit(self, user: str, args: list[str]) -> list[Reply]:
        """/credit <user_id> <amount> <ASSET>."""
        return await self._funds(user, args, "credit")

    async def cmd_debit(self, user: str, args: list[str]) -> list[Reply]:
        """/debit <user_id> <amount> <ASSET>."""
        return await self._funds(user, args, "debit")

    async def _funds(self, user: str, args: list[str], kind: str) -> list[Reply]:
        parsing.need(args, ["the user id", "the amount", "the asset"], kind)
        parsing.extra(args, 3, kind)
        who = parsing.user_id(args[0], kind)
        amount = parsing.amount(args[1], kind)
        asset = parsing.asset(args[2], self.service.catalog.assets, kind)
        action = Credit(who, amount, asset) if kind == "credit" else Debit(who, amount, asset)
        return await self._preview(user, action, prices=False)

    async def cmd_setrate(self, user: str, args: list[str]) -> list[Reply]:
        """/setrate <ASSET> <apr%>."""
        parsing.need(args, ["the asset", "the APR"], "setrate")
        parsing.extra(args, 2, "setrate")
        asset = parsing.asset(args[0], self.loans, "setrate", "loan asset")
        return await self._preview(user, SetRate(asset, parsing.percent(args[1], "setrate")), prices=False)

    async def cmd_book(self, user: str, args: list[str]) -> list[Reply]:
        """The whole book by LTV."""
        return [answers.book(await self.store.read(self.service.book, await self._prices_or_empty()))]

    async def cmd_resume(self, user: str, args: list[str]) -> list[Reply]:
        """/resume: let the liquidation wave the circuit breaker paused go through."""
        parsing.extra(args, 0, "resume")
        return await self._preview(user, ResumeLiquidations(), prices=False)
