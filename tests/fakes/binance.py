"""A fake Binance on 127.0.0.1 that is as strict as the real one: signed loan endpoints beside the public ticker.

``FakeBinance`` is a :class:`~tests.fakes.exchange.FakeExchange` (so ``/api/v3/ticker/price`` and its scripted
failures still work) that also serves ``GET /api/v3/time`` and the signed SAPI endpoints loandesk reads, from
the accounts in its books (:mod:`tests.fakes._binance_book`). Like Binance it

* refuses every non-GET request and counts it in :attr:`FakeBinance.non_get_requests`;
* checks ``X-MBX-APIKEY`` (missing: -2014; unknown or revoked: -2015), recomputes the signature from the
  query string (HMAC-SHA256 hex, case-insensitive; Ed25519 base64 over the ASCII payload; wrong: -1022),
  and refuses a timestamp older than ``recvWindow`` or more than 1 s ahead of its clock (-1021, HTTP 400);
* charges each endpoint its documented weight per IP per calendar minute, answers the total in
  ``X-SAPI-USED-IP-WEIGHT-1M`` (``X-MBX-USED-WEIGHT-1M`` for ``/api/*``), answers 429 + ``Retry-After`` past the
  limit (12,000 per SAPI endpoint, configurable), and 418 (an IP ban, on every path) to a client that keeps
  calling after ``ban_after`` 429s. The spot docs describe that escalation; one Binance page ("Rate limits"
  for CAAS) says ``/sapi/*`` answers 429 only and never 418, so ``ban_after=None`` switches it off;
* answers the documented JSON of each endpoint, with ``rows``/``total`` and ``current``/``limit`` paging.

Its clock is the real one plus an offset a test can :meth:`~FakeBinance.advance` (to make a client's clock
stale, or to start the next weight minute).

The weights below are written out again on purpose rather than imported from ``bot.binance``: a wrong weight
in the client must disagree with the fake, not agree with itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from tests.fakes._binance_book import BinanceBook, FakeAccount
from tests.fakes._binance_routes import ROUTES, Route, RouteError
from tests.fakes._http import Request, Response
from tests.fakes.exchange import FakeExchange

TIME_PATH = "/api/v3/time"
API_LIMIT = 6_000
SAPI_LIMIT = 12_000
MAX_RECV_WINDOW = 60_000


@dataclass(frozen=True)
class Call:
    """One request to a path the fake owns, as it was answered."""

    method: str
    path: str
    api_key: str | None
    status: int
    code: int | None


def _error(status: int, code: int, msg: str) -> Response:
    return Response.json(status, {"code": code, "msg": msg})


def _payload(request: Request) -> str:
    """The signed payload: the query string as received, minus ``signature``.

    ``_http.Request`` keeps only the decoded pairs, so unless it grows a ``raw_query`` the string is rebuilt by
    percent-encoding each pair the way Binance's docs do (UTF-8, upper-case hex). That is byte-exact for every
    request loandesk sends (names and values are ASCII letters and digits) and for the docs' non-ASCII example.
    """
    raw = getattr(request, "raw_query", None)
    if isinstance(raw, str):
        return "&".join(part for part in raw.split("&") if not part.startswith("signature="))
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in request.query if k != "signature")


def _signature_ok(account: FakeAccount, payload: str, signature: str) -> bool:
    try:
        message = payload.encode("ascii")
    except UnicodeEncodeError:
        return False  # Binance signs the percent-encoded (hence ASCII) payload only
    if account.hmac_secret is not None:
        expected = hmac.new(account.hmac_secret.encode(), message, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, signature.lower())  # HMAC signatures are case-insensitive
    assert account.ed25519_public_key is not None
    key = load_pem_public_key(account.ed25519_public_key.encode())
    if not isinstance(key, Ed25519PublicKey):
        return False
    try:
        key.verify(base64.b64decode(signature, validate=True), message)
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


class FakeBinance(BinanceBook, FakeExchange):
    """Binance's public ticker, server time and signed loan endpoints on 127.0.0.1:<port>; see the module."""

    def __init__(self, prices: Mapping[str, str | Decimal | int] | None = None, *, sapi_limit: int = SAPI_LIMIT,
                 api_limit: int = API_LIMIT, ban_after: int | None = 3, ban_seconds: int = 120) -> None:
        FakeExchange.__init__(self, prices)
        self._init_book()
        self.sapi_limit, self.api_limit = sapi_limit, api_limit
        self.ban_after, self.ban_seconds = ban_after, ban_seconds
        self.non_get_requests = 0
        self.calls: list[Call] = []  # owned paths, as answered
        self.arrivals: list[str] = []  # owned paths, as they arrive (a stalled request is here before it answers)
        self._state = threading.RLock()
        self._skew_ms = 0
        self._used: dict[str, tuple[int, int]] = {}  # pool -> (minute, weight)
        self._over: dict[str, tuple[int, int]] = {}  # pool -> (minute, 429s answered in it)
        self._banned_until_ms = 0
        self._scripted: list[tuple[str | None, Response, int | None, list[int]]] = []
        self._stall: tuple[float, int] = (0.0, 0)

    # ------------------------------------------------------------------ test controls

    def now_ms(self) -> int:
        """The fake's clock: real time plus whatever :meth:`advance` added."""
        with self._state:
            return int(time.time() * 1000) + self._skew_ms

    def advance(self, seconds: float) -> None:
        """Move the fake's clock (negative: back). Weight minutes and recvWindow checks follow it."""
        with self._state:
            self._skew_ms += round(seconds * 1000)

    def used_weight(self, path: str) -> int:
        """Weight used this minute on ``path``'s pool (a SAPI path, or any ``/api/*`` path)."""
        pool = "/api/*" if path.startswith("/api/") else path
        with self._state:
            minute, used = self._used.get(pool, (-1, 0))
            return used if minute == self.now_ms() // 60_000 else 0

    def ban(self, seconds: int) -> None:
        """Ban this IP now (every request answers 418) for ``seconds``."""
        with self._state:
            self._banned_until_ms = self.now_ms() + seconds * 1000

    def script(self, status: int, code: int | None = None, msg: str = "", *, body: Any = None, times: int = 1,
               path: str | None = None) -> None:
        """The next ``times`` signed or time requests (to ``path`` if given), once authenticated and charged,
        answer ``status`` with ``body`` as JSON, or ``{"code", "msg"}``, or (neither given) an empty body."""
        if body is not None:
            response = Response.json(status, body)
        elif code is not None:
            response = Response.json(status, {"code": code, "msg": msg})
        else:
            response = Response(status, b"")
        with self._state:
            self._scripted.append((path, response, code, [times]))

    def stall(self, seconds: float, times: int = 1) -> None:
        """The next ``times`` requests to owned paths wait ``seconds`` before answering (client timeouts)."""
        with self._state:
            self._stall = (seconds, times)

    def owned_hits(self, path: str | None = None) -> int:
        """GET requests that reached the fake's own endpoints (``path`` only, if given), whatever the answer."""
        with self._state:
            return sum(1 for p in self.arrivals if path is None or p == path)

    # ------------------------------------------------------------------ serving

    def handle(self, request: Request) -> Response:
        if request.method != "GET":
            with self._state:
                self.non_get_requests += 1
                self.calls.append(Call(request.method, request.path, request.headers.get("x-mbx-apikey"), 405, -1000))
            return _error(405, -1000, f"{request.method} is refused: this fake Binance answers GET only.")
        route = ROUTES.get(request.path)
        owned = route is not None or request.path == TIME_PATH
        with self._state:
            if owned:
                self.arrivals.append(request.path)
            banned_ms = self._banned_until_ms - self.now_ms()
        if banned_ms > 0:  # an IP ban covers every path, the ticker's too
            return self._banned(request, banned_ms)
        if not owned:
            return super().handle(request)  # the ticker, and the ticker's 404s
        with self._state:
            seconds, times = self._stall
            if times > 0:
                self._stall = (seconds, times - 1)
        if times > 0:
            self.closing.wait(seconds)  # close() ends the wait
        response, code = self._answer(request, route)
        with self._state:
            self.calls.append(Call("GET", request.path, request.headers.get("x-mbx-apikey"), response.status, code))
        return response

    def _banned(self, request: Request, banned_ms: int) -> Response:
        with self._state:
            self.calls.append(Call(request.method, request.path, request.headers.get("x-mbx-apikey"), 418, -1003))
        return self._ban_answer(banned_ms)

    def _ban_answer(self, banned_ms: int) -> Response:
        until = self.now_ms() + banned_ms
        return Response.json(418, {"code": -1003, "msg": f"Way too much request weight used; IP banned until {until}."},
                             headers={"Retry-After": str(math.ceil(banned_ms / 1000))})

    def _charge(self, path: str, weight: int) -> tuple[Response | None, dict[str, str]]:
        """Count ``weight`` in this minute, or answer 429 (418 after ``ban_after`` of them)."""
        api = path.startswith("/api/")
        pool, limit = ("/api/*", self.api_limit) if api else (path, self.sapi_limit)
        header = "X-MBX-USED-WEIGHT-1M" if api else "X-SAPI-USED-IP-WEIGHT-1M"
        with self._state:
            now = self.now_ms()
            minute = now // 60_000
            used = self._used[pool][1] if self._used.get(pool, (-1, 0))[0] == minute else 0
            if used + weight > limit:
                over = self._over[pool][1] + 1 if self._over.get(pool, (-1, 0))[0] == minute else 1
                self._over[pool] = (minute, over)
                if self.ban_after is not None and over > self.ban_after:
                    self._banned_until_ms = now + self.ban_seconds * 1000
                    return self._ban_answer(self.ban_seconds * 1000), {}
                retry = math.ceil(((minute + 1) * 60_000 - now) / 1000)
                msg = f"Too much request weight used; current limit is {limit} request weight per 1 MINUTE."
                return Response.json(429, {"code": -1003, "msg": msg},
                                     headers={"Retry-After": str(retry), header: str(used)}), {}
            self._used[pool] = (minute, used + weight)
            return None, {header: str(used + weight)}

    def _scripted_answer(self, path: str) -> tuple[Response | None, int | None]:
        with self._state:
            for entry in self._scripted:
                target, response, code, left = entry
                if target in (None, path):
                    left[0] -= 1
                    if left[0] <= 0:
                        self._scripted.remove(entry)
                    copy = Response(response.status, response.body, response.content_type, dict(response.headers))
                    return copy, code
        return None, None

    def _answer(self, request: Request, route: Route | None) -> tuple[Response, int | None]:
        weight = 1 if route is None else route.weight
        refused, headers = self._charge(request.path, weight)
        if refused is not None:
            return refused, -1003
        response, code = self._authorised(request, route) if route is not None else (None, None)
        if response is None:
            response, code = self._scripted_answer(request.path)
        if response is None:
            try:
                body = {"serverTime": self.now_ms()} if route is None else self._serve(request, route)
                response = Response.json(200, body)
            except RouteError as exc:
                response, code = _error(400, exc.code, exc.msg), exc.code
        response.headers.update(headers)
        return response, code

    def _authorised(self, request: Request, route: Route) -> tuple[Response | None, int | None]:
        """``None`` when the key, the signature and the timestamp are good; else Binance's refusal."""
        api_key = request.headers.get("x-mbx-apikey", "")
        if not api_key:
            return _error(401, -2014, "API-key format invalid."), -2014
        with self._book_lock:
            account = self.accounts.get(api_key)
            if account is None or account.revoked:
                return _error(401, -2015, "Invalid API-key, IP, or permissions for action."), -2015
            params = dict(request.query)
            signatures = [v for k, v in request.query if k == "signature"]
            for name, values in (("timestamp", [v for k, v in request.query if k == "timestamp"]),
                                 ("signature", signatures)):
                if len(values) != 1 or not values[0]:
                    msg = f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
                    return _error(400, -1102, msg), -1102
            if not _signature_ok(account, _payload(request), signatures[0]):
                return _error(400, -1022, "Signature for this request is not valid."), -1022
            refused, code = self._timing(params)
            if refused is not None:
                return refused, code
            if route.needs_reading and account.permissions.get("enableReading") is not True:
                return _error(401, -2015, "Invalid API-key, IP, or permissions for action."), -2015
        return None, None

    def _timing(self, params: Mapping[str, str]) -> tuple[Response | None, int | None]:
        """Binance's rule: ``timestamp < serverTime + 1000`` and ``serverTime - timestamp <= recvWindow``."""
        try:
            timestamp = int(params["timestamp"])
            window = int(params.get("recvWindow", "5000"))
        except ValueError:
            return _error(400, -1100, "Illegal characters found in a parameter."), -1100
        if not 0 < window <= MAX_RECV_WINDOW:
            return _error(400, -1131, "recvWindow must be less than 60000"), -1131
        now = self.now_ms()
        if timestamp >= now + 1000:
            return _error(400, -1021, "Timestamp for this request was 1000ms ahead of the server's time."), -1021
        if now - timestamp > window:
            return _error(400, -1021, "Timestamp for this request is outside of the recvWindow."), -1021
        return None, None

    def _serve(self, request: Request, route: Route) -> Any:
        with self._book_lock:
            account = self.accounts[request.headers["x-mbx-apikey"]]
            return route.answer(account, request.query, self.now_ms())

