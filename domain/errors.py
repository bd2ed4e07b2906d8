"""Rejections (every refused action carries a stable reason code and a sentence for a person) and input errors."""

from __future__ import annotations


class Rejected(Exception):
    """An action that was refused. It changed nothing."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"Rejected({self.code!r}, {self.message!r})"


class InputError(ValueError):
    """A file or document a person wrote (a scenario, a price history) is malformed; the text says where."""
