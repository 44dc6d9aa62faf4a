"""/sandbox/sign-in: where your IP and an account stand against the sign-in limit, and a trip.

Reading the remaining attempts counts none (``SignInLimiter.peek``). The
"trip the limit" button makes failed attempts for one sandbox-only account
from a stand-in client address until the limit refuses, through the same guard as the real
sign-in, so the page can show the audit rows that this wrote: one
``auth.sign_in.failed`` per attempt the limit let through, and the refusals
tallied into ``auth.sign_in.blocked``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bastion import Bastion
from bastion.audit import recent
from bastion.auth import client_of
from bastion.guard import Client, FailReason
from bastion_example.forms import form_page
from bastion_example.guards import guard_sandbox
from bastion_example.templating import templates

#: The account the trip button guesses at: a reserved domain, so never a real mailbox.
SANDBOX_ACCOUNT = "sandbox-trip@example.invalid"
#: The client the trip button speaks for: an address from TEST-NET-1 (RFC 5737), so
#: tripping the limit never locks out the person (or the test) pressing it.
SANDBOX_CLIENT = "192.0.2.1"
#: A bound on the button's attempts, whatever the configured limit.
MAX_TRIP = 20


def _bastion(request: Request) -> Bastion:
    bastion: Bastion = request.app.state.bastion
    return bastion


async def page(request: Request) -> Response:
    await guard_sandbox(request)
    bastion = _bastion(request)
    client = client_of(request)
    account = request.query_params.get("account", SANDBOX_ACCOUNT).strip().casefold()[:254]
    standing = await bastion.limiter.peek(client.ip or "unknown", account)
    sandbox = await bastion.limiter.peek(SANDBOX_CLIENT, SANDBOX_ACCOUNT)
    async with bastion.database.session() as db:
        rows = [
            row
            for action in ("auth.sign_in.failed", "auth.sign_in.blocked")
            for row in await recent(db, limit=10, action=action)
            if row.subject == SANDBOX_ACCOUNT
        ]
    rows.sort(key=lambda row: row.id, reverse=True)
    context = {
        "client": client.ip,
        "account": account,
        "ip": standing["ip"],
        "per_account": standing["account"],
        "sandbox_client": SANDBOX_CLIENT,
        "sandbox_ip": sandbox["ip"],
        "shared": bastion.limiter.shared,
        "rows": rows,
        "tripped": request.query_params.get("tripped"),
    }
    return templates.TemplateResponse(request, "sandbox_signin.html", context)


async def trip(request: Request) -> Response:
    """Failed attempts until refused; post/redirect/get, so a reload does not trip again.

    Each attempt goes through the guard exactly as a wrong password does (count,
    then audit the failure), without the password hashing, which would only make
    the button slow: the limit and the audit trail are what the page shows.
    """
    await guard_sandbox(request)
    guard = _bastion(request).guard
    client = Client(ip=SANDBOX_CLIENT, user_agent=client_of(request).user_agent)
    attempts = 0
    for attempts in range(1, MAX_TRIP + 1):  # noqa: B007 - the count is the result
        decision = await guard.attempt(client, SANDBOX_ACCOUNT)
        if not decision.allowed:
            break
        await guard.failed(client, SANDBOX_ACCOUNT, FailReason.BAD_PASSWORD, decision)
    await guard.blocked.flush()  # so the page shows the refusal's row at once
    return RedirectResponse(f"/sandbox/sign-in?tripped={attempts}", status_code=303)


async def show_trip(request: Request) -> Response:
    await guard_sandbox(request)
    return RedirectResponse("/sandbox/sign-in", status_code=303)


routes = [
    Route("/sandbox/sign-in", page, methods=["GET"], name="sandbox_signin"),
    form_page("/sandbox/sign-in/trip", show_trip, trip, name="sandbox_signin_trip"),
]
