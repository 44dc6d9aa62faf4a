"""One JSON line per request in production, readable lines in development, with a request id."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.support.servers import AppServer
from tests.support.waiting import wait_for

PRODUCTION = {"APP_ENV": "production", "SECRET_KEY": "s" * 64}


@pytest.fixture(scope="module")
def production() -> Iterator[AppServer]:
    """One production app for the tests that only read its log, each by its own request ids."""
    server = AppServer(PRODUCTION).start()
    yield server
    server.stop()


def json_lines(server: AppServer) -> list[dict[str, object]]:
    lines = []
    for line in server.output().splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def wait_for_line(server: AppServer, request_id: str) -> dict[str, object]:
    line: dict[str, object] = wait_for(
        lambda: next((ln for ln in json_lines(server) if ln.get("request_id") == request_id), None),
        5,
        f"a log line for {request_id}",
    )
    return line


def test_production_logs_one_json_line_per_request(production: AppServer) -> None:
    server = production
    carried = httpx.get(server.url + "/sign-in", headers={"x-request-id": "lb-1234"}, timeout=5)
    assert carried.headers["x-request-id"] == "lb-1234"
    line = wait_for_line(server, "lb-1234")
    assert line["logger"] == "bastion.access"
    assert line["method"] == "GET"
    assert line["route"] == "/sign-in"
    assert line["status"] == 200
    assert line["client_ip"] == "127.0.0.1"
    assert isinstance(line["duration_ms"], float)

    forged = httpx.get(
        server.url + "/sign-in", headers={"x-request-id": "bad id <forged>"}, timeout=5
    )
    generated = forged.headers["x-request-id"]
    assert generated != "bad id <forged>"
    assert len(generated) == 32
    wait_for_line(server, generated)
    assert not any("forged" in json.dumps(entry) for entry in json_lines(server))


def test_request_id_from_an_untrusted_peer_is_replaced() -> None:
    server = AppServer({**PRODUCTION, "TRUSTED_PROXIES": ""}).start()
    try:
        response = httpx.get(
            server.url + "/api/health/live", headers={"x-request-id": "client-chosen"}, timeout=5
        )
        assert response.headers["x-request-id"] != "client-chosen"
        line = wait_for_line(server, response.headers["x-request-id"])
        assert line["route"] == "/api/health/live"
    finally:
        server.stop()


def test_refused_requests_are_logged_with_the_resolved_client(production: AppServer) -> None:
    server = production
    response = httpx.post(
        server.url + "/sign-in",
        headers={"x-forwarded-for": "198.51.100.7"},
        timeout=5,
    )
    assert response.status_code == 403
    line = wait_for_line(server, response.headers["x-request-id"])
    assert line["route"] == "<rejected>"
    assert line["client_ip"] == "198.51.100.7"
    warnings = [e for e in json_lines(server) if e.get("reject") == "csrf"]
    assert warnings
    assert warnings[-1]["reason"] == "NO_ORIGIN"
    assert warnings[-1]["client_ip"] == "198.51.100.7"


def test_development_logs_are_readable_lines() -> None:
    server = AppServer({}).start()
    try:
        response = httpx.get(server.url + "/", timeout=5)
        request_id = response.headers["x-request-id"]
        wait_for(lambda: request_id in server.output(), 5, f"a log line for {request_id}")
        (line,) = [ln for ln in server.output().splitlines() if request_id in ln]
        assert "bastion.access: GET / 200" in line
        assert "path=" not in line  # the template is the path: said once
        assert not line.startswith("{")
        missing = httpx.get(server.url + "/no/such%0Apage", timeout=5)  # %0A: a newline
        request_id = missing.headers["x-request-id"]
        wait_for(lambda: request_id in server.output(), 5, f"a log line for {request_id}")
        (line,) = [ln for ln in server.output().splitlines() if request_id in ln]
        assert "GET <unmatched> 404" in line
        assert line.endswith("path='/no/such\\npage'")  # named, and escaped
    finally:
        server.stop()
