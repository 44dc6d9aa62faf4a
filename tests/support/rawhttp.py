"""HTTP/1.1 over a plain socket: every byte of the request exactly as the test wrote it.

httpx (rightly) refuses to send a Content-Length that is not the body's, a
body with HEAD, or a header it considers malformed, and it always finishes
what it starts. Hostile clients do none of that, so the hostile-input tests
speak HTTP themselves: one connection per request (``Connection: close``),
the response read back by its Content-Length, chunked framing or the close.
"""

from __future__ import annotations

import contextlib
import socket
from dataclasses import dataclass, field

__all__ = ["RawResponse", "exchange"]

_NO_BODY_STATUSES = frozenset({204, 304})


@dataclass
class RawResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None


def exchange(
    port: int,
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes = b"",
    *,
    hang_up_after: int | None = None,
    timeout: float = 30.0,
) -> RawResponse | None:
    """Send one request to 127.0.0.1:``port`` and read the answer.

    ``headers`` are sent in order, as they are (no Content-Length is added:
    the caller writes the one it wants, true or not). With ``hang_up_after``,
    only that many body bytes are sent and the connection is closed without
    reading: the client went away, and None is returned.
    """
    lines = [f"{method} {target} HTTP/1.1"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        if hang_up_after is not None:
            sock.sendall(head + body[:hang_up_after])
            return None
        # The server may answer (413, 415, 405) and close before it has read
        # the whole body; the answer is still there to read.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head + body)
        return _read_response(sock, head_only=method == "HEAD")


def _read_response(sock: socket.socket, *, head_only: bool) -> RawResponse:
    data = b""
    while True:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"connection closed before the response headers: {data!r}")
            data += chunk
        head, rest = data.split(b"\r\n\r\n", 1)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        response = RawResponse(int(status_line.split(" ", 2)[1]))
        if response.status >= 200:
            break
        data = rest  # an interim answer (100 Continue): the real one follows
    for line in header_lines:
        name, _, value = line.partition(":")
        response.headers.append((name.strip(), value.strip()))
    if head_only or response.status in _NO_BODY_STATUSES:
        return response
    length = response.header("content-length")
    if length is not None:
        while len(rest) < int(length):
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        response.body = rest[: int(length)]
        return response
    while chunk := _recv_or_empty(sock):
        rest += chunk
    if (response.header("transfer-encoding") or "").lower() == "chunked":
        rest = _unchunk(rest)
    response.body = rest
    return response


def _recv_or_empty(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except ConnectionResetError:
        return b""


def _unchunk(data: bytes) -> bytes:
    body = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        body += data[:size]
        data = data[size + 2 :]
    return body
