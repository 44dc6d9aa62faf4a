"""``bastion demo`` serves the app its project registers; the library itself names none."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.servers import ROOT, free_port, run_cli, terminate
from tests.support.waiting import wait_for


def test_demo_serves_the_registered_app(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/demo.db"}
    process = subprocess.Popen(
        [sys.executable, "-m", "bastion.cli", "demo", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def home() -> httpx.Response | None:
        assert process.poll() is None, "bastion demo exited"
        try:
            return httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
        except httpx.HTTPError:
            return None

    try:
        page = wait_for(home, 30, "bastion demo answering on /", every=0.1)
        assert page.status_code == 200
        assert "sandbox" in page.text.lower()  # the example app, found through its entry point
        assert httpx.get(f"http://127.0.0.1:{port}/api/health").json()["database"] is True
    finally:
        terminate(process)


def test_demo_with_an_app_that_does_not_exist_says_so() -> None:
    done = run_cli("demo", "--app", "no_such_module:create_app", env=os.environ)
    assert done.returncode == 2
    assert done.stderr.strip() == "bastion: --app: cannot import 'no_such_module' (no_such_module)"
    done = run_cli("demo", "--app", "not-a-target", env=os.environ)
    assert done.returncode == 2
    assert "expected module:factory" in done.stderr


def test_the_library_names_no_app() -> None:
    sources = (ROOT / "src" / "bastion").rglob("*.py")
    assert [str(path) for path in sources if "bastion_example" in path.read_text()] == []
