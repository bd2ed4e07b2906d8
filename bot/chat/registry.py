"""The one command registry: every chat command with who may use it, where, its one-line help and its usage.

The Telegram adapter's ``CommandHandler`` list, the router (``bot.chat.desk.ChatDesk.command``), ``/help``, the
Telegram command menus (scoped: private chats, groups, each operator's chat), the usage lines of error
answers and the "did you mean" answer are all derived from ``COMMANDS``. Add a command here and it is routed,
listed and explained everywhere; nothing else keeps a list of commands.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

BORROWER, OPERATOR = "borrower", "operator"
PRIVATE, GROUP, ANYWHERE = "private", "group", "anywhere"


@dataclass(frozen=True)
class Command:
    name: str
    help: str  # one line, for /help and the menu
    usage: str = ""  # the syntax, with examples, for /help and error answers
    who: str = BORROWER  # borrower (anyone) | operator
    where: str = PRIVATE  # private | group | anywhere
    section: str = "Loans"
    aliases: tuple[str, ...] = ()
    demo_only: bool = False
    menu: bool = True  # shown in Telegram's command menu
    console_only: bool = False  # only in ``loandesk console`` (offline prices): never in Telegram

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


COMMANDS: tuple[Command, ...] = (
    Command("start", "Welcome and how it works", where=ANYWHERE, section="Start"),
    Command("help", "All commands", "/help", where=ANYWHERE, section="Start"),
    Command("markets", "Rates, fixed terms and LTV limits", "/markets", section="Start"),
    Command("price", "Set or replay offline prices",
            "/price  or  /price BTC 40000  or  /price replay march2020 [speed]  (events: march2020, may2021, "
            "dec2021, aug2024)", section="Console", console_only=True),
    Command("borrow", "Borrow against collateral",
            "/borrow 500 USDT with 0.01 BTC  or  /borrow 500 USDT with BTC at 50%  or  "
            "/borrow 5000 USDT with 0.1 BTC and 2 ETH fixed 30d  or  just /borrow"),
    Command("positions", "Your loans", "/positions"),
    Command("position", "One loan: /position 1", "/position 12"),
    Command("repay", "Repay: /repay 1 100 or all",
            "/repay 12 100  or  /repay 12 all  or  /repay 12 all with collateral"),
    Command("add", "Add collateral: /add 1 0.1", "/add 12 0.1  or  /add 12 0.1 BTC"),
    Command("withdraw", "Withdraw collateral", "/withdraw 12 0.1  or  /withdraw 12 0.1 BTC"),
    Command("close", "Repay all and close", "/close 12"),
    Command("wallet", "Your balances", "/wallet", section="Wallet"),
    Command("earn", "Move funds from Spot to Earn", "/earn 100 USDT", section="Wallet"),
    Command("redeem", "Move funds from Earn to Spot", "/redeem 100 USDT", section="Wallet"),
    Command("history", "What happened", "/history  or  /history 12", section="Wallet"),
    Command("faucet", "Demo funds once a day", "/faucet", section="Wallet", demo_only=True),
    Command("alerts", "Your alert levels and rules", "/alerts", section="Alerts"),
    Command("alert", "Set an alert: /alert ltv 75%", "/alert ltv 75%  or  /alert price 12 10%  or  "
            "/alert price 12 off", section="Alerts"),
    Command("protect", "Auto-protection: /protect 1 80% 65% topup",
            "/protect 12 80% 65% topup  or  /protect 12 80% 65% repay  or  /protect 12 off", section="Alerts"),
    Command("notify", "Opt-in pushes: rate changes, daily digest",
            "/notify  or  /notify rates on|off  or  /notify digest on 8  or  /notify digest off", section="Alerts"),
    Command("stress", "What if: /stress 1 -30%", "/stress 12 -30%  or  /stress 12 BTC -30% ETH -20%",
            section="Tools"),
    Command("estimate", "Cost: /estimate 1000 USDT 30d", "/estimate 1000 USDT 30d", section="Tools"),
    Command("backtest", "Replay a crash: /backtest 1 march2020",
            "/backtest 12 march2020  (events: march2020, may2021, dec2021, aug2024)", section="Tools"),
    Command("chart", "Price and LTV chart: /chart 1", "/chart 12", section="Tools"),
    Command("track", "Watch a loan held elsewhere",
            "/track 15000 USDT against 0.5 BTC [margin 85% liquidation 91%] [apr 6%]  or  /track #5 debt 14000  "
            "or  /track #5 collateral 0.6", section="Elsewhere"),
    Command("untrack", "Stop watching a loan held elsewhere", "/untrack #5", section="Elsewhere"),
    Command("link", "Link a Binance account (read-only)", "/link  then  /link <API key>  (or /link <API key> "
            "<secret> for an HMAC key)", section="Elsewhere"),
    Command("unlink", "Unlink Binance: delete the key and what was synced", "/unlink", section="Elsewhere"),
    Command("terms", "Your VIP term sheet", "/terms", section="VIP"),
    Command("monitor", "Make this group a monitoring channel (admins)",
            "/monitor  or  /monitor off  or  /monitor desk (operators)", where=GROUP, section="Groups"),
    Command("share", "Show your positions in this group", "/share  or  /share all  or  /share 12", where=GROUP,
            section="Groups"),
    Command("unshare", "Stop showing your positions here", "/unshare", where=GROUP, section="Groups"),
    Command("board", "The positions shared in this group", "/board", where=GROUP, section="Groups"),
    Command("credit", "Credit a user's Spot", "/credit 123456789 2 BTC", who=OPERATOR, section="Operators"),
    Command("debit", "Debit a user's Spot", "/debit 123456789 2 BTC", who=OPERATOR, section="Operators"),
    Command("setrate", "Set a flexible APR", "/setrate USDT 6.5%", who=OPERATOR, section="Operators"),
    Command("book", "The whole book by LTV", "/book", who=OPERATOR, section="Operators"),
    Command("resume", "Let a paused liquidation wave through", "/resume", who=OPERATOR, section="Operators"),
    Command("vip", "Show or issue a VIP term sheet",
            "/vip 123456789  or  /vip 123456789 USDT fixed 5% ltv 80/88/93 collateral BTC:1,ETH:0.95 "
            "[partial] [delay 10 min] [min 50000] [max 1000000] [warn 84%]  (without a user id: your own /terms)",
            who=OPERATOR, where=ANYWHERE, section="Operators"),
)

BY_NAME: dict[str, Command] = {name: c for c in COMMANDS for name in c.names}
SECTIONS = ("Start", "Console", "Loans", "Elsewhere", "Wallet", "Alerts", "Tools", "VIP", "Groups", "Operators")


def find(name: str) -> Command | None:
    return BY_NAME.get(name.lower())


def usage(name: str) -> str:
    command = find(name)
    return command.usage if command is not None else ""


def did_you_mean(name: str, operator: bool = False, console: bool = False) -> str | None:
    """The closest known command to a mistyped one (``positon`` → ``position``), if any is close."""
    known = [n for c in COMMANDS if (operator or c.who != OPERATOR) and (console or not c.console_only)
             for n in c.names]
    found = difflib.get_close_matches(name.lower(), known, n=1, cutoff=0.7)
    return found[0] if found else None


def visible(operator: bool, demo: bool, where: Iterable[str] = (PRIVATE, GROUP, ANYWHERE),
            console: bool = False) -> list[Command]:
    places = set(where)
    return [c for c in COMMANDS if (operator or c.who != OPERATOR) and (demo or not c.demo_only)
            and (console or not c.console_only) and c.where in places]


def menu(scope: str, demo: bool = False) -> list[tuple[str, str]]:
    """(command, description) pairs for Telegram's menu in ``scope``: private, group or operator."""
    if scope == GROUP:
        found = [c for c in COMMANDS if c.where in (GROUP, ANYWHERE) and c.who != OPERATOR]
    else:
        found = visible(scope == OPERATOR, demo, (PRIVATE, ANYWHERE))
    return [(c.name, c.help[:256]) for c in found if c.menu]


def help_sections(operator: bool, demo: bool,
                  console: bool = False) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """What /help lists for this person: (section, [(name, help, usage)]) in the registry's order."""
    shown = visible(operator, demo, console=console)
    out = []
    for section in SECTIONS:
        found = [(c.name, c.help, c.usage) for c in shown if c.section == section]
        if found:
            out.append((section, found))
    return out
