"""``loandesk console``: the whole bot offline in a terminal — the same Application, scheduler (price feed, risk
sweep, hourly tick), notifier and pushes as ``loandesk run``, with Telegram replaced by the terminal.

The composition root builds the bot exactly as for ``run``; only three parts differ: the Bot API is
``bot.entry.terminal`` served on 127.0.0.1 (so python-telegram-bot talks HTTP to it as to Telegram), prices come
from ``bot.monitor.offline`` (fixed, set with ``/price``, or a replayed crash) instead of the exchange, and a
price move beyond ``price_jump`` must hold ``CONFIRM_SECONDS`` instead of the markets file's 10 s so that a
newcomer does not wait. You are user 1, a borrower and the operator, on the demo desk; a fresh wallet gets the
demo funds at once. SQLite by default. Nothing here opens a connection to anything but 127.0.0.1.

Lines are read from stdin (piped scripts work: typed lines are echoed, each waits for the bot's answer;
``/wait 20`` pauses a script so that pushes can arrive). Logs go to a file beside the database.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from pathlib import Path
from typing import Any, TextIO

from telegram import Update
from telegram.ext import ContextTypes, TypeHandler

from bot.entry.localhttp import LocalServer
from bot.entry.terminal import TOKEN, USER, Terminal
from bot.history.events import EVENTS, event, event_prices
from bot.monitor.offline import OfflinePrices
from bot.monitor.prices import parse_price_list
from bot.settings import Settings
from bot.telegram.budget import TelegramBudget
from bot.telegram.flood import FloodLimiter
from domain.analysis.backtest import BacktestError
from domain.errors import Rejected
from domain.markets import Catalog, CatalogError, load_catalog
from domain.money import fmt, pct

PROG = "loandesk console"
CONFIRM_SECONDS = 3
POLL_SECONDS = 1.0
ANSWER_TIMEOUT = 60.0
MAX_WAIT = 600


@dataclass(frozen=True)
class Options:
    db: Path
    pictures: Path
    catalog: Catalog
    start: dict[str, Decimal]
    replay: str | None
    speed: float
    since: datetime | None
    live_confirm: int  # the markets file's price_confirm_seconds


def options(args: argparse.Namespace) -> Options:
    """Check every flag before anything starts; ``ValueError`` with one readable sentence."""
    try:
        catalog = load_catalog(args.markets)
    except CatalogError as exc:
        raise ValueError(str(exc)) from None
    live_confirm = catalog.desk.price_confirm_seconds
    catalog = catalog.with_overrides({"desk": {"price_confirm_seconds": min(CONFIRM_SECONDS, live_confirm)}})
    start = parse_price_list(args.prices) if args.prices else {}
    unknown = [a for a in start if a not in catalog.assets]
    if unknown:
        raise ValueError(f"--prices: {', '.join(unknown)} is not an asset of this desk "
                         f"(known: {', '.join(catalog.assets)})")
    replay, since = None, None
    if args.replay:
        try:
            replay = event(args.replay).name
        except BacktestError:
            raise ValueError(f"--replay: '{args.replay}' is not a crash I know (choose: {', '.join(EVENTS)})") from None
        if args.start:
            since = _when(args.start, replay)
    elif args.start:
        raise ValueError("--from needs --replay")
    if not 1 <= args.speed <= 10_000_000:
        raise ValueError("--speed is how many seconds of history pass per second: 1 to 10,000,000")
    db = Path(args.db)
    pictures = Path(args.pictures) if args.pictures else db.with_name(db.stem + "-pictures")
    return Options(db, pictures, catalog, start, replay, float(args.speed), since, live_confirm)


def _when(text: str, replay: str) -> datetime:
    from bot.entry.backtest import InputError, parse_when

    try:
        moment = parse_when(text, "--from")
    except InputError as exc:
        raise ValueError(str(exc)) from None
    series = event_prices(replay, next(iter(event(replay).files)))
    if not series.times[0] <= moment < series.times[-1]:
        raise ValueError(f"--from {text} is outside {replay} ({series.times[0]:%Y-%m-%d %H:%M} to "
                         f"{series.times[-1]:%Y-%m-%d %H:%M} UTC)")
    return moment


def main(args: argparse.Namespace) -> int:
    try:
        opts = options(args)
    except ValueError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(filename=str(opts.db.with_suffix(".log")), level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(session(opts, sys.stdin, sys.stdout))
    return 0


async def session(opts: Options, stdin: TextIO, out: TextIO) -> None:
    """Start the bot against the terminal, type stdin's lines into it, stop at end of input (or Ctrl-C)."""
    from bot.entry.compose import build_application
    from bot.entry.run import run_app

    terminal = Terminal(out, opts.pictures)
    server = LocalServer(terminal.call)
    port = await server.start()
    catalog = opts.catalog
    source = OfflinePrices(catalog.assets, [a for a in catalog.assets if catalog.is_stable(a)], opts.start)
    source.note = terminal.note
    settings = Settings(TELEGRAM_BOT_TOKEN=TOKEN, LOANDESK_TELEGRAM_BASE_URL=f"http://127.0.0.1:{port}/bot",
                        LOANDESK_DATABASE_URL=f"sqlite:///{opts.db}", LOANDESK_ADMIN_IDS=frozenset({USER}),
                        LOANDESK_MODE="demo", LOANDESK_PRICE_POLL_SECONDS=POLL_SECONDS, LOANDESK_SECOND_PRICE_URL=None,
                        LOANDESK_BINANCE_URL="http://127.0.0.1:9")  # never called: the feed is offline
    # A script types faster than a person: the console's one user is not flood-limited.
    app = build_application(settings, source, feed=source, catalog=catalog, flood=FloodLimiter(10**6, 10**6),
                            budget=TelegramBudget(10**6, 10**6, 10**6))  # a terminal has no flood limits
    monitor = app.bot_data["monitor"]
    monitor.notifier.send = terminal.expect_push(monitor.notifier.send)

    async def handled(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        terminal.handled(update.update_id)

    app.add_handler(TypeHandler(Update, handled), group=1000)  # after every other group: the update is done
    stop, ready = asyncio.Event(), asyncio.Event()
    runner = asyncio.create_task(run_app(app, stop, started=ready.set, timeout=5))
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGINT, lines.put_nowait, None)
    try:
        await _started(runner, ready)
        desk = app.bot_data["desk"]
        funded = fund(desk)
        terminal.print(banner(opts, source.now(), funded))

        def replay_when_borrowed() -> None:
            """``--replay`` starts once the person has an open loan, so that the crash meets it."""
            if opts.replay and source.replay is None and has_loan(desk):
                replay = source.replay_event(opts.replay, opts.speed, opts.since)
                terminal.note(f"{replay.title} starts now, at {fmt(Decimal(str(opts.speed)))}×, from today's prices.")

        replay_when_borrowed()
        threading.Thread(target=_read, args=(stdin, loop, lines), daemon=True).start()
        await _type(terminal, lines, echo=not stdin.isatty(), after=replay_when_borrowed)
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await runner
        await server.close()


async def _started(runner: asyncio.Task[None], ready: asyncio.Event) -> None:
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait({runner, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if runner.done():
        waiter.cancel()
        runner.result()  # raises what stopped the bot


async def _type(terminal: Terminal, lines: asyncio.Queue[str | None], echo: bool,
                after: Callable[[], None]) -> None:
    while (line := await lines.get()) is not None:
        text = line.strip()
        if not text:
            continue
        if echo:
            terminal.print(f"> {text}")
        if text.split()[0].lower() == "/wait":
            await asyncio.sleep(_seconds(text))
            continue
        update = terminal.type_line(text)
        if update is not None:
            await terminal.wait_handled(update, ANSWER_TIMEOUT)
        after()


def _seconds(text: str) -> float:
    parts = text.split()
    try:
        return min(float(parts[1]), MAX_WAIT) if len(parts) > 1 else 10.0
    except ValueError:
        return 10.0


def _read(stdin: TextIO, loop: asyncio.AbstractEventLoop, lines: asyncio.Queue[str | None]) -> None:
    """Stdin in its own daemon thread (a blocked read must not keep the process alive after Ctrl-C)."""
    with contextlib.suppress(RuntimeError):  # the loop closed while a line was on its way
        for line in iter(stdin.readline, ""):
            loop.call_soon_threadsafe(lines.put_nowait, line)
        loop.call_soon_threadsafe(lines.put_nowait, None)


def has_loan(desk: Any) -> bool:
    return any(v.status in ("open", "overdue") for v in desk.service.positions(str(USER), {}))


def fund(desk: Any) -> dict[str, Decimal]:
    """Demo funds for a wallet that is empty (a first start), as /faucet gives them."""
    service = desk.service
    if service.wallet(str(USER)):
        return {}
    with contextlib.suppress(Rejected):
        got: dict[str, Decimal] = service.faucet(str(USER))
        return got
    return {}


def _nice(x: Decimal, rounding: str) -> Decimal:
    """Two significant digits (``62500`` → ``62000`` rounding down)."""
    step = Decimal(1).scaleb(x.adjusted() - 1)
    return (x / step).quantize(Decimal(1), rounding=rounding) * step


def banner(opts: Options, prices: dict[str, Decimal], funded: dict[str, Decimal]) -> str:
    """How to borrow, move prices and replay, with numbers that work at these prices."""
    cat = opts.catalog
    loan = "USDT" if "USDT" in cat.loans else next(iter(cat.loans))
    coll = "BTC" if "BTC" in cat.collateral else next(a for a in cat.collateral if a != loan)
    p = prices[coll] / prices[loan]
    qty = _nice(Decimal(1000) / p, ROUND_UP).normalize()  # about 50% LTV for 500
    c = cat.collateral[coll]
    levels = [("an LTV warning", cat.products["flexible"].warning_ltv), ("a margin call", c.margin_call_ltv),
              ("liquidation", c.liquidation_ltv)]
    moves = " · ".join(f"/price {coll} {fmt(_nice(Decimal(500) / (qty * level), ROUND_DOWN))} → {what}"
                       for what, level in levels)
    shown = ", ".join(f"{a} {fmt(prices[a])}" for a in ("BTC", "ETH") if a in prices)
    lines = [
        "loandesk console — the whole bot offline: chat, price feed, risk sweep and pushes. No token, no network.",
        f"You are user {USER}, a borrower and the desk's operator, on the demo desk (state kept in {opts.db}).",
    ]
    if funded:
        lines.append("Demo funds in your Spot wallet: " + ", ".join(f"{fmt(v)} {a}" for a, v in funded.items()))
    lines += [f"Offline prices: {shown} … (/price lists them all)", "",
              f"1. Borrow:   /borrow 500 {loan} with {fmt(qty)} {coll}   then type 1 to tap [1] Confirm",
              f"2. Drop the price:  {moves}",
              "   or replay a real crash:  /price replay march2020   (an hour of history a second; or start with: "
              "loandesk console --replay march2020 --speed 600)"]
    if opts.replay:
        lines.append(f"   {opts.replay} will replay at {fmt(Decimal(str(opts.speed)))}× from the moment you have an "
                     "open loan: borrow first, and watch the crash meet it.")
    lines += ["",
              "Pushes (warnings, margin calls, liquidations) appear as they happen, under a ━━ push ━━ line.",
              "Buttons show as [1] Confirm: a number taps that button of the last message that has buttons.",
              "Pictures (/backtest, /chart) are saved as PNG files and their path printed.",
              f"Here a price move over {pct(cat.desk.price_jump)} must hold {cat.desk.price_confirm_seconds} s before "
              f"it may liquidate ({opts.live_confirm} s on the live desk). /help lists every command; Ctrl-D quits.",
              ""]
    return "\n".join(lines)


def register(sub: Any) -> None:
    """Add ``console`` to the ``loandesk`` command line."""
    c = sub.add_parser("console", help="the whole bot offline in this terminal: no token, no network",
                       description="The whole bot offline: type commands, tap buttons by number, watch pushes. "
                                   "In a piped script, /wait 20 pauses 20 s so that pushes can arrive.")
    c.add_argument("--db", default="loandesk-console.db", help="SQLite file (default: loandesk-console.db)")
    c.add_argument("--prices", default=None, help="start prices, e.g. BTC=50000,ETH=3000 (default: built-in "
                                                  "offline prices for every asset; /price changes them)")
    c.add_argument("--replay", metavar="EVENT", default=None,
                   help=f"replay a real crash from today's prices, from the moment you have an open loan: "
                        f"{', '.join(EVENTS)}")
    c.add_argument("--speed", type=float, default=3600.0,
                   help="seconds of history per second for --replay (default 3600: an hour a second)")
    c.add_argument("--from", dest="start", metavar="ISO", default=None,
                   help="start --replay at this time of the event (e.g. 2020-03-12)")
    c.add_argument("--pictures", metavar="DIR", default=None,
                   help="where pictures are written (default: beside the database)")
    c.add_argument("--markets", default=None, help="a market catalog TOML to use instead of the shipped one")
    c.set_defaults(func=main)
