"""Prometheus metrics of one instance (``prometheus-client``), served at ``/metrics`` by ``bot.ops.http``.

``Metrics`` owns a registry of its own (several Applications may live in one test process). Counters and
histograms are per process — Prometheus' ``rate()``/``increase()`` handle a restart — and the desk-wide gauges
are read from the database at scrape time (``bot.ops.probe``), so every instance reports the same book:

==================================================  =================================================================
``loandesk_leader``                                 1 while this instance leads (scheduler, sweeps, pushes)
``loandesk_leader_changes_total``                   times this instance started or stopped leading
``loandesk_price_age_seconds{asset}``               age of the last accepted price (leader only: standbys do not poll)
``loandesk_sweep_duration_seconds``                 one tick, all its parts (accrual … sweep, commits included)
``loandesk_positions{band}``                        active positions: below_warning, warning, margin_call, direct
``loandesk_margin_calls_total``                     margin calls (and reminders) this instance's ticks wrote
``loandesk_liquidations_total``                     liquidations this instance's ticks wrote
``loandesk_events_total{type}``                     every event its ticks wrote, by type
``loandesk_outbox_backlog``                         events not yet expanded + deliveries pending
``loandesk_outbox_held``                            critical deliveries held for chats that refuse the bot
``loandesk_outbox_oldest_pending_seconds``          age of the oldest pending delivery
``loandesk_pushes_sent_total``                      pushes Telegram accepted (``rate()`` = delivery rate)
``loandesk_telegram_requests_total{method,status}`` Bot API calls by HTTP status
``loandesk_telegram_429_total{method}``             Bot API 429 answers (replies and pushes alike)
``loandesk_chat_update_seconds``                    an update from arrival to its handlers' end (replies sent)
``loandesk_errors_total``                           incidents (uncaught errors) with an id
``loandesk_binance_sync_budget_used_ratio``         share of Binance's request-weight budget the sync used
``loandesk_database_up``                            the probe's query worked
==================================================  =================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from bot.ops.probe import DbProbe
from domain.events import Event

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SWEEP_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
MARGIN_CALLS = frozenset({"margin_call", "margin_call_reminder"})
LIQUIDATIONS = frozenset({"liquidated"})  # full and partial alike
PriceAges = Callable[[], dict[str, float]]


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.leader = Gauge("loandesk_leader", "1 while this instance leads (scheduler, sweeps, pushes)", registry=r)
        self.leader_changes = Counter("loandesk_leader_changes", "Times this instance started or stopped leading",
                                      registry=r)
        self.sweep_seconds = Histogram("loandesk_sweep_duration_seconds", "One tick, all its parts, commits included",
                                       buckets=SWEEP_BUCKETS, registry=r)
        self.margin_calls = Counter("loandesk_margin_calls", "Margin calls (and reminders) written by this instance",
                                    registry=r)
        self.liquidations = Counter("loandesk_liquidations", "Liquidations written by this instance", registry=r)
        self.events = Counter("loandesk_events", "Events written by this instance's ticks", ["type"], registry=r)
        self.pushes = Counter("loandesk_pushes_sent", "Pushes Telegram accepted from this instance", registry=r)
        self.requests = Counter("loandesk_telegram_requests", "Bot API calls by HTTP status", ["method", "status"],
                                registry=r)
        self.too_many = Counter("loandesk_telegram_429", "Bot API answers 429 Too Many Requests", ["method"],
                                registry=r)
        self.chat_latency = Histogram("loandesk_chat_update_seconds", "An update from arrival to its handlers' end",
                                      buckets=LATENCY_BUCKETS, registry=r)
        self.errors = Counter("loandesk_errors", "Uncaught errors reported with an incident id", registry=r)
        self.sync_budget_used = Gauge("loandesk_binance_sync_budget_used_ratio",
                                      "Share of Binance's request-weight budget the account sync used", registry=r)

    def watch(self, probe: DbProbe, price_ages: PriceAges) -> None:
        """Add the desk-wide gauges read at scrape time."""
        self.registry.register(_Desk(probe, price_ages))

    def observe_tick(self, seconds: float, events: list[Event]) -> None:
        self.sweep_seconds.observe(seconds)
        for event in events:
            self.events.labels(event.type).inc()
            if event.type in MARGIN_CALLS:
                self.margin_calls.inc()
            elif event.type in LIQUIDATIONS:
                self.liquidations.inc()

    def set_leader(self, leading: bool) -> None:
        self.leader.set(1 if leading else 0)
        self.leader_changes.inc()

    def request(self, method: str, status: int) -> None:
        self.requests.labels(method, str(status)).inc()
        if status == 429:
            self.too_many.labels(method).inc()

    def render(self) -> bytes:
        """The text exposition format (blocking: reads the database; call it off the event loop)."""
        return generate_latest(self.registry)


class _Desk(Collector):
    def __init__(self, probe: DbProbe, price_ages: PriceAges) -> None:
        self.probe = probe
        self.price_ages = price_ages

    def describe(self) -> list[GaugeMetricFamily]:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        state = self.probe.read()
        yield GaugeMetricFamily("loandesk_database_up", "The probe's query worked", value=1 if state.up else 0)
        ages = GaugeMetricFamily("loandesk_price_age_seconds", "Age of the last accepted price", labels=["asset"])
        for asset, age in sorted(self.price_ages().items()):
            ages.add_metric([asset], age)
        yield ages
        if not state.up:
            return
        bands = GaugeMetricFamily("loandesk_positions", "Active positions by LTV band", labels=["band"])
        for band, n in sorted(state.bands.items()):
            bands.add_metric([band], n)
        yield bands
        yield GaugeMetricFamily("loandesk_outbox_backlog", "Events not yet expanded plus deliveries pending",
                                value=state.backlog)
        yield GaugeMetricFamily("loandesk_outbox_held", "Critical deliveries held for chats that refuse the bot",
                                value=state.held)
        yield GaugeMetricFamily("loandesk_outbox_oldest_pending_seconds", "Age of the oldest pending delivery",
                                value=state.oldest_pending_seconds)
