"""Answers about loans held elsewhere (SPEC §9): tracked positions, /track, /link and /unlink.

Tracked positions are marked with where they live (Binance, or manual) and, when synced, how old the sync is.
Buttons that would act link to where the borrower can act (Binance's loan pages); a manual position's lender is
unknown to us, so it gets the commands that edit it instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal

from bot.render.common import Reply, amount, e, ltv_text, price
from bot.render.pushes import BINANCE_LOANS, tracked_buttons
from bot.service.tracking_views import TrackedView
from domain.money import fmt, pct
from domain.tracking.position import Tracked

LINK_STEPS = (
    "<b>Link your Binance account (read-only)</b>\n\n"
    "I made a key pair for you; the private half never leaves me. On Binance:\n"
    "1. Profile → <b>API Management</b> → <b>Create API</b> → <b>Self-generated</b>.\n"
    "2. Paste this public key:\n<pre>{public}</pre>\n"
    "3. Edit restrictions: keep <b>Enable Reading</b> only (no trading, transfers or withdrawals: I refuse keys "
    "that could move money).\n"
    "4. Send me <code>/link &lt;API key&gt;</code> with the API key Binance shows.\n\n"
    "No secret passes through this chat. /unlink deletes the key and everything synced."
)


def age(delta: timedelta | None) -> str:
    if delta is None:
        return "never synced"
    seconds = max(int(delta.total_seconds()), 0)
    if seconds < 60:
        return f"synced {seconds} s ago"
    if seconds < 3600:
        return f"synced {seconds // 60} min ago"
    return f"synced {seconds // 3600} h {seconds % 3600 // 60} min ago"


def where(v: TrackedView) -> str:
    if v.where == "Binance":
        kind = "VIP loan" if v.kind == "vip" else "Flexible loan"
        return f"Binance {kind} · {age(v.sync_age)}"
    return "manual (held elsewhere)"


def lines(v: TrackedView) -> list[str]:
    out = [f"<b>#{v.id}</b> {e(where(v))}",
           f"Debt: {amount(v.debt, v.loan_asset, up=True)}",
           f"Collateral: {' + '.join(amount(x, a) for a, x in v.collateral.items()) or 'none'}"
           + (" (value after haircut, split over the coins)" if v.kind == "vip" else ""),
           f"LTV: {ltv_text(v.ltv)} (lender's margin call {e(pct(v.levels.margin_call))}, liquidation "
           f"{e(pct(v.levels.liquidation))})"]
    asset = v.single_collateral
    if asset is not None and v.margin_call_price is not None:
        out.append(f"Margin call at {e(asset)} {price(v.margin_call_price)} · liquidation at {e(asset)} "
                   f"{price(v.liquidation_price)}")
    if v.apr:
        out.append(f"Interest: about {amount(v.hourly_interest, v.loan_asset, up=True)}/hour "
                   f"(APR {e(fmt((v.apr * 100).quantize(Decimal('0.01'))))}%)")
    if v.expires_at is not None:
        out.append(f"Expires {e(v.expires_at.strftime('%Y-%m-%d %H:%M UTC'))}")
    return out


def section(views: Sequence[TrackedView]) -> str:
    return "<b>Held elsewhere</b> (watched, never touched by the desk)\n\n" + "\n\n".join(
        "\n".join(lines(v)) for v in views)


def position(v: TrackedView) -> Reply:
    body = lines(v)
    if v.where == "Binance":
        body.append("Add collateral or repay on Binance: loandesk only reads this loan.")
    else:
        body.append(f"Edit: /track #{v.id} debt &lt;amount&gt; · /track #{v.id} collateral &lt;amount&gt; · "
                    f"/untrack #{v.id}")
    return Reply("\n".join(body), tracked_buttons(v.id, v.where, v.kind))


def tracked(v: TrackedView, verb: str = "Tracking") -> Reply:
    return Reply(f"{e(verb)} #{v.id}. I warn you at the lender's levels; the desk never touches it.\n\n"
                 + "\n".join(lines(v)))


def act_there(t: Tracked) -> str:
    """Why a desk action on a tracked position is refused, and where to act (a plain sentence)."""
    if t.where == "Binance":
        return (f"#{t.id} is held on Binance: add collateral or repay it there ({BINANCE_LOANS}); loandesk only "
                "reads it")
    return (f"#{t.id} is held at another lender: act there, then tell me with /track #{t.id} debt <amount> or "
            f"/track #{t.id} collateral <amount>")


def untracked(t: Tracked) -> Reply:
    return Reply(f"Stopped tracking #{t.id} ({e(t.loan_asset)} loan held elsewhere). Nothing else changed.")


def link_steps(public_key: str) -> Reply:
    return Reply(LINK_STEPS.format(public=e(public_key.strip())))


def linked(views: Sequence[TrackedView], kind: str) -> Reply:
    head = "Linked: the key is read-only, and I keep it encrypted."
    if kind == "hmac":
        head = ("I deleted your message with the secret. " + head
                + " Next time prefer /link alone: I make a key pair and no secret passes through the chat.")
    if not views:
        return Reply(e(head) + "\n\nNo ongoing Flexible or VIP loans on this account yet; I check again regularly.")
    return Reply(e(head) + "\n\n" + section(views))


def refused(message: str, hmac: bool = False) -> Reply:
    lead = "I deleted your message with the secret. " if hmac else ""
    return Reply(e(lead + message + " Nothing was kept."))


def unlinked(had: bool, gone: int) -> Reply:
    if not had and not gone:
        return Reply("No Binance account is linked.")
    return Reply(f"Unlinked: the key is deleted, and {gone} synced position{'s' if gone != 1 else ''} with it. "
                 "Manual positions (/track) stay.")
