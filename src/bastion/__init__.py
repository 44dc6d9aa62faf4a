"""bastion: Django's security and operations envelope, re-created for any ASGI app.

What an adopter needs is here::

    import bastion

    b = bastion.Bastion()                       # everything, from the environment
    app = FastAPI(lifespan=b.lifespan)          # opens and closes it with the app
    app = b.protect(app, logins=[bastion.LoginRoute("/auth/jwt/login")])

:class:`Bastion` builds and owns the database, cache, sign-in limiter and
guard, metrics and the loop-lag monitor, and :meth:`Bastion.protect` puts an
app inside the whole per-request stack; an app that wants only the envelope
calls :func:`bastion.hardening.envelope`. Each
block keeps its own public API in its package: :mod:`bastion.cache`,
:mod:`bastion.hardening`, :mod:`bastion.guard`, :mod:`bastion.ratelimit`,
:mod:`bastion.audit`, :mod:`bastion.auth`, :mod:`bastion.ops`, :mod:`bastion.db`,
and :mod:`bastion.redirects` (a ``?next=`` that can never leave the site).
"""

from __future__ import annotations

from bastion._runtime import Bastion
from bastion.config import ConfigError, Settings, get_settings, load_settings
from bastion.guard import LoginRoute

__all__ = [
    "Bastion",
    "ConfigError",
    "LoginRoute",
    "Settings",
    "__version__",
    "get_settings",
    "load_settings",
]

__version__ = "0.1.0"
