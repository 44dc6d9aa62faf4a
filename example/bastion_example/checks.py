"""The example app's own deployment checks, registered with ``bastion check``.

The sandbox pages are this app's, not the library's, so the warnings about
them live here and reach ``bastion check`` through the ``bastion.checks``
entry point in ``pyproject.toml``, which names the :class:`CheckRegistry`
below. They keep the IDs they always had, so a ``SILENCED_CHECKS=bastion.W041``
written for an earlier release still works.
"""

from __future__ import annotations

from collections.abc import Iterator

from bastion.config import Settings
from bastion.deploy import CheckRegistry, CheckSpec, Finding, finding

__all__ = ["checks"]

#: The ``bastion.checks`` entry point: each rule registered with the IDs it reports.
checks = CheckRegistry()


@checks.register(
    CheckSpec("bastion.E040", "the sandbox pages are open to every visitor"),
    CheckSpec("bastion.W041", "the sandbox pages are served to administrators in production"),
)
def sandbox(settings: Settings) -> Iterator[Finding]:
    if not settings.is_production:
        yield finding(
            "bastion.E040",
            "the sandbox pages (/sandbox/*, /api/sandbox/*) are open to every visitor, "
            "including a form that writes to the cache",
            "set APP_ENV=production: the sandbox is then served to administrators only "
            "(404 for everyone else)",
        )
    else:
        yield finding(
            "bastion.W041",
            "the sandbox pages (/sandbox/*, /api/sandbox/*) are served to signed-in "
            "administrators (everyone else gets 404)",
            "block /sandbox and /api/sandbox at the proxy if administrators should not have "
            "them either; otherwise silence this: SILENCED_CHECKS=bastion.W041",
        )
