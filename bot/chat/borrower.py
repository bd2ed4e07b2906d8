"""The borrower's commands on loans and wallets: each one parses (``bot.chat.parsing``), makes one service call
and renders (``bot.render.answers``). Mixed into ``bot.chat.desk.ChatDesk``, which provides the attributes
declared below."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from bot.chat import parsing, registry
from bot.chat.parsing import Usage
from bot.monitor.offline import OfflinePrices
from bot.render import answers, common
from bot.render import history as render_history
from bot.render import tracking as render_tracking
from bot.render.common import Reply
from bot.service.loans import LoanService
from bot.service.tools import ToolService
from bot.service.tracking import TrackingService
from bot.service.usecases import Action, AddCollateral, Close, Repay, RepayWithCollateral, Transfer, WithdrawCollateral


class BorrowerCommands:
    service: LoanService
    tools: ToolService
    tracking: TrackingService
    demo: bool
    loans: list[str]
    collateral: list[str]
    prices: Callable[[], Awaitable[dict[str, Decimal]]]
    _preview: Callable[..., Awaitable[list[Reply]]]
    is_operator: Callable[[str], bool]
    offline: OfflinePrices | None

    async def cmd_start(self, user: str, args: list[str]) -> list[Reply]:
        """Welcome: what the desk does and how to start."""
        return [answers.welcome(self.service.catalog, self.demo)]

    async def cmd_help(self, user: str, args: list[str]) -> list[Reply]:
        """Every command this person may use, from the registry."""
        sections = registry.help_sections(self.is_operator(user), self.demo, self.offline is not None)
        return [answers.help_text(sections)]

    async def cmd_markets(self, user: str, args: list[str]) -> list[Reply]:
        """Rates, fixed terms and limits."""
        return [answers.markets(self.service.catalog, {a: self.service.apr(a) for a in self.loans})]

    async def cmd_positions(self, user: str, args: list[str]) -> list[Reply]:
        """Every open loan: the desk's, then those held elsewhere (SPEC §9)."""
        prices = await self.prices()
        desk, held = self.service.positions(user, prices), self.tracking.views(user, prices)
        if held and not desk:
            return [Reply(render_tracking.section(held))]
        return [answers.positions(desk)] + ([Reply(render_tracking.section(held))] if held else [])

    async def cmd_position(self, user: str, args: list[str]) -> list[Reply]:
        """One loan (the desk's, or one held elsewhere)."""
        parsing.need(args, ["the position number"], "position")
        parsing.extra(args, 1, "position")
        pid = parsing.position_id(args[0], "position")
        prices = await self.prices()
        held = self.tracking.view(user, pid, prices)
        if held is not None:
            return [render_tracking.position(held)]
        return [answers.position(self.service.position(user, pid, prices))]

    async def cmd_repay(self, user: str, args: list[str]) -> list[Reply]:
        """/repay <id> <amount|all> [with collateral]."""
        parsing.need(args, ["the position number", "the amount (a number, or all)"], "repay")
        pid = parsing.position_id(args[0], "repay")
        amount = None if args[1].lower() == "all" else parsing.amount(args[1], "repay")
        rest = [a.lower() for a in args[2:]]
        if rest not in ([], ["with", "collateral"]):
            raise Usage(f"I did not understand '{parsing.quoted(' '.join(args[2:]))}'.", "repay")
        if rest:
            return await self._preview(user, RepayWithCollateral(pid, amount))
        return await self._preview(user, Repay(pid, amount), prices=False)

    async def cmd_add(self, user: str, args: list[str]) -> list[Reply]:
        """/add <id> <amount> [ASSET] [from earn]."""
        return await self._collateral_move(user, args, "add")

    async def cmd_withdraw(self, user: str, args: list[str]) -> list[Reply]:
        """/withdraw <id> <amount> [ASSET]."""
        return await self._collateral_move(user, args, "withdraw")

    async def _collateral_move(self, user: str, args: list[str], kind: str) -> list[Reply]:
        parsing.need(args, ["the position number", "the amount"], kind)
        pid = parsing.position_id(args[0], kind)
        amount = parsing.amount(args[1], kind)
        rest = list(args[2:])
        source = "spot"
        if kind == "add" and [a.lower() for a in rest[-2:]] == ["from", "earn"]:
            source, rest = "earn", rest[:-2]
        parsing.extra(rest, 1, kind)
        asset = parsing.asset(rest[0], self.collateral, kind, "collateral asset") if rest else None
        action: Action = (AddCollateral(pid, amount, asset, source) if kind == "add"
                          else WithdrawCollateral(pid, amount, asset))
        return await self._preview(user, action)

    async def cmd_close(self, user: str, args: list[str]) -> list[Reply]:
        """/close <id>: repay everything from Spot."""
        parsing.need(args, ["the position number"], "close")
        parsing.extra(args, 1, "close")
        return await self._preview(user, Close(parsing.position_id(args[0], "close")), prices=False)

    async def cmd_wallet(self, user: str, args: list[str]) -> list[Reply]:
        """Spot and Earn balances."""
        return [answers.wallet(self.service.wallet(user), self.service.catalog)]

    async def cmd_earn(self, user: str, args: list[str]) -> list[Reply]:
        """/earn <amount> <ASSET>: Spot → Earn."""
        return await self._transfer(user, args, "earn")

    async def cmd_redeem(self, user: str, args: list[str]) -> list[Reply]:
        """/redeem <amount> <ASSET>: Earn → Spot."""
        return await self._transfer(user, args, "redeem")

    async def _transfer(self, user: str, args: list[str], kind: str) -> list[Reply]:
        parsing.need(args, ["the amount", "the asset"], kind)
        parsing.extra(args, 2, kind)
        amount = parsing.amount(args[0], kind)
        asset = parsing.asset(args[1], self.service.catalog.assets, kind)
        return await self._preview(user, Transfer(asset, amount, "earn" if kind == "earn" else "spot"),
                                   prices=False)

    async def cmd_history(self, user: str, args: list[str]) -> list[Reply]:
        """/history [id]."""
        parsing.extra(args, 1, "history")
        pid = parsing.position_id(args[0], "history") if args else None
        held = self.tracking.history(user, pid) if pid is not None else None  # a loan held elsewhere
        return [render_history.history(held if held is not None else self.service.history(user, pid))]

    async def cmd_notify(self, user: str, args: list[str]) -> list[Reply]:
        """/notify · /notify rates on|off · /notify digest on|off [HH] (UTC hour)."""
        what = [a.lower() for a in args]
        if not what:
            return [answers.notify_prefs(self.tools.prefs(user))]
        if len(what) < 2 or what[0] not in ("rates", "digest") or what[1] not in ("on", "off") \
                or len(what) > (3 if what[:2] == ["digest", "on"] else 2):
            raise Usage(f"I did not understand '{parsing.quoted(' '.join(args))}'.", "notify")
        on = what[1] == "on"
        if what[0] == "rates":
            return [answers.notify_prefs(self.tools.set_prefs(user, rate_changes=on), "Done.")]
        values: dict[str, Any] = {"daily_digest": on}
        if len(what) == 3:
            hour = what[2].removesuffix(":00")
            if not hour.isascii() or not hour.isdigit() or not 0 <= int(hour) <= 23:
                raise Usage(f"'{args[2]}' is not an hour of the day (0 to 23, UTC).", "notify")
            values["digest_hour"] = int(hour)
        return [answers.notify_prefs(self.tools.set_prefs(user, **values), "Done.")]

    async def cmd_faucet(self, user: str, args: list[str]) -> list[Reply]:
        """Demo funds."""
        got = self.service.faucet(user)
        return [Reply("Demo funds credited to your Spot wallet: "
                      + ", ".join(f"{common.amt(v)} {common.e(a)}" for a, v in got.items()))]
