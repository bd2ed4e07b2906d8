"""``loandesk backtest``: replay a flexible position over a price file (or a shipped crash) and report.

    loandesk backtest --loan 4000 USDT --collateral 1 BTC --prices FILE.csv [--apr 5] [--from ISO] [--to ISO]
                      [--json] [--chart out.png]

``--prices`` holds USDT prices of the collateral (of the loan asset when the collateral is a stablecoin);
``--loan-prices`` adds the loan asset's when both are volatile. ``--event march2020`` uses a shipped file instead
of ``--prices`` (historical prices as they were). Bad input prints one line on stderr and exits 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from domain.analysis.backtest import BacktestError, PricePath, backtest, describe, to_json
from domain.analysis.scenario import ScenarioError
from domain.markets import QUOTE, Catalog, CatalogError, load_catalog
from domain.money import AmountError, fmt, parse_amount
from domain.prices import read_price_csv

PROG = "loandesk backtest"


class InputError(ValueError):
    """A command-line value that cannot be used."""


def parse_when(text: str, flag: str) -> datetime:
    """ISO-8601 (``2020-03-12T00:00:00Z``, ``2020-03-12T00:00``, ``2020-03-12``); no zone means UTC."""
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise InputError(f"{flag} '{text}' is not an ISO-8601 time (like 2020-03-12T00:00:00Z)") from exc
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


HIGH_APR = Decimal("0.5")  # above this an --apr gets a note on stderr


def parse_apr(text: str) -> Decimal:
    """A percentage, as everywhere in loandesk: ``5`` or ``5%`` is 5%. A bare number below 1 (``0.05``) is
    refused with both readings: people also write fractions."""
    t = text.strip()
    try:
        value = parse_amount(t.removesuffix("%"))
    except AmountError as exc:
        raise InputError(f"--apr: {exc}") from exc
    if not t.endswith("%") and 0 < value < 1:
        raise InputError(f"--apr {t} is ambiguous: APRs are percentages here; write --apr {fmt(value * 100)} for "
                         f"{fmt(value * 100)}%, or --apr {t}% for {t}%")
    return value / 100


def file_asset(path: str, assets: list[str]) -> str | None:
    """The asset a price file's name says it holds (``BTCUSDT_1h_….csv`` → BTC), if it says one."""
    name = Path(path).name.upper()
    for symbol in sorted(assets, key=len, reverse=True):
        if name.startswith((f"{symbol}USDT", f"{symbol}-USDT", f"{symbol}_")):
            return symbol
    return None


def _amount(pair: list[str], flag: str) -> tuple[Decimal, str]:
    try:
        amount = parse_amount(pair[0])
    except AmountError as exc:
        raise InputError(f"{flag}: {exc}") from exc
    if amount <= 0:
        raise InputError(f"{flag}: the amount must be greater than zero")
    return amount, pair[1].strip().upper()


def _prices(args: argparse.Namespace, catalog: Catalog, loan: str, coll: str) -> dict[str, PricePath]:
    coll_volatile = coll != QUOTE and not catalog.is_stable(coll)
    main_asset = coll if coll_volatile else loan
    paths: dict[str, PricePath] = {}
    loan_volatile = loan != QUOTE and not catalog.is_stable(loan)
    if coll_volatile and loan_volatile and not args.loan_prices and not args.event:
        raise InputError(f"--loan {loan} is not a stablecoin, so its prices are needed too: add --loan-prices FILE "
                         f"(or use --event, which ships BTC and ETH)")
    for flag, file, asset in (("--prices", args.prices, main_asset), ("--loan-prices", args.loan_prices, loan)):
        named = file_asset(file, list(catalog.assets)) if file else None
        if named is not None and named != asset:
            raise InputError(f"{flag}: {Path(file).name} looks like {named} prices, but they are used for {asset}")
    if args.event:
        from bot.history.events import event_prices  # the shipped files are a bot package resource
        paths[main_asset] = event_prices(args.event, main_asset)
        if coll_volatile and loan != QUOTE and not catalog.is_stable(loan) and not args.loan_prices:
            paths[loan] = event_prices(args.event, loan)
    else:
        paths[main_asset] = read_price_csv(Path(args.prices), args.column, "--prices")
    if args.loan_prices:
        paths[loan] = read_price_csv(Path(args.loan_prices), args.column, "--loan-prices")
    return paths


def run(args: argparse.Namespace) -> int:
    try:
        if bool(args.prices) == bool(args.event):
            raise InputError("give either --prices FILE or --event NAME")
        loan_amount, loan = _amount(args.loan, "--loan")
        coll_amount, coll = _amount(args.collateral, "--collateral")
        apr = parse_apr(args.apr) if args.apr is not None else None
        if apr is not None and apr > HIGH_APR:
            print(f"{PROG}: note: --apr {fmt(apr * 100)}% is far above any market rate", file=sys.stderr)
        start = parse_when(args.start, "--from") if args.start else None
        end = parse_when(args.end, "--to") if args.end else None
        if start is not None and end is not None and end < start:
            raise InputError(f"--to {args.end} is before --from {args.start}")
        catalog = load_catalog(args.markets)
        if loan not in catalog.loans:
            raise InputError(f"--loan: {loan} is not a loan asset (borrowable: {', '.join(catalog.loans)})")
        if coll not in catalog.collateral:
            raise InputError(f"--collateral: {coll} is not accepted as collateral "
                             f"(accepted: {', '.join(catalog.collateral)})")
        paths = _prices(args, catalog, loan, coll)
        result = backtest(catalog, loan_amount, loan, coll_amount, coll, paths, apr, start, end)
    except (InputError, BacktestError, ScenarioError, CatalogError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    if args.chart:
        from bot.render.charts import render_backtest_chart  # matplotlib only when a chart is asked for
        try:
            Path(args.chart).write_bytes(render_backtest_chart(result))
        except OSError as exc:
            print(f"{PROG}: cannot write the chart to {args.chart}: {exc.strerror}", file=sys.stderr)
            return 2
    if args.json:
        report: dict[str, Any] = to_json(result, series=not args.no_series)
        if args.chart:
            report["chart"] = str(args.chart)
        json.dump(report, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        sys.stdout.write("\n".join(describe(result)) + "\n")
        if args.chart:
            sys.stdout.write(f"Chart: {args.chart}\n")
    return 0


def register(sub: Any) -> None:
    """Add the ``backtest`` subcommand to ``loandesk``'s subparsers."""
    p = sub.add_parser("backtest", help="replay a flexible position over a price history")
    p.add_argument("--loan", nargs=2, metavar=("AMOUNT", "ASSET"), required=True, help="e.g. --loan 4000 USDT")
    p.add_argument("--collateral", nargs=2, metavar=("AMOUNT", "ASSET"), required=True,
                   help="e.g. --collateral 1 BTC")
    p.add_argument("--prices", metavar="FILE", help="price CSV (timestamp,open,high,low,close,volume)")
    p.add_argument("--event", metavar="NAME", help="a shipped crash instead of --prices: march2020, may2021, "
                                                   "dec2021, aug2024")
    p.add_argument("--loan-prices", metavar="FILE", help="price CSV of the loan asset when it is not a stablecoin")
    p.add_argument("--column", default="close", help="price column to use (default close)")
    p.add_argument("--apr", help="a fixed flexible APR for the whole run, in percent (5 or 5%%); default: the rate "
                                 "model")
    p.add_argument("--from", dest="start", metavar="ISO", help="start time (default: the first price)")
    p.add_argument("--to", dest="end", metavar="ISO", help="end time (default: the last price)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--no-series", action="store_true", help="leave the LTV/price series out of the JSON")
    p.add_argument("--chart", metavar="PNG", help="also write a chart to this file")
    p.add_argument("--markets", default=None, help="a market catalog TOML to use instead of the shipped one")
    p.set_defaults(func=run)
