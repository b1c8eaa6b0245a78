"""Where the ``/v2/`` API's small writes run: the POST starting an upload and a manifest PUT of
up to ``INLINE_MANIFEST_BYTES`` run on the event loop on a SQLite file while the writers' turn is
free, and in a worker thread when it is held, when the manifest is larger, and always on
PostgreSQL. The ASGI app is driven in this process so the thread of each call can be seen;
``tests/test_operations.py`` checks the same writes against a real server with the turn held
by another process."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time

from moorage.app import create_app
from moorage.config import Settings
from moorage.distribution.routes import INLINE_MANIFEST_BYTES
from moorage.registry.repositories import RepositorySettings
from moorage.services import build_services
from tests.conftest import ACCESS_KEY_ID, ACCOUNT_ID, SECRET_ACCESS_KEY
from tests.images import OCI_MANIFEST, digest_of, make_image


async def _call(app, method: str, path: str, authorization: bytes, body: bytes = b"",  # type: ignore[no-untyped-def]
                content_type: bytes = b"application/octet-stream") -> int:
    """One request through the ASGI app; returns the response status."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 5000),
        "headers": [(b"host", b"127.0.0.1:5000"), (b"authorization", authorization),
                    (b"content-type", content_type),
                    (b"content-length", str(len(body)).encode())],
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    status: list[int] = []

    async def receive():  # type: ignore[no-untyped-def]
        if messages:
            return messages.pop()
        await asyncio.Event().wait()

    async def send(message):  # type: ignore[no-untyped-def]
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(scope, receive, send)
    return status[0]


def test_small_writes_run_on_the_event_loop_only_when_they_may(tmp_path, fresh_database_url):
    services = build_services(Settings(data_dir=tmp_path / "data", database_url=fresh_database_url,
                                       account_id=ACCOUNT_ID))
    try:
        services.keys.ensure_admin(tmp_path / "data", ACCESS_KEY_ID, SECRET_ACCESS_KEY)
        token, _ = services.tokens.issue(ACCESS_KEY_ID, "admin", ACCOUNT_ID, "us-east-1", time.time())
        authorization = b"Basic " + base64.b64encode(b"AWS:" + token.encode())
        services.repositories.create("inline/app", RepositorySettings())
        image = make_image()
        for content in image.blobs.values():
            upload_id = services.uploads.start("inline/app")
            services.uploads.complete("inline/app", upload_id, digest_of(content), content)
        large = json.loads(image.manifest)
        large["annotations"] = {"org.example.padding": "x" * INLINE_MANIFEST_BYTES}
        large_manifest = json.dumps(large).encode()
        assert len(image.manifest) <= INLINE_MANIFEST_BYTES < len(large_manifest)

        threads: list[tuple[str, bool]] = []  # (call, ran on the event loop's thread)
        for name, service in (("start", services.uploads), ("put", services.images)):
            original = getattr(service, name)

            def record(*args, _original=original, _name=name, **kwargs):  # type: ignore[no-untyped-def]
                threads.append((_name, threading.current_thread() is threading.main_thread()))
                return _original(*args, **kwargs)

            setattr(service, name, record)
        app = create_app(services, background=False)
        sqlite = services.context.database.sqlite_path is not None

        requests = {
            "POST": ("POST", "/v2/inline/app/blobs/uploads/", b"", b"application/octet-stream", 202),
            "small PUT": ("PUT", "/v2/inline/app/manifests/small", image.manifest,
                          OCI_MANIFEST.encode(), 201),
            "large PUT": ("PUT", "/v2/inline/app/manifests/large", large_manifest,
                          OCI_MANIFEST.encode(), 201),
        }

        def run(request: str, turn_held: bool) -> list[tuple[str, bool]]:
            """The calls one request made, with the turn free or held by another thread of
            this process for 0.3 s."""
            method, path, body, content_type, status = requests[request]
            threads.clear()
            release = threading.Event()
            if turn_held:
                holding = threading.Event()

                def hold() -> None:
                    with services.context.database.writer_turn():
                        holding.set()
                        release.wait(30)

                holder = threading.Thread(target=hold)
                holder.start()
                holding.wait(30)
                threading.Timer(0.3, release.set).start()
            assert asyncio.run(_call(app, method, path, authorization, body, content_type)) == status
            if turn_held:
                holder.join(30)
            return list(threads)

        # Free turn: on SQLite the POST and the small PUT run on the event loop's thread; the
        # large PUT never does, nor anything on PostgreSQL.
        assert run("POST", turn_held=False) == [("start", sqlite)]
        assert run("small PUT", turn_held=False) == [("put", sqlite)]
        assert run("large PUT", turn_held=False) == [("put", False)]
        if sqlite:
            # Held turn: the inline attempt finds it busy and writes nothing; the call runs
            # again in a worker thread, which waits for the turn.
            assert run("POST", turn_held=True) == [("start", True), ("start", False)]
            assert run("small PUT", turn_held=True) == [("put", True), ("put", False)]
            assert run("large PUT", turn_held=True) == [("put", False)]
    finally:
        services.close()
