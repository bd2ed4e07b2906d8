"""The composition root: settings → catalog, database, price source, services, chat, monitor → PTB Application.

Nothing else builds these parts; ``loandesk run``, the console, the tests and the benchmarks all come here.
The operations side (``bot.ops``: metrics, incidents, the database probe) is wired here too and left in
``app.bot_data["ops"]`` for ``loandesk run`` (health server) and the error handler.

The Application handles updates of different chats at once and one chat's in order (``PerChatUpdates``), and
every Bot API call goes through one ``TelegramBudget`` (replies first, pushes by urgency, 429s retried), left in
``app.bot_data["budget"]``.
"""

from __future__ import annotations

import gc
import sys
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from telegram.ext import Application, ApplicationBuilder
from telegram.request import HTTPXRequest

from bot.chat.desk import ChatDesk
from bot.chat.groups import Groups
from bot.monitor.notifier import telegram_sender
from bot.monitor.prices import ExchangePrices, PriceSource
from bot.monitor.scheduler import WARN_MAX_AGE, Monitor, build_monitor
from bot.ops.incidents import Incidents
from bot.ops.metrics import Metrics
from bot.ops.probe import DbProbe
from bot.render import charts, common
from bot.render.common import Reply
from bot.service.loans import Clock, LoanService, utcnow
from bot.service.store import StateStore
from bot.service.tracking import TrackingService
from bot.settings import Settings
from bot.telegram.budget import TelegramBudget
from bot.telegram.flood import FloodLimiter
from bot.telegram.handlers import App, TelegramHandlers, set_menus
from bot.telegram.updates import PerChatUpdates
from domain.markets import Catalog, load_catalog


def build_desk(settings: Settings, prices: PriceSource | None = None, clock: Clock = utcnow,
               catalog: Catalog | None = None) -> tuple[ChatDesk, StateStore, PriceSource]:
    """The chat core on the configured database and exchange (shared by ``run``, the console and the tests).
    ``catalog`` replaces the markets file's (the console's shorter price confirmation)."""
    catalog = catalog or load_catalog(settings.markets_file)
    common.use_catalog(catalog)  # amounts shown at the catalog's display precision
    store = StateStore(settings.database_url, schema=settings.database_schema, migrate=settings.migrate_on_start)
    source = prices or ExchangePrices(settings.binance_url, list(catalog.assets))
    service = LoanService(catalog, store, demo=settings.demo, clock=clock)
    key = settings.secret_key.get_secret_value() if settings.secret_key is not None else None
    tracking = TrackingService(catalog, store, settings.binance_url, key, share=settings.binance_sync_share,
                               min_interval=settings.binance_sync_seconds, clock=clock)
    return ChatDesk(service, source, settings.admin_ids, settings.demo, tracking), store, source


@dataclass
class Ops:
    """The operations side of one Application: metrics, incidents (alerts), the database probe."""

    metrics: Metrics
    incidents: Incidents
    probe: DbProbe
    monitor: Monitor | None

    def report(self, where: str, exc: BaseException | None) -> str:
        """An uncaught error: counted, logged under a new id, operators alerted (rate limited); returns the id."""
        self.metrics.errors.inc()
        return self.incidents.report(where, exc)


class MeasuredRequest(HTTPXRequest):
    """PTB's HTTP client, counting every Bot API answer by method and status (429s included) in the metrics."""

    def __init__(self, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metrics = metrics

    async def do_request(self, url: str, method: str, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        code, payload = await super().do_request(url, method, *args, **kwargs)
        self.metrics.request(url.rsplit("/", 1)[-1], code)  # the URL's last part is the method, never the token
        return code, payload


class MeasuredApplication(Application):  # type: ignore[type-arg]
    """PTB's Application, timing each update from arrival to the end of its handlers (``chat_update_seconds``)."""

    def __init__(self, *, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metrics = metrics

    async def process_update(self, update: object) -> None:
        started = time.perf_counter()
        try:
            await super().process_update(update)
        finally:
            self.metrics.chat_latency.observe(time.perf_counter() - started)


def _requests(metrics: Metrics, timeouts: dict[str, float]) -> tuple[MeasuredRequest, MeasuredRequest]:
    """The two HTTP clients ApplicationBuilder would make (256 connections; 1 for getUpdates), measured."""
    main = {k: v for k, v in timeouts.items() if not k.startswith("get_updates_")}
    updates = {k.removeprefix("get_updates_"): v for k, v in timeouts.items() if k.startswith("get_updates_")}
    return (MeasuredRequest(metrics, connection_pool_size=256, **main),
            MeasuredRequest(metrics, connection_pool_size=1, **updates))


# How often Python hands the GIL to another thread (default 5 ms). Units of work run on thread pools beside the event
# loop, and while a CPU-heavy one runs (a crash tick's part) the loop waits up to one interval for the GIL after every
# system call it makes (a socket read, a send): a loop iteration with a hundred of them waited 100-250 ms at 0.5 ms,
# under 75 ms at 0.1 ms (``benchmarks.crashchat``).
SWITCH_INTERVAL = 0.0001


def warm_and_freeze() -> None:
    """Import the chart library, then move everything alive into the collector's permanent generation
    (``gc.freeze``). Python's full collections stop every thread, the event loop's too, for as long as they take to
    walk the heap: with the start-up heap (the libraries, the catalog, matplotlib) left out of them, a crash tick's
    garbage no longer costs the chat a ~100 ms stall each time (measured in ``benchmarks.crashchat``)."""
    charts.warm()
    gc.collect()
    gc.freeze()


def build_application(settings: Settings, prices: PriceSource | None = None, *, clock: Clock = utcnow,
                      monitor: bool = True, feed: PriceSource | None = None, catalog: Catalog | None = None,
                      flood: FloodLimiter | None = None, budget: TelegramBudget | None = None,
                      concurrent: bool = True, **timeouts: float) -> App:
    """The bot; with ``monitor`` also the scheduler (prices, sweeps, accrual) and the notifier, in its loop.
    ``feed`` replaces the exchange the scheduler polls (the console's offline prices); ``flood`` the default
    per-user limiter; ``budget`` Telegram's limits (default: Telegram's own); ``concurrent=False`` handles updates one
    at a time (the benchmarks' comparison); ``timeouts``: HTTP timeouts by ApplicationBuilder's names
    (``read_timeout``, ``get_updates_read_timeout``…)."""
    if not settings.telegram_bot_token:
        raise ValueError("TELEGRAM_BOT_TOKEN is not set")
    sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
    desk, store, source = build_desk(settings, prices, clock, catalog)
    watcher: Monitor | None = None
    metrics = Metrics()

    async def post_init(app: App) -> None:
        threading.Thread(target=warm_and_freeze, name="loandesk-warm-charts", daemon=True).start()
        if isinstance(source, ExchangePrices):
            await source.start()
        await set_menus(app, desk.operators, settings.demo)
        if watcher is not None:
            await watcher.feed_start()
            watcher.start()

    async def post_shutdown(app: App) -> None:
        if watcher is not None:
            await watcher.stop(settings.shutdown_grace_seconds)
        if isinstance(source, ExchangePrices):
            await source.close()
        store.close()

    request, updates_request = _requests(metrics, timeouts)
    budget = budget or TelegramBudget()
    builder = (ApplicationBuilder().token(settings.telegram_bot_token).job_queue(None)
               .application_class(MeasuredApplication, {"metrics": metrics})
               .request(request).get_updates_request(updates_request).rate_limiter(budget)
               .concurrent_updates(PerChatUpdates() if concurrent else False))
    if settings.telegram_base_url:
        builder = builder.base_url(settings.telegram_base_url)
    app: App = builder.post_init(post_init).post_shutdown(post_shutdown).build()
    catalog = desk.service.catalog
    groups = Groups(catalog, store, source, settings.admin_ids, clock)
    send = telegram_sender(app.bot)
    if monitor:
        async def counted(chat_id: int, reply: Reply) -> int:
            message_id = await send(chat_id, reply)
            metrics.pushes.inc()
            return message_id
        watcher = build_monitor(settings, catalog, store, counted, clock, feed)
        watcher.notifier.ready = budget.ready_in  # a chat a reply just went to waits; other chats' pushes go
        app.bot_data["monitor"] = watcher
        wire_tracking(watcher, desk.tracking, clock)
    incidents = Incidents(settings.admin_ids, lambda chat, text: app.bot.send_message(chat, text),
                          settings.alert_interval_seconds, watcher.holder if watcher else "")
    ops = app.bot_data["ops"] = Ops(metrics, incidents, DbProbe(store.engine), watcher)
    if watcher is not None:
        wire_monitor(watcher, ops)
    metrics.watch(ops.probe, (lambda: price_ages(watcher)) if watcher is not None else dict)
    TelegramHandlers(desk, flood or FloodLimiter(), groups, watcher).register(app)
    app.bot_data["desk"] = desk
    app.bot_data["store"] = store
    app.bot_data["budget"] = budget
    return app


def wire_tracking(watcher: Monitor, tracking: TrackingService, clock: Clock) -> None:
    """Binance syncs (SPEC §9) as a leader-only job; a sync recalibrates on the scheduler's newest prices."""
    def newest() -> dict[str, Decimal]:
        return dict(watcher.feed.guard.newest(clock(), WARN_MAX_AGE))

    tracking.prices = newest
    watcher.extra.append(("binance_sync", tracking.sync_due, 1.0))


def wire_monitor(watcher: Monitor, ops: Ops) -> None:
    """Ticks feed the metrics; leadership shows in them; failed jobs become incidents."""
    async def leadership(leading: bool) -> None:
        ops.metrics.set_leader(leading)

    watcher.on_tick.append(ops.metrics.observe_tick)
    watcher.on_change.append(leadership)
    watcher.report = ops.report


def price_ages(watcher: Monitor) -> dict[str, float]:
    """Seconds since each asset's last accepted price, while this instance leads (standbys do not poll)."""
    if not watcher.leading:
        return {}
    now = watcher.clock()
    return {asset: (now - seen.at).total_seconds() for asset, seen in watcher.feed.guard.accepted.items()}
