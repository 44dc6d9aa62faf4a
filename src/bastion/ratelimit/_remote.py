"""The two Valkey calls the limiter makes: decide (one script call) and forget (one DEL).

Both go through :class:`bastion.cache._connection.ValkeyConnection`, so they
share the cache's guarantees: one deadline per call that gives a late event
loop its turn before it cancels, a breaker that judges Valkey by its failure
rate, and ``FAILED`` instead of an exception.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, cast

from bastion.cache._connection import Failed, ValkeyConnection
from bastion.ratelimit._decision import Decision, Scope
from bastion.ratelimit._window import (
    PEEK_SCRIPT,
    SCRIPT,
    SCRIPT_SHA,
    Check,
    parse_reply,
    peek_decisions,
    script_args,
)

if TYPE_CHECKING:
    from bastion.cache._clients import Client


async def decide_remote(
    connection: ValkeyConnection, checks: Sequence[Check], member: str
) -> Decision | Failed:
    """Check and record ``checks`` atomically; ``member`` names this attempt in every window."""
    keys, args = script_args(checks, member)
    words = [*keys, *map(str, args)]

    async def run(client: Client) -> Decision:
        # Loaded with the client by now (bastion.cache._connection), so this costs nothing.
        from valkey.exceptions import NoScriptError  # noqa: PLC0415

        try:
            reply = await cast("Awaitable[object]", client.evalsha(SCRIPT_SHA, len(keys), *words))
        except NoScriptError:  # first call on this Valkey (or after SCRIPT FLUSH): load it
            reply = await cast("Awaitable[object]", client.eval(SCRIPT, len(keys), *words))
        return parse_reply(reply)

    return await connection.call("ratelimit", run)


async def forget_remote(connection: ValkeyConnection, keys: Sequence[str]) -> int | Failed:
    async def run(client: Client) -> int:
        return int(await client.delete(*keys))

    return await connection.call("ratelimit_reset", run)


async def peek_remote(
    connection: ValkeyConnection, checks: Sequence[Check]
) -> dict[Scope, Decision] | Failed:
    """The windows of ``checks`` as they stand, read in one call; nothing is recorded."""
    keys = [check.key for check in checks]
    windows = [str(check.window_ms) for check in checks]

    async def run(client: Client) -> dict[Scope, Decision]:
        reply = await cast(
            "Awaitable[object]", client.eval(PEEK_SCRIPT, len(keys), *keys, *windows)
        )
        if not isinstance(reply, list) or len(reply) != 2 * len(checks):
            raise ValueError(f"unexpected rate-limit peek reply: {reply!r}")
        pairs = [(int(reply[i]), int(reply[i + 1])) for i in range(0, len(reply), 2)]
        return peek_decisions(checks, pairs)

    return await connection.call("ratelimit_peek", run)
