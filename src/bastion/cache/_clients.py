"""The asyncio client for a ``VALKEY_URL``: one server, a Sentinel-managed primary, or a Cluster.

One factory, so that every Valkey user (the JSON cache, the sign-in and
sign-up limits) talks to the same kind of client with the same settings:
no valkey-py timers, no retries and no handshake extras, because
:class:`bastion.cache._connection.ValkeyConnection` bounds every call with
one deadline and judges it with the breaker (see its comments for why
valkey-py's own timers only did harm).

What each topology does on a failover, and why that is enough:

- **Sentinel.** Every new connection asks the Sentinels for the primary
  (valkey-py's ``SentinelConnectionPool``). A connection to a primary that
  died fails its call (``FAILED``: a miss or a local decision) and is
  dropped, so the next call asks again. A primary that was demoted but is
  alive answers writes with ``READONLY``, which valkey-py turns into a
  dropped connection and a ``ConnectionError`` (the same ``FAILED``), not a
  stale success; Sentinel also kills normal clients when it reconfigures a
  demoted primary. What valkey-py does not do (valkey-py #250, redis-py
  #435/#460) is leave a connection that is still open and still answered
  by the old primary during a planned switch: :class:`PrimaryWatch` listens
  for the Sentinels' ``+switch-master`` and drops every connection at once.
- **Cluster.** ``MOVED`` and ``ASK`` are followed inside valkey-py's
  ``ValkeyCluster``; a dead node's slots are re-read from the others. Its
  known gap (valkey-py #327: once every seed was unreachable, it has none
  left to ask and never recovers) is closed by :func:`repair_cluster`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from typing import TYPE_CHECKING, Any, TypeAlias

from bastion._parse.urls import ValkeyTarget, valkey_target

if TYPE_CHECKING:
    import valkey.asyncio as valkey_asyncio
    from valkey.asyncio.cluster import ValkeyCluster

logger = logging.getLogger("bastion.cache")

#: How long an announced promotion is trusted over the Sentinels' own answer.
PIN_SECONDS = 10.0
#: The Sentinel announcements that name the replica being promoted, earliest first.
_PROMOTING = (b"+failover-state-send-slaveof-noone", b"+promoted-slave")

#: What a call receives: both kinds answer the commands bastion sends alike.
Client: TypeAlias = "valkey_asyncio.Valkey | ValkeyCluster"


def _common() -> dict[str, Any]:
    from valkey.asyncio.retry import Retry  # noqa: PLC0415 - imported with the client
    from valkey.backoff import NoBackoff  # noqa: PLC0415

    return {
        "socket_connect_timeout": None,
        "socket_timeout": None,
        "retry": Retry(NoBackoff(), 0),
        "health_check_interval": 0,
        "decode_responses": False,
        # No CLIENT SETINFO on connect: two more round trips on every new
        # connection, and a burst of new connections on a busy loop (a
        # cold pool, or one refilled after a timeout) is exactly when
        # connects run late. A connect is one handshake.
        "lib_name": None,
        "lib_version": None,
    }


def make_client(url: str) -> Client:
    """A client for ``url`` (already checked by the settings), bound to no loop until used."""
    import valkey.asyncio as valkey_asyncio  # noqa: PLC0415 - see bastion.cache._connection

    target = valkey_target(url)
    if target.kind == "single":
        single: valkey_asyncio.Valkey = valkey_asyncio.Valkey.from_url(url, **_common())
        return single
    if target.kind == "sentinel":
        return _sentinel_client(target)
    from valkey.asyncio.cluster import ClusterNode, ValkeyCluster  # noqa: PLC0415

    cluster = ValkeyCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in target.hosts],
        username=target.username,
        password=target.password,
        # One retry after re-reading the slots: the call that meets a failed-over
        # primary then lands on its replica, still inside the one deadline.
        cluster_error_retry_attempts=1,
        connection_error_retry_attempts=0,
        # The seeds stay the configured ones, so repair_cluster has them to put back.
        dynamic_startup_nodes=False,
        **_common(),
    )
    cluster.commands_parser = _commands_once()()
    return cluster


@functools.cache
def _commands_once() -> type[Any]:
    """valkey-py's table of commands, fetched once per client instead of on every rediscovery.

    valkey-py re-reads the whole ``COMMAND`` table (hundreds of kilobytes to
    parse) each time it rediscovers the Cluster, that is after every failed
    call to a node. Under one call's deadline on a busy loop that read is
    what timed out: measured, decisions stayed local 2.75 s after a replica
    had taken over. The table does not change while a client lives.
    """
    from valkey._parsers import AsyncCommandsParser  # noqa: PLC0415

    class CommandsOnce(AsyncCommandsParser):
        __slots__ = ()

        async def initialize(self, node: Any = None) -> None:
            if node is not None:
                self.node = node
            if not self.commands:
                await super().initialize(node)

    return CommandsOnce


def _sentinel_client(target: ValkeyTarget) -> valkey_asyncio.Valkey:
    from valkey.asyncio.sentinel import Sentinel  # noqa: PLC0415

    common = _common()
    sentinels = Sentinel(  # type: ignore[no-untyped-call]
        list(target.hosts),
        # The Sentinels are asked without the data nodes' password (their own is rare).
        sentinel_kwargs=common,
        username=target.username,
        password=target.password,
        db=target.db,
        **common,
    )
    client: valkey_asyncio.Valkey = sentinels.master_for(
        target.service, connection_pool_class=_following_pool()
    )
    return client


@functools.cache
def _following_pool() -> type[Any]:
    """valkey-py's Sentinel pool, plus: a connection given back after a switch is closed.

    valkey-py's asyncio pool returns every connection to the idle list, even
    one still open to a primary the Sentinels have since replaced; closing it
    on its way back makes its next user ask the Sentinels again.
    """
    from valkey.asyncio.sentinel import SentinelConnectionPool  # noqa: PLC0415

    class FollowingPool(SentinelConnectionPool):
        #: A primary announced as being promoted, kept until the Sentinels' answer
        #: names it too, or until :data:`PIN_SECONDS` pass (a failover that aborted).
        promoted: tuple[str, int] | None = None
        promoted_until = 0.0

        async def get_master_address(self) -> Any:
            address = await super().get_master_address()  # type: ignore[no-untyped-call]
            pinned = self.promoted
            if pinned is None or address == pinned or time.monotonic() > self.promoted_until:
                self.promoted = None
                return address
            self.master_address = pinned
            return pinned

        async def release(self, connection: Any) -> None:
            stale = self.master_address not in (None, (connection.host, connection.port))
            await super().release(connection)
            if stale:
                await connection.disconnect()

    return FollowingPool


def repair_cluster(client: Client, url: str) -> None:
    """Put the configured seeds back into a Cluster client that lost them all (valkey-py #327).

    valkey-py drops a seed from its list when a call to it fails, and
    rediscovers the Cluster only from that list: after every node was
    unreachable for a moment (a network blip, all nodes restarted) it has
    nothing left to ask and fails every call for good.
    """
    from valkey.asyncio.cluster import ClusterNode, ValkeyCluster  # noqa: PLC0415

    if not isinstance(client, ValkeyCluster):
        return
    seeds = client.nodes_manager.startup_nodes
    for host, port in valkey_target(url).hosts:
        node = ClusterNode(host, port, **client.connection_kwargs)
        seeds.setdefault(node.name, node)


class PrimaryWatch:
    """Drops a Sentinel client's connections the moment the Sentinels announce a new primary.

    A planned switch (``SENTINEL FAILOVER``) leaves the old primary alive and
    writable for seconds after the replica was promoted, until Sentinel
    reconfigures it; connections to it keep working and their writes are
    thrown away when it resyncs (valkey-py #250). Listening to
    ``+switch-master`` on the Sentinels, and disconnecting every pooled
    connection when it arrives, moves the next call to the new primary.
    One task per client, started with its first call, reconnecting with a
    short pause while no Sentinel answers; it never touches a request.
    """

    def __init__(self, client: valkey_asyncio.Valkey, service: str) -> None:
        self.client = client
        self.service = service
        self.pool: Any = client.connection_pool
        self.switches = 0
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def of(cls, client: Client) -> PrimaryWatch | None:
        """A watch for a Sentinel client, None for any other."""
        from valkey.asyncio.sentinel import SentinelConnectionPool  # noqa: PLC0415

        pool = getattr(client, "connection_pool", None)
        if not isinstance(pool, SentinelConnectionPool):
            return None
        return cls(client, pool.service_name)  # type: ignore[arg-type]

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            for sentinel in list(self.pool.sentinel_manager.sentinels):
                with contextlib.suppress(Exception):
                    await self._listen(sentinel)
            await asyncio.sleep(0.1)

    async def _listen(self, sentinel: valkey_asyncio.Valkey) -> None:
        pubsub = sentinel.pubsub()
        try:
            await pubsub.subscribe(*_PROMOTING, b"+switch-master")
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
                if message is not None:
                    await self._heard(bytes(message["channel"]), bytes(message["data"]))
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _heard(self, channel: bytes, data: bytes) -> None:
        """Follow the new primary from whichever announcement names it first.

        ``+failover-state-send-slaveof-noone`` (``slave <ip:port> <ip> <port> @
        <name> ...``) comes as the Sentinel tells the chosen replica to become
        the primary: from then on, a write to the old primary is lost, and one
        to the replica is refused (``READONLY``: a failed call, then a
        reconnect) only until it has become the primary, a moment later.
        ``+promoted-slave`` says the same once the promotion is seen, for a
        watcher that missed the first; ``+switch-master`` (``<name> <old ip>
        <old port> <new ip> <new port>``) once the other replicas follow, a
        second or more later, which is when the Sentinels' answer changes.
        """
        words = data.decode(errors="replace").split()
        if channel in _PROMOTING and len(words) >= 6 and words[5] == self.service:
            address = (words[2], words[3])
        elif channel == b"+switch-master" and len(words) == 5 and words[0] == self.service:
            address = (words[3], words[4])
        else:
            return
        if not address[1].isdigit() or self.pool.master_address == (address[0], int(address[1])):
            return
        self.switches += 1
        logger.info("Valkey: the Sentinels promoted a new primary; following it")
        self.pool.promoted = self.pool.master_address = (address[0], int(address[1]))
        self.pool.promoted_until = time.monotonic() + PIN_SECONDS
        # Idle connections now; busy ones as they come back (FollowingPool).
        await self.pool.disconnect(inuse_connections=False)

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
