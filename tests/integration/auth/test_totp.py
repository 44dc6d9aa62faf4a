"""TOTP and backup codes over the JSON API, in process, on SQLite and PostgreSQL.

Codes are computed from the secret the enrolment shows, with pyotp, at time
steps the test names (see tests/integration/auth/totp.py).
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import delete, select

from bastion.audit import (
    SECOND_FACTOR_DISABLED,
    SECOND_FACTOR_ENABLED,
    SECOND_FACTOR_FAILED,
    SECOND_FACTOR_SUCCEEDED,
    SIGN_IN_FAILED,
    SIGN_IN_SUCCEEDED,
)
from bastion.auth._pending import PENDING_COOKIE
from bastion.auth._sessions import COOKIE_NAME
from bastion.config import Settings
from bastion.db._models import BackupCode, TotpSecret
from bastion.mail import outbox
from tests.integration.auth.conftest import Browser
from tests.integration.auth.passwords import audit_rows, next_message
from tests.integration.auth.totp import (
    BACKUP_CODE,
    PASSWORD,
    code,
    enable_totp,
    password_step,
    second_step,
    steady_step,
)

EMAIL = "ada.totp@example.com"


@pytest.fixture
async def counted(settings: Settings) -> AsyncIterator[Browser]:
    """The example app with its metrics on, and a site name of its own (the TOTP issuer)."""
    instance = Browser(
        settings.model_copy(update={"METRICS_ENABLED": True, "SITE_NAME": "Harbour & Co"})
    )
    yield instance
    await instance.close()


async def test_enrol_confirm_then_sign_in_with_a_code(counted: Browser) -> None:
    client = counted.client
    await counted.sign_up(EMAIL, PASSWORD)
    enrolled = await client.post("/api/auth/totp/enroll", json={"password": PASSWORD})
    assert enrolled.status_code == 200, enrolled.text
    assert enrolled.headers["cache-control"] == "no-store"
    body = enrolled.json()
    assert set(body) == {"secret", "otpauth_uri", "qr_svg"}
    secret = body["secret"]
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    assert body["otpauth_uri"] == (
        f"otpauth://totp/Harbour%20%26%20Co:ada.totp%40example.com?secret={secret}"
        "&issuer=Harbour%20%26%20Co"
    )
    assert body["qr_svg"].startswith("<svg")
    assert "<script" not in body["qr_svg"].lower()
    assert "on" + "load" not in body["qr_svg"]

    # Not on yet: a sign-in still needs the password alone, until a right code confirms.
    step = await steady_step()
    refused = await client.post("/api/auth/totp/confirm", json={"code": code(secret, step - 3)})
    assert refused.status_code == 400
    assert refused.json()["reason"] == "wrong_code"
    seen = outbox()
    confirmed = await client.post("/api/auth/totp/confirm", json={"code": code(secret, step - 1)})
    assert confirmed.status_code == 200, confirmed.text
    backup_codes = confirmed.json()["backup_codes"]
    assert len(backup_codes) == len(set(backup_codes)) == 10
    assert all(BACKUP_CODE.match(one) for one in backup_codes)
    again = await client.post("/api/auth/totp/confirm", json={"code": code(secret, step)})
    assert again.status_code == 409
    assert again.json()["reason"] == "totp_enabled"

    (enabled,) = await audit_rows(counted, SECOND_FACTOR_ENABLED)
    assert (enabled.subject, enabled.client_ip, enabled.details) == (
        EMAIL,
        "127.0.0.1",
        {"method": "totp"},
    )
    notice = await next_message(EMAIL, "Two-step sign-in was turned on", seen)
    assert secret not in notice.text

    # Stored sealed: neither the secret nor a backup code is anywhere in the tables.
    async with counted.database.session() as db:
        row = await db.scalar(select(TotpSecret))
        hashes = (await db.scalars(select(BackupCode.code_hash))).all()
    assert row is not None
    assert row.confirmed_at is not None
    assert row.last_step == step - 1
    assert secret not in row.secret_ciphertext
    assert len(hashes) == 10
    assert not {one.replace("-", "") for one in backup_codes} & set(hashes)

    await client.post("/api/auth/sign-out")
    first = await password_step(client, EMAIL)
    assert PENDING_COOKIE in first.cookies
    assert COOKIE_NAME not in first.cookies
    assert (await client.get("/api/auth/session")).json() == {"user": None}
    done = await second_step(client, code=code(secret, step))
    assert done.status_code == 200, done.text
    assert done.json() == {"user": {"id": 1, "email": EMAIL, "admin": False}}
    assert COOKIE_NAME in done.cookies
    (cleared,) = [c for c in done.headers.get_list("set-cookie") if c.startswith(PENDING_COOKIE)]
    assert "Max-Age=0" in cleared
    assert (await client.get("/api/auth/session")).json()["user"]["email"] == EMAIL

    (succeeded,) = await audit_rows(counted, SECOND_FACTOR_SUCCEEDED)
    assert (succeeded.subject, succeeded.client_ip, succeeded.details) == (
        EMAIL,
        "127.0.0.1",
        {"method": "totp"},
    )
    signed_in = await audit_rows(counted, SIGN_IN_SUCCEEDED)
    assert signed_in[0].details == {"second_factor": "totp"}
    metrics = (await client.get("/api/metrics")).text
    assert 'bastion_second_factor_total{method="totp",outcome="enabled"} 1.0' in metrics
    assert 'bastion_second_factor_total{method="totp",outcome="succeeded"} 1.0' in metrics


async def test_a_used_step_is_refused_and_drift_is_one_step(browser: Browser) -> None:
    client = browser.client
    secret, _, step = await enable_totp(client, EMAIL)  # confirmed with step - 1
    await client.post("/api/auth/sign-out")

    await password_step(client, EMAIL)
    # The confirmation's own code (a step already used), and codes two steps away: wrong.
    for wrong in (code(secret, step - 1), code(secret, step - 2), code(secret, step + 2)):
        answer = await second_step(client, code=wrong)
        assert answer.status_code == 401
        assert answer.json()["reason"] == "WRONG_CODE"
    # One step ahead (a phone clock 30 s fast) is accepted...
    assert (await second_step(client, code=code(secret, step + 1))).status_code == 200
    # ...and then the step now is refused, being older than the last one used.
    await client.post("/api/auth/sign-out")
    await password_step(client, EMAIL)
    assert (await second_step(client, code=code(secret, step))).status_code == 401
    assert (await second_step(client, code=code(secret, step + 1))).status_code == 401

    reasons = [row.details["reason"] for row in await audit_rows(browser, SECOND_FACTOR_FAILED)]
    assert sorted(reasons) == sorted(
        ["reused_step", "wrong_code", "wrong_code", "reused_step", "reused_step"]
    )
    failed = await audit_rows(browser, SECOND_FACTOR_FAILED)
    assert {row.client_ip for row in failed} == {"127.0.0.1"}
    assert {row.subject for row in failed} == {EMAIL}


async def test_backup_codes_work_once_with_or_without_the_dash(browser: Browser) -> None:
    client = browser.client
    _, backup_codes, _ = await enable_totp(client, EMAIL)
    await client.post("/api/auth/sign-out")
    first, second = backup_codes[0], backup_codes[1]

    await password_step(client, EMAIL)
    assert (await second_step(client, backup_code=first.upper())).status_code == 200
    await client.post("/api/auth/sign-out")
    await password_step(client, EMAIL)
    used = await second_step(client, backup_code=first)
    assert used.status_code == 401
    assert used.json()["reason"] == "WRONG_CODE"
    assert (await second_step(client, backup_code=second.replace("-", ""))).status_code == 200
    assert [row.details for row in await audit_rows(browser, SECOND_FACTOR_SUCCEEDED)] == [
        {"method": "backup_code"},
        {"method": "backup_code"},
    ]

    # New codes replace the old ones: an unused old code stops working.
    wrong = await client.post("/api/auth/totp/backup-codes", json={"password": "not it at all"})
    assert wrong.status_code == 401
    replaced = await client.post("/api/auth/totp/backup-codes", json={"password": PASSWORD})
    assert replaced.status_code == 200, replaced.text
    fresh = replaced.json()["backup_codes"]
    assert len(fresh) == 10
    assert not set(fresh) & set(backup_codes)
    await client.post("/api/auth/sign-out")
    await password_step(client, EMAIL)
    assert (await second_step(client, backup_code=backup_codes[2])).status_code == 401
    assert (await second_step(client, backup_code=fresh[0])).status_code == 200


async def test_enrolling_again_replaces_an_unconfirmed_secret_and_is_refused_when_on(
    browser: Browser,
) -> None:
    client = browser.client
    await browser.sign_up(EMAIL, PASSWORD)
    old = (await client.post("/api/auth/totp/enroll", json={"password": PASSWORD})).json()
    new = (await client.post("/api/auth/totp/enroll", json={"password": PASSWORD})).json()
    assert old["secret"] != new["secret"]
    step = await steady_step()
    stale = await client.post("/api/auth/totp/confirm", json={"code": code(old["secret"], step)})
    assert stale.status_code == 400
    confirmed = await client.post(
        "/api/auth/totp/confirm", json={"code": code(new["secret"], step)}
    )
    assert confirmed.status_code == 200
    refused = await client.post("/api/auth/totp/enroll", json={"password": PASSWORD})
    assert refused.status_code == 409
    assert refused.json()["reason"] == "totp_enabled"


async def test_turning_totp_off_needs_the_password_and_deletes_everything(
    browser: Browser,
) -> None:
    client = browser.client
    _, backup_codes, _ = await enable_totp(client, EMAIL)
    wrong = await client.request("DELETE", "/api/auth/totp", json={"password": "not it at all"})
    assert wrong.status_code == 401
    assert wrong.json() == {"error": "the password is wrong"}
    (failed,) = await audit_rows(browser, SIGN_IN_FAILED)
    assert failed.details == {"reason": "bad_password", "during": "totp_disable"}
    assert failed.client_ip == "127.0.0.1"

    seen = outbox()
    off = await client.request("DELETE", "/api/auth/totp", json={"password": PASSWORD})
    assert off.status_code == 204
    (disabled,) = await audit_rows(browser, SECOND_FACTOR_DISABLED)
    assert (disabled.subject, disabled.client_ip) == (EMAIL, "127.0.0.1")
    await next_message(EMAIL, "Two-step sign-in was turned off", seen)
    async with browser.database.session() as db:
        assert (await db.scalars(select(TotpSecret))).all() == []
        assert (await db.scalars(select(BackupCode))).all() == []
    again = await client.request("DELETE", "/api/auth/totp", json={"password": PASSWORD})
    assert again.status_code == 409
    assert again.json()["reason"] == "totp_disabled"
    codes = await client.post("/api/auth/totp/backup-codes", json={"password": PASSWORD})
    assert codes.status_code == 409

    # The password alone signs in again; the old backup codes are nothing.
    await client.post("/api/auth/sign-out")
    signed_in = await browser.sign_in(EMAIL, PASSWORD)
    assert signed_in.json()["user"]["email"] == EMAIL
    assert (await second_step(client, backup_code=backup_codes[0])).status_code == 401


async def test_a_wrong_enrolment_password_is_a_failed_sign_in(settings: Settings) -> None:
    limited = Browser(settings.model_copy(update={"SIGN_IN_ACCOUNT_RATE_LIMIT": "3/minute"}))
    try:
        await limited.sign_up(EMAIL, PASSWORD)
        for _ in range(3):
            answer = await limited.client.post(
                "/api/auth/totp/enroll", json={"password": "not the password at all"}
            )
            assert answer.status_code == 401
        failed = await audit_rows(limited, SIGN_IN_FAILED)
        assert [row.details for row in failed] == [
            {"reason": "bad_password", "during": "totp_enroll"}
        ] * 3
        over = await limited.client.post("/api/auth/totp/enroll", json={"password": PASSWORD})
        assert over.status_code == 429
        assert over.json()["reason"] == "RATE_LIMITED"
        async with limited.database.session() as db:
            assert (await db.scalars(select(TotpSecret))).all() == []
    finally:
        await limited.close()


async def test_wrong_codes_count_against_the_sign_in_limits(settings: Settings) -> None:
    """Per account: wrong codes spend the budget a password guess spends, then 429."""
    limited = Browser(settings.model_copy(update={"SIGN_IN_ACCOUNT_RATE_LIMIT": "5/minute"}))
    try:
        client = limited.client
        secret, _, step = await enable_totp(client, EMAIL)  # the enrolment's password: 1
        await client.post("/api/auth/sign-out")
        await password_step(client, EMAIL)  # 2
        for _ in range(2):  # 3, 4
            assert (await second_step(client, code="000000")).status_code == 401
        assert (await second_step(client, code=code(secret, step))).status_code == 200  # 5
        await client.post("/api/auth/sign-out")
        over = await client.post("/api/auth/sign-in", json={"email": EMAIL, "password": PASSWORD})
        assert over.status_code == 429
    finally:
        await limited.close()


async def test_a_code_over_the_limit_is_429_and_not_checked(settings: Settings) -> None:
    limited = Browser(settings.model_copy(update={"SIGN_IN_ACCOUNT_RATE_LIMIT": "3/minute"}))
    try:
        client = limited.client
        secret, _, step = await enable_totp(client, EMAIL)  # the enrolment's password: 1
        await client.post("/api/auth/sign-out")
        await password_step(client, EMAIL)  # 2
        assert (await second_step(client, code="000000")).status_code == 401  # 3
        over = await second_step(client, code=code(secret, step))
        assert over.status_code == 429
        assert over.json()["reason"] == "RATE_LIMITED"
        assert int(over.headers["retry-after"]) > 0
        assert len(await audit_rows(limited, SECOND_FACTOR_FAILED)) == 1
        async with limited.database.session() as db:
            row = await db.scalar(select(TotpSecret))
        assert row is not None
        assert row.last_step == step - 1
    finally:
        await limited.close()


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"code": "123456", "backup_code": "abcde-fghij"},
        {"code": 123456},
        {"backup_code": "x" * 65},
        [],
    ],
)
async def test_a_malformed_second_step_is_400(browser: Browser, body: object) -> None:
    answer = await browser.client.post("/api/auth/sign-in/second-factor", json=body)
    assert answer.status_code == 400
    assert "error" in answer.json()


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/auth/totp/enroll", {}),
        ("/api/auth/totp/enroll", {"password": 1}),
        ("/api/auth/totp/confirm", {"code": None}),
        ("/api/auth/totp/confirm", {"code": "1" * 65}),
        ("/api/auth/totp/backup-codes", {"password": "x" * 1025}),
    ],
)
async def test_malformed_totp_calls_are_400(browser: Browser, path: str, body: object) -> None:
    await browser.sign_up(EMAIL, PASSWORD)
    answer = await browser.client.post(path, json=body)
    assert answer.status_code == 400


async def test_confirm_without_an_enrolment_is_409(browser: Browser) -> None:
    await browser.sign_up(EMAIL, PASSWORD)
    answer = await browser.client.post("/api/auth/totp/confirm", json={"code": "123456"})
    assert answer.status_code == 409
    assert answer.json()["reason"] == "totp_not_enrolled"


async def test_the_sign_in_page_asks_for_the_code_as_a_second_step(browser: Browser) -> None:
    client = browser.client
    secret, backup_codes, step = await enable_totp(client, EMAIL)
    await client.post("/api/auth/sign-out")
    away = await client.get("/sign-in/second-factor")
    assert away.status_code == 303
    assert away.headers["location"] == "/sign-in"

    first = await client.post(
        "/sign-in?next=%2Fadmin%2Faudit", data={"email": EMAIL, "password": PASSWORD}
    )
    assert first.status_code == 303
    assert first.headers["location"] == "/sign-in/second-factor?next=%2Fadmin%2Faudit"
    assert COOKIE_NAME not in client.cookies
    page = await client.get(first.headers["location"])
    assert page.status_code == 200
    assert 'name="code"' in page.text
    assert 'name="backup_code"' in page.text
    wrong = await client.post(first.headers["location"], data={"code": "12345"})
    assert wrong.status_code == 401
    assert "wrong" in wrong.text
    done = await client.post(first.headers["location"], data={"code": code(secret, step)})
    assert done.status_code == 303
    assert done.headers["location"] == "/admin/audit"
    assert (await client.get("/api/auth/session")).json()["user"]["email"] == EMAIL

    # Five wrong backup codes end it: the page says so and offers the way back.
    await client.post("/api/auth/sign-out")
    await client.post("/sign-in", data={"email": EMAIL, "password": PASSWORD})
    for _ in range(5):
        ended = await client.post("/sign-in/second-factor", data={"backup_code": "zzzzz-zzzzz"})
    assert ended.status_code == 401
    assert "fifth wrong code" in ended.text
    assert 'id="sign-in-again"' in ended.text
    late = await client.post("/sign-in/second-factor", data={"backup_code": backup_codes[0]})
    assert late.status_code == 401
    assert COOKIE_NAME not in client.cookies


class Lines(logging.Handler):
    """The messages of one logger (bastion's loggers do not propagate to pytest's)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


async def test_a_rotated_secret_key_refuses_every_code_and_says_so(settings: Settings) -> None:
    """README's promise: after SECRET_KEY changes, the codes and backup codes are unusable
    (a log line names the account), and deleting the rows lets the password in again."""
    first = Browser(settings)
    try:
        secret, backup_codes, step = await enable_totp(first.client, EMAIL)
    finally:
        await first.close()
    rotated = Browser(settings.model_copy(update={"SECRET_KEY": "another secret " * 5}))
    try:
        client = rotated.client
        await password_step(client, EMAIL)
        lines = Lines()
        logging.getLogger("bastion.auth").addHandler(lines)
        try:
            assert (await second_step(client, code=code(secret, step))).status_code == 401
        finally:
            logging.getLogger("bastion.auth").removeHandler(lines)
        (line,) = lines.lines
        assert line.startswith("the TOTP secret of user 1 does not open")
        assert secret not in line
        assert (await second_step(client, backup_code=backup_codes[0])).status_code == 401
        async with rotated.database.session() as db:
            await db.execute(delete(BackupCode))
            await db.execute(delete(TotpSecret))
            await db.commit()
        assert (await rotated.sign_in(EMAIL, PASSWORD)).json()["user"]["email"] == EMAIL
    finally:
        await rotated.close()
