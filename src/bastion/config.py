"""One typed settings object, read from the environment.

Every knob bastion has lives here, so that a deployment is described by its
environment alone and a wrong value is caught once, at start-up, with a message
an operator can act on, instead of surfacing later as a 500 on some request.

This is the bottom of the house: every block imports it, so it imports only
leaves (:mod:`bastion._redact` and the parsers in :mod:`bastion._parse`, which
the blocks use too, so a value accepted here parses the same way there).
Loading settings runs no plugin: whether ``SILENCED_CHECKS`` names real
checks is a finding of ``bastion check`` (``bastion.W005``), which knows them.

bastion lives inside apps that already read ``DATABASE_URL`` or ``APP_ENV``
with meanings of their own, so every variable may also be given as
``BASTION_<NAME>``, which wins over ``<NAME>``: an app keeps its variable and
gives bastion another. In code, ``Settings(database_url=...)`` (any case)
wins over both; a keyword that is no setting is a :class:`ConfigError`
naming the setting it probably meant, never silently dropped.
"""

from __future__ import annotations

import difflib
from functools import lru_cache
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from bastion._parse.email import email_url
from bastion._parse.networks import parse_proxies
from bastion._parse.origins import TrustedOrigins
from bastion._parse.ratelimit import parse_rate_limit
from bastion._parse.schedule import cron_for
from bastion._parse.urls import database_backend, database_url, valkey_url
from bastion._redact import redact, redact_url, remember

__all__ = [
    "ConfigError",
    "Settings",
    "get_settings",
    "load_settings",
    "reset_settings",
]

#: Used only in development so that a laptop needs no configuration. Production
#: refuses to start without a real key (see ``_check_production``).
DEV_SECRET_KEY = "bastion-development-key-not-for-production"  # noqa: S105

#: Every setting may be given as ``BASTION_<NAME>`` too, and that form wins.
ENV_PREFIX = "BASTION_"

#: Loopback, and peers on a unix socket (which only local processes can reach).
_LOOPBACK_PROXIES = ("127.0.0.0/8", "::1/128", "unix")

CsvList = Annotated[tuple[str, ...], NoDecode]


class ConfigError(Exception):
    """A configuration value is wrong; the message is one line naming the variable."""


def _split_csv(value: object) -> object:
    """Accept the comma-separated form every shell and .env file can write."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


class Settings(BaseSettings):
    """The whole configuration. Field names are the environment variable names.

    Read, strongest first: keywords given in code (``Settings(database_url=...)``,
    in any case), ``BASTION_<NAME>``, then ``<NAME>``.
    """

    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore", frozen=True)

    def __init__(self, **values: Any) -> None:
        """Refuse a keyword that is no setting, naming the closest one; accept any case."""
        super().__init__(**_keywords(type(self), values))

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keywords, then ``BASTION_<NAME>``, then ``<NAME>``: the first that has a value wins."""
        prefixed = EnvSettingsSource(settings_cls, case_sensitive=True, env_prefix=ENV_PREFIX)
        return (init_settings, prefixed, env_settings, dotenv_settings, file_secret_settings)

    APP_ENV: Literal["development", "production"] = "development"
    APP_URL: str = "http://localhost:8000"
    DATABASE_URL: str = "sqlite:///bastion.db"
    VALKEY_URL: str | None = None
    SECRET_KEY: str = DEV_SECRET_KEY
    TRUSTED_ORIGINS: CsvList = ()
    ALLOWED_HOSTS: CsvList = ()
    TRUSTED_PROXIES: CsvList = _LOOPBACK_PROXIES
    PROXY_HEADERS: Literal["x-forwarded", "forwarded"] = "x-forwarded"
    METRICS_ENABLED: bool = False
    #: Declared by the operator: the proxy refuses /api/metrics (the app cannot see it).
    METRICS_BLOCKED_AT_PROXY: bool = False
    #: Worker processes per host (uvicorn and gunicorn read the same variable).
    WEB_CONCURRENCY: int = Field(default=1, ge=1, le=1_024)
    #: Check IDs that ``bastion check`` counts but does not report, e.g. bastion.W041.
    SILENCED_CHECKS: CsvList = ()

    SESSION_MAX_AGE: int = Field(default=14 * 24 * 3600, ge=60, le=366 * 24 * 3600)
    SESSION_IDLE_TIMEOUT: int = Field(default=24 * 3600, ge=60, le=366 * 24 * 3600)
    DATABASE_TIMEOUT_MS: int = Field(default=2_000, ge=50, le=60_000)
    #: argon2id's parameters for new password hashes (argon2-cffi's profiles): ``cheapest``
    #: is for test suites (as Django's docs advise a fast hasher there), refused in production.
    PASSWORD_HASH_PROFILE: Literal["rfc_9106_low_memory", "cheapest"] = "rfc_9106_low_memory"  # noqa: S105 - a name, not a secret
    #: The shortest new password accepted (NIST SP 800-63B rev. 4: 15 when the password is
    #: the only factor, 8 the floor with a second one); signing in is never refused for it.
    PASSWORD_MIN_LENGTH: int = Field(default=15, ge=8, le=64)
    #: The site's name as its users know it: a new password may not contain its words
    #: (nor those of APP_URL's host). The example app calls itself bastion.
    SITE_NAME: str = Field(default="bastion", min_length=1, max_length=100)

    CACHE_KEY_PREFIX: str = Field(default="bastion:", min_length=1, max_length=64)
    #: Deprecated, no effect: CACHE_COMMAND_TIMEOUT_MS bounds connecting too, and a
    #: separate connect timer fired on a busy event loop against a healthy Valkey.
    #: Still accepted so that existing environments start; ``check`` reports it (W033).
    CACHE_CONNECT_TIMEOUT_MS: int = Field(default=30, ge=1, le=10_000)
    CACHE_COMMAND_TIMEOUT_MS: int = Field(default=50, ge=1, le=10_000)
    CACHE_BREAKER_FAILURES: int = Field(default=5, ge=1, le=1_000)
    CACHE_BREAKER_COOLDOWN_MS: int = Field(default=5_000, ge=10, le=600_000)
    #: The breaker opens when, within the window, at least CACHE_BREAKER_FAILURES
    #: calls failed and they are at least this share of the window's calls.
    CACHE_BREAKER_FAILURE_RATE: float = Field(default=0.5, gt=0.0, le=1.0)
    CACHE_BREAKER_WINDOW_MS: int = Field(default=10_000, ge=100, le=600_000)

    SIGN_IN_RATE_LIMIT: str = "10/minute"
    SIGN_IN_ACCOUNT_RATE_LIMIT: str = "5/15minutes"
    #: Accounts one client IP may create, in the same notation (its own budget).
    SIGN_UP_RATE_LIMIT: str = "5/hour"
    #: Password-reset requests per client IP and, apart, per account (the same notation).
    PASSWORD_RESET_RATE_LIMIT: str = "5/hour"  # noqa: S105 - a rate, not a secret
    #: Seconds an emailed password-reset link works.
    PASSWORD_RESET_TTL: int = Field(default=1_800, ge=60, le=7 * 24 * 3600)

    #: ``smtp://[user:password@]host[:port]`` (STARTTLS when the server offers it, port 587
    #: by default) or ``smtps://...`` (implicit TLS, port 465); see :mod:`bastion._parse.email`.
    #: Unset: mail goes to the console in development, nowhere in production (E070).
    EMAIL_URL: str | None = None
    #: The From address of every message bastion sends.
    EMAIL_FROM: str = "bastion@localhost"

    #: Background jobs on procrastinate's PostgreSQL tables, run by ``bastion worker``.
    #: Off: jobs run inline in the app's process (the embedded default).
    JOBS_ENABLED: bool = False
    #: A worker silent this long is presumed dead: its running jobs are run again.
    JOBS_STALLED_SECONDS: int = Field(default=30, ge=5, le=3_600)
    #: How often expired and idle sessions are deleted (a divisor of a minute, hour or day).
    JOBS_SESSION_CLEANUP_SECONDS: int = Field(default=600, ge=1, le=86_400)

    @field_validator(
        "TRUSTED_ORIGINS", "ALLOWED_HOSTS", "TRUSTED_PROXIES", "SILENCED_CHECKS", mode="before"
    )
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("APP_URL")
    @classmethod
    def _app_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected an absolute http(s) URL such as https://app.example.com")
        return value.rstrip("/")

    @field_validator("DATABASE_URL")
    @classmethod
    def _database_url(cls, value: str) -> str:
        return database_url(value)

    @field_validator("VALKEY_URL")
    @classmethod
    def _valkey_url(cls, value: str | None) -> str | None:
        return valkey_url(value)

    @field_validator("EMAIL_URL")
    @classmethod
    def _email_url(cls, value: str | None) -> str | None:
        return email_url(value)  # the one parser bastion.mail connects with

    @field_validator(
        "SIGN_IN_RATE_LIMIT",
        "SIGN_IN_ACCOUNT_RATE_LIMIT",
        "SIGN_UP_RATE_LIMIT",
        "PASSWORD_RESET_RATE_LIMIT",
    )
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        parse_rate_limit(value)  # raises ValueError naming the expected notation
        return value

    @field_validator("TRUSTED_PROXIES")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        parse_proxies(value)  # raises ValueError naming the bad entry
        return value

    @field_validator("TRUSTED_ORIGINS")
    @classmethod
    def _origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        TrustedOrigins(value)  # raises ValueError naming the bad entry
        return value

    @field_validator("JOBS_SESSION_CLEANUP_SECONDS")
    @classmethod
    def _cleanup_every(cls, value: int) -> int:
        cron_for(value)  # raises ValueError naming the values that work
        return value

    @model_validator(mode="after")
    def _check_production(self) -> Settings:
        if self.APP_ENV == "production" and self.SECRET_KEY == DEV_SECRET_KEY:
            raise ValueError("SECRET_KEY: expected a secret of your own when APP_ENV=production")
        if self.APP_ENV == "production" and self.PASSWORD_HASH_PROFILE == "cheapest":  # noqa: S105
            raise ValueError(
                "PASSWORD_HASH_PROFILE: 'cheapest' is for test suites, not APP_ENV=production"
            )
        return self

    @model_validator(mode="after")
    def _check_jobs(self) -> Settings:
        """procrastinate keeps its queue in PostgreSQL; SQLite cannot hold it."""
        if self.JOBS_ENABLED and database_backend(self.DATABASE_URL) != "postgresql":
            raise ValueError(
                "JOBS_ENABLED: needs a PostgreSQL DATABASE_URL (the job queue lives there); "
                "unset JOBS_ENABLED to run jobs inline"
            )
        return self

    @property
    def is_production(self) -> bool:
        return self.APP_ENV == "production"

    @property
    def cache_enabled(self) -> bool:
        return self.VALKEY_URL is not None


def _keywords(cls: type[Settings], values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with each keyword spelt as its field; ConfigError for one that is none.

    pydantic's own options (``_env_file``) pass through. Two spellings of one
    setting (``database_url`` and ``DATABASE_URL``) are refused too: which
    one was meant is not ours to guess.
    """
    fields = {name.upper(): name for name in cls.model_fields}
    given: dict[str, Any] = {}
    for keyword, value in values.items():
        if keyword.startswith("_"):
            given[keyword] = value
            continue
        name = fields.get(keyword.upper())
        if name is None:
            raise ConfigError(f"Settings: {keyword!r} is not a setting{_closest(keyword)}")
        if name in given:
            raise ConfigError(f"Settings: {name} is given twice (as {keyword!r} too)")
        given[name] = value
    return given


def _closest(keyword: str) -> str:
    """``" (did you mean DATABASE_URL?)"``, or nothing when no setting is close."""
    upper = keyword.upper().removeprefix(ENV_PREFIX)
    match = difflib.get_close_matches(upper, Settings.model_fields, n=1, cutoff=0.6)
    return f" (did you mean {match[0]}?)" if match else ""


#: Settings whose value is itself a secret: a message never shows it, even redacted.
_SECRET_FIELDS = frozenset({"SECRET_KEY"})


def _describe(error: ValidationError) -> str:
    """Reduce pydantic's multi-line report to one line per variable, without a secret.

    The value is shown once, so the operator sees what was read, except for a
    secret setting; a URL's password is masked, and a message that already
    quotes the value gets no second copy.
    """
    parts: list[str] = []
    for item in error.errors():
        loc = ".".join(str(p) for p in item["loc"]) or ""
        message = redact(str(item["msg"]).removeprefix("Value error, "))
        got: Any = item.get("input")
        shown = ""
        if loc and loc not in _SECRET_FIELDS and isinstance(got, str | int | bool):
            value = repr(redact_url(got) if isinstance(got, str) else got)
            shown = "" if value in message else f" (got {value})"
        parts.append(f"{loc}: {message}{shown}" if loc else message)
    return "; ".join(parts)


def load_settings(**overrides: Any) -> Settings:
    """Read the environment (plus explicit overrides); raise ConfigError on a bad value."""
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(f"invalid configuration: {_describe(exc)}") from None
    remember_secrets(settings)
    return settings


def remember_secrets(settings: Settings) -> None:
    """From now on, every message bastion emits masks the secrets of ``settings``.

    :func:`load_settings` calls it; so does :class:`~bastion.Bastion` for
    settings an app built itself with ``Settings(...)``.
    """
    remember(
        secrets=[settings.SECRET_KEY] if settings.SECRET_KEY != DEV_SECRET_KEY else [],
        urls=[settings.DATABASE_URL, settings.VALKEY_URL, settings.EMAIL_URL],
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()


def reset_settings() -> None:
    """Forget the cached settings (tests and the CLI change the environment)."""
    get_settings.cache_clear()
