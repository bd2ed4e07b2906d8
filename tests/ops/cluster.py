"""Several real ``loandesk run`` processes on one database, against the fake Telegram and the fake exchange.

This is the README's deployment recipe ("Running it in production") as a test harness: ``loandesk db upgrade``
once, then ``loandesk run`` per instance with the same settings (database, token, operators, webhook secret) and
its own ``LOANDESK_HTTP_ADDRESS`` (and webhook listen address), migrations at start switched off. ``recipe_env``
is the only place that says which variables an instance gets.

A ``Node`` is one subprocess of the installed ``loandesk`` command, its output (JSON log lines) in a file. The
book is written straight through the engine from the test process (``Cluster.borrow``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from bot.service.store import StateStore
from domain.checks import ledger_problems
from domain.desk import Desk
from domain.loans.borrow import borrow
from domain.loans.common import BorrowRequest
from domain.markets import SHIPPED, load_catalog
from storage.tables import journal_entries
from tests.fakes.exchange import FakeExchange
from tests.fakes.telegram import FakeTelegram

TOKEN = "123456:AAH-ops-test-token-0123456789abcdefXYZ"  # token-shaped: the logs must never show it
OPERATOR = 1
SECRET = "webhook-secret_42"
HOOK_URL = "https://bot.example.test/tg/hook"
POLL = 0.3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def loandesk() -> list[str]:
    """The installed command (the README's), or the module beside this interpreter."""
    script = Path(sys.executable).with_name("loandesk")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bot.entry.cli"]


def recipe_env(*, token: str, telegram: str, exchange: str, database: str, schema: str | None, operators: str,
               http: str, markets: str | None = None, webhook_listen: str | None = None, poll: float = POLL,
               **extra: str) -> dict[str, str]:
    """The environment of one instance, as README's recipe sets it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOANDESK_", "TELEGRAM_"))}
    env.update({
        "TELEGRAM_BOT_TOKEN": token, "LOANDESK_TELEGRAM_BASE_URL": telegram, "LOANDESK_BINANCE_URL": exchange,
        "LOANDESK_DATABASE_URL": database, "LOANDESK_ADMIN_IDS": operators, "LOANDESK_MIGRATE_ON_START": "false",
        "LOANDESK_HTTP_ADDRESS": http, "LOANDESK_LOG_FORMAT": "json", "LOANDESK_PRICE_POLL_SECONDS": str(poll),
    })
    if schema:
        env["LOANDESK_DATABASE_SCHEMA"] = schema
    if markets:
        env["LOANDESK_MARKETS_FILE"] = markets
    if webhook_listen:
        env.update({"LOANDESK_WEBHOOK_URL": HOOK_URL, "LOANDESK_WEBHOOK_SECRET": SECRET,
                    "LOANDESK_WEBHOOK_LISTEN": webhook_listen})
    env.update(extra)
    return env


class Node:
    """One ``loandesk run`` process."""

    def __init__(self, name: str, env: dict[str, str], workdir: Path) -> None:
        self.name = name
        self.env = env
        self.port = int(env["LOANDESK_HTTP_ADDRESS"].rsplit(":", 1)[1])
        self.log_path = workdir / f"{name}.log"
        self.hook_port = int(env["LOANDESK_WEBHOOK_LISTEN"].rsplit(":", 1)[1]) if "LOANDESK_WEBHOOK_LISTEN" in env \
            else None
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def start(self) -> Node:
        log = self.log_path.open("ab")
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen([*loandesk(), "run"], env=self.env, cwd=self.workdir, stdout=log,
                                     stderr=subprocess.STDOUT)
        log.close()
        return self

    @property
    def hook(self) -> str:
        return f"http://127.0.0.1:{self.hook_port}/tg/hook"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> float:
        """kill -9; returns the monotonic time of the kill."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        at = time.monotonic()
        self.proc.wait(10)
        return at

    def terminate(self, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return int(r.status), r.read()
        except urllib.error.HTTPError as e:
            return int(e.code), e.read()

    def health(self) -> dict[str, Any] | None:
        try:
            return dict(json.loads(self.get("/healthz")[1]))
        except (OSError, ValueError):
            return None

    def metrics(self) -> dict[str, float]:
        """``name{label="v"}`` → value, every sample of /metrics."""
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(self.get("/metrics")[1].decode()):
            for sample in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
        return out

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def wait(condition: Callable[[], Any], timeout: float = 20, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} not met within {timeout}s"
        time.sleep(0.05)


class Cluster:
    """The fakes, one database (a PostgreSQL schema or a SQLite file) and the nodes on it."""

    def __init__(self, tg: FakeTelegram, exchange: FakeExchange, workdir: Path, database: str,
                 schema: str | None) -> None:
        self.tg = tg
        self.exchange = exchange
        self.workdir = workdir
        self.database = database
        self.schema = schema
        self.nodes: list[Node] = []
        # a jump (or a cold start) is confirmed after 1 s of polls instead of the default 10 s
        self.markets = workdir / "markets.toml"
        self.markets.write_text(SHIPPED.read_text().replace("price_confirm_seconds = 10", "price_confirm_seconds = 1"))
        self.catalog = load_catalog(self.markets)
        tg.add_user(OPERATOR)

    def env(self, webhook: bool = False, **extra: str) -> dict[str, str]:
        return recipe_env(token=TOKEN, telegram=self.tg.base_url, exchange=self.exchange.url,
                          database=self.database, schema=self.schema, operators=str(OPERATOR),
                          http=f"127.0.0.1:{free_port()}", markets=str(self.markets),
                          webhook_listen=f"127.0.0.1:{free_port()}" if webhook else None, **extra)

    def upgrade(self) -> str:
        """``loandesk db upgrade`` with the recipe's environment."""
        done = subprocess.run([*loandesk(), "db", "upgrade"], env=self.env(), cwd=self.workdir, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def node(self, name: str, webhook: bool = False, **extra: str) -> Node:
        n = Node(name, self.env(webhook, **extra), self.workdir)
        self.nodes.append(n)
        return n

    def store(self) -> StateStore:
        return StateStore(self.database, schema=self.schema, migrate=False)

    def borrow(self, owner: int, amount: str, qty: str = "1") -> int:
        store = self.store()
        try:
            with store.unit_of_work() as uow:
                desk = Desk(self.catalog, uow.domain_book)
                now = datetime.now(UTC)
                desk.deposit(str(owner), "BTC", Decimal(qty), now)
                request = BorrowRequest(str(owner), "USDT", Decimal(amount), {"BTC": Decimal(qty)})
                p, _ = borrow(desk, request, {"USDT": Decimal(1), "BTC": Decimal(50000)}, now)
                uow.commit()
                self.tg.add_user(owner)
                return p.id
        finally:
            store.close()

    def liquidations_by_position(self) -> dict[int, int]:
        store = self.store()
        try:
            with store.unit_of_work() as uow:
                rows = uow.session.execute(select(journal_entries.c.position, func.count())
                                           .where(journal_entries.c.kind == "liquidation")
                                           .group_by(journal_entries.c.position)).all()
                return {int(p): int(n) for p, n in rows}
        finally:
            store.close()

    def ledger_problems(self) -> list[str]:
        store = self.store()
        try:
            with store.unit_of_work() as uow:
                book = uow.book
                now = datetime.now(UTC)
                desk = Desk(self.catalog, uow.domain_book)
                return ledger_problems(desk, book.all_balances(), book.all_earn_shares(), book.all_positions(), now)
        finally:
            store.close()

    def leader(self, among: list[Node] | None = None) -> Node | None:
        leaders = [n for n in (among or self.nodes) if n.alive() and (n.health() or {}).get("leader")]
        assert len(leaders) <= 1, f"two leaders: {[n.name for n in leaders]}"
        return leaders[0] if leaders else None

    def stop_all(self) -> None:
        for n in self.nodes:
            if n.alive():
                try:
                    n.terminate(30)
                except subprocess.TimeoutExpired:
                    n.kill()

    def pushes(self, chat_id: int, word: str, since: float = 0.0) -> list[dict[str, Any]]:
        return [r for r in self.tg.sent if r["chat_id"] == chat_id and r["method"] == "sendMessage"
                and word in (r["plain"] or "") and r["time"] >= since]

    def conflicts(self) -> list[dict[str, Any]]:
        return [r for r in self.tg.requests if r["status"] == 409]
