"""Running Moorage: first start, keys, restarts, replicas, shutdown, configuration."""

from __future__ import annotations

import base64
import configparser
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from dataclasses import replace

import boto3
import httpx
import pytest

from moorage.auth.tokens import TokenIssuer
from tests.conftest import (
    ACCESS_KEY_ID, ACCOUNT_ID, REGION, free_port, start_server, stop_server, wait_until_healthy,
)
from tests.images import OCI_MANIFEST, digest_of, make_image


def moorage(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "moorage", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


def test_first_start_writes_admin_credentials(tmp_path, fresh_database_url):
    data_dir = tmp_path / "data"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    env["MOORAGE_ACCOUNT_ID"] = ACCOUNT_ID
    log = open(tmp_path / "log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "moorage", "serve", "--port", str(port), "--data-dir", str(data_dir),
         "--database-url", fresh_database_url], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_healthy(process, url, tmp_path / "log")
        credentials = data_dir / "credentials"
        assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
        assert str(credentials.resolve()) in (tmp_path / "log").read_text()
        parser = configparser.ConfigParser()
        parser.read(credentials)
        key, secret = parser["default"]["aws_access_key_id"], parser["default"]["aws_secret_access_key"]
        client = boto3.client("ecr", endpoint_url=url, region_name=REGION,
                              aws_access_key_id=key, aws_secret_access_key=secret)
        client.create_repository(repositoryName="first/start")

        # keys create|list|delete work while the server runs on the same data.
        storage = ["--data-dir", str(data_dir), "--database-url", fresh_database_url]
        created = moorage("keys", "create", "--user", "ci", *storage, env=env)
        assert created.returncode == 0, created.stderr
        values = dict(line.split(" = ") for line in created.stdout.strip().splitlines())
        ci = boto3.client("ecr", endpoint_url=url, region_name=REGION,
                          aws_access_key_id=values["aws_access_key_id"],
                          aws_secret_access_key=values["aws_secret_access_key"])
        assert ci.describe_repositories()["repositories"][0]["repositoryName"] == "first/start"
        listed = moorage("keys", "list", *storage, env=env)
        assert values["aws_access_key_id"] in listed.stdout and key in listed.stdout
        assert values["aws_secret_access_key"] not in listed.stdout
        deleted = moorage("keys", "delete", values["aws_access_key_id"], *storage, env=env)
        assert deleted.returncode == 0
        time.sleep(6)  # the server caches key look-ups for 5 seconds
        with pytest.raises(ci.exceptions.ClientError) as excinfo:
            ci.describe_repositories()
        assert excinfo.value.response["Error"]["Code"] == "UnrecognizedClientException"
        missing = moorage("keys", "delete", "AKIADOESNOTEXIST0000", *storage, env=env)
        assert missing.returncode == 1

        # A restart keeps the same administrator key and does not rewrite it.
        process.terminate()
        process.wait(60)
        process = subprocess.Popen(
            [sys.executable, "-m", "moorage", "serve", "--port", str(port), "--data-dir", str(data_dir),
             "--database-url", fresh_database_url], env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_until_healthy(process, url, tmp_path / "log")
        assert client.describe_repositories()["repositories"][0]["repositoryName"] == "first/start"
    finally:
        process.terminate()
        process.wait(60)


def test_invalid_settings_are_refused(tmp_path):
    result = moorage("serve", "--data-dir", str(tmp_path), env={"MOORAGE_ACCOUNT_ID": "12"})
    assert result.returncode == 2
    assert "MOORAGE_ACCOUNT_ID" in result.stderr
    result = moorage("serve", "--data-dir", str(tmp_path), env={"MOORAGE_PORT": "eighty"})
    assert result.returncode == 2
    # A free port: the default one may be taken by a server the user started (README line 1).
    result = moorage("serve", "--data-dir", str(tmp_path), "--port", str(free_port()),
                     "--database-url", "postgresql://postgres@127.0.0.1:5432/no_such_database_here")
    assert result.returncode == 1
    assert "cannot open the registry's storage" in result.stderr and "Traceback" not in result.stderr
    result = moorage("keys", "list", "--data-dir", str(tmp_path), "--database-url", "nonsense://")
    assert result.returncode == 1 and "Traceback" not in result.stderr


def test_upload_resumes_after_restart_and_replicas_share_tokens(tmp_path, fresh_database_url):
    """An upload begun on one process continues on another (a restart, or a second replica
    with the same token secret and database)."""
    env = {"MOORAGE_TOKEN_SECRET": "shared-secret-for-replicas"}
    data_dir = tmp_path / "data"
    first = start_server(data_dir, fresh_database_url, env)
    try:
        first.ecr().create_repository(repositoryName="resume/me")
        token = first.token()
        content = os.urandom(300_000)
        with httpx.Client(base_url=first.url, auth=("AWS", token)) as http:
            started = http.post("/v2/resume/me/blobs/uploads/")
            location = started.headers["location"]
            assert http.patch(location, content=content[:100_000],
                              headers={"Content-Range": "0-99999"}).status_code == 202
    finally:
        stop_server(first)
    second = start_server(data_dir, fresh_database_url, env)
    try:
        with httpx.Client(base_url=second.url, auth=("AWS", token)) as http:
            status = http.get(location)
            assert status.status_code == 204 and status.headers["range"] == "0-99999"
            assert http.patch(location, content=content[100_000:],
                              headers={"Content-Range": f"100000-{len(content) - 1}"}).status_code == 202
            done = http.put(location, params={"digest": digest_of(content)})
            assert done.status_code == 201
            assert http.get(f"/v2/resume/me/blobs/{digest_of(content)}").content == content
    finally:
        stop_server(second)


def test_registry_host_setting(tmp_path, fresh_database_url):
    host = f"{ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com"
    server = start_server(tmp_path / "data", fresh_database_url, {"MOORAGE_REGISTRY_HOST": host})
    try:
        client = server.ecr()
        created = client.create_repository(repositoryName="named/host")["repository"]
        assert created["repositoryUri"] == f"{host}/named/host"
        data = client.get_authorization_token()["authorizationData"][0]
        assert data["proxyEndpoint"] == f"https://{host}"
        challenge = httpx.get(server.url + "/v2/").headers["www-authenticate"]
        assert challenge == f'Basic realm="https://{host}/",service="ecr.amazonaws.com"'
    finally:
        stop_server(server)


def test_expired_token_is_refused(server):
    secret = (server.data_dir / "token-secret").read_bytes().strip()
    issued_long_ago = time.time() - 13 * 3600
    token, expires_at = TokenIssuer(secret).issue(ACCESS_KEY_ID, "admin", ACCOUNT_ID, REGION, issued_long_ago)
    assert expires_at < time.time()
    response = httpx.get(server.url + "/v2/", auth=("AWS", token))
    assert response.status_code == 401
    assert "expired" in response.json()["errors"][0]["message"]
    fresh, _ = TokenIssuer(secret).issue(ACCESS_KEY_ID, "admin", ACCOUNT_ID, REGION, time.time())
    assert httpx.get(server.url + "/v2/", auth=("AWS", fresh)).status_code == 200
    other_region, _ = TokenIssuer(secret).issue(ACCESS_KEY_ID, "admin", ACCOUNT_ID, "eu-west-1", time.time())
    assert httpx.get(server.url + "/v2/", auth=("AWS", other_region)).status_code == 401


@pytest.mark.parametrize("asgi_server,workers,stop", [
    ("uvicorn", "1", signal.SIGTERM), ("uvicorn", "1", signal.SIGINT), ("uvicorn", "2", signal.SIGTERM),
    ("uvicorn", "2", signal.SIGINT), ("granian", "2", signal.SIGTERM)])
def test_graceful_shutdown_finishes_in_flight_upload(tmp_path, fresh_database_url, asgi_server, workers, stop):
    """SIGTERM or SIGINT (Ctrl-C) lets a request in flight finish, then the server exits with
    status 0: uvicorn in one process and with worker processes (its supervisor), and granian."""
    server = start_server(tmp_path / "data", fresh_database_url,
                          {"MOORAGE_ASGI_SERVER": asgi_server, "MOORAGE_WORKERS": workers})
    server.ecr().create_repository(repositoryName="slow/upload")
    token = server.token()
    result: dict[str, object] = {}
    chunk = os.urandom(64 * 1024)

    def slow_body():
        for _ in range(20):
            time.sleep(0.1)
            yield chunk

    def upload() -> None:
        with httpx.Client(base_url=server.url, auth=("AWS", token), timeout=60) as http:
            started = http.post("/v2/slow/upload/blobs/uploads/")
            result["location"] = started.headers["location"]
            result["patch"] = http.patch(started.headers["location"], content=slow_body()).status_code

    thread = threading.Thread(target=upload)
    thread.start()
    time.sleep(0.8)
    server.process.send_signal(stop)
    thread.join(30)
    assert result.get("patch") == 202
    assert server.process.wait(30) == 0


def test_push_racing_tag_writers(server, http, ecr):
    """Concurrent pushes of different manifests under one tag: every request answers 201 or a
    clean TAG_INVALID, and the tag ends on exactly one of the pushed images."""
    for mutability in ["MUTABLE", "IMMUTABLE"]:
        name = f"race/{mutability.lower()}-{os.urandom(4).hex()}"
        ecr.create_repository(repositoryName=name, imageTagMutability=mutability)
        images = [make_image(layer_count=1, layer_bytes=100) for _ in range(8)]
        for image in images:
            for blob in image.blobs.values():
                assert http.post(f"/v2/{name}/blobs/uploads/", params={"digest": digest_of(blob)},
                                 content=blob).status_code == 201
        statuses: list[int] = []

        def push(image) -> None:  # type: ignore[no-untyped-def]
            with server.http() as client:
                response = client.put(f"/v2/{name}/manifests/latest", content=image.manifest,
                                      headers={"Content-Type": OCI_MANIFEST})
                statuses.append(response.status_code)

        threads = [threading.Thread(target=push, args=(image,)) for image in images]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        final = http.head(f"/v2/{name}/manifests/latest").headers["docker-content-digest"]
        assert final in {image.digest for image in images}
        if mutability == "MUTABLE":
            assert statuses == [201] * 8
        else:
            assert sorted(statuses) == [201] + [400] * 7
        assert http.get(f"/v2/{name}/tags/list").json()["tags"] == ["latest"]


def test_quotas(tmp_path, fresh_database_url):
    server = start_server(tmp_path / "data", fresh_database_url,
                          {"MOORAGE_MAX_REPOSITORIES": "2", "MOORAGE_MAX_IMAGES_PER_REPOSITORY": "1"})
    try:
        ecr = server.ecr()
        ecr.create_repository(repositoryName="quota/one")
        ecr.create_repository(repositoryName="quota/two")
        with pytest.raises(ecr.exceptions.LimitExceededException):
            ecr.create_repository(repositoryName="quota/three")
        first, second = make_image(), make_image()
        with server.http() as http:
            for blob in [*first.blobs.values(), *second.blobs.values()]:
                http.post("/v2/quota/one/blobs/uploads/", params={"digest": digest_of(blob)}, content=blob)
            assert http.put("/v2/quota/one/manifests/a", content=first.manifest,
                            headers={"Content-Type": OCI_MANIFEST}).status_code == 201
            # Re-tagging the stored image is not a new image.
            assert http.put("/v2/quota/one/manifests/b", content=first.manifest,
                            headers={"Content-Type": OCI_MANIFEST}).status_code == 201
            refused = http.put("/v2/quota/one/manifests/c", content=second.manifest,
                               headers={"Content-Type": OCI_MANIFEST})
            assert refused.status_code == 403 and refused.json()["errors"][0]["code"] == "DENIED"
        with pytest.raises(ecr.exceptions.LimitExceededException):
            ecr.put_image(repositoryName="quota/one", imageManifest=second.manifest.decode(), imageTag="c")
        # Deleting the image frees its place (the repository's image count follows deletes).
        deleted = ecr.batch_delete_image(repositoryName="quota/one",
                                         imageIds=[{"imageDigest": first.digest}])
        assert len(deleted["imageIds"]) == 2 and not deleted["failures"]
        ecr.put_image(repositoryName="quota/one", imageManifest=second.manifest.decode(), imageTag="c")
        with pytest.raises(ecr.exceptions.LimitExceededException):
            ecr.put_image(repositoryName="quota/one", imageManifest=first.manifest.decode(), imageTag="a")
        # A failed delete changes nothing: the repository is still full.
        failed = ecr.batch_delete_image(repositoryName="quota/one", imageIds=[{"imageTag": "zzz"}])
        assert failed["failures"][0]["failureCode"] == "ImageNotFound"
        with pytest.raises(ecr.exceptions.LimitExceededException):
            ecr.put_image(repositoryName="quota/one", imageManifest=first.manifest.decode(), imageTag="a")
    finally:
        stop_server(server)


@pytest.mark.parametrize("operation", ["PutImage", "BatchDeleteImage", "manifest PUT",
                                       "large manifest PUT", "upload POST"])
def test_inline_writes_wait_for_the_writers_turn_off_the_event_loop(tmp_path, operation):
    """On SQLite, PutImage, BatchDeleteImage, a ``/v2/`` manifest PUT (up to 16 KiB; larger
    ones always run in a worker thread) and the POST starting an upload run on the event loop
    only while the writers' turn is free; while another process holds it, the call waits in a
    worker thread: the server keeps answering meanwhile, and the write happens once the turn
    is free."""
    import fcntl

    data = tmp_path / "data"
    server = start_server(data, f"sqlite:///{data / 'moorage.db'}")
    try:
        ecr = server.ecr()
        ecr.create_repository(repositoryName="turn/app")
        image = make_image()
        with server.http() as http:
            for blob in image.blobs.values():
                http.post("/v2/turn/app/blobs/uploads/", params={"digest": digest_of(blob)},
                          content=blob)
        if operation == "PutImage":
            before: list[dict[str, str]] = []
            after = [{"imageDigest": image.digest, "imageTag": "v1"}]
            call = lambda: ecr.put_image(  # noqa: E731
                repositoryName="turn/app", imageManifest=image.manifest.decode(), imageTag="v1")
            succeeded = lambda result: result["image"]["imageId"]["imageDigest"] == image.digest  # noqa: E731
        elif operation in ("manifest PUT", "large manifest PUT"):
            if operation == "large manifest PUT":  # over 16 KiB: never on the event loop
                document = json.loads(image.manifest)
                document["annotations"] = {"org.example.padding": "x" * 20_000}
                image = replace(image, manifest=json.dumps(document).encode())
            before, after = [], [{"imageDigest": image.digest, "imageTag": "v1"}]

            def call():  # type: ignore[no-untyped-def]
                with server.http() as http:
                    return http.put("/v2/turn/app/manifests/v1", content=image.manifest,
                                    headers={"Content-Type": OCI_MANIFEST})

            succeeded = lambda response: (response.status_code == 201  # noqa: E731
                                          and response.headers["docker-content-digest"] == image.digest)
        elif operation == "upload POST":
            before = after = []

            def call():  # type: ignore[no-untyped-def]
                with server.http() as http:
                    started = http.post("/v2/turn/app/blobs/uploads/")
                    assert started.status_code == 202, started.text
                    return http.get(started.headers["location"])

            succeeded = lambda response: (response.status_code == 204  # noqa: E731
                                          and response.headers["range"] == "0-0")
        else:
            ecr.put_image(repositoryName="turn/app", imageManifest=image.manifest.decode(),
                          imageTag="v1")
            before, after = [{"imageDigest": image.digest, "imageTag": "v1"}], []
            call = lambda: ecr.batch_delete_image(  # noqa: E731
                repositoryName="turn/app", imageIds=[{"imageTag": "v1"}])
            succeeded = lambda result: result["imageIds"] == before and not result["failures"]  # noqa: E731
        lock = os.open(data / "moorage.db.writer-lock", os.O_RDWR)
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process's write transaction
        outcome: list[object] = []
        caller = threading.Thread(target=lambda: outcome.append(call()))
        caller.start()
        time.sleep(0.5)
        assert not outcome  # waiting for the turn...
        with server.http() as http:  # ...in a worker thread: the event loop still answers
            started = time.monotonic()
            assert http.get("/v2/").status_code == 200
            assert ecr.list_images(repositoryName="turn/app")["imageIds"] == before
            assert time.monotonic() - started < 2
        fcntl.flock(lock, fcntl.LOCK_UN)
        os.close(lock)
        caller.join(30)
        assert outcome and succeeded(outcome[0])
        assert ecr.list_images(repositoryName="turn/app")["imageIds"] == after
    finally:
        stop_server(server)


def test_test_clock(tmp_path, fresh_database_url):
    """The test clock freezes push times and token expiry, never SigV4 freshness; it is off
    unless MOORAGE_TEST_CLOCK=1 and rejects malformed bodies."""
    server = start_server(tmp_path / "data", fresh_database_url,
                          {"MOORAGE_TEST_CLOCK": "1", "MOORAGE_WORKERS": "2"})
    try:
        assert "test clock enabled" in server.log()
        for bad in [{"now": "soon"}, {"now": -1}, {}, {"now": True}]:
            assert httpx.post(server.url + "/_moorage/clock", json=bad).status_code == 400
        future = time.time() + 40 * 86400
        frozen = httpx.post(server.url + "/_moorage/clock", json={"now": future}).json()
        assert frozen == {"now": future, "frozen": True}
        ecr = server.ecr()  # signs with real time, still accepted
        ecr.create_repository(repositoryName="clock/app")
        image = make_image()
        with server.http() as http:  # token issued at the frozen instant
            for blob in image.blobs.values():
                http.post("/v2/clock/app/blobs/uploads/", params={"digest": digest_of(blob)}, content=blob)
            assert http.put("/v2/clock/app/manifests/v1", content=image.manifest,
                            headers={"Content-Type": OCI_MANIFEST}).status_code == 201
            pushed = ecr.describe_images(repositoryName="clock/app")["imageDetails"][0]["imagePushedAt"]
            assert abs(pushed.timestamp() - future) < 1
            later = httpx.post(server.url + "/_moorage/clock", json={"now": future + 13 * 3600})
            assert later.status_code == 200
            assert http.get("/v2/").status_code == 401  # the token has expired on the test clock
        restored = httpx.post(server.url + "/_moorage/clock", json={"now": None}).json()
        assert restored["frozen"] is False and abs(restored["now"] - time.time()) < 60
    finally:
        stop_server(server)
    plain = start_server(tmp_path / "plain", fresh_database_url + ("" if "sqlite" not in fresh_database_url else "2"))
    try:
        assert httpx.post(plain.url + "/_moorage/clock", json={"now": 1}).status_code == 404
    finally:
        stop_server(plain)


def test_busy_port_is_refused(tmp_path, fresh_database_url):
    server = start_server(tmp_path / "data", fresh_database_url)
    try:
        port = server.host.split(":")[1]
        second = moorage("serve", "--port", port, "--data-dir", str(tmp_path / "other"),
                         "--database-url", f"sqlite:///{tmp_path / 'other.db'}")
        assert second.returncode == 1
        assert f"cannot listen on 127.0.0.1:{port}" in second.stderr
    finally:
        stop_server(server)


def test_health_and_metrics(server, http, ecr):
    assert httpx.get(server.url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(server.url + "/readyz").json() == {"status": "ok"}
    http.get("/v2/")
    ecr.describe_repositories()
    text = ""
    for _ in range(10):  # two worker processes: each keeps its own counters
        text += httpx.get(server.url + "/metrics").text
    assert 'moorage_requests_total{status="2xx",surface="oci"}' in text
    assert 'moorage_requests_total{status="2xx",surface="ecr"}' in text


def test_oversized_request_head_is_refused(server):
    """A request head over 1 MiB gets 431 and the connection is closed, quickly; the server
    keeps answering (httptools alone sets no limit)."""
    import socket

    host, port = server.host.split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: ")
        answer = b""
        try:
            for _ in range(24):  # 1.5 MiB of one header value, never finished
                sock.sendall(b"a" * 65536)
            while chunk := sock.recv(65536):
                answer += chunk
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert answer.startswith(b"HTTP/1.1 431 ")  # refused, then closed without a reset
    with socket.create_connection((host, int(port)), timeout=30) as sock:  # the same, in one go
        sock.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (2 * 1024 * 1024))
        assert sock.recv(65536).startswith(b"HTTP/1.1 431 Request Header Fields Too Large")
    assert httpx.get(server.url + "/v2/").status_code == 401
    headers = {"X-Large": "b" * 200_000}  # large but within the limit: answered as usual
    assert httpx.get(server.url + "/v2/", headers=headers).status_code == 401


def _workers(server) -> list[int]:  # type: ignore[no-untyped-def]
    """The pids of the server's worker processes (its children but multiprocessing's tracker)."""
    children = open(f"/proc/{server.process.pid}/task/{server.process.pid}/children").read().split()
    workers = []
    for pid in children:
        try:
            if "resource_tracker" not in open(f"/proc/{pid}/cmdline").read():
                workers.append(int(pid))
        except OSError:  # exited meanwhile
            pass
    return workers


def _client_ports_per_worker(server) -> dict[int, set[int]]:  # type: ignore[no-untyped-def]
    """Worker pid → the client ports of the established TCP connections it holds (from /proc:
    the workers' socket descriptors matched to /proc/net/tcp's rows)."""
    port = int(server.host.split(":")[1])
    client_port_of = {}
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "01":
            client_port_of[fields[9]] = int(fields[2].split(":")[1], 16)
    held = {}
    for pid in _workers(server):
        try:
            descriptors = os.listdir(f"/proc/{pid}/fd")
        except OSError:  # the worker is gone
            continue
        links = []
        for fd in descriptors:
            try:
                links.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
            except OSError:  # closed since the listing (a connection closing): not held
                pass
        inodes = {link[8:-1] for link in links if link.startswith("socket:[")}
        held[pid] = {client_port_of[inode] for inode in inodes if inode in client_port_of}
    return held


def _connect(server, token: str):  # type: ignore[no-untyped-def]
    """A new connection to the server that has been answered one request (``GET /v2/``)."""
    import socket

    host, port = server.host.split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    credentials = base64.b64encode(f"AWS:{token}".encode())
    sock.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " + credentials
                 + b"\r\n\r\n")
    head, _ = _read_answer(sock)
    assert head.startswith(b"http/1.1 200 "), head
    return sock


def _exited(pid: int) -> bool:
    """Whether process ``pid`` has wholly exited: gone, or a zombie with no thread left but its
    main one (which shows as a zombie while the others still hold the descriptors)."""
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
        return state == "Z" and os.listdir(f"/proc/{pid}/task") == [str(pid)]
    except OSError:
        return True


def _wait_for(condition, seconds: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _wait_until_every_worker_serves(server, token: str) -> None:  # type: ignore[no-untyped-def]
    """Open connections until every worker holds one (a worker gets none before it is ready),
    then close them all and wait until the workers hold none."""
    opened = []
    try:
        def every_worker_serves() -> bool:
            opened.append(_connect(server, token))
            held = _client_ports_per_worker(server)
            return len(held) == 2 and all(held.values())

        _wait_for(every_worker_serves, 60)
    finally:
        for sock in opened:
            sock.close()
    _wait_for(lambda: not any(_client_ports_per_worker(server).values()))
    time.sleep(0.3)  # the closes reach the supervisor


def test_workers_get_equal_shares_of_the_connections(tmp_path, fresh_database_url):
    """With worker processes the supervisor accepts each connection and hands it to the ready
    worker serving the fewest: 8 connections opened one after another, each with a request,
    are served 4 and 4 (with a shared listening socket they could all land on one worker);
    connections closed on one worker free its share, so the next ones go there; a killed
    worker's replacement gets connections once it is ready, and the survivor serves
    meanwhile."""
    server = start_server(tmp_path / "data", fresh_database_url, {"MOORAGE_WORKERS": "2"})
    connections = []
    try:
        token = server.token()
        _wait_until_every_worker_serves(server, token)
        connections += [_connect(server, token) for _ in range(8)]
        held = _client_ports_per_worker(server)
        assert sorted(map(len, held.values())) == [4, 4]
        first, second = sorted(held)
        for sock in [c for c in connections if c.getsockname()[1] in held[first]]:
            sock.close()  # all four of the first worker's
            connections.remove(sock)
        _wait_for(lambda: not _client_ports_per_worker(server)[first])
        time.sleep(0.3)  # the closes reach the supervisor
        new = [_connect(server, token) for _ in range(4)]
        connections += new
        held = _client_ports_per_worker(server)
        assert held[first] == {sock.getsockname()[1] for sock in new}  # not 2 and 2
        assert len(held[second]) == 4

        os.kill(first, signal.SIGKILL)
        _wait_for(lambda: _exited(first))
        assert _connect(server, token)  # the survivor serves while the replacement starts
        _wait_for(lambda: len(_workers(server)) == 2 and first not in _workers(server))
        replacement = next(pid for pid in _workers(server) if pid != second)

        def replacement_served() -> bool:
            sock = _connect(server, token)
            connections.append(sock)
            return sock.getsockname()[1] in _client_ports_per_worker(server).get(replacement, ())

        _wait_for(replacement_served, 60)
        assert server.process.poll() is None
    finally:
        for sock in connections:
            sock.close()
        stop_server(server)


def test_connections_are_answered_while_workers_restart(tmp_path, fresh_database_url):
    """SIGHUP makes uvicorn's supervisor replace each worker in turn; a stopping worker is
    handed no new connection and a starting one none until it is ready, so every request made
    meanwhile on a new connection is answered."""
    server = start_server(tmp_path / "data", fresh_database_url, {"MOORAGE_WORKERS": "2"})
    try:
        token = server.token()
        before = set(_workers(server))
        answered, failed = 0, []
        server.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                with httpx.Client(base_url=server.url, auth=("AWS", token), timeout=30) as client:
                    status = client.get("/v2/").status_code
                    answered += status == 200
                    if status != 200:
                        failed.append(status)
            except httpx.HTTPError as error:
                failed.append(repr(error))
            workers = set(_workers(server))
            if len(workers) == 2 and not workers & before:
                break
        assert not set(_workers(server)) & before, "the workers were not replaced"
        assert failed == [] and answered > 10
    finally:
        stop_server(server)


def _handed_worker(channel):  # type: ignore[no-untyped-def]
    """A :class:`HandedServer` on ``channel`` (this test is its supervisor), serving a bare app
    in a thread: (server, thread)."""
    import asyncio

    import uvicorn

    from moorage.uvicorn_edge import HandedConnectionsProtocol, HandedServer

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-length", b"2")]})
            await send({"type": "http.response.body", "body": b"ok"})

    config = uvicorn.Config(app, http=HandedConnectionsProtocol, lifespan="off", log_config=None)
    server = HandedServer(config, channel)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    return server, thread


def _hand(supervisor_end, port_connection) -> None:  # type: ignore[no-untyped-def]
    import socket

    from moorage.uvicorn_edge import HANDED

    socket.send_fds(supervisor_end, [HANDED], [port_connection.fileno()])


@pytest.mark.parametrize("supervisor_answers", [True, False])
def test_handed_worker_side_of_the_hand_off(supervisor_answers):
    """The worker side of the hand-off, with this test as its supervisor: READY once started;
    a handed connection is served, and CLOSED told when it closes; a hand-off whose
    descriptor the kernel dropped counts as closed at once; at shutdown STOPPING, and a
    connection handed just before, whose request comes later, is still answered. A supervisor
    that never ends the channel delays the shutdown by HANDED_DRAIN_SECONDS, no more."""
    import socket

    from moorage.uvicorn_edge import CLOSED, HANDED, HANDED_DRAIN_SECONDS, READY, STOPPING

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    ours.settimeout(10)
    listener = socket.create_server(("127.0.0.1", 0))
    server, thread = _handed_worker(theirs)
    try:
        assert ours.recv(1) == READY
        client = socket.create_connection(listener.getsockname())
        accepted, _ = listener.accept()
        _hand(ours, accepted)
        accepted.close()
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head, body = _read_answer(client)
        assert head.startswith(b"http/1.1 200 ") and body == b"ok"
        client.close()
        assert ours.recv(1) == CLOSED
        ours.send(HANDED)  # a hand-off whose descriptor was dropped
        assert ours.recv(1) == CLOSED

        late = socket.create_connection(listener.getsockname())  # handed, then the shutdown
        accepted, _ = listener.accept()
        _hand(ours, accepted)
        accepted.close()
        started = time.monotonic()
        server.should_exit = True
        assert ours.recv(1) == STOPPING
        if supervisor_answers:
            ours.shutdown(socket.SHUT_WR)
        time.sleep(0.2)
        late.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head, body = _read_answer(late)
        assert head.startswith(b"http/1.1 200 ") and body == b"ok"
        late.close()
        thread.join(10)
        assert not thread.is_alive()
        took = time.monotonic() - started
        assert took >= HANDED_DRAIN_SECONDS if not supervisor_answers else took < HANDED_DRAIN_SECONDS
    finally:
        server.should_exit = True
        thread.join(10)
        for sock in (ours, theirs, listener):
            sock.close()


def test_workers_exit_when_their_supervisor_dies(tmp_path, fresh_database_url):
    """A worker whose supervisor is gone (killed: its end of the channel closes) gets no more
    connections, so it shuts down instead of lingering with its database connections."""
    server = start_server(tmp_path / "data", fresh_database_url, {"MOORAGE_WORKERS": "2"})
    workers: list[int] = []
    try:
        _wait_until_every_worker_serves(server, server.token())
        workers = _workers(server)
        assert len(workers) == 2
        server.process.kill()
        server.process.wait(10)
        _wait_for(lambda: all(_exited(pid) for pid in workers), 30)
    finally:
        stop_server(server)
        for pid in workers:
            if not _exited(pid):
                os.kill(pid, signal.SIGKILL)


def test_new_connections_are_refused_during_graceful_shutdown(tmp_path, fresh_database_url):
    """With worker processes, once SIGTERM arrives new connections are refused at once (a load
    balancer moves on) while a request in flight finishes."""
    import socket

    server = start_server(tmp_path / "data", fresh_database_url, {"MOORAGE_WORKERS": "2"})
    server.ecr().create_repository(repositoryName="slow/shutdown")
    token = server.token()
    result: dict[str, object] = {}

    def slow_body():
        for _ in range(30):
            time.sleep(0.1)
            yield b"x" * 1024

    def upload() -> None:
        with httpx.Client(base_url=server.url, auth=("AWS", token), timeout=60) as http:
            started = http.post("/v2/slow/shutdown/blobs/uploads/")
            result["patch"] = http.patch(started.headers["location"], content=slow_body()).status_code

    thread = threading.Thread(target=upload)
    thread.start()
    time.sleep(0.8)
    server.process.send_signal(signal.SIGTERM)
    time.sleep(1.0)  # the supervisor looks at signals twice a second
    host, port = server.host.split(":")
    started = time.monotonic()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, int(port)), timeout=10).close()
    assert time.monotonic() - started < 1
    thread.join(30)
    assert result.get("patch") == 202
    assert server.process.wait(30) == 0


def test_worker_that_cannot_open_the_storage_exits_with_startup_failure(monkeypatch):
    """A worker process whose storage cannot be opened exits with status 3, on which uvicorn's
    supervisor stops instead of starting it again and again."""
    from moorage.server import WORKER_STARTUP_FAILURE, worker_app

    monkeypatch.setenv("MOORAGE_DATABASE_URL", "nonsense://")
    with pytest.raises(SystemExit) as exit_info:
        worker_app()
    assert exit_info.value.code == WORKER_STARTUP_FAILURE == 3


def _read_all(sock) -> bytes:  # type: ignore[no-untyped-def]
    answer = b""
    try:
        while chunk := sock.recv(1 << 20):
            answer += chunk
    except ConnectionResetError:
        pass
    return answer


def test_request_head_limit_counts_heads_and_trailers_not_bodies(server, http, repository):
    """The 1 MiB limit bounds a chunked body's trailers too; a head under the limit that
    arrives with its body in one write is accepted; a refusal that comes while an earlier
    response is being sent waits for it to end."""
    import socket

    host, port = server.host.split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(b"POST /v2/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"5\r\nhello\r\n0\r\nX-Trailer: " + b"a" * (2 * 1024 * 1024))
        assert b"HTTP/1.1 431 Request Header Fields Too Large" in _read_all(sock)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        head = b"POST /v2/ HTTP/1.1\r\nHost: x\r\nContent-Length: 300000\r\nX-Pad: "
        head += b"p" * (1_040_000 - len(head)) + b"\r\n\r\n"
        sock.sendall(head + b"b" * 300_000)
        assert sock.recv(65536).startswith(b"HTTP/1.1 401 ")
    content = os.urandom(24 * 1024 * 1024)
    digest = digest_of(content)
    assert http.post(f"/v2/{repository}/blobs/uploads/", params={"digest": digest},
                     content=content).status_code == 201
    credentials = base64.b64encode(f"AWS:{server.token()}".encode())
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(f"GET /v2/{repository}/blobs/{digest} HTTP/1.1\r\nHost: x\r\n".encode()
                     + b"Authorization: Basic " + credentials + b"\r\n\r\n"
                     # (the bytes of a head after a request ends in the same read are not
                     # counted: the limit may be passed by up to one read, 256 KB)
                     + b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1024 * 1024 + 300_000))
        answer = _read_all(sock)
    head, _, rest = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and rest[:len(content)] == content
    assert rest[len(content):].startswith(b"HTTP/1.1 431 ")


def _read_answer(sock, head_request: bool = False) -> tuple[bytes, bytes]:  # type: ignore[no-untyped-def]
    """One HTTP answer read off ``sock`` and nothing of the next: (head in lower case, body of
    Content-Length bytes, none for a HEAD request)."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        assert byte, f"connection closed mid-answer: {head!r}"
        head += byte
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and not head_request:
            length = int(value)
    body = b""
    while len(body) < length:
        chunk = sock.recv(length - len(body))
        assert chunk, "connection closed mid-body"
        body += chunk
    return head[:-4].lower(), body


def test_http10_connection_is_kept_alive_when_asked(server, http, repository):
    """An HTTP/1.0 client asking for ``Connection: keep-alive`` (ApacheBench, older proxies)
    gets answers marked keep-alive on one connection; without asking, the connection closes
    after the answer (RFC 9112 Appendix C.2.2)."""
    import socket

    from tests.test_distribution import push_image

    manifest = push_image(http, repository, tag="kept").manifest
    credentials = base64.b64encode(f"AWS:{server.token()}".encode())
    host, port = server.host.split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        for method in ("GET", "HEAD", "GET"):
            sock.sendall(f"{method} /v2/{repository}/manifests/kept HTTP/1.0\r\n".encode()
                         + b"Connection: Keep-Alive\r\nAccept: " + OCI_MANIFEST.encode()
                         + b"\r\nAuthorization: Basic " + credentials + b"\r\n\r\n")
            head, body = _read_answer(sock, head_request=method == "HEAD")
            assert head.startswith(b"http/1.1 200 ") and b"\r\nconnection: keep-alive" in head
            assert body == (manifest if method == "GET" else b"")
        sock.sendall(b"GET /v2/ HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")  # an error answer
        head, _ = _read_answer(sock)
        assert head.startswith(b"http/1.1 401 ") and b"\r\nconnection: keep-alive" in head
        sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")  # not asked: closed after the answer
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 200 ") and b"connection: close\r\n" in answer
    assert answer.endswith(b'{"status":"ok"}')


def test_http10_keep_alive_only_when_framing_allows():
    """On HTTP/1.0 the connection is kept only when the client asks (``keep-alive`` and no
    ``close``), the request has no Transfer-Encoding (faulty framing on 1.0: what follows it is
    not read as a request, RFC 9112 §6.1) and the answer's end is known without closing (a
    Content-Length, whatever Connection header the application sets); pipelined requests on a
    kept connection are answered in order; a 1.0 client's ``Expect: 100-continue`` gets no
    interim answer (RFC 9110 §10.1.1)."""
    import asyncio
    import socket

    import uvicorn

    from moorage.uvicorn_edge import BoundedHeadersProtocol

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [(b"content-type", b"text/plain")]
        answer = b"ok " + scope["path"].encode() + b" " + body
        if scope["path"] == "/close":
            headers.append((b"connection", b"close"))
        if scope["path"] == "/own-keep-alive":
            headers.append((b"connection", b"keep-alive"))
        if scope["path"] not in ("/streamed", "/own-keep-alive"):
            headers.append((b"content-length", str(len(answer)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer, "more_body": False})

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                          http=BoundedHeadersProtocol, lifespan="off"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()

    def exchange(request: bytes) -> bytes:
        """Everything answered to ``request`` until the server closes the connection."""
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(request)
            return _read_all(sock)

    try:
        _wait_for(lambda: server.started, 10)
        for path in ("/streamed", "/close", "/own-keep-alive"):
            answer = exchange(f"GET {path} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n".encode())
            assert answer.startswith(b"HTTP/1.1 200 ") and b"ok " + path.encode() in answer
            assert answer.count(b"connection: close") == 1  # and the connection closed
        answer = exchange(b"GET /ok HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"
                          b"GET /second HTTP/1.0\r\n\r\n")
        assert answer.count(b"HTTP/1.1 200 ") == 1 and b"connection: close" in answer
        smuggled = (b"POST /ok HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked"
                    b"\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /smuggled HTTP/1.0\r\n\r\n")
        answer = exchange(smuggled)
        assert answer.count(b"HTTP/1.1 200 ") == 1 and b"/smuggled" not in answer
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /ok HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                         b"POST /ok HTTP/1.0\r\nConnection: Keep-Alive\r\nContent-Length: 4\r\n"
                         b"Expect: 100-continue\r\n\r\nbody")
            first_head, first = _read_answer(sock)
            second_head, second = _read_answer(sock)
        assert first_head.startswith(b"http/1.1 200 ") and first == b"ok /ok "
        assert second_head.startswith(b"http/1.1 200 ") and second == b"ok /ok body"
        assert b"connection: keep-alive" in first_head and b"connection: keep-alive" in second_head
    finally:
        server.should_exit = True
        thread.join(10)


def test_supervisor_exits_with_startup_failure_when_a_worker_cannot_start(tmp_path):
    """With worker processes, a worker that exits with uvicorn's startup-failure status stops
    the server, which exits with that status too (so a service manager sees the failure)."""
    (tmp_path / "failing_app.py").write_text("def build():\n    raise SystemExit(3)\n")
    code = f"from moorage.uvicorn_edge import serve; serve('failing_app:build', '127.0.0.1', {free_port()}, 2, 5)"
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 3, result.stderr[-2000:]
