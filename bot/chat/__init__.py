"""The chat, shared by Telegram and the console: ``registry`` (every command: who, where, help, usage),
``parsing`` (the one place that reads chat text), ``desk`` (``ChatDesk``: routing, taps) with its handlers in
``borrower``, ``guided`` (``/borrow`` step by step), ``operator`` and ``tools``; ``groups`` (monitoring
groups); ``vip_syntax`` (the operators' ``/vip``)."""
