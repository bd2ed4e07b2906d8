"""What can go wrong when loandesk reads a Binance account, one exception class per thing the caller must do.

Every message is a plain sentence a person can act on. None of them carries the API secret, the private key
or a request signature: they are built from the endpoint's path (never the query string) and Binance's own
error code and message, and the client raises them ``from None`` so no chained HTTP error drags a URL along.

| class           | when                                                        | what the caller does              |
|-----------------|-------------------------------------------------------------|-----------------------------------|
| RateLimited     | HTTP 429 (or our own budget says the call would exceed it)  | wait ``retry_after`` seconds      |
| Banned          | HTTP 418: the IP kept calling after 429s                    | stop every call until ``until``   |
| KeyRejected     | -2015 revoked/restricted, -2014 bad key format, -1022 bad sig| tell the borrower once, stop     |
| ClockOutOfSync  | -1021 again right after resyncing the clock                 | retry later; check the host clock |
| Unavailable     | timeouts, refused connections, 5xx, after the retries       | retry at the next sync            |
| BinanceApiError | any other Binance error, or a body unlike the documentation | log it; the request is wrong      |
"""

from __future__ import annotations

import datetime as dt
from typing import Any


class BinanceError(Exception):
    """Base class: ``path`` is the endpoint (no query string), ``code`` Binance's error code if it sent one."""

    def __init__(self, message: str, *, path: str = "", code: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.code = code


class RateLimited(BinanceError):
    """Too much weight this minute (HTTP 429); nothing more may go to that endpoint for ``retry_after`` s."""

    def __init__(self, path: str, retry_after: float, *, local: bool = False) -> None:
        who = "our own weight budget" if local else "Binance"
        super().__init__(
            f"Binance rate limit reached on {path}: {who} says wait {retry_after:g} s before calling it again.",
            path=path,
            code=-1003,
        )
        self.retry_after = retry_after
        self.local = local  # True: refused before sending, nothing reached Binance


class Banned(BinanceError):
    """This IP is banned (HTTP 418) until ``until`` (UTC) for calling on after 429s."""

    def __init__(self, path: str, retry_after: float, until: dt.datetime, *, local: bool = False) -> None:
        super().__init__(
            f"Binance has banned this IP until {until:%Y-%m-%d %H:%M:%S} UTC ({retry_after:g} s) for calling "
            f"after rate-limit warnings; every call waits until then.",
            path=path,
            code=-1003,
        )
        self.retry_after = retry_after
        self.until = until
        self.local = local


KEY_REASONS = {
    -2015: "the API key is invalid, revoked, IP-restricted or lacks the permission for this call",
    -2014: "the API key is not in Binance's format",
    -1022: "the request signature is not valid for this key (wrong secret or wrong private key)",
}


class KeyRejected(BinanceError):
    """Binance refuses the key itself (``code`` -2015, -2014 or -1022): retrying cannot help."""

    def __init__(self, path: str, code: int) -> None:
        reason = KEY_REASONS.get(code, "Binance refused the API key")
        super().__init__(f"Binance refused the API key on {path} (code {code}): {reason}.", path=path, code=code)


class ClockOutOfSync(BinanceError):
    """-1021 even after resyncing the clock from ``/api/v3/time``."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(
            f"Binance rejected the request timestamp on {path} even after resyncing the clock: {message}",
            path=path,
            code=-1021,
        )


class Unavailable(BinanceError):
    """Binance could not be reached or kept failing (timeouts, connection errors, 5xx) after the retries."""

    def __init__(self, path: str, attempts: int, what: str) -> None:
        super().__init__(
            f"Binance is unavailable on {path}: {what} ({attempts} attempt{'s' if attempts != 1 else ''}).",
            path=path,
        )
        self.attempts = attempts


class TimestampRejected(BinanceError):
    """-1021 from Binance. The client handles it (resync the clock, retry once); callers never see it."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message, path=path, code=-1021)


class BinanceApiError(BinanceError):
    """Any other Binance error, or an answer that is not what the documentation shows."""

    def __init__(self, path: str, message: str, *, code: int | None = None, status: int | None = None) -> None:
        where = f"HTTP {status}, " if status is not None else ""
        code_text = f"code {code}, " if code is not None else ""
        super().__init__(f"Binance error on {path} ({where}{code_text}{message})", path=path, code=code)
        self.status = status


def error_for(path: str, status: int, doc: Any) -> BinanceError:
    """The exception for a non-2xx JSON answer ``{"code": …, "msg": …}`` (429 and 418 are the client's)."""
    code = doc.get("code") if isinstance(doc, dict) else None
    message = str(doc.get("msg", ""))[:200] if isinstance(doc, dict) else ""
    if code == -1021:
        return TimestampRejected(path, message)
    if code in KEY_REASONS:
        return KeyRejected(path, code)
    return BinanceApiError(path, message or "no message", code=code if isinstance(code, int) else None,
                           status=status)
