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
  demoted primary, but only seconds after the switch. Until then valkey-py
  keeps using connections that the old primary still answers, and what it
  writes there is lost (valkey-py #250, redis-py #435/#460; measured: 23,420
  of 44,899 writes in a planned switch): :class:`PrimaryWatch` follows the
  Sentinels' announcements instead, from the first one.
- **Cluster.** ``MOVED`` and ``ASK`` are followed inside valkey-py's
  ``ValkeyCluster``; a dead node's slots are re-read from the others, and
  the call is tried once more. Its known gap (valkey-py #327: once every
  seed failed a call, it has none left to ask and never recovers) is closed
  by :func:`repair_cluster`; and it reads the command table only once
  (:func:`_commands_once`).
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
#: How long the Sentinels' answer is reused for new connections before they are asked again.
ASKED_SECONDS = 1.0
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
    pool, connection = _following_pool()
    client: valkey_asyncio.Valkey = sentinels.master_for(
        target.service, connection_pool_class=pool, connection_class=connection
    )
    return client


@functools.cache
def _following_pool() -> tuple[type[Any], type[Any]]:
    """valkey-py's Sentinel pool, plus: a connection given back after a switch is closed.

    valkey-py's asyncio pool returns every connection to the idle list, even
    one still open to a primary the Sentinels have since replaced; closing it
    on its way back makes its next user ask the Sentinels again.
    """
    from valkey.asyncio.sentinel import (  # noqa: PLC0415
        SentinelConnectionPool,
        SentinelManagedConnection,
    )

    class Connection(SentinelManagedConnection):
        """valkey-py's, with a ``repr`` that survives its pool (it holds only a weak proxy).

        A connection collected after its pool reported itself as unclosed
        through ``repr``, which then raised ``ReferenceError`` inside ``__del__``.
        """

        def __repr__(self) -> str:
            return f"<bastion Sentinel-managed connection host={self.host} port={self.port}>"

    class FollowingPool(SentinelConnectionPool):
        #: A primary announced as being promoted, kept until the Sentinels' answer
        #: names it too, or until :data:`PIN_SECONDS` pass (a failover that aborted).
        promoted: tuple[str, int] | None = None
        promoted_until = 0.0
        asked_until = 0.0

        async def get_master_address(self) -> Any:
            # valkey-py's own, with two changes. The answer is reused for
            # ASKED_SECONDS: valkey-py asks the Sentinels on every new connection,
            # and under saturation (calls cancelled at their deadline drop their
            # connection) those extra round trips were what missed deadlines
            # (measured: 109 misses in 14,848 reads against 0 to 16 without).
            # A switch is announced (PrimaryWatch) and moves the address at once.
            # And an announced promotion wins over the Sentinels' answer until
            # they agree (or the pin runs out).
            now = time.monotonic()
            if self.master_address is not None and now < self.asked_until:
                return self.master_address
            address = await self.sentinel_manager.discover_master(self.service_name)
            self.asked_until = time.monotonic() + ASKED_SECONDS
            pinned = self.promoted
            if pinned is not None and address != pinned and now < self.promoted_until:
                self.master_address = pinned
                return pinned
            self.promoted = None
            if self.master_address != address:
                self.master_address = address
                await self.disconnect(inuse_connections=False)
            return address

        async def release(self, connection: Any) -> None:
            stale = self.master_address not in (None, (connection.host, connection.port))
            await super().release(connection)
            if stale:
                await connection.disconnect()

    return FollowingPool, Connection


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
    """Moves a Sentinel client to a new primary the moment the Sentinels announce it.

    A planned switch (``SENTINEL FAILOVER``) leaves the old primary alive and
    writable for seconds after the replica was promoted, until Sentinel
    reconfigures it; connections to it keep working and their writes are
    thrown away when it resyncs (valkey-py #250). On the first announcement
    that names the replica being promoted, the pool is pointed at it (and
    kept there until the Sentinels' own answer agrees, see
    :func:`_following_pool`) and every connection is dropped, busy ones
    included: no write acknowledged after that lands on the old primary
    (measured: none lost of tens of thousands; the calls in flight fail).
    One task per client, started with its first call, subscribed to every
    Sentinel (only the one leading a failover announces its first steps) and
    reconnecting to each with a short pause while it does not answer; it
    never touches a request.
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
        # Every Sentinel at once: only the one leading a failover announces its
        # first steps, and any of them may lead the next.
        await asyncio.gather(*map(self._follow, list(self.pool.sentinel_manager.sentinels)))

    async def _follow(self, sentinel: valkey_asyncio.Valkey) -> None:
        while True:
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
        if not address[1].isdigit():
            return
        new = (address[0], int(address[1]))
        pinned = self.pool.promoted is not None and time.monotonic() < self.pool.promoted_until
        if self.pool.master_address == new or (channel == b"+switch-master" and pinned):
            # While a promotion is under way, a +switch-master naming another primary
            # is a Sentinel catching up on an earlier switch (seen in the tests).
            return
        self.switches += 1
        logger.info("Valkey: the Sentinels promoted a new primary; following it")
        self.pool.promoted = self.pool.master_address = new
        self.pool.promoted_until = time.monotonic() + PIN_SECONDS
        # Busy connections too: a call in flight to the old primary then fails
        # (a miss, a local decision) rather than succeed on a primary whose writes
        # are about to be thrown away. The Sentinel announces the promotion a
        # moment (one of its 100 ms ticks) before it sends REPLICAOF NO ONE, so a
        # call that succeeded before this line landed while the old primary still
        # replicated.
        await self.pool.disconnect(inuse_connections=True)

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
