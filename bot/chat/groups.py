"""Monitoring groups: the bot joining and leaving chats, and the group commands.

``/monitor`` (group admins) makes a group a monitoring channel; ``/monitor desk`` (operators) makes it the
desk risk channel that sees every margin call and liquidation of the book; ``/monitor off`` stops both.
``/share [#id|all]`` and ``/unshare`` let a member choose which of their *own* positions the group sees;
``/board`` lists them with LTV and the distance to the margin call. The admin check asks Telegram
(``getChatMember``) through the ``status`` callable the adapter passes in.

Buttons under a push in a group (``tap``): View shows the position's board line, if this group sees the
position (shared here, or the desk risk channel); Add collateral / Repay are for the owner only and never
act in the group: the owner gets the preview in their private chat, anyone else a toast.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime

from bot.chat import parsing
from bot.chat.parsing import Usage
from bot.monitor.prices import PriceSource, PricesUnavailable
from bot.render import board as render_board
from bot.render import common
from bot.render.common import Reply, e
from bot.service.store import StateStore
from bot.service.tracking_views import as_position_view
from bot.service.views import PositionView, position_view
from domain.desk import Desk
from domain.errors import Rejected
from domain.markets import Catalog
from domain.tracking.watch import warning_level
from storage.monitoring import Monitoring
from storage.tracking import SqlTracked

GROUP_COMMANDS = ("monitor", "share", "unshare", "board")
ADMINS = frozenset({"creator", "administrator"})
PRESENT = frozenset({"creator", "administrator", "member", "restricted"})
IN_GROUP = "Use /{} in a monitoring group (add me to a group, then a group admin sends /monitor)."
NOT_MONITORING = "This group is not a monitoring channel yet: a group admin sends /monitor first."
OWNER_ONLY = "Only the owner can do that — in a private chat with me."
NOT_HERE = "That position is not shared with this group."


@dataclass(frozen=True)
class GroupTap:
    """A push button tapped in a group: a toast, messages for the group, or ``owner``: act in private."""

    toast: str = ""
    replies: list[Reply] = field(default_factory=list)
    owner: bool = False


class Groups:
    def __init__(self, catalog: Catalog, store: StateStore, prices: PriceSource, operators: Collection[int],
                 clock: Callable[[], datetime]) -> None:
        self.catalog = catalog
        self.store = store
        self.prices = prices
        self.operators = frozenset(operators)
        self.clock = clock

    def member_changed(self, chat_id: int, chat_type: str, title: str | None, status: str) -> int:
        """The bot was added, removed, blocked or unblocked (a ``my_chat_member`` update); back in the chat,
        its held critical pushes are due again: how many."""
        with self.store.unit_of_work() as uow:
            m = Monitoring(uow.session)
            m.save_chat(chat_id, chat_type, self.clock(), title=title, active=status in PRESENT)
            released = m.release_held(chat_id) if status in PRESENT else 0
            uow.commit()
            return released

    def member_left(self, chat_id: int, user_id: int) -> int:
        """A member left the group or was removed: their shares there end at once (and their pending pushes)."""
        with self.store.unit_of_work() as uow:
            gone = Monitoring(uow.session).member_gone(chat_id, str(user_id))
            uow.commit()
            return gone

    def returned(self, chat_id: int) -> int | None:
        """Someone wrote in (or tapped in) ``chat_id``: if it was inactive it is active again; None when it was
        active already, else how many held pushes are due again."""
        with self.store.unit_of_work() as uow:
            released = Monitoring(uow.session).reactivate(chat_id, self.clock())
            if released is not None:
                uow.commit()
            return released

    async def command(self, name: str, chat_id: int, chat_type: str, title: str | None, user_id: int,
                      args: list[str], status: Callable[[], Awaitable[str]]) -> list[Reply]:
        if chat_type == "private":
            return [Reply(e(IN_GROUP.format(name)))]
        try:
            if name == "monitor":
                return [await self.monitor(chat_id, chat_type, title, user_id, args, status)]
            if not self._monitoring(chat_id):
                return [Reply(e(NOT_MONITORING))]
            if name == "share":
                return [self.share(chat_id, str(user_id), args)]
            if name == "unshare":
                return [self.unshare(chat_id, str(user_id))]
            return [await self.board(chat_id)]
        except Usage as exc:
            return [common.usage(exc.message)]
        except Rejected as exc:
            return [common.refused(exc.message)]

    def _monitoring(self, chat_id: int) -> bool:
        with self.store.unit_of_work() as uow:
            row = Monitoring(uow.session).chat(chat_id)
            return bool(row and row["active"] and (row["monitoring"] or row["desk_channel"]))

    async def monitor(self, chat_id: int, chat_type: str, title: str | None, user_id: int, args: list[str],
                      status: Callable[[], Awaitable[str]]) -> Reply:
        """/monitor, /monitor desk, /monitor off."""
        what = args[0].lower() if args else ""
        if what not in ("", "desk", "off"):
            return Reply("Use /monitor (group admins), /monitor desk (operators) or /monitor off.")
        if what == "desk" and user_id not in self.operators:
            return Reply("Only the desk's operators can make a group the desk risk channel.")
        if what == "off" and user_id not in self.operators:
            with self.store.unit_of_work() as uow:
                row = Monitoring(uow.session).chat(chat_id)
            if row is not None and row["desk_channel"]:
                return Reply("This is the desk risk channel: only the desk's operators can turn it off.")
        if what != "desk" and await status() not in ADMINS:
            return Reply("Only a group admin can do that.")
        values = {"off": {"monitoring": False, "desk_channel": False}, "desk": {"desk_channel": True},
                  "": {"monitoring": True}}[what]
        with self.store.unit_of_work() as uow:
            Monitoring(uow.session).save_chat(chat_id, chat_type, self.clock(), title=title, active=True, **values)
            uow.commit()
        if what == "off":
            return Reply("This group no longer receives pushes.")
        if what == "desk":
            return Reply("This group is now the desk risk channel: every margin call and liquidation of the "
                         "book is pushed here.")
        return Reply("This group is now a monitoring channel. Members: /share shows all your positions here "
                     "(or /share 12 for one), /unshare stops, /board lists what is shared.")

    def share(self, chat_id: int, owner: str, args: list[str]) -> Reply:
        """/share [#id|all]: one of the member's own positions, or all of them (also future ones)."""
        if len(args) > 1:
            raise Usage("Use /share, /share all or /share 12.", "share")
        pid = None if not args or args[0].lower() == "all" else parsing.position_id(args[0], "share")
        with self.store.unit_of_work() as uow:
            held = SqlTracked(uow.session).get_tracked(pid) if pid is not None else None
            if pid is not None and (held is None or held.owner != owner):  # a loan held elsewhere may be shared
                Desk(self.catalog, uow.domain_book).own(owner, pid)  # someone else's: "you have no position"
            fresh = Monitoring(uow.session).share(chat_id, owner, pid, self.clock())
            uow.commit()
        what = "all your positions (new ones too)" if pid is None else f"position #{pid}"
        return Reply(f"{'Shared' if fresh else 'Already shared'}: this group sees {what}, with margin calls "
                     "and liquidations pushed here.")

    def unshare(self, chat_id: int, owner: str) -> Reply:
        with self.store.unit_of_work() as uow:
            gone = Monitoring(uow.session).unshare(chat_id, owner)
            uow.commit()
        return Reply("Stopped: this group no longer sees your positions." if gone else
                     "You were not sharing anything here.")

    async def tap(self, chat_id: int, user_id: int, kind: str, pid: int) -> GroupTap:
        """``pv``/``pa``/``pr`` under a push in this group, authorised here: the group must see the position."""
        with self.store.unit_of_work() as uow:
            m = Monitoring(uow.session)
            row = m.chat(chat_id)
            p = uow.book.get_position(pid)
            held = SqlTracked(uow.session).get_tracked(pid) if p is None else None
            owner = p.owner if p is not None else held.owner if held is not None else ""
            # the desk risk channel sees the positions whose margin calls and liquidations were pushed there;
            # a monitoring group sees what its members shared
            visible = bool((p is not None or held is not None) and row and row["active"] and (
                (row["desk_channel"] and m.pushed_here(chat_id, pid)) or chat_id in m.groups_watching(owner, pid)))
        if not visible:
            return GroupTap(NOT_HERE)
        if kind != "pv":
            return GroupTap(owner=True) if str(user_id) == owner else GroupTap(OWNER_ONLY)
        try:
            prices = await self.prices.prices()
        except PricesUnavailable:
            prices = {}
        with self.store.unit_of_work() as uow:
            p = uow.book.get_position(pid)
            if p is None:
                assert held is not None
                view = as_position_view(held, prices, self.clock(), self.catalog.precision,
                                        warning_level(held, uow.book.account(held.owner).warning_ltv))
                return GroupTap(replies=[render_board.board([view], prices)])
            view = position_view(Desk(self.catalog, uow.domain_book), p, prices, self.clock())
        return GroupTap(replies=[render_board.board([view], prices)])

    async def board(self, chat_id: int) -> Reply:
        try:
            prices = await self.prices.prices()
        except PricesUnavailable:
            prices = {}
        now = self.clock()
        views: list[PositionView] = []
        with self.store.unit_of_work() as uow:
            desk = Desk(self.catalog, uow.domain_book)
            seen: set[int] = set()
            for owner, pid in Monitoring(uow.session).shares_in(chat_id):
                for p in sorted(uow.book.positions_of(owner), key=lambda p: p.id):
                    if p.active and (pid is None or p.id == pid) and p.id not in seen:
                        seen.add(p.id)
                        views.append(position_view(desk, p, prices, now))
                for t in SqlTracked(uow.session).tracked_of(owner):  # loans held elsewhere, at their levels
                    if (pid is None or t.id == pid) and t.id not in seen:
                        seen.add(t.id)
                        views.append(as_position_view(t, prices, now, self.catalog.precision,
                                                      warning_level(t, uow.book.account(owner).warning_ltv)))
        return render_board.board(views, prices)
