"""Bare ASGI apps for :mod:`benchmarks.ceilings`: the least any Python registry must do.

:func:`app`, the upload sink: every request body is hashed (sha256) and written to a file, with
writeback started every 8 MiB and each window released from the page cache once written, then
the file is fsynced — as Moorage does, minus everything else (auth, sessions, metadata, routing,
worker threads). ``SINK_DIR`` names the directory for the files.

:func:`answer`: reads the request body and answers a small JSON document, nothing else — the
floor of one ECR call.

    python -m benchmarks.sink_app uvicorn PORT app|answer   # on uvicorn, as Moorage serves
"""

from __future__ import annotations

import hashlib
import os

from moorage.storage.blobs.filesystem import WRITEBACK_BYTES, release_written, start_writeback

_DIRECTORY = os.environ.get("SINK_DIR", "/tmp")
_ANSWER = b'{"registryId":"123456789012","replicationConfiguration":{"rules":[]}}'


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


async def answer(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/x-amz-json-1.1"),
                            (b"content-length", str(len(_ANSWER)).encode())]})
    await send({"type": "http.response.body", "body": _ANSWER})


def upload_sink():  # type: ignore[no-untyped-def]
    """:func:`app` for uvicorn, in a process prepared as a Moorage worker is."""
    from moorage.server import prepare_worker_process

    prepare_worker_process("uvicorn")
    return app


def small_answer():  # type: ignore[no-untyped-def]
    """:func:`answer` for uvicorn, in a process prepared as a Moorage worker is."""
    from moorage.server import prepare_worker_process

    prepare_worker_process("uvicorn")
    return answer


if __name__ == "__main__":
    import sys

    from moorage.uvicorn_edge import serve

    factories = {"app": "upload_sink", "answer": "small_answer"}
    if sys.argv[1:2] != ["uvicorn"] or len(sys.argv) != 4 or sys.argv[3] not in factories:
        raise SystemExit("usage: python -m benchmarks.sink_app uvicorn PORT app|answer")
    serve(f"benchmarks.sink_app:{factories[sys.argv[3]]}", "127.0.0.1", int(sys.argv[2]), 1, 5)
