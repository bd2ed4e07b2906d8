"""``loandesk run`` (the bot) and ``loandesk db upgrade`` (migrations as a step of their own); ``loandesk
console``, the same bot offline, is ``bot.entry.console``.

``run`` starts the Application inside one asyncio loop the way TECH.md prescribes (no ``run_polling``), so the
scheduler shares the loop, and:

- **receives updates** either by long polling — *only while this instance leads* (``Monitor.on_change``): any
  number of instances may run on one database and exactly one of them polls, so Telegram never answers
  ``409 Conflict``; a standby starts polling the moment it takes the lead — or, with ``LOANDESK_WEBHOOK_URL``,
  through PTB's webhook server on every instance (``LOANDESK_WEBHOOK_LISTEN``; Telegram's ``secret_token``,
  ``LOANDESK_WEBHOOK_SECRET``, checked on every request, 403 otherwise). An update redelivered to another
  instance is handled once (``bot_seen``, insert-or-conflict). ``allowed_updates`` is explicit (``ALLOWED``);
- **retries its bootstrap** (the database, Telegram's ``getMe``, ``deleteWebhook``/``setWebhook``)
  ``LOANDESK_BOOTSTRAP_RETRIES`` times with back-off, and ends a failed start with one clean sentence — never a
  traceback, never the token (Telegram's 401/404 for a bad token included);
- **drains on SIGTERM/SIGINT** within ``LOANDESK_SHUTDOWN_GRACE_SECONDS``: stop receiving, finish the updates in
  hand, let a tick commit and a push pass record its message, give up the lease (a standby leads within a
  second); a second signal exits at once;
- serves ``/healthz`` and ``/metrics`` on ``LOANDESK_HTTP_ADDRESS`` (``bot.ops.health``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from telegram.error import InvalidToken, NetworkError, TimedOut
from telegram.ext import Application

from bot.ops import logs
from bot.ops.incidents import new_id
from bot.settings import Settings, split_address

log = logging.getLogger("loandesk.run")
BAD_TOKEN = ("Telegram refused the token in TELEGRAM_BOT_TOKEN; copy it again from @BotFather "
             "(it looks like 123456789:AA…)")
NO_TOKEN = ("loandesk run: TELEGRAM_BOT_TOKEN is not set (put it in the environment or .env); "
            "to try loandesk without a token, run `loandesk console`")
ALLOWED = ("message", "callback_query", "my_chat_member", "chat_member")  # Telegram's updates the bot handles
App = Application[Any, Any, Any, Any, Any, Any]
T = TypeVar("T")


class StartupFailed(RuntimeError):
    """The bot could not start; the message is the one sentence ``loandesk run`` prints, ``code`` its exit code
    (2: a setting to fix, like the token; 1: anything else, like the network)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def load_settings(prog: str) -> Settings | None:
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        print(f"{prog}: bad setting{' ' + where if where else ''}: {first['msg']}", file=sys.stderr)
        return None


def run(args: argparse.Namespace) -> int:
    settings = load_settings("loandesk run")
    if settings is None:
        return 2
    if not settings.telegram_bot_token:
        print(NO_TOKEN, file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format, settings.secrets())
    try:
        asyncio.run(serve(settings))
    except StartupFailed as exc:
        log.error("start-up failed: %s", exc)
        print(f"loandesk run: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 0
    except Exception as exc:
        error_id = new_id()
        log.critical("stopped on an unexpected error", exc_info=exc, extra={"error_id": error_id})
        print(f"loandesk run: stopped on an unexpected error ({type(exc).__name__}, error {error_id} in the log)",
              file=sys.stderr)
        return 1
    return 0


def upgrade(args: argparse.Namespace) -> int:
    """``loandesk db upgrade``: bring the database to the newest schema, then exit."""
    from storage.engine import current_revision, make_engine, migrate

    settings = load_settings("loandesk db upgrade")
    if settings is None:
        return 2
    logs.configure(settings.log_level, settings.log_format, settings.secrets())
    try:
        engine = make_engine(settings.database_url, schema=settings.database_schema)
        try:
            before = current_revision(engine)
            migrate(engine)
            after = current_revision(engine)
        finally:
            engine.dispose()
    except ModuleNotFoundError as exc:
        print(f"loandesk db upgrade: {missing_driver(exc)}", file=sys.stderr)
        return 1
    except SQLAlchemyError as exc:
        print(f"loandesk db upgrade: {database_trouble(settings, exc)}", file=sys.stderr)
        return 1
    print(f"database at revision {after}" + (f" (was {before or 'empty'})" if before != after else " (unchanged)"))
    return 0


def missing_driver(exc: ModuleNotFoundError) -> str:
    if (exc.name or "").startswith("psycopg"):
        return "PostgreSQL needs its driver: pip install 'loandesk[postgres]'"
    return f"a module is missing: {exc.name}"


def database_trouble(settings: Settings, exc: SQLAlchemyError) -> str:
    from storage.engine import database_url

    url = database_url(settings.database_url)
    where = f"{url.host}:{url.port or 5432}/{url.database}" if url.host else str(url.database)
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:200]
    return f"cannot use the database {where} (LOANDESK_DATABASE_URL): {reason}"


async def retrying(what: str, attempt: Callable[[], Awaitable[T]], retries: int,
                   transient: tuple[type[BaseException], ...]) -> T:
    """``attempt()`` until it works, ``retries`` more times at most (-1: forever), backing off 1, 2, 4 … 30 s."""
    tries = 0
    while True:
        try:
            return await attempt()
        except transient as exc:
            tries += 1
            if 0 <= retries < tries:
                raise
            wait = min(30.0, 2.0 ** (tries - 1))
            log.warning("%s failed (%s); retrying in %.0f s (%s of %s)", what, type(exc).__name__, wait, tries,
                        "∞" if retries < 0 else retries)
            await asyncio.sleep(wait)


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Run until ``stop`` is set (or SIGINT/SIGTERM arrives)."""
    from bot.entry.compose import build_application

    async def build() -> App:
        return build_application(settings)

    try:
        app = await retrying("connecting to the database", build, settings.bootstrap_retries, (SQLAlchemyError,))
    except ModuleNotFoundError as exc:
        raise StartupFailed(missing_driver(exc)) from None
    except SQLAlchemyError as exc:
        raise StartupFailed(database_trouble(settings, exc)) from None
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()

    def signalled() -> None:
        if stop.is_set():  # a second signal: leave now (the lease goes with the process)
            log.warning("second stop signal: exiting without draining")
            os._exit(1)
        log.info("stop signal: draining (at most %s s)", settings.shutdown_grace_seconds)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, signalled)
    await run_app(app, stop, settings=settings, started=lambda: log.info(
        "loandesk is running (%s); Ctrl-C stops it", "webhook" if settings.webhook_url else "long polling"))


class Receiver:
    """How updates come in: long polling by the leader only (or always, without a monitor), or the webhook."""

    def __init__(self, app: App, settings: Settings | None, polling: dict[str, Any]) -> None:
        self.app = app
        self.settings = settings
        self.polling = polling
        self.webhook = bool(settings and settings.webhook_url)
        self.closing = False
        self._switch = asyncio.Lock()

    @property
    def updater(self) -> Any:
        assert self.app.updater is not None
        return self.app.updater

    def receiving(self) -> bool:
        return bool(self.updater.running)

    async def start(self, follow_leader: bool) -> None:
        if self.webhook:
            await self._start_webhook()
        elif not follow_leader:
            await self.follow(True)

    async def follow(self, leading: bool) -> None:
        """Polling follows leadership: only the leader polls (no 409); a new leader starts at once."""
        if self.webhook:
            return
        async with self._switch:
            if leading and not self.closing and not self.updater.running:
                retries = self.settings.bootstrap_retries if self.settings else -1
                # chat_member updates are not sent unless asked for: they end a member's shares in a group
                await self.updater.start_polling(**{"allowed_updates": list(ALLOWED), "bootstrap_retries": retries,
                                                    **self.polling})
                log.info("polling Telegram for updates")
            elif not leading and self.updater.running:
                await self.updater.stop()
                log.info("stopped polling Telegram: another instance leads")

    async def _start_webhook(self) -> None:
        assert self.settings is not None and self.settings.webhook_url and self.settings.webhook_secret
        host, port = split_address(self.settings.webhook_listen)
        await self.updater.start_webhook(
            listen=host, port=port, url_path=urlsplit(self.settings.webhook_url).path.lstrip("/"),
            webhook_url=self.settings.webhook_url, secret_token=self.settings.webhook_secret.get_secret_value(),
            allowed_updates=list(ALLOWED), bootstrap_retries=self.settings.bootstrap_retries)
        log.info("webhook listening on %s:%s", host, port)

    async def stop(self) -> None:
        async with self._switch:
            self.closing = True
            if self.updater.running:
                await self.updater.stop()


async def run_app(app: App, stop: asyncio.Event, *, started: Callable[[], object] | None = None,
                  settings: Settings | None = None, **polling: Any) -> None:
    """The Application's whole life in the running loop: initialize (with retries), the ops server, post_init
    (the scheduler), start, receive updates … until ``stop`` … drain within the grace period, post_shutdown,
    shutdown. (post_init/post_shutdown run only under ``run_polling``, which we do not use so that the scheduler
    can share the loop.) Tests and benchmarks run the bot through this too; ``polling`` goes to
    ``start_polling``."""
    assert app.updater is not None and app.post_init is not None and app.post_shutdown is not None
    receiver = Receiver(app, settings, polling)
    monitor = app.bot_data.get("monitor")
    ops = app.bot_data.get("ops")
    retries = settings.bootstrap_retries if settings else 0
    try:
        await retrying("reaching Telegram (getMe)", app.initialize, retries, (NetworkError, TimedOut))
    except InvalidToken:
        raise StartupFailed(BAD_TOKEN, code=2) from None
    except (NetworkError, TimedOut) as exc:
        where = (settings.telegram_base_url if settings else None) or "api.telegram.org"
        raise StartupFailed(f"cannot reach Telegram at {where} ({type(exc).__name__}); check the network and "
                            "try again") from None
    server = None
    try:
        if settings is not None and settings.http_address and ops is not None:
            server = ops_server(app, settings, receiver)
            server.start()
        if monitor is not None:
            monitor.on_change.append(receiver.follow)
        await app.post_init(app)
        try:
            await app.start()
            await receiver.start(follow_leader=monitor is not None)
            if started is not None:
                started()
            await stop.wait()
            grace = settings.shutdown_grace_seconds if settings else 30.0
            await drain(app, receiver, grace)
        finally:
            await app.post_shutdown(app)
    finally:
        if server is not None:
            await server.stop()
        await app.shutdown()


async def drain(app: App, receiver: Receiver, grace: float) -> None:
    """Stop taking updates and finish those in hand, within ``grace`` seconds (the rest is up to post_shutdown)."""
    began = time.monotonic()
    try:
        await asyncio.wait_for(receiver.stop(), grace)
        if app.running:
            await asyncio.wait_for(app.stop(), max(0.1, grace - (time.monotonic() - began)))
    except TimeoutError:
        log.warning("updates in hand not finished within the %s s grace period", grace)
    log.info("stopped taking updates in %.1f s", time.monotonic() - began)


def ops_server(app: App, settings: Settings, receiver: Receiver) -> Any:
    from bot.ops.health import Instance, OpsServer

    ops = app.bot_data["ops"]
    monitor = ops.monitor
    host, port = split_address(settings.http_address or "")
    from bot.entry.compose import price_ages

    max_age = (monitor.feed.guard.rules.max_age.total_seconds() if monitor is not None else 60.0)
    instance = Instance(
        holder=monitor.holder if monitor is not None else "", mode="webhook" if receiver.webhook else "polling",
        leading=(lambda: monitor.leading) if monitor is not None else (lambda: False),
        receiving=receiver.receiving, price_ages=(lambda: price_ages(monitor)) if monitor is not None else dict,
        max_price_age=max_age, started=time.monotonic())
    return OpsServer(host, port, instance, ops.probe, ops.metrics)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``run`` and ``db upgrade`` to the ``loandesk`` command line (``console`` registers itself from
    ``bot.entry.cli``)."""
    p = sub.add_parser("run", help="run the Telegram bot (needs TELEGRAM_BOT_TOKEN)")
    p.set_defaults(func=run)
    db = sub.add_parser("db", help="the database: `loandesk db upgrade` applies the migrations")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    up = db_sub.add_parser("upgrade", help="bring the database (LOANDESK_DATABASE_URL) to the newest schema")
    up.set_defaults(func=upgrade)
