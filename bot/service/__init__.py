"""Use cases around the domain, one unit of work each: ``usecases`` (the typed actions a person confirms),
``actions`` (what each does to the desk), ``loans`` (``LoanService``: reads, previews with one-time tokens,
confirm), ``tools`` (``ToolService``: protection, alerts, risk tools), ``views`` (read models), ``store`` (the
database: the storage unit of work plus the bot's own tables)."""
