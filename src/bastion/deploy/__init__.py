"""Shipping bastion: the deployment checklist and the offline release bundle.

``bastion check --deploy`` (``checks``, its rules each registered with their
IDs through ``registry``) reads the settings and reports what no production
deployment should ship with; ``bastion bundle`` (``bundle``)
packs the app and every dependency wheel into one ``.tar`` that installs
without a network. Both are plain functions, so the CLI stays thin and tests
and other tooling can call them directly.
"""

from __future__ import annotations

from bastion.deploy._bundle import Bundle, BundleError, build_bundle, default_output, find_project
from bastion.deploy._checks import CHECKS, format_text, registry, run_checks
from bastion.deploy._registry import (
    CheckRegistry,
    CheckResult,
    CheckSpec,
    Finding,
    Level,
    Rule,
    finding,
)

__all__ = [
    "CHECKS",
    "Bundle",
    "BundleError",
    "CheckRegistry",
    "CheckResult",
    "CheckSpec",
    "Finding",
    "Level",
    "Rule",
    "build_bundle",
    "default_output",
    "find_project",
    "finding",
    "format_text",
    "registry",
    "run_checks",
]
