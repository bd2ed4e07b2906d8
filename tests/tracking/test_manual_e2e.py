"""Manual tracking end to end (SPEC §9): /track, hourly interest at the given APR, edits, a margin-call push at
the lender's level through the desk's own tick, /untrack; bad input changes nothing; only the owner edits."""

from __future__ import annotations

from sqlalchemy import func, select

from storage.tables import journal_entries, positions, price_alerts, tracked_positions
from tests.monitoring.conftest import ANN, BOB, GROUP
from tests.tracking.conftest import TrackWorld


def tracked_rows(tw: TrackWorld) -> int:
    return int(tw.rows(lambda uow: uow.session.execute(select(func.count()).select_from(tracked_positions))
                       .scalar_one()))


def test_track_accrue_edit_margin_call_untrack(tw: TrackWorld) -> None:
    tw.start()
    answer = tw.say(ANN, "/track 15000 USDT against 0.5 BTC margin 85% liquidation 91% apr 6%")["plain"]
    assert answer.startswith("Tracking #1.") and "#1 manual (held elsewhere)" in answer
    assert "Debt: 15000 USDT" in answer and "Collateral: 0.5 BTC" in answer
    assert "LTV: 60.0% (lender's margin call 85.0%, liquidation 91.0%)" in answer  # 15000 / (0.5 × 50000)
    assert "Margin call at BTC 35294.12 · liquidation at BTC 32967.03" in answer  # 15000/0.425, 15000/0.455

    # 10:15 → 13:15: three HH:00 at 6%/8760 an hour: 15000 × (1 + 0.06/8760)^3 = 15000.3082212891… → 15000.31 up
    tw.clock.advance(hours=3)
    shown = tw.say(ANN, "/position 1")["plain"]
    assert "Debt: 15000.31 USDT" in shown and "/untrack #1" in shown

    since = len(tw.tg.sent)
    tw.binance.set_price("BTC", "35000")  # 15000.31 / 17500 = 85.7%: the lender's margin call
    call = tw.tg.wait_for(lambda r: r["chat_id"] == ANN and "🚨 Margin call" in (r["plain"] or ""), since=since)
    assert "position #1" in call["plain"] and "Held at your lender. LTV 85.7%" in call["plain"]
    assert "Add collateral or repay at your lender" in call["plain"]
    assert [b.get("callback_data") for b in call["reply_markup"]["inline_keyboard"][0]] == ["pv:1"]

    edited = tw.say(ANN, "/track #1 debt 14000")["plain"]
    assert edited.startswith("Updated #1.") and "Debt: 14000 USDT" in edited
    edited = tw.say(ANN, "/track #1 collateral 0.6")["plain"]
    assert "Collateral: 0.6 BTC" in edited
    assert "Margin call at BTC 27450.98" in edited  # 14000 / (0.6 × 0.85)
    # the desk's ledger never saw any of it
    counts = tw.rows(lambda uow: [uow.session.execute(select(func.count()).select_from(t)).scalar_one()
                                  for t in (positions, journal_entries)])
    assert counts == [0, 0]

    assert "#1 is held at another lender: act there" in tw.say(ANN, "/repay 1 100")["plain"]
    assert "#1 is held at another lender: act there" in tw.say(ANN, "/add 1 0.1")["plain"]
    assert "loandesk never moves money at another lender" in tw.say(ANN, "/protect 1 80% 65% topup")["plain"]
    history = tw.say(ANN, "/history 1")["plain"]
    assert "#1 Margin call at LTV 85.7% (held elsewhere)." in history, history
    assert "You have no position #1" in tw.say(BOB, "/history 1")["plain"]
    assert "You have no position #1" in tw.say(BOB, "/untrack #1")["plain"]
    assert "You have no position #1" in tw.say(BOB, "/track #1 debt 1")["plain"]
    assert tracked_rows(tw) == 1
    assert tw.say(ANN, "/untrack #1")["plain"].startswith("Stopped tracking #1")
    assert tracked_rows(tw) == 0


def test_bad_tracking_input_gets_a_specific_sentence_and_changes_nothing(tw: TrackWorld) -> None:
    tw.start()
    cases = {
        "/track 15000 USDT with 0.5 BTC": "Write 'against' between the loan and the collateral",
        "/track 15000 USDT against 0.5 BTC margin 91% liquidation 85%": "below the liquidation level",
        "/track 15000 USDT against 0.5 BTC margin 85%": "Give both levels",
        "/track 15000 USDT against 0.5 USDT": "must be different assets",
        "/track 15000 USDT against 0.5 PEPE": "PEPE",
        "/track lots USDT against 0.5 BTC": "lots",
        "/track 15000 USDT against 0.5 BTC apr 0.5": "ambiguous",
        "/track #9 debt 100": "You have no position #9",
        "/track #9 fee 100": "the debt or the collateral",
        "/untrack": "/untrack #5",
    }
    for text, expected in cases.items():
        answer = tw.say(ANN, text)["plain"]
        assert expected in answer, (text, answer)
        assert "Traceback" not in answer
        assert tracked_rows(tw) == 0, text


def test_tools_groups_and_board_work_on_a_tracked_position(tw: TrackWorld) -> None:
    tw.start()
    tw.monitoring_group(owner=ANN, share="all")
    assert tw.say(ANN, "/track 10000 USDT against 0.5 BTC margin 80% liquidation 90%")["plain"].startswith(
        "Tracking #1.")
    # /stress: 10000 / (0.5 × 50000) = 40%; BTC −30% → 10000 / 17500 = 57.1%; margin call at 10000/0.4 = 25000
    stressed = tw.say(ANN, "/stress 1 -30%")["plain"]
    assert "#1 if BTC -30.0%: LTV 40.0% → 57.1% (safe)" in stressed, stressed
    assert "25000" in stressed and "22222.22" in stressed  # margin call and liquidation prices (10000/0.45)
    assert "#1 through" in tw.say(ANN, "/backtest 1 march2020")["plain"]
    assert "#1" in tw.say(ANN, "/chart 1")["plain"]
    assert "You have no position #1" in tw.say(BOB, "/stress 1 -30%")["plain"]

    board = tw.say(ANN, "/board", GROUP)["plain"]
    assert "#1 user 42: LTV 40.0% · 40.0 points to margin call" in board, board
    # a price alert: margin call at 10000 / (0.5 × 0.80) = 25,000; within 10% from BTC 27,777.78 down
    assert "#1" in tw.say(ANN, "/alert price 1 10%")["plain"]
    listed = tw.say(ANN, "/alerts")["plain"]
    assert "#1: within 10.0% of the margin-call price · now BTC 50000 is 50.0% above the margin-call price 25000" \
        in listed
    since = len(tw.tg.sent)
    tw.binance.set_price("BTC", "27000")  # 1 − 25000/27000 = 7.4%: the alert fires (LTV 74.1%, no warning yet)
    alert = tw.tg.wait_for(lambda r: r["chat_id"] == ANN and "Price alert" in (r["plain"] or ""), since=since)
    assert "BTC is at 27000 USDT, 7.4% above the price of the lender's margin call 25000" in alert["plain"]
    since = len(tw.tg.sent)
    tw.binance.set_price("BTC", "24000")  # 10000 / 12000 = 83.3%: the lender's 80% margin call, pushed to the group
    group = tw.tg.wait_for(lambda r: r["chat_id"] == GROUP and "🚨 Margin call" in (r["plain"] or ""), since=since)
    assert "Held at your lender. LTV 83.3%" in group["plain"]
    assert len(tw.pushes(ANN, "⚠️ Price alert")) == 1  # once: not re-armed (the price never went 2 points further)
    assert tw.say(ANN, "/untrack #1")["plain"].startswith("Stopped tracking #1")
    assert tw.table(price_alerts) == []  # its alert went with it
