"""``LOANDESK_SECRET_KEY``: a Fernet key or nothing; a bad one is refused without being echoed; logs scrub it."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from bot.ops.logs import Scrubber
from bot.settings import Settings


def test_a_fernet_key_is_kept_secret_and_scrubbed() -> None:
    key = Fernet.generate_key().decode()
    s = Settings(LOANDESK_SECRET_KEY=key)
    assert s.secret_key is not None and s.secret_key.get_secret_value() == key
    assert key not in repr(s) and key in s.secrets()
    assert key not in Scrubber(s.secrets())(f"failed with {key} in it")
    assert Settings(LOANDESK_SECRET_KEY="").secret_key is None  # empty: linking is off


def test_a_bad_key_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(LOANDESK_SECRET_KEY="not-a-fernet-key-but-secret")
    assert "must be a Fernet key" in str(refused.value)
    assert "not-a-fernet-key-but-secret" not in str(refused.value)


def test_link_secrets_are_scrubbed_from_log_lines() -> None:
    scrub = Scrubber()
    line = "Getting updates: [{'text': '/link ABCDEFGHIJKLMNOP0123 s3cr3tS3cr3tS3cr3t', 'id': 1}]"
    assert scrub(line) == "Getting updates: [{'text': '/link ABCDEFGHIJKLMNOP0123 [secret]', 'id': 1}]"
    assert scrub('{"msg": "/link@loandesk_bot KEY0123456789abcdef s3cr3tS3cr3t"}') == \
        '{"msg": "/link@loandesk_bot KEY0123456789abcdef [secret]"}'
    assert scrub("/link ABCDEFGHIJKLMNOP0123") == "/link ABCDEFGHIJKLMNOP0123"  # the API key alone is no secret
