"""Logs an operator can read, and a token that never shows (issue 15 item 13).

One line per event (a traceback folded into it), optional JSON, APScheduler's per-run lines silenced, and every
secret scrubbed from every record. ``loandesk run`` with a token Telegram refuses (401) or at a Bot API address
that answers 404 prints one clean sentence and exits 1: the captured output is grepped for the token.
"""

from __future__ import annotations

import io
import json
import logging
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.ops import logs
from bot.ops.incidents import Incidents
from bot.settings import Settings
from tests.fakes.telegram import FakeTelegram
from tests.ops.cluster import TOKEN, loandesk, recipe_env

SECRET = TOKEN.split(":", 1)[1]


def everything_with_the_token() -> None:
    log = logging.getLogger("telegram.ext.Updater")
    log.warning("POST https://api.telegram.org/bot%s/getUpdates failed", TOKEN)
    log.error("The token `%s` was rejected by the server.", TOKEN)
    try:
        raise RuntimeError(f"Invalid token {TOKEN} in https://api.telegram.org/bot{TOKEN}/getMe")
    except RuntimeError:
        log.exception("start-up failed")
    logging.getLogger("httpx").warning("HTTP Request: POST http://x/bot987654:%s/getMe", "Z" * 35)  # any token


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_no_log_line_shows_the_token_and_each_event_is_one_line(captured: io.StringIO, fmt: str) -> None:
    logs.configure("INFO", fmt, [TOKEN], stream=captured)
    everything_with_the_token()
    out = captured.getvalue()
    assert TOKEN not in out and SECRET not in out and "Z" * 35 not in out
    lines = out.splitlines()
    assert len(lines) == 4 and all("[secret]" in line for line in lines)
    assert "Traceback" in lines[2] and "RuntimeError" in lines[2]  # the traceback, folded into its line
    if fmt == "json":
        events = [json.loads(line) for line in lines]
        assert [e["level"] for e in events] == ["WARNING", "ERROR", "ERROR", "WARNING"]
        assert "exc" in events[2] and events[2]["msg"] == "start-up failed"


def test_apscheduler_runs_are_not_logged_but_a_failed_job_is_reported_once(captured: io.StringIO) -> None:
    logs.configure("INFO", "text", [], stream=captured)
    logging.getLogger("apscheduler.executors.default").info('Running job "Monitor.deliver" (scheduled at …)')
    logging.getLogger("apscheduler.executors.default").info('Job "Monitor.deliver" executed successfully')
    try:
        raise ValueError("boom")
    except ValueError as exc:
        logging.getLogger("apscheduler.executors.default").exception('Job "Monitor.poll" raised an exception')
        error_id = Incidents([]).report("job poll", exc)
    lines = captured.getvalue().splitlines()
    assert len(lines) == 1 and error_id in lines[0] and "job poll failed: ValueError" in lines[0]


def test_webhook_settings_are_checked() -> None:
    with pytest.raises(ValidationError, match="LOANDESK_WEBHOOK_SECRET"):
        Settings(LOANDESK_WEBHOOK_URL="https://bot.example/hook")
    with pytest.raises(ValidationError, match="host:port"):
        Settings(LOANDESK_HTTP_ADDRESS="9000")
    with pytest.raises(ValidationError, match="A-Z"):
        Settings(LOANDESK_WEBHOOK_URL="https://bot.example/hook", LOANDESK_WEBHOOK_SECRET="no spaces")
    s = Settings(LOANDESK_WEBHOOK_URL="https://bot.example/hook", LOANDESK_WEBHOOK_SECRET="ok_1-2",
                 TELEGRAM_BOT_TOKEN=TOKEN, LOANDESK_LOG_LEVEL="debug", LOANDESK_LOG_FORMAT="JSON")
    assert s.secrets() == [TOKEN, "ok_1-2"] and s.log_level == "DEBUG" and s.log_format == "json"


def start_with(tmp_path: Path, base_url: str) -> subprocess.CompletedProcess[str]:
    env = recipe_env(token=TOKEN, telegram=base_url, exchange="http://127.0.0.1:9", operators="1",
                     database=f"sqlite:///{tmp_path / 'd.db'}", schema=None, http="",
                     LOANDESK_MIGRATE_ON_START="true", LOANDESK_LOG_FORMAT="text", LOANDESK_LOG_LEVEL="DEBUG")
    return subprocess.run([*loandesk(), "run"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("answer", [401, 404])
def test_a_refused_token_at_start_up_is_one_clean_sentence_without_the_token(tmp_path: Path, answer: int) -> None:
    with FakeTelegram(token="999:the-right-one") as tg:  # any other token: 401 Unauthorized
        base = tg.base_url if answer == 401 else f"http://127.0.0.1:{tg.port}/nothing-here/bot"  # 404
        done = start_with(tmp_path, base)
        refused = [r["status"] for r in tg.requests]  # (the fake logs only requests to its /bot<token>/ paths)
    assert done.returncode == 2  # a setting to fix
    assert set(refused) == ({401} if answer == 401 else set())
    output = done.stdout + done.stderr
    assert TOKEN not in output and SECRET not in output  # even at DEBUG, PTB's request URLs included
    assert ("loandesk run: Telegram refused the token in TELEGRAM_BOT_TOKEN; copy it again from @BotFather"
            in done.stderr)
    assert "Traceback" not in output
