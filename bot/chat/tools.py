"""Chat handlers for protection, risk tools and VIP term sheets, mixed into ``bot.chat.desk.ChatDesk``.

Same shape as every handler: parse (``bot.parsing``, ``bot.vip_syntax``) → one ``ToolService`` (or preview)
call → render (``bot.render_tools``). Pictures are drawn in a worker thread so the bot keeps answering.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal

from bot.chat import parsing
from bot.chat.parsing import Usage
from bot.chat.vip_syntax import parse_vip
from bot.history.events import EVENTS, event
from bot.monitor.prices import PriceSource, chart_candles
from bot.render import common
from bot.render import termsheet as render_termsheet
from bot.render import tools as render_tools
from bot.render.charts import render_backtest_chart, render_position_chart
from bot.render.common import Reply
from bot.service.store import StateStore
from bot.service.tools import MIN_TICKS, ChartData, ToolService
from domain.analysis.backtest import BacktestError
from domain.prices import Prices
from domain.risk import Lot, ltv


class ToolCommands:
    store: StateStore  # units of work run on its thread pool: ``await self.store.run(fn, …)``
    """Handlers of ``/protect``, ``/alert``, ``/alerts``, ``/stress``, ``/estimate``, ``/backtest``,
    ``/chart``, ``/terms`` and the operators' ``/vip``. Needs ``ChatDesk``'s ``tools``, ``prices``,
    ``_prices_or_empty``, ``_preview``, ``loans`` and ``collateral``."""

    tools: ToolService
    loans: list[str]
    collateral: list[str]
    prices: Callable[[], Awaitable[dict[str, Decimal]]]
    price_source: PriceSource
    _prices_or_empty: Callable[[], Awaitable[dict[str, Decimal]]]
    _preview: Callable[..., Awaitable[list[Reply]]]

    async def cmd_protect(self, user: str, args: list[str]) -> list[Reply]:
        """/protect <id> <trigger>% <target>% topup|repay, or /protect <id> off."""
        parsing.need(args, ["the position number", "the trigger LTV (or off)"], "protect")
        pid = parsing.position_id(args[0], "protect")
        if len(args) == 2 and args[1].lower() == "off":
            return [render_tools.protection_removed(pid, await self.store.run(self.tools.unprotect, user, pid))]
        parsing.need(args, ["the position number", "the trigger LTV", "the target LTV", "topup or repay"], "protect")
        parsing.extra(args, 4, "protect")
        trigger, target = parsing.percent(args[1], "protect"), parsing.percent(args[2], "protect")
        mode = args[3].lower()
        if mode not in ("topup", "repay"):
            raise Usage(f"'{parsing.quoted(args[3])}' is not a mode: topup adds collateral, repay pays debt back.",
                        "protect")
        rule = await self.store.run(self.tools.protect, user, pid, trigger, target, mode)
        return [render_tools.protection_set(rule, self.tools.loans.clock())]

    async def cmd_alert(self, user: str, args: list[str]) -> list[Reply]:
        """/alert ltv <pct>  or  /alert price <id> <pct>."""
        if args and args[0].lower() == "price":
            return await self.alert_price(user, args[1:])
        if not args or args[0].lower() != "ltv":
            raise Usage("Say what to watch: ltv (your warning level) or price (a position's collateral price).",
                        "alert")
        parsing.need(args, ["ltv", "the level"], "alert")
        parsing.extra(args, 2, "alert")
        level = await self.store.run(self.tools.loans.set_alert_ltv, user, parsing.percent(args[1], "alert"))
        return [Reply(f"Done. You will be warned when a position's LTV reaches {common.ltv_text(level)}.")]

    async def alert_price(self, user: str, args: list[str]) -> list[Reply]:
        """/alert price <id> <pct>, or /alert price <id> off."""
        parsing.need(args, ["the position number", "the distance to the margin-call price (or off)"], "alert")
        parsing.extra(args, 2, "alert")
        pid = parsing.position_id(args[0], "alert")
        if args[1].lower() == "off":
            return [render_tools.price_alert_removed(pid, await self.store.run(self.tools.unalert_price, user, pid))]
        distance = parsing.percent(args[1], "alert")
        alert, now = await self.store.run(self.tools.alert_price, user, pid, distance, await self._prices_or_empty())
        return [render_tools.price_alert_set(alert, now)]

    async def cmd_alerts(self, user: str, args: list[str]) -> list[Reply]:
        """Warning level, price alerts and protection rules."""
        quotes = await self._prices_or_empty()
        return [render_tools.alerts_overview(await self.store.read(self.tools.overview, user, quotes))]

    async def cmd_stress(self, user: str, args: list[str]) -> list[Reply]:
        """/stress <id> -30%  or  /stress <id> BTC -30% ETH -20%."""
        parsing.need(args, ["the position number", "the price move"], "stress")
        pid = parsing.position_id(args[0], "stress")
        rest = args[1:]
        moves: dict[str, Decimal] = {}
        if len(rest) == 1:
            moves["*"] = parsing.move(rest[0], "stress")
        elif len(rest) % 2:
            raise Usage("Give each asset its move, like BTC -30% ETH -20%.", "stress")
        else:
            known = sorted({*self.collateral, *self.loans})
            for name, value in zip(rest[::2], rest[1::2], strict=True):
                asset = parsing.asset(name, known, "stress")
                if asset in moves:
                    raise Usage(f"{asset} is named twice.", "stress")
                moves[asset] = parsing.move(value, "stress")
        return [render_tools.stress(await self.store.read(self.tools.stress, user, pid, moves, await self.prices()))]

    async def cmd_estimate(self, user: str, args: list[str]) -> list[Reply]:
        """/estimate <amount> <ASSET> <days>d."""
        parsing.need(args, ["the amount", "the asset", "the days"], "estimate")
        parsing.extra(args, 3, "estimate")
        amount = parsing.amount(args[0], "estimate")
        asset = parsing.asset(args[1], self.loans, "estimate", "loan asset")
        days = parsing.days(args[2], "estimate")
        return [render_tools.estimate(await self.store.read(self.tools.estimate, amount, asset, days))]

    async def cmd_backtest(self, user: str, args: list[str]) -> list[Reply]:
        """/backtest <id> <event>: the position through a historical crash, with the chart."""
        parsing.need(args, ["the position number", f"the crash ({', '.join(EVENTS)})"], "backtest")
        parsing.extra(args, 2, "backtest")
        pid = parsing.position_id(args[0], "backtest")
        try:
            ev = event(args[1])
        except BacktestError:
            raise Usage(f"'{parsing.quoted(args[1])}' is not a crash I know (choose: {', '.join(EVENTS)}).",
                        "backtest") from None
        result = await self.store.read(self.tools.backtest, user, pid, ev.name, await self.prices())
        png = await asyncio.to_thread(render_backtest_chart, result, f"#{pid} through {ev.title}")
        return [render_tools.backtest(pid, ev.title, result, png)]

    async def cmd_chart(self, user: str, args: list[str]) -> list[Reply]:
        """/chart <id>: price and LTV since the position opened."""
        parsing.need(args, ["the position number"], "chart")
        parsing.extra(args, 1, "chart")
        pid = parsing.position_id(args[0], "chart")
        data = await self.store.read(self.tools.chart, user, pid, await self.prices())
        if data.start is not None and data.now is not None:  # the exchange's candles before the recorded prices
            data = data.with_candles(await chart_candles(self.price_source, data.assets(), data.start, data.now))
        png = await asyncio.to_thread(draw_chart, data) if data.ticks >= MIN_TICKS else None
        return [render_tools.chart(data, png)]

    async def cmd_terms(self, user: str, args: list[str]) -> list[Reply]:
        """The borrower's current VIP term sheet."""
        return [render_termsheet.term_sheet(await self.store.read(self.tools.term_sheet, user))]

    async def cmd_vip(self, user: str, args: list[str]) -> list[Reply]:
        """Operators: /vip <user_id> shows a borrower's sheet; /vip <user_id> … issues a new version."""
        if len(args) == 1:
            owner = parsing.user_id(args[0], "vip")
            return [render_termsheet.term_sheet(await self.store.read(self.tools.term_sheet, owner))]
        cat = self.tools.catalog
        action = parse_vip(args, self.loans, {a: c.ratio for a, c in cat.collateral.items()})
        return await self._preview(user, action, prices=False)


def draw_chart(data: ChartData) -> bytes:
    """The position's PNG: the watched asset's recorded prices, the LTV at each with today's debt and
    collateral (other assets at their latest recorded price, or today's)."""
    v = data.view
    times = [t for t, _ in data.history[data.watched]]
    latest: dict[str, Decimal] = {}
    cursors = {a: 0 for a in data.history}
    prices, ltvs = [], []
    for t in times:
        for a, series in data.history.items():
            while cursors[a] < len(series) and series[cursors[a]][0] <= t:
                latest[a] = series[cursors[a]][1]
                cursors[a] += 1
        quotes: Prices = {**{a: Decimal(1) for a in (*v.collateral, v.loan_asset)}, **data.current, **latest}
        prices.append(quotes[data.watched])
        lots = [Lot(a, amt, quotes[a], data.ratios.get(a, Decimal(1))) for a, amt in v.collateral.items()]
        ltvs.append(ltv(v.debt, quotes[v.loan_asset], lots) if lots else None)
    th = v.thresholds
    levels = {"initial": th.initial, "warning": data.warning, "margin call": th.margin_call,
              "liquidation": th.liquidation}
    single = data.watched == v.single_collateral
    return render_position_chart(f"#{v.id} {v.loan_asset} loan", data.watched, times, prices, ltvs, levels,
                                 v.margin_call_price if single else None, v.liquidation_price if single else None)
