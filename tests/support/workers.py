"""``bastion worker`` in a child process, as an operator (or compose's worker service) runs it."""

from __future__ import annotations

import atexit
import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from tests.support.servers import ROOT, terminate

__all__ = ["WorkerProcess", "cpu_seconds"]


class WorkerProcess:
    def __init__(self, env: Mapping[str, str], *args: str) -> None:
        self.env = dict(env)
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in close()
            prefix="bastion-worker-", suffix=".log", delete=False
        )

    def start(self) -> WorkerProcess:
        atexit.register(self.stop)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bastion.cli", "worker", *self.args],
            env=self.env,
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when the OOM killer or a lost host takes it."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def stop(self, grace: float = 30.0) -> int | None:
        terminate(self.process, grace)
        code = self.process.returncode if self.process is not None else None
        with contextlib.suppress(OSError, ValueError):
            self.log.flush()
        return code

    def close(self) -> None:
        atexit.unregister(self.stop)
        self.stop()
        self.log.close()
        with contextlib.suppress(OSError):
            os.unlink(self.log.name)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of ``pid`` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks
