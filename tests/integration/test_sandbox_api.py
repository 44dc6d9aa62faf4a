"""The sandbox JSON API on the real app process, with a real, a hung and a killed Valkey."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
import valkey

from tests.support import raw
from tests.support.servers import AppServer, HungServer, ValkeyServer

TIMEOUT_MS = 50
#: Generous on purpose: a loaded machine adds its own scheduling delay to a round trip.
#: What the bound rules out is a request waiting on the dead or hung Valkey, which would
#: last the client's whole 5 s timeout; how close to TIMEOUT_MS it stays is bench's to say.
MARGIN = 0.5


@pytest.fixture(scope="module")
def _app_on_the_session_valkey(valkey_server: ValkeyServer) -> Iterator[AppServer]:
    if valkey_server.process is None:
        valkey_server.start()
    server = AppServer(
        {"VALKEY_URL": valkey_server.url, "CACHE_COMMAND_TIMEOUT_MS": str(TIMEOUT_MS)}
    ).start()
    yield server
    server.stop()


@pytest.fixture
def app_on_valkey(_app_on_the_session_valkey: AppServer, valkey_url: str) -> Iterator[httpx.Client]:
    """One app for the module's tests on a live Valkey; ``valkey_url`` empties it after each."""
    server = _app_on_the_session_valkey
    with httpx.Client(base_url=server.url, timeout=5, headers={"Origin": server.url}) as client:
        yield client


@pytest.fixture(scope="module")
def app_without_valkey() -> Iterator[httpx.Client]:
    server = AppServer({}).start()
    with httpx.Client(base_url=server.url, timeout=5, headers={"Origin": server.url}) as client:
        yield client
    server.stop()


def test_put_get_delete_round_trip(app_on_valkey: httpx.Client) -> None:
    put = app_on_valkey.put("/api/sandbox/cache/k", json={"value": {"a": [1, 2]}, "ttl": 30})
    assert put.status_code == 200
    assert put.json() == {"key": "k", "value": {"a": [1, 2]}, "ttl": 30, "enabled": True}

    got = app_on_valkey.get("/api/sandbox/cache/k")
    assert got.status_code == 200
    body = got.json()
    assert body["value"] == {"a": [1, 2]}
    assert 0 < body["ttl"] <= 30
    assert body["enabled"] is True
    assert got.headers["cache-control"] == "no-store"

    deleted = app_on_valkey.delete("/api/sandbox/cache/k")
    assert deleted.json() == {"key": "k", "value": None, "ttl": None, "enabled": True}
    assert app_on_valkey.get("/api/sandbox/cache/k").json() == {
        "key": "k",
        "value": None,
        "ttl": None,
        "enabled": True,
    }


def test_sandbox_keys_have_their_own_namespace(
    app_on_valkey: httpx.Client, raw_valkey: valkey.Valkey
) -> None:
    app_on_valkey.put("/api/sandbox/cache/ns", json={"value": 1, "ttl": 30})
    assert raw.keys(raw_valkey) == [b"bastion:sandbox:ns"]
    raw_valkey.set("bastion:ns", b"1")  # an app key of the same name is out of reach
    assert app_on_valkey.delete("/api/sandbox/cache/ns").status_code == 200
    assert raw.get(raw_valkey, "bastion:ns") == b"1"


def test_disabled_cache_answers_with_the_same_shape(app_without_valkey: httpx.Client) -> None:
    put = app_without_valkey.put("/api/sandbox/cache/k", json={"value": 1, "ttl": 30})
    assert put.json() == {"key": "k", "value": None, "ttl": None, "enabled": False}
    assert app_without_valkey.get("/api/sandbox/cache/k").json() == {
        "key": "k",
        "value": None,
        "ttl": None,
        "enabled": False,
    }


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "reason"),
    [
        ("GET", "/api/sandbox/cache/" + "k" * 129, {}, 400, "key must be 1-128 characters"),
        ("GET", "/api/sandbox/cache/bad%20key", {}, 400, "key must be"),
        ("GET", "/api/sandbox/cache/%E2%9C%93", {}, 400, "key must be"),
        (
            "PUT",
            "/api/sandbox/cache/k",
            {"content": b'{"value": 1, "ttl"', "headers": {"content-type": "application/json"}},
            400,
            "body is not valid JSON",
        ),
        (
            "PUT",
            "/api/sandbox/cache/k",
            {"content": b"\xff\xfe", "headers": {"content-type": "application/json"}},
            400,
            "body is not valid UTF-8",
        ),
        (
            "PUT",
            "/api/sandbox/cache/k",
            {
                "content": b'{"value": ' + b"[" * 1000 + b"]" * 1000 + b', "ttl": 5}',
                "headers": {"content-type": "application/json"},
            },
            400,
            "body is nested deeper than 33 levels",
        ),
        (
            "PUT",
            "/api/sandbox/cache/k",
            {
                "content": b'{"value": {"a": ["\\ud800"]}, "ttl": 5}',
                "headers": {"content-type": "application/json"},
            },
            400,
            "value.a[0] is not valid Unicode",
        ),
        (
            "PUT",
            "/api/sandbox/cache/k",
            {"content": b"value=1", "headers": {"content-type": "text/plain"}},
            415,
            "expected Content-Type: application/json",
        ),
        ("PUT", "/api/sandbox/cache/k", {"json": [1, 2]}, 422, "body must be"),
        ("PUT", "/api/sandbox/cache/k", {"json": {"value": 1}}, 422, "body must be"),
        (
            "PUT",
            "/api/sandbox/cache/k",
            {"json": {"value": 1, "ttl": 0}},
            400,
            "ttl must be a whole number",
        ),
        ("PUT", "/api/sandbox/cache/k", {"json": {"value": 1, "ttl": -5}}, 400, "ttl must be"),
        ("PUT", "/api/sandbox/cache/k", {"json": {"value": 1, "ttl": 1.5}}, 400, "ttl must be"),
        ("PUT", "/api/sandbox/cache/k", {"json": {"value": 1, "ttl": True}}, 400, "ttl must be"),
        ("PUT", "/api/sandbox/cache/k", {"json": {"value": 1, "ttl": "60"}}, 400, "ttl must be"),
        ("PUT", "/api/sandbox/cache/k", {"json": {"value": 1, "ttl": 10**12}}, 400, "ttl must be"),
        (
            "PUT",
            "/api/sandbox/cache/k",
            {"json": {"value": None, "ttl": 5}},
            400,
            "value must not be null",
        ),
        (
            "PUT",
            "/api/sandbox/cache/k",
            {"json": {"value": "x" * 20_000, "ttl": 5}},
            413,
            "value larger than",
        ),
        (
            "PUT",
            "/api/sandbox/cache/k",
            {
                "content": b"{" + b" " * 100_000 + b"}",
                "headers": {"content-type": "application/json"},
            },
            413,
            "body larger than",
        ),
        (
            "PUT",
            "/api/sandbox/cache/k",
            {
                "content": b'{"value": NaN, "ttl": 5}',
                "headers": {"content-type": "application/json"},
            },
            400,
            "NaN is not a JSON number",
        ),
        (
            "POST",
            "/api/sandbox/cache/k",
            {"json": {"value": 1, "ttl": 5}},
            405,
            "Method Not Allowed",
        ),
    ],
)
def test_bad_input_gets_a_4xx_with_a_reason(
    app_without_valkey: httpx.Client,
    method: str,
    path: str,
    kwargs: dict[str, object],
    status: int,
    reason: str,
) -> None:
    response = app_without_valkey.request(method, path, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == status
    assert response.json()["error"].startswith(reason)
    assert "Traceback" not in response.text


def test_sandbox_is_absent_in_production() -> None:
    server = AppServer({"APP_ENV": "production", "SECRET_KEY": "s" * 48}).start()
    try:
        assert httpx.get(server.url + "/api/sandbox/cache/k").status_code == 404
        assert httpx.get(server.url + "/sandbox/cache").status_code == 404
        assert httpx.get(server.url + "/").status_code == 200
    finally:
        server.stop()


def _assert_bounded(client: httpx.Client, rounds: int) -> list[float]:
    durations = []
    for index in range(rounds):
        start = time.perf_counter()
        if index % 3 == 0:
            response = client.put("/api/sandbox/cache/k", json={"value": index, "ttl": 30})
        elif index % 3 == 1:
            response = client.get("/api/sandbox/cache/k")
        else:
            response = client.delete("/api/sandbox/cache/k")
        durations.append(time.perf_counter() - start)
        assert response.status_code == 200, response.text
    return durations


def test_hung_valkey_never_makes_a_request_wait_past_the_timeout(hung_server: HungServer) -> None:
    server = AppServer(
        {"VALKEY_URL": hung_server.url, "CACHE_COMMAND_TIMEOUT_MS": str(TIMEOUT_MS)}
    ).start()
    try:
        with httpx.Client(base_url=server.url, timeout=5, headers={"Origin": server.url}) as client:
            durations = _assert_bounded(client, 30)
            body = client.get("/api/sandbox/cache/k").json()
        assert body == {"key": "k", "value": None, "ttl": None, "enabled": True}
        assert max(durations) < TIMEOUT_MS / 1000 + MARGIN, f"max {max(durations):.3f}s"
        assert hung_server.accepted >= 1
    finally:
        server.stop()


def test_killed_valkey_mid_run(valkey_server: ValkeyServer, valkey_url: str) -> None:
    server = AppServer(
        {"VALKEY_URL": valkey_url, "CACHE_COMMAND_TIMEOUT_MS": str(TIMEOUT_MS)}
    ).start()
    try:
        with httpx.Client(base_url=server.url, timeout=5, headers={"Origin": server.url}) as client:
            before = _assert_bounded(client, 9)
            assert (
                client.put("/api/sandbox/cache/k", json={"value": 1, "ttl": 30}).json()["value"]
                == 1
            )
            valkey_server.kill()
            after = _assert_bounded(client, 30)
            assert client.get("/api/sandbox/cache/k").json()["value"] is None
        assert max(before + after) < TIMEOUT_MS / 1000 + MARGIN, f"max {max(before + after):.3f}s"
    finally:
        server.stop()
