"""bastion: Django's security and operations envelope, re-created for any ASGI app.

Each block is its own subpackage with its own public API:

- :mod:`bastion.config`: the typed settings read from the environment
- :mod:`bastion.cache`: Valkey behind a JSON API that degrades to a miss
"""

from __future__ import annotations

from bastion.config import ConfigError, Settings, get_settings, load_settings

__all__ = ["ConfigError", "Settings", "__version__", "get_settings", "load_settings"]

__version__ = "0.1.0"
