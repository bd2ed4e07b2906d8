"""``loandesk simulate``: replay a scenario (``../shared/SCENARIO.md``) through the real engine in simulated time.

At each instant, in order: the price points take effect, the tick runs (``domain.watch.tick``: accrue, fixed-loan
expiries, auto-protection, price alerts, the risk sweep — the very function the live bot runs), then the steps
of that instant in file order. With ``"price_guard": true`` the prices that may liquidate come from the same
``PriceGuard`` the live bot uses, built from the markets file (each price point is one observation of the
exchange; the prices at ``start`` are the desk's last accepted ones, as a running desk would have stored them);
without it every price counts as fresh and confirmed by both sources.

Same input, same output: time comes only from the scenario, and every collection is emitted in a fixed order.
Input parsing is ``domain.analysis.scenario``, the JSON report ``domain.analysis.report``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from domain.analysis.report import event_rows, report
from domain.analysis.scenario import STEP_KINDS, ScenarioError, load_prices, parse_term_sheet, source_of
from domain.book import MemoryBook
from domain.desk import Desk
from domain.errors import Rejected
from domain.inputs import decimal_of, iso, parse_time
from domain.loans import servicing
from domain.loans.borrow import borrow
from domain.loans.common import BorrowRequest
from domain.loans.expiry import due_times
from domain.loans.fixed import set_fixed_expiry
from domain.loans.liquidation import pending_deadline
from domain.loans.vip import issue_term_sheet
from domain.markets import QUOTE, Catalog, CatalogError
from domain.positions import Product, Source
from domain.prices import GuardRules, PriceGuard
from domain.rates import next_hour
from domain.watch import breaker
from domain.watch.alerts import set_price_alert
from domain.watch.protection import set_protection
from domain.watch.tick import tick

_TICK = timedelta(microseconds=1)


class Simulation:
    """One run of a scenario."""

    def __init__(self, scenario: Mapping[str, Any], catalog: Catalog, base_dir: Path | None = None) -> None:
        if not isinstance(scenario, Mapping):
            raise ScenarioError("a scenario is a JSON object")
        self.start = parse_time(scenario.get("start"), "start")
        self.end = parse_time(scenario.get("end"), "end")
        if self.end < self.start:
            raise ScenarioError("end is before start")
        try:
            self.catalog = catalog.with_overrides(scenario.get("markets") or {})
        except CatalogError as exc:
            raise ScenarioError(f"markets: {exc}") from exc
        vip_block = scenario.get("vip") or {}
        if not isinstance(vip_block, Mapping):
            raise ScenarioError("vip must map an account to its term sheet")
        self.sheets = [parse_term_sheet(str(owner), spec) for owner, spec in vip_block.items()]
        self.base_dir = base_dir
        self.prices = load_prices(scenario.get("prices") or {}, self._resolve)
        self.accounts = scenario.get("accounts") or {}
        self.steps = list(scenario.get("steps") or [])
        guard = scenario.get("price_guard", False)
        if not isinstance(guard, bool):
            raise ScenarioError("price_guard must be true or false")
        self.guard = PriceGuard(GuardRules.of(self.catalog.desk)) if guard else None
        self.book = MemoryBook()
        self.desk = Desk(self.catalog, self.book)
        self.names: dict[int, str] = {}
        self.ids: dict[str, int] = {}
        self.events: list[dict[str, Any]] = []
        for i, step in enumerate(self.steps):
            if not isinstance(step, Mapping):
                raise ScenarioError(f"steps[{i}] must be an object")
            parse_time(step.get("at"), f"steps[{i}].at")

    def _resolve(self, name: str) -> Path:
        p = Path(name)
        candidates = [p] if p.is_absolute() else [Path.cwd() / p]
        if self.base_dir is not None and not p.is_absolute():
            candidates += [self.base_dir / p, self.base_dir.parent / p]
        for c in candidates:
            if c.exists():
                return c
        raise ScenarioError(f"prices: file {name} not found")

    # ------------------------------------------------------------------ time loop

    def run(self) -> dict[str, Any]:
        for name, wallets in self.accounts.items():
            self._open_account(str(name), wallets)
        for sheet in self.sheets:
            try:
                issue_term_sheet(self.desk, sheet, self.start, by="scenario")
            except Rejected as exc:
                raise ScenarioError(f"vip.{sheet.owner}: {exc.message}") from exc
        self._collect()
        if self.guard is not None:  # the desk was running before the scenario: its last prices are the reference
            self.guard.seed({a: (v, self.start) for a, v in self._prices_at(self.start).items()})
        pending = sorted(((parse_time(s["at"], "at"), i) for i, s in enumerate(self.steps)), key=lambda x: x)
        t = self.start
        k = 0
        while True:
            prices = self._prices_at(t)
            confirmed, corroborated = self._confirmed(t, prices)
            tick(self.desk, prices, confirmed, t, corroborated=corroborated)
            self._collect()
            while k < len(pending) and pending[k][0] == t:
                self._step(pending[k][1], t, prices)
                self._collect()
                k += 1
            while k < len(pending) and pending[k][0] < t:  # steps before start
                self._reject(pending[k][1], pending[k][0], "out_of_range", "the step is outside start..end")
                k += 1
            nxt = self._next_instant(t, pending[k][0] if k < len(pending) else None)
            if nxt is None:
                break
            t = nxt
        for _, i in pending[k:]:
            self._reject(i, self.end, "out_of_range", "the step is after the scenario's end")
        return report(self.desk, self.book, self.ids, self.events, self._prices_at(self.end), self.end)

    def _next_instant(self, t: datetime, next_step: datetime | None) -> datetime | None:
        candidates = [next_hour(t)]
        if next_step is not None and next_step > t:
            candidates.append(next_step)
        for s in self.prices.values():
            n = s.next_after(t)
            if n is not None:
                candidates.append(n)
        repeat = timedelta(minutes=self.catalog.desk.margin_call_repeat_minutes)
        for p in self.book.active_positions():
            if p.risk.margin_call and p.risk.margin_call_at is not None:
                candidates.append(p.risk.margin_call_at + repeat)
            candidates += due_times(p)
            deadline = pending_deadline(self.desk, p)
            if deadline is not None:
                candidates.append(deadline)
        n = min(c for c in candidates if c > t)
        return n if n <= self.end else None

    def _confirmed(self, t: datetime, prices: dict[str, Decimal]) -> tuple[dict[str, Decimal], set[str]]:
        """Prices that may liquidate, and the assets both sources agree on: with ``price_guard`` what the guard
        accepts (a price point is one observation of the exchange; a constant is seen at every instant), else
        every price, as if two sources confirmed it."""
        if self.guard is None:
            return prices, set(prices)
        for asset, s in self.prices.items():
            if asset in prices and (s.constant or s.next_after(t - _TICK) == t):
                self.guard.observe(asset, prices[asset], t)
        return {QUOTE: Decimal(1), **self.guard.confirmed(t)}, self.guard.corroborated(t)

    def _prices_at(self, t: datetime) -> dict[str, Decimal]:
        out = {QUOTE: Decimal(1)}
        for asset, s in self.prices.items():
            v = s.at(t)
            if v is not None:
                out[asset] = v
        return out

    def _open_account(self, name: str, wallets: Any) -> None:
        if not isinstance(wallets, Mapping):
            raise ScenarioError(f"accounts.{name} must map spot/earn to balances")
        for kind, balances in wallets.items():
            if kind not in ("spot", "earn") or not isinstance(balances, Mapping):
                raise ScenarioError(f"accounts.{name}.{kind}: use spot and earn, each mapping asset to amount")
            for asset, amount in balances.items():
                try:
                    self.desk.deposit(name, str(asset), decimal_of(amount, f"accounts.{name}.{kind}.{asset}"),
                                      self.start, Source(kind))
                except Rejected as exc:
                    raise ScenarioError(f"accounts.{name}.{kind}.{asset}: {exc.message}") from exc

    # ------------------------------------------------------------------ steps

    def _step(self, i: int, t: datetime, prices: dict[str, Decimal]) -> None:
        step = self.steps[i]
        do = step.get("do")
        handler = getattr(self, f"_do_{do}", None) if isinstance(do, str) else None
        if handler is None:
            self._reject(i, t, "unknown_step", f"'do' must be one of {', '.join(STEP_KINDS)} (got {do!r})")
            return
        try:
            handler(step, t, prices)
        except Rejected as exc:
            self._reject(i, t, exc.code, exc.message)
        except ScenarioError as exc:
            self._reject(i, t, "bad_step", str(exc))

    def _reject(self, i: int, t: datetime, code: str, message: str) -> None:
        row: dict[str, Any] = {"at": iso(t), "type": "rejected"}
        if isinstance(self.steps[i].get("account"), str):
            row["account"] = self.steps[i]["account"]
        self.events.append({**row, "step": i, "reason": code, "message": message})

    def _position(self, step: Mapping[str, Any]) -> int:
        name = step.get("position")
        if not isinstance(name, str) or name not in self.ids:
            raise Rejected("position_not_found", f"no position named {name!r} was opened before this step")
        return self.ids[name]

    @staticmethod
    def _field(step: Mapping[str, Any], key: str) -> Any:
        if key not in step:
            raise ScenarioError(f"the step needs '{key}'")
        return step[key]

    def _amount(self, step: Mapping[str, Any], key: str = "amount") -> Decimal | None:
        value = self._field(step, key)
        if value == "all":
            return None
        return decimal_of(value, key)

    def _do_borrow(self, step: Mapping[str, Any], t: datetime, prices: dict[str, Decimal]) -> None:
        product = step.get("product", "flexible")
        if product not in ("flexible", "fixed", "vip"):
            raise Rejected("unknown_product", f"product must be flexible, fixed or vip (got {product!r})")
        coll = self._field(step, "collateral")
        if not isinstance(coll, Mapping) or not coll:
            raise ScenarioError("collateral must map asset to amount")
        amount = self._amount(step)
        if amount is None:
            raise ScenarioError("a borrow needs an amount, not 'all'")
        req = BorrowRequest(str(self._field(step, "account")), str(self._field(step, "loan")), amount,
                                    {str(a): decimal_of(v, f"collateral.{a}") for a, v in coll.items()},
                                    Product(product), source_of(step.get("from", "spot")), self._term(step))
        position, _ = borrow(self.desk, req, prices, t)
        name = step.get("id")
        if isinstance(name, str):
            self.ids.setdefault(name, position.id)
            self.names.setdefault(position.id, name)

    @staticmethod
    def _term(step: Mapping[str, Any]) -> int | None:
        term = step.get("term_days")
        if term is None:
            return None
        if isinstance(term, str) and term.isdigit():
            term = int(term)
        if not isinstance(term, int) or isinstance(term, bool):
            raise ScenarioError(f"term_days must be a whole number of days (got {term!r})")
        return term

    def _do_set_fixed_expiry(self, step: Mapping[str, Any], t: datetime, prices: dict[str, Decimal]) -> None:
        options: dict[str, bool | None] = {}
        for key in ("auto_repay", "auto_renew", "convert_to_flexible"):
            value = step.get(key)
            if value is not None and not isinstance(value, bool):
                raise ScenarioError(f"{key} must be true or false (got {value!r})")
            options[key] = value
        set_fixed_expiry(self.desk, str(self._field(step, "account")), self._position(step), t,
                               options["auto_repay"], options["auto_renew"], options["convert_to_flexible"])

    def _do_set_protection(self, step: Mapping[str, Any], t: datetime, prices: dict[str, Decimal]) -> None:
        limit = step.get("daily_limit")
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)):
            raise ScenarioError(f"daily_limit must be a whole number (got {limit!r})")
        set_protection(self.desk, str(self._field(step, "account")), self._position(step),
                                  decimal_of(self._field(step, "trigger"), "trigger"),
                                  decimal_of(self._field(step, "target"), "target"), str(self._field(step, "mode")),
                                  t, limit)

    def _do_add_collateral(self, step: Mapping[str, Any], t: datetime, prices: dict[str, Decimal]) -> None:
        amount = self._amount(step)
        if amount is None:
            raise ScenarioError("add_collateral needs an amount")
        servicing.add_collateral(self.desk, str(self._field(step, "account")), self._position(step),
                               step.get("asset"), amount, prices, t, source_of(step.get("from", "spot")))

    def _do_withdraw_collateral(self, step: Mapping[str, Any], t: datetime, prices: dict[str, Decimal]) -> None:
        amount = self._amount(step)
        if amount is None:
            raise ScenarioError("withdraw_collateral needs an amount")
        servicing.withdraw_collateral(self.desk, str(self._field(step, "account")), self._position(step),
                                    step.get("asset"), amount, prices, t)

    def _do_repay(self, step: Mapping[str, Any], t: datetime, prices: dict[str, Decimal]) -> None:
        owner, pid, amount = str(self._field(step, "account")), self._position(step), self._amount(step)
        with_ = step.get("with", "loan")
        if with_ == "loan":
            servicing.repay(self.desk, owner, pid, amount, t)
        elif with_ == "collateral":
            servicing.repay_with_collateral(self.desk, owner, pid, amount, prices, t)
        else:
            raise ScenarioError(f"'with' must be loan or collateral (got {with_!r})")

    def _do_close(self, step: Mapping[str, Any], t: datetime, prices: dict[str, Decimal]) -> None:
        servicing.close(self.desk, str(self._field(step, "account")), self._position(step), t)

    def _do_deposit(self, step: Mapping[str, Any], t: datetime, prices: dict[str, Decimal]) -> None:
        amount = self._amount(step)
        if amount is None:
            raise ScenarioError("a deposit needs an amount")
        self.desk.deposit(str(self._field(step, "account")), str(self._field(step, "asset")), amount, t,
                          source_of(step.get("to", "spot")))

    def _do_set_rate(self, step: Mapping[str, Any], t: datetime, prices: dict[str, Decimal]) -> None:
        self.desk.set_rate(str(self._field(step, "asset")), decimal_of(self._field(step, "apr"), "apr"), t)

    def _do_set_price_alert(self, step: Mapping[str, Any], t: datetime, prices: dict[str, Decimal]) -> None:
        set_price_alert(self.desk, str(self._field(step, "account")), self._position(step),
                        decimal_of(self._field(step, "distance"), "distance"))

    def _do_resume_liquidations(self, step: Mapping[str, Any], t: datetime, prices: dict[str, Decimal]) -> None:
        breaker.resume(self.desk, t, str(step.get("operator", "scenario")))
    # ------------------------------------------------------------------ output

    def _collect(self) -> None:
        """Move the events the desk emitted into the report, in the order they happened."""
        self.events += event_rows(self.book.events, self.names)
        self.book.events.clear()


def simulate(scenario: Mapping[str, Any], catalog: Catalog, base_dir: Path | None = None) -> dict[str, Any]:
    """Run a scenario and return its report (see SCENARIO.md)."""
    return Simulation(scenario, catalog, base_dir).run()
