"""What the envelope says when it refuses: the reason's name, and which header to send.

A refusal is answered like every other refusal of bastion (see
:mod:`bastion.responses`): ``{"error", "reason", "hint"}`` for JSON clients,
a page for browsers, two lines of text otherwise. The reason is the stable
name (``NO_ORIGIN``, ``HOST_NOT_ALLOWED``), as in the log line and the
metrics label. The hint says which header to send, built from the
configuration only (``APP_URL``), never from what the client sent, so a
refusal reflects nothing back.
"""

from __future__ import annotations

from bastion.hardening._csrf import Reason
from bastion.hardening._hosts import HostReason
from bastion.responses import Refusal


def csrf_refusal(reason: Reason, site: str) -> Refusal:
    if reason is Reason.BAD_HOST:
        hint = "send a Host header that names this site"
    elif reason is Reason.NO_ORIGIN:
        hint = f"send Origin: {site} with an unsafe request, as a browser does"
    else:
        hint = f"send Origin: {site}, or list your origin in TRUSTED_ORIGINS"
    return Refusal(403, "Forbidden (CSRF)", reason.name, reason.value, hint)


def host_refusal(reason: HostReason, detail: str, host: str) -> Refusal:
    if reason is HostReason.HOST_NOT_ALLOWED:
        hint = f"use the site's host, {host}, or list this one in ALLOWED_HOSTS"
    else:
        hint = f"send exactly one valid Host header, such as Host: {host}"
    return Refusal(400, "Bad Request", reason.name, detail, hint)
