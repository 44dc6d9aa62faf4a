"""The answer to one sign-in attempt, and the HTTP headers that tell the client."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Scope = Literal["ip", "account"]


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether one attempt may proceed, and the numbers for the RateLimit headers.

    ``limit`` and ``remaining`` describe the tightest limit: the one that
    blocked, or, when allowed, the one with the fewest attempts left.
    ``reset_after`` is the number of seconds until that limit's window frees a
    slot (at least 1). ``scope`` says which limit blocked (None when allowed).
    ``degraded`` is True when Valkey failed and the in-process fallback
    decided, so the count was this process's alone.
    """

    allowed: bool
    limit: int
    remaining: int
    reset_after: int
    scope: Scope | None = None
    degraded: bool = False


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
