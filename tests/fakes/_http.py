"""The HTTP plumbing shared by the fakes: a stdlib server on 127.0.0.1 in a background thread.

This module owns sockets and threads only. A fake subclasses :class:`FakeHTTPServer`, implements
:meth:`FakeHTTPServer.handle` (a plain function from :class:`Request` to :class:`Response`) and gets a
random free port, a context manager and a clean shutdown: long waits inside ``handle`` should use
:attr:`FakeHTTPServer.closing` so that ``close()`` wakes them, and ``close()`` joins every thread it
started, so pytest sees no leaked threads or sockets.

It speaks HTTP/1.1 with keep-alive, as the real servers do, so a client's connection pool is exercised
the way production exercises it, and it listens with a real backlog so a burst of connections queues
instead of being reset. Every method (GET, POST, PUT, DELETE, PATCH, HEAD, OPTIONS) reaches ``handle``,
which lets a fake refuse and count what the real server would refuse. One thread serves one connection;
a connection left idle is closed after ``_Handler.timeout`` seconds, and ``close()`` wakes every idle
connection at once (it shuts their read side), so neither pins a thread nor delays a shutdown.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit


@dataclass(frozen=True)
class Request:
    """One HTTP request as the fake sees it."""

    method: str
    path: str
    query: list[tuple[str, str]]
    headers: Mapping[str, str]
    body: bytes
    client_gone: Callable[[], bool] = lambda: False  # True once the client closed its connection


@dataclass
class Response:
    """What the fake answers; ``body`` is sent as is."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
        """A JSON answer (UTF-8, not ASCII-escaped, like both real servers)."""
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        return cls(status, body, headers=headers or {})


def _closed_by_peer(connection: socket.socket) -> bool:
    """The client hung up (readable with EOF); it sends nothing else while its request is being answered
    (no client of the fakes pipelines requests on a keep-alive connection)."""
    try:
        readable, _, _ = select.select([connection], [], [], 0)
        return bool(readable) and connection.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


class _Server(ThreadingHTTPServer):
    # Non-daemon handler threads are tracked, so server_close() can join them.
    daemon_threads = False
    block_on_close = True
    # The listen backlog (the stdlib's default is 5): a burst of a few hundred connects must queue, not be reset.
    request_queue_size = 1024

    def __init__(self, owner: FakeHTTPServer) -> None:
        self.owner = owner
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self.accepted = 0
        super().__init__(("127.0.0.1", 0), _Handler)

    def track(self, connection: socket.socket) -> None:
        """A handler starts serving ``connection``; when the owner is already closing, end it at once."""
        with self._lock:
            self._connections.add(connection)
            self.accepted += 1
            closing = self.owner.closing.is_set()
        if closing:
            _stop_reading(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)

    def wake_idle(self) -> None:
        """End every keep-alive connection: a handler waiting for the next request reads EOF and returns,
        one still answering writes its answer (with ``Connection: close``) and then returns."""
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            _stop_reading(connection)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up or resets is ordinary; anything else is a bug in the plumbing."""
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):
            self.owner.errors.append(traceback.format_exc())


def _stop_reading(connection: socket.socket) -> None:
    # SHUT_RD makes a blocked recv() return EOF at once (Linux), while an answer being written still goes out.
    with contextlib.suppress(OSError):
        connection.shutdown(socket.SHUT_RD)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1: connections are kept alive between requests, as by the real servers.
    protocol_version = "HTTP/1.1"
    # Seconds a connection may sit idle (or stall mid-request) before it is closed. Longer than httpx's
    # 5-second keep-alive expiry, so the client, not the server, retires idle pooled connections and never
    # sends a request on a socket the server is closing.
    timeout = 15
    # Headers and body are two writes; without TCP_NODELAY the body of a keep-alive answer can wait for a
    # delayed ACK (~40 ms).
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_OPTIONS(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet; the fakes record requests themselves."""

    def _read_body(self) -> bytes | None:
        """The request body, or None when the connection ended before all of it arrived."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                line = self.rfile.readline()
                if not line:
                    return None
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()  # the blank line after the last chunk (no trailers from our clients)
                    return b"".join(chunks)
                chunk = self.rfile.read(size)
                if len(chunk) < size:
                    return None
                chunks.append(chunk)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        return body if len(body) == length else None

    def _serve(self) -> None:
        owner = self.server.owner
        try:
            body = self._read_body()
        except (OSError, ValueError):
            body = None
        if body is None:  # the client hung up mid-request (or close() ended the connection): no one to answer
            self.close_connection = True
            return
        try:
            parts = urlsplit(self.path)
            request = Request(
                method=self.command,
                path=parts.path,
                query=parse_qsl(parts.query, keep_blank_values=True),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                client_gone=lambda: _closed_by_peer(self.connection),
            )
            response = owner.handle(request)
        except Exception:  # a bug in the fake: answer 500 and make the test fail at close()
            owner.errors.append(traceback.format_exc())
            response = Response.json(500, {"ok": False, "error_code": 500, "description": "fake crashed"})
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))  # also for HEAD: the size of a GET
            for name, value in response.headers.items():
                if name.lower() not in {"content-length", "connection"}:
                    self.send_header(name, value)
            asked_close = any(k.lower() == "connection" and v.lower() == "close" for k, v in response.headers.items())
            if self.close_connection or owner.closing.is_set() or asked_close:
                self.send_header("Connection", "close")  # also sets close_connection: this is the last answer
            elif self.request_version == "HTTP/1.0":
                self.send_header("Connection", "keep-alive")  # a 1.0 client asked for it (else it would close)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)
        except OSError:
            self.close_connection = True  # the client gave up (timeout, cancelled long poll): nothing to tell it


class FakeHTTPServer:
    """A server on 127.0.0.1:<random port> run by a daemon thread; subclasses implement ``handle``."""

    def __init__(self) -> None:
        self.closing = threading.Event()
        self.errors: list[str] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def handle(self, request: Request) -> Response:
        """Answer one request; runs on a handler thread."""
        raise NotImplementedError

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return int(self._server.server_address[1])

    @property
    def connections_accepted(self) -> int:
        """TCP connections served since start: with keep-alive, fewer than the requests."""
        return self._server.accepted if self._server is not None else 0

    def start(self) -> Self:
        """Bind a free port and serve in the background."""
        if self._server is not None:
            raise RuntimeError(f"{type(self).__name__} is already started")
        self.closing.clear()
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Wake waiting handlers, stop serving, close the socket and join every thread."""
        if self._server is None:
            return
        self.closing.set()
        self._on_closing()
        self._server.shutdown()  # no new connections from here on
        self._server.wake_idle()  # idle keep-alive connections end now, not after their timeout
        self._server.server_close()  # joins the handler threads (block_on_close)
        if self._thread is not None:
            self._thread.join()
        self._server = None
        self._thread = None

    def _on_closing(self) -> None:
        """Hook for subclasses to wake handlers that wait on their own conditions."""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
        if exc_type is None and self.errors:
            raise AssertionError(f"{type(self).__name__} crashed while answering:\n{self.errors[0]}")
