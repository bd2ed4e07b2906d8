"""Previews (what Confirm will do, with its Confirm and Cancel buttons) and outcomes (what it did), one renderer
per use case type of ``bot.service.usecases``. Every number comes from a trial run of the very action, so a
preview says what will actually move: the amount a repayment is capped at, the collateral a close returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from decimal import Decimal
from typing import Any

from bot.render.answers import collateral_text, position_lines
from bot.render.common import Reply, amount, confirm_buttons, e, ltv_text, price
from bot.render.termsheet import term_sheet_lines
from bot.service.loans import Outcome, Shown
from bot.service.usecases import (
    AddCollateral,
    Borrow,
    Close,
    Credit,
    Debit,
    IssueTermSheet,
    Repay,
    RepayWithCollateral,
    ResumeLiquidations,
    SetRate,
    Transfer,
    WithdrawCollateral,
)
from domain.money import fmt, pct

HIGH_APR = Decimal("0.5")  # an operator's rate above 50% APR gets a warning in its preview


def _borrow(s: Shown, a: Borrow) -> list[str]:
    b = s.borrow
    if b is None:
        return [f"<b>Borrow {amount(a.amount, a.loan)}</b>"]
    coll = {k: v for k, v in b.request.collateral.items() if v}
    against = f"against {collateral_text(coll)}" if coll else "with no more collateral"
    lines = [f"<b>Borrow {amount(b.request.amount, b.request.loan_asset)}</b> {against}"]
    if b.existing:
        lines.append(f"This adds to your open position #{b.existing}: together "
                     f"{amount(b.debt_after, b.request.loan_asset, up=True)} against "
                     f"{collateral_text(b.collateral_after)}.")
    if a.target is not None:
        whole = " on the whole position" if b.existing else ""
        lines.append(f"Collateral sized for {e(pct(a.target))} LTV{whole}.")
    asset = e(next(iter(b.collateral_after or b.request.collateral)))
    triggers = (f"Margin call at {asset} {price(b.margin_call_price)} · liquidation at {asset} "
                f"{price(b.liquidation_price)}" if b.margin_call_price is not None else
                "Margin-call and liquidation prices depend on every collateral price: see /stress after.")
    lines += [f"LTV after: <b>{e(pct(b.ltv))}</b> (limit {e(pct(b.thresholds.initial))}, margin call "
              f"{e(pct(b.thresholds.margin_call))}, liquidation {e(pct(b.thresholds.liquidation))})", triggers]
    if b.fixed_interest is not None and b.expires_at is not None:
        lines.append(f"Fixed interest: {amount(b.fixed_interest, b.request.loan_asset, up=True)}, taken up front "
                     f"(APR {e(fmt(b.apr * 100))}%)")
        lines.append(f"You receive {amount(b.receive, b.request.loan_asset)} in Spot.")
        lines.append(f"Expires {e(b.expires_at.strftime('%Y-%m-%d %H:%M UTC'))}; you owe "
                     f"{amount(b.debt_after, b.request.loan_asset, up=True)} then.")
    else:
        lines.append(f"Interest: {amount(b.hourly_interest, b.request.loan_asset, up=True)}/hour, "
                     f"{amount(b.daily_interest, b.request.loan_asset, up=True)}/day "
                     f"(APR {e(fmt(b.apr * 100))}%, {'variable' if b.variable_rate else 'fixed'}, "
                     "charged at every full hour)")
        lines.append(f"You receive {amount(b.receive, b.request.loan_asset)} in Spot.")
    return lines + [e(n) for n in b.notes]


def _on_position(title: str) -> Callable[[Shown, Any], list[str]]:
    def lines(s: Shown, a: Any) -> list[str]:
        head = f"<b>{title}</b> #{a.pid}"
        before = s.before
        if isinstance(a, AddCollateral | WithdrawCollateral):
            head += f": {amount(a.amount, a.asset or (before.single_collateral if before else '') or '')}"
            if isinstance(a, AddCollateral) and a.source == "earn":
                head += " from Earn (it keeps earning)"
        elif isinstance(a, Repay) and before is not None:
            pay = before.debt if a.amount is None else min(a.amount, before.debt)
            head += f": {amount(pay, before.loan_asset, up=True)}"
            if a.amount is not None and a.amount > before.debt:
                head += (f" (you asked for {amount(a.amount, before.loan_asset, unit=False)}; "
                         f"{amount(before.debt, before.loan_asset, unit=False, up=True)} is everything owed)")
        out = [head]
        if s.quote is not None:
            q = s.quote
            out.append(f"Sell {amount(q.sell, q.asset)} at {e(fmt(q.rate.quantize(Decimal('0.00000001'))))} "
                       f"to repay {amount(q.repay, before.loan_asset if before else '', up=True)}. "
                       f"Quote valid {q.expires.strftime('%H:%M:%S')} UTC (15 s).")
        if before is not None:
            out.append(f"Now: LTV {ltv_text(before.ltv)}, debt {amount(before.debt, before.loan_asset, up=True)}")
        after = s.after
        if after is not None and after.status in ("closed", "liquidated") and before is not None:
            back = dict(before.collateral)
            if s.quote is not None:
                back[s.quote.asset] = back.get(s.quote.asset, Decimal(0)) - s.quote.sell
            back = {k: v for k, v in back.items() if v > 0}
            out.append(f"After: position #{after.id} is {e(after.status)}; "
                       f"{collateral_text(back)} returns to your wallet.")
        elif after is not None:
            out.append("After:")
            out += position_lines(after)
        return out
    return lines


def _transfer(s: Shown, a: Transfer) -> list[str]:
    where = "Spot → Earn" if a.to == "earn" else "Earn → Spot"
    return [f"<b>Move {amount(a.amount, a.asset)}</b> {where}"]


def _funds(s: Shown, a: Credit | Debit) -> list[str]:
    verb, title = ("to", "Credit") if isinstance(a, Credit) else ("from", "Debit")
    return [f"<b>{title}</b> {amount(a.amount, a.asset)} {verb} user {e(a.user)}'s Spot"]


def _set_rate(s: Shown, a: SetRate) -> list[str]:
    lines = [f"<b>Set rate</b>: {e(a.asset)} flexible APR {e(fmt(a.apr * 100))}%, in force from the next full hour"]
    if a.apr > HIGH_APR:
        lines.append(f"⚠️ That is {e(fmt(a.apr * 100))}% a year — far above any market rate. "
                     "Check it before you confirm.")
    return lines


def _issue(s: Shown, a: IssueTermSheet) -> list[str]:
    values = {f.name: getattr(a, f.name) for f in fields(a)}
    values["loan"] = list(a.loan)
    return ["<b>Issue</b> (a new version; open VIP loans keep theirs)", *term_sheet_lines(values)]


def _resume(s: Shown, a: ResumeLiquidations) -> list[str]:
    return ["<b>Resume liquidations</b>: the paused wave is liquidated at the confirmed prices on the next price "
            "update. Check the prices first."]


PREVIEWS: dict[type[Any], Callable[[Shown, Any], list[str]]] = {
    Borrow: _borrow, AddCollateral: _on_position("Add collateral"),
    WithdrawCollateral: _on_position("Withdraw collateral"), Repay: _on_position("Repay"),
    RepayWithCollateral: _on_position("Repay with collateral"), Close: _on_position("Close"),
    Transfer: _transfer, Credit: _funds, Debit: _funds, SetRate: _set_rate, IssueTermSheet: _issue,
    ResumeLiquidations: _resume,
}


def preview(s: Shown) -> Reply:
    lines = PREVIEWS[type(s.action)](s, s.action)
    lines.append("Confirm within 5 minutes." if s.quote is None else "Confirm within 15 seconds.")
    return Reply("\n".join(lines), confirm_buttons(s.preview))


def outcome(o: Outcome) -> Reply:
    a = o.action
    if o.status != "done" or a is None:
        return Reply(e(o.message))
    if isinstance(a, Credit | Debit):
        verb = "Credited" if isinstance(a, Credit) else "Debited"
        return Reply(f"Done. {verb} {amount(a.amount, a.asset)} (user {e(a.user)}).")
    if isinstance(a, IssueTermSheet):
        return Reply(f"Done. The term sheet is issued to user {e(a.user)}; they see it with /terms.")
    if isinstance(a, SetRate):
        return Reply(f"Done. {e(a.asset)} flexible APR is {e(fmt(a.apr * 100))}% from the next full hour.")
    if isinstance(a, Transfer):
        return Reply(f"Done. Moved {amount(a.amount, a.asset)} to {'Earn' if a.to == 'earn' else 'Spot'}. "
                     "See /wallet.")
    if isinstance(a, ResumeLiquidations):
        return Reply("Done. Liquidations run again from the next price update.")
    if o.after is None:
        return Reply("Done.")
    v = o.after
    if v.status in ("closed", "liquidated"):
        return Reply(f"Done. Position #{v.id} is {e(v.status)}; the collateral is back in your wallet.")
    return Reply("Done.\n" + "\n".join(position_lines(v)))
