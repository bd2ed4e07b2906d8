"""Issue 13's Done-when against the fake Binance and the fake Telegram, through the real Application.

A borrower links a read-only key without sending any secret, sees their Flexible and VIP loans in /positions
with Binance's own thresholds, gets a margin-call push on the tick of a price move (beside a desk borrower on
the same tick), gets a "liquidated" push explained from the history when the fake liquidates the loan, and
/unlink leaves nothing behind; a key that can trade is refused; an HMAC secret's message is deleted; a revoked
key is told once; no secret appears in any log; the fake counts zero non-GET requests (checked by ``tw``).
"""

from __future__ import annotations

import io
import logging
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.ops import logs
from storage.tables import deliveries, journal_entries, linked_accounts, outbox, positions, tracked_positions
from tests.monitoring.conftest import ANN, BOB
from tests.tracking.conftest import ED_KEY, HMAC_KEY, HMAC_SECRET, SECRET_KEY, TrackWorld


def ms(world: TrackWorld, delta: timedelta) -> int:
    return int((world.clock() + delta).timestamp() * 1000)


def test_link_sync_margin_call_liquidated_and_unlink(tw: TrackWorld, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    desk_pid = tw.borrow(BOB, "USDT", "30000", "BTC", "1")  # a desk position on the same prices
    tw.start()
    pem = tw.public_key(ANN)
    tw.binance.add_account(ED_KEY, ed25519_public_key=pem)
    tw.binance.add_flexible_loan(ED_KEY, "USDT", "30000", "BTC", "1", "0.6")
    tw.binance.add_vip_loan(ED_KEY, 9001, "USDT", "100000", ["BTC", "ETH"], "200000", "0.5", loan_rate="0.05",
                            expiration_time=ms(tw, timedelta(days=30)), loan_term="30")
    linked = tw.say(ANN, f"/link {ED_KEY}")["plain"]
    assert "Linked: the key is read-only" in linked
    assert "Binance Flexible loan · synced 0 s ago" in linked and "Binance VIP loan" in linked
    assert "Debt: 30000 USDT" in linked and "Collateral: 1 BTC" in linked
    assert "LTV: 60.0% (lender's margin call 85.0%, liquidation 91.0%)" in linked  # Binance's own levels
    assert "Debt: 100000 USDT" in linked and "LTV: 50.0%" in linked  # VIP: Binance's currentLTV
    # interest at Binance's rate: 0.000007/hour × 8760 = 6.132% APR → 30000 × 0.06132 / 8760 = 0.21 USDT/hour
    assert "Interest: about 0.21 USDT/hour (APR 6.13%)" in linked
    flexible = tw.tracking.tracked(str(ANN))[0].id
    listing = tw.say(ANN, "/positions")
    assert "Held elsewhere" in listing["plain"] and f"#{flexible} Binance Flexible loan" in listing["plain"]

    since = len(tw.tg.sent)
    tw.binance.set_price("BTC", "35000")  # 30000 / 35000 = 85.7%: both borrowers' margin call, same tick
    call = tw.tg.wait_for(lambda r: r["chat_id"] == ANN and "🚨 Margin call" in (r["plain"] or ""), since=since)
    desk_call = tw.tg.wait_for(lambda r: r["chat_id"] == BOB and "🚨 Margin call" in (r["plain"] or ""), since=since)
    assert f"position #{flexible}" in call["plain"] and "Held on Binance. LTV 85.7%" in call["plain"]
    assert "lender's margin call 85.0%, liquidation 91.0%" in call["plain"]
    assert f"position #{desk_pid}" in desk_call["plain"]
    # one tick judged both (the same tick time on both outbox rows), one commit, one notifier pass
    ticks = {r.type: r.at for r in tw.table(outbox) if r.type in ("margin_call", "tracked_margin_call")}
    assert len(ticks) == 2 and ticks["margin_call"] == ticks["tracked_margin_call"]
    row = call["reply_markup"]["inline_keyboard"][0]
    assert [b.get("url") for b in row[:2]] == ["https://www.binance.com/en/loan"] * 2
    assert row[2]["callback_data"] == f"pv:{flexible}"
    since = len(tw.tg.sent)
    tw.tg.tap(ANN, call, f"pv:{flexible}")  # View: the position here, with where to act
    view = tw.tg.wait_for(lambda r: r["chat_id"] == ANN and r["method"] == "sendMessage", since=since)
    assert f"#{flexible} Binance Flexible loan" in view["plain"] and "loandesk only reads this loan" in view["plain"]

    since = len(tw.tg.sent)
    tw.binance.set_price("BTC", "33500")  # 30000 / 33500 = 89.6%: within 3 points of Binance's 91%
    near = tw.tg.wait_for(lambda r: r["chat_id"] == ANN and "Liquidation near" in (r["plain"] or ""), since=since)
    assert "LTV 89.6%" in near["plain"] and "loandesk cannot do it for you" in near["plain"]

    tw.binance.liquidate(ED_KEY, "USDT", "BTC", price="32000")  # 0.9375 BTC + 2% fee 0.01875 taken
    tw.sync(ANN)
    gone = tw.tg.wait_for(lambda r: r["chat_id"] == ANN and "Liquidated" in (r["plain"] or ""))
    assert "Binance liquidated this loan at 32000" in gone["plain"]
    assert "Taken: 0.95625 BTC to repay 30000 USDT, fee 0.01875 BTC included." in gone["plain"]
    assert "Returned to you: 0.04375 BTC" in gone["plain"]
    assert [t.kind.value for t in tw.tracking.tracked(str(ANN))] == ["vip"]
    # the desk never acted on the tracked loan: its ledger holds only Bob's desk loan
    count = tw.rows(lambda uow: [uow.session.execute(select(func.count()).select_from(t)).scalar_one()
                                 for t in (positions, journal_entries)])
    assert count[0] == 1 and count[1] == 2  # Bob's position; his deposit and his borrow

    unlinked = tw.say(ANN, "/unlink")["plain"]
    assert "Unlinked: the key is deleted, and 1 synced position with it." in unlinked
    assert tw.table(linked_accounts) == [] and tw.table(tracked_positions) == []
    # nor anything pushed about them: Ann's outbox rows and deliveries are gone, Bob's desk margin call stays
    assert [(r.account, r.type) for r in tw.table(outbox)] == [(str(BOB), "borrowed"), (str(BOB), "margin_call")]
    assert {r.chat_id for r in tw.table(deliveries)} == {BOB}
    text = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert text and SECRET_KEY not in text
    private_pem_body = "PRIVATE KEY"
    assert private_pem_body not in text


def test_an_hmac_key_message_is_deleted_a_trading_key_refused_then_a_read_only_one_kept(
        tw: TrackWorld, captured: io.StringIO) -> None:
    # the whole run logs as `loandesk run` does, at DEBUG (PTB then logs every update's text)
    logs.configure("DEBUG", "text", tw.settings.secrets(), stream=captured)
    tw.binance.add_account(HMAC_KEY, hmac_secret=HMAC_SECRET, enableSpotAndMarginTrading=True, enableWithdrawals=True)
    tw.start()
    answer = tw.say(ANN, f"/link {HMAC_KEY} {HMAC_SECRET}")
    deleted = [r for r in tw.tg.sent if r["method"] == "deleteMessage" and r["chat_id"] == ANN]
    assert len(deleted) == 1
    assert answer["plain"].startswith("I deleted your message with the secret.")
    assert "“Enable Withdrawals”, “Enable Spot & Margin Trading”" in answer["plain"]
    assert "Switch these off" in answer["plain"] and "Nothing was kept." in answer["plain"]
    assert tw.table(linked_accounts) == []

    tw.binance.set_permissions(HMAC_KEY, enableSpotAndMarginTrading=False, enableWithdrawals=False)
    tw.binance.add_flexible_loan(HMAC_KEY, "USDC", "500", "ETH", "1", "0.1667")
    answer = tw.say(ANN, f"/link {HMAC_KEY} {HMAC_SECRET}")
    assert "I deleted your message with the secret. Linked" in answer["plain"]
    assert "Debt: 500 USDC" in answer["plain"]
    (row,) = tw.table(linked_accounts)
    assert row.kind == "hmac" and row.state == "active"
    assert HMAC_SECRET not in row.secret and HMAC_KEY not in (row.api_key or "")  # encrypted at rest
    tw.binance.revoke(HMAC_KEY)
    tw.sync(ANN)  # a refused key: logged and pushed, without the key's secret
    tw.tg.wait_for(lambda r: r["chat_id"] == ANN and "Binance key refused" in (r["plain"] or ""))
    tw.say(ANN, "/unlink")
    tw.bots[-1].stop()
    logged = captured.getvalue()
    assert "getUpdates" in logged and f"/link {HMAC_KEY} [secret]" in logged  # the update was logged, scrubbed
    for secret in (HMAC_SECRET, SECRET_KEY, "PRIVATE KEY"):
        assert secret not in logged
    assert all(HMAC_SECRET not in (r["text"] or "") for r in tw.tg.sent)  # never repeated to the chat


def test_a_revoked_key_is_told_once_and_syncing_stops(tw: TrackWorld) -> None:
    tw.start()
    tw.binance.add_account(ED_KEY, ed25519_public_key=tw.public_key(ANN))
    tw.binance.add_flexible_loan(ED_KEY, "USDT", "1000", "BTC", "0.1", "0.2")
    assert "Linked" in tw.say(ANN, f"/link {ED_KEY}")["plain"]
    tw.binance.revoke(ED_KEY)
    tw.sync(ANN)
    told = tw.tg.wait_for(lambda r: r["chat_id"] == ANN and "Binance key refused" in (r["plain"] or ""))
    assert "I stopped syncing" in told["plain"]
    hits = tw.binance.owned_hits()
    tw.sync(ANN)  # the job would not even pick it (state revoked); a forced sync tells no one again
    tw.clock.advance(hours=2)  # past the hourly sync: the scheduler's job skips a revoked link
    tw.polls(3)
    assert len(tw.pushes(ANN, "Binance key refused")) == 1
    assert tw.binance.owned_hits() == hits + 1  # only the forced one went out, and was refused
    (row,) = tw.table(linked_accounts)
    assert row.state == "revoked"


def test_the_scheduler_syncs_a_linked_account_when_it_is_due(tw: TrackWorld) -> None:
    tw.start()
    tw.binance.add_account(ED_KEY, ed25519_public_key=tw.public_key(ANN))
    tw.binance.add_flexible_loan(ED_KEY, "USDT", "1000", "BTC", "0.1", "0.2")
    assert "Linked" in tw.say(ANN, f"/link {ED_KEY}")["plain"]
    tw.binance.add_flexible_loan(ED_KEY, "USDT", "1000", "BTC", "0.15", "0.1333")  # collateral added there
    tw.clock.advance(hours=1, minutes=1)  # the next sync is due
    added = tw.tg.wait_for(lambda r: r["chat_id"] == ANN and "Collateral changed" in (r["plain"] or ""), timeout=15)
    assert "Collateral added on Binance: 0.05 BTC; now 0.15 BTC." in added["plain"]


def test_linking_is_disabled_without_a_secret_key(tw: TrackWorld) -> None:
    tw.settings = tw.settings.model_copy(update={"secret_key": None})
    tw.start()
    assert "Linking Binance accounts is disabled on this desk" in tw.say(ANN, "/link")["plain"]
    assert "Linking Binance accounts is disabled on this desk" in tw.say(ANN, f"/link {ED_KEY}")["plain"]
    assert tw.table(linked_accounts) == [] and tw.binance.owned_hits() == 0


def test_a_vip_loan_gets_its_expiry_reminder_and_its_repayment_is_explained(tw: TrackWorld) -> None:
    tw.start()
    tw.binance.add_account(ED_KEY, ed25519_public_key=tw.public_key(ANN))
    # 100,000 USDT against BTC and ETH worth 200,000 after haircut, expiring in 20 hours
    tw.binance.add_vip_loan(ED_KEY, 9001, "USDT", "100000", ["BTC", "ETH"], "200000", "0.5", loan_rate="0.05",
                            expiration_time=ms(tw, timedelta(hours=20)), loan_term="30")
    linked = tw.say(ANN, f"/link {ED_KEY}")["plain"]
    # the value split evenly over the coins at this sync's prices: 100,000 / 50,000 BTC and 100,000 / 3,000 ETH
    assert "Collateral: 2 BTC + 33.33333333 ETH (value after haircut, split over the coins)" in linked
    reminder = tw.tg.wait_for(lambda r: r["chat_id"] == ANN and "VIP loan expiry" in (r["plain"] or ""))
    assert "Debt 100000 USDT" in reminder["plain"] and "(24 h)" in reminder["plain"]
    tw.binance.repay_vip(ED_KEY, 9001)
    tw.sync(ANN)
    repaid = tw.tg.wait_for(lambda r: r["chat_id"] == ANN and "✅ Repaid" in (r["plain"] or ""))
    assert "Repaid on Binance: 100000 USDT. It is no longer tracked." in repaid["plain"]
    assert tw.table(tracked_positions) == []
    assert len(tw.pushes(ANN, "VIP loan expiry")) == 1
