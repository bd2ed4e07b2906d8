"""``loandesk run`` (the bot, long polling) and ``loandesk console`` (the same chat offline in a terminal).

``run`` starts the Application inside one asyncio loop the way TECH.md prescribes (no ``run_polling``), so the
scheduler can share the loop later, and stops cleanly on SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from telegram import Update
from telegram.ext import Application

from bot.settings import Settings

NO_TOKEN = ("loandesk run: TELEGRAM_BOT_TOKEN is not set (put it in the environment or .env); "
            "to try loandesk without a token, run `loandesk console`")


def load_settings(prog: str) -> Settings | None:
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        print(f"{prog}: bad setting {'.'.join(str(x) for x in first['loc'])}: {first['msg']}", file=sys.stderr)
        return None


def run(args: argparse.Namespace) -> int:
    settings = load_settings("loandesk run")
    if settings is None:
        return 2
    if not settings.telegram_bot_token:
        print(NO_TOKEN, file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    asyncio.run(serve(settings))
    return 0


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Poll until ``stop`` is set (or SIGINT/SIGTERM arrives)."""
    from bot.entry.compose import build_application

    app = build_application(settings)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await run_app(app, stop, started=lambda: logging.getLogger("loandesk.bot").info(
        "loandesk is polling; Ctrl-C stops it"))


async def run_app(app: Application[Any, Any, Any, Any, Any, Any], stop: asyncio.Event, *,
                  started: Callable[[], object] | None = None, **polling: Any) -> None:
    """The Application's whole life in the running loop: initialize, post_init, polling, start … until ``stop``
    … stop, post_shutdown, shutdown. (post_init/post_shutdown run only under ``run_polling``, which we do not
    use so that the scheduler can share the loop.) Tests and benchmarks run the bot through this too."""
    async with app:
        assert app.updater is not None and app.post_init is not None and app.post_shutdown is not None
        await app.post_init(app)
        # chat_member updates are not sent unless asked for: they end a member's shares when they leave a group
        polling.setdefault("allowed_updates", Update.ALL_TYPES)
        try:
            await app.updater.start_polling(**polling)
            await app.start()
            if started is not None:
                started()
            await stop.wait()
            await app.updater.stop()
            await app.stop()
        finally:
            await app.post_shutdown(app)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``run`` and ``console`` to the ``loandesk`` command line."""
    from bot.entry import console

    p = sub.add_parser("run", help="run the Telegram bot (needs TELEGRAM_BOT_TOKEN)")
    p.set_defaults(func=run)
    c = sub.add_parser("console", help="talk to the bot offline in this terminal")
    c.add_argument("--db", default="loandesk-console.db", help="SQLite file (default: loandesk-console.db)")
    c.add_argument("--prices", default=None, help="fixed prices, e.g. BTC=50000,ETH=3000 (default: the exchange)")
    c.add_argument("--markets", default=None, help="a market catalog TOML to use instead of the shipped one")
    c.set_defaults(func=console.main)
