"""What people read when something failed on our side: the person whose request failed, and the operators.

The person's sentence is true whatever went wrong: a failure may come before the unit of work committed (nothing
changed) or after it (the change was made, only the answer failed), and the handler cannot tell which — so it
says so, points at where to look, and gives the id that finds the error in the logs. Plain text (no HTML): it is
sent when something already went wrong.
"""

from __future__ import annotations

TOAST_LIMIT = 200


def failure(error_id: str) -> str:
    """The answer to a request that failed with an uncaught error."""
    return (f"Something went wrong on our side (error {error_id}), and your request may or may not have gone "
            "through. Please check /positions or /wallet before trying again. The operators have been told.")


def failure_without_id() -> str:
    """The same where no id is kept and nobody is told (the offline console)."""
    return ("Something went wrong on our side, and your request may or may not have gone through. Please check "
            "/positions or /wallet before trying again.")


def failure_toast(error_id: str) -> str:
    """The same for a button (Telegram shows at most 200 characters)."""
    return f"Something went wrong (error {error_id}). Check /positions before trying again."[:TOAST_LIMIT]


def operator_alert(error_id: str, where: str, kind: str, held: int, instance: str = "") -> str:
    """One short line for the operators; the details are in the log line with the same id."""
    text = f"⚠️ Error {error_id}: {where} failed ({kind})."
    if instance:
        text += f" Instance {instance}."
    text += f" Details: grep {error_id} in the logs."
    if held:
        text += f" {held} more error{'s' if held != 1 else ''} since the last alert (not alerted)."
    return text
