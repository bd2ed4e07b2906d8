"""The chat's brain, shared by Telegram and the console: a command or a tap in, ``Reply`` objects out.

Each command handler is the same shape: parse the arguments (``bot.parsing``), make ONE service call, render
(``bot.render``). Permission checks happen here, on the server, for commands and taps alike: operator
commands need an operator, borrower commands need a private chat, and the service refuses a Confirm from
anyone but the preview's owner. Refusals (``Usage``, ``Rejected``, ``PricesUnavailable``) become short answers
and change nothing; anything else propagates to the adapter's error handler.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bot import parsing, render
from bot.parsing import Usage
from bot.prices import PriceSource, PricesUnavailable
from bot.render import Reply
from bot.services import LoanService, size_collateral
from bot.tool_commands import ToolCommands
from bot.tools_service import ToolService
from domain.errors import Rejected
from domain.money import AmountError, parse_amount, round_up

PRIVATE_ONLY = "Please use a private chat with me for that."
OPERATORS_ONLY = "That command is for the desk's operators."
PRICES_DOWN = "Prices are unavailable right now; nothing was changed. Try again in a minute."
TARGETS = ("30", "40", "50", "60")

BORROWER_COMMANDS = [
    ("start", "Welcome and how it works"), ("help", "All commands"), ("markets", "Rates and LTV limits"),
    ("borrow", "Borrow against collateral"), ("positions", "Your loans"), ("position", "One loan: /position 1"),
    ("repay", "Repay: /repay 1 100 or all"), ("add", "Add collateral: /add 1 0.1"),
    ("withdraw", "Withdraw collateral"), ("close", "Repay all and close"), ("wallet", "Your balances"),
    ("history", "What happened"), ("alerts", "Your alert level"), ("alert", "Set it: /alert ltv 75%"),
    ("protect", "Auto-protection: /protect 1 80% 65% topup"), ("stress", "What if: /stress 1 -30%"),
    ("estimate", "Cost: /estimate 1000 USDT 30d"), ("backtest", "Replay a crash: /backtest 1 march2020"),
    ("chart", "Price and LTV chart: /chart 1"), ("terms", "Your VIP term sheet"),
    ("notify", "Opt-in pushes: /notify rates on, /notify digest on 8"),
]
OPERATOR_HELP = """<b>Operators</b>
/credit 123 2 BTC · /debit 123 2 BTC · /setrate USDT 6.5% · /book
/vip 123 — show user 123's VIP term sheet
/vip 123 USDT fixed 5% ltv 80/88/93 collateral BTC:1,ETH:0.95 partial delay 10 min min 50000
  issue a new version: loan assets (USDT,USDC), fixed APR or flexible +spread%, initial/margin-call/
  liquidation LTV, collateral ASSET:ratio, full|partial liquidation, optional delay, min first order,
  max total borrow, warn %"""
HELP = """<b>loandesk</b> lends against your crypto.
/markets — rates and LTV limits
/borrow 500 USDT with 0.01 BTC — or /borrow 500 USDT with BTC at 50%, or just /borrow
/positions, /position 1 — your loans (LTV, margin-call and liquidation prices)
/repay 1 100 — or /repay 1 all, /repay 1 all with collateral
/add 1 0.1 — more collateral · /withdraw 1 0.1 — take some back
/close 1 — repay everything, get the collateral back
/wallet · /history [id] · /alerts · /alert ltv 75% · /alert price 1 10% (within 10% of the margin call)
/protect 1 80% 65% topup — at 80% LTV add collateral from Spot/Earn back to 65% (or repay from Spot)
/stress 1 -30% (or /stress 1 BTC -30% ETH -20%) · /estimate 1000 USDT 30d
/backtest 1 march2020 (also may2021, dec2021, aug2024) · /chart 1
/terms — your VIP term sheet · /borrow 60000 USDT with 1.5 BTC vip — borrow under it
/notify rates on|off — rate changes of what you borrow · /notify digest on 8|off — a daily digest at 08:00 UTC
In a group: /monitor (admins) · /share [id|all] · /unshare · /board"""


@dataclass
class TapAnswer:
    """What a button tap produces: a short toast, new messages, and whether the tapped keyboard goes."""

    toast: str = ""
    replies: list[Reply] = field(default_factory=list)
    clear_buttons: bool = False


Handler = Callable[[str, list[str]], Awaitable[list[Reply]]]


class ChatDesk(ToolCommands):
    def __init__(self, service: LoanService, prices: PriceSource, operators: Collection[int], demo: bool) -> None:
        self.service = service
        self.price_source = prices
        self.operators = frozenset(operators)
        self.demo = demo
        self.tools = ToolService(service)
        cat = service.catalog
        self.loans = list(cat.loans)
        self.collateral = list(cat.collateral)
        self.borrower: dict[str, Handler] = {
            "start": self.start, "help": self.help, "markets": self.markets, "borrow": self.borrow,
            "positions": self.positions, "position": self.position, "repay": self.repay, "add": self.add,
            "withdraw": self.withdraw, "close": self.close, "wallet": self.wallet, "history": self.history,
            "alerts": self.alerts, "alert": self.alert, "faucet": self.faucet,
            "protect": self.protect, "stress": self.stress, "estimate": self.estimate, "backtest": self.backtest,
            "chart": self.chart, "terms": self.terms, "notify": self.notify,
        }
        self.operator: dict[str, Handler] = {
            "credit": self.credit, "debit": self.debit, "setrate": self.setrate, "book": self.book,
            "vip": self.vip,
        }
        self.anywhere = {"start", "help"}

    @property
    def commands(self) -> list[str]:
        return [*self.borrower, *self.operator]

    async def prices(self) -> dict[str, Decimal]:
        return await self.price_source.prices()

    # ----------------------------------------------------------------- entry points

    async def command(self, user_id: int, private: bool, name: str, args: list[str]) -> list[Reply]:
        name = name.lower()
        user = str(user_id)
        if name == "vip" and not args and user_id not in self.operators:
            name = "terms"  # a borrower's /vip shows their own term sheet
        handler = self.operator.get(name)
        if handler is not None and user_id not in self.operators:
            return [Reply(OPERATORS_ONLY)]
        handler = handler or self.borrower.get(name)
        if handler is None:
            return [Reply(f"I don't know /{render.e(name)}. Send /help for the list.")]
        if not private and name not in self.anywhere:
            return [Reply(PRIVATE_ONLY)]
        if name == "faucet" and not self.demo:
            return [Reply("The faucet only runs on the demo desk.")]
        return await self._guarded(handler(user, args))

    async def text(self, user_id: int, private: bool, text: str) -> list[Reply]:
        """Plain text: the amount a guided /borrow asked for; otherwise a pointer to /help."""
        if not private:
            return []
        user = str(user_id)
        draft = self.service.current_draft(user)
        if draft is None or draft.loan is None or draft.collateral is None or draft.amount is not None:
            return [Reply("Send /help to see what I can do.")]
        try:
            value = parse_amount(text)
        except AmountError as exc:
            return [Reply(f"{render.e(exc)}. How much {render.e(draft.loan)} do you want to borrow?")]
        draft = self.service.draft(user, amount=str(value))
        return await self._guarded(self._guide(user))

    async def tap(self, user_id: int, data: str) -> TapAnswer:
        user = str(user_id)
        kind, _, value = data.partition(":")
        if kind in ("c", "x"):
            return await self._confirm_or_cancel(user_id, kind, value)
        if kind in ("pa", "pr", "pv") and value.isdigit():  # the buttons under a push (bot.pushes)
            return TapAnswer(replies=await self._guarded(self._push_tap(user, kind, int(value))))
        if kind == "bl" and value in self.loans:
            self.service.draft(user, reset="1", loan=value)
        elif kind == "bc" and value in self.collateral:
            self.service.draft(user, collateral=value)
        elif kind == "bt" and value in TARGETS:
            draft = self.service.current_draft(user)
            if draft is None or not (draft.loan and draft.collateral and draft.amount):
                return TapAnswer("That choice has expired; send /borrow again.", clear_buttons=True)
            replies = await self._guarded(self._borrow_at(user, draft.loan, Decimal(draft.amount), draft.collateral,
                                                          Decimal(value) / 100, None))
            return TapAnswer(replies=replies, clear_buttons=True)
        else:
            return TapAnswer("That button is not valid any more.", clear_buttons=True)
        return TapAnswer(replies=await self._guarded(self._guide(user)), clear_buttons=True)

    async def _confirm_or_cancel(self, user_id: int, kind: str, token: str) -> TapAnswer:
        user = str(user_id)
        if kind == "x":
            o = self.service.cancel(user, token)
            return TapAnswer(o.message, [], o.status in ("cancelled", "already", "expired"))
        try:
            prices: dict[str, Decimal] | None = await self.prices()
        except PricesUnavailable:
            prices = None
        o = self.service.confirm(user, token, prices, operator=user_id in self.operators)
        if o.status == "failed" and not o.message:
            return TapAnswer("Prices are unavailable", [Reply(PRICES_DOWN)])
        if o.status == "failed":
            return TapAnswer("Not done", [render.refused(o.message)])
        if o.status in ("refused", "already"):
            return TapAnswer(o.message)
        return TapAnswer(o.message or "Done", [render.outcome(o)], clear_buttons=True)

    async def _push_tap(self, user: str, kind: str, pid: int) -> list[Reply]:
        """View the position, or preview the top-up / repayment that brings it back to its initial LTV."""
        view = self.service.position(user, pid, await self.prices())  # refuses another borrower's position
        target = view.thresholds.initial
        asset = view.single_collateral
        if kind == "pv" or view.ltv is None or view.ltv <= target or (kind == "pa" and asset is None):
            hint = f"\nAdd collateral: /add {pid} &lt;amount&gt; · repay: /repay {pid} &lt;amount|all&gt;"
            return [Reply(render.position(view).text + hint)]
        cat = self.service.catalog
        if kind == "pa":
            assert asset is not None
            amount = round_up(view.collateral[asset] * (view.ltv / target - 1), cat.precision(asset))
            return await self._preview(user, "add", {"pid": pid, "amount": amount, "asset": None})
        amount = round_up(view.debt * (1 - target / view.ltv), cat.precision(view.loan_asset))
        return await self._preview(user, "repay", {"pid": pid, "amount": min(amount, view.debt)}, prices=False)

    async def _guarded(self, work: Awaitable[list[Reply]]) -> list[Reply]:
        try:
            return await work
        except Usage as exc:
            return [render.usage(exc.message)]
        except Rejected as exc:
            return [render.refused(exc.message)]
        except PricesUnavailable:
            return [Reply(PRICES_DOWN)]

    # ----------------------------------------------------------------- borrower commands

    async def start(self, user: str, args: list[str]) -> list[Reply]:
        """Welcome."""
        return [Reply("Welcome to loandesk: borrow stablecoins or crypto against your crypto, repay any time.\n\n"
                      + HELP)]

    async def help(self, user: str, args: list[str]) -> list[Reply]:
        """The command list."""
        extra = "\n/faucet — demo funds once a day" if self.demo else ""
        if user.isdigit() and int(user) in self.operators:
            extra += "\n\n" + OPERATOR_HELP
        return [Reply(HELP + extra)]

    async def markets(self, user: str, args: list[str]) -> list[Reply]:
        """Rates and limits."""
        return [render.markets(self.service.catalog, {a: self.service.apr(a) for a in self.loans})]

    async def borrow(self, user: str, args: list[str]) -> list[Reply]:
        """A full /borrow previews at once; a partial one continues with buttons."""
        b = parsing.borrow(args, self.loans, self.collateral)
        product = "vip" if b.vip else "fixed" if b.term_days is not None else "flexible"
        if b.vip and not b.collateral:
            raise Usage("A VIP borrow names its collateral amounts (… with 1.5 BTC vip).", "borrow")
        if b.complete and b.amount is not None and b.loan is not None:
            if b.collateral:
                return await self._preview(user, "borrow", {"loan": b.loan, "amount": b.amount,
                                                            "collateral": b.collateral, "product": product,
                                                            "term_days": b.term_days})
            assert b.collateral_asset is not None and b.target is not None
            return await self._borrow_at(user, b.loan, b.amount, b.collateral_asset, b.target, b.term_days)
        if b.collateral and (b.loan is None or b.amount is None):
            raise Usage("Say how much of which asset to borrow.", "borrow")
        self.service.draft(user, reset="1", loan=b.loan, collateral=b.collateral_asset,
                           amount=None if b.amount is None else str(b.amount))
        return await self._guide(user)

    async def _borrow_at(self, user: str, loan: str, amount: Decimal, coll: str, target: Decimal,
                         term_days: int | None) -> list[Reply]:
        qty = size_collateral(self.service, loan, amount, coll, target, await self.prices())
        return await self._preview(user, "borrow", {"loan": loan, "amount": amount, "collateral": {coll: qty},
                                                    "product": "fixed" if term_days else "flexible",
                                                    "term_days": term_days})

    async def _guide(self, user: str) -> list[Reply]:
        d = self.service.current_draft(user)
        if d is None or d.loan is None:
            return [render.choose("What do you want to borrow?", self.loans, "bl:")]
        if d.collateral is None:
            options = [c for c in self.collateral if c != d.loan]
            return [render.choose(f"Borrow {d.loan} against which collateral?", options, "bc:")]
        if d.amount is None:
            return [Reply(f"How much {render.e(d.loan)} do you want to borrow against {render.e(d.collateral)}? "
                          f"Reply with the amount, e.g. 500.\n(Or in one line: /borrow 500 {render.e(d.loan)} with "
                          f"0.01 {render.e(d.collateral)})")]
        limit = self.service.catalog.collateral[d.collateral].initial_ltv * 100
        options = [t for t in TARGETS if Decimal(t) <= limit]
        rows = [[(f"{t}% LTV", f"bt:{t}") for t in options]]
        return [Reply(f"Borrow {render.e(d.amount)} {render.e(d.loan)}: how much {render.e(d.collateral)} "
                      "collateral? Pick a target LTV (lower is safer).", rows)]

    async def _preview(self, user: str, kind: str, params: dict[str, Any], prices: bool = True) -> list[Reply]:
        quotes = await self.prices() if prices else await self._prices_or_empty()
        return [render.preview(self.service.preview(user, kind, params, quotes))]

    async def _prices_or_empty(self) -> dict[str, Decimal]:
        try:
            return await self.prices()
        except PricesUnavailable:
            return {}

    async def positions(self, user: str, args: list[str]) -> list[Reply]:
        """Every open loan."""
        return [render.positions(self.service.positions(user, await self.prices()))]

    async def position(self, user: str, args: list[str]) -> list[Reply]:
        """One loan."""
        parsing.need(args, 1, "position", "the position number")
        pid = parsing.position_id(args[0], "position")
        return [render.position(self.service.position(user, pid, await self.prices()))]

    async def repay(self, user: str, args: list[str]) -> list[Reply]:
        """/repay <id> <amount|all> [with collateral]."""
        parsing.need(args, 2, "repay", "the position number and the amount")
        pid = parsing.position_id(args[0], "repay")
        amount = None if args[1].lower() == "all" else parsing.amount(args[1], "repay")
        rest = [a.lower() for a in args[2:]]
        if rest not in ([], ["with", "collateral"]):
            raise Usage(f"I did not understand '{' '.join(args[2:])}'.", "repay")
        if rest:
            return await self._preview(user, "repay_collateral", {"pid": pid, "amount": amount})
        return await self._preview(user, "repay", {"pid": pid, "amount": amount}, prices=False)

    async def add(self, user: str, args: list[str]) -> list[Reply]:
        """/add <id> <amount> [ASSET]."""
        return await self._collateral_move(user, args, "add")

    async def withdraw(self, user: str, args: list[str]) -> list[Reply]:
        """/withdraw <id> <amount> [ASSET]."""
        return await self._collateral_move(user, args, "withdraw")

    async def _collateral_move(self, user: str, args: list[str], kind: str) -> list[Reply]:
        parsing.need(args, 2, kind, "the position number and the amount")
        if len(args) > 3:
            raise Usage(f"I did not understand '{' '.join(args[3:])}'.", kind)
        pid = parsing.position_id(args[0], kind)
        amount = parsing.amount(args[1], kind)
        asset = parsing.asset(args[2], self.collateral, kind, "collateral asset") if len(args) == 3 else None
        return await self._preview(user, kind, {"pid": pid, "amount": amount, "asset": asset})

    async def close(self, user: str, args: list[str]) -> list[Reply]:
        """/close <id>: repay everything from Spot."""
        parsing.need(args, 1, "close", "the position number")
        return await self._preview(user, "close", {"pid": parsing.position_id(args[0], "close")}, prices=False)

    async def wallet(self, user: str, args: list[str]) -> list[Reply]:
        """Spot and Earn balances."""
        return [render.wallet(self.service.wallet(user))]

    async def history(self, user: str, args: list[str]) -> list[Reply]:
        """/history [id]."""
        pid = parsing.position_id(args[0], "history") if args else None
        return [render.history(self.service.history(user, pid))]

    async def alert(self, user: str, args: list[str]) -> list[Reply]:
        """/alert ltv <pct>  or  /alert price <id> <pct>."""
        if args and args[0].lower() == "price":
            return await self.alert_price(user, args[1:])
        if not args or args[0].lower() != "ltv":
            raise Usage("Set the LTV warning level or a price alert.", "alert")
        parsing.need(args, 2, "alert", "the level")
        level = self.service.set_alert_ltv(user, parsing.percent(args[1], "alert"))
        return [Reply(f"Done. You will be warned when a position's LTV reaches {render.ltv_text(level)}.")]

    async def notify(self, user: str, args: list[str]) -> list[Reply]:
        """/notify · /notify rates on|off · /notify digest on|off [HH] (UTC hour)."""
        what = [a.lower() for a in args]
        if not what:
            return [render.notify_prefs(self.tools.prefs(user))]
        if len(what) < 2 or what[0] not in ("rates", "digest") or what[1] not in ("on", "off") \
                or len(what) > (3 if what[:2] == ["digest", "on"] else 2):
            raise Usage(f"I did not understand '{' '.join(args)}'.", "notify")
        on = what[1] == "on"
        if what[0] == "rates":
            return [render.notify_prefs(self.tools.set_prefs(user, rate_changes=on), "Done.")]
        values: dict[str, Any] = {"daily_digest": on}
        if len(what) == 3:
            hour = what[2].removesuffix(":00")
            if not hour.isdigit() or not 0 <= int(hour) <= 23:
                raise Usage(f"'{args[2]}' is not an hour of the day (0 to 23, UTC).", "notify")
            values["digest_hour"] = int(hour)
        return [render.notify_prefs(self.tools.set_prefs(user, **values), "Done.")]

    async def faucet(self, user: str, args: list[str]) -> list[Reply]:
        """Demo funds."""
        got = self.service.faucet(user)
        return [Reply("Demo funds credited to your Spot wallet: "
                      + ", ".join(f"{render.amt(v)} {render.e(a)}" for a, v in got.items()))]

    # ----------------------------------------------------------------- operator commands

    async def credit(self, user: str, args: list[str]) -> list[Reply]:
        """/credit <user_id> <amount> <ASSET>."""
        return await self._funds(user, args, "credit")

    async def debit(self, user: str, args: list[str]) -> list[Reply]:
        """/debit <user_id> <amount> <ASSET>."""
        return await self._funds(user, args, "debit")

    async def _funds(self, user: str, args: list[str], kind: str) -> list[Reply]:
        parsing.need(args, 3, kind, "the user id, the amount and the asset")
        if len(args) > 3:
            raise Usage(f"I did not understand '{' '.join(args[3:])}'.", kind)
        if not args[0].isdigit():
            raise Usage(f"'{args[0]}' is not a Telegram user id.", kind)
        amount = parsing.amount(args[1], kind)
        asset = parsing.asset(args[2], self.service.catalog.assets, kind)
        return await self._preview(user, kind, {"user": str(int(args[0])), "amount": amount, "asset": asset},
                                   prices=False)

    async def setrate(self, user: str, args: list[str]) -> list[Reply]:
        """/setrate <ASSET> <apr%>."""
        parsing.need(args, 2, "setrate", "the asset and the APR")
        asset = parsing.asset(args[0], self.loans, "setrate", "loan asset")
        return await self._preview(user, "setrate", {"asset": asset, "apr": parsing.percent(args[1], "setrate")},
                                   prices=False)

    async def book(self, user: str, args: list[str]) -> list[Reply]:
        """The whole book by LTV."""
        return [render.book(self.service.book(await self._prices_or_empty()))]
