"""What the accounts tell the app's metrics: one protocol, which ``bastion.ops.Metrics`` meets.

The accounts sit below the operations block in the layers, so they cannot
count into Prometheus themselves; they call these hooks, and ``Bastion``
hands them its ``Metrics`` (or nothing, when ``METRICS_ENABLED`` is off).
"""

from __future__ import annotations

from typing import Protocol


class AccountEvents(Protocol):
    def on_sessions_revoked(self, reason: str, count: int) -> None:
        """``count`` sessions ended for their user other than by signing out: ``ended``
        (one, from another session), ``others``, ``password_changed``, ``password_reset``."""

    def on_password_reset(self, outcome: str) -> None:
        """A reset request or confirmation: ``requested``, ``limited``, ``completed``,
        ``invalid``, ``used``, ``expired``."""

    def on_second_factor(self, method: str, outcome: str) -> None:
        """A second factor used or managed: ``method`` ``totp``, ``backup_code`` or
        ``passkey``; ``outcome`` ``succeeded``, ``failed``, ``enabled``, ``disabled``..."""


class NoEvents:
    """Nobody is counting (metrics off)."""

    def on_sessions_revoked(self, reason: str, count: int) -> None:
        pass

    def on_password_reset(self, outcome: str) -> None:
        pass

    def on_second_factor(self, method: str, outcome: str) -> None:
        pass
