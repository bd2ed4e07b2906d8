"""The chat's front door, shared by Telegram and the console: a command, a text or a tap in, ``Reply`` objects out.

``command`` routes by the registry (``bot.chat.registry``): operator commands need an operator, private commands
a private chat, group commands a group; an unknown name gets "did you mean". Every handler is the same shape:
parse the arguments (``bot.chat.parsing``), make ONE service call, render (``bot.render``); the handlers live in
``borrower``, ``guided``, ``operator`` and ``tools``, mixed in here. ``tap`` decodes a button (``bot.chat.taps``)
and authorises it on the server. Refusals (``Usage``, ``Rejected``, ``PricesUnavailable``) become short answers
and change nothing; anything else propagates to the adapter's error handler.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Collection
from decimal import Decimal

from bot.chat import registry
from bot.chat.borrower import BorrowerCommands
from bot.chat.guided import GuidedBorrow
from bot.chat.offline import OfflineCommands
from bot.chat.operator import OperatorCommands
from bot.chat.parsing import Usage
from bot.chat.tools import ToolCommands
from bot.chat.tracking import TrackingCommands
from bot.monitor.offline import OfflinePrices
from bot.monitor.prices import PriceSource, PricesUnavailable
from bot.render import answers, common, previews
from bot.render import buttons as taps
from bot.render import tracking as render_tracking
from bot.render.common import Reply, TapAnswer
from bot.service.loans import LoanService
from bot.service.tools import ToolService
from bot.service.tracking import TrackingService
from bot.service.usecases import Action, AddCollateral, Repay, position_of
from domain.errors import Rejected
from domain.money import round_up

PRIVATE_ONLY = "Please use a private chat with me for that."
IN_A_GROUP = "/{name} works in a group: add me to a group, a group admin sends /monitor, then members use /{name}."
OPERATORS_ONLY = "That command is for the desk's operators."
CONSOLE_ONLY = ("/{name} works only in the offline console (loandesk console); here prices come from the "
                "exchange.")
POSITION_TAG = re.compile(r"^#\d{1,9}$", re.ASCII)  # "#12" alone: position 12
PRICES_DOWN = "Prices are unavailable right now; nothing was changed. Try again in a minute."


class ChatDesk(BorrowerCommands, GuidedBorrow, OperatorCommands, ToolCommands, OfflineCommands, TrackingCommands):
    def __init__(self, service: LoanService, prices: PriceSource, operators: Collection[int], demo: bool,
                 tracking: TrackingService | None = None) -> None:
        self.service = service
        self.price_source = prices
        self.offline = prices if isinstance(prices, OfflinePrices) else None  # the console's own prices
        self.operators = frozenset(operators)
        self.demo = demo
        self.tracking = tracking or TrackingService(service.catalog, service.store, "", None, clock=service.clock)
        self.tools = ToolService(service, self.tracking)
        cat = service.catalog
        self.loans = list(cat.loans)
        self.collateral = list(cat.collateral)

    def is_operator(self, user: str) -> bool:
        return user.isdigit() and int(user) in self.operators

    async def prices(self) -> dict[str, Decimal]:
        return await self.price_source.prices()

    async def _prices_or_empty(self) -> dict[str, Decimal]:
        try:
            return await self.prices()
        except PricesUnavailable:
            return {}

    # ----------------------------------------------------------------- entry points

    async def command(self, user_id: int, private: bool, name: str, args: list[str]) -> list[Reply]:
        """A /command by name (without the slash and @suffix), routed by the registry."""
        user = str(user_id)
        operator = user_id in self.operators
        command = registry.find(name)
        if command is None:
            guess = registry.did_you_mean(name, operator, self.offline is not None)
            hint = f" Did you mean /{guess}?" if guess else ""
            return [Reply(f"I don't know /{common.e(name)}.{hint} Send /help for the list.")] if private else []
        if command.name == "vip" and not args:
            command = registry.BY_NAME["terms"]  # /vip alone: your own term sheet, for everyone
        if command.console_only and self.offline is None:
            return [Reply(common.e(CONSOLE_ONLY.format(name=command.name)))]
        if command.who == registry.OPERATOR and not operator:
            return [Reply(OPERATORS_ONLY)]
        if command.where == registry.GROUP:
            return [Reply(common.e(IN_A_GROUP.format(name=command.name)))]
        if command.where == registry.PRIVATE and not private:
            return [Reply(PRIVATE_ONLY)]
        if command.demo_only and not self.demo:
            return [Reply(f"/{command.name} only runs on the demo desk.")]
        handler = getattr(self, f"cmd_{command.name}")
        replies: list[Reply] = await self._guarded(handler(user, args))
        return replies

    async def text(self, user_id: int, private: bool, text: str) -> list[Reply]:
        """Plain text (not a command): in a private chat, ``#12`` shows position 12; anything else is the amount a
        guided /borrow asked for."""
        if not private:
            return []
        if POSITION_TAG.match(text.strip()):
            return await self.command(user_id, private, "position", [text.strip()])
        return await self.guided_text(str(user_id), text)

    async def tap(self, user_id: int, data: str) -> TapAnswer:
        user = str(user_id)
        tap = taps.decode(data)
        if isinstance(tap, taps.Confirm):
            return await self._confirm(user_id, tap.token)
        if isinstance(tap, taps.Cancel):
            o = self.service.cancel(user, tap.token)
            return TapAnswer(o.message, [], o.status in ("cancelled", "already", "expired"))
        if isinstance(tap, taps.PushButton):
            return TapAnswer(replies=await self._guarded(self._push_tap(user, tap.action, tap.pid)))
        if isinstance(tap, taps.Guide):
            return await self.guided_tap(user, tap)
        return TapAnswer("That button is not valid any more.", clear_buttons=True)

    async def _confirm(self, user_id: int, token: str) -> TapAnswer:
        try:
            prices: dict[str, Decimal] | None = await self.prices()
        except PricesUnavailable:
            prices = None
        o = self.service.confirm(str(user_id), token, prices, operator=user_id in self.operators)
        if o.status == "failed" and not o.message:
            return TapAnswer("Prices are unavailable", [Reply(PRICES_DOWN)])
        if o.status == "failed":
            return TapAnswer("Not done", [common.refused(o.message)])
        if o.status in ("refused", "already"):
            return TapAnswer(o.message)
        return TapAnswer(o.message or "Done", [previews.outcome(o)], clear_buttons=True)

    async def _push_tap(self, user: str, kind: str, pid: int) -> list[Reply]:
        """View the position, or preview the top-up / repayment that brings it back to its initial LTV."""
        held = self.tracking.view(user, pid, await self._prices_or_empty())
        if held is not None:  # a loan held elsewhere: only viewed here (its buttons link to the lender)
            return [render_tracking.position(held)]
        view = self.service.position(user, pid, await self._prices_or_empty())  # refuses another's position
        target = view.thresholds.initial
        asset = view.single_collateral
        if kind == taps.VIEW or view.ltv is None or view.ltv <= target or (kind == taps.ADD and asset is None):
            return [answers.position(view, hint=True)]
        cat = self.service.catalog
        if kind == taps.ADD:
            assert asset is not None
            amount = round_up(view.collateral[asset] * (view.ltv / target - 1), cat.precision(asset))
            return await self._preview(user, AddCollateral(pid, amount))
        amount = round_up(view.debt * (1 - target / view.ltv), cat.precision(view.loan_asset))
        return await self._preview(user, Repay(pid, min(amount, view.debt)), prices=False)

    async def _guarded(self, work: Awaitable[list[Reply]]) -> list[Reply]:
        try:
            return await work
        except Usage as exc:
            return [common.usage(exc.message)]
        except Rejected as exc:
            return [common.refused(exc.message)]
        except PricesUnavailable:
            return [Reply(PRICES_DOWN)]

    async def _preview(self, user: str, action: Action, prices: bool = True) -> list[Reply]:
        """Preview ``action`` (``prices=False``: one that needs no price, e.g. a repayment, works without)."""
        pid = position_of(action)
        held = self.tracking.one(user, pid) if pid is not None else None
        if held is not None:  # a loan held elsewhere: loandesk never moves money there
            raise Rejected("held_elsewhere", render_tracking.act_there(held))
        quotes = await self.prices() if prices else await self._prices_or_empty()
        return [previews.preview(self.service.preview(user, action, quotes))]
