"""Valkey behind Sentinels and as a Cluster, for the tests (the topologies live in harness/).

:class:`~harness.valkey_ha.ValkeySentinels` (a primary, two replicas, three
Sentinels) and :class:`~harness.valkey_ha.ValkeyCluster` (three primaries,
one replica each) are what the failover tests and the benchmark start.
:class:`SentinelManaged` is the single-node fault tests' server reached
through a Sentinel: the same kill and restart on the same port, so every
existing "down, refusing, hung" test runs unchanged against a
Sentinel-managed primary.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TypeAlias

import pytest
from harness.servers import terminate, wait_for_port
from harness.valkey_ha import (
    DOWN_AFTER_MS,
    FAILOVER_TIMEOUT_MS,
    SERVICE,
    ValkeyCluster,
    ValkeySentinels,
    binary,
    cli,
    wait_replicated,
)

from tests.support.servers import HungServer, ValkeyServer, free_port, refused_url

__all__ = [
    "DOWN_AFTER_MS",
    "FAILOVER_TIMEOUT_MS",
    "SERVICE",
    "Killable",
    "SentinelManaged",
    "ValkeyCluster",
    "ValkeySentinels",
    "cli",
    "hung",
    "killable",
    "managed",
    "refused",
    "sentinel_managed",
    "sentinel_url",
    "wait_replicated",
]


def sentinel_url(*ports: int) -> str:
    """A ``valkey+sentinel://`` URL asking the Sentinels (or whatever listens) on ``ports``."""
    return "valkey+sentinel://" + ",".join(f"127.0.0.1:{p}" for p in ports) + f"/{SERVICE}"


class SentinelManaged:
    """A :class:`ValkeyServer` with one Sentinel watching it and no replica to promote.

    Behaves as the server does for the tests (``url``, ``start``, ``kill``,
    ``process``), except that the URL asks the Sentinel for the primary. With
    no replica, a killed primary stays the primary: the Sentinel marks it down,
    and :meth:`start` waits until it has seen it come back.
    """

    def __init__(self) -> None:
        self.server = ValkeyServer()
        self.sentinel_port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="bastion-sentinel-"))
        self.sentinel: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return sentinel_url(self.sentinel_port)

    @property
    def process(self) -> object:
        return self.server.process

    @property
    def port(self) -> int:
        return self.server.port

    def start(self) -> SentinelManaged:
        self.server.start()
        if self.sentinel is None:
            conf = self.dir / "sentinel.conf"
            conf.write_text(
                f"port {self.sentinel_port}\nbind 127.0.0.1\nprotected-mode no\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.server.port} 1\n"
                f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
            )
            self.sentinel = subprocess.Popen(
                [binary("valkey-server"), str(conf), "--sentinel"],
                cwd=self.dir,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            wait_for_port(self.sentinel_port)
        self._wait_until_seen_up()
        return self

    def _wait_until_seen_up(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            flags = cli(self.sentinel_port, "SENTINEL", "MASTER", SERVICE)
            lines = flags.split()
            state = dict(zip(lines[::2], lines[1::2], strict=False))
            if state.get("flags") == "master" and state.get("role-reported") == "master":
                return
            time.sleep(0.05)
        raise TimeoutError("the Sentinel never saw the primary up")

    def kill(self) -> None:
        self.server.kill()

    def close(self) -> None:
        self.server.close()
        terminate(self.sentinel, grace=2.0)
        self.sentinel = None
        shutil.rmtree(self.dir, ignore_errors=True)


#: A Valkey a fault test kills and restarts: the plain one, or the Sentinel-managed one.
Killable: TypeAlias = "ValkeyServer | SentinelManaged"

# The fault tests' fixtures (tests/integration/test_cache_faults.py, test_ratelimit.py):
# each test that asks for one runs twice, on a plain URL and through a Sentinel.


@pytest.fixture(params=["plain", "sentinel"])
def managed(request: pytest.FixtureRequest) -> str:
    """How the cache finds its Valkey: from the URL, or by asking a Sentinel."""
    return str(request.param)


@pytest.fixture(scope="module")
def sentinel_managed() -> Iterator[SentinelManaged]:
    server = SentinelManaged()
    try:
        yield server.start()
    finally:
        server.close()


@pytest.fixture
def killable(managed: str, request: pytest.FixtureRequest) -> Iterator[Killable]:
    """A Valkey to kill and restart: the session's own, or the Sentinel-managed one."""
    if managed == "plain":
        request.getfixturevalue("valkey_url")  # restarts and empties it afterwards
        yield request.getfixturevalue("valkey_server")
        return
    watched: SentinelManaged = request.getfixturevalue("sentinel_managed")
    if watched.process is None:
        watched.start()
    yield watched
    if watched.process is None:  # a test killed it
        watched.start()
    cli(watched.port, "FLUSHALL")


@pytest.fixture
def refused(managed: str) -> str:
    return refused_url() if managed == "plain" else sentinel_url(free_port())


@pytest.fixture
def hung(managed: str, hung_server: HungServer) -> str:
    return hung_server.url if managed == "plain" else sentinel_url(hung_server.port)
