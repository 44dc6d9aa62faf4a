"""``Bastion``: everything bastion runs, built once from the settings and closed once.

An app that adopts bastion keeps one of these. It builds, from one
:class:`~bastion.config.Settings`, the database handle, the Valkey cache, the
shared sign-in limiter, the sign-in guard (limit and audit trail), the
Prometheus metrics with every block's hook wired in, and the event-loop lag
monitor; :meth:`Bastion.lifespan` opens what needs opening and closes all of
it in the right order (the guard's last audit tallies before the database).

    bastion = Bastion()                      # settings from the environment
    app = FastAPI(lifespan=bastion.lifespan)
    ...
    app = bastion.protect(app, logins=[LoginRoute("/auth/jwt/login")])

Nothing here is framework-specific: :meth:`Bastion.protect` returns the
pure ASGI driver of :mod:`bastion._stack` around the app, and the operations
endpoints are answered inside it, so Starlette, FastAPI and Litestar get the
same ``/api/health``, ``/api/health/live`` and ``/api/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from bastion.auth import AuthService

from bastion._later import set_later
from bastion._stack import build_stack
from bastion.cache import Cache, set_cache
from bastion.config import Settings, get_settings, remember_secrets
from bastion.db import Database
from bastion.db._schema import ADVICE
from bastion.guard import LoginGuard, LoginRoute, SignInGuard
from bastion.hardening._headers import HeaderOverrides, PathHeaders
from bastion.jobs import Jobs
from bastion.jobs._current import set_jobs
from bastion.jobs._inline import AfterResponse
from bastion.jobs._metrics import JobMetrics
from bastion.mail import set_mail_listener
from bastion.ops._failures import hear_exceptions
from bastion.ops._health import health_routes
from bastion.ops._logs import ensure_logging
from bastion.ops._looplag import LoopLagMonitor
from bastion.ops._metrics import Metrics
from bastion.ops._metrics_route import metrics_routes
from bastion.ratelimit import SignInLimiter

logger = logging.getLogger("bastion.db")

#: Where :meth:`Bastion.protect` answers the operations endpoints.
OPERATIONS_PATHS = ("/api/health", "/api/health/live", "/api/metrics")


class Bastion:
    """The owner of every bastion block for one app (one per process)."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        metrics: Metrics | None = None,
        configure_logging: bool = True,
    ) -> None:
        """``metrics``: the series to count into; default, new ones if ``METRICS_ENABLED``.

        ``configure_logging``: whether :meth:`protect` sends bastion's log lines
        (one access line per request among them) to stderr, JSON lines when
        ``APP_ENV=production``, as the CLI does; an app that configures logging
        itself passes False and routes the ``bastion`` loggers as it likes.
        Only the ``bastion`` logger is touched, and an earlier
        :func:`bastion.ops.configure_logging` call is kept as it was.
        """
        self.settings = settings = settings or get_settings()
        self.configure_logging = configure_logging
        remember_secrets(settings)  # settings built in code did not pass load_settings
        if metrics is None and settings.METRICS_ENABLED:
            metrics = Metrics()
        self.metrics = metrics
        self.cache = Cache.from_settings(settings, metrics.on_cache if metrics else None)
        self.database = Database.from_settings(settings)
        self.limiter = SignInLimiter.from_settings(
            settings, on_event=metrics.on_rate_limit if metrics else None
        )
        self.sign_up_limiter = SignInLimiter.for_sign_up(
            settings, on_event=metrics.on_sign_up_limit if metrics else None
        )
        #: Password-reset requests per client IP and per account (``PASSWORD_RESET_RATE_LIMIT``).
        self.reset_limiter = SignInLimiter.for_password_reset(
            settings, on_event=metrics.on_reset_limit if metrics else None
        )
        self.guard = SignInGuard(
            self.limiter,
            self.database,
            on_failure=metrics.on_sign_in_failure if metrics else None,
        )
        self._schema_check: asyncio.Task[None] | None = None
        self.loop_lag = LoopLagMonitor(metrics.on_loop_lag if metrics else None)
        #: Background jobs: procrastinate when JOBS_ENABLED, inline in this process otherwise.
        self.jobs = Jobs(settings, self.database, JobMetrics(metrics.registry) if metrics else None)
        if metrics is not None:
            if self.cache.connection is not None:
                self.cache.connection.breaker.listeners.append(metrics.on_breaker("valkey"))
            self.limiter.breaker.listeners.append(metrics.on_breaker("ratelimit"))
        # The module-level cache functions (cache_get, ...) use this app's cache,
        # and Task.defer this app's jobs engine.
        set_cache(self.cache)
        set_jobs(self.jobs)
        set_later(self.later)
        # Mail sent in this process (inline jobs) is counted in bastion_emails_total.
        set_mail_listener(metrics.on_email if metrics else None)

    async def later(self, task: str, /, **arguments: Any) -> None:
        """Queue bastion's task ``task`` on this app's jobs engine (see :mod:`bastion._later`).

        A queue that cannot take the job (its database down) is one log line;
        the request that asked goes on, as the contract of ``Later`` says.
        """
        try:
            await self.jobs.defer(self.jobs.tasks()[task], **arguments)
        except Exception as exc:
            logging.getLogger("bastion.jobs").warning(
                "jobs: could not queue %s: %s", task, type(exc).__name__
            )

    # -- per request -----------------------------------------------------------------------

    def protect(
        self,
        app: ASGIApp,
        *,
        logins: Iterable[LoginRoute] = (),
        operations: bool = True,
        headers: HeaderOverrides | None = None,
        path_headers: PathHeaders | None = None,
        **envelope_options: Any,
    ) -> ASGIApp:
        """``app`` inside the whole per-request stack, with this object's metrics.

        request -> driver (observer, envelope, failure rule: :func:`bastion._stack.build_stack`)
                -> operations endpoints -> login guard -> ``app``

        The driver is the same one :func:`bastion._stack.build_stack` builds: its
        hooks name, screen and record every request, and whatever the
        operations endpoints, the guard or ``app`` answer passes through its
        one ``send`` wrapper (security headers, request id). The guard's
        refusals are answered like the envelope's (:mod:`bastion.responses`).

        ``logins`` are login routes of ``app`` to guard (see
        :class:`~bastion.guard.LoginRoute`); ``operations=False`` leaves the
        ``/api/health*`` and ``/api/metrics`` paths to ``app`` (mount
        :meth:`operations_app` or :meth:`operations_routes` yourself).
        ``headers`` replaces (a value) or drops (None) security headers on
        every response; ``path_headers`` does so below a path prefix, on top
        of ``headers``, the longest matching prefix winning
        (``{"/docs": {"Content-Security-Policy": "..."}}``). Both are checked
        here: a bad prefix, header name or value is a
        :class:`~bastion.config.ConfigError`. A header the app sets itself is
        always kept. ``envelope_options`` go to the envelope (exempt paths,
        HSTS, error page).

        Unless this object was made with ``configure_logging=False``, the
        ``bastion`` loggers are sent to stderr here, once (see
        :func:`bastion.ops._logs.ensure_logging`): an app run by plain
        ``uvicorn module:app`` writes its access lines with no call of its own.
        """
        if self.configure_logging:
            ensure_logging(json_lines=self.settings.is_production)
        routes = tuple(logins)
        hear_exceptions(app)  # Litestar answers exceptions itself: it must tell the failure rule
        inner: ASGIApp = LoginGuard(app, self.guard, routes) if routes else app
        if not self.jobs.enabled:
            inner = AfterResponse(inner)  # inline jobs start once their response is sent
        if operations:
            inner = _Operations(inner, self.operations_app())
        return build_stack(
            inner,
            self.settings,
            metrics=self.metrics,
            headers=headers,
            path_headers=path_headers,
            **envelope_options,
        )

    def auth_service(self) -> AuthService:
        """bastion's own accounts on this app's parts: its database, guard, limiters, metrics.

        For apps that use bastion's accounts (``auth_routes``); an app that
        keeps its own auth and uses only the guard never calls it, and never
        imports the accounts (argon2 and the password list among them).
        """
        from bastion.auth import AuthService  # noqa: PLC0415 - only apps with bastion's accounts

        return AuthService.from_settings(
            self.settings,
            self.database,
            self.guard,
            self.sign_up_limiter,
            reset_limiter=self.reset_limiter,
            events=self.metrics,
        )

    def operations_routes(self) -> list[Route]:
        """``/api/health``, ``/api/health/live`` and ``/api/metrics``, as Starlette routes."""
        return [
            *health_routes(
                self.database,
                cache_enabled=lambda: self.cache.enabled,
                metrics_enabled=self.metrics is not None,
                jobs_enabled=self.jobs.ready,
                metrics=self.metrics,
            ),
            *metrics_routes(self.metrics),
        ]

    def operations_app(self) -> ASGIApp:
        """The operations endpoints as one ASGI app, to mount at ``/api`` in any framework.

        It answers ``/health``, ``/health/live`` and ``/metrics`` below its
        mount point, whichever way the framework hands a mounted app its path
        (Starlette keeps the full path and sets ``root_path``; Litestar strips
        the prefix and adds a slash), and the full ``/api/...`` paths when it
        is not mounted at all.
        """
        return _OperationsApp(self.operations_routes())

    # -- lifetime --------------------------------------------------------------------------

    async def startup(self) -> None:
        """Start the background work: the loop-lag monitor and the jobs engine."""
        set_cache(self.cache)
        set_jobs(self.jobs)
        set_later(self.later)
        set_mail_listener(self.metrics.on_email if self.metrics else None)
        self.loop_lag.start()
        # In the background: a database that is down must not hold up the start.
        self._schema_check = asyncio.create_task(self.warn_about_schema())
        await self.jobs.start()

    async def warn_about_schema(self) -> None:
        """One WARNING when bastion's tables are missing or behind: the app still starts
        (health says ``"schema"``), and every sign-in would otherwise fail with a driver's
        error about a table. Silent when current, and when the database does not answer
        (the health check and the 503s say that)."""
        state = await self.database.schema()
        if state is not None and state != "current":
            logger.warning("schema %s: %s", state, ADVICE[state])

    async def shutdown(self) -> None:
        """Stop and close everything, the last audit tallies before the database goes."""
        if self._schema_check is not None:
            self._schema_check.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._schema_check
        await self.loop_lag.stop()
        await self.jobs.stop()  # inline jobs may still write to the database
        await self.guard.aclose()
        await self.limiter.aclose()
        await self.sign_up_limiter.aclose()
        await self.reset_limiter.aclose()
        await self.database.dispose()
        await self.cache.aclose()

    @contextlib.asynccontextmanager
    async def lifespan(self, app: object = None) -> AsyncIterator[None]:
        """A lifespan for Starlette, FastAPI (``lifespan=bastion.lifespan``) and Litestar."""
        await self.startup()
        try:
            yield
        finally:
            await self.shutdown()


class _OperationsApp:
    """The three operations routes, found by their path below wherever this app is mounted."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = {route.path.removeprefix("/api"): route for route in routes}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        path = path.rstrip("/").removeprefix("/api")
        route = self.routes.get(path) if scope["type"] == "http" else None
        if route is None:
            await JSONResponse({"error": "not found"}, status_code=404)(scope, receive, send)
            return
        scope["route"] = route  # the template the request observer labels it with
        await route.handle(scope, receive, send)


class _Operations:
    """Answers the operations paths itself; everything else goes to the app."""

    def __init__(self, app: ASGIApp, endpoints: ASGIApp) -> None:
        self.app = app
        self.endpoints = endpoints
        self.paths = frozenset(OPERATIONS_PATHS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in self.paths:
            await self.endpoints(scope, receive, send)
        else:
            await self.app(scope, receive, send)
