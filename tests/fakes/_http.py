"""The HTTP plumbing shared by the fakes: a stdlib server on 127.0.0.1 in a background thread.

This module owns sockets and threads only. A fake subclasses :class:`FakeHTTPServer`, implements
:meth:`FakeHTTPServer.handle` (a plain function from :class:`Request` to :class:`Response`) and gets a
random free port, a context manager and a clean shutdown: long waits inside ``handle`` should use
:attr:`FakeHTTPServer.closing` so that ``close()`` wakes them, and ``close()`` joins every thread it
started, so pytest sees no leaked threads or sockets.
"""

from __future__ import annotations

import json
import select
import socket
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
    """The client hung up (readable with EOF); it sends nothing else after its one request."""
    try:
        readable, _, _ = select.select([connection], [], [], 0)
        return bool(readable) and connection.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


class _Server(ThreadingHTTPServer):
    # Non-daemon handler threads are tracked, so server_close() can join them.
    daemon_threads = False
    block_on_close = True

    def __init__(self, owner: FakeHTTPServer) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so no handler thread idles on a keep-alive socket.
    protocol_version = "HTTP/1.0"
    timeout = 10  # a client that connects and never sends cannot pin a thread forever
    server: _Server

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet; the fakes record requests themselves."""

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        owner = self.server.owner
        try:
            parts = urlsplit(self.path)
            request = Request(
                method=self.command,
                path=parts.path,
                query=parse_qsl(parts.query, keep_blank_values=True),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=self._read_body(),
                client_gone=lambda: _closed_by_peer(self.connection),
            )
            response = owner.handle(request)
        except Exception:  # a bug in the fake: answer 500 and make the test fail at close()
            owner.errors.append(traceback.format_exc())
            response = Response.json(500, {"ok": False, "error_code": 500, "description": "fake crashed"})
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(response.body)
        except OSError:
            pass  # the client gave up (timeout, cancelled long poll): nothing to tell it


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
        self._server.shutdown()
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
