"""What every block's responses share.

``NO_STORE`` goes on every answer that reflects the state of one user or of
the system at that instant (sign-in results, health, metrics, refusals):
shared caches and the browser's back button must not replay them.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["NO_STORE"]

NO_STORE: Mapping[str, str] = MappingProxyType({"Cache-Control": "no-store"})
