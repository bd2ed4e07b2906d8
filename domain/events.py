"""Domain events: what happened, to whom, with the numbers. The outbox and the simulator read these."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# How urgent each kind is when pushes compete for Telegram's limits (lower is sooner).
URGENCY: dict[str, int] = {
    "liquidated": 0, "shortfall": 0, "overdue": 1, "margin_call": 1, "margin_call_reminder": 1,
    "late_fee": 2, "protection": 2, "warning": 3, "price_alert": 3, "expired": 3, "auto_repaid": 3, "renewed": 3,
    "converted": 3, "margin_call_cleared": 4, "expiry_reminder": 5, "rate_changed": 6,
    "liquidations_paused": 0, "liquidations_resumed": 1, "price_missing": 1, "price_back": 2,
    # loans held elsewhere (SPEC §9)
    "tracked_liquidated": 0, "liquidation_near": 0, "tracked_margin_call": 1, "tracked_margin_call_reminder": 1,
    "link_revoked": 2, "tracked_warning": 3, "tracked_repaid": 3, "tracked_gone": 3,
    "tracked_collateral_changed": 3, "tracked_margin_call_cleared": 4, "tracked_found": 5,
    "tracked_expiry_reminder": 5, "tracked_price_alert": 3,
}
CRITICAL = frozenset({"liquidated", "shortfall", "overdue", "margin_call", "margin_call_reminder",
                      "liquidations_paused", "tracked_liquidated", "liquidation_near", "tracked_margin_call",
                      "tracked_margin_call_reminder"})


@dataclass(frozen=True)
class Event:
    """One thing that happened. ``data`` holds JSON-ready values (decimals already as strings)."""

    at: datetime
    type: str
    account: str | None = None
    position: int | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def urgency(self) -> int:
        return URGENCY.get(self.type, 9)
