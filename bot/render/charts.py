"""Position and backtest charts as PNG bytes, drawn headless (matplotlib Agg) for a phone screen.

Two panels, 1080×1350 px: the watched asset's price against the position's margin-call and liquidation
prices, and the LTV against its thresholds, with markers where a warning, margin call or liquidation
happened. Decimals become floats only here, for drawing; no number a borrower reads comes from this module.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from domain.analysis.backtest import BacktestResult, Mark

WIDTH_IN, HEIGHT_IN, DPI = 7.2, 9.0, 150  # 1080 × 1350 px
LEVEL_COLOURS = {"initial": "#2e7d32", "warning": "#f9a825", "margin call": "#ef6c00", "liquidation": "#c62828"}
STYLE: Any = {"font.size": 15, "axes.titlesize": 18, "axes.labelsize": 15, "legend.fontsize": 12.5,
         "xtick.labelsize": 12.5, "ytick.labelsize": 13}
MARKER_COLOURS = {"warning": "#f9a825", "margin call": "#ef6c00", "liquidation": "#c62828", "max LTV": "#6a1b9a"}


def warm() -> None:
    """Import matplotlib ahead of the first chart (``loandesk run`` does it in the background once it is up, so
    that neither its start nor the first /chart waits for it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates
    import matplotlib.figure


@dataclass(frozen=True)
class Marker:
    """A labelled instant on both panels."""

    time: datetime
    label: str  # "warning", "margin call", "liquidation", "max LTV" or free text
    price: Decimal | None = None
    ltv: Decimal | None = None


def _f(x: Decimal | None) -> float | None:
    return None if x is None or not x.is_finite() else float(x)


def render_position_chart(title: str, asset: str, times: Sequence[datetime], prices: Sequence[Decimal],
                          ltvs: Sequence[Decimal | None], levels: Mapping[str, Decimal],
                          margin_call_price: Decimal | Sequence[Decimal | None] | None = None,
                          liquidation_price: Decimal | Sequence[Decimal | None] | None = None,
                          markers: Sequence[Marker] = (), quote: str = "USDT") -> bytes:
    """A PNG of one position: ``asset``'s price (top) with its trigger prices, and the LTV (bottom).

    ``levels`` maps names ("initial", "warning", "margin call", "liquidation") to LTV ratios; trigger prices
    are one value (a flat line) or one per instant (they drift up as interest accrues).
    """
    if not times or len(times) != len(prices) or len(times) != len(ltvs):
        raise ValueError("a chart needs times, prices and LTVs of the same non-zero length")
    import matplotlib  # here, not at import: matplotlib costs ~1 s of every `loandesk run` start (and restart)

    matplotlib.use("Agg")
    with matplotlib.rc_context(STYLE):
        return _draw(title, asset, times, prices, ltvs, levels, margin_call_price, liquidation_price, markers,
                     quote)


def _draw(title: str, asset: str, times: Sequence[datetime], prices: Sequence[Decimal],
          ltvs: Sequence[Decimal | None], levels: Mapping[str, Decimal],
          margin_call_price: Decimal | Sequence[Decimal | None] | None,
          liquidation_price: Decimal | Sequence[Decimal | None] | None, markers: Sequence[Marker],
          quote: str) -> bytes:
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [1, 1], "hspace": 0.08})
    xs = list(times)
    top.plot(xs, [float(p) for p in prices], color="#1565c0", linewidth=2.2, label=f"{asset} price")
    for name, line, colour in (("margin call", margin_call_price, LEVEL_COLOURS["margin call"]),
                               ("liquidation", liquidation_price, LEVEL_COLOURS["liquidation"])):
        if line is None:
            continue
        if isinstance(line, Decimal):
            top.axhline(float(line), color=colour, linestyle="--", linewidth=2,
                        label=f"{name} {float(line):,.0f}")
        else:
            top.plot(xs, [_f(v) for v in line], color=colour, linestyle="--", linewidth=2, label=f"{name} price")
    top.set_ylabel(f"{asset} in {quote}")
    top.set_title(title, loc="left", fontweight="bold")
    top.grid(alpha=0.3)

    bottom.plot(xs, [_f(v * 100) if v is not None else None for v in ltvs], color="#37474f", linewidth=2.4,
                label="LTV")
    for name, level in levels.items():
        bottom.axhline(float(level * 100), color=LEVEL_COLOURS.get(name, "#757575"), linestyle="--", linewidth=1.8,
                       label=f"{name} {float(level * 100):.0f}%")
    bottom.set_ylabel("LTV %")
    bottom.grid(alpha=0.3)
    top_ltv = max([float(v * 100) for v in ltvs if v is not None and v.is_finite()] + [float(x * 100)
                                                                                      for x in levels.values()])
    bottom.set_ylim(0, min(max(top_ltv * 1.08, 100.0), 200.0))

    for m in markers:
        colour = MARKER_COLOURS.get(m.label, "#455a64")
        for ax in (top, bottom):
            ax.axvline(m.time, color=colour, linewidth=1.2, linestyle=":", alpha=0.8)
        when = f"{m.time:%d %b %H:%M}"
        if m.price is not None:
            top.plot([m.time], [float(m.price)], "o", color=colour, markersize=11,
                     label=f"{m.label} {when}")
        if m.ltv is not None and m.ltv.is_finite():
            bottom.plot([m.time], [float(m.ltv * 100)], "o", color=colour, markersize=11)
    top.legend(loc="best", framealpha=0.9)
    bottom.legend(loc="lower right", framealpha=0.9, ncol=2, fontsize=12)

    locator = mdates.AutoDateLocator(minticks=3, maxticks=6)  # type: ignore[no-untyped-call,unused-ignore]
    formatter = mdates.ConciseDateFormatter(locator)  # type: ignore[no-untyped-call,unused-ignore]
    bottom.xaxis.set_major_locator(locator)
    bottom.xaxis.set_major_formatter(formatter)
    fig.subplots_adjust(left=0.15, right=0.97, top=0.95, bottom=0.07)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _marker(label: str, m: Mark | None) -> list[Marker]:
    return [] if m is None else [Marker(m.time, label, m.price, m.ltv)]


def render_backtest_chart(result: BacktestResult, title: str | None = None) -> bytes:
    """The chart of a backtest: price against the drifting trigger prices, LTV against the thresholds."""
    r = result
    points = r.points
    markers = (_marker("warning", r.first_warning if r.first_warning != r.first_margin_call else None)
               + _marker("margin call", r.first_margin_call if r.first_margin_call != r.liquidation else None)
               + _marker("liquidation", r.liquidation))
    if r.max_ltv is not None and r.max_ltv not in (r.liquidation, r.first_margin_call, r.first_warning):
        markers += _marker("max LTV", r.max_ltv)
    levels = {"initial": r.thresholds.initial, "warning": r.warning_ltv,
              "margin call": r.thresholds.margin_call, "liquidation": r.thresholds.liquidation}
    default = (f"{r.loan_amount.normalize():f} {r.loan_asset} on {r.collateral_amount.normalize():f} "
               f"{r.collateral_asset}: {r.outcome.replace('_', ' ')}")
    return render_position_chart(title or default, r.watched, [p.time for p in points],
                                 [p.price for p in points], [p.ltv for p in points], levels,
                                 [p.margin_call_price for p in points], [p.liquidation_price for p in points],
                                 markers)
