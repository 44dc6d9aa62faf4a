"""Shipping bastion: the deployment checklist and the offline release bundle.

``bastion check --deploy`` (``checks``, its rules each registered with their
IDs through ``registry``) reads the settings and reports what no production
deployment should ship with; ``bastion bundle`` (``bundle``)
packs the app and every dependency wheel into one ``.tar`` that installs
without a network. Both are plain functions, so the CLI stays thin and tests
and other tooling can call them directly.
"""

from __future__ import annotations

from bastion.deploy._bundle import Bundle, BundleError, build_bundle
from bastion.deploy._checks import format_text, run_checks
from bastion.deploy._registry import CheckRegistry, CheckResult, CheckSpec, Finding, finding

__all__ = [
    "Bundle",
    "BundleError",
    "CheckRegistry",
    "CheckResult",
    "CheckSpec",
    "Finding",
    "build_bundle",
    "finding",
    "format_text",
    "run_checks",
]
