"""The database schema as SQLModel tables: the journal, balances, Earn shares, accounts, market state,
positions with their collateral, VIP term sheets, the outbox and counters.

Money and accumulators use ``Money`` (exact on SQLite and PostgreSQL), times ``UtcDateTime``. The classes
define the schema (and are what Alembic compares against); ``storage.book`` reads and writes them through
the ``Table`` objects at the bottom, with SQLAlchemy Core, and maps rows to domain objects itself.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
    Text,
    text,
)
from sqlmodel import Field, SQLModel

from storage.types import Money, UtcDateTime

# BIGINT on PostgreSQL; INTEGER on SQLite, where only ``INTEGER PRIMARY KEY`` is the auto-numbered rowid.
BigId = BigInteger().with_variant(Integer(), "sqlite")

# The sweep index's key: fixed-width digit text; the "C" collation on PostgreSQL keeps comparisons byte-wise.
SweepKey = String(49).with_variant(String(49, collation="C"), "postgresql")

POSITION_COUNTER = "position_id"
# Market keys are an asset (``USDT``) or a VIP debt index (``USDT@vip:<owner>:v<version>``).
KEY_LENGTH = 200


class EntryRow(SQLModel, table=True):
    """One journal entry; its postings sum to zero per asset."""

    __tablename__ = "journal_entries"
    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True))
    at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    kind: str = Field(sa_column=Column(String(64), nullable=False))
    position: int | None = Field(default=None, sa_column=Column(Integer, nullable=True, index=True))
    memo: str = Field(default="", sa_column=Column(Text, nullable=False))


class PostingRow(SQLModel, table=True):
    __tablename__ = "postings"
    __table_args__ = (Index("ix_postings_account_asset", "account", "asset"),)
    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True))
    entry_id: int = Field(sa_column=Column(BigId, ForeignKey("journal_entries.id"), nullable=False, index=True))
    account: str = Field(sa_column=Column(String(128), nullable=False))
    asset: str = Field(sa_column=Column(String(32), nullable=False))
    amount: Decimal = Field(sa_column=Column(Money, nullable=False))


class BalanceRow(SQLModel, table=True):
    """The running sum of an account's postings in one asset, updated with every post."""

    __tablename__ = "balances"
    account: str = Field(sa_column=Column(String(128), primary_key=True))
    asset: str = Field(sa_column=Column(String(32), primary_key=True))
    amount: Decimal = Field(sa_column=Column(Money, nullable=False))


class EarnShareRow(SQLModel, table=True):
    """A borrower's Earn wallet, in shares of the asset's Earn index."""

    __tablename__ = "earn_shares"
    owner: str = Field(sa_column=Column(String(128), primary_key=True))
    asset: str = Field(sa_column=Column(String(32), primary_key=True))
    shares: Decimal = Field(sa_column=Column(Money, nullable=False))


class AccountRow(SQLModel, table=True):
    __tablename__ = "accounts"
    # the sweep reads the accounts with a personal warning level at every tick (storage.sweepindex)
    __table_args__ = (Index("ix_accounts_warning_ltv", "warning_ltv"),)
    id: str = Field(sa_column=Column(String(128), primary_key=True))
    warning_ltv: Decimal | None = Field(default=None, sa_column=Column(Money, nullable=True))


class MarketRow(SQLModel, table=True):
    """``MarketState`` of one key (asset): debt and Earn indices, their totals and accrual markers."""

    __tablename__ = "markets"
    key: str = Field(sa_column=Column(String(KEY_LENGTH), primary_key=True))
    debt_index: Decimal = Field(sa_column=Column(Money, nullable=False))
    debt_shares: Decimal = Field(sa_column=Column(Money, nullable=False))
    fixed_debt: Decimal = Field(sa_column=Column(Money, nullable=False))
    accrued_until: datetime | None = Field(default=None, sa_column=Column(UtcDateTime, nullable=True))
    earn_index: Decimal = Field(sa_column=Column(Money, nullable=False))
    earn_shares: Decimal = Field(sa_column=Column(Money, nullable=False))
    earn_accrued_until: datetime | None = Field(default=None, sa_column=Column(UtcDateTime, nullable=True))


class RatePointRow(SQLModel, table=True):
    """A market's rate history, in order (``seq``)."""

    __tablename__ = "rate_points"
    market_key: str = Field(sa_column=Column(String(KEY_LENGTH), ForeignKey("markets.key", ondelete="CASCADE"),
                                             primary_key=True))
    seq: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    effective_from: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    apr: Decimal = Field(sa_column=Column(Money, nullable=False))


class PositionRow(SQLModel, table=True):
    """A ``Position`` with its ``RiskState`` and (for fixed loans) ``FixedTerms`` flattened into columns."""

    __tablename__ = "positions"
    __table_args__ = (
        Index("ix_positions_owner", "owner"),
        Index("ix_positions_status", "status"),
        Index("ix_positions_product_status", "product", "status"),  # a tick's Fixed loans, not the whole book
        Index("ix_positions_owner_product_loan", "owner", "product", "loan_asset"),
    )
    id: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    owner: str = Field(sa_column=Column(String(128), nullable=False))
    product: str = Field(sa_column=Column(String(16), nullable=False))
    loan_asset: str = Field(sa_column=Column(String(32), nullable=False))
    opened_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    debt_shares: Decimal = Field(sa_column=Column(Money, nullable=False))
    principal: Decimal = Field(sa_column=Column(Money, nullable=False))
    status: str = Field(sa_column=Column(String(32), nullable=False))
    rate_key: str | None = Field(default=None, sa_column=Column(String(KEY_LENGTH), nullable=True))
    vip_sheet: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    closed_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime, nullable=True))
    updated_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime, nullable=True))
    # RiskState
    warned: bool = Field(sa_column=Column(Boolean, nullable=False))
    margin_call: bool = Field(sa_column=Column(Boolean, nullable=False))
    margin_call_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime, nullable=True))
    liquidation_pending_since: datetime | None = Field(default=None, sa_column=Column(UtcDateTime, nullable=True))
    # FixedTerms: all NULL for a position without fixed terms
    fixed_term_days: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    fixed_apr: Decimal | None = Field(default=None, sa_column=Column(Money, nullable=True))
    fixed_expires_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime, nullable=True))
    fixed_interest: Decimal | None = Field(default=None, sa_column=Column(Money, nullable=True))
    fixed_auto_repay: bool | None = Field(default=None, sa_column=Column(Boolean, nullable=True))
    fixed_auto_renew: bool | None = Field(default=None, sa_column=Column(Boolean, nullable=True))
    fixed_convert_to_flexible: bool | None = Field(default=None, sa_column=Column(Boolean, nullable=True))
    fixed_late_fees: Decimal | None = Field(default=None, sa_column=Column(Money, nullable=True))
    fixed_late_fee_hours: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    fixed_reminders_sent: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # JSON list


class HoldingRow(SQLModel, table=True):
    """One collateral asset of a position; ``ordinal`` keeps the position's dict order."""

    __tablename__ = "holdings"
    position_id: int = Field(sa_column=Column(Integer, ForeignKey("positions.id", ondelete="CASCADE"),
                                              primary_key=True))
    asset: str = Field(sa_column=Column(String(32), primary_key=True))
    ordinal: int = Field(sa_column=Column(Integer, nullable=False))
    spot: Decimal = Field(sa_column=Column(Money, nullable=False))
    earn_shares: Decimal = Field(sa_column=Column(Money, nullable=False))


class TermSheetRow(SQLModel, table=True):
    """A VIP term sheet, one row per (borrower, version); mappings and lists as JSON, decimals as text."""

    __tablename__ = "term_sheets"
    owner: str = Field(sa_column=Column(String(128), primary_key=True))
    version: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    loan_assets: str = Field(sa_column=Column(Text, nullable=False))  # JSON list
    rate: str = Field(sa_column=Column(String(16), nullable=False))
    apr: Decimal = Field(sa_column=Column(Money, nullable=False))
    initial_ltv: Decimal = Field(sa_column=Column(Money, nullable=False))
    margin_call_ltv: Decimal = Field(sa_column=Column(Money, nullable=False))
    liquidation_ltv: Decimal = Field(sa_column=Column(Money, nullable=False))
    collateral: str = Field(sa_column=Column(Text, nullable=False))  # JSON {asset: "ratio"}
    liquidation: str = Field(sa_column=Column(String(16), nullable=False))
    liquidation_delay_minutes: int = Field(sa_column=Column(Integer, nullable=False))
    min_order: Decimal = Field(sa_column=Column(Money, nullable=False))
    max_borrow: Decimal | None = Field(default=None, sa_column=Column(Money, nullable=True))
    max_collateral: str = Field(sa_column=Column(Text, nullable=False))  # JSON {asset: "cap"}
    warning_ltv: Decimal | None = Field(default=None, sa_column=Column(Money, nullable=True))
    issued_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime, nullable=True))
    issued_by: str | None = Field(default=None, sa_column=Column(String(128), nullable=True))


class OutboxRow(SQLModel, table=True):
    """A domain event waiting to be pushed (``sent_at`` NULL) or already delivered."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_sent_at_urgency", "sent_at", "urgency"),)
    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True))
    at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    type: str = Field(sa_column=Column(String(64), nullable=False))
    account: str | None = Field(default=None, sa_column=Column(String(128), nullable=True))
    position: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    data: str = Field(sa_column=Column(Text, nullable=False))  # JSON object
    urgency: int = Field(sa_column=Column(Integer, nullable=False))
    created_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    sent_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime, nullable=True))
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    next_attempt_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime, nullable=True))


class CounterRow(SQLModel, table=True):
    """Named counters; ``position_id`` hands out position ids (row-locked increment, never reused)."""

    __tablename__ = "counters"
    name: str = Field(sa_column=Column(String(64), primary_key=True))
    value: int = Field(sa_column=Column(BigInteger, nullable=False))


class BotPreviewRow(SQLModel, table=True):
    """A preview shown in chat with its one-time confirmation token (owned by ``bot.state``)."""

    __tablename__ = "bot_previews"
    token: str = Field(sa_column=Column(String(32), primary_key=True))
    owner: str = Field(sa_column=Column(String(64), nullable=False))
    kind: str = Field(sa_column=Column(String(32), nullable=False))
    params: str = Field(sa_column=Column(Text, nullable=False))
    created: str = Field(sa_column=Column(String(40), nullable=False))
    expires: str = Field(sa_column=Column(String(40), nullable=False))
    state: str = Field(sa_column=Column(String(16), nullable=False))


class BotDraftRow(SQLModel, table=True):
    """A guided ``/borrow`` in progress."""

    __tablename__ = "bot_drafts"
    owner: str = Field(sa_column=Column(String(64), primary_key=True))
    loan: str | None = Field(default=None, sa_column=Column(String(32), nullable=True))
    collateral: str | None = Field(default=None, sa_column=Column(String(32), nullable=True))
    amount: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    product: str | None = Field(default=None, sa_column=Column(String(16), nullable=True))  # flexible | fixed:30


class BotSeenRow(SQLModel, table=True):
    """Keys of processed updates (a redelivered update is recognised and ignored)."""

    __tablename__ = "bot_seen"
    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True))
    key: str = Field(sa_column=Column(String(96), nullable=False, unique=True))


class BotFaucetRow(SQLModel, table=True):
    """The last UTC day each demo user took from the faucet."""

    __tablename__ = "bot_faucet"
    owner: str = Field(sa_column=Column(String(64), primary_key=True))
    day: str = Field(sa_column=Column(String(10), nullable=False))


class PriceTickRow(SQLModel, table=True):
    """An accepted exchange price (quote asset USDT), kept for charts and the price guard."""

    __tablename__ = "price_ticks"
    __table_args__ = (Index("ix_price_ticks_asset_at", "asset", "at"),)
    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True))
    asset: str = Field(sa_column=Column(String(16), nullable=False))
    at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    price: Decimal = Field(sa_column=Column(Money, nullable=False))
    source: str = Field(default="", sa_column=Column(String(32), nullable=False))


class ChatRow(SQLModel, table=True):
    """A chat the bot can push to: a borrower's private chat or a group. ``active`` goes false on 403
    (blocked or kicked); ``migrated_to`` records a group that became a supergroup."""

    __tablename__ = "chats"
    chat_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    kind: str = Field(sa_column=Column(String(16), nullable=False))
    title: str | None = Field(default=None, sa_column=Column(String(256), nullable=True))
    active: bool = Field(default=True, sa_column=Column(Boolean, nullable=False))
    monitoring: bool = Field(default=False, sa_column=Column(Boolean, nullable=False))
    desk_channel: bool = Field(default=False, sa_column=Column(Boolean, nullable=False))
    migrated_to: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    updated_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))


class GroupShareRow(SQLModel, table=True):
    """A member lets a monitoring group see one position (``position_id``) or all of theirs (NULL)."""

    __tablename__ = "group_shares"
    __table_args__ = (Index("ix_group_shares_owner", "owner"),
                      Index("uq_group_shares", "chat_id", "owner", "position_id", unique=True))
    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True))
    chat_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    owner: str = Field(sa_column=Column(String(64), nullable=False))
    position_id: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    created_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))


class DeliveryRow(SQLModel, table=True):
    """One push of one outbox event to one chat: pending until Telegram accepts it, retried on failure."""

    __tablename__ = "deliveries"
    __table_args__ = (Index("uq_deliveries_event_chat", "outbox_id", "chat_id", unique=True),
                      Index("ix_deliveries_due", "status", "urgency", "next_attempt_at"))
    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True))
    outbox_id: int = Field(sa_column=Column(BigId, nullable=False))
    chat_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    urgency: int = Field(sa_column=Column(Integer, nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))  # pending | sent | dropped
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    next_attempt_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime, nullable=True))
    sent_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime, nullable=True))
    message_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    error: str | None = Field(default=None, sa_column=Column(String(256), nullable=True))


class SchedulerLockRow(SQLModel, table=True):
    """Leadership of the scheduler: one process per database acts, renewing ``expires_at``."""

    __tablename__ = "scheduler_lock"
    name: str = Field(sa_column=Column(String(64), primary_key=True))
    holder: str = Field(sa_column=Column(String(128), nullable=False))
    expires_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))


class ProtectionRow(SQLModel, table=True):
    """A borrower's auto-protection: at ``trigger`` LTV top up or repay back to ``target``, a few times a day."""

    __tablename__ = "protection_rules"
    position_id: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    owner: str = Field(sa_column=Column(String(64), nullable=False))
    trigger: Decimal = Field(sa_column=Column(Money, nullable=False))
    target: Decimal = Field(sa_column=Column(Money, nullable=False))
    mode: str = Field(sa_column=Column(String(8), nullable=False))  # topup | repay
    daily_limit: int = Field(sa_column=Column(Integer, nullable=False))
    used_day: str | None = Field(default=None, sa_column=Column(String(10), nullable=True))
    used_count: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    created_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))


class PriceAlertRow(SQLModel, table=True):
    """Warn when the collateral price comes within ``distance`` (a fraction) of the margin-call price."""

    __tablename__ = "price_alerts"
    position_id: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    owner: str = Field(sa_column=Column(String(64), nullable=False))
    distance: Decimal = Field(sa_column=Column(Money, nullable=False))
    armed: bool = Field(default=True, sa_column=Column(Boolean, nullable=False))


class AccountPrefsRow(SQLModel, table=True):
    """Opt-in pushes: rate changes of the assets one borrows, and a daily digest at ``digest_hour`` UTC."""

    __tablename__ = "account_prefs"
    owner: str = Field(sa_column=Column(String(64), primary_key=True))
    rate_changes: bool = Field(default=False, sa_column=Column(Boolean, nullable=False))
    daily_digest: bool = Field(default=False, sa_column=Column(Boolean, nullable=False))
    digest_hour: int = Field(default=8, sa_column=Column(Integer, nullable=False))
    last_digest_day: str | None = Field(default=None, sa_column=Column(String(10), nullable=True))


class SweepIndexRow(SQLModel, table=True):
    """The risk sweep's index (``domain.sweepindex``): one row per active position the sweep may look at.

    ``k = s_debt / s_coll`` as an exact 48-digit key (``domain.sweepindex.key``) that sorts numerically, used only
    to pick candidates with a safety margin; the exact check is the domain's.
    ``state`` 3 (direct) rows have no group and no ``k`` and are judged at every tick.
    """

    __tablename__ = "sweep_index"
    __table_args__ = (
        Index("ix_sweep_index_state_group_k", "state", "grp", "k"),
        # partial: only margin calls have a called_at, and a band's range query (state, grp, k) can never pick it
        Index("ix_sweep_index_called_at", "called_at", postgresql_where=text("called_at IS NOT NULL"),
              sqlite_where=text("called_at IS NOT NULL")),
        Index("ix_sweep_index_owner", "owner"),
    )
    position_id: int = Field(sa_column=Column(Integer, ForeignKey("positions.id", ondelete="CASCADE"),
                                              primary_key=True, autoincrement=False))
    owner: str = Field(sa_column=Column(String(128), nullable=False))
    state: int = Field(sa_column=Column(SmallInteger, nullable=False))
    grp: str = Field(sa_column=Column(String(80), nullable=False))
    k: str | None = Field(default=None, sa_column=Column(SweepKey, nullable=True))
    called_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime, nullable=True))


class DeskSettingRow(SQLModel, table=True):
    """Small named values the desk keeps between ticks (``Book.setting``), e.g. the circuit breaker's state."""

    __tablename__ = "desk_settings"
    key: str = Field(sa_column=Column(String(64), primary_key=True))
    value: str = Field(sa_column=Column(Text, nullable=False))
    updated_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime, nullable=True))


class TrackedPositionRow(SQLModel, table=True):
    """A loan held elsewhere (SPEC §9): by hand, or synced from a linked Binance account. Never in the ledger.

    Its id comes from the desk's position counter, so ``/position 12`` names one loan whichever lender holds it.
    ``collateral`` is a JSON object asset → amount, the amounts as strings (exact).
    """

    __tablename__ = "tracked_positions"
    __table_args__ = (Index("ix_tracked_positions_owner", "owner"),)
    id: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    owner: str = Field(sa_column=Column(String(64), nullable=False))
    lender: str = Field(sa_column=Column(String(16), nullable=False))
    kind: str = Field(sa_column=Column(String(16), nullable=False))
    ref: str = Field(default="", sa_column=Column(String(64), nullable=False))
    loan_asset: str = Field(sa_column=Column(String(32), nullable=False))
    debt: Decimal = Field(sa_column=Column(Money, nullable=False))
    debt_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    apr: Decimal = Field(sa_column=Column(Money, nullable=False))
    collateral: str = Field(sa_column=Column(Text, nullable=False))
    margin_call_ltv: Decimal = Field(sa_column=Column(Money, nullable=False))
    liquidation_ltv: Decimal = Field(sa_column=Column(Money, nullable=False))
    initial_ltv: Decimal | None = Field(default=None, sa_column=Column(Money, nullable=True))
    calibration: Decimal = Field(sa_column=Column(Money, nullable=False))
    opened_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    synced_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime, nullable=True))
    synced_ltv: Decimal | None = Field(default=None, sa_column=Column(Money, nullable=True))
    expires_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime, nullable=True))
    reminders_sent: str = Field(default="", sa_column=Column(String(64), nullable=False))
    warned: bool = Field(default=False, sa_column=Column(Boolean, nullable=False))
    margin_call: bool = Field(default=False, sa_column=Column(Boolean, nullable=False))
    margin_call_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime, nullable=True))
    near: bool = Field(default=False, sa_column=Column(Boolean, nullable=False))


class LinkedAccountRow(SQLModel, table=True):
    """A borrower's linked Binance key (one per borrower), encrypted with ``LOANDESK_SECRET_KEY`` (Fernet).

    ``state``: ``pending`` (an Ed25519 pair made by ``/link``, waiting for the API key), ``active``, ``revoked``
    (Binance refused the key: told once, no more syncs). ``secret`` is the Fernet token of the HMAC secret or of
    the Ed25519 private key PEM; ``api_key`` is encrypted too (it names the account at Binance).
    """

    __tablename__ = "linked_accounts"
    owner: str = Field(sa_column=Column(String(64), primary_key=True))
    kind: str = Field(sa_column=Column(String(16), nullable=False))
    state: str = Field(sa_column=Column(String(16), nullable=False))
    api_key: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    secret: str = Field(sa_column=Column(Text, nullable=False))
    public_key: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    synced_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime, nullable=True))
    next_sync_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime, nullable=True))
    failures: int = Field(default=0, sa_column=Column(Integer, nullable=False))


def _table(name: str) -> Table:
    return SQLModel.metadata.tables[name]


journal_entries = _table("journal_entries")
postings = _table("postings")
balances = _table("balances")
earn_shares = _table("earn_shares")
accounts = _table("accounts")
markets = _table("markets")
rate_points = _table("rate_points")
positions = _table("positions")
holdings = _table("holdings")
term_sheets = _table("term_sheets")
outbox = _table("outbox")
counters = _table("counters")
bot_previews = _table("bot_previews")
bot_drafts = _table("bot_drafts")
bot_seen = _table("bot_seen")
bot_faucet = _table("bot_faucet")
price_ticks = _table("price_ticks")
chats = _table("chats")
group_shares = _table("group_shares")
deliveries = _table("deliveries")
scheduler_lock = _table("scheduler_lock")
protection_rules = _table("protection_rules")
price_alerts = _table("price_alerts")
account_prefs = _table("account_prefs")
sweep_index = _table("sweep_index")
desk_settings = _table("desk_settings")
tracked_positions = _table("tracked_positions")
linked_accounts = _table("linked_accounts")

TABLES: tuple[Table, ...] = (journal_entries, postings, balances, earn_shares, accounts, markets, rate_points,
                             positions, holdings, term_sheets, outbox, counters, bot_previews, bot_drafts,
                             bot_seen, bot_faucet, price_ticks, chats, group_shares, deliveries, scheduler_lock,
                             protection_rules, price_alerts, account_prefs, sweep_index, desk_settings,
                             tracked_positions, linked_accounts)
