"""The ``loandesk`` command line: ``simulate`` lives here; ``run``/``console`` and ``backtest`` register
themselves from their own modules."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from bot.entry.backtest import register as register_backtest
from bot.entry.console import register as register_console
from bot.entry.run import register as register_bot_commands
from domain.analysis.report import render
from domain.analysis.scenario import ScenarioError
from domain.analysis.simulate import simulate
from domain.markets import CatalogError, load_catalog


def _simulate(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        scenario = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        print(f"loandesk simulate: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 2
    except json.JSONDecodeError as exc:
        print(f"loandesk simulate: {path} is not valid JSON: {exc}", file=sys.stderr)
        return 2
    try:
        catalog = load_catalog(args.markets)
        report = simulate(scenario, catalog, base_dir=path.resolve().parent)
    except (ScenarioError, CatalogError) as exc:
        print(f"loandesk simulate: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(render(report))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="loandesk", description="Overcollateralised crypto loans on Telegram.")
    sub = parser.add_subparsers(dest="command", required=True)
    sim = sub.add_parser("simulate", help="replay a scenario file through the engine and print JSON")
    sim.add_argument("file", help="scenario JSON (see SCENARIO.md)")
    sim.add_argument("--markets", default=None, help="a market catalog TOML to use instead of the shipped one")
    sim.set_defaults(func=_simulate)
    register_bot_commands(sub)
    register_console(sub)
    register_backtest(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except BrokenPipeError:  # `loandesk backtest --json | head`: the reader left; stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the final flush at exit does not raise again
        return 1
    return code


if __name__ == "__main__":
    raise SystemExit(main())
