"""Signed requests as Binance requires them: the payload, its signature, and the secrets that make it.

Binance's rules (spot REST docs, "Request Security" → "SIGNED Endpoint Examples"):

1. the payload is the parameters as ``name=value`` pairs joined by ``&``, in the order they are sent, and the
   whole string is **percent-encoded before signing** (a non-ASCII symbol ``１２`` becomes ``%EF%BC%91%EF%BC%92``);
2. ``timestamp`` (milliseconds) is mandatory and ``recvWindow`` (≤ 60000 ms, default 5000) optional;
3. HMAC keys sign with HMAC-SHA256 over the payload, hex encoded (case-insensitive);
   Ed25519 keys sign the ASCII payload and send the signature **base64** encoded (case-sensitive);
4. the signature is appended as ``&signature=…``, itself percent-encoded (base64 has ``+``, ``/`` and ``=``).

Secrets (an HMAC secret, an Ed25519 private key PEM) only ever live inside :class:`Secret`, whose ``repr``
and ``str`` are ``'***'``, so a log line, an exception or a traceback that shows one shows nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol
from urllib.parse import quote

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

MAX_RECV_WINDOW_MS = 60_000
DEFAULT_RECV_WINDOW_MS = 5_000

ParamValue = str | int | Decimal | bool
Params = Iterable[tuple[str, ParamValue | None]]


class Secret:
    """A string that never shows itself: ``repr``, ``str`` and f-strings all give ``'***'``."""

    __slots__ = ("_value",)

    def __init__(self, value: str | Secret) -> None:
        self._value = value.reveal() if isinstance(value, Secret) else value

    def reveal(self) -> str:
        """The real value; call it only where the value is used, never to keep or print it."""
        return self._value

    def __repr__(self) -> str:
        return "'***'"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(type(self))  # equal secrets must hash alike; the hash must not leak the value

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret is not pickled; store it encrypted instead")


def _text(value: ParamValue) -> str:
    if isinstance(value, bool):  # before int: bool is an int, and Binance spells it "true"/"false"
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, float):
        raise TypeError("parameters are never floats; pass a str, int or Decimal")
    return str(value)


def encode_payload(params: Params) -> str:
    """``name=value&…`` in the given order, percent-encoded (UTF-8, nothing kept unescaped but ``A-Za-z0-9_.-~``).

    Parameters whose value is ``None`` are left out, so optional filters can be passed as they are.
    """
    return "&".join(
        f"{quote(name, safe='')}={quote(_text(value), safe='')}" for name, value in params if value is not None
    )


def signed_payload(params: Params, *, timestamp_ms: int, recv_window_ms: int = DEFAULT_RECV_WINDOW_MS) -> str:
    """The payload of a signed request: ``params``, then ``recvWindow``, then ``timestamp`` (the docs' order)."""
    if not 0 < recv_window_ms <= MAX_RECV_WINDOW_MS:
        raise ValueError(f"recvWindow must be 1..{MAX_RECV_WINDOW_MS} ms")
    return encode_payload([*params, ("recvWindow", recv_window_ms), ("timestamp", timestamp_ms)])


class Signer(Protocol):
    """Signs a percent-encoded payload; ``kind`` is ``"HMAC"`` or ``"Ed25519"``."""

    kind: str

    def sign(self, payload: str) -> str: ...


class HmacSigner:
    """An API key made by Binance: HMAC-SHA256 of the payload with the secret, hex encoded."""

    kind = "HMAC"

    def __init__(self, secret: Secret | str) -> None:
        self._secret = Secret(secret)

    def sign(self, payload: str) -> str:
        return hmac.new(self._secret.reveal().encode(), payload.encode("ascii"), hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        return "HmacSigner(secret='***')"


class Ed25519Signer:
    """A self-generated key pair: Ed25519 over the ASCII payload, base64 encoded; the private key stays here."""

    kind = "Ed25519"

    def __init__(self, private_key_pem: Secret | str) -> None:
        pem = Secret(private_key_pem)
        try:
            key = serialization.load_pem_private_key(pem.reveal().encode(), password=None)
        except (ValueError, TypeError):
            # cryptography's own message could quote the input; say only what was wrong.
            raise ValueError("not an unencrypted PEM private key") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("the private key is not an Ed25519 key")
        self._key = key

    def sign(self, payload: str) -> str:
        return base64.b64encode(self._key.sign(payload.encode("ascii"))).decode("ascii")

    def public_key_pem(self) -> str:
        """The public half, as the PEM the borrower pastes into Binance."""
        return _public_pem(self._key)

    def __repr__(self) -> str:
        return "Ed25519Signer(private_key='***')"


@dataclass(frozen=True)
class Ed25519KeyPair:
    """A fresh key pair: the private key (PKCS#8 PEM, secret) and the public key PEM to show the borrower."""

    private_key_pem: Secret
    public_key_pem: str


def _public_pem(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def generate_ed25519() -> Ed25519KeyPair:
    """A new Ed25519 key pair for Binance's "Self-generated" API key option."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    return Ed25519KeyPair(private_key_pem=Secret(private), public_key_pem=_public_pem(key))


def signed_query(params: Params, signer: Signer, *, timestamp_ms: int,
                 recv_window_ms: int = DEFAULT_RECV_WINDOW_MS) -> str:
    """The whole query string to send: the signed payload and ``&signature=`` (percent-encoded) after it."""
    payload = signed_payload(params, timestamp_ms=timestamp_ms, recv_window_ms=recv_window_ms)
    return f"{payload}&signature={quote(signer.sign(payload), safe='')}"
