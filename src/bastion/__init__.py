"""bastion: Django's security and operations envelope, re-created for any ASGI app.

What an adopter needs is here::

    import bastion

    security = bastion.Bastion()                # everything, from the environment
    app = FastAPI(lifespan=security.lifespan)   # opens and closes it with the app
    app = security.protect(app, logins=[bastion.LoginRoute("/auth/jwt/login")])

:class:`Bastion` builds and owns the database, cache, sign-in limiter and
guard, metrics and the loop-lag monitor, and :meth:`Bastion.protect` puts an
app inside the whole per-request stack; an app that wants only the envelope
calls :func:`bastion.hardening.envelope`. Each block's public API is its
package's ``__all__``: :mod:`bastion.cache`, :mod:`bastion.hardening`,
:mod:`bastion.guard`, :mod:`bastion.ratelimit`, :mod:`bastion.audit`,
:mod:`bastion.auth`, :mod:`bastion.body`, :mod:`bastion.ops`, :mod:`bastion.db`,
:mod:`bastion.jobs`, :mod:`bastion.deploy`, and the single modules
:mod:`bastion.config`, :mod:`bastion.responses` and :mod:`bastion.redirects` (a
``?next=`` that can never leave the site). A module whose name starts with
``_`` is private, whatever it contains.
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
