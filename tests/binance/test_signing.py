"""Signing exactly as Binance documents it: the published HMAC vectors, the payload's order and encoding, Ed25519."""

from __future__ import annotations

import base64
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, load_pem_public_key

from bot.binance.signing import (
    Ed25519Signer,
    HmacSigner,
    ParamValue,
    Secret,
    encode_payload,
    generate_ed25519,
    signed_payload,
    signed_query,
)

# Binance spot REST docs, "SIGNED Endpoint Examples for POST /api/v3/order" → "HMAC Keys".
DOC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
DOC_PARAMS: list[tuple[str, ParamValue]] = [
    ("symbol", "LTCBTC"), ("side", "BUY"), ("type", "LIMIT"), ("timeInForce", "GTC"), ("quantity", 1),
    ("price", Decimal("0.1")),
]
DOC_PAYLOAD = ("symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000"
               "&timestamp=1499827319559")
DOC_SIGNATURE = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"


def test_the_documented_hmac_vector_signs_to_the_documented_signature() -> None:
    assert HmacSigner(DOC_SECRET).sign(DOC_PAYLOAD) == DOC_SIGNATURE


def test_the_payload_is_the_params_in_order_then_recv_window_then_timestamp() -> None:
    assert signed_payload(DOC_PARAMS, timestamp_ms=1499827319559, recv_window_ms=5000) == DOC_PAYLOAD
    query = signed_query(DOC_PARAMS, HmacSigner(DOC_SECRET), timestamp_ms=1499827319559)
    assert query == f"{DOC_PAYLOAD}&signature={DOC_SIGNATURE}"


def test_a_non_ascii_value_is_percent_encoded_before_signing_as_in_the_docs() -> None:
    params = [("symbol", "１２３４５６"), *DOC_PARAMS[1:]]
    payload = signed_payload(params, timestamp_ms=1499827319559)
    assert payload.startswith("symbol=%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95%EF%BC%96&side=BUY")
    assert HmacSigner(DOC_SECRET).sign(payload) == "e1353ec6b14d888f1164ae9af8228a3dbd508bc82eb867db8ab6046442f33ef3"


def test_optional_params_left_as_none_are_not_sent_and_booleans_are_lower_case() -> None:
    payload = encode_payload([("loanCoin", None), ("isFlexibleRate", True), ("limit", 10)])
    assert payload == "isFlexibleRate=true&limit=10"


def test_floats_are_refused_as_parameters() -> None:
    with pytest.raises(TypeError):
        encode_payload([("amount", 0.1)])  # type: ignore[list-item]


def test_recv_window_must_be_within_binances_60_seconds() -> None:
    with pytest.raises(ValueError):
        signed_payload([], timestamp_ms=1, recv_window_ms=60_001)


def test_ed25519_signs_the_ascii_payload_in_base64_verifiable_with_the_public_pem() -> None:
    pair = generate_ed25519()
    assert pair.private_key_pem.reveal().startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8
    assert pair.public_key_pem.startswith("-----BEGIN PUBLIC KEY-----")
    signer = Ed25519Signer(pair.private_key_pem)
    signature = signer.sign(DOC_PAYLOAD)
    public = load_pem_public_key(pair.public_key_pem.encode())
    assert isinstance(public, Ed25519PublicKey)
    public.verify(base64.b64decode(signature), DOC_PAYLOAD.encode("ascii"))  # raises if wrong
    assert len(base64.b64decode(signature)) == 64
    assert signer.public_key_pem() == pair.public_key_pem


def test_an_ed25519_signature_is_percent_encoded_in_the_query() -> None:
    signer = Ed25519Signer(generate_ed25519().private_key_pem)
    raw = signer.sign(signed_payload([], timestamp_ms=1))
    query = signed_query([], signer, timestamp_ms=1)
    encoded = raw.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
    assert query == f"recvWindow=5000&timestamp=1&signature={encoded}"


def test_a_key_that_is_not_ed25519_is_refused_without_quoting_it() -> None:
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    with pytest.raises(ValueError, match="not an Ed25519 key"):
        Ed25519Signer(pem)
    with pytest.raises(ValueError) as caught:
        Ed25519Signer("-----BEGIN PRIVATE KEY-----\nnot-a-key\n-----END PRIVATE KEY-----\n")
    assert "not-a-key" not in str(caught.value)


def test_secrets_never_show_themselves() -> None:
    secret = Secret("hunter2-hunter2")
    shown = [repr(secret), str(secret), f"{secret}", f"{secret!r}", repr([secret]),
             repr(HmacSigner(secret)), repr(Ed25519Signer(generate_ed25519().private_key_pem))]
    assert all("hunter2" not in text for text in shown)
    assert str(secret) == "'***'"
    assert secret == Secret("hunter2-hunter2") and secret != Secret("other")
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(secret)
