"""Binance syncs of linked accounts (SPEC §9), the half of ``TrackingService`` that talks to Binance.

Each linked account is synced every ``interval`` seconds, the larger of ``LOANDESK_BINANCE_SYNC_SECONDS`` and
what the weight budget allows for the number of linked accounts (``bot.binance.budget.plan_syncs``: every SAPI
endpoint within ``LOANDESK_BINANCE_SYNC_SHARE`` of its 12,000 a minute), and consecutive syncs start at least
``spacing`` apart, so no endpoint ever sees a burst. All clients share one ``WeightBudget`` at that share: a call
that would pass it is refused before it is sent. Thresholds (collateral data) and rates (loanable data) are
cached for ``CACHE`` and shared by every account; the histories are read only when a position vanished.

A sync reads Flexible Loan v2 and VIP ongoing orders and hands them to ``domain.tracking.sync.reconcile`` (new,
updated and recalibrated, vanished); a vanished loan is explained from the liquidation and repayment histories;
-2015 (a revoked or restricted key) is told to the borrower once and the account is not synced again; other
failures (429, a 418 ban, Binance unreachable) postpone that account's next sync. Keys are decrypted only in
``_client``, to sign.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

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
    plan_syncs,
)
from bot.binance.endpoints import MAX_PAGE_SIZE
from bot.binance.models import CollateralThresholds, FlexibleLoan, VipLoan
from bot.service.store import StateStore
from domain.errors import Rejected
from domain.events import Event
from domain.markets import Catalog
from domain.money import ONE, ZERO
from domain.prices import Prices
from domain.rates import HOURS_PER_YEAR
from domain.tracking.position import Kind, Levels, Tracked
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

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

log = logging.getLogger("loandesk.tracking")
CACHE = timedelta(hours=1)  # thresholds and rates change rarely; both are refreshed at most this often
RETRY = timedelta(minutes=1)  # after a failed sync (Binance unreachable, rate limited)

@dataclass
class _Cache:
    at: datetime | None = None
    thresholds: dict[str, CollateralThresholds] = field(default_factory=dict)
    rates: dict[str, Decimal] = field(default_factory=dict)  # coin → APR


class BinanceSync:
    """Mixed into ``bot.service.tracking.TrackingService``, which sets the attributes below."""

    catalog: Catalog
    store: StateStore
    binance_url: str
    share: float
    min_interval: float
    clock: Callable[[], datetime]
    prices: Callable[[], Prices]
    budget: WeightBudget
    _fernet: Fernet | None
    _cache: _Cache
    _last_start: float
    _offset_ms: int
    _unlock: Callable[[str | None], Secret]

    def _client(self, link: Link) -> _Session:
        secret = self._unlock(link.secret)
        signer = Ed25519Signer(secret) if link.kind == "ed25519" else HmacSigner(secret)
        client = BinanceAccount(self.binance_url, self._unlock(link.api_key).reveal(), signer, budget=self.budget,
                                timeout=10.0, retries=1)
        client.clock_offset_ms = self._offset_ms
        return _Session(self, client)

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

    def __init__(self, service: BinanceSync, client: BinanceAccount) -> None:
        self.service, self.client = service, client

    async def __aenter__(self) -> BinanceAccount:
        return self.client

    async def __aexit__(self, *exc: object) -> None:
        self.service._offset_ms = self.client.clock_offset_ms
        await self.client.aclose()
