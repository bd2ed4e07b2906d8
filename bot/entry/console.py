"""``loandesk console``: the chat offline. Lines from stdin go to the same ``ChatDesk`` the bot uses.

You are user 1, a borrower and the desk's operator, in demo mode (``/faucet`` works), on a local SQLite
file. Answers print as plain text; buttons print numbered (``[1] Confirm``) and typing the number taps it.
Works with piped stdin, so tests (and scripts) can feed it lines.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TextIO

from bot.chat.desk import ChatDesk
from bot.monitor.prices import ExchangePrices, PriceSource, StaticPrices, parse_price_list
from bot.render import common
from bot.render.common import Reply
from bot.service.loans import LoanService
from bot.service.store import StateStore
from bot.settings import Settings
from bot.telegram.handlers import SORRY
from domain.markets import CatalogError, load_catalog

USER = 1


class Console:
    def __init__(self, desk: ChatDesk, out: TextIO) -> None:
        self.desk = desk
        self.out = out
        self.buttons: list[tuple[str, str]] = []

    def show(self, replies: list[Reply]) -> None:
        self.buttons = []
        for reply in replies:
            self.out.write(common.plain(reply.text) + "\n")
            if reply.photo is not None:
                self.out.write(f"[a chart picture, {len(reply.photo) // 1024} KB PNG, is sent in Telegram]\n")
            for row in reply.buttons:
                labels = []
                for label, data in row:
                    self.buttons.append((label, data))
                    labels.append(f"[{len(self.buttons)}] {label}")
                self.out.write("   ".join(labels) + "\n")
        self.out.flush()

    async def line(self, text: str) -> None:
        text = text.strip()
        if not text:
            return
        try:
            if text.isdigit() and self.buttons and 1 <= int(text) <= len(self.buttons):
                _label, data = self.buttons[int(text) - 1]
                result = await self.desk.tap(USER, data)
                if result.toast:
                    self.out.write(f"({result.toast})\n")
                if result.replies or result.clear_buttons:
                    self.show(result.replies)
            elif text.startswith("/"):
                head, *args = text.split()
                self.show(await self.desk.command(USER, True, head[1:], args))
            else:
                self.show(await self.desk.text(USER, True, text))
        except Exception:  # the console must survive like the bot does
            self.out.write(SORRY + "\n")


async def session(desk: ChatDesk, source: PriceSource, stdin: TextIO, out: TextIO) -> None:
    console = Console(desk, out)
    out.write("loandesk console — you are user 1 (borrower and operator, demo mode). Try /faucet, then "
              "/borrow 500 USDT with 0.01 BTC. Type a number to tap a button; Ctrl-D quits.\n")
    out.flush()
    try:
        while True:
            text = await asyncio.to_thread(stdin.readline)
            if not text:
                break
            await console.line(text)
    finally:
        if isinstance(source, ExchangePrices):
            await source.close()


def main(args: argparse.Namespace) -> int:
    try:
        fixed = parse_price_list(args.prices) if args.prices else None
        catalog = load_catalog(args.markets)
    except (ValueError, CatalogError) as exc:
        print(f"loandesk console: {exc}", file=sys.stderr)
        return 2
    settings = Settings()
    source: PriceSource = StaticPrices(fixed or {}) if fixed else ExchangePrices(settings.binance_url,
                                                                                 list(catalog.assets))
    store = StateStore(f"sqlite:///{args.db}")
    desk = ChatDesk(LoanService(catalog, store, demo=True), source, {USER}, demo=True)
    try:
        asyncio.run(session(desk, source, sys.stdin, sys.stdout))
    finally:
        store.close()
    return 0



