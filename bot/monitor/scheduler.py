"""The scheduler: APScheduler's ``AsyncIOScheduler`` in the bot's own event loop, with stable job ids.

Leadership (``storage.leases``): every instance runs this scheduler, but only the holder of the database's lease
acts — a session advisory lock on PostgreSQL, the ``scheduler_lock`` row (host:pid holder) on SQLite. The ``lead``
job tries or renews the lease every second; when it is won (or lost) ``on_change`` callbacks run (``loandesk run``
starts or stops long polling there) and the poll and the hourly catch-up run at once. Every tick, operator notice
and digest checks the lease again inside its own transaction before committing (``LostLease``): a process that
lost it rolls back.

Jobs (each acts only while this process leads):

- ``poll`` every ``LOANDESK_PRICE_POLL_SECONDS``: fetch prices through the guard (``bot.monitor.feed``) — the
  exchange's REST ticker only while its stream is down, the second source always; on every successful poll run
  one *tick*, then wake the notifier (never waiting for it: a backlog of pushes must not delay the next poll).
  Operators hear once when the feed goes stale (no fresh price for 60 s) and once when it recovers, and once
  per asset whose price cannot be used (missing, zero, negative or implausible) and once when it is back — also
  across a restart or a change of leader: each state is a flag row in ``scheduler_lock`` written in the
  notice's own transaction.
- the exchange's stream (``LOANDESK_BINANCE_STREAM_URL``, ``bot.monitor.stream``; not a job but a task): every
  new price runs a tick at once. Ticks for new prices are coalesced (``feed.Coalescer``): a price arriving while
  a tick runs is taken by one more tick when it ends, so a burst of messages costs at most two ticks. When the
  stream drops the poll runs at once and REST polling carries on until the stream is back.
- ``hourly`` at HH:00:05 (and once at start): the same tick on the prices already known — interest, Earn,
  the rate model, fixed-loan expiries, late fees and reminders happen even when no new price arrives.
- ``digest`` at HH:02: opt-in daily digests (``account_prefs``) once per UTC day at the borrower's hour.
- ``deliver`` every second: the notifier's retries and paced sends.

A tick is the domain's one tick (``domain.watch.tick``, the function ``loandesk simulate`` runs too) in units of
work of about ``LOANDESK_TICK_PART_SECONDS`` each: accrual caught up from the stored markers (never from counting
job runs — APScheduler skips missed runs), fixed-loan expiries, auto-protection and price alerts (each in a
savepoint, so a failing rule never stops the sweep), the risk sweep with the guard's confirmed prices — its
positions acted on part by part, each part committed with its events in the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Collection
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from apscheduler.events import EVENT_JOB_ERROR, JobExecutionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.monitor.feed import Coalescer, PriceFeed
from bot.monitor.notifier import Notifier, Send
from bot.monitor.prices import QUOTE, ExchangePrices, PriceSource
from bot.monitor.stream import PriceStream, stream_base_url
from bot.service.store import Busy, StateStore, UnitOfWork
from bot.service.views import position_view
from bot.settings import Settings
from domain.desk import Desk
from domain.events import Event
from domain.markets import Catalog
from domain.money import fmt
from domain.prices import GuardRules, Prices
from domain.watch.tick import Step, Tick
from storage.leases import Lease, LostLease, RowLease, lease_for
from storage.monitoring import Monitoring
from storage.tracking import SqlTracked

log = logging.getLogger("loandesk.scheduler")
STALE = "flag:prices_stale"  # raised with the "stale" notice, cleared with the "recovered" one
TROUBLE = "flag:price:"  # + asset: raised while that asset's price cannot be used
WARN_MAX_AGE = timedelta(minutes=5)  # warnings and margin calls use prices at most this old
STOP_PUSH_SECONDS = 2.0  # at shutdown, how long a push pass may go on (its message in flight)
LEAD_SECONDS = 1.0  # how often the lease is renewed (leader) or tried (standby)
Listener = Callable[[bool], Awaitable[None]]
Observer = Callable[[float, list[Event]], None]
Reporter = Callable[[str, BaseException], str]


class Monitor:
    def __init__(self, catalog: Catalog, store: StateStore, feed: PriceFeed, notifier: Notifier,
                 clock: Callable[[], datetime], poll_seconds: float, lease: Lease | None = None, *,
                 part_seconds: float) -> None:
        self.catalog = catalog
        self.store = store
        self.feed = feed
        self.notifier = notifier
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.part_seconds = part_seconds  # LOANDESK_TICK_PART_SECONDS: a tick's part ends after about this long
        self.lease = lease or lease_for(store.engine)
        self.holder = self.lease.holder
        self.scheduler: AsyncIOScheduler | None = None
        self.leading = False  # as of the last ``lead()``; the transaction-time check is ``fence``
        self.led_since: float | None = None  # time.monotonic() when this process last became the leader
        self.on_change: list[Listener] = []  # awaited with True when this process starts leading, False when not
        self.on_tick: list[Observer] = []  # (seconds, events) after each committed tick: metrics
        self.report: Reporter | None = None  # a failed job → an incident id (bot.ops.incidents)
        self._ticking = threading.Lock()
        self._seeded = False
        self._leading_lock = asyncio.Lock()
        self._troubles: dict[str, str] | None = None  # per-asset price troubles already told (None: not read)
        self._delivering: asyncio.Task[int] | None = None
        self._wake_again = False  # a tick committed events while a notifier pass was running
        self.sweeps = Coalescer(self._sweep, on_error=self._sweep_failed)  # one tick for every new price
        self._streaming: asyncio.Task[None] | None = None
        self._losing: asyncio.Task[None] | None = None
        # more jobs (id, work, seconds) run only while this process leads, e.g. the Binance syncs (SPEC §9);
        # after each run the notifier wakes, so what the work put in the outbox goes out at once
        self.extra: list[tuple[str, Callable[[], Awaitable[object]], float]] = []
        self._extra_tasks: list[asyncio.Task[None]] = []

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Add the jobs (stable ids, generous grace, coalescing) and start, in the running event loop."""
        s = AsyncIOScheduler(timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1,
                                                         "misfire_grace_time": 3600})
        now = datetime.now(UTC)
        s.add_job(self.lead, IntervalTrigger(seconds=LEAD_SECONDS), id="lead", next_run_time=now,
                  replace_existing=True)
        s.add_job(self.poll, IntervalTrigger(seconds=self.poll_seconds), id="poll", next_run_time=now,
                  replace_existing=True)
        s.add_job(self.deliver, IntervalTrigger(seconds=min(1.0, self.poll_seconds)), id="deliver",
                  replace_existing=True)
        s.add_job(self.hourly, CronTrigger(minute=0, second=5, timezone=UTC), id="hourly",
                  next_run_time=now + timedelta(seconds=1), replace_existing=True)
        s.add_job(self.digest, CronTrigger(minute=2, timezone=UTC), id="digest", replace_existing=True)
        for name, work, seconds in self.extra:
            s.add_job(self._leading_only(work), IntervalTrigger(seconds=seconds), id=name, replace_existing=True)
        s.add_listener(self._job_failed, EVENT_JOB_ERROR)
        s.start()
        self.scheduler = s
        if self.feed.stream is not None and self._streaming is None:
            self._streaming = asyncio.create_task(self.feed.stream.run(), name="price-stream")

    async def stop(self, grace: float = 30.0) -> None:
        """Stop the jobs, let a tick in progress finish its transaction and a push pass its message (within
        ``grace`` seconds), then give up the lease so that a standby takes over at its next try."""
        deadline = time.monotonic() + grace
        if self.scheduler is not None:
            self.scheduler.pause()
            self.scheduler.shutdown(wait=False)
            self.scheduler = None
        if self.feed.stream is not None and self._streaming is not None:
            await self.feed.stream.close()
            self._streaming = None
        await self.sweeps.close()
        if self._delivering is not None and not self._delivering.done():
            # a pass cancelled between Telegram's answer and its commit sends that message twice: give the message in
            # flight a moment (not the whole backlog, which the next leader sends), then cancel
            try:
                await asyncio.wait_for(asyncio.shield(self._delivering), min(STOP_PUSH_SECONDS,
                                                                             max(0.1, deadline - time.monotonic())))
            except Exception:  # TimeoutError, or the pass failed (reported by _delivered)
                self._delivering.cancel()
        for task in self._extra_tasks:  # a Binance sync in flight: its next run is the next leader's
            task.cancel()
        if self._extra_tasks:
            await asyncio.wait(self._extra_tasks, timeout=max(0.1, min(STOP_PUSH_SECONDS, deadline - time.monotonic())))
        if await asyncio.to_thread(self._ticking.acquire, True, max(0.1, deadline - time.monotonic())):
            self._ticking.release()
        await asyncio.to_thread(self.lease.release)
        self.leading = False
        await self.feed_close()

    def _leading_only(self, work: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[None]]:
        running: list[asyncio.Task[None]] = []

        async def run() -> None:
            await work()
            self.wake_notifier()

        def done(task: asyncio.Task[None]) -> None:
            if not task.cancelled() and task.exception() is not None:
                self._failed("extra job", task.exception())  # type: ignore[arg-type]

        async def job() -> None:
            # a run that outlasts the interval (a slow Binance) is left to finish; the next one starts after it
            if self.leading and not (running and not running[-1].done()):
                running[:] = [asyncio.create_task(run())]
                running[0].add_done_callback(done)
                self._extra_tasks.append(running[0])
                self._extra_tasks[:] = [t for t in self._extra_tasks if not t.done()]
        return job

    def leader(self) -> bool:
        """Take or renew the lease now (True while this process holds it). ``lead()`` also acts on a change."""
        if not isinstance(self.lease, RowLease):
            return self.lease.acquire()  # PostgreSQL's advisory lock has a connection of its own
        try:
            with self.store.gate.turn():  # SQLite's lease row is written by the process's writers, in their turn
                return self.lease.acquire()
        except Busy:
            return self.lease.standing()

    async def lead(self) -> bool:
        """Renew or try the lease; on a change tell the ``on_change`` listeners and, when won, poll at once."""
        async with self._leading_lock:
            held = await asyncio.to_thread(self.leader)
            if held == self.leading:
                return held
            if held:
                await asyncio.to_thread(self._took_over)
                self.led_since = time.monotonic()
                log.warning("this instance (%s) leads now: scheduler, sweeps and pushes", self.holder)
            else:
                log.warning("this instance (%s) no longer leads", self.holder)
            self.leading = held
            for listener in self.on_change:
                try:
                    await listener(held)
                except Exception as exc:
                    self._failed("leadership change", exc)
            if held and self.scheduler is not None:
                now = datetime.now(UTC)
                for job in ("poll", "hourly"):
                    self.scheduler.modify_job(job, next_run_time=now)
            return held

    def _took_over(self) -> None:
        """Just became the leader: start from the stored prices and what the last leader already told."""
        with self.store.unit_of_work() as uow:
            m = Monitoring(uow.session)
            if not self._seeded:
                self.feed.guard.seed(m.last_ticks(self.catalog.assets))
                self._seeded = True
            self.feed.stale_since = m.flag(STALE)  # stale already told: not again, and its recovery is still told
        self._troubles = None

    def fence(self, uow: UnitOfWork) -> None:
        """Inside ``uow``'s transaction: raise ``LostLease`` unless this process still leads."""
        if not self.lease.still_held(uow.session.connection()):
            raise LostLease(f"{self.holder} lost the leader lease")

    async def lost(self, exc: LostLease) -> None:
        log.warning("%s; the transaction was rolled back", exc)
        await self.lead()

    def _job_failed(self, event: JobExecutionEvent) -> None:
        # a job cancelled by the scheduler's shutdown is no failure
        if event.exception is not None and not isinstance(event.exception, asyncio.CancelledError):
            self._failed(f"job {event.job_id}", event.exception)

    def _failed(self, where: str, exc: BaseException) -> None:
        if self.report is not None:
            self.report(where, exc)
        else:
            log.error("%s failed", where, exc_info=exc)

    def stream_from(self, url: str) -> PriceStream:
        """Take prices from the exchange's combined stream at ``url`` (started with the jobs)."""
        stream = PriceStream(url, self.feed.assets, self.stream_price, on_status=self.stream_status,
                             clock=self.clock)
        self.feed.attach(stream)
        return stream

    def stream_price(self, asset: str, price: Decimal, at: datetime) -> None:
        """A stream message: into the guard, and a tick unless one is about to read it anyway."""
        if self.feed.observe_stream(asset, price, at) and self.leading:
            self.sweeps.request(wait=False)

    def stream_status(self, up: bool) -> None:
        if up:
            log.info("price stream up: REST polls the second source only")
        else:
            log.warning("price stream down: polling the exchange's REST ticker until it is back")
            if self.scheduler is not None and self.scheduler.get_job("poll") is not None:
                self.scheduler.modify_job("poll", next_run_time=datetime.now(UTC))

    async def feed_start(self) -> None:
        for source in (self.feed.primary, self.feed.second):
            if isinstance(source, ExchangePrices):
                await source.start()

    async def feed_close(self) -> None:
        for source in (self.feed.primary, self.feed.second):
            if isinstance(source, ExchangePrices):
                await source.close()

    # ----------------------------------------------------------------- jobs

    async def poll(self) -> None:
        if not await self.lead():
            return
        try:
            await self._poll()
        except LostLease as exc:
            await self.lost(exc)

    async def _poll(self) -> None:
        verdict = await self.feed.poll()
        now = self.clock()
        if verdict is None:
            if self.feed.went_stale(now):
                await asyncio.to_thread(self.tell_operators, "prices_stale",
                                        "No exchange price for over 60 seconds: nothing is liquidated until prices "
                                        "are back. Margin calls use the last known prices.", flag=STALE,
                                        raise_flag=True)
        else:
            if self.feed.recovered():
                await asyncio.to_thread(self.tell_operators, "prices_recovered",
                                        "Exchange prices are back; the risk sweep runs again.", flag=STALE,
                                        raise_flag=False)
            await self.sweep()
        await asyncio.to_thread(self.price_troubles, now)  # off the loop, like every unit of work
        self.wake_notifier()

    async def sweep(self) -> None:
        """A tick on the newest prices, coalesced with the ticks new stream prices asked for; returns once a tick
        that started after this call has ended (raising what it raised, e.g. ``LostLease``)."""
        done = self.sweeps.request()
        assert done is not None
        await done

    async def _sweep(self) -> None:
        if not self.leading:
            return
        await self._tick_off_loop(record=True)

    async def _tick_off_loop(self, record: bool = False) -> None:
        """A tick now on the guard's prices, in a worker thread; the notifier is woken as soon as a part has
        committed something to tell (a crash's first liquidations go out while the rest are being done)."""
        now = self.clock()
        guard = self.feed.guard
        loop = asyncio.get_running_loop()

        def told() -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile (shutdown)
                loop.call_soon_threadsafe(self.wake_notifier)

        await asyncio.to_thread(self.tick, guard.newest(now, WARN_MAX_AGE), guard.confirmed(now), now,
                                guard.corroborated(now), record, told)
        self.wake_notifier()

    def _sweep_failed(self, exc: BaseException) -> None:
        """A tick asked for by a stream price failed (nobody waits for it)."""
        if isinstance(exc, LostLease):
            self._losing = asyncio.get_running_loop().create_task(self.lost(exc))  # kept: a task needs a reference
        else:
            self._failed("stream sweep", exc)

    async def hourly(self) -> None:
        if not await self.lead():
            return
        try:
            await self._tick_off_loop()
        except LostLease as exc:
            await self.lost(exc)

    def wake_notifier(self) -> None:
        """Start a notifier pass in the background; the caller never waits for it. While a pass runs (it may have
        read the outbox before this tick's events), one more starts as soon as it ends."""
        if self._delivering is None or self._delivering.done():
            self._wake_again = False
            self._delivering = asyncio.create_task(self.notifier.run())
            self._delivering.add_done_callback(self._delivered)
        else:
            self._wake_again = True

    def _delivered(self, task: asyncio.Task[int]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._failed("push delivery", task.exception())  # type: ignore[arg-type]
        if self._wake_again and not task.cancelled() and self.scheduler is not None:
            self.wake_notifier()

    async def deliver(self) -> None:
        if self.leading:
            await self.notifier.run()

    async def digest(self) -> None:
        if await self.lead():
            try:
                await asyncio.to_thread(self.digests, self.feed.guard.newest(self.clock(), WARN_MAX_AGE))
            except LostLease as exc:
                await self.lost(exc)
                return
            self.wake_notifier()

    # ----------------------------------------------------------------- the work

    def tick(self, prices: Prices, confirmed: Prices, now: datetime, corroborated: Collection[str] = (),
             record: bool = False, told: Callable[[], object] | None = None) -> list[Event]:
        """The domain's tick, in parts of about ``part_seconds`` each in its own transaction (``domain.watch.tick.
        Tick``): a crash's thousand liquidations never hold the writers' turn for long, and the chat's writes go in
        between. Each part's events are in the outbox when it commits; each part commits only while this process
        still leads (``LostLease`` otherwise: that part rolled back, the ones before it stand, and the next tick
        does the rest). ``told`` is called after each part that committed events."""
        started = time.perf_counter()
        events: list[Event] = []
        with self._ticking:
            part_started = started

            def enough(_acted: int) -> bool:
                return time.perf_counter() - part_started >= self.part_seconds

            job = Tick(prices, confirmed, now, corroborated, enough)
            while not job.done:
                part_started = time.perf_counter()
                done = self._tick_part(job, confirmed, now, record and job.parts == 0)
                if done and told is not None:
                    told()
                events += done
        took = time.perf_counter() - started
        for observe in self.on_tick:
            observe(took, events)
        return events

    def _tick_part(self, job: Tick, confirmed: Prices, now: datetime, record: bool) -> list[Event]:
        with self.store.unit_of_work() as uow:
            desk = Desk(self.catalog, uow.domain_book)

            def shield(step: Step, d: Desk, p: Prices, t: datetime) -> list[Event]:
                return shielded(uow, step, d, p, t)

            events = job.part(desk, shield=shield, tracked=SqlTracked(uow.session))
            if record:
                m = Monitoring(uow.session)
                last = m.last_ticks(a for a in confirmed if a != QUOTE)
                for asset, price in confirmed.items():
                    if asset != QUOTE:
                        m.record_tick(asset, price, now, "exchange", last.get(asset))
            self.fence(uow)
            uow.commit()
        return events

    def tell_operators(self, kind: str, message: str, flag: str | None = None, raise_flag: bool = True,
                       **data: object) -> None:
        """An operator notice; ``flag`` is raised (or cleared) in the same commit, so it is told once."""
        log.warning("%s: %s", kind, message)
        with self.store.unit_of_work() as uow:
            now = self.clock()
            uow.book.emit(Event(now, kind, None, None, {"message": message, **data}))
            if flag is not None:
                m = Monitoring(uow.session)
                if raise_flag:
                    m.set_flag(flag, self.feed.stale_since or now if flag == STALE else now)
                else:
                    m.clear_flag(flag)
            self.fence(uow)
            uow.commit()

    def price_troubles(self, now: datetime) -> None:
        """Tell the operators once when an asset's price cannot be used, and once when it is back."""
        troubles = self.feed.troubles(now)
        if self._troubles is None:
            with self.store.unit_of_work() as uow:
                m = Monitoring(uow.session)
                self._troubles = {a: "" for a in self.feed.assets if m.flag(TROUBLE + a) is not None}
        for asset, why in troubles.items():
            if asset not in self._troubles:
                self.tell_operators("price_missing", f"{why}. {asset} positions are not liquidated until its "
                                    "price is usable again; margin calls use its last good price for 5 minutes.",
                                    flag=TROUBLE + asset, asset=asset)
                self._troubles[asset] = why
        for asset in [a for a in self._troubles if a not in troubles]:
            self.tell_operators("price_back", f"{asset} has a usable price again.", flag=TROUBLE + asset,
                                raise_flag=False, asset=asset)
            del self._troubles[asset]

    def digests(self, prices: Prices) -> int:
        """One digest per opted-in borrower per UTC day, at or after their hour."""
        now = self.clock()
        day = now.date().isoformat()
        with self.store.unit_of_work() as uow:
            m = Monitoring(uow.session)
            desk = Desk(self.catalog, uow.domain_book)
            owners = m.digest_owners(now.hour, day)
            for owner in owners:
                rows = []
                for p in sorted(uow.book.positions_of(owner), key=lambda p: p.id):
                    if p.active:
                        v = position_view(desk, p, prices, now)
                        rows.append({"id": v.id, "ltv": fmt(v.ltv) if v.ltv is not None else "",
                                     "debt": fmt(v.debt), "asset": v.loan_asset,
                                     "margin_call": fmt(v.thresholds.margin_call)})
                uow.book.emit(Event(now, "digest", owner, None, {"positions": rows}))
                m.digest_sent(owner, day)
            self.fence(uow)
            uow.commit()
            return len(owners)



def shielded(uow: UnitOfWork, step: Step, desk: Desk, prices: Prices, now: datetime) -> list[Event]:
    """Run a tick's step on the borrower's own rules inside a savepoint: if it fails, its changes are undone and
    the sweep still runs (a broken protection rule must never stop liquidations or margin calls)."""
    uow.book.flush()
    savepoint = uow.session.begin_nested()
    try:
        events = step(desk, prices, now)
        uow.book.flush()
    except Exception:
        log.exception("tick step %s failed; its changes were undone", getattr(step, "__name__", step))
        savepoint.rollback()
        uow.book.forget()  # objects read inside the step may hold undone changes: read them again
        return []
    savepoint.commit()
    return events


def build_monitor(settings: Settings, catalog: Catalog, store: StateStore, send: Send,
                  clock: Callable[[], datetime], primary: PriceSource | None = None,
                  lease: Lease | None = None) -> Monitor:
    """The scheduler with its own price clients (no cache: every poll asks the exchange), the guard built from
    the markets file, the exchange's stream (unless ``LOANDESK_BINANCE_STREAM_URL`` is ``off``) and the notifier.
    ``primary`` replaces the exchange, stream included (the console's offline prices)."""
    offline = primary is not None
    timeout = min(5.0, max(1.0, settings.price_poll_seconds))
    assets = list(catalog.assets)
    primary = primary or ExchangePrices(settings.binance_url, assets, cache_seconds=0, timeout=timeout)
    second = (ExchangePrices(settings.second_price_url, assets, cache_seconds=0, timeout=timeout)
              if settings.second_price_url else None)
    feed = PriceFeed(primary, clock, GuardRules.of(catalog.desk), second, [a for a in assets if a != QUOTE])
    notifier = Notifier(store, send, settings.admin_ids, clock)
    lease = lease or lease_for(store.engine, settings.leader_ttl_seconds)
    monitor = Monitor(catalog, store, feed, notifier, clock, settings.price_poll_seconds, lease,
                      part_seconds=settings.tick_part_seconds)
    url = stream_base_url(settings.binance_stream_url)
    if url is not None and not offline and feed.assets:
        monitor.stream_from(url)
    return monitor
