"""The answer to one sign-in attempt, and the HTTP headers that tell the client."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Scope = Literal["ip", "account"]


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether one attempt may proceed, and the numbers for the RateLimit headers.

    One record from the window's arithmetic to the HTTP answer: the Lua
    script's reply, the in-memory twin and a remembered refusal all produce
    it. ``limit`` and ``remaining`` describe the tightest limit: the one that
    refused, or, when allowed, the one with the fewest attempts left.
    ``reset_ms`` is how long until that limit's window frees a slot, as the
    window measured it; :attr:`reset_after` is the same in whole seconds (at
    least 1), for the headers. ``scope`` says which limit refused (None when
    allowed; for :meth:`~bastion.ratelimit.SignInLimiter.peek`, the scope
    read). ``degraded`` is True when Valkey failed and the in-process
    fallback decided, so the count was this process's alone.
    """

    allowed: bool
    scope: Scope | None
    limit: int
    remaining: int
    reset_ms: int
    degraded: bool = False

    @property
    def reset_after(self) -> int:
        """Seconds until a slot frees, rounded up, at least 1 (``Retry-After``)."""
        return max(1, -(-self.reset_ms // 1000))


def rate_limit_headers(decision: Decision) -> dict[str, str]:
    """``RateLimit-Limit``/``-Remaining``/``-Reset`` always; ``Retry-After`` only when blocked.

    The three separate fields are the form most clients and proxies read
    today (IETF httpapi draft, earlier revisions). ``Retry-After`` is the
    standard HTTP field a client acts on after a 429.
    """
    fields = {
        "RateLimit-Limit": str(decision.limit),
        "RateLimit-Remaining": str(decision.remaining),
        "RateLimit-Reset": str(decision.reset_after),
    }
    if not decision.allowed:
        fields["Retry-After"] = str(decision.reset_after)
    return fields
