"""Drive an ASGI app with a hand-built scope: every header byte exactly as given.

httpx refuses some header values on the client side; the envelope must cope
with whatever a server hands it, so these tests build the scope themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message


@dataclass
class Result:
    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    closed: Message | None = None

    def header(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        key = name.lower().encode()
        return [v.decode("latin-1") for k, v in self.headers if k.lower() == key]


async def call(
    app: ASGIApp,
    method: str = "GET",
    path: str = "/",
    headers: list[tuple[str, str]] | None = None,
    client: tuple[str, int] | None = ("127.0.0.1", 50000),
    scheme: str = "http",
    kind: str = "http",
) -> Result:
    scope = {
        "type": kind,
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": scheme,
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers or []],
        "client": client,
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    result = Result()
    sent_request = False

    async def receive() -> Message:
        nonlocal sent_request
        if kind == "websocket":
            if not sent_request:
                sent_request = True
                return {"type": "websocket.connect"}
            return {"type": "websocket.disconnect", "code": 1000}
        if not sent_request:
            sent_request = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            result.status = message["status"]
            result.headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            result.body += message.get("body", b"")
        elif message["type"] == "websocket.close":
            result.closed = message
        elif message["type"] == "websocket.accept":
            result.status = 101

    await app(scope, receive, send)
    return result
