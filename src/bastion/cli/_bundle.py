"""``bastion bundle``: the offline release (see :mod:`bastion.deploy._bundle`); progress on
stderr, the result on stdout."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bastion.cli._command import Command

if TYPE_CHECKING:
    from bastion.config import Settings


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output", help="where to write the .tar (default: dist/bastion-<version>.tar)"
    )
    parser.add_argument(
        "--project", help="the bastion source tree (default: found from the current directory)"
    )
    parser.add_argument(
        "--python",
        help="the Python the bundle targets (default: this one); the host needs its major.minor",
    )


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from bastion.deploy import BundleError, build_bundle
    from bastion.deploy._bundle import find_project

    def progress(line: str) -> None:
        print(f"bastion bundle: {line}", file=sys.stderr, flush=True)

    try:
        project = Path(args.project) if args.project else find_project()
        output = Path(args.output) if args.output else None
        bundle = build_bundle(project, output, python=args.python, log=progress)
    except BundleError as exc:
        print(f"bastion: bundle failed: {exc}", file=sys.stderr)
        return 1
    print(
        f"{bundle.path}\n  {len(bundle.wheels)} wheels for Python {bundle.python} "
        f"({bundle.platform}), {bundle.size / 1e6:.1f} MB\n  sha256 {bundle.sha256}"
    )
    return 0


COMMAND = Command(
    "bundle",
    "build one .tar that installs the app offline (needs the network to build)",
    _run,
    _arguments,
)
