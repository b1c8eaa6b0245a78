"""The pull path (``GET``/``HEAD`` of manifests and blobs, ``tags/list``, Basic auth): answers
come from the database on every request, verified credentials are remembered without outliving
their key or expiry, and tags/list keeps its byte order and pagination on both databases."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import os
import random
import socket
import time

import boto3
import httpx
import pytest

from moorage.config import Settings
from moorage.distribution.auth import VERIFIED_CREDENTIALS_LIMIT, Authenticator
from moorage.distribution.errors import OciError
from moorage.distribution.responses import MANY_DOWNLOADS, PIECE_BYTES, SMALL_PIECE_BYTES, BlobDownload, Reply
from moorage.storage.metadata.statements import for_postgresql
from moorage.services import build_services
from tests.conftest import REGION
from tests.images import OCI_MANIFEST, make_image
from tests.test_distribution import error_of, push_blob, push_image

# -- tags/list ---------------------------------------------------------------------------------

TAGS = ["b", "B", "a1", "A_", "9", "0.1", "z-z", "a", "_x", "a.b", "aa", "a-", "Z", "a_b", "0"]


def walk(http: httpx.Client, url: str) -> tuple[list[str], list[int]]:
    """Follow ``Link`` from ``url``; the names collected and each page's size."""
    collected, sizes = [], []
    while url:
        page = http.get(url)
        assert page.status_code == 200, page.text
        tags = page.json()["tags"]
        collected += tags
        sizes.append(len(tags))
        link = page.headers.get("link")
        url = link[1:link.index(">")] if link else ""
    return collected, sizes


def test_tags_list_byte_order_and_pages(http, repository):
    image = make_image()
    for blob in image.blobs.values():
        push_blob(http, repository, blob)
    shuffled = random.sample(TAGS, len(TAGS))
    for tag in shuffled:
        assert http.put(f"/v2/{repository}/manifests/{tag}", content=image.manifest,
                        headers={"Content-Type": OCI_MANIFEST}).status_code == 201
    expected = sorted(TAGS)  # code-point order, which is byte order for these names
    full = http.get(f"/v2/{repository}/tags/list")
    assert full.json() == {"name": repository, "tags": expected}
    assert full.headers["content-type"] == "application/json" and "link" not in full.headers
    for n in (1, 2, 4, 5, len(TAGS), len(TAGS) + 3):
        collected, sizes = walk(http, f"/v2/{repository}/tags/list?n={n}")
        assert collected == expected, n
        assert all(size <= n for size in sizes) and sizes[-1] > 0, (n, sizes)
        assert len(sizes) == -(-len(TAGS) // n), (n, sizes)  # no empty page after a full one
    for last in ["", "0", "a0", "a_b", "zz"]:
        response = http.get(f"/v2/{repository}/tags/list", params={"last": last})
        assert response.json()["tags"] == [tag for tag in expected if tag > last], last
    page = http.get(f"/v2/{repository}/tags/list", params={"n": "3", "last": "a"})
    assert page.json()["tags"] == ["a-", "a.b", "a1"]
    assert page.headers["link"] == f'</v2/{repository}/tags/list?n=3&last=a1>; rel="next"'
    zero = http.get(f"/v2/{repository}/tags/list", params={"n": "0"})
    assert zero.json()["tags"] == [] and "link" not in zero.headers


def test_tags_list_of_empty_and_missing_repository(http, repository):
    assert http.get(f"/v2/{repository}/tags/list").json() == {"name": repository, "tags": []}
    assert http.get(f"/v2/{repository}/tags/list", params={"n": "5"}).json()["tags"] == []
    missing = http.get(f"/v2/{repository}-missing/tags/list")
    assert missing.status_code == 404 and error_of(missing) == "NAME_UNKNOWN"
    missing_page = http.get(f"/v2/{repository}-missing/tags/list", params={"n": "5", "last": "a"})
    assert missing_page.status_code == 404 and error_of(missing_page) == "NAME_UNKNOWN"


# -- manifests and blobs: nothing outlives a change ---------------------------------------------


def test_deleted_manifest_is_gone_on_every_worker(http, repository):
    """The session server runs two worker processes; each request may land on either."""
    image = push_image(http, repository, "v1")
    config = next(iter(image.blobs))
    for _ in range(10):
        assert http.get(f"/v2/{repository}/manifests/{image.digest}").status_code == 200
        assert http.head(f"/v2/{repository}/manifests/v1").status_code == 200
    assert http.delete(f"/v2/{repository}/manifests/{image.digest}").status_code == 202
    for _ in range(10):
        for reference in (image.digest, "v1"):
            response = http.get(f"/v2/{repository}/manifests/{reference}")
            assert response.status_code == 404 and error_of(response) == "MANIFEST_UNKNOWN"
            head = http.head(f"/v2/{repository}/manifests/{reference}")
            assert head.status_code == 404 and head.content == b""
    assert http.head(f"/v2/{repository}/blobs/{config}").status_code == 200  # blobs stay


def test_moved_tag_is_followed_on_every_worker(http, repository):
    first = push_image(http, repository, "latest")
    for _ in range(6):
        assert http.get(f"/v2/{repository}/manifests/latest").headers["docker-content-digest"] == first.digest
    second = push_image(http, repository, "latest")
    for _ in range(10):
        response = http.get(f"/v2/{repository}/manifests/latest")
        assert response.content == second.manifest
        assert response.headers["docker-content-digest"] == second.digest
        assert response.headers["etag"] == f'"{second.digest}"'
        head = http.head(f"/v2/{repository}/manifests/latest")
        assert head.headers["content-length"] == str(len(second.manifest))
        assert head.headers["content-type"] == OCI_MANIFEST


def test_unlinked_blob_is_gone(http, repository):
    digest = push_blob(http, repository, b"x" * 1000)
    for _ in range(6):
        head = http.head(f"/v2/{repository}/blobs/{digest}")
        assert head.status_code == 200 and head.headers["content-length"] == "1000"
        assert head.headers["accept-ranges"] == "bytes" and head.headers["etag"] == f'"{digest}"'
        assert head.headers["content-type"] == "application/octet-stream"
    assert http.delete(f"/v2/{repository}/blobs/{digest}").status_code == 202
    for _ in range(6):
        response = http.get(f"/v2/{repository}/blobs/{digest}")
        assert response.status_code == 404 and error_of(response) == "BLOB_UNKNOWN"


# -- credentials -------------------------------------------------------------------------------


def test_remembered_credentials_stop_working_after_their_key_is_deleted(server):
    created = server.moorage("keys", "create", "--user", "puller")
    assert created.returncode == 0, created.stderr
    values = dict(line.split(" = ") for line in created.stdout.strip().splitlines())
    client = boto3.client("ecr", endpoint_url=server.url, region_name=REGION,
                          aws_access_key_id=values["aws_access_key_id"],
                          aws_secret_access_key=values["aws_secret_access_key"])
    token = client.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    password = base64.b64decode(token).decode().partition(":")[2]
    with httpx.Client(base_url=server.url, auth=("AWS", password)) as http:
        for _ in range(10):  # both workers verify and remember the header
            assert http.get("/v2/").status_code == 200
        deleted = server.moorage("keys", "delete", values["aws_access_key_id"])
        assert deleted.returncode == 0, deleted.stderr
        time.sleep(6)  # the server caches key look-ups for 5 seconds
        for _ in range(10):
            response = http.get("/v2/")
            assert response.status_code == 401 and error_of(response) == "UNAUTHORIZED"
            assert response.headers["www-authenticate"].startswith('Basic realm="https://')


@pytest.fixture
def services(tmp_path):  # type: ignore[no-untyped-def]
    built = build_services(Settings(data_dir=tmp_path, account_id="123456789012", region=REGION))
    yield built
    built.close()


def basic(password: str, user: str = "AWS") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_authenticator_checks_key_and_expiry_on_every_request(services):
    key = services.keys.create("alice")
    token, expires_at = services.tokens.issue(key.access_key_id, "alice", "123456789012", REGION,
                                              services.context.clock.now())
    authenticator = Authenticator(services)
    header = basic(token)
    for _ in range(3):
        principal = authenticator.authenticate(header, "registry.example")
        assert principal.user_name == "alice" and principal.access_key_id == key.access_key_id
    services.context.clock.frozen_at = expires_at
    with pytest.raises(OciError) as expired:
        authenticator.authenticate(header, "registry.example")
    assert expired.value.status == 401 and "expired" in expired.value.message
    assert expired.value.headers["WWW-Authenticate"] == (
        'Basic realm="https://registry.example/",service="ecr.amazonaws.com"')
    services.context.clock.frozen_at = None
    assert authenticator.authenticate(header, None).user_name == "alice"
    services.keys.delete(key.access_key_id)
    with pytest.raises(OciError) as deleted:
        authenticator.authenticate(header, None)
    assert deleted.value.status == 401 and "deleted" in deleted.value.message


@pytest.mark.parametrize("header", [
    None, "", "Bearer abc", "Basic !!!", basic("x.y"), basic("token", user="admin"), "Basic",
])
def test_authenticator_refuses_malformed_credentials(services, header):
    with pytest.raises(OciError) as refused:
        Authenticator(services).authenticate(header, None)
    assert refused.value.status == 401 and refused.value.code == "UNAUTHORIZED"
    assert 'realm="https://localhost/"' in refused.value.headers["WWW-Authenticate"]


def test_authenticator_refuses_another_registry_and_stays_bounded(services):
    key = services.keys.create("bob")
    now = services.context.clock.now()
    other, _ = services.tokens.issue(key.access_key_id, "bob", "210987654321", REGION, now)
    with pytest.raises(OciError, match="another registry"):
        Authenticator(services).authenticate(basic(other), None)
    authenticator = Authenticator(services)
    for _ in range(VERIFIED_CREDENTIALS_LIMIT + 50):
        token, _ = services.tokens.issue(key.access_key_id, "bob", "123456789012", REGION, now)
        authenticator.authenticate(basic(token), None)
    assert len(authenticator._verified) == VERIFIED_CREDENTIALS_LIMIT


# -- small pieces ------------------------------------------------------------------------------


def sent(reply: Reply, method: str = "GET") -> list[dict]:
    messages: list[dict] = []

    async def send(message: dict) -> None:
        messages.append(message)

    asyncio.run(reply({"type": "http", "method": method}, None, send))
    return messages


def test_reply_headers_and_head():
    reply = Reply(200, [("docker-content-digest", "sha256:x")], b"{}", media_type="application/json")
    start, body = sent(reply)
    assert start["status"] == 200
    assert start["headers"] == [(b"docker-content-digest", b"sha256:x"), (b"content-length", b"2"),
                                (b"content-type", b"application/json"),
                                (b"docker-distribution-api-version", b"registry/2.0")]
    assert body == {"type": "http.response.body", "body": b"{}"}
    head = Reply(200, [], media_type="application/octet-stream", content_length=12345)
    start, body = sent(head, "HEAD")
    assert (b"content-length", b"12345") in start["headers"] and body["body"] == b""
    assert sent(Reply(200, [], b"abc"), "HEAD")[1]["body"] == b""
    no_content = sent(Reply(204))[0]["headers"]
    assert [name for name, _ in no_content] == [b"docker-distribution-api-version"]


def download(tmp_path, content: bytes, *, size: int | None = None, pathsend: bool = True,
             other_in_flight: bool = False, disconnect: bool = False,
             running: int = 0) -> tuple[list[dict], int]:
    """Run a BlobDownload of a file holding ``content`` with a recording ``send``; the messages
    sent and the descriptor it was given (closed afterwards)."""
    path = tmp_path / "blob"
    path.write_bytes(content)
    descriptor = os.open(path, os.O_RDONLY)
    messages: list[dict] = []
    received = iter([{"type": "http.request", "body": b"", "more_body": False}])

    async def receive() -> dict:
        message = next(received, None)
        if message is not None:
            return message
        if not disconnect:
            await asyncio.Event().wait()  # the client stays
        await asyncio.sleep(0.05)  # the client reads a few pieces, then goes
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        messages.append(message)
        await asyncio.sleep(0.01 if disconnect else 0)

    scope = {"type": "http", "method": "GET",
             "extensions": {"http.response.pathsend": {}} if pathsend else {}}
    reply = BlobDownload(str(path), descriptor, len(content) if size is None else size,
                         [("docker-content-digest", "sha256:x")])
    BlobDownload.sending_pieces = other_in_flight
    BlobDownload.running = running
    try:
        asyncio.run(reply(scope, receive, send))
    finally:
        sending, BlobDownload.sending_pieces = BlobDownload.sending_pieces, False
        still_running, BlobDownload.running = BlobDownload.running, 0
    assert sending == other_in_flight  # a download hands its turn back
    assert still_running == running  # and counts itself out
    return messages, descriptor


def closed(descriptor: int) -> bool:
    try:
        os.fstat(descriptor)
    except OSError:
        return True
    return False


def test_blob_download_pieces(tmp_path):
    """A download sends the file in pieces; under a server with pathsend, one starting while
    another sends pieces leaves the file to the server; beside many others, pieces are small."""
    content = os.urandom(2 * PIECE_BYTES + 12345)
    messages, descriptor = download(tmp_path, content)
    start, *bodies = messages
    assert start["status"] == 200 and (b"content-length", str(len(content)).encode()) in start["headers"]
    assert [len(m["body"]) for m in bodies] == [PIECE_BYTES, PIECE_BYTES, 12345]
    assert [m["more_body"] for m in bodies] == [True, True, False]
    assert b"".join(m["body"] for m in bodies) == content and closed(descriptor)

    messages, descriptor = download(tmp_path, content, other_in_flight=True)
    assert messages[1] == {"type": "http.response.pathsend", "path": str(tmp_path / "blob")}
    assert closed(descriptor)

    messages, descriptor = download(tmp_path, content, other_in_flight=True, pathsend=False)
    bodies = messages[1:]
    assert [len(m["body"]) for m in bodies] == [PIECE_BYTES, PIECE_BYTES, 12345]
    assert b"".join(m["body"] for m in bodies) == content and closed(descriptor)

    # Beside MANY_DOWNLOADS others, a download holds small pieces.
    messages, descriptor = download(tmp_path, content, pathsend=False, running=MANY_DOWNLOADS)
    bodies = messages[1:]
    assert {len(m["body"]) for m in bodies[:-1]} == {SMALL_PIECE_BYTES}
    assert b"".join(m["body"] for m in bodies) == content and closed(descriptor)

    messages, descriptor = download(tmp_path, b"")
    assert messages[1] == {"type": "http.response.body", "body": b""} and closed(descriptor)


def test_blob_download_stops_when_the_client_goes(tmp_path):
    """A client that goes away ends the download at the next piece: the rest of the file is
    not read, and the file is closed."""
    content = os.urandom(40 * PIECE_BYTES)
    messages, descriptor = download(tmp_path, content, disconnect=True)
    assert 1 <= len(messages) - 1 < 40
    deadline = time.monotonic() + 5
    while not closed(descriptor) and time.monotonic() < deadline:
        time.sleep(0.01)  # a read under way closes the file when it ends
    assert closed(descriptor)


def test_blob_download_of_a_short_file_fails(tmp_path):
    """A file shorter than the blob's recorded size aborts the response (the server drops the
    connection): a client never receives a short body as if it were whole."""
    with pytest.raises(OSError, match="ended at"):
        download(tmp_path, b"x" * 1000, size=5000)


def test_blob_download_failures_close_the_file_and_free_the_turn(tmp_path):
    """Sending failing, receiving failing and the request task cancelled mid-download: the
    error is raised, the file is closed and the next download sends pieces again."""
    path = tmp_path / "blob"
    path.write_bytes(os.urandom(6 * PIECE_BYTES))
    scope = {"type": "http", "method": "GET", "extensions": {"http.response.pathsend": {}}}

    async def run(receive_error: bool = False, send_error: bool = False,
                  cancel: bool = False) -> tuple[BaseException, int]:
        descriptor = os.open(path, os.O_RDONLY)
        reply = BlobDownload(str(path), descriptor, 6 * PIECE_BYTES, [])
        bodies = 0

        async def receive() -> dict:
            await asyncio.sleep(0.02)
            if receive_error:
                raise RuntimeError("receive failed")
            await asyncio.Event().wait()
            return {}

        async def send(message: dict) -> None:
            nonlocal bodies
            if message["type"] == "http.response.body":
                bodies += 1
                if send_error and bodies == 2:
                    raise OSError("send failed")
            await asyncio.sleep(0.01)

        task = asyncio.ensure_future(reply(scope, receive, send))
        if cancel:
            await asyncio.sleep(0.025)
            task.cancel()
        try:
            await task
        except BaseException as error:  # noqa: BLE001 - the error is the result
            return error, descriptor
        raise AssertionError("the download did not fail")

    for case in ({"receive_error": True}, {"send_error": True}, {"cancel": True}):
        error, descriptor = asyncio.run(run(**case))
        expected = {"receive_error": RuntimeError, "send_error": OSError,
                    "cancel": asyncio.CancelledError}[next(iter(case))]
        assert isinstance(error, expected), (case, error)
        deadline = time.monotonic() + 5
        while not closed(descriptor) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert closed(descriptor) and BlobDownload.sending_pieces is False, case


def test_concurrent_downloads_and_a_client_that_goes(server, http, repository):
    """Downloads running at once (pieces and the server's own file sending) all deliver the
    blob; a client dropping its download leaves the server serving and its log clean."""
    content = os.urandom(5 * PIECE_BYTES + 777)
    digest = push_blob(http, repository, content)
    url = f"/v2/{repository}/blobs/{digest}"
    token = server.token()

    def fetch(_: int) -> bytes:
        with httpx.Client(base_url=server.url, auth=("AWS", token), timeout=60) as client:
            return client.get(url).content

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        assert all(body == content for body in pool.map(fetch, range(12)))
    host, port = server.url.removeprefix("http://").split(":")
    credentials = base64.b64encode(f"AWS:{token}".encode()).decode()
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(f"GET {url} HTTP/1.1\r\nHost: {host}\r\n"
                     f"Authorization: Basic {credentials}\r\n\r\n".encode())
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    assert http.get(url).content == content
    assert "Traceback" not in server.log() and "unexpected_error" not in server.log()


def test_statements_for_postgresql():
    assert for_postgresql("SELECT coalesce(x::text, '[]') FROM t WHERE a = :a AND b > :last_name") == (
        "SELECT coalesce(x::text, '[]') FROM t WHERE a = %(a)s AND b > %(last_name)s")
    assert for_postgresql("SELECT '%' WHERE a = :a") == "SELECT '%%' WHERE a = %(a)s"
    assert for_postgresql("WHERE d IN (:b0, :b12)") == "WHERE d IN (%(b0)s, %(b12)s)"


def test_downloads_under_granian(own_server):
    """Under granian (pathsend), a download beside the one sending pieces leaves the file to
    granian: every concurrent download still delivers the whole blob, and ranges still work."""
    server = own_server({"MOORAGE_ASGI_SERVER": "granian"})
    repository = "granian/app"
    server.ecr().create_repository(repositoryName=repository)
    content = os.urandom(3 * PIECE_BYTES + 999)
    with server.http() as http:
        digest = push_blob(http, repository, content)
        url = f"/v2/{repository}/blobs/{digest}"

        def fetch(_: int) -> bytes:
            with server.http() as client:
                return client.get(url).content

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            assert all(body == content for body in pool.map(fetch, range(8)))
        part = http.get(url, headers={"Range": "bytes=5-9"})
        assert part.status_code == 206 and part.content == content[5:10]
    assert "Traceback" not in server.log()
