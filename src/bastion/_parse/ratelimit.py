"""Sign-in limits as the settings spell them: the ``limits`` library's notation.

The limits come from the environment (``10/minute``, ``5/15minutes``, several
joined by ``;``). They are parsed here, once, both by the settings validator at
start-up (so a typo stops the app with one line) and by the limiter (so it
never meets a value the validator has not seen).
"""

from __future__ import annotations

from limits import RateLimitItem, parse_many

#: Replaces limits' default "LIMITER" namespace, so keys read ``signin/ip/...``.
NAMESPACE = "signin"

#: The moving window keeps one timestamp per counted attempt, so the limit is
#: also the size of the largest list a key can hold. A sign-in limit above this
#: is a mistake, not a policy.
MAX_PER_WINDOW = 10_000

_NOTATION = "limits notation such as 10/minute or 5/15minutes (several joined by ';')"


def parse_rate_limit(text: str) -> tuple[RateLimitItem, ...]:
    """Parse ``text`` into rate-limit items; raise ValueError naming the expected notation."""
    try:
        items = parse_many(text)
    except ValueError:
        raise ValueError(f"expected {_NOTATION}") from None
    for item in items:
        if item.amount < 1:
            raise ValueError(f"a limit of 0 refuses every attempt; expected {_NOTATION}")
        if item.amount > MAX_PER_WINDOW:
            raise ValueError(f"expected at most {MAX_PER_WINDOW} attempts per window")
    return tuple(type(item)(item.amount, item.multiples, namespace=NAMESPACE) for item in items)
