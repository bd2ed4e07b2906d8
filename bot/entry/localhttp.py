"""A very small HTTP/1.1 server on 127.0.0.1 for the console's Bot API stand-in (``bot.entry.terminal``).

It runs in the bot's own event loop and speaks just enough HTTP for python-telegram-bot's httpx client:
keep-alive connections, ``Content-Length`` or chunked bodies, form-encoded and multipart parameters (files
for ``sendPhoto``), JSON answers. Requests are ``POST /bot<token>/<method>``; everything else is 404.
Nothing here listens on any address but 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qsl

MAX_BODY = 50 * 1024 * 1024


@dataclass
class ApiCall:
    """One Bot API request: the method, its parameters as strings, and uploaded files by part name."""

    method: str
    params: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)


Handler = Callable[[ApiCall], Awaitable[tuple[int, dict[str, Any]]]]


def form(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, bytes]]:
    """Parameters and files of a form body (urlencoded, multipart/form-data or JSON)."""
    kind = content_type.split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
        params: dict[str, str] = {}
        files: dict[str, bytes] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if not isinstance(name, str) or not isinstance(payload, bytes):
                continue
            if part.get_filename() is not None:
                files[name] = payload
            else:
                params[name] = payload.decode("utf-8")
        return params, files
    if kind == "application/json":
        data = json.loads(body or b"{}")
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}, {}
    return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True)), {}


class LocalServer:
    """Serves ``handler`` on 127.0.0.1 at a free port (``port`` once ``start`` returned)."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            if task is not None:
                self._tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        line = await reader.readline()
        if not line:
            return False
        _verb, path, *_ = [*line.decode("latin-1").split(), "", ""]
        headers: dict[str, str] = {}
        while (h := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = h.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await _body(reader, headers)
        parts = path.split("?")[0].split("/")
        if len(parts) == 3 and parts[1].startswith("bot") and parts[2]:
            params, files = form(headers.get("content-type", ""), body)
            status, payload = await self.handler(ApiCall(parts[2], params, files))
        else:
            status, payload = 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        data = json.dumps(payload).encode()
        writer.write(f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
        await writer.drain()
        return headers.get("connection", "").lower() != "close"


async def _body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while (size := int((await reader.readline()).split(b";")[0].strip() or b"0", 16)) > 0:
            chunks.append(await reader.readexactly(size))
            await reader.readline()
        await reader.readline()
        return b"".join(chunks)
    length = int(headers.get("content-length", "0") or 0)
    if length > MAX_BODY:
        raise ConnectionError("body too large")
    return await reader.readexactly(length) if length else b""
