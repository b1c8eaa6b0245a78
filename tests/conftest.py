"""Test fixtures: the real server on a free port, on SQLite and on PostgreSQL, driven by real
clients (boto3, the AWS CLI, skopeo, plain HTTP)."""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import boto3
import httpx
import pytest

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
ACCESS_KEY_ID = "AKIATESTMOORAGE00001"
SECRET_ACCESS_KEY = "test-secret-access-key-0000000000000000"
POSTGRES_ADMIN_URL = os.environ.get("MOORAGE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    """A running ``moorage serve`` process."""

    url: str
    host: str
    data_dir: Path
    database_url: str
    process: subprocess.Popen
    log_path: Path

    def env(self) -> dict[str, str]:
        """Environment for AWS clients pointed at this server."""
        env = dict(os.environ)
        env.update(
            AWS_ACCESS_KEY_ID=ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY=SECRET_ACCESS_KEY,
            AWS_DEFAULT_REGION=REGION, AWS_CONFIG_FILE="/dev/null",
            AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        )
        env.pop("AWS_PROFILE", None)
        return env

    def ecr(self):  # type: ignore[no-untyped-def]
        """A boto3 ECR client for this server."""
        return boto3.client(
            "ecr", endpoint_url=self.url, region_name=REGION,
            aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY,
        )

    def token(self) -> str:
        """A registry password from GetAuthorizationToken."""
        data = self.ecr().get_authorization_token()["authorizationData"][0]
        user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
        assert user == "AWS"
        return password

    def http(self) -> httpx.Client:
        """An HTTP client authenticated for ``/v2/``."""
        return httpx.Client(base_url=self.url, auth=("AWS", self.token()), timeout=60)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def moorage(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """``python -m moorage <args>`` on this server's data, as the same registry."""
        return subprocess.run(
            [sys.executable, "-m", "moorage", *args, "--data-dir", str(self.data_dir),
             "--database-url", self.database_url],
            capture_output=True, text=True, timeout=300,
            env={**os.environ, "MOORAGE_ACCOUNT_ID": ACCOUNT_ID, **(env or {})})


def wait_until_healthy(process: subprocess.Popen, url: str, log_path: Path, seconds: float = 30) -> None:
    """Wait until the server at ``url`` answers ``/healthz`` with 200; kill it and fail with its
    log when it exits or does not answer within ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log_path.read_text()}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"server did not start: {log_path.read_text()}")
        time.sleep(0.1)


def start_server(data_dir: Path, database_url: str, extra_env: dict[str, str] | None = None) -> Server:
    """Start ``python -m moorage serve`` and wait until ``/healthz`` answers."""
    port = free_port()
    env = dict(os.environ)
    env.update(
        MOORAGE_ACCOUNT_ID=ACCOUNT_ID, MOORAGE_REGION=REGION,
        MOORAGE_ADMIN_ACCESS_KEY_ID=ACCESS_KEY_ID,
        MOORAGE_ADMIN_SECRET_ACCESS_KEY=SECRET_ACCESS_KEY,
        MOORAGE_WORKERS="1",
    )
    env.update(extra_env or {})
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"server-{port}.log"
    log_file = open(log_path, "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "moorage", "serve", "--port", str(port), "--data-dir",
         str(data_dir), "--database-url", database_url],
        env=env, stdout=log_file, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_healthy(process, url, log_path)
    return Server(url, f"127.0.0.1:{port}", data_dir, database_url, process, log_path)


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(20)
    except subprocess.TimeoutExpired:
        server.process.kill()


def _new_database(backend: str, tmp_path_factory):  # type: ignore[no-untyped-def]
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'moorage.db'}"
        return
    import psycopg

    name = f"moorage_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request, tmp_path_factory):  # type: ignore[no-untyped-def]
    """A fresh, empty database shared by the session's server: SQLite file or a new
    PostgreSQL database (dropped after)."""
    yield from _new_database(request.param, tmp_path_factory)


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_database_url(request, tmp_path_factory):  # type: ignore[no-untyped-def]
    """A new, empty database for one test that starts its own servers."""
    yield from _new_database(request.param, tmp_path_factory)


@pytest.fixture(scope="session")
def server(database_url, tmp_path_factory):  # type: ignore[no-untyped-def]
    """The real server on a free port, one per metadata backend."""
    # Two worker processes: requests of one push land on different processes, as in production.
    running = start_server(tmp_path_factory.mktemp("data") / "data", database_url, {"MOORAGE_WORKERS": "2"})
    yield running
    stop_server(running)


@pytest.fixture
def own_server(tmp_path, fresh_database_url):  # type: ignore[no-untyped-def]
    """Start servers of this test's own (fresh database, own data directory) with extra
    environment: ``own_server({"MOORAGE_TEST_CLOCK": "1"})``; all are stopped after the test."""
    started: list[Server] = []

    def start(extra_env: dict[str, str] | None = None) -> Server:
        server = start_server(tmp_path / f"data{len(started)}", fresh_database_url, extra_env)
        started.append(server)
        return server

    yield start
    for server in started:
        stop_server(server)


@pytest.fixture
def ecr(server):  # type: ignore[no-untyped-def]
    """boto3 ECR client for the server."""
    return server.ecr()


@pytest.fixture
def repository(ecr):  # type: ignore[no-untyped-def]
    """A new, empty repository with a unique name."""
    name = f"test/repo-{uuid.uuid4().hex[:10]}"
    ecr.create_repository(repositoryName=name)
    return name


@pytest.fixture
def http(server):  # type: ignore[no-untyped-def]
    """An authenticated ``/v2/`` HTTP client."""
    with server.http() as client:
        yield client


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run ./scripts/test, which installs it")
    return path


@pytest.fixture
def skopeo(server, tmp_path):  # type: ignore[no-untyped-def]
    """Run skopeo against the server, logged in with a GetAuthorizationToken password."""
    binary = require_tool("skopeo")
    auth_file = tmp_path / "auth.json"
    login = subprocess.run(
        [binary, "login", "--tls-verify=false", "--authfile", str(auth_file), "-u", "AWS",
         "--password-stdin", server.host],
        input=server.token(), capture_output=True, text=True, timeout=60,
    )
    assert login.returncode == 0, login.stderr

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = args[0]
        result = subprocess.run(
            [binary, command, "--authfile", str(auth_file), *args[1:]],
            capture_output=True, text=True, timeout=300,
        )
        if check:
            assert result.returncode == 0, f"skopeo {' '.join(args)}: {result.stderr}"
        return result

    return run
