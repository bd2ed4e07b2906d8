"""``loandesk run``: the bot, long polling (``loandesk console``, the same bot offline, is ``bot.entry.console``).

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
from telegram.error import InvalidToken, NetworkError
from telegram.ext import Application

from bot.settings import Settings

BAD_TOKEN = ("loandesk run: Telegram refused the token in TELEGRAM_BOT_TOKEN; copy it again from @BotFather "
             "(it looks like 123456789:AA…)")
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
    try:
        asyncio.run(serve(settings))
    except InvalidToken:
        print(BAD_TOKEN, file=sys.stderr)
        return 2
    except NetworkError as exc:  # also TimedOut: Telegram could not be reached at start
        where = settings.telegram_base_url or "api.telegram.org"
        print(f"loandesk run: cannot reach Telegram at {where} ({exc.message}); check the network and try again",
              file=sys.stderr)
        return 1
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
    """Add ``run`` to the ``loandesk`` command line (``console`` registers itself from ``bot.entry.console``)."""
    p = sub.add_parser("run", help="run the Telegram bot (needs TELEGRAM_BOT_TOKEN)")
    p.set_defaults(func=run)
