"""An app that follows the README's adoption section logs its requests under plain uvicorn.

``uvicorn module:app`` in a child process, with no factory, no CLI and no
call to ``configure_logging``: one access line per request, and JSON lines
when ``APP_ENV=production``. (``Bastion(configure_logging=False)`` is
tested in-process, in ``tests/unit/test_bastion_logging.py``.)
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import httpx

from tests.support.servers import AppServer
from tests.support.waiting import wait_for

APP = "tests.support.adopted_app:app"


def _serve(env: Mapping[str, str]) -> AppServer:
    return AppServer(env, app=APP, ready_path="/api/health/live").start(migrate=False)


def _line_for(server: AppServer, request_id: str) -> str:
    line: str = wait_for(
        lambda: next((ln for ln in server.output().splitlines() if request_id in ln), None),
        5,
        f"an access line for {request_id}",
    )
    return line


def test_development_writes_a_readable_access_line() -> None:
    server = _serve({})
    try:
        response = httpx.get(server.url + "/hello", headers={"x-request-id": "x"}, timeout=5)
        request_id = response.headers["x-request-id"]
        line = _line_for(server, request_id)
    finally:
        server.stop()
    assert response.status_code == 200
    assert "INFO" in line
    assert "bastion.access: GET /hello 200" in line
    assert f"client=127.0.0.1 id={request_id}" in line


def test_production_writes_one_json_line_per_request() -> None:
    server = _serve({"APP_ENV": "production", "SECRET_KEY": "s" * 64})
    try:
        ids = [
            httpx.get(server.url + "/hello", timeout=5).headers["x-request-id"] for _ in range(3)
        ]
        for request_id in ids:
            _line_for(server, request_id)
        output = server.output()
    finally:
        server.stop()
    lines = [json.loads(ln) for ln in output.splitlines() if ln.startswith("{")]
    hello = [ln for ln in lines if ln.get("route") == "/hello"]
    assert [ln["request_id"] for ln in hello] == ids, "one line per request, in order"
    assert {(ln["logger"], ln["level"], ln["method"], ln["status"]) for ln in hello} == {
        ("bastion.access", "info", "GET", 200)
    }
