"""``/price``, the offline console's own command (registered ``console_only``): list the offline prices, set
one by hand, or replay a shipped crash at a chosen speed. Mixed into ``bot.chat.desk.ChatDesk``, whose router
answers it outside the console with a sentence saying where it works."""

from __future__ import annotations

from decimal import Decimal

from bot.chat import parsing
from bot.chat.parsing import Usage
from bot.history.events import EVENTS
from bot.monitor.offline import OfflinePrices
from bot.monitor.prices import QUOTE
from bot.render import answers
from bot.render.common import Reply
from bot.service.loans import LoanService
from domain.analysis.backtest import BacktestError

DEFAULT_SPEED = Decimal(3600)  # an hour of history a second: a 5-day crash in 2 minutes
MAX_SPEED = Decimal(10_000_000)


def speed(text: str) -> Decimal:
    """``600``, ``600x`` or ``600×``: how many seconds of history pass per second."""
    value = parsing.amount(text.strip().rstrip("x×X"), "price")
    if not 1 <= value <= MAX_SPEED:
        raise Usage(f"The speed is how many seconds of history pass per second: 1 to {MAX_SPEED:,} "
                    "(600 plays an hour in 6 s).", "price")
    return value


class OfflineCommands:
    service: LoanService
    offline: OfflinePrices | None

    async def cmd_price(self, user: str, args: list[str]) -> list[Reply]:
        """/price · /price BTC 40000 · /price replay march2020 [speed]."""
        source = self.offline
        assert source is not None  # the router sends /price here only in the console
        catalog = self.service.catalog
        if not args:
            running = source.replay if source.replay is not None and not source.replay.finished else None
            return [answers.offline_prices(source.now(), running.name if running else None)]
        if args[0].lower() == "replay":
            parsing.need(args, ["replay", f"the crash ({', '.join(EVENTS)})"], "price")
            parsing.extra(args, 3, "price")
            pace = speed(args[2]) if len(args) == 3 else DEFAULT_SPEED
            try:
                replay = source.replay_event(args[1], float(pace))
            except BacktestError:
                raise Usage(f"'{args[1]}' is not a crash I know (choose: {', '.join(EVENTS)}).", "price") from None
            lead = replay.paths[replay.lead]
            low = min(range(len(lead.values)), key=lambda i: lead.values[i])
            return [answers.replay_started(replay.name, replay.title, pace, replay.lead,
                                           lead.values[low] / lead.values[0] - 1,
                                           replay.seconds_to(lead.times[low]))]
        parsing.need(args, ["the asset", "the price in USDT"], "price")
        parsing.extra(args, 2, "price")
        asset = parsing.asset(args[0], catalog.assets, "price")
        if asset == QUOTE:
            raise Usage(f"{QUOTE} is what prices are quoted in: it is always 1.", "price")
        price = parsing.amount(args[1], "price")
        if price <= 0:
            raise Usage("A price must be above zero.", "price")
        old, stopped = source.set(asset, price)
        return [answers.price_set(asset, price, old, stopped, catalog.desk)]
