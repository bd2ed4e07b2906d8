"""``loandesk backtest``: replay a flexible position over a price file (or a shipped crash) and report.

    loandesk backtest --loan 4000 USDT --collateral 1 BTC --prices FILE.csv [--apr 0.05] [--from ISO] [--to ISO]
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
from domain.money import AmountError, parse_amount
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


def parse_apr(text: str) -> Decimal:
    """``0.05`` or ``5%``."""
    t = text.strip()
    try:
        return parse_amount(t[:-1]) / 100 if t.endswith("%") else parse_amount(t)
    except AmountError as exc:
        raise InputError(f"--apr: {exc}") from exc


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
    p.add_argument("--apr", help="a fixed flexible APR for the whole run (0.05 or 5%%); default: the rate model")
    p.add_argument("--from", dest="start", metavar="ISO", help="start time (default: the first price)")
    p.add_argument("--to", dest="end", metavar="ISO", help="end time (default: the last price)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--no-series", action="store_true", help="leave the LTV/price series out of the JSON")
    p.add_argument("--chart", metavar="PNG", help="also write a chart to this file")
    p.add_argument("--markets", default=None, help="a market catalog TOML to use instead of the shipped one")
    p.set_defaults(func=run)
