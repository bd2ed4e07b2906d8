"""Settings: the one validated object built from the environment (and an optional ``.env`` file).

No other module reads ``os.environ``; everything that needs configuration receives a ``Settings``.
"""

from __future__ import annotations

import base64
import re
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """``TELEGRAM_BOT_TOKEN`` and the ``LOANDESK_*`` variables of the README."""

    # hide_input_in_errors: a bad LOANDESK_SECRET_KEY (or token) must not be echoed by the error that refuses it
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore",
                                      populate_by_name=True, hide_input_in_errors=True)

    telegram_bot_token: str | None = Field(default=None, alias="TELEGRAM_BOT_TOKEN")
    telegram_base_url: str | None = Field(default=None, alias="LOANDESK_TELEGRAM_BASE_URL")
    binance_url: str = Field(default="https://api.binance.com", alias="LOANDESK_BINANCE_URL")
    database_url: str = Field(default="sqlite:///loandesk.db", alias="LOANDESK_DATABASE_URL")
    admin_ids: Annotated[frozenset[int], NoDecode] = Field(default=frozenset(), alias="LOANDESK_ADMIN_IDS")
    mode: Literal["live", "demo"] = Field(default="live", alias="LOANDESK_MODE")
    binance_stream_url: str | None = Field(default=None, alias="LOANDESK_BINANCE_STREAM_URL")  # None: Binance's; "off"
    price_poll_seconds: float = Field(default=10, gt=0, alias="LOANDESK_PRICE_POLL_SECONDS")
    second_price_url: str | None = Field(default=None, alias="LOANDESK_SECOND_PRICE_URL")
    markets_file: str | None = Field(default=None, alias="LOANDESK_MARKETS_FILE")
    # --- running in production (issue 14): see README "Running it in production"
    database_schema: str | None = Field(default=None, alias="LOANDESK_DATABASE_SCHEMA")
    migrate_on_start: bool = Field(default=True, alias="LOANDESK_MIGRATE_ON_START")
    webhook_url: str | None = Field(default=None, alias="LOANDESK_WEBHOOK_URL")
    webhook_listen: str = Field(default="0.0.0.0:8443", alias="LOANDESK_WEBHOOK_LISTEN")
    webhook_secret: SecretStr | None = Field(default=None, alias="LOANDESK_WEBHOOK_SECRET")
    http_address: str | None = Field(default=None, alias="LOANDESK_HTTP_ADDRESS")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", alias="LOANDESK_LOG_LEVEL")
    log_format: Literal["text", "json"] = Field(default="text", alias="LOANDESK_LOG_FORMAT")
    tick_part_seconds: float = Field(default=0.05, gt=0, alias="LOANDESK_TICK_PART_SECONDS")
    leader_ttl_seconds: float = Field(default=10, ge=2, alias="LOANDESK_LEADER_TTL_SECONDS")
    shutdown_grace_seconds: float = Field(default=20, gt=0, alias="LOANDESK_SHUTDOWN_GRACE_SECONDS")
    bootstrap_retries: int = Field(default=5, ge=-1, alias="LOANDESK_BOOTSTRAP_RETRIES")
    alert_interval_seconds: float = Field(default=60, ge=0, alias="LOANDESK_ALERT_INTERVAL_SECONDS")
    # --- loans held elsewhere (issue 13, SPEC §9): see README "Tracking loans held elsewhere"
    secret_key: SecretStr | None = Field(default=None, alias="LOANDESK_SECRET_KEY")
    binance_sync_share: float = Field(default=0.5, gt=0, le=1, alias="LOANDESK_BINANCE_SYNC_SHARE")
    binance_sync_seconds: float = Field(default=60, gt=0, alias="LOANDESK_BINANCE_SYNC_SECONDS")

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _case(cls, value: object) -> object:
        """``info`` → ``INFO``, ``JSON`` → ``json``."""
        if isinstance(value, str):
            return value.strip().upper() if value.strip().lower() in ("debug", "info", "warning", "error") \
                else value.strip().lower()
        return value

    @field_validator("webhook_listen", "http_address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        """``host:port`` (``[::1]:9000`` for IPv6)."""
        if value is None or value == "":
            return None
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be host:port, e.g. 127.0.0.1:9000")
        return value

    @field_validator("secret_key")
    @classmethod
    def _fernet(cls, value: SecretStr | None) -> SecretStr | None:
        """A Fernet key: 32 random bytes, url-safe base64 (44 characters); empty means linking is off."""
        if value is None or not value.get_secret_value().strip():
            return None
        try:
            raw = base64.urlsafe_b64decode(value.get_secret_value().strip().encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            raw = b""
        if len(raw) != 32:
            raise ValueError("must be a Fernet key: 32 random bytes in url-safe base64 (python -c \"from "
                             "cryptography.fernet import Fernet; print(Fernet.generate_key().decode())\")")
        return SecretStr(value.get_secret_value().strip())

    @field_validator("webhook_secret")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        """Telegram's ``secret_token``: 1–256 of A–Z, a–z, 0–9, ``_`` and ``-``."""
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", value.get_secret_value()):
            raise ValueError("must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
        return value

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> Settings:
        if self.webhook_url and self.webhook_secret is None:
            raise ValueError("LOANDESK_WEBHOOK_URL needs LOANDESK_WEBHOOK_SECRET (the same on every instance)")
        return self

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        """``"1, 2,3"`` → ``{1, 2, 3}``; an empty string means no operators."""
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",") if p.strip()]
            try:
                return frozenset(int(p) for p in parts)
            except ValueError:
                raise ValueError("LOANDESK_ADMIN_IDS must be comma-separated Telegram user ids") from None
        if isinstance(value, int):
            return frozenset({value})
        return value

    @property
    def demo(self) -> bool:
        return self.mode == "demo"

    def secrets(self) -> list[str]:
        """Values no log line may show: the bot token and the webhook secret."""
        found = [self.telegram_bot_token or ""]
        if self.webhook_secret is not None:
            found.append(self.webhook_secret.get_secret_value())
        if self.secret_key is not None:
            found.append(self.secret_key.get_secret_value())
        return [s for s in found if s]


def split_address(address: str) -> tuple[str, int]:
    """``"127.0.0.1:9000"`` → ``("127.0.0.1", 9000)``; ``"[::1]:9000"`` → ``("::1", 9000)``."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)
