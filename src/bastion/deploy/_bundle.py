"""``bastion bundle``: the whole release as one ``.tar`` that installs with no network.

A sealed network has no PyPI, so a release has to carry every wheel it needs.
The bundle holds:

- ``wheelhouse/``: the project's wheels, one per member of its uv workspace
  (``uv build --wheel --all-packages``; in this checkout the library ``bastion``
  and the example app ``bastion-example``, which are separate distributions so
  that the library's wheel registers no app), and one wheel per runtime
  dependency of any of them, exactly the versions in ``uv.lock`` (``uv export
  --locked --no-dev --all-packages``);
- ``requirements.txt``: those pins *with their sha256 hashes*, plus each project
  wheel's own hash, so the offline install verifies every file it installs
  (``pip --require-hashes``) and a wheel swapped in transit is refused;
- ``install.sh``: creates a venv and runs ``pip install --no-index
  --find-links wheelhouse`` against that file, then prints the next steps;
- ``deploy/`` (the front door's Caddyfile, compose file, ...) when the project
  has one, ``README.md``, and ``bundle.json`` describing the target.

Wheels are platform specific, and uv has no "download" command, so the
dependency wheels are fetched by pip running on the *target interpreter*
(``--python``, default: the one running this code) inside a throwaway venv
(``ensurepip`` supplies pip offline). Markers and wheel tags are therefore
evaluated for that interpreter, and ``--only-binary=:all:`` guarantees that
the install never needs a compiler or a build backend from an index.
``install.sh`` refuses a Python whose major.minor differs.

Building needs the network (PyPI, and the build backend for ``uv build``);
installing does not.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

PROJECT_NAME = "bastion"
#: Build steps can download (uv's build backend, PyPI wheels); a stuck mirror must not hang CI.
_STEP_TIMEOUT = 900
_IGNORED = shutil.ignore_patterns("__pycache__", "*.py[cod]", ".DS_Store")


class BundleError(Exception):
    """Building the bundle failed; the message says which step and shows its output."""


@dataclass(frozen=True, slots=True)
class Bundle:
    """What was written, for the report and for checking the file after transfer."""

    path: Path
    version: str
    python: str
    platform: str
    wheels: tuple[str, ...]
    size: int
    sha256: str


def _project_info(pyproject: Path) -> tuple[str, str] | None:
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return None
    project = data.get("project", {})
    name, version = project.get("name"), project.get("version")
    if isinstance(name, str) and isinstance(version, str):
        return name, version
    return None


def find_project(start: Path | None = None) -> Path:
    """The bastion source tree: the nearest ``pyproject.toml`` naming bastion at or above ``start``.

    Falls back to the tree this module lives in (an editable install). An
    installed wheel has no source tree, and a bundle cannot be built from one.
    """
    origin = (start or Path.cwd()).resolve()
    for directory in (origin, *origin.parents, Path(__file__).resolve().parents[3]):
        info = _project_info(directory / "pyproject.toml")
        if info is not None and info[0] == PROJECT_NAME:
            return directory
    raise BundleError(
        "no bastion source tree found (a pyproject.toml naming bastion); "
        "run from the checkout or pass --project"
    )


def default_output(project: Path) -> Path:
    """``<project>/dist/bastion-<version>.tar``."""
    info = _project_info(project / "pyproject.toml")
    if info is None:
        raise BundleError(f"{project}/pyproject.toml has no [project] name and version")
    return project / "dist" / f"{PROJECT_NAME}-{info[1]}.tar"


def _run(command: Sequence[str], what: str, cwd: Path | None = None) -> str:
    """Run one build step; on failure raise with the tail of its output, never a traceback."""
    try:
        done = subprocess.run(  # noqa: S603 - a fixed argv, no shell
            list(command),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=_STEP_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BundleError(f"{what} failed: {exc}") from None
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise BundleError(f"{what} failed (exit {done.returncode}):\n{tail}")
    return done.stdout


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _uv() -> str:
    """uv itself: ``$UV`` when run under ``uv run``, else the one on PATH."""
    found = os.environ.get("UV") or shutil.which("uv")
    if not found:
        raise BundleError("uv is needed to build the bundle (https://docs.astral.sh/uv/)")
    return found


_INSTALL_SH = """\
#!/bin/sh
# Install bastion {version} from this bundle into a virtual environment, offline.
#
#   ./install.sh [VENV_DIR]        (default: ./venv next to this script)
#
# pip is given --no-index, so it never contacts an index, and --require-hashes,
# so every wheel must match the sha256 recorded in requirements.txt when the
# bundle was built. PYTHON selects the interpreter (default: python3).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
venv=${{1:-$here/venv}}
python=${{PYTHON:-python3}}
expected="{python}"

if ! command -v "$python" >/dev/null 2>&1; then
    echo "install.sh: $python not found; set PYTHON=/path/to/python$expected" >&2
    exit 1
fi
actual=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ "$actual" != "$expected" ]; then
    echo "install.sh: the wheels are for Python $expected ({platform}), but $python is" \\
         "Python $actual; set PYTHON=/path/to/python$expected" >&2
    exit 1
fi

"$python" -m venv "$venv"
"$venv/bin/python" -m pip install \\
    --no-index --find-links "$here/wheelhouse" \\
    --only-binary=:all: --require-hashes \\
    --disable-pip-version-check --no-input --quiet \\
    -r "$here/requirements.txt"

cat <<EOF
bastion {version} is installed in $venv

Next, with the production environment set (README.md, "Configuration"):
  $venv/bin/bastion check --deploy     # the deployment checklist; fix every error
  $venv/bin/bastion migrate            # create or upgrade the database schema
  $venv/bin/bastion createuser --email admin@example.com --admin
  $venv/bin/python -m uvicorn --factory {app} \\\\
      --host 127.0.0.1 --port 8000 --no-proxy-headers --no-server-header

Or try it first with development defaults (SQLite in the current directory):
  $venv/bin/bastion demo
EOF
if [ -d "$here/deploy" ]; then
    echo
    echo "The front door (Caddyfile, compose file, ...) is in $here/deploy."
fi
"""


def _members(project: Path) -> list[Path]:
    """The project's directory and those of its uv workspace members (``[tool.uv.workspace]``).

    A member is given as a path or a glob relative to the project, as uv reads it.
    """
    data = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = data.get("tool", {}).get("uv", {}).get("workspace", {}).get("members", [])
    found = [project]
    for pattern in patterns if isinstance(patterns, list) else []:
        for directory in sorted(project.glob(str(pattern))):
            if (directory / "pyproject.toml").is_file() and directory not in found:
                found.append(directory)
    return found


def _app_target(project: Path) -> str:
    """The ASGI factory registered as the ``bastion.apps`` ``demo`` entry point.

    Read from the ``pyproject.toml`` of the project or of one of its workspace
    members (the library names no app; here the example app registers it); a
    project that registers none gets a placeholder to fill in.
    """
    for member in _members(project):
        data = tomllib.loads((member / "pyproject.toml").read_text(encoding="utf-8"))
        apps = data.get("project", {}).get("entry-points", {}).get("bastion.apps", {})
        target = apps.get("demo") if isinstance(apps, dict) else None
        if isinstance(target, str):
            return target
    return "your_app:create_app"


def _wheel_pin(wheel: Path) -> str:
    """``name==version`` with the wheel's sha256, the line pip --require-hashes checks it by."""
    name, version = wheel.name.split("-")[:2]
    return f"{name}=={version} \\\n    --hash=sha256:{_sha256(wheel)}"


def _target(pip_python: Path) -> tuple[str, str, str]:
    """``(major.minor, implementation, platform)`` of the interpreter the wheels are for."""
    probe = (
        "import sys, sysconfig; "
        "print('%d.%d' % sys.version_info[:2], sys.implementation.name, sysconfig.get_platform())"
    )
    version, implementation, platform = _run(
        [str(pip_python), "-c", probe], "probing the target Python"
    ).split()
    return version, implementation, platform


def _tar_filter(mtime: int) -> Callable[[tarfile.TarInfo], tarfile.TarInfo]:
    """Normalise owners, modes and times, so the archive says nothing about the build host."""

    def normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = mtime
        if info.isdir() or info.mode & 0o100:
            info.mode = 0o755
        else:
            info.mode = 0o644
        return info

    return normalise


def _write_tar(root: Path, output: Path) -> None:
    """Write ``root`` as the only top directory of ``output``, atomically, in a stable order."""
    mtime = int(os.environ.get("SOURCE_DATE_EPOCH", time.time()))
    normalise = _tar_filter(mtime)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    try:
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as archive:
            archive.add(root, arcname=root.name, recursive=False, filter=normalise)
            for path in sorted(root.rglob("*")):
                arcname = f"{root.name}/{path.relative_to(root).as_posix()}"
                archive.add(path, arcname=arcname, recursive=False, filter=normalise)
        partial.replace(output)
    finally:
        partial.unlink(missing_ok=True)


def build_bundle(
    project: Path,
    output: Path | None = None,
    *,
    python: str | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> Bundle:
    """Build the offline release of ``project`` into ``output`` (default: ``dist/``).

    ``python`` is the interpreter the bundle targets (default: the current
    one); the target host must run the same major.minor on the same platform.
    """
    project = project.resolve()
    info = _project_info(project / "pyproject.toml")
    if info is None or info[0] != PROJECT_NAME:
        raise BundleError(f"{project} is not the bastion source tree")
    version = info[1]
    output = (output or default_output(project)).resolve()
    uv = _uv()
    interpreter = python or sys.executable  # a venv's python: -m venv uses its base

    with tempfile.TemporaryDirectory(prefix="bastion-bundle-") as scratch:
        stage = Path(scratch)
        root = stage / f"{PROJECT_NAME}-{version}"
        wheelhouse = root / "wheelhouse"
        wheelhouse.mkdir(parents=True)

        # First, so that a wrong --python fails before anything is built or fetched.
        log(f"preparing pip on {interpreter}")
        pip_env = stage / "pip-env"
        _run([interpreter, "-m", "venv", str(pip_env)], "creating a venv for pip")
        pip_python = pip_env / "bin" / "python"
        target_python, implementation, platform = _target(pip_python)

        members = _members(project)
        log(f"building the {PROJECT_NAME} {version} wheels ({len(members)} distributions)")
        _run(
            [uv, "build", "--wheel", "--all-packages", "--quiet", "--out-dir", str(wheelhouse)],
            "uv build",
            cwd=project,
        )
        project_wheels = sorted(wheelhouse.glob("*.whl"))
        if len(project_wheels) != len(members):
            raise BundleError(
                f"uv build produced {len(project_wheels)} wheels for {len(members)} distributions"
            )
        (wheelhouse / ".gitignore").unlink(missing_ok=True)  # uv marks its out-dir ignored

        log("exporting the locked runtime dependencies (no dev group)")
        pins = stage / "pins.txt"
        _run(
            [
                uv,
                "export",
                "--locked",
                "--no-dev",
                "--all-packages",
                "--no-emit-workspace",
                "--no-header",
                "--format",
                "requirements-txt",
                "--output-file",
                str(pins),
            ],
            "uv export",
            cwd=project,
        )

        log(f"downloading dependency wheels for Python {target_python} ({platform})")
        _run(
            [
                str(pip_python),
                "-m",
                "pip",
                "download",
                "--only-binary=:all:",
                "--require-hashes",
                "--disable-pip-version-check",
                "--no-input",
                "--progress-bar",
                "off",
                "--dest",
                str(wheelhouse),
                "--requirement",
                str(pins),
            ],
            "pip download",
        )

        wheels = tuple(sorted(path.name for path in wheelhouse.glob("*.whl")))
        requirements = "\n".join(
            [
                f"# {PROJECT_NAME} {version}: the runtime dependencies pinned in uv.lock",
                "# (uv export --locked --no-dev --all-packages) and the project's wheels,",
                "# each with its sha256.",
                pins.read_text(encoding="utf-8").rstrip("\n"),
                *(_wheel_pin(wheel) for wheel in project_wheels),
                "",
            ]
        )
        (root / "requirements.txt").write_text(requirements, encoding="utf-8")
        script = root / "install.sh"
        script.write_text(
            _INSTALL_SH.format(
                version=version, python=target_python, platform=platform, app=_app_target(project)
            ),
            encoding="utf-8",
        )
        script.chmod(0o755)
        if (project / "deploy").is_dir():
            shutil.copytree(project / "deploy", root / "deploy", ignore=_IGNORED)
        # The rest of the deployment envelope travels too, for hosts that run containers.
        for name in ("README.md", "compose.yaml", "Dockerfile", ".env.example"):
            if (project / name).is_file():
                shutil.copy2(project / name, root / name)
        manifest = {
            "name": PROJECT_NAME,
            "version": version,
            "python": target_python,
            "implementation": implementation,
            "platform": platform,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "wheels": list(wheels),
        }
        (root / "bundle.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")

        log(f"writing {output}")
        _write_tar(root, output)

    return Bundle(
        path=output,
        version=version,
        python=target_python,
        platform=platform,
        wheels=wheels,
        size=output.stat().st_size,
        sha256=_sha256(output),
    )
