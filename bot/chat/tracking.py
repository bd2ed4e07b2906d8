"""``/track``, ``/untrack``, ``/link`` and ``/unlink`` (SPEC §9): parse, one ``TrackingService`` call, render.

Mixed into ``bot.chat.desk.ChatDesk``. ``/link <API key> <secret>`` carries an HMAC secret: the Telegram adapter
deletes that message before it gets here (``bot.telegram.handlers``), and nothing here repeats, logs or keeps
the secret outside ``Secret`` and the encrypted row.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from decimal import Decimal

from bot.binance import Secret
from bot.chat import parsing
from bot.chat.parsing import Usage
from bot.render import tracking as render
from bot.render.common import Reply
from bot.service.tracking import TrackingService
from domain.errors import Rejected
from domain.tracking.manual import DEFAULT_LEVELS, TrackRequest
from domain.tracking.position import Levels

API_KEY = re.compile(r"^[A-Za-z0-9]{16,128}$", re.ASCII)
EDITS = ("debt", "collateral")


class TrackingCommands:
    tracking: TrackingService
    prices: Callable[[], Awaitable[dict[str, Decimal]]]
    _prices_or_empty: Callable[[], Awaitable[dict[str, Decimal]]]

    async def cmd_track(self, user: str, args: list[str]) -> list[Reply]:
        """/track 15000 USDT against 0.5 BTC [margin 85% liquidation 91%] [apr 6%] · /track #5 debt 14000."""
        parsing.need(args, ["the debt (or #id)", "the loan asset"], "track")
        if args[0].startswith("#") or (args[1].lower() in EDITS and len(args) == 3):
            parsing.extra(args, 3, "track")
            parsing.need(args, ["#id", "debt or collateral", "the amount"], "track")
            pid = parsing.position_id(args[0], "track")
            what = args[1].lower()
            if what not in EDITS:
                raise Usage(f"I can change the debt or the collateral, not '{parsing.quoted(args[1])}'.", "track")
            t = self.tracking.edit(user, pid, what, parsing.amount(args[2], "track"))
            view = self.tracking.view(user, t.id, await self._prices_or_empty())
            assert view is not None
            return [render.tracked(view, "Updated")]
        req = self._track_request(user, args)
        t = self.tracking.track(req)
        view = self.tracking.view(user, t.id, await self._prices_or_empty())
        assert view is not None
        return [render.tracked(view)]

    def _track_request(self, user: str, args: list[str]) -> TrackRequest:
        parsing.need(args, ["the debt", "the loan asset", "against", "the collateral amount", "the collateral asset"],
                     "track")
        known = list(self.tracking.catalog.assets)
        debt = parsing.amount(args[0], "track")
        loan = parsing.asset(args[1], known, "track", "loan asset")
        if args[2].lower() != "against":
            raise Usage(f"Write 'against' between the loan and the collateral, not '{parsing.quoted(args[2])}'.",
                        "track")
        amount = parsing.amount(args[3], "track")
        coll = parsing.asset(args[4], known, "track", "collateral asset")
        rest = [a.lower() for a in args[5:]]
        options: dict[str, Decimal] = {}
        while rest:
            if len(rest) < 2 or rest[0] not in ("margin", "liquidation", "apr") or rest[0] in options:
                raise Usage(f"I did not understand '{parsing.quoted(' '.join(args[5:]))}'.", "track")
            options[rest[0]] = parsing.percent(rest[1], "track")
            rest = rest[2:]
        if ("margin" in options) != ("liquidation" in options):
            raise Usage("Give both levels: margin 85% liquidation 91%.", "track")
        levels = (Levels(options["margin"], options["liquidation"]) if "margin" in options else DEFAULT_LEVELS)
        return TrackRequest(user, loan, debt, coll, amount, levels, options.get("apr", Decimal(0)))

    async def cmd_untrack(self, user: str, args: list[str]) -> list[Reply]:
        """/untrack #5."""
        parsing.need(args, ["#id"], "untrack")
        parsing.extra(args, 1, "untrack")
        return [render.untracked(self.tracking.untrack(user, parsing.position_id(args[0], "untrack")))]

    async def cmd_link(self, user: str, args: list[str]) -> list[Reply]:
        """/link · /link <API key> · /link <API key> <secret> (private chat only)."""
        if len(args) > 2:
            raise Usage("Send /link alone, then /link <API key>.", "link")
        if not args:
            return [render.link_steps(self.tracking.start_link(user))]
        if not API_KEY.match(args[0]):
            raise Usage("That does not look like a Binance API key (letters and digits, as Binance shows it).",
                        "link")
        secret = Secret(args[1]) if len(args) == 2 else None
        if secret is not None and not API_KEY.match(secret.reveal()):
            return [render.refused("That does not look like a Binance API secret.", hmac=True)]
        try:
            done = await self.tracking.finish_link(user, args[0], secret, await self._prices_or_empty())
        except Rejected as exc:
            return [render.refused(exc.message, hmac=secret is not None)]
        if not done.ok:
            return [render.refused(done.message, hmac=secret is not None)]
        prices = await self._prices_or_empty()
        views = [v for v in self.tracking.views(user, prices) if v.where == "Binance"]
        return [render.linked(views, done.kind)]

    async def cmd_unlink(self, user: str, args: list[str]) -> list[Reply]:
        """/unlink: delete the key and everything synced."""
        parsing.extra(args, 0, "unlink")
        return [render.unlinked(*self.tracking.unlink(user))]

