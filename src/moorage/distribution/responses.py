"""The response of a ``/v2/`` request, sent straight to the ASGI server.

A :class:`Reply` is a status, a list of raw header pairs and a body: what the ASGI
``http.response.start`` and ``http.response.body`` messages carry, built once, with nothing to
convert on the way out. A :class:`BlobDownload` is a reply whose body is a blob's file.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import Future
from typing import Any

from moorage.threads import start_in_thread

# A blob download sends the file itself, in pieces of PIECE_BYTES with one piece read ahead;
# under a server with http.response.pathsend (granian), downloads starting while one does so
# leave the file to the server.
PIECE_BYTES = 2 * 1024 * 1024
# Beyond MANY_DOWNLOADS downloads at once in a process, further ones send SMALL_PIECE_BYTES
# pieces: a download holds two pieces, and slow or stalled readers would otherwise hold 4 MiB
# each.
MANY_DOWNLOADS = 8
SMALL_PIECE_BYTES = 256 * 1024

API_VERSION = (b"docker-distribution-api-version", b"registry/2.0")


def blob_headers(digest: str) -> list[tuple[str, str]]:
    """The headers of every answer carrying blob ``digest`` (``GET``, ``HEAD``, ranges)."""
    return [("docker-content-digest", digest), ("etag", f'"{digest}"'), ("accept-ranges", "bytes")]


class Reply:
    """A complete ``/v2/`` response: ``Content-Length`` and the API version header included.

    Args:
        status: the HTTP status.
        headers: ``(name, value)`` pairs, names in lower case.
        body: the body; a ``HEAD`` request is answered without it.
        media_type: the ``Content-Type``, if any.
        content_length: the ``Content-Length`` when it is not ``len(body)`` (a ``HEAD``
            answer announces the size of the body a ``GET`` would send).
    """

    __slots__ = ("status_code", "raw_headers", "body")

    def __init__(
        self, status: int, headers: list[tuple[str, str]] | None = None, body: bytes = b"", *,
        media_type: str | None = None, content_length: int | None = None,
    ) -> None:
        self.status_code = status
        self.body = body
        raw = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers or ()]
        if status >= 200 and status not in (204, 304):
            length = len(body) if content_length is None else content_length
            raw.append((b"content-length", str(length).encode("latin-1")))
        if media_type is not None:
            raw.append((b"content-type", media_type.encode("latin-1")))
        raw.append(API_VERSION)
        self.raw_headers = raw

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Send the reply (ASGI); the body is left out for ``HEAD``."""
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.raw_headers})
        body = b"" if scope.get("method") == "HEAD" else self.body
        await send({"type": "http.response.body", "body": body})


class BlobDownload(Reply):
    """A whole blob (``GET``; a ``HEAD`` is answered by a plain :class:`Reply`): the reply's
    headers, then the blob's file.

    The file goes in pieces of :data:`PIECE_BYTES`, each read by a worker thread while the
    previous one is sent; a download holds at most two pieces. A download starting while
    :data:`MANY_DOWNLOADS` others run in the process uses pieces of :data:`SMALL_PIECE_BYTES`.
    On the benchmark machine under uvicorn (the allocator tuned by
    :func:`moorage.server.tune_allocator`): 2.3–3.0 GB/s at about 0.4 CPU-s/GB for one reader
    and for eight (docs/performance.md, "Pull").

    Under granian, which offers ``http.response.pathsend`` but moves a file in small pieces with
    a thread hand-off each (1.4–1.5 GB/s and 0.6 CPU-s/GB for one reader), one download at a
    time per process sends pieces and downloads starting meanwhile leave the file to granian,
    which spreads them over its own threads. granian opens the file again by its path, so a
    blob collected in the instant between :meth:`open` and then fails its body instead of
    answering 404.

    Args:
        path: the blob's file (for ``pathsend``).
        descriptor: the same file, open for reading; the download closes it.
        size: the blob's size in bytes (``Content-Length``).
        headers: ``(name, value)`` pairs, names in lower case.
    """

    __slots__ = ("path", "descriptor", "size", "piece_bytes")
    sending_pieces = False  # a download of this process sends pieces now (event loop only)
    running = 0  # downloads of this process under way (event loop only)

    def __init__(self, path: str, descriptor: int, size: int,
                 headers: list[tuple[str, str]]) -> None:
        super().__init__(200, headers, media_type="application/octet-stream", content_length=size)
        self.path = path
        self.descriptor = descriptor
        self.size = size

    @classmethod
    def open(cls, path: str, size: int, digest: str) -> BlobDownload | None:
        """The download of blob ``digest`` stored at ``path`` (``Docker-Content-Digest`` and
        ``ETag`` headers), or None when its file is gone (collected since it was looked up)."""
        try:
            descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        return cls(path, descriptor, size, blob_headers(digest))

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Send the blob (ASGI). A client that goes away ends the download at the next piece.

        Raises:
            OSError: the file is shorter than ``size`` (the server drops the connection).
        """
        pieces = not BlobDownload.sending_pieces
        BlobDownload.sending_pieces = True
        self.piece_bytes = (PIECE_BYTES if BlobDownload.running < MANY_DOWNLOADS
                            else SMALL_PIECE_BYTES)
        BlobDownload.running += 1
        gone: asyncio.Future[None] | None = None
        reading: Future[bytes] | None = None
        try:
            gone = asyncio.ensure_future(_disconnected(receive))
            await send({"type": "http.response.start", "status": self.status_code,
                        "headers": self.raw_headers})
            if self.size == 0:
                await send({"type": "http.response.body", "body": b""})
                return
            if not pieces and "http.response.pathsend" in scope.get("extensions", {}):
                await send({"type": "http.response.pathsend", "path": self.path})
                return
            sent = 0
            reading = self._read(0)
            while not gone.done():
                piece = await asyncio.wrap_future(reading)
                if not piece:  # the file is shorter than its recorded size: abort the response
                    raise OSError(f"blob file ended at {sent} of {self.size} bytes")
                sent += len(piece)
                reading = self._read(sent) if sent < self.size else None
                await send({"type": "http.response.body", "body": piece,
                            "more_body": sent < self.size})
                if reading is None:
                    return
            gone.result()  # the client went away; an error receiving is raised
        finally:
            BlobDownload.running -= 1
            if pieces:
                BlobDownload.sending_pieces = False
            if gone is not None:
                gone.cancel()
            descriptor = self.descriptor
            if reading is not None and not reading.cancel():
                # A read is under way (the client went away, or sending failed): the file is
                # closed once it ends, without making the event loop wait for it.
                reading.add_done_callback(lambda _: os.close(descriptor))
            else:
                os.close(descriptor)

    def _read(self, offset: int) -> Future[bytes]:
        return start_in_thread(os.pread, self.descriptor, min(self.piece_bytes, self.size - offset),
                               offset)


async def _disconnected(receive: Any) -> None:
    """Return once the client has gone (the request's own body messages are skipped)."""
    while (await receive())["type"] != "http.disconnect":
        pass
