"""The one exception a handler raises for bad input, and what it carries.

A handler that finds something wrong with a request raises :class:`BadRequest`
with a short reason; the app maps it to a response in one place (JSON for the
API, the page itself for a form). The reason is shown to the client, so it
names what was wrong (a field, a limit) and never echoes a value. A
middleware that reads a body (the sign-in guard) answers the error as a
refusal (:meth:`BadRequest.refusal`, sent by :func:`bastion.responses.send_refusal`).
"""

from __future__ import annotations

from bastion.responses import Refusal

#: Per status: the refusal's title, its stable reason name, and what to do about it.
_REFUSALS = {
    400: ("Bad Request", "INVALID_BODY", "fix the body and send it again"),
    413: ("Content Too Large", "BODY_TOO_LARGE", "send a smaller body"),
    415: ("Unsupported Media Type", "UNSUPPORTED_MEDIA_TYPE", "send the body this endpoint reads"),
}


class BadRequest(Exception):
    """A client error with an HTTP status and a one-line, user-safe reason.

    ``name``, when given, is the refusal's stable name for a program to act
    on (``too_short``): a JSON client reads it as ``"reason"`` beside the
    sentence (:meth:`as_json`), which may change wording at any release.
    """

    def __init__(self, reason: str, status_code: int = 400, *, name: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code
        self.name = name

    def as_json(self) -> dict[str, str]:
        """The JSON body an app answers this with: ``{"error"}``, and ``"reason"`` when named."""
        body = {"error": self.reason}
        if self.name is not None:
            body["reason"] = self.name
        return body

    def refusal(self) -> Refusal:
        """This error as a refusal, for code that answers it itself (a middleware, not a handler).

        The hint carries the reason too, since a JSON client reads only the hint.
        """
        title, name, fix = _REFUSALS.get(self.status_code, _REFUSALS[400])
        return Refusal(self.status_code, title, name, self.reason, f"{self.reason}: {fix}")


class InvalidJson(BadRequest):
    """The text does not parse as JSON at all (as opposed to parsing into something refused).

    A separate class so that a form page can replace the reason with a hint of
    its own ("value must be JSON, for example 42") while every other refusal
    (nesting, numbers, text) keeps its precise reason.
    """
