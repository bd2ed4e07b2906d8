"""Telegram's side of a webhook, for ``FakeTelegram``: queued updates are POSTed to the bot instead of polled.

Telegram posts each update to the one URL given to ``setWebhook``; in production that URL is a load balancer in
front of several instances. The fake plays both: the test names the instances' own addresses
(``tg.webhook.targets``) and the pusher sends updates round-robin to them, one at a time, with the
``X-Telegram-Bot-Api-Secret-Token`` header of ``setWebhook``'s ``secret_token``. An update is done when an
instance answers 200; otherwise (refused connection, timeout, any other status) it goes to the next instance,
as Telegram would retry it. ``log`` records every attempt: update id, target, HTTP status (0: no connection).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.fakes.telegram import FakeTelegram

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class WebhookPusher:
    def __init__(self, tg: FakeTelegram) -> None:
        self.tg = tg
        self.targets: list[str] = []
        self.log: list[dict[str, Any]] = []
        self.secret_override: str | None = None  # send this header instead (a forged request)
        self._next = 0
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="FakeTelegram:webhook", daemon=True)
            self._thread.start()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def post(self, target: str, update: dict[str, Any], secret: str | None) -> int:
        """One POST as Telegram makes it; the HTTP status, or 0 when no answer came."""
        request = urllib.request.Request(target, data=json.dumps(update).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        if secret is not None:
            request.add_header(SECRET_HEADER, secret)
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as error:
            return int(error.code)
        except (OSError, urllib.error.URLError):
            return 0

    def _run(self) -> None:
        tg = self.tg
        while not tg.closing.is_set():
            with tg._cond:
                update = tg._next_webhook_update()
                if update is None or not self.targets:
                    tg._cond.wait(0.05)
                    continue
                hook = tg._webhook or {}
                secret = self.secret_override or hook.get("secret_token")
                target = self.targets[self._next % len(self.targets)]
                self._next += 1
            status = self.post(target, update, secret)
            with tg._cond:
                self.log.append({"update_id": update["update_id"], "target": target, "status": status,
                                 "time": time.monotonic()})
                if status == 200:
                    tg._updates = [u for u in tg._updates if u["update_id"] != update["update_id"]]
                tg._cond.notify_all()
            if status != 200:
                time.sleep(0.05)
