"""Safe methods change nothing: GET, HEAD, OPTIONS and TRACE, with the bodies that would.

Every route that takes an unsafe method (from the router) gets, with each safe
method, the bodies that change something when sent with that unsafe method:
credentials for the sign-up and sign-in forms and endpoints, a session for
the sign-outs, a cache entry for the sandbox, a bump for the counter, a wrong
current password for the password change (a failed sign-in, audited), an
email for the reset request, a live reset link for the reset confirmations. A safe
request must change nothing, and a HEAD must answer as its GET does, with no
body and no cookie. Then the same bodies with the unsafe methods prove they
were the ones that would have changed something.
"""

from __future__ import annotations

import itertools
import json

from tests.hostile.corpus import ADMIN_EMAIL, ADMIN_PASSWORD, Case, credentials, entry, form
from tests.hostile.routes import Endpoint
from tests.hostile.target import Attack, Target

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SAFE = ("HEAD", "GET", "OPTIONS", "TRACE")
PASSWORD = "a long enough password"
ENTRY = Case("cache entry, JSON", entry(value="2", ttl="600"))
_fresh = itertools.count()
#: POSTs that must change nothing: a password to judge travels in a body, never in a URL
#: (which logs keep), so the policy's verdict is a POST, and these check it stays read-only.
READ_ONLY = frozenset({"/sandbox/accounts", "/api/sandbox/accounts/password-verdict"})
FORM_TYPE = "application/x-www-form-urlencoded"
#: Where only a passkey changes anything: a new credential registers, a registered one's
#: signature signs in, its id removes it. The target's administrator has none and must not
#: (one would turn its password sign-in into a pending one), so these get the safe-method
#: checks alone; what their unsafe methods change is proven, with a software and a virtual
#: authenticator, by tests/integration/auth/test_passkeys.py and tests/e2e/test_passkeys.py.
NEEDS_A_PASSKEY = frozenset(
    {
        "/api/auth/passkeys/register",
        "/api/auth/passkeys/sign-in",
        "/api/auth/passkeys/{id}",
        "/account/passkeys/{id}/remove",
    }
)
#: Where a TOTP code is the key: a right one comes from a secret shown once at enrolment, or
#: (for the second sign-in step) needs a pending sign-in, and a wrong one changes nothing
#: but the pending sign-in it is sent with. No fixed body changes anything there, so only
#: the safe-method half runs; tests/integration/auth/test_totp*.py prove what they change.
NEED_A_CODE = frozenset(
    {
        "/api/auth/totp/confirm",
        "/api/auth/sign-in/second-factor",
        "/account/totp/confirm",
        "/sign-in/second-factor",
    }
)
#: Where a reset link is spent: only a live token changes anything there.
RESET_CONFIRMS = frozenset({"/api/auth/password-reset/confirm", "/reset-password"})
_WRONG_CHANGE = [
    ("current_password", "not the administrator's password at all"),
    ("new_password", "violet lantern over quiet harbour 7"),
]


def would_change() -> list[Case]:
    """Bodies that change something when sent with an unsafe method to the route that reads them.

    The test adds a live administrator session to each (the sign-outs need
    nothing else).
    """
    email = f"safe-{next(_fresh)}@example.com"
    form_type = FORM_TYPE
    return [
        Case("new account, JSON", credentials(email=f'"{email}"')),
        Case("new account, form", form([("email", email), ("password", PASSWORD)]), form_type),
        Case("admin credentials", credentials(f'"{ADMIN_EMAIL}"', f'"{ADMIN_PASSWORD}"')),
        Case(
            "cache entry, form",
            form([("action", "set"), ("key", "k"), ("ttl", "600"), ("value", "1")]),
            form_type,
        ),
        ENTRY,
        Case("nothing but the session", b"", None),
        Case("wrong current password, JSON", json.dumps(dict(_WRONG_CHANGE)).encode()),
        Case("wrong current password, form", form(_WRONG_CHANGE), FORM_TYPE),
        # The TOTP changes check the password first: a wrong one is a failed sign-in.
        Case("wrong password, JSON", json.dumps({"password": _WRONG_CHANGE[0][1]}).encode()),
    ]


def reset_link(target: Target, endpoint: Endpoint) -> list[Case]:
    """For a reset confirmation: a live token of the administrator, as JSON and as a form.

    Spending it sets the administrator's password to the one it had and
    ends its sessions (the target signs in again when it next needs one).
    """
    if endpoint.template not in RESET_CONFIRMS:
        return []
    fields = [("token", target.reset_token(ADMIN_EMAIL)), ("password", ADMIN_PASSWORD)]
    return [
        Case("reset link, JSON", json.dumps(dict(fields)).encode()),
        Case("reset link, form", form(fields), FORM_TYPE),
    ]


def live_path(target: Target, endpoint: Endpoint) -> str:
    """The path to try ``endpoint`` on, with something there for it to change.

    The session routes act on the administrator's own sessions: the ones that
    end one by id get the live session's id (the sample value names none),
    and before "end all others" there must be another one to end.
    """
    if endpoint.has_params and "/sessions/{id}" in endpoint.template:
        return endpoint.with_param(target.admin_session_id())
    if endpoint.template.endswith(("/revoke-others", "/end-others")):
        target.admin_elsewhere()
    return endpoint.path


def signed_in(target: Target, case: Case) -> Case:
    cookie = ("Cookie", target.admin_cookie())
    return Case(case.name, case.body, case.content_type, (*case.headers, cookie))


def test_safe_methods_with_a_body_change_nothing_where_the_unsafe_ones_would(
    target: Target, endpoints: list[Endpoint]
) -> None:
    unsafe_routes = [e for e in endpoints if e.methods and e.methods & UNSAFE]
    assert any(e.takes_post for e in unsafe_routes)
    failures: list[str] = []
    for endpoint in unsafe_routes:
        if endpoint.allows("PUT"):  # something a HEAD that fell through to DELETE would remove
            target.attack("PUT", endpoint.path, ENTRY)
        path = live_path(target, endpoint)
        get = target.send("GET", path, [("Cookie", target.admin_cookie())])
        assert get.response is not None
        link = reset_link(target, endpoint)
        attacks = [
            Attack(method, path, signed_in(target, case))
            for case in [*would_change(), *link]
            for method in SAFE
        ]
        for attack, verdict in zip(attacks, target.attack_all(attacks), strict=True):
            problems = verdict.problems()
            response = verdict.outcome.response
            assert response is not None
            if attack.method == "HEAD" and response.status != get.response.status:
                problems.append(f"HEAD answered {response.status}, GET {get.response.status}")
            if attack.method == "HEAD" and response.header("set-cookie") is not None:
                problems.append("HEAD set a cookie")
            if problems:
                failures.append(
                    f"{attack.method} {endpoint.path} [{attack.case.name}]: {'; '.join(problems)}"
                )
        tried: list[str] = []
        for method, case in itertools.product(
            sorted((endpoint.methods or frozenset()) & UNSAFE), [*would_change(), *link]
        ):
            verdict = target.attack(method, path, signed_in(target, case))
            if verdict.problems():
                failures.append(str(verdict))
            if verdict.changes and endpoint.template in READ_ONLY:
                failures.append(f"{verdict}: changed {', '.join(verdict.changes)}")
            if verdict.changes:
                break  # one is proof enough
            tried.append(f"{method} [{case.name}] -> {verdict.outcome.status}")
        else:
            if endpoint.template in READ_ONLY | NEEDS_A_PASSKEY | NEED_A_CODE:
                continue
            failures.append(
                f"{endpoint.template}: no body here changes anything ({', '.join(tried)}), so "
                "the safe-method checks prove nothing for it; add one to would_change()"
            )
    assert not failures, "\n".join(failures)
