"""Errors the Django layer shows to people: a refusal with a message, a code and a status.

``ApplicationError`` is what a service raises when a person (panel, API, CLI, Telegram)
asked for something the rules refuse; views map it to ``http_status`` and
``{"error": message}``. Errors of the pure core live in ``apps.model.errors``.
"""

from __future__ import annotations


class ApplicationError(Exception):
    """A user-facing refusal: nothing was changed, the message says why and what to do.

    Parameters
    ----------
    message
        Human-readable explanation, shown as is.
    **extra
        Structured context (field names, ranges) kept in ``.extra``.
    """

    code: str = "application_error"
    http_status: int = 400

    def __init__(self, message: str, **extra: object) -> None:
        super().__init__(message)
        self.message = message
        self.extra: dict[str, object] = extra

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code!r}, extra={self.extra!r})"
