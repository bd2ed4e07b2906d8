"""Loans held elsewhere (SPEC §9): ``/track`` by hand, ``/link`` a read-only Binance key, and the syncs.

One unit of work per use case, like ``bot.service.loans``. The desk's ledger and positions are never touched:
tracked positions live in their own table (``storage.tracking``), take their ids from the desk's counter (one
``/position 12`` namespace) and are watched by the tick (``domain.tracking.watch``).

Keys. ``/link`` makes an Ed25519 pair; the private key is encrypted at once with ``LOANDESK_SECRET_KEY``
(Fernet) and the public key is shown. ``/link <API key>`` (or ``/link <API key> <secret>`` for an HMAC key)
asks Binance what the key may do (``apiRestrictions``) and keeps it only when it can read and cannot write.
Keys are decrypted only to sign, inside ``_client``; they never reach a log line, an exception, an event or an
answer (``bot.binance.signing.Secret``). Without ``LOANDESK_SECRET_KEY`` linking is off.

The syncs (``sync_due``, a scheduler job, and the first one at ``/link``) are ``bot.service.tracking_sync``;
the read models ``bot.service.tracking_views``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from cryptography.fernet import Fernet, InvalidToken

from bot.binance import (
    BinanceError,
    KeyRejected,
    Secret,
    WeightBudget,
    generate_ed25519,
    refusal,
)
from bot.service.store import StateStore
from bot.service.tracking_sync import BinanceSync, _Cache
from bot.service.tracking_views import TrackedView, as_position_view, tracked_view
from bot.service.views import PositionView
from domain.analysis.stress import StressResult
from domain.errors import Rejected
from domain.events import Event
from domain.markets import Catalog
from domain.money import ONE
from domain.prices import Prices
from domain.tracking import manual, tools, watch
from domain.tracking.position import Tracked
from storage.tracking import Link, SqlTracked

LINKING_OFF = "Linking Binance accounts is disabled on this desk (the operator has not set LOANDESK_SECRET_KEY)."
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Linked:
    """What ``/link <API key>`` did: the positions found (ids), or why the key was refused."""

    ok: bool
    message: str = ""
    positions: list[Tracked] = field(default_factory=list)
    kind: str = ""


class TrackingService(BinanceSync):
    def __init__(self, catalog: Catalog, store: StateStore, binance_url: str, secret_key: str | None, *,
                 share: float = 0.5, min_interval: float = 60.0, clock: Clock = utcnow,
                 prices: Callable[[], Prices] | None = None) -> None:
        self.catalog = catalog
        self.store = store
        self.binance_url = binance_url
        self._fernet = Fernet(secret_key.encode("ascii")) if secret_key else None
        self.share = share
        self.min_interval = min_interval
        self.clock = clock
        self.prices = prices or (lambda: {})  # the scheduler's newest prices (recalibration at a sync)
        self.budget = WeightBudget(share)  # shared by every linked account: they all call from this IP
        self._cache = _Cache()
        self._last_start = 0.0  # time.monotonic() of the last sync started (spacing)
        self._offset_ms = 0  # Binance's clock minus ours, learnt by a client on -1021 and kept for the next

    @property
    def linking(self) -> bool:
        return self._fernet is not None

    # ----------------------------------------------------------------- manual tracking

    def track(self, req: manual.TrackRequest) -> Tracked:
        now = self.clock()
        with self.store.unit_of_work() as uow:
            t = manual.track(req, uow.book.new_position_id(), now, self.catalog.assets)
            SqlTracked(uow.session).save_tracked(t)
            uow.commit()
            return t

    def edit(self, owner: str, pid: int, what: str, amount: Decimal) -> Tracked:
        """``what``: ``debt`` or ``collateral``."""
        now = self.clock()
        with self.store.unit_of_work() as uow:
            repo = SqlTracked(uow.session)
            t = manual.editable(repo.get_tracked(pid), owner, pid)
            (manual.edit_debt if what == "debt" else manual.edit_collateral)(t, amount, now)
            repo.save_tracked(t)
            uow.commit()
            return t

    def untrack(self, owner: str, pid: int) -> Tracked:
        with self.store.unit_of_work() as uow:
            repo = SqlTracked(uow.session)
            t = manual.editable(repo.get_tracked(pid), owner, pid)
            repo.delete_tracked(pid)
            uow.book.delete_price_alert(pid)
            uow.commit()
            return t

    def tracked(self, owner: str) -> list[Tracked]:
        with self.store.unit_of_work() as uow:
            return SqlTracked(uow.session).tracked_of(owner)

    def views(self, owner: str, prices: Prices) -> list[TrackedView]:
        now = self.clock()
        return [tracked_view(t, prices, now, self.catalog.precision) for t in self.tracked(owner)]

    def view(self, owner: str, pid: int, prices: Prices) -> TrackedView | None:
        t = self.one(owner, pid)
        return tracked_view(t, prices, self.clock(), self.catalog.precision) if t is not None else None

    def position_view(self, owner: str, pid: int, prices: Prices) -> PositionView | None:
        """The owner's tracked position ``pid`` as the desk's tools read a position (None: not one of theirs)."""
        t = self.one(owner, pid)
        if t is None:
            return None
        return as_position_view(t, prices, self.clock(), self.catalog.precision, self.warning_level(owner, t))

    def warning_level(self, owner: str, t: Tracked) -> Decimal:
        with self.store.unit_of_work() as uow:
            own = uow.book.account(owner).warning_ltv
        return watch.warning_level(t, own)

    def stress(self, owner: str, pid: int, moves: dict[str, Decimal], prices: Prices) -> StressResult | None:
        t = self.one(owner, pid)
        if t is None:
            return None
        display = {a: self.catalog.display(a) for a in t.assets}
        return tools.stress_tracked(t, moves, {"USDT": ONE, **prices}, self.clock(), self.warning_level(owner, t),
                                    display)

    def history(self, owner: str, pid: int) -> list[Event] | None:
        """What was pushed about the owner's tracked position ``pid`` (None: not one of theirs)."""
        with self.store.unit_of_work() as uow:
            t = SqlTracked(uow.session).get_tracked(pid)
            return uow.bot.events(owner, pid) if t is not None and t.owner == owner else None

    def one(self, owner: str, pid: int) -> Tracked | None:
        """The owner's tracked position ``pid`` (None: not a tracked position of theirs)."""
        with self.store.unit_of_work() as uow:
            t = SqlTracked(uow.session).get_tracked(pid)
            return t if t is not None and t.owner == owner else None

    # ----------------------------------------------------------------- linking

    def _lock(self, text: str) -> str:
        assert self._fernet is not None
        return self._fernet.encrypt(text.encode()).decode("ascii")

    def _unlock(self, token: str | None) -> Secret:
        assert self._fernet is not None and token is not None
        try:
            return Secret(self._fernet.decrypt(token.encode("ascii")).decode())
        except InvalidToken:
            raise Rejected("key_unreadable", "the stored key cannot be decrypted with this desk's "
                                             "LOANDESK_SECRET_KEY; send /unlink and link again") from None

    def start_link(self, owner: str) -> str:
        """A new Ed25519 pair for ``owner`` (replacing a pending one); returns the public key PEM to show."""
        if self._fernet is None:
            raise Rejected("linking_off", LINKING_OFF)
        now = self.clock()
        with self.store.unit_of_work() as uow:
            repo = SqlTracked(uow.session)
            old = repo.link(owner)
            if old is not None and old.state == "active":
                raise Rejected("linked", "a Binance account is already linked; send /unlink first to link another")
            pair = generate_ed25519()
            repo.save_link(Link(owner, "ed25519", "pending", self._lock(pair.private_key_pem.reveal()), now,
                                public_key=pair.public_key_pem))
            uow.commit()
            return pair.public_key_pem

    async def finish_link(self, owner: str, api_key: str, secret: Secret | None = None,
                          prices: Prices | None = None) -> Linked:
        """``/link <API key>`` (the pending Ed25519 pair) or ``/link <API key> <secret>`` (HMAC): check what the key
        may do, keep it only when read-only, and sync at once."""
        if self._fernet is None:
            raise Rejected("linking_off", LINKING_OFF)
        now = self.clock()
        with self.store.unit_of_work() as uow:
            link = SqlTracked(uow.session).link(owner)
        if link is not None and link.state == "active":
            raise Rejected("linked", "a Binance account is already linked; send /unlink first to link another")
        if secret is None:
            if link is None or link.kind != "ed25519":
                raise Rejected("no_pair", "send /link first: I make a key pair and show you the public key to give "
                                          "Binance")
            kind, stored = "ed25519", link.secret
        else:
            kind, stored = "hmac", self._lock(secret.reveal())
        candidate = Link(owner, kind, "pending", stored, link.created_at if link else now,
                         api_key=self._lock(api_key), public_key=link.public_key if link else None)
        try:
            async with self._client(candidate) as client:
                restrictions = await client.api_restrictions()
        except KeyRejected:
            return Linked(False, "Binance refused this API key. Check that you copied the whole key, that it is the "
                                 "one made with my public key (or its own secret), and that it is not IP-restricted.")
        except BinanceError:
            return Linked(False, "Binance could not be reached to check the key; nothing was kept. Try again in a "
                                 "minute.")
        why = refusal(restrictions)
        if why is not None:
            return Linked(False, why)
        candidate.state, candidate.next_sync_at = "active", now
        with self.store.unit_of_work() as uow:
            SqlTracked(uow.session).save_link(candidate)
            uow.commit()
        found = await self.sync(candidate, first=True, prices=prices)
        return Linked(True, positions=found, kind=kind)

    def unlink(self, owner: str) -> tuple[bool, int]:
        """Delete the key and every synced position of ``owner``: (a key was linked, positions deleted)."""
        with self.store.unit_of_work() as uow:
            repo = SqlTracked(uow.session)
            had = repo.delete_link(owner)
            gone = repo.delete_synced(owner)
            uow.commit()
            return had, len(gone)
