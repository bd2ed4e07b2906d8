"""python-telegram-bot: ``handlers`` (updates → chat → Bot API calls, menus from the registry) and ``flood``
(per-user rate limiting)."""
