"""Load only what is used: the embedded default pays for no migration tool, queue or driver.

``import bastion; bastion.Bastion()`` on the default (SQLite, no Valkey, jobs
off, no metrics) is what every app does at start-up, and every CLI command
too. Alembic, procrastinate (with psycopg), asyncpg, valkey-py and
prometheus_client are each a share of that start when imported eagerly
(``bench/imports.py`` measures it); each must come in only with its feature,
and then it must come in, or the test of its absence would pass on code that
never uses it at all.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.imports import modules_loaded_by

HEAVY = ("alembic", "procrastinate", "psycopg", "asyncpg")
#: A PostgreSQL nobody answers on (port 9, discard): nothing here connects.
POSTGRES = "postgresql://bastion@127.0.0.1:9/bastion"


def _loaded(code: str, prefixes: tuple[str, ...] = HEAVY, **env: str) -> set[str]:
    setup = "".join(f"import os; os.environ[{k!r}] = {v!r}\n" for k, v in env.items())
    return {name.split(".")[0] for name in modules_loaded_by(setup + code, prefixes)}


def test_the_embedded_default_loads_none_of_them(tmp_path: Path) -> None:
    code = "import bastion\nbastion.Bastion()"
    database = f"sqlite:///{tmp_path}/bastion.db"
    assert _loaded(code, DATABASE_URL=database) == set()
    others = (
        "valkey",
        "prometheus_client",
        "croniter",
        "aiosmtplib",
        "pyotp",
        "segno",
        "cryptography",
    )
    assert (
        modules_loaded_by(f"import os; os.environ['DATABASE_URL'] = {database!r}\n{code}", others)
        == []
    )


def test_a_valkey_url_and_metrics_bring_their_clients(tmp_path: Path) -> None:
    code = (
        "import os\n"
        f"os.environ.update(DATABASE_URL='sqlite:///{tmp_path}/bastion.db', METRICS_ENABLED='true',"
        " VALKEY_URL='redis://127.0.0.1:9/0')\n"
        "import bastion\nbastion.Bastion()"
    )
    loaded = {name.split(".")[0] for name in modules_loaded_by(code, ("valkey", "prometheus"))}
    assert loaded == {"valkey", "prometheus_client"}


def test_bastion_migrate_brings_alembic() -> None:
    """``bastion.db.migrate`` is still importable from the same place, and loads Alembic."""
    assert _loaded("import bastion.db") == set()
    assert _loaded("from bastion.db import migrate") == {"alembic"}


def test_a_postgresql_url_brings_its_driver_only() -> None:
    assert _loaded("import bastion\nbastion.Bastion()", DATABASE_URL=POSTGRES) == {"asyncpg"}


def test_jobs_enabled_brings_the_queue_when_it_opens() -> None:
    code = (
        "import asyncio, bastion\n"
        "security = bastion.Bastion()\n"
        "async def main():\n"
        "    await security.jobs.open()\n"
        "    await security.jobs.queue.close()\n"
        "asyncio.run(main())\n"
    )
    assert _loaded(code, DATABASE_URL=POSTGRES, JOBS_ENABLED="true") == {
        "asyncpg",
        "procrastinate",
        "psycopg",
        "psycopg_binary",
        "psycopg_pool",
    }


def test_a_task_declared_with_retries_asks_procrastinate_only_when_it_fails() -> None:
    declare = (
        "from bastion.jobs import task\n"
        "@task(name='lazy.t', retries=2, backoff=2)\n"
        "async def t(ctx): ...\n"
    )
    assert _loaded(declare) == set()
    wait = _loaded(declare + "assert 0 < t.retry_in(ValueError(), 1) <= 2\n")
    assert {"procrastinate", "psycopg"} <= wait


def test_an_email_url_brings_aiosmtplib_only_when_a_message_goes_out() -> None:
    """EMAIL_URL set and a transport built: still nothing; sending (refused at once) loads it."""
    build = (
        "import bastion\n"
        "from bastion.mail import Message, transport_for\n"
        "security = bastion.Bastion()\n"
        "transport = transport_for(security.settings)\n"
    )
    send = (
        "import asyncio, contextlib\n"
        "with contextlib.suppress(Exception):\n"
        "    asyncio.run(transport.send(Message('a@example.com', 's', 't')))\n"
    )
    url = "smtp://127.0.0.1:9"  # discard: nothing listens, the send fails at once
    assert _loaded(build, ("aiosmtplib",), EMAIL_URL=url) == set()
    assert _loaded(build + send, ("aiosmtplib",), EMAIL_URL=url) == {"aiosmtplib"}


def test_passkeys_bring_py_webauthn_only_when_a_ceremony_runs(tmp_path: Path) -> None:
    """The accounts' routes mounted: no py_webauthn (nor cbor2); an answer parsed: both."""
    build = (
        "import bastion\n"
        "from bastion.auth import auth_routes\n"
        "security = bastion.Bastion()\n"
        "auth_routes(security.auth_service(), 60)\n"
    )
    parse = (
        "import contextlib\n"
        "from bastion.auth._passkeys import parse_answer\n"
        "with contextlib.suppress(Exception):\n"
        "    parse_answer({}, registration=False)\n"
    )
    database = f"sqlite:///{tmp_path}/bastion.db"
    prefixes = ("webauthn", "cbor2")
    assert _loaded(build, prefixes, DATABASE_URL=database) == set()
    assert _loaded(build + parse, prefixes, DATABASE_URL=database) == {"webauthn", "cbor2"}


def test_the_accounts_load_no_second_factor_library_until_one_is_used() -> None:
    """An app with bastion's accounts and no TOTP user pays for neither pyotp, segno nor
    cryptography: they come in with the first enrolment, code or sealed secret."""
    code = (
        "import bastion\nfrom bastion.auth import auth_routes\n"
        "security = bastion.Bastion()\nauth_routes(security.auth_service(), 60)\n"
    )
    assert modules_loaded_by(code, ("pyotp", "segno", "cryptography")) == []
    enrol = code + "from bastion.auth._totp import new_enrolment\nnew_enrolment('a@b.c', 'x')\n"
    assert {name.split(".")[0] for name in modules_loaded_by(enrol, ("pyotp", "segno"))} == {
        "pyotp",
        "segno",
    }
