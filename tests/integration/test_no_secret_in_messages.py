"""No password and no SECRET_KEY in any message bastion prints or logs.

Every setting the model has (read from ``Settings.model_fields``, so a setting
added tomorrow is covered) gets a bad value that carries a recognisable
password, and ``bastion check``, ``bastion check --deploy`` and
``bastion migrate`` run on it; the database and Valkey URLs also get values
that load but fail later (a refused PostgreSQL, a refused Valkey), and the app
starts on them. The password must not appear in stdout, stderr or a log record.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import httpx
import pytest

from bastion._redact import forget, redact, redact_url
from bastion.cli import main
from bastion.config import Settings
from tests.support.servers import AppServer, free_port

PASSWORD = "Hunter2Pw-7xq"
URLISH = f"nonsense://admin:{PASSWORD}@db.internal:notaport/x"

COMMANDS = (["check"], ["check", "--deploy"], ["check", "--deploy", "--json"], ["migrate"])


def _bad_values() -> list[tuple[str, str]]:
    refused = free_port()
    cases = [(name, URLISH) for name in Settings.model_fields]
    cases += [
        ("SECRET_KEY", PASSWORD),  # too short: E002 must not quote it
        ("DATABASE_URL", f"mysql://admin:{PASSWORD}@db/x"),
        ("DATABASE_URL", f"postgresql://admin:{PASSWORD}@db:port/x"),
        ("DATABASE_URL", f"admin:{PASSWORD}@db/x"),
        ("DATABASE_URL", f"postgresql://admin:{PASSWORD}@127.0.0.1:{refused}/x"),
        ("VALKEY_URL", f"http://admin:{PASSWORD}@db/0"),
        ("VALKEY_URL", f"redis://admin:{PASSWORD}@127.0.0.1:{refused}/0"),
        ("VALKEY_URL", f"redis://:{PASSWORD}@db:port/0"),
        ("APP_URL", f"http://admin:{PASSWORD}@app.example.com"),
        ("EMAIL_URL", f"http://admin:{PASSWORD}@smtp.example.com"),
        ("EMAIL_URL", f"smtp://admin:{PASSWORD}@smtp.example.com:port"),
        ("EMAIL_URL", f"smtps://admin:{PASSWORD}@127.0.0.1:{refused}"),
    ]
    return cases


@pytest.fixture(autouse=True)
def _forget_secrets() -> None:
    forget()


def _case_id(value: object) -> str:
    """The case, without the free port in it: every xdist worker must collect the same ids."""
    return re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", str(value))[:40]


@pytest.mark.parametrize(("name", "value"), _bad_values(), ids=_case_id)
@pytest.mark.parametrize("production", [False, True], ids=["development", "production"])
def test_no_command_prints_the_password(
    name: str,
    value: str,
    production: bool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/bastion.db")
    if production:
        monkeypatch.setenv("APP_ENV", "production")
        monkeypatch.setenv("SECRET_KEY", "k" * 10 + "x7Q!vR2#pL9@" * 5)
        monkeypatch.setenv("JOBS_ENABLED", "true")  # W060 reads the database
        monkeypatch.setenv("DATABASE_TIMEOUT_MS", "200")
        monkeypatch.setenv("DATABASE_URL", f"postgresql://u@127.0.0.1:{free_port()}/x")
    monkeypatch.setenv(name, value)
    caplog.set_level(logging.DEBUG)
    statuses = []
    for command in COMMANDS:
        statuses.append(main(command))
        forget()
    out, err = capfd.readouterr()
    logged = caplog.text + "".join(
        f"{record.getMessage()} {record.exc_text or ''}" for record in caplog.records
    )
    for stream, text in (("stdout", out), ("stderr", err), ("logs", logged)):
        assert PASSWORD not in text, f"{stream} of {COMMANDS} with {name}:\n{text}"
    assert any(status != 0 for status in statuses)  # the value was bad, or the check said so
    # The value is named once per message, not "got 'x' (got 'x')".
    for line in err.splitlines():
        if "(got " in line:
            shown = line.split("(got ", 1)[1]
            assert shown.rstrip(")") not in line.split("(got ", 1)[0], line


@pytest.mark.parametrize(
    "variable",
    ["DATABASE_URL", "VALKEY_URL", "SECRET_KEY"],
)
def test_app_start_up_and_requests_never_log_the_password(variable: str, tmp_path: Path) -> None:
    """The app starts on values that load but fail at the first use, and is used."""
    refused = free_port()
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path}/bastion.db",
        "METRICS_ENABLED": "true",
    }
    if variable == "DATABASE_URL":
        env["DATABASE_URL"] = f"postgresql://admin:{PASSWORD}@127.0.0.1:{refused}/x"
    elif variable == "VALKEY_URL":
        env["VALKEY_URL"] = f"redis://admin:{PASSWORD}@127.0.0.1:{refused}/0"
    else:
        env["SECRET_KEY"] = PASSWORD
    app = AppServer(env).start(migrate=variable != "DATABASE_URL")
    try:
        for path in ("/", "/api/health", "/api/sandbox/cache/k", "/sign-in", "/api/metrics"):
            httpx.get(app.url + path, timeout=5)
        httpx.post(
            app.url + "/api/auth/sign-in",
            json={"email": "a@example.com", "password": "wrong-password"},
            headers={"Origin": app.url},
            timeout=5,
        )
    finally:
        app.stop()
    assert PASSWORD not in app.final_output, app.final_output
    assert app.final_output.strip() or variable == "SECRET_KEY"  # the failures were logged


def test_redact_covers_the_forms_a_password_takes() -> None:
    forget()
    assert redact_url(f"postgresql://u:{PASSWORD}@h/db") == "postgresql://u:***@h/db"
    assert redact_url(f"u:{PASSWORD}@h/db") == "u:***@h/db"
    assert redact_url("redis://h:6379/0") == "redis://h:6379/0"
    assert PASSWORD not in redact(f"dsn 'postgresql://u:{PASSWORD}@h:5432/db' failed")
    assert PASSWORD not in redact(f"host=h password={PASSWORD} user=u")
    assert redact("redis://127.0.0.1:6379/0 is down") == "redis://127.0.0.1:6379/0 is down"
