"""What runs on its own: ``prices`` (exchange clients), ``feed`` (polls into the domain's ``PriceGuard``),
``scheduler`` (APScheduler jobs around the domain's one tick, the leader lock, operator notices) and
``notifier`` (outbox → Telegram, most urgent first, paced, retried)."""
