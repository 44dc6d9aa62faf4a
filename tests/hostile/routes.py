"""Every endpoint of the example app, read from its router, so a new route is covered by itself.

The suite never lists paths: it asks the Starlette app that ``create_routes_app``
builds for its routes, fills each path parameter with a value its convertor
accepts, and samples one file under each static mount. A route added to the
example tomorrow is attacked by the next run without anyone remembering to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.staticfiles import StaticFiles

from bastion.config import Settings
from bastion_example.app import create_routes_app

__all__ = ["METHODS", "SAFE_METHODS", "Endpoint", "example_endpoints"]

#: Every method a client may send: the standard ones, and one no router knows.
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PURGE")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

_PARAM = re.compile(r"{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<kind>[a-z]+))?}")
_SAMPLES = {"str": "hostile", "path": "a/b", "int": "7", "float": "1.5"}
_UUID = "00000000-0000-4000-8000-000000000000"


@dataclass(frozen=True)
class Endpoint:
    """One route: its template, a concrete path, and the methods it answers (None: any)."""

    template: str
    path: str
    methods: frozenset[str] | None

    @property
    def takes_post(self) -> bool:
        return self.methods is not None and "POST" in self.methods

    def allows(self, method: str) -> bool:
        return self.methods is None or method in self.methods

    def with_param(self, value: str) -> str:
        """The path with every parameter set to ``value`` (already percent-encoded)."""
        return _PARAM.sub(value, self.template)

    @property
    def has_params(self) -> bool:
        return _PARAM.search(self.template) is not None


def _fill(template: str) -> str:
    def sample(match: re.Match[str]) -> str:
        kind = match.group("kind") or "str"
        return _UUID if kind == "uuid" else _SAMPLES[kind]

    return _PARAM.sub(sample, template)


def _walk(routes: list[BaseRoute], prefix: str = "") -> list[Endpoint]:
    found: list[Endpoint] = []
    for route in routes:
        if isinstance(route, Route):
            template = prefix + route.path
            methods = frozenset(route.methods) if route.methods else None
            found.append(Endpoint(template, _fill(template), methods))
        elif isinstance(route, Mount):
            if isinstance(route.app, StaticFiles):
                assert route.app.directory is not None
                first = sorted(p for p in Path(route.app.directory).rglob("*") if p.is_file())[0]
                relative = first.relative_to(route.app.directory).as_posix()
                path = f"{prefix}{route.path}/{relative}"
                found.append(Endpoint(f"{prefix}{route.path}/{{path:path}}", path, None))
            elif isinstance(route.app, Router):
                found.extend(_walk(route.app.routes, prefix + route.path))
            else:
                found.append(Endpoint(prefix + route.path, prefix + route.path + "/", None))
        else:
            raise AssertionError(f"the hostile suite does not know this kind of route: {route!r}")
    return found


def example_endpoints(settings: Settings) -> list[Endpoint]:
    """The example app's endpoints, as its own router lists them."""
    return _walk(create_routes_app(settings).routes)
