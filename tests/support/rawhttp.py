"""HTTP/1.1 over a plain socket: every byte of the request exactly as the test wrote it.

httpx (rightly) refuses to send a Content-Length that is not the body's, a
body with HEAD, or a header it considers malformed, and it always finishes
what it starts. Hostile clients do none of that, so the hostile-input tests
speak HTTP themselves: :func:`exchange` opens one connection per request
(the caller sends ``Connection: close``), :class:`KeepAlive` sends request
after request on one, for those whose framing leaves the stream intact. The
response is read back by its Content-Length, chunked framing or the close.
"""

from __future__ import annotations

import contextlib
import select
import socket
from dataclasses import dataclass, field

__all__ = ["KeepAlive", "RawResponse", "exchange"]

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
    head = _head(method, target, headers)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        if hang_up_after is not None:
            sock.sendall(head + body[:hang_up_after])
            return None
        # The server may answer (413, 415, 405) and close before it has read
        # the whole body; the answer is still there to read.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head + body)
        return _read_response(sock, head_only=method == "HEAD")


def _head(method: str, target: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"{method} {target} HTTP/1.1"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class KeepAlive:
    """One connection to 127.0.0.1:``port``, reused for request after request.

    Only for requests whose body is framed exactly (a true Content-Length, or
    well-formed chunks) and that the client sends in full: then the server
    knows where the next request starts, whatever it made of this one. The
    connection is dropped when the server says ``Connection: close`` (uvicorn
    does whenever it will close, a refusal of its own parser included) or
    answers without a length; a connection the server closed while idle is
    noticed before the next request is written, never after.
    """

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self.port = port
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self.opened = 0

    def request(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes = b""
    ) -> RawResponse:
        """Send ``headers`` as they are (no Connection or Content-Length added) and read the answer."""
        sock = self._socket()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(_head(method, target, headers) + body)
        try:
            response = _read_response(sock, head_only=method == "HEAD", keep_alive=True)
        except BaseException:
            self.close()
            raise
        framed = response.header("content-length") is not None or (
            (response.header("transfer-encoding") or "").lower() == "chunked"
        )
        bodiless = method == "HEAD" or response.status in _NO_BODY_STATUSES
        closing = "close" in (response.header("connection") or "").lower()
        if closing or not (framed or bodiless):
            self.close()
        return response

    def _socket(self) -> socket.socket:
        if self._sock is not None and _closed_by_peer(self._sock):
            self.close()
        if self._sock is None:
            self._sock = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
            self.opened += 1
        return self._sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _closed_by_peer(sock: socket.socket) -> bool:
    """True if the server has closed this idle connection (EOF or reset waiting to be read)."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""  # readable: this does not wait
    except OSError:
        return True


def _read_response(
    sock: socket.socket, *, head_only: bool, keep_alive: bool = False
) -> RawResponse:
    """Read one response; with ``keep_alive``, exactly that one, never up to the close."""
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
    if not (head_only or response.status in _NO_BODY_STATUSES):
        response.body = _read_body(sock, response, rest, keep_alive=keep_alive)
    return response


def _read_body(
    sock: socket.socket, response: RawResponse, rest: bytes, *, keep_alive: bool
) -> bytes:
    """The body after the head (``rest`` is what came with it): by length, chunks, or the close."""
    length = response.header("content-length")
    if length is not None:
        while len(rest) < int(length):
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        return rest[: int(length)]
    chunked = (response.header("transfer-encoding") or "").lower() == "chunked"
    if keep_alive and chunked:
        while not _chunks_complete(rest):
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
    else:
        while chunk := _recv_or_empty(sock):
            rest += chunk
    return _unchunk(rest) if chunked else rest


def _chunks_complete(data: bytes) -> bool:
    """Whether ``data`` holds a whole chunked body, up to the last chunk and the blank line."""
    at = 0
    while True:
        end = data.find(b"\r\n", at)
        if end < 0:
            return False
        size = int(data[at:end].split(b";")[0], 16)
        if size == 0:
            return data.find(b"\r\n\r\n", end) >= 0  # no trailers, or trailers and a blank line
        at = end + 2 + size + 2
        if at > len(data):
            return False


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
