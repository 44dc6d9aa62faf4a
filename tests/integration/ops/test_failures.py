"""What escapes an app inside protect(), on a real uvicorn: a client that hangs up, and bugs.

A client that goes away mid-upload is one access line with status 499 and the
request id, counted as 499, and nothing else: no ERROR, no traceback. A bug
is a clean 500 for the client (security headers, request id, no detail), one
ERROR line with the request id and no secret for the log, and a 500 in the
metrics. Both are checked on a small app with deliberate bugs
(tests/support/failing_app.py) and the disconnect also on the example app.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.ops.test_metrics import parse, value
from tests.support.failing_app import FACTORY, SECRET
from tests.support.servers import AppServer
from tests.support.waiting import wait_for

TRACEBACK = re.compile(r"Traceback|Exception in ASGI application")


@pytest.fixture(scope="module")
def failing() -> Iterator[AppServer]:
    server = AppServer({}, factory=FACTORY, ready_path="/ok").start(migrate=False)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def example() -> Iterator[AppServer]:
    server = AppServer({"METRICS_ENABLED": "true"}).start()
    yield server
    server.stop()


def lines_with(server: AppServer, text: str, timeout: float = 5.0) -> list[str]:
    """The log lines that mention ``text``, once at least one has been written."""
    found: list[str] = wait_for(
        lambda: [line for line in server.output().splitlines() if text in line],
        timeout,
        f"a log line with {text!r}",
        every=0.02,
    )
    return found


def hang_up_mid_upload(
    server: AppServer, method: str, path: str, content_type: str, partial: bytes
) -> None:
    """Send the headers and ``partial`` of a declared 5000-byte body, then close the connection."""
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Origin: {server.url}\r\nContent-Type: {content_type}\r\n"
        "Content-Length: 5000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(head.encode() + partial)
        time.sleep(0.2)  # the app is now waiting for the rest of the body


def requests_total(server: AppServer, route: str, method: str, status: str) -> float:
    response = httpx.get(server.url + "/api/metrics", timeout=5)
    assert response.status_code == 200
    return value(
        parse(response.text),
        "bastion_http_requests_total",
        route=route,
        method=method,
        status=status,
    )


@pytest.mark.parametrize(
    ("method", "path", "route", "content_type", "partial"),
    [
        ("POST", "/api/auth/sign-in", "/api/auth/sign-in", "application/json", b'{"email": "a'),
        ("POST", "/sign-up", "/sign-up", "application/x-www-form-urlencoded", b"email=a%40"),
        ("PUT", "/api/sandbox/cache/k", "/api/sandbox/cache/{key}", "application/json", b"[1"),
    ],
)
def test_a_client_that_hangs_up_mid_upload_is_one_info_line_and_a_499(
    example: AppServer, method: str, path: str, route: str, content_type: str, partial: bytes
) -> None:
    before = requests_total(example, route, method, "499")
    start = len(example.output())
    hang_up_mid_upload(example, method, path, content_type, partial)
    wait_for(
        lambda: requests_total(example, route, method, "499") != before,
        5,
        f"a 499 counted for {method} {route}:\n{example.output()[start:]}",
    )
    assert requests_total(example, route, method, "499") == before + 1
    written = example.output()[start:]
    assert not TRACEBACK.search(written), written
    assert " ERROR " not in written, written
    [line] = [ln for ln in written.splitlines() if f"{method} {route} 499" in ln]
    assert " INFO " in line
    assert re.search(r"id=[0-9a-f]{32}( path='[^']*')?$", line), line


def test_an_exception_is_a_clean_500_and_one_error_line_without_the_secret(
    failing: AppServer,
) -> None:
    before = requests_total(failing, "/boom", "GET", "500")
    response = httpx.get(failing.url + "/boom", timeout=5)
    assert response.status_code == 500
    assert response.text == "Internal Server Error"  # Starlette's own, no detail
    assert response.headers["x-content-type-options"] == "nosniff"
    request_id = response.headers["x-request-id"]
    errors = [line for line in lines_with(failing, request_id) if " ERROR " in line]
    assert len(errors) == 1, failing.output()
    assert "RuntimeError" in errors[0]
    assert "failing_app.py" in errors[0]  # where it was raised
    assert "GET /boom" in errors[0]
    output = failing.output()
    assert SECRET not in output
    assert "hunter2" not in output
    assert not TRACEBACK.search(output), output
    assert requests_total(failing, "/boom", "GET", "500") == before + 1


def test_a_json_client_gets_a_json_500_from_an_app_without_a_framework(
    failing: AppServer,
) -> None:
    """Nothing caught it on the way out: the failure rule answers, like every refusal, with headers."""
    plain = httpx.get(failing.url + "/raw-boom", timeout=5)
    assert plain.status_code == 500
    assert plain.text == (
        "Internal Server Error: the server failed to answer this request [INTERNAL_ERROR]\n"
        "try again later; the failure is logged under this response's X-Request-Id\n"
    )
    assert plain.headers["x-frame-options"] == "DENY"
    assert plain.headers["cache-control"] == "no-store"
    as_json = httpx.get(failing.url + "/raw-boom", headers={"accept": "application/json"})
    assert as_json.status_code == 500
    assert as_json.json() == {
        "error": "Internal Server Error",
        "reason": "INTERNAL_ERROR",
        "hint": "try again later; the failure is logged under this response's X-Request-Id",
    }
    assert as_json.headers["vary"] == "Accept, Content-Type"
    for response in (plain, as_json):
        lines = lines_with(failing, response.headers["x-request-id"])
        assert len([line for line in lines if " ERROR " in line]) == 1, lines
    assert not TRACEBACK.search(failing.output())


def test_a_failure_after_the_response_is_logged_once_and_the_answer_stands(
    failing: AppServer,
) -> None:
    response = httpx.get(failing.url + "/boom-after", timeout=5)
    assert response.status_code == 200
    assert response.text == "sent"
    [error] = [ln for ln in lines_with(failing, response.headers["x-request-id"]) if "ERROR" in ln]
    assert "RuntimeError" in error
    assert not TRACEBACK.search(failing.output())
    assert SECRET not in failing.output()


def test_a_hang_up_on_a_plain_app_is_a_499_too(failing: AppServer) -> None:
    before = requests_total(failing, "/upload", "POST", "499")
    hang_up_mid_upload(failing, "POST", "/upload", "application/octet-stream", b"12345")
    wait_for(
        lambda: requests_total(failing, "/upload", "POST", "499") != before,
        5,
        "a 499 counted for POST /upload",
    )
    assert not TRACEBACK.search(failing.output())
    # A complete upload on the same route is unaffected.
    done = httpx.post(failing.url + "/upload", content=b"x" * 5000, headers={"origin": failing.url})
    assert done.json() == {"bytes": 5000}
