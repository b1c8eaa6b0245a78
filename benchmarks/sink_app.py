"""A bare ASGI upload sink: the least any Python registry on granian must do per pushed byte.

Every request body is hashed (sha256) and written to a file, with writeback started every 8 MiB
and each window released from the page cache once written, then the file is fsynced — as Moorage does, minus everything else (auth, sessions, metadata,
routing, worker threads). ``SINK_DIR`` names the
directory for the files. Used by :mod:`benchmarks.ceilings` to measure the push ceiling.
"""

from __future__ import annotations

import hashlib
import os

from moorage.storage.blobs.filesystem import WRITEBACK_BYTES, release_written, start_writeback

_DIRECTORY = os.environ.get("SINK_DIR", "/tmp")


async def app(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] != "http":
        return
    path = os.path.join(_DIRECTORY, f"sink-{os.getpid()}")
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    hasher = hashlib.sha256()
    written = started = released = 0
    try:
        while True:
            message = await receive()
            body = message.get("body", b"")
            if body:
                hasher.update(body)
                os.write(fd, body)
                written += len(body)
                if written - started >= WRITEBACK_BYTES:  # as Moorage: disk works meanwhile,
                    release_written(fd, released, started - released)  # the cache is reused
                    released = started
                    start_writeback(fd, started, written - started)
                    started = written
            if not message.get("more_body"):
                break
        os.fsync(fd)
    finally:
        os.close(fd)
        os.unlink(path)
    digest = ("sha256:" + hasher.hexdigest()).encode()
    await send({"type": "http.response.start", "status": 201,
                "headers": [(b"content-length", str(len(digest)).encode())]})
    await send({"type": "http.response.body", "body": digest})
