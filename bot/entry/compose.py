"""The composition root: settings → catalog, database, price source, services, chat, monitor → PTB Application.

Nothing else builds these parts; ``loandesk run``, the console, the tests and the benchmarks all come here.
"""

from __future__ import annotations

from telegram.ext import ApplicationBuilder

from bot.chat.desk import ChatDesk
from bot.chat.groups import Groups
from bot.monitor.notifier import telegram_sender
from bot.monitor.prices import ExchangePrices, PriceSource
from bot.monitor.scheduler import Monitor, build_monitor
from bot.render import common
from bot.service.loans import Clock, LoanService, utcnow
from bot.service.store import StateStore
from bot.settings import Settings
from bot.telegram.flood import FloodLimiter
from bot.telegram.handlers import App, TelegramHandlers, set_menus
from domain.markets import Catalog, load_catalog


def build_desk(settings: Settings, prices: PriceSource | None = None, clock: Clock = utcnow,
               catalog: Catalog | None = None) -> tuple[ChatDesk, StateStore, PriceSource]:
    """The chat core on the configured database and exchange (shared by ``run``, the console and the tests).
    ``catalog`` replaces the markets file's (the console's shorter price confirmation)."""
    catalog = catalog or load_catalog(settings.markets_file)
    common.use_catalog(catalog)  # amounts shown at the catalog's display precision
    store = StateStore(settings.database_url)
    source = prices or ExchangePrices(settings.binance_url, list(catalog.assets))
    service = LoanService(catalog, store, demo=settings.demo, clock=clock)
    return ChatDesk(service, source, settings.admin_ids, settings.demo), store, source


def build_application(settings: Settings, prices: PriceSource | None = None, *, clock: Clock = utcnow,
                      monitor: bool = True, feed: PriceSource | None = None, catalog: Catalog | None = None,
                      flood: FloodLimiter | None = None, **timeouts: float) -> App:
    """The bot; with ``monitor`` also the scheduler (prices, sweeps, accrual) and the notifier, in its loop.
    ``feed`` replaces the exchange the scheduler polls (the console's offline prices); ``flood`` the default
    per-user limiter."""
    if not settings.telegram_bot_token:
        raise ValueError("TELEGRAM_BOT_TOKEN is not set")
    desk, store, source = build_desk(settings, prices, clock, catalog)
    watcher: Monitor | None = None

    async def post_init(app: App) -> None:
        if isinstance(source, ExchangePrices):
            await source.start()
        await set_menus(app, desk.operators, settings.demo)
        if watcher is not None:
            await watcher.feed_start()
            watcher.start()

    async def post_shutdown(app: App) -> None:
        if watcher is not None:
            await watcher.stop()
        if isinstance(source, ExchangePrices):
            await source.close()
        store.close()

    builder = ApplicationBuilder().token(settings.telegram_bot_token).job_queue(None)
    if settings.telegram_base_url:
        builder = builder.base_url(settings.telegram_base_url)
    for name, value in timeouts.items():
        builder = getattr(builder, name)(value)
    app: App = builder.post_init(post_init).post_shutdown(post_shutdown).build()
    catalog = desk.service.catalog
    groups = Groups(catalog, store, source, settings.admin_ids, clock)
    if monitor:
        watcher = build_monitor(settings, catalog, store, telegram_sender(app.bot), clock, feed)
        app.bot_data["monitor"] = watcher
    TelegramHandlers(desk, flood or FloodLimiter(), groups, watcher).register(app)
    app.bot_data["desk"] = desk
    app.bot_data["store"] = store
    return app
