"""Settings: the one validated object built from the environment (and an optional ``.env`` file).

No other module reads ``os.environ``; everything that needs configuration receives a ``Settings``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """``TELEGRAM_BOT_TOKEN`` and the ``LOANDESK_*`` variables of the README."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore",
                                      populate_by_name=True)

    telegram_bot_token: str | None = Field(default=None, alias="TELEGRAM_BOT_TOKEN")
    telegram_base_url: str | None = Field(default=None, alias="LOANDESK_TELEGRAM_BASE_URL")
    binance_url: str = Field(default="https://api.binance.com", alias="LOANDESK_BINANCE_URL")
    database_url: str = Field(default="sqlite:///loandesk.db", alias="LOANDESK_DATABASE_URL")
    admin_ids: Annotated[frozenset[int], NoDecode] = Field(default=frozenset(), alias="LOANDESK_ADMIN_IDS")
    mode: Literal["live", "demo"] = Field(default="live", alias="LOANDESK_MODE")
    price_poll_seconds: float = Field(default=10, gt=0, alias="LOANDESK_PRICE_POLL_SECONDS")
    second_price_url: str | None = Field(default=None, alias="LOANDESK_SECOND_PRICE_URL")
    markets_file: str | None = Field(default=None, alias="LOANDESK_MARKETS_FILE")

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
