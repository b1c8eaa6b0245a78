"""A minimal HTTP/1.1 keep-alive client over a plain socket.

The benchmark client shares two cores with the servers it measures, so it must cost as little
CPU per request and per byte as possible: no header objects, no URL parsing, bodies sent with
``sendall`` from a memoryview and received with ``recv_into`` into one reused buffer.
Only what the benchmarks need is supported: Content-Length and chunked responses, HEAD, and
request bodies as bytes (Content-Length) or an iterable of chunks (chunked transfer encoding).
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

_DISCARD = bytearray(4 * 1024 * 1024)


def _send_parts(sock: socket.socket, parts: list[bytes | memoryview]) -> None:
    """Send ``parts`` in order, like ``sendall`` of their concatenation (``sendmsg``)."""
    while parts:
        sent = sock.sendmsg(parts)
        while parts and sent >= len(parts[0]):
            sent -= len(parts.pop(0))
        if sent:
            parts[0] = memoryview(parts[0])[sent:]


@dataclass
class Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names; last one wins
    body: bytes = b""
    size: int = 0  # bytes of body received (also when discarded)


class Connection:
    """One persistent connection to ``host:port``; reconnects when the server closed it."""

    def __init__(self, host: str, port: int, headers: dict[str, str] | None = None,
                 timeout: float = 120.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        base = {"Host": f"{host}:{port}", "User-Agent": "moorage-bench"}
        base.update(headers or {})
        self._base = "".join(f"{k}: {v}\r\n" for k, v in base.items())
        self.sock: socket.socket | None = None
        self._rfile = None

    def _connect(self) -> None:
        self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._rfile = self.sock.makefile("rb", buffering=256 * 1024)

    def close(self) -> None:
        if self.sock is not None:
            try:
                self._rfile.close()
                self.sock.close()
            finally:
                self.sock = None
                self._rfile = None

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc) -> None:  # type: ignore[no-untyped-def]
        self.close()

    def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                body: bytes | bytearray | memoryview | None = None,
                chunks: Iterable[bytes | memoryview] | None = None,
                keep_body: bool = True) -> Response:
        """Send one request and read its whole response (the body kept unless ``keep_body``
        is False, then only counted)."""
        for attempt in (0, 1):
            if self.sock is None:
                self._connect()
            try:
                self._send(method, path, headers, body, chunks)
                break
            except (BrokenPipeError, ConnectionResetError):
                # A kept-alive connection the server closed meanwhile: once more on a new one.
                self.close()
                if attempt or chunks is not None:
                    raise
        response = self._read(method, keep_body)
        if response.headers.get("connection", "").lower() == "close":
            self.close()
        return response

    def _send(self, method, path, headers, body, chunks) -> None:  # type: ignore[no-untyped-def]
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        if chunks is not None:
            framing = "Transfer-Encoding: chunked\r\n"
        elif body is not None:
            framing = f"Content-Length: {len(body)}\r\n"
        elif method in ("POST", "PUT", "PATCH"):
            framing = "Content-Length: 0\r\n"
        else:
            framing = ""
        head = f"{method} {path} HTTP/1.1\r\n{self._base}{extra}{framing}\r\n".encode("latin-1")
        sock = self.sock
        assert sock is not None
        if chunks is not None:
            sock.sendall(head)
            for chunk in chunks:
                if len(chunk):  # size line, data and CRLF in one system call, without a copy
                    _send_parts(sock, [b"%x\r\n" % len(chunk), memoryview(chunk), b"\r\n"])
            sock.sendall(b"0\r\n\r\n")
        elif body is not None and len(body) > 64 * 1024:
            sock.sendall(head)
            sock.sendall(memoryview(body))
        else:
            sock.sendall(head + bytes(body or b""))

    def _read(self, method: str, keep_body: bool) -> Response:
        rfile = self._rfile
        line = rfile.readline(65537)
        if not line:
            self.close()
            raise ConnectionError("the server closed the connection without answering")
        parts = line.split(None, 2)
        status = int(parts[1])
        headers: dict[str, str] = {}
        while True:
            line = rfile.readline(65537)
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        response = Response(status, headers)
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return response
        if "chunked" in headers.get("transfer-encoding", "").lower():
            pieces = []
            while True:
                size = int(rfile.readline(1024).split(b";")[0], 16)
                if size == 0:
                    while rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                data = self._read_exact(size, keep_body)
                if keep_body:
                    pieces.append(data)
                response.size += size
                rfile.readline(16)
            response.body = b"".join(pieces)
            return response
        length = headers.get("content-length")
        if length is not None:
            n = int(length)
            response.size = n
            response.body = self._read_exact(n, keep_body)
            return response
        # No framing: the body runs to the end of the connection.
        if keep_body:
            response.body = rfile.read()
            response.size = len(response.body)
        else:
            view = memoryview(_DISCARD)
            while True:
                got = rfile.readinto(view)
                if not got:
                    break
                response.size += got
        self.close()
        return response

    def _read_exact(self, n: int, keep: bool) -> bytes:
        rfile = self._rfile
        if keep:
            data = rfile.read(n)
            if len(data) != n:
                raise ConnectionError("short body")
            return data
        view = memoryview(_DISCARD)
        left = n
        while left:
            got = rfile.readinto(view[: min(left, len(view))])
            if not got:
                raise ConnectionError("short body")
            left -= got
        return b""
