"""Typed reads through a plain sync Valkey client, to inspect what bastion wrote.

valkey-py types every reply as ``Awaitable | Any`` because one class serves
sync and async; these helpers state the sync types once.
"""

from __future__ import annotations

from typing import cast

import valkey


def keys(client: valkey.Valkey, pattern: str = "*") -> list[bytes]:
    return sorted(cast("list[bytes]", client.keys(pattern)))


def ttl(client: valkey.Valkey, key: str) -> int:
    return cast("int", client.ttl(key))


def get(client: valkey.Valkey, key: str) -> bytes | None:
    return cast("bytes | None", client.get(key))
