"""The one exception a handler raises for bad input, and what it carries.

A handler that finds something wrong with a request raises :class:`BadRequest`
with a short reason; the app maps it to a response in one place (JSON for the
API, the page itself for a form). The reason is shown to the client, so it
names what was wrong (a field, a limit) and never echoes a value.
"""

from __future__ import annotations

__all__ = ["BadRequest", "InvalidJson"]


class BadRequest(Exception):
    """A client error with an HTTP status and a one-line, user-safe reason."""

    def __init__(self, reason: str, status_code: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code


class InvalidJson(BadRequest):
    """The text does not parse as JSON at all (as opposed to parsing into something refused).

    A separate class so that a form page can replace the reason with a hint of
    its own ("value must be JSON, for example 42") while every other refusal
    (nesting, numbers, text) keeps its precise reason.
    """
