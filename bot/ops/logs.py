"""Logs an operator can read: one line per event, a level, optional JSON, and no secret ever written.

``configure(level, fmt, secrets)`` sets up the root logger once for ``loandesk run``:

- **one line per event**: a traceback is kept, but folded into the same line (``\\n`` written as the two
  characters ``\\n``), so ``grep`` finds a whole event and log shippers never split one;
- ``fmt="json"``: ``{"ts", "level", "logger", "msg"}`` plus ``error_id`` (when the record has one) and ``exc``;
- **secrets scrubbed from every record**: the bot token (PTB writes it into request URLs and into
  ``InvalidToken``'s text), the webhook secret, ``LOANDESK_SECRET_KEY``, the secret of a ``/link <API key>
  <secret>`` message, and anything shaped like a Telegram bot token, in the message,
  its arguments and the traceback alike — the scrubbing is done on the formatted line, so no path around it;
- **quiet libraries**: APScheduler's two INFO lines per job run (the notifier runs every second: ~170,000 lines a
  day) and httpx's line per request go to WARNING; a job's exception is reported once by
  ``bot.ops.incidents`` with an id, so APScheduler's own copy of it is dropped.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from types import TracebackType
from typing import TextIO

TOKEN_SHAPE = re.compile(r"(?<!\d)\d{5,}:[A-Za-z0-9_-]{30,}")  # any Telegram bot token, configured or not
# "/link <API key> <secret>" (SPEC §9): PTB's DEBUG lines show the update's text before any handler runs
LINK_SECRET = re.compile(r"(/link(?:@\w+)?\s+\S+\s+)[^\s'\"\\]+", re.IGNORECASE)
HIDDEN = "[secret]"
QUIET = ("apscheduler.executors", "apscheduler.scheduler", "httpx", "httpcore", "tornado.access")


class Scrubber:
    """Replaces every known secret (and every token-shaped string) in a text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, HIDDEN)
        return LINK_SECRET.sub(lambda m: m.group(1) + HIDDEN, TOKEN_SHAPE.sub(HIDDEN, text))


class OneLineFormatter(logging.Formatter):
    """``2030-01-07T10:15:00.123Z WARNING loandesk.scheduler: message | Traceback …\\n …``, scrubbed."""

    def __init__(self, scrub: Scrubber) -> None:
        super().__init__()
        self.scrub = scrub

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_ts(record)} {record.levelname} {record.name}: {record.getMessage()}"
        error_id = getattr(record, "error_id", None)
        if error_id:
            line += f" [error {error_id}]"
        extra = self._exception(record)
        if extra:
            line += " | " + extra
        return self.scrub(line.replace("\r", "").replace("\n", "\\n"))

    def _exception(self, record: logging.LogRecord) -> str:
        parts = []
        if record.exc_info:
            parts.append(self.formatException(record.exc_info))
        if record.stack_info:
            parts.append(self.formatStack(record.stack_info))
        return "\n".join(parts)


class JsonFormatter(OneLineFormatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, object] = {"ts": _ts(record), "level": record.levelname, "logger": record.name,
                                    "msg": record.getMessage()}
        error_id = getattr(record, "error_id", None)
        if error_id:
            event["error_id"] = error_id
        extra = self._exception(record)
        if extra:
            event["exc"] = extra
        return self.scrub(json.dumps(event, ensure_ascii=False, default=str))


class DropJobTracebacks(logging.Filter):
    """APScheduler logs a failed job with its traceback; ``bot.ops.incidents`` reports it (with an id) instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and record.name.startswith("apscheduler"))


def _ts(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def configure(level: str = "INFO", fmt: str = "text", secrets: Iterable[str] = (),
              stream: TextIO | None = None) -> logging.Handler:
    """Route every log record through one scrubbing handler on ``stream`` (stderr); returns the handler."""
    scrub = Scrubber(secrets)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(scrub) if fmt == "json" else OneLineFormatter(scrub))
    handler.addFilter(DropJobTracebacks())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = lambda args: _log_uncaught(args.exc_type, args.exc_value, args.exc_traceback)
    return handler


def _log_uncaught(kind: type[BaseException], value: BaseException | None, tb: TracebackType | None) -> None:
    """An exception nobody caught still becomes one scrubbed log line (Python would print the raw traceback)."""
    logging.getLogger("loandesk").critical("uncaught %s", kind.__name__, exc_info=(kind, value or kind(), tb))
