"""What an app registers with bastion's command line, through package entry points.

The library never imports an app by name (not even its own example): an app
that wants ``bastion demo`` to serve it, or ``bastion check`` to know its
own checks, says so in its ``pyproject.toml``::

    [project.entry-points."bastion.apps"]
    demo = "my_app:create_app"          # a factory: create_app(settings) -> ASGI app

    [project.entry-points."bastion.checks"]
    my_app = "my_app.checks:checks"     # a bastion.deploy.CheckRegistry

    [project.entry-points."bastion.tasks"]
    my_app = "my_app.jobs"              # a module whose import declares its tasks

Entry points are package metadata, read when a command needs them, so a
plugin costs nothing until then and an app without one is still served with
``--app module:factory``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

APPS_GROUP = "bastion.apps"
CHECKS_GROUP = "bastion.checks"
TASKS_GROUP = "bastion.tasks"


def app_target(name: str = "demo") -> str | None:
    """``module:factory`` registered as ``name`` in :data:`APPS_GROUP`, or None."""
    for point in entry_points(group=APPS_GROUP, name=name):
        return str(point.value)
    return None


def load_app_factory(target: str) -> Callable[..., Any]:
    """Import ``module:attribute``; ValueError with a readable reason if it is not there."""
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"expected module:factory, got {target!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name!r} ({exc.name or module_name})") from None
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise ValueError(f"{target!r} is not a callable in {module_name!r}")
    return factory  # type: ignore[no-any-return]


def load_check_plugins() -> list[Any]:
    """Every object registered in :data:`CHECKS_GROUP` (each a ``CheckRegistry``), loaded."""
    return [point.load() for point in entry_points(group=CHECKS_GROUP)]


def load_task_modules() -> list[str]:
    """Import every module registered in :data:`TASKS_GROUP` (importing declares the tasks).

    ``bastion worker`` runs only tasks it knows by name, so it imports these
    before fetching its first job; returns the modules' names.
    """
    names: list[str] = []
    for point in entry_points(group=TASKS_GROUP):
        module = point.value.partition(":")[0]
        importlib.import_module(module)
        names.append(module)
    return names
