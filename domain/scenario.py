"""``loandesk simulate``: replay a scenario (SCENARIO.md) through the real engine with simulated time.

Input is the parsed JSON; output is a JSON-ready dict of events, positions, wallets and the ledger check.
Same input, same output: time comes only from the scenario, and every collection is emitted in a fixed order.
"""

from __future__ import annotations

import bisect
import csv
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from domain import actions, fixed, protection, vip
from domain.book import MemoryBook
from domain.checks import ledger_problems
from domain.desk import Desk
from domain.errors import Rejected
from domain.events import Event
from domain.markets import QUOTE, Catalog, CatalogError
from domain.money import AmountError, fmt, fmt_ratio, round_down, round_up, to_decimal
from domain.positions import Position, Product, Source, Status
from domain.priceguard import PriceGuard
from domain.rates import next_hour
from domain.sweep import sweep
from domain.termsheet import TermSheet

_TICK = timedelta(microseconds=1)


class ScenarioError(ValueError):
    """The scenario file itself is malformed (as opposed to a step the desk rejects)."""


def parse_time(value: Any, where: str) -> datetime:
    if not isinstance(value, str):
        raise ScenarioError(f"{where}: a time must be an ISO-8601 string like 2026-01-01T00:00:00Z")
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ScenarioError(f"{where}: '{value}' is not an ISO-8601 time") from exc
    if t.tzinfo is None:
        raise ScenarioError(f"{where}: '{value}' has no time zone (end it with Z)")
    return t.astimezone(UTC)


def iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _dec(value: Any, where: str) -> Decimal:
    if isinstance(value, float):
        raise ScenarioError(f'{where}: {value} is a JSON float; write decimals as strings ("{value}")')
    try:
        return to_decimal(value)
    except (AmountError, TypeError) as exc:
        raise ScenarioError(f"{where}: {exc}") from exc


@dataclass
class PriceSeries:
    """A price that holds from each point until the next one."""

    times: list[datetime] = field(default_factory=list)
    values: list[Decimal] = field(default_factory=list)
    constant: bool = False

    def at(self, t: datetime) -> Decimal | None:
        i = bisect.bisect_right(self.times, t)
        return self.values[i - 1] if i else None

    def next_after(self, t: datetime) -> datetime | None:
        i = bisect.bisect_right(self.times, t)
        return self.times[i] if i < len(self.times) else None


def load_prices(spec: Mapping[str, Any], resolve: Callable[[str], Path]) -> dict[str, PriceSeries]:
    series: dict[str, PriceSeries] = {}
    for asset, value in spec.items():
        s = PriceSeries()
        where = f"prices.{asset}"
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            s.times, s.values, s.constant = [datetime.min.replace(tzinfo=UTC)], [_dec(value, where)], True
        elif isinstance(value, list):
            points = []
            for i, point in enumerate(value):
                if not (isinstance(point, list) and len(point) == 2):
                    raise ScenarioError(f"{where}[{i}] must be [time, price]")
                points.append((parse_time(point[0], f"{where}[{i}]"), _dec(point[1], f"{where}[{i}]")))
            points.sort(key=lambda p: p[0])
            s.times, s.values = [p[0] for p in points], [p[1] for p in points]
        elif isinstance(value, Mapping) and "csv" in value:
            s = read_price_csv(resolve(str(value["csv"])), str(value.get("column", "close")), where)
        else:
            raise ScenarioError(f"{where} must be a price, a list of [time, price] or {{\"csv\": FILE}}")
        if any(v <= 0 for v in s.values):
            raise ScenarioError(f"{where}: prices must be greater than zero")
        series[asset] = s
    return series


def read_price_csv(path: Path, column: str, where: str = "prices") -> PriceSeries:
    """A price file of ``../shared/data/prices`` (``timestamp`` ISO-8601 UTC plus price columns)."""
    s = PriceSeries()
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or "timestamp" not in reader.fieldnames or column not in reader.fieldnames:
                raise ScenarioError(f"{where}: {path.name} needs the columns timestamp and {column}")
            for n, row in enumerate(reader, start=2):
                if not row[column]:
                    continue
                s.times.append(parse_time(row["timestamp"], f"{path.name} line {n}"))
                s.values.append(_dec(row[column], f"{path.name} line {n}"))
    except OSError as exc:
        raise ScenarioError(f"{where}: cannot read {path}: {exc.strerror}") from exc
    if not s.times:
        raise ScenarioError(f"{where}: {path.name} has no prices in column {column}")
    if any(b <= a for a, b in zip(s.times, s.times[1:], strict=False)):
        raise ScenarioError(f"{where}: {path.name} is not sorted by time")
    return s


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
        self.guard = PriceGuard(timedelta(seconds=self.catalog.desk.price_max_age_seconds),
                                self.catalog.desk.price_jump) if guard else None
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
                vip.issue_term_sheet(self.desk, sheet, self.start, by="scenario")
            except Rejected as exc:
                raise ScenarioError(f"vip.{sheet.owner}: {exc.message}") from exc
        self._collect()
        pending = sorted(((parse_time(s["at"], "at"), i) for i, s in enumerate(self.steps)), key=lambda x: x)
        t = self.start
        k = 0
        while True:
            prices = self._prices_at(t)
            self.desk.accrue(t)
            confirmed = self._confirmed(t, prices)
            fixed.process_fixed(self.desk, prices, t, confirmed)
            self._collect()
            protection.run_protection(self.desk, prices, t)
            self._collect()
            sweep(self.desk, prices, t, confirmed)
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
        return self._report(self._prices_at(self.end))

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
            candidates += fixed.due_times(p)
            deadline = vip.pending_deadline(self.desk, p)
            if deadline is not None:
                candidates.append(deadline)
        n = min(c for c in candidates if c > t)
        return n if n <= self.end else None

    def _confirmed(self, t: datetime, prices: dict[str, Decimal]) -> dict[str, Decimal]:
        """Prices that may liquidate: all of them, or with ``price_guard`` only fresh, confirmed ones."""
        if self.guard is None:
            return prices
        for asset, s in self.prices.items():
            if asset in prices and (s.constant or s.next_after(t - _TICK) == t):
                self.guard.observe(asset, prices[asset], t)  # a price point is one poll of the exchange
        return {QUOTE: Decimal(1), **self.guard.confirmed(t)}

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
                    self.desk.deposit(name, str(asset), _dec(amount, f"accounts.{name}.{kind}.{asset}"),
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
        return _dec(value, key)

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
        req = actions.BorrowRequest(str(self._field(step, "account")), str(self._field(step, "loan")), amount,
                                    {str(a): _dec(v, f"collateral.{a}") for a, v in coll.items()},
                                    Product(product), _source(step.get("from", "spot")), self._term(step))
        position, _ = actions.borrow(self.desk, req, prices, t)
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
        fixed.set_fixed_expiry(self.desk, str(self._field(step, "account")), self._position(step), t,
                               options["auto_repay"], options["auto_renew"], options["convert_to_flexible"])

    def _do_set_protection(self, step: Mapping[str, Any], t: datetime, prices: dict[str, Decimal]) -> None:
        limit = step.get("daily_limit")
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)):
            raise ScenarioError(f"daily_limit must be a whole number (got {limit!r})")
        protection.set_protection(self.desk, str(self._field(step, "account")), self._position(step),
                                  _dec(self._field(step, "trigger"), "trigger"),
                                  _dec(self._field(step, "target"), "target"), str(self._field(step, "mode")),
                                  t, limit)

    def _do_add_collateral(self, step: Mapping[str, Any], t: datetime, prices: dict[str, Decimal]) -> None:
        amount = self._amount(step)
        if amount is None:
            raise ScenarioError("add_collateral needs an amount")
        actions.add_collateral(self.desk, str(self._field(step, "account")), self._position(step),
                               step.get("asset"), amount, prices, t, _source(step.get("from", "spot")))

    def _do_withdraw_collateral(self, step: Mapping[str, Any], t: datetime, prices: dict[str, Decimal]) -> None:
        amount = self._amount(step)
        if amount is None:
            raise ScenarioError("withdraw_collateral needs an amount")
        actions.withdraw_collateral(self.desk, str(self._field(step, "account")), self._position(step),
                                    step.get("asset"), amount, prices, t)

    def _do_repay(self, step: Mapping[str, Any], t: datetime, prices: dict[str, Decimal]) -> None:
        owner, pid, amount = str(self._field(step, "account")), self._position(step), self._amount(step)
        with_ = step.get("with", "loan")
        if with_ == "loan":
            actions.repay(self.desk, owner, pid, amount, t)
        elif with_ == "collateral":
            actions.repay_with_collateral(self.desk, owner, pid, amount, prices, t)
        else:
            raise ScenarioError(f"'with' must be loan or collateral (got {with_!r})")

    def _do_close(self, step: Mapping[str, Any], t: datetime, prices: dict[str, Decimal]) -> None:
        actions.close(self.desk, str(self._field(step, "account")), self._position(step), t)

    def _do_deposit(self, step: Mapping[str, Any], t: datetime, prices: dict[str, Decimal]) -> None:
        amount = self._amount(step)
        if amount is None:
            raise ScenarioError("a deposit needs an amount")
        self.desk.deposit(str(self._field(step, "account")), str(self._field(step, "asset")), amount, t,
                          _source(step.get("to", "spot")))

    def _do_set_rate(self, step: Mapping[str, Any], t: datetime, prices: dict[str, Decimal]) -> None:
        self.desk.set_rate(str(self._field(step, "asset")), _dec(self._field(step, "apr"), "apr"), t)

    # ------------------------------------------------------------------ output

    def _record(self, events: list[Event]) -> None:
        for e in events:
            row: dict[str, Any] = {"at": iso(e.at), "type": e.type}
            if e.account is not None:
                row["account"] = e.account
            if e.position is not None:
                row["position"] = self.names.get(e.position, f"#{e.position}")
            row.update({k: (iso(v) if isinstance(v, datetime) else v) for k, v in e.data.items()})
            self.events.append(row)

    def _collect(self) -> None:
        """Move the events the desk emitted into the report, in the order they happened."""
        self._record(self.book.events)
        self.book.events.clear()

    def _report(self, prices: dict[str, Decimal]) -> dict[str, Any]:
        positions: dict[str, Any] = {}
        for name, pid in self.ids.items():
            p = self.book.positions[pid]
            positions[name] = self._position_report(p, prices)
        wallets: dict[str, Any] = {}
        for owner in self.book.owners():
            spot = {a: fmt(v) for (acct, a), v in sorted(self.book.balances.items())
                    if acct == f"spot:{owner}" and v != 0}
            earn = {a: fmt(self.desk.earn(owner, a, self.end)) for (o, a) in sorted(self.book.shares)
                    if o == owner and self.desk.earn(owner, a, self.end) != 0}
            wallets[owner] = {"spot": spot, "earn": earn}
        problems = ledger_problems(self.desk, self.book.balances, self.book.shares,
                                   self.book.positions.values(), self.end)
        report: dict[str, Any] = {"events": self.events, "positions": positions, "wallets": wallets,
                                  "ledger_balanced": not problems}
        if problems:
            report["ledger_problems"] = problems
        return report

    def _position_report(self, p: Position, prices: dict[str, Decimal]) -> dict[str, Any]:
        cat = self.catalog
        debt = self.desk.debt(p, self.end)
        try:
            ltv = fmt_ratio(self.desk.ltv(p, prices, self.end)) if p.active else "0"
        except Rejected:
            ltv = None
        report: dict[str, Any] = {
            "status": p.status.value, "product": p.product.value, "loan": p.loan_asset,
            "principal": fmt(round_up(p.principal, cat.precision(p.loan_asset))),
            "debt": fmt(round_up(debt, cat.precision(p.loan_asset))),
            "collateral": {a: fmt(round_down(self.desk.holding_amount(a, h, self.end), cat.precision(a)))
                           for a, h in p.collateral.items()},
            "ltv": ltv if p.status is not Status.LIQUIDATED_WITH_DEBT else None}
        if p.fixed is not None:  # Fixed loans (and ones converted from Fixed): the term
            report["fixed"] = {"term_days": p.fixed.term_days, "apr": fmt(p.fixed.apr),
                               "interest": fmt(p.fixed.interest), "expires_at": iso(p.fixed.expires_at),
                               "late_fees": fmt(p.fixed.late_fees)}
        if p.vip_sheet is not None:
            report["vip_sheet"] = p.vip_sheet
        return report


def parse_term_sheet(owner: str, spec: Any) -> TermSheet:
    """A ``vip`` entry of a scenario (SCENARIO.md) as an unissued term sheet."""
    where = f"vip.{owner}"
    if not isinstance(spec, Mapping):
        raise ScenarioError(f"{where} must be an object")
    loans = spec.get("loan", [QUOTE])
    if isinstance(loans, str):
        loans = [loans]
    if not isinstance(loans, list) or not loans:
        raise ScenarioError(f"{where}.loan must list loan assets")
    coll = spec.get("collateral")
    if not isinstance(coll, Mapping) or not coll:
        raise ScenarioError(f"{where}.collateral must map asset to collateral ratio")
    rate = spec.get("rate", "fixed")
    rate_value = spec.get("apr") if rate == "fixed" else spec.get("spread", spec.get("apr", "0"))
    if rate_value is None:
        raise ScenarioError(f"{where}: a fixed-rate sheet needs 'apr'")
    delay = spec.get("liquidation_delay_minutes", 0)
    if not isinstance(delay, int) or isinstance(delay, bool):
        raise ScenarioError(f"{where}.liquidation_delay_minutes must be a whole number")

    def level(key: str, default: str) -> Decimal:
        return _dec(spec.get(key, default), f"{where}.{key}")

    caps = spec.get("max_collateral") or {}
    if not isinstance(caps, Mapping):
        raise ScenarioError(f"{where}.max_collateral must map asset to amount")
    return TermSheet(
        owner, tuple(str(a) for a in loans), str(rate), _dec(rate_value, f"{where}.apr"),
        level("initial_ltv", "0.72"), level("margin_call_ltv", "0.77"), level("liquidation_ltv", "0.91"),
        {str(a): _dec(r, f"{where}.collateral.{a}") for a, r in coll.items()},
        str(spec.get("liquidation", "full")), delay, level("min_order", "50000"),
        _dec(spec["max_borrow"], f"{where}.max_borrow") if spec.get("max_borrow") is not None else None,
        {str(a): _dec(v, f"{where}.max_collateral.{a}") for a, v in caps.items()},
        _dec(spec["warning_ltv"], f"{where}.warning_ltv") if spec.get("warning_ltv") is not None else None)


def _source(value: Any) -> Source:
    if value not in ("spot", "earn"):
        raise ScenarioError(f"the wallet must be spot or earn (got {value!r})")
    return Source(value)


STEP_KINDS = ("borrow", "add_collateral", "withdraw_collateral", "repay", "close", "deposit", "set_rate",
              "set_fixed_expiry", "set_protection")


def render(report: Mapping[str, Any]) -> str:
    """The report as the CLI prints it: indented JSON, key order as built, UTF-8 text."""
    return json.dumps(report, indent=2, ensure_ascii=False) + "\n"


def simulate(scenario: Mapping[str, Any], catalog: Catalog, base_dir: Path | None = None) -> dict[str, Any]:
    """Run a scenario and return its report (see SCENARIO.md)."""
    return Simulation(scenario, catalog, base_dir).run()

