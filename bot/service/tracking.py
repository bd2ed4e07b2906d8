"""Loans held elsewhere (SPEC §9): ``/track`` by hand, ``/link`` a read-only Binance key, and the syncs.

One unit of work per use case, like ``bot.service.loans``. The desk's ledger and positions are never touched:
tracked positions live in their own table (``storage.tracking``), take their ids from the desk's counter (one
``/position 12`` namespace) and are watched by the tick (``domain.tracking.watch``).

Keys. ``/link`` makes an Ed25519 pair; the private key is encrypted at once with ``LOANDESK_SECRET_KEY``
(Fernet) and the public key is shown. ``/link <API key>`` (or ``/link <API key> <secret>`` for an HMAC key)
asks Binance what the key may do (``apiRestrictions``) and keeps it only when it can read and cannot write.
Keys are decrypted only to sign, inside ``_client``; they never reach a log line, an exception, an event or an
answer (``bot.binance.signing.Secret``). Without ``LOANDESK_SECRET_KEY`` linking is off.

Syncs (``sync_due``, a scheduler job). Each linked account is synced every ``interval`` seconds, where
``interval`` is the larger of ``LOANDESK_BINANCE_SYNC_SECONDS`` and what the weight budget allows for the
number of linked accounts (``bot.binance.budget.plan_syncs``: every SAPI endpoint within
``LOANDESK_BINANCE_SYNC_SHARE`` of its 12,000 a minute), and consecutive syncs start at least ``spacing``
apart, so no endpoint ever sees a burst. All clients share one ``WeightBudget`` at that share: a call that
would pass it is refused before it is sent. Thresholds (collateral data) and rates (loanable data) are cached
for ``CACHE`` and shared by every account; the histories are read only when a position vanished.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from cryptography.fernet import Fernet, InvalidToken

from bot.binance import (
    Banned,
    BinanceAccount,
    BinanceError,
    Ed25519Signer,
    HmacSigner,
    KeyRejected,
    RateLimited,
    Secret,
    WeightBudget,
    generate_ed25519,
    plan_syncs,
    refusal,
)
from bot.binance.endpoints import MAX_PAGE_SIZE
from bot.binance.models import CollateralThresholds, FlexibleLoan, VipLoan
from bot.service.store import StateStore
from bot.service.views import PositionView
from domain.analysis.stress import StressResult
from domain.errors import Rejected
from domain.events import Event
from domain.markets import Catalog
from domain.money import ONE, ZERO, round_down, round_up
from domain.prices import Prices
from domain.rates import HOURS_PER_YEAR
from domain.tracking import manual, tools, watch
from domain.tracking.position import Kind, Levels, Tracked, debt_at, ltv, price_at_level
from domain.tracking.sync import (
    LiquidationRecord,
    Reconciled,
    RepayRecord,
    Snapshot,
    explain,
    flexible_ref,
    implied_collateral,
    reconcile,
    vip_ref,
)
from storage.tracking import Link, SqlTracked

log = logging.getLogger("loandesk.tracking")
CACHE = timedelta(hours=1)  # thresholds and rates change rarely; both are refreshed at most this often
RETRY = timedelta(minutes=1)  # after a failed sync (Binance unreachable, rate limited)
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


@dataclass
class _Cache:
    at: datetime | None = None
    thresholds: dict[str, CollateralThresholds] = field(default_factory=dict)
    rates: dict[str, Decimal] = field(default_factory=dict)  # coin → APR


class TrackingService:
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
        self.budget = WeightBudget(share)
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

    def _client(self, link: Link) -> _Session:
        secret = self._unlock(link.secret)
        signer = Ed25519Signer(secret) if link.kind == "ed25519" else HmacSigner(secret)
        client = BinanceAccount(self.binance_url, self._unlock(link.api_key).reveal(), signer, budget=self.budget,
                                timeout=10.0, retries=1)
        client.clock_offset_ms = self._offset_ms
        return _Session(self, client)

    # ----------------------------------------------------------------- syncing

    def interval(self, accounts: int) -> float:
        """Seconds between two syncs of one account with ``accounts`` linked, within the budget's share."""
        return max(self.min_interval, plan_syncs(max(accounts, 1), share=self.share).interval_seconds)

    def spacing(self) -> float:
        return plan_syncs(1, share=self.share).spacing_seconds

    async def sync_due(self) -> int:
        """One scheduler pass: sync the account waiting longest, if its time has come and the spacing allows."""
        if self._fernet is None or time.monotonic() - self._last_start < self.spacing():
            return 0
        now = self.clock()
        with self.store.unit_of_work() as uow:
            due = SqlTracked(uow.session).due_links(now, limit=1)
        if not due:
            return 0
        self._last_start = time.monotonic()
        await self.sync(due[0])
        return 1

    async def sync(self, link: Link, first: bool = False, prices: Prices | None = None) -> list[Tracked]:
        """Read the account's ongoing orders and apply them; on a refused key tell the borrower once and stop."""
        now = self.clock()
        quotes: Prices = {"USDT": ONE, **(self.prices() if prices is None else prices)}
        try:
            async with self._client(link) as client:
                await self._refresh_cache(client, now)
                flexible = await client.all_flexible_ongoing_orders(MAX_PAGE_SIZE)
                vip = await client.all_vip_ongoing_orders(MAX_PAGE_SIZE)
                loans: list[FlexibleLoan | VipLoan] = [*flexible, *vip]
                fresh = [s for s in (self._snapshot(x, quotes) for x in loans) if s is not None]
                result = self._apply(link.owner, fresh, quotes, now, first)
                if result.vanished:
                    events = await self._explain(client, result.vanished, now)
                    self._vanished(link.owner, result.vanished, events)
        except KeyRejected:
            self._revoked(link.owner, now)
            return []
        except (BinanceError, Rejected) as exc:  # messages carry paths and Binance's codes, never a key
            wait = exc.retry_after if isinstance(exc, (RateLimited, Banned)) else RETRY.total_seconds()
            log.warning("sync of a linked account failed: %s", exc)
            self._later(link.owner, now + timedelta(seconds=max(wait, RETRY.total_seconds())), failed=True)
            return []
        except Exception as exc:  # a bug must not make the job retry this account every second
            log.error("sync of a linked account failed unexpectedly (%s); retried in %s", type(exc).__name__, RETRY)
            self._later(link.owner, now + RETRY, failed=True)
            raise
        return result.new

    async def _refresh_cache(self, client: BinanceAccount, now: datetime) -> None:
        if self._cache.at is not None and now - self._cache.at < CACHE:
            return
        thresholds = {t.coin: t for t in await client.flexible_collateral_data()}
        rates = {a.coin: a.flexible_interest_rate * HOURS_PER_YEAR for a in await client.flexible_loanable_data()}
        self._cache = _Cache(now, thresholds, rates)

    def _snapshot(self, loan: FlexibleLoan | VipLoan, prices: Prices) -> Snapshot | None:
        if isinstance(loan, FlexibleLoan):
            th = self._cache.thresholds.get(loan.collateral_coin)
            if th is None:
                log.warning("no thresholds for collateral %s; the loan is skipped", loan.collateral_coin)
                return None
            return Snapshot(flexible_ref(loan.loan_coin, loan.collateral_coin), Kind.FLEXIBLE, loan.loan_coin,
                            loan.total_debt, {loan.collateral_coin: loan.collateral_amount}, loan.current_ltv,
                            Levels(th.margin_call_ltv, th.liquidation_ltv, th.initial_ltv),
                            self._cache.rates.get(loan.loan_coin, ZERO))
        try:
            collateral = implied_collateral(loan.collateral_coins, loan.collateral_value_after_haircut,
                                            prices)
        except Rejected:
            return None
        vip = self.catalog.thresholds("vip")
        apr = loan.loan_rate if loan.loan_rate is not None else self._cache.rates.get(loan.loan_coin, ZERO)
        return Snapshot(vip_ref(loan.order_id), Kind.VIP, loan.loan_coin, loan.total_debt, collateral,
                        loan.current_ltv, Levels(vip.margin_call, vip.liquidation, vip.initial), apr,
                        loan.expiration_time)

    def _apply(self, owner: str, fresh: list[Snapshot], prices: Prices, now: datetime, first: bool) -> Reconciled:
        with self.store.unit_of_work() as uow:
            repo = SqlTracked(uow.session)
            result = reconcile(owner, repo.tracked_of(owner), fresh, prices, now, uow.book.new_position_id,
                               self.catalog.precision, first=first)
            for t in [*result.new, *result.updated]:
                repo.save_tracked(t)
            for e in result.events:
                uow.book.emit(e)
            link = repo.link(owner)
            if link is not None:
                link.synced_at, link.failures = now, 0
                link.next_sync_at = now + timedelta(seconds=self.interval(repo.active_links()))
                repo.save_link(link)
            uow.commit()
            return result

    async def _explain(self, client: BinanceAccount, gone: list[Tracked], now: datetime) -> list[Event]:
        liquidations: list[LiquidationRecord] = []
        repayments: list[RepayRecord] = []
        if any(t.kind is Kind.FLEXIBLE for t in gone):
            for r in (await client.flexible_liquidation_history(limit=100)).rows:
                liquidations.append(LiquidationRecord(r.loan_coin, r.collateral_coin, r.liquidation_debt,
                                                      r.liquidation_collateral_amount, r.return_collateral_amount,
                                                      r.liquidation_fee, r.liquidation_starting_price,
                                                      r.liquidation_starting_time))
            repayments += [RepayRecord(r.loan_coin, r.repay_amount, r.repay_time, r.collateral_coin,
                                       r.collateral_return)
                           for r in (await client.flexible_repay_history(limit=100)).rows if r.status == "REPAID"]
        if any(t.kind is Kind.VIP for t in gone):
            repayments += [RepayRecord(r.loan_coin, r.repay_amount, r.repay_time, order_id=r.order_id)
                           for r in (await client.vip_repay_history(limit=100)).rows]
        return [explain(t, liquidations, repayments, now) for t in gone]

    def _vanished(self, owner: str, gone: list[Tracked], events: list[Event]) -> None:
        with self.store.unit_of_work() as uow:
            repo = SqlTracked(uow.session)
            for t in gone:
                repo.delete_tracked(t.id)
                uow.book.delete_price_alert(t.id)
            for e in events:
                uow.book.emit(e)
            uow.commit()

    def _revoked(self, owner: str, now: datetime) -> None:
        with self.store.unit_of_work() as uow:
            repo = SqlTracked(uow.session)
            link = repo.link(owner)
            if link is not None and link.state != "revoked":
                told = link.state == "active"
                link.state, link.next_sync_at = "revoked", None
                repo.save_link(link)
                if told:
                    uow.book.emit(Event(now, "link_revoked", owner, None, {"lender": "Binance"}))
                uow.commit()

    def _later(self, owner: str, at: datetime, failed: bool) -> None:
        with self.store.unit_of_work() as uow:
            repo = SqlTracked(uow.session)
            link = repo.link(owner)
            if link is not None and link.state == "active":
                link.next_sync_at = at
                link.failures += 1 if failed else 0
                repo.save_link(link)
                uow.commit()


class _Session:
    """``async with``: a client for one linked account that hands its learnt clock offset back when done."""

    def __init__(self, service: TrackingService, client: BinanceAccount) -> None:
        self.service, self.client = service, client

    async def __aenter__(self) -> BinanceAccount:
        return self.client

    async def __aexit__(self, *exc: object) -> None:
        self.service._offset_ms = self.client.clock_offset_ms
        await self.client.aclose()


# ----------------------------------------------------------------- read model


@dataclass(frozen=True)
class TrackedView:
    """A tracked position as the chat shows it (debt rounded up as the lender would settle it)."""

    id: int
    where: str  # "Binance" | "manual"
    kind: str
    loan_asset: str
    debt: Decimal
    collateral: dict[str, Decimal]
    ltv: Decimal | None
    levels: Levels
    apr: Decimal
    hourly_interest: Decimal
    margin_call_price: Decimal | None
    liquidation_price: Decimal | None
    synced_at: datetime | None
    sync_age: timedelta | None
    expires_at: datetime | None

    @property
    def single_collateral(self) -> str | None:
        return next(iter(self.collateral)) if len(self.collateral) == 1 else None


def tracked_view(t: Tracked, prices: Prices, now: datetime, precision: Callable[[str], int]) -> TrackedView:
    debt = debt_at(t, now)
    quotes: Prices = {"USDT": ONE, **prices}
    try:
        current: Decimal | None = ltv(t, quotes, now)
        mc = price_at_level(t, quotes, now, t.levels.margin_call)
        liq = price_at_level(t, quotes, now, t.levels.liquidation)
    except Rejected:
        current = mc = liq = None
    return TrackedView(t.id, t.where, t.kind.value, t.loan_asset, round_up(debt, precision(t.loan_asset)),
                       {a: round_down(v, precision(a)) for a, v in t.collateral.items()}, current, t.levels, t.apr,
                       debt * t.apr / HOURS_PER_YEAR, mc, liq, t.synced_at,
                       now - t.synced_at if t.synced_at else None, t.expires_at)


def as_position_view(t: Tracked, prices: Prices, now: datetime, precision: Callable[[str], int],
                     warning: Decimal) -> PositionView:
    """A tracked position as the desk's tools and the group board read a position, at the lender's levels."""
    v = tracked_view(t, prices, now, precision)
    daily = debt_at(t, now) * ((ONE + t.apr / HOURS_PER_YEAR) ** 24 - ONE)
    return PositionView(t.id, t.owner, f"{t.kind.value} ({t.where})", "open", t.loan_asset, v.debt, v.collateral,
                        v.ltv, tools.thresholds(t, warning), v.margin_call_price, v.liquidation_price, t.apr,
                        v.hourly_interest, daily, t.expires_at)
