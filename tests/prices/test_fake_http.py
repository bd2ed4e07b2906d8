"""The fakes' HTTP plumbing takes the load it is used for: keep-alive, a real backlog, every method, prompt close."""

from __future__ import annotations

import asyncio
import json
import select
import socket
import threading
import time
from typing import Any

import httpx

from tests.fakes._http import FakeHTTPServer, Request, Response
from tests.fakes.exchange import FakeExchange


class Echo(FakeHTTPServer):
    """Answers every request with what it saw."""

    def handle(self, request: Request) -> Response:
        return Response.json(200, {"method": request.method, "path": request.path, "body": request.body.decode()})


class Gated(FakeExchange):
    """Holds every request until ``parties`` of them are inside the server at once (or close() is called)."""

    def __init__(self, parties: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gate: threading.Barrier | None = threading.Barrier(parties, timeout=20)

    def handle(self, request: Request) -> Response:
        if self.gate is not None:
            self.gate.wait()  # raises (a 500 and a test failure) if they never are all in at once
        return super().handle(request)

    def _on_closing(self) -> None:
        if self.gate is not None:
            self.gate.abort()


def test_a_hundred_concurrent_requests_are_served_over_keep_alive_without_a_reset() -> None:
    with Gated(100, prices={"BTC": "50000"}) as ex:

        async def burst(client: httpx.AsyncClient, n: int) -> list[httpx.Response]:
            return await asyncio.gather(*(client.get(f"{ex.url}/api/v3/ticker/price") for _ in range(n)))

        async def scenario() -> tuple[list[httpx.Response], list[httpx.Response]]:
            limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
            async with httpx.AsyncClient(limits=limits, timeout=30) as client:
                first = await burst(client, 100)  # all hundred held in the server together, then answered
                ex.gate = None
                # Then a few more, one by one, on the pooled connections. (Not another concurrent hundred: httpcore's
                # pool rescans every idle connection for every waiting request, seconds of client CPU on its own.)
                again = [await client.get(f"{ex.url}/api/v3/ticker/price") for _ in range(5)]
                return first, again

        first, again = asyncio.run(scenario())
        accepted = ex.connections_accepted
    assert [r.status_code for r in first + again] == [200] * 105
    assert {r.http_version for r in first + again} == {"HTTP/1.1"}
    assert all("close" not in r.headers.get("connection", "") for r in first + again)
    assert first[0].json() == [{"symbol": "BTCUSDT", "price": "50000.00000000"}]
    assert ex.hits == 105
    assert accepted == 100  # the later requests reused the first hundred's connections


def test_a_burst_of_connects_is_queued_by_the_backlog_not_dropped() -> None:
    """With the stdlib's backlog of 5, connects beyond it lose their SYN and retry a second later."""
    with Echo() as echo:
        sockets = [socket.socket() for _ in range(200)]
        try:
            started = time.monotonic()
            for sock in sockets:  # all at once, faster than the accept loop can take them
                sock.setblocking(False)
                sock.connect_ex(("127.0.0.1", echo.port))
            pending = set(sockets)
            while pending and time.monotonic() - started < 3:
                _, writable, _ = select.select([], list(pending), [], 0.05)
                pending -= set(writable)
            elapsed = time.monotonic() - started
            errors = [sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) for sock in sockets]
        finally:
            for sock in sockets:
                sock.close()
    assert (len(pending), errors) == (0, [0] * 200)
    assert elapsed < 0.5  # a dropped SYN is retried after 1 s


def test_close_returns_promptly_with_idle_keep_alive_connections_open() -> None:
    before = set(threading.enumerate())
    ex = FakeExchange({"BTC": "1"}).start()

    async def scenario() -> float:
        limits = httpx.Limits(max_connections=20, max_keepalive_connections=20)
        async with httpx.AsyncClient(limits=limits, timeout=5) as client:
            ex.hang(0.1)
            responses = await asyncio.gather(*(client.get(f"{ex.url}/api/v3/ticker/price") for _ in range(20)))
            assert [r.status_code for r in responses] == [200] * 20
            assert ex.connections_accepted == 20  # twenty idle connections now wait in the pool
            started = time.monotonic()
            await asyncio.to_thread(ex.close)  # while the client still holds them open
            return time.monotonic() - started

    assert asyncio.run(scenario()) < 1.0  # not the 15-s idle timeout
    assert set(threading.enumerate()) == before


def test_every_method_reaches_handle_and_head_has_the_length_but_no_body() -> None:
    with Echo() as echo, httpx.Client(base_url=f"http://127.0.0.1:{echo.port}", timeout=2) as client:
        for method in ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
            response = client.request(method, "/thing", content=b"x" if method != "GET" else None)
            assert response.json() == {"method": method, "path": "/thing", "body": "" if method == "GET" else "x"}
        head = client.head("/thing")
        expected = json.dumps({"method": "HEAD", "path": "/thing", "body": ""}, separators=(",", ":"))
        assert (head.status_code, head.content, head.headers["content-length"]) == (200, b"", str(len(expected)))
        assert echo.connections_accepted == 1


def test_the_exchange_refuses_and_counts_anything_but_get() -> None:
    with FakeExchange({"BTC": "1"}) as ex, httpx.Client(base_url=ex.url, timeout=2) as client:
        statuses = [client.request(m, "/api/v3/ticker/price").status_code
                    for m in ("POST", "PUT", "DELETE", "PATCH", "HEAD", "POST")]
        assert statuses == [405] * 6
        assert client.get("/api/v3/ticker/price").status_code == 200
        assert ex.refused == {"POST": 2, "PUT": 1, "DELETE": 1, "PATCH": 1, "HEAD": 1}
        assert ex.hits == 7


def _read_response(sock: socket.socket) -> tuple[str, dict[str, str], bytes]:
    """One HTTP response off a raw socket, framed by its Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, _, rest = data.partition(b"\r\n\r\n")
    status, *lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    while len(rest) < int(headers["content-length"]):
        rest += sock.recv(4096)
    return status, headers, rest


def test_raw_keep_alive_and_connection_close_framing() -> None:
    with Echo() as echo, socket.create_connection(("127.0.0.1", echo.port), timeout=2) as sock:
        body: Any
        for n in range(3):  # three requests, one connection
            sock.sendall(f"POST /n{n} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi".encode())
            status, headers, body = _read_response(sock)
            assert status == "HTTP/1.1 200 OK" and "connection" not in headers
            assert json.loads(body) == {"method": "POST", "path": f"/n{n}", "body": "hi"}
        sock.sendall(b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, headers, body = _read_response(sock)
        assert headers["connection"] == "close" and json.loads(body)["path"] == "/last"
        assert sock.recv(1) == b""  # and the server closed it
        with socket.create_connection(("127.0.0.1", echo.port), timeout=2) as old:
            old.sendall(b"GET /old HTTP/1.0\r\n\r\n")  # HTTP/1.0 without keep-alive: one request
            status, headers, body = _read_response(old)
            assert headers["connection"] == "close" and old.recv(1) == b""
        assert echo.connections_accepted == 2
