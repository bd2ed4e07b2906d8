"""Reading a Bot API call: the body (form, JSON or multipart) into typed parameters, and API errors.

PTB sends every call as a POST: form-encoded values are strings (nested objects such as ``reply_markup``
arrive as JSON strings), uploads are multipart, and other clients may send JSON. This module hides the
difference: :class:`Params` gives the same typed view of all three.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from email import policy
from email.parser import BytesParser
from typing import Any
from urllib.parse import parse_qsl

from tests.fakes._http import Request


class ApiError(Exception):
    """A refusal, answered as ``{"ok": false, "error_code": code, "description": ..., "parameters": ...}``."""

    def __init__(self, code: int, description: str, parameters: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.code, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(reason: str) -> ApiError:
    """400 with Telegram's "Bad Request: " prefix."""
    return ApiError(400, f"Bad Request: {reason}")


class Params:
    """The parameters of one call, whatever the body encoding; files are kept apart as bytes."""

    def __init__(
        self,
        values: dict[str, Any],
        files: dict[str, bytes],
        client_gone: Callable[[], bool] = lambda: False,
    ) -> None:
        self.values = values
        self.files = files
        self.client_gone = client_gone

    def __contains__(self, name: str) -> bool:
        return name in self.values or name in self.files

    def get_str(self, name: str) -> str | None:
        value = self.values.get(name)
        if value is None:
            return None
        return value if isinstance(value, str) else json.dumps(value)

    def get_int(self, name: str) -> int | None:
        value = self.values.get(name)
        if value is None or value == "":
            return None
        try:
            return int(value)
        except (TypeError, ValueError):
            raise bad_request(f"invalid {name} specified") from None

    def get_float(self, name: str) -> float | None:
        value = self.values.get(name)
        if value is None or value == "":
            return None
        try:
            return float(value)
        except (TypeError, ValueError):
            raise bad_request(f"invalid {name} specified") from None

    def get_bool(self, name: str) -> bool:
        value = self.values.get(name)
        if isinstance(value, str):
            return value.lower() in {"true", "1"}
        return bool(value)

    def get_json(self, name: str) -> Any:
        """A nested object: decoded from its JSON string (form/multipart) or taken as is (JSON body)."""
        value = self.values.get(name)
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except ValueError:
            raise bad_request(f"can't parse {name} JSON object") from None

    def chat_id(self) -> int:
        value = self.values.get("chat_id")
        if value is None or value == "":
            raise bad_request("chat_id is empty")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise bad_request("chat not found") from None  # "@channelname" chats are not modelled

    def file(self, name: str) -> bytes | None:
        """An uploaded file, also when referenced as ``attach://<part>``."""
        if name in self.files:
            return self.files[name]
        value = self.values.get(name)
        if isinstance(value, str) and value.startswith("attach://"):
            return self.files.get(value.removeprefix("attach://"))
        return None

    def loggable(self) -> dict[str, Any]:
        """The values, with each file replaced by ``<N bytes>``; what ``FakeTelegram.requests`` keeps."""
        logged = dict(self.values)
        logged.update({name: f"<{len(data)} bytes>" for name, data in self.files.items()})
        return logged


def _multipart(content_type: str, body: bytes) -> tuple[dict[str, Any], dict[str, bytes]]:
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    values: dict[str, Any] = {}
    files: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if part.get_filename() is not None:
            files[name] = data
        else:
            values[name] = data.decode()
    return values, files


def read_params(request: Request) -> Params:
    """Decode query string and body into :class:`Params`; a malformed body is a 400 like Telegram's."""
    values: dict[str, Any] = dict(request.query)
    files: dict[str, bytes] = {}
    content_type = request.headers.get("content-type", "")
    kind = content_type.split(";")[0].strip().lower()
    if not request.body:
        return Params(values, files, request.client_gone)
    if kind == "application/json":
        try:
            decoded = json.loads(request.body)
        except ValueError:
            raise bad_request("can't parse JSON encoded request") from None
        if not isinstance(decoded, dict):
            raise bad_request("can't parse JSON encoded request")
        values.update(decoded)
    elif kind == "multipart/form-data":
        form, files = _multipart(content_type, request.body)
        values.update(form)
    else:
        values.update(parse_qsl(request.body.decode(), keep_blank_values=True))
    return Params(values, files, request.client_gone)
