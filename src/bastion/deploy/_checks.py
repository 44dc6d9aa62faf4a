"""``bastion check [--deploy]``: Django's deployment checklist, for this stack.

A deployment is described by its environment alone (see ``bastion.config``),
so most of what can go wrong in production can be seen before the first
request: a public secret, plain http, a proxy list that lets every client
forge its IP. Each rule here reads a loaded :class:`~bastion.config.Settings`
and reports findings; nothing touches the network, the database or the
filesystem, so the check is safe to run anywhere the app's environment is
(a CI job, the release host, an init container).

Each rule is registered with the IDs it reports, by one decorator
(:meth:`~bastion.deploy._registry.CheckRegistry.register`), in report order.
Every finding carries a stable ID. The letter is the level (``E`` error,
``W`` warning) and the number is never reused for another meaning, so
scripts, runbooks and ``SILENCED_CHECKS`` can rely on it across releases.
Errors are things no production deployment should ship with; warnings are
judgement calls the operator should make knowingly (and may then silence).

What the settings cannot show is not guessed at: bastion cannot see the
proxy in front of it, so "metrics are blocked at the proxy" is something the
operator declares (``METRICS_BLOCKED_AT_PROXY``), not something inferred from
whichever Caddyfile happens to lie on disk.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from urllib.parse import urlsplit

from bastion._parse.networks import UNIX
from bastion._parse.urls import valkey_target
from bastion._plugins import load_check_plugins
from bastion.config import DEV_SECRET_KEY, Settings
from bastion.deploy._registry import CheckRegistry, CheckResult, CheckSpec, Finding, finding

#: Django's thresholds for a usable secret: long enough, and not a handful of characters.
MIN_SECRET_LENGTH = 50
MIN_SECRET_DISTINCT = 5
#: Words that mark a value somebody meant to replace.
_PLACEHOLDER_WORDS = (
    "changeme",
    "replaceme",
    "insecure",
    "notforproduction",
    "yoursecret",
    "secretkey",
    "example",
)
#: A session that outlives a month outlives most reasons a device was trusted.
MAX_SESSION_AGE = 30 * 24 * 3600
#: A Valkey deadline this long means a hung Valkey holds every request this long.
SLOW_CACHE_TIMEOUT_MS = 1_000
#: Proxy networks wider than this (and not private) cover strangers, not a proxy fleet.
#: Large CDNs publish IPv4 ranges of /12 to /22 and IPv6 ranges of /29 to /32.
_WIDE_V4_PREFIX = 8
_WIDE_V6_PREFIX = 24


#: bastion's own checks. IDs are never renumbered or reused; a retired check keeps
#: its entry (marked as such) so silencing it stays valid.
_BASTION = CheckRegistry()
register = _BASTION.register
#: Every ID bastion itself can report, in order (an app's come after, see :func:`registry`).
CHECKS: Mapping[str, CheckSpec] = _BASTION.specs

_GENERATE_KEY = "python -c 'import secrets; print(secrets.token_urlsafe(64))'"


def _low_variety(key: str) -> str | None:
    """Why ``key`` looks guessable, or None.

    Length alone is a poor proxy: ``"a" * 64`` is long. Django's rule (at least
    five distinct characters) catches that; a key that repeats a short phrase
    (``"password" * 8``) passes it, so we also refuse keys where most 3-character
    windows recur, which a random key of any alphabet essentially never does.
    """
    distinct = len(set(key))
    if distinct < MIN_SECRET_DISTINCT:
        return f"it uses only {distinct} distinct character{'s' if distinct != 1 else ''}"
    squashed = "".join(ch for ch in key.lower() if ch.isalnum())
    for word in _PLACEHOLDER_WORDS:
        if word in squashed:
            return f"it contains the placeholder word {word!r}"
    windows = [key[i : i + 3] for i in range(len(key) - 2)]
    if len(windows) >= 8 and len(set(windows)) * 2 < len(windows):
        return "it repeats itself"
    return None


@register(
    CheckSpec("bastion.E001", "SECRET_KEY is the public development default, or empty"),
    CheckSpec("bastion.E002", f"SECRET_KEY is shorter than {MIN_SECRET_LENGTH} characters"),
    CheckSpec(
        "bastion.E003", "SECRET_KEY has little variety (few characters, repeats, a placeholder)"
    ),
)
def _secret_key(settings: Settings) -> Iterator[Finding]:
    key = settings.SECRET_KEY
    if not key or key == DEV_SECRET_KEY:
        yield finding(
            "bastion.E001",
            "SECRET_KEY is the development default, which is published in bastion's source"
            if key
            else "SECRET_KEY is empty",
            f"set SECRET_KEY to a random value kept out of version control: {_GENERATE_KEY}",
        )
        return
    if len(key) < MIN_SECRET_LENGTH:
        yield finding(
            "bastion.E002",
            f"SECRET_KEY has {len(key)} characters; at least {MIN_SECRET_LENGTH} are expected",
            f"generate a longer one: {_GENERATE_KEY}",
        )
    reason = _low_variety(key)
    if reason is not None:
        yield finding(
            "bastion.E003",
            f"SECRET_KEY looks guessable: {reason}",
            f"use a random value, not a phrase: {_GENERATE_KEY}",
        )


@register(CheckSpec("bastion.E004", "APP_ENV is not production"))
def _app_env(settings: Settings) -> Iterator[Finding]:
    if not settings.is_production:
        yield finding(
            "bastion.E004",
            f"APP_ENV is {settings.APP_ENV!r}: production safeguards are off",
            "set APP_ENV=production (it requires a SECRET_KEY of your own and switches "
            "logs to JSON lines)",
        )


@register(CheckSpec("bastion.W005", "SILENCED_CHECKS names an ID no check reports", deploy=False))
def _silenced_ids(settings: Settings) -> Iterator[Finding]:
    """A typo in SILENCED_CHECKS silences nothing; say so, here rather than at start-up,
    because only the checks know every ID (an app's come from its plugin)."""
    known = registry()
    unknown = [item for item in settings.SILENCED_CHECKS if item not in known]
    if unknown:
        yield finding(
            "bastion.W005",
            f"SILENCED_CHECKS names {', '.join(repr(item) for item in unknown)}, which no "
            "check reports, so it silences nothing",
            "use the IDs `bastion check` prints (e.g. bastion.W041); the README lists "
            "bastion's own",
        )


@register(CheckSpec("bastion.E010", "APP_URL is not https"))
def _app_url(settings: Settings) -> Iterator[Finding]:
    parts = urlsplit(settings.APP_URL)
    if parts.scheme != "https":
        yield finding(
            "bastion.E010",
            f"APP_URL is {settings.APP_URL!r}: sign-in passwords and session cookies travel "
            "in clear text, and the session cookie is issued without Secure",
            "serve the app over https (a TLS-terminating proxy in front, such as bastion's "
            "Caddyfile) and set APP_URL=https://<your host>",
        )


@register(CheckSpec("bastion.E011", "ALLOWED_HOSTS contains '*'"))
def _allowed_hosts(settings: Settings) -> Iterator[Finding]:
    if "*" in settings.ALLOWED_HOSTS:
        yield finding(
            "bastion.E011",
            "ALLOWED_HOSTS contains '*': any Host header is accepted, which enables "
            "host-header poisoning of absolute URLs and cache keys",
            "list the public host names (the host of APP_URL is always allowed); use "
            "'.example.com' to allow a domain and its subdomains",
        )


def _network_width(item: str) -> tuple[int, int, bool]:
    """``(prefix length, bits, private)`` for an entry, looking through IPv4-mapped IPv6."""
    network = ipaddress.ip_network(item, strict=False)
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96:
        mapped = network.network_address.ipv4_mapped
        if mapped is not None:
            v4 = ipaddress.IPv4Network(f"{mapped}/{network.prefixlen - 96}", strict=False)
            return v4.prefixlen, 32, v4.is_private
    return network.prefixlen, network.max_prefixlen, network.is_private


@register(
    CheckSpec("bastion.E012", "TRUSTED_PROXIES trusts every address (0.0.0.0/0 or ::/0)"),
    CheckSpec("bastion.W013", "TRUSTED_PROXIES holds a very wide public network"),
)
def _trusted_proxies(settings: Settings) -> Iterator[Finding]:
    everyone: list[str] = []
    wide: list[str] = []
    for item in settings.TRUSTED_PROXIES:
        if item.lower() == UNIX:
            continue
        prefix, bits, private = _network_width(item)
        if prefix == 0:
            everyone.append(item)
        elif not private and prefix < (_WIDE_V4_PREFIX if bits == 32 else _WIDE_V6_PREFIX):
            wide.append(item)
    if everyone:
        yield finding(
            "bastion.E012",
            f"TRUSTED_PROXIES includes {', '.join(everyone)}: every client is believed when it "
            "writes X-Forwarded-For/-Proto, so it can pick its own IP (defeating the sign-in "
            "rate limit and the audit log) and claim https",
            "list only the proxies in front of the app: their addresses or their private "
            "network (e.g. 10.0.0.0/8 for a container network), plus 'unix' for a socket",
        )
    if wide:
        yield finding(
            "bastion.W013",
            f"TRUSTED_PROXIES includes the very wide public network{'s' if len(wide) > 1 else ''} "
            f"{', '.join(wide)}: anyone in it can forge the client IP",
            f"narrow it to the proxies' own addresses; public ranges wider than "
            f"/{_WIDE_V4_PREFIX} (IPv4) or /{_WIDE_V6_PREFIX} (IPv6) are not a proxy fleet",
        )


@register(CheckSpec("bastion.W014", "APP_URL is https but no proxy is trusted to say so"))
def _https_behind_proxy(settings: Settings) -> Iterator[Finding]:
    if urlsplit(settings.APP_URL).scheme == "https" and not settings.TRUSTED_PROXIES:
        yield finding(
            "bastion.W014",
            "APP_URL is https but TRUSTED_PROXIES is empty: unless uvicorn itself terminates "
            "TLS, requests arrive as http, so the session cookie is issued without Secure "
            "and without the __Host- prefix",
            "list the TLS-terminating proxy in TRUSTED_PROXIES (the default trusts loopback "
            "and unix sockets); ignore this only if uvicorn serves TLS itself",
        )


@register(CheckSpec("bastion.W015", "TRUSTED_ORIGINS lists a plain-http origin"))
def _trusted_origins(settings: Settings) -> Iterator[Finding]:
    plain = [origin for origin in settings.TRUSTED_ORIGINS if origin.startswith("http://")]
    if plain:
        yield finding(
            "bastion.W015",
            f"TRUSTED_ORIGINS includes plain-http origin{'s' if len(plain) > 1 else ''} "
            f"{', '.join(plain)}: a network attacker who controls that page can send "
            "trusted unsafe requests",
            "trust only https origins",
        )


@register(CheckSpec("bastion.W020", "SESSION_MAX_AGE is longer than 30 days"))
def _sessions(settings: Settings) -> Iterator[Finding]:
    if settings.SESSION_MAX_AGE > MAX_SESSION_AGE:
        days = settings.SESSION_MAX_AGE / 86400
        yield finding(
            "bastion.W020",
            f"SESSION_MAX_AGE is {settings.SESSION_MAX_AGE} seconds ({days:.0f} days): a stolen "
            "session cookie stays usable that long",
            "keep sessions to 30 days or less (the default is 14 days: SESSION_MAX_AGE=1209600)",
        )


@register(
    CheckSpec(
        "bastion.W021", "SESSION_IDLE_TIMEOUT is not shorter than SESSION_MAX_AGE", deploy=False
    )
)
def _session_idle(settings: Settings) -> Iterator[Finding]:
    if settings.SESSION_IDLE_TIMEOUT >= settings.SESSION_MAX_AGE:
        yield finding(
            "bastion.W021",
            f"SESSION_IDLE_TIMEOUT ({settings.SESSION_IDLE_TIMEOUT}s) is not shorter than "
            f"SESSION_MAX_AGE ({settings.SESSION_MAX_AGE}s), so it never ends a session",
            "set SESSION_IDLE_TIMEOUT below SESSION_MAX_AGE (defaults: 1 day and 14 days)",
        )


@register(CheckSpec("bastion.W030", "several processes (WEB_CONCURRENCY) but no VALKEY_URL"))
def _instances(settings: Settings) -> Iterator[Finding]:
    if settings.WEB_CONCURRENCY > 1 and not settings.cache_enabled:
        n = settings.WEB_CONCURRENCY
        yield finding(
            "bastion.W030",
            f"WEB_CONCURRENCY={n} processes without VALKEY_URL: each process counts sign-in "
            f"attempts on its own (up to {n} x SIGN_IN_RATE_LIMIT in total) and the cache is off",
            "set VALKEY_URL to a Valkey all processes share, or run one process",
        )


@register(
    CheckSpec("bastion.W031", "VALKEY_URL is set but the Valkey timeout was not chosen"),
    CheckSpec("bastion.W032", "a Valkey timeout is a second or longer"),
)
def _valkey_timeouts(settings: Settings) -> Iterator[Finding]:
    if not settings.cache_enabled:
        return
    command = settings.CACHE_COMMAND_TIMEOUT_MS
    if "CACHE_COMMAND_TIMEOUT_MS" not in settings.model_fields_set:
        yield finding(
            "bastion.W031",
            f"VALKEY_URL is set but CACHE_COMMAND_TIMEOUT_MS is not configured; the default "
            f"({command} ms) assumes Valkey on the same host or LAN",
            "measure the round trip to your Valkey and set it explicitly (a few times its "
            "p99; tens of milliseconds, not seconds); set it to the default to keep it",
        )
    if command >= SLOW_CACHE_TIMEOUT_MS:
        yield finding(
            "bastion.W032",
            f"CACHE_COMMAND_TIMEOUT_MS={command}: while Valkey hangs, every request that "
            "touches the cache or the sign-in limit waits that long",
            "keep the Valkey timeout in tens of milliseconds; the circuit breaker, not a long "
            "wait, is what rides out a Valkey outage",
        )


@register(
    CheckSpec(
        "bastion.W033", "CACHE_CONNECT_TIMEOUT_MS is set but has no effect any more", deploy=False
    )
)
def _deprecated_connect_timeout(settings: Settings) -> Iterator[Finding]:
    if "CACHE_CONNECT_TIMEOUT_MS" in settings.model_fields_set:
        yield finding(
            "bastion.W033",
            "CACHE_CONNECT_TIMEOUT_MS is set but has no effect: CACHE_COMMAND_TIMEOUT_MS "
            "bounds connecting to Valkey and the command together",
            "remove CACHE_CONNECT_TIMEOUT_MS from the environment",
        )


@register(
    CheckSpec("bastion.W034", "several processes share one Valkey with no Sentinel or Cluster")
)
def _single_valkey(settings: Settings) -> Iterator[Finding]:
    """W030's sequel: one shared Valkey is shared limits only while it lives.

    When it dies, every process falls back to its own count (by design: never
    to no limit), so an attacker gets up to N times the sign-in limit for as
    long as it is gone. A Sentinel-managed primary or a Cluster makes that a
    failover of seconds instead of an outage.
    """
    url = settings.VALKEY_URL
    if settings.WEB_CONCURRENCY > 1 and url is not None and valkey_target(url).kind == "single":
        n = settings.WEB_CONCURRENCY
        yield finding(
            "bastion.W034",
            f"WEB_CONCURRENCY={n} processes share one Valkey: while it is down each process "
            f"limits sign-ins on its own (up to {n} x SIGN_IN_RATE_LIMIT in total)",
            "point VALKEY_URL at Sentinels (valkey+sentinel://h1:26379,h2:26379,h3:26379/"
            "<primary name>) or a Cluster (valkey+cluster://h1:6379,h2:6379); see the "
            'README\'s "Running more than one instance"',
        )


@register(CheckSpec("bastion.W042", "metrics are enabled and not declared blocked at the proxy"))
def _metrics(settings: Settings) -> Iterator[Finding]:
    if settings.METRICS_ENABLED and not settings.METRICS_BLOCKED_AT_PROXY:
        yield finding(
            "bastion.W042",
            "METRICS_ENABLED is on and /api/metrics is answered to anyone who reaches the app; "
            "bastion cannot see whether the proxy refuses it",
            "refuse /api/metrics at the proxy in front (bastion's Caddyfile does) and scrape the "
            "app from inside the network, then declare it: METRICS_BLOCKED_AT_PROXY=true",
        )


@register(CheckSpec("bastion.W050", "the production database is SQLite"))
def _database(settings: Settings) -> Iterator[Finding]:
    if settings.is_production and urlsplit(settings.DATABASE_URL).scheme == "sqlite":
        yield finding(
            "bastion.W050",
            "DATABASE_URL is SQLite in production: one file on one host, so there is one app "
            "host, and writes from several processes wait on each other",
            "use PostgreSQL: DATABASE_URL=postgresql://user@db-host/bastion",
        )


@_BASTION.declare(
    CheckSpec(
        "bastion.E051",
        "bastion's tables are missing, behind, or at an unknown revision (reads the database)",
    )
)
def schema_state(settings: Settings, state: str | None) -> Iterator[Finding]:
    """E051 from where bastion's schema stands (:mod:`bastion.db._schema`; None: unknown).

    ``bastion check --deploy`` reads the state when the database answers and passes
    it here, as it does W060's heartbeat age. An unmigrated database starts fine and
    fails every sign-in, so it is an error, not a judgement call.
    """
    if state is None or state == "current":
        return
    from bastion.db._schema import ADVICE  # noqa: PLC0415 - no SQLAlchemy for the other checks

    yield finding(
        "bastion.E051",
        f"bastion's schema is {state}: {ADVICE[state].split('; ')[0]}",
        "run `bastion migrate` with the app's environment before the app starts"
        if state != "unknown"
        else "deploy the bastion that migrated this database, or restore the database",
    )


#: A worker writes a heartbeat every JOBS_STALLED_SECONDS / 6; older than this, none is alive.
HEARTBEAT_MAX_AGE = 60.0


@_BASTION.declare(
    CheckSpec(
        "bastion.W060",
        "jobs are enabled and no worker heartbeat is younger than 60 s (reads the database)",
    )
)
def worker_heartbeat(settings: Settings, youngest: float | None) -> Iterator[Finding]:
    """W060 from the age in seconds of the youngest worker heartbeat (None: no worker).

    The one check that needs the database: ``bastion check --deploy`` reads the
    heartbeats when ``JOBS_ENABLED`` and the database answers, and passes the age
    here, so the rule itself stays a pure function like the others.
    """
    if not settings.JOBS_ENABLED or (youngest is not None and youngest < HEARTBEAT_MAX_AGE):
        return
    seen = (
        "no worker has ever"
        if youngest is None
        else f"the youngest heartbeat is {youngest:.0f}s old; no worker has"
    )
    yield finding(
        "bastion.W060",
        f"JOBS_ENABLED is on but {seen} reported within {HEARTBEAT_MAX_AGE:.0f}s: deferred jobs "
        "wait in the queue and nothing runs them",
        "run `bastion worker` (the compose file's `worker` service) with the app's environment",
    )


@register(
    CheckSpec("bastion.W061", "jobs run inline in production (they die with the app process)")
)
def _jobs_inline(settings: Settings) -> Iterator[Finding]:
    if settings.is_production and not settings.JOBS_ENABLED:
        yield finding(
            "bastion.W061",
            "JOBS_ENABLED is off in production: jobs run inline in the app process, so a job "
            "waiting for its retry or its delay is lost when the process stops or dies",
            "set JOBS_ENABLED=true (with PostgreSQL) and run `bastion worker` beside the app",
        )


@register(CheckSpec("bastion.E070", "production without EMAIL_URL: no mail is sent"))
def _email(settings: Settings) -> Iterator[Finding]:
    if settings.is_production and settings.EMAIL_URL is None:
        yield finding(
            "bastion.E070",
            "EMAIL_URL is not set in production: password-reset links and security notices "
            "are not sent (each message is dropped with one WARNING in the log)",
            "set EMAIL_URL=smtp://user:password@host:587 (STARTTLS) or smtps://...:465 "
            "(implicit TLS), and EMAIL_FROM to an address the server may send as",
        )


#: How many administrators W080 names before it says "and N more".
_NAMED_ADMINS = 5


@_BASTION.declare(
    CheckSpec(
        "bastion.W080",
        "an administrator account signs in with a password alone (reads the database)",
    )
)
def admins_without_second_factor(settings: Settings, emails: Sequence[str]) -> Iterator[Finding]:
    """W080 from the active administrators with neither TOTP on nor a passkey.

    ``bastion check --deploy`` reads them when the database answers and passes
    them here, as it does E051's schema state. An administrator's password
    opens the audit log and every account's data: a phished or reused one
    should not be enough.
    """
    if not emails:
        return
    named = ", ".join(emails[:_NAMED_ADMINS])
    if len(emails) > _NAMED_ADMINS:
        named += f" and {len(emails) - _NAMED_ADMINS} more"
    yield finding(
        "bastion.W080",
        f"{len(emails)} administrator account(s) without a second factor: {named}",
        "each of them turns on TOTP (or adds a passkey) on /account, or through "
        "POST /api/auth/totp/enroll and /api/auth/totp/confirm",
    )


#: bastion's checks, then the apps', once the plugins are loaded.
_merged: CheckRegistry | None = None


def registry() -> Mapping[str, CheckSpec]:
    """Every ID that can be reported: bastion's own (:data:`CHECKS`), then the apps'.

    An app's checks come from its ``bastion.checks`` entry point (see
    :mod:`bastion._plugins`), a :class:`~bastion.deploy._registry.CheckRegistry`
    loaded on first use (by ``bastion check``, never by loading the settings).
    A plugin may not take an ID bastion already uses.
    """
    return _everything().specs


def _everything() -> CheckRegistry:
    global _merged  # noqa: PLW0603 - loaded once per process
    if _merged is None:
        merged = CheckRegistry()
        merged.merge(_BASTION)
        for plugin in load_check_plugins():
            if not isinstance(plugin, CheckRegistry):
                raise TypeError(
                    f"a bastion.checks entry point must name a CheckRegistry, got {plugin!r}"
                )
            merged.merge(plugin)
        _merged = merged
    return _merged


def run_checks(
    settings: Settings,
    *,
    deploy: bool = True,
    extra: Iterable[Finding] = (),
) -> CheckResult:
    """Run the checks; without ``deploy`` only the findings valid in any environment count.

    ``extra``: findings the caller computed from outside the settings (W060's
    heartbeat age), filtered and silenced like the rest.

    Silenced IDs (``SILENCED_CHECKS``) are still evaluated, so the report can say
    how many were hidden; an operator should see that something was muted.
    """
    findings: list[Finding] = []
    silenced: list[Finding] = []
    muted = set(settings.SILENCED_CHECKS)
    every = _everything()
    for found in itertools.chain((f for rule in every.rules for f in rule(settings)), extra):
        if every.specs[found.id].deploy and not deploy:
            continue
        (silenced if found.id in muted else findings).append(found)
    return CheckResult(tuple(findings), tuple(silenced))


def format_text(result: CheckResult, *, deploy: bool) -> str:
    """The human report: one block per finding, then a one-line summary."""
    lines = [found.to_text() for found in result.findings]
    scope = "deployment checks" if deploy else "basic checks (add --deploy for production)"
    summary = (
        f"bastion check: {len(result.errors)} error(s), {len(result.warnings)} warning(s)"
        f" ({len(result.silenced)} silenced) from {scope}"
    )
    if not result.findings:
        summary = f"bastion check: no issues ({len(result.silenced)} silenced) from {scope}"
    return "\n".join([*lines, summary])
