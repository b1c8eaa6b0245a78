"""Start and stop the servers under test, and read their CPU time and memory from /proc.

* Moorage: ``python -m moorage serve`` on SQLite in a temporary directory, auth on (every
  ``/v2/`` request carries ``Authorization: Basic AWS:<token>``, every ECR call is SigV4 signed).
* CNCF Distribution: ``/usr/bin/docker-registry`` (Debian ``docker-registry``) with a generated
  config: filesystem storage in a temporary directory, deletes enabled, no auth.
* moto: ``moto_server`` (from ``moto[server]``) as the ECR API reference.

CPU time is summed over the whole process tree (the server and any worker processes it
started), so a multi-process server is charged for all of its work.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import boto3
from botocore.config import Config

from benchmarks.ecrclient import EcrClient
from benchmarks.rawhttp import Connection

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
ACCESS_KEY_ID = "AKIABENCHMOORAGE0001"
SECRET_ACCESS_KEY = "bench-secret-access-key-000000000000000"
CLK_TCK = os.sysconf("SC_CLK_TCK")
DISTRIBUTION_BINARY = "/usr/bin/docker-registry"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- /proc -------------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    result: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return result
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as handle:
                result.extend(int(x) for x in handle.read().split())
        except (FileNotFoundError, ProcessLookupError):
            pass
    return result


def process_tree(pid: int) -> list[int]:
    """``pid`` and all of its live descendants."""
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(_children(current))
    return tree


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            data = handle.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return data[data.rindex(")") + 2:].split()


def cpu_seconds(pid: int) -> float:
    """utime+stime of ``pid`` and its live descendants, plus the CPU time of children it has
    already reaped (cutime+cstime), in seconds."""
    total = 0
    for index, member in enumerate(process_tree(pid)):
        fields = _stat_fields(member)
        if fields is None:
            continue
        # after "pid (comm) ": state=0 ... utime=11 stime=12 cutime=13 cstime=14
        total += int(fields[11]) + int(fields[12])
        if index == 0:
            total += int(fields[13]) + int(fields[14])
    return total / CLK_TCK


def _status_kib(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def rss_kib(pid: int) -> int:
    """Current resident set size (VmRSS) summed over the process tree, KiB."""
    return sum(_status_kib(p, "VmRSS") for p in process_tree(pid))


def hwm_kib(pid: int) -> int:
    """Peak resident set size (VmHWM) summed over the process tree, KiB."""
    return sum(_status_kib(p, "VmHWM") for p in process_tree(pid))


def reset_hwm(pid: int) -> bool:
    """Reset VmHWM to the current RSS for every process of the tree (``clear_refs`` 5);
    False when the kernel or permissions do not allow it."""
    ok = True
    for member in process_tree(pid):
        try:
            with open(f"/proc/{member}/clear_refs", "w") as handle:
                handle.write("5")
        except OSError:
            ok = False
    return ok


# -- servers -----------------------------------------------------------------------------------


@dataclass
class Target:
    """A running server under test."""

    kind: str  # "moorage", "distribution" or "moto"
    label: str
    port: int
    process: subprocess.Popen
    workdir: Path
    log_path: Path
    auth_header: str | None = None  # "Basic ..." for Moorage's /v2/
    password: str | None = None
    extra: dict = field(default_factory=dict)

    host = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def headers(self) -> dict[str, str]:
        return {"Authorization": self.auth_header} if self.auth_header else {}

    def connection(self, timeout: float = 300.0) -> Connection:
        return Connection(self.host, self.port, self.headers(), timeout=timeout)

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def ecr(self):  # type: ignore[no-untyped-def]
        return boto3.client(
            "ecr", endpoint_url=self.url, region_name=REGION,
            aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY,
            config=Config(retries={"max_attempts": 1, "mode": "standard"},
                          max_pool_connections=16),
        )

    def ecr_client(self) -> EcrClient:
        """The lean SigV4 client the ECR measurements use (see :mod:`benchmarks.ecrclient`)."""
        return EcrClient(self.host, self.port, REGION, ACCESS_KEY_ID, SECRET_ACCESS_KEY)

    def ensure_repository(self, name: str) -> None:
        """Moorage (like ECR) needs a repository before a push; Distribution does not."""
        if self.kind == "distribution":
            return
        client = self.ecr()
        try:
            client.create_repository(repositoryName=name)
        except client.exceptions.RepositoryAlreadyExistsException:
            pass

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def _wait_ready(process: subprocess.Popen, port: int, path: str, log_path: Path,
                ok=(200, 401)) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"server exited ({process.returncode}):\n{log_path.read_text()[-3000:]}")
        try:
            with Connection("127.0.0.1", port, timeout=2) as connection:
                if connection.request("GET", path).status in ok:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"server did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.1)


def start_moorage(root: Path, extra_env: dict[str, str] | None = None,
                  extra_args: list[str] | None = None) -> Target:
    workdir = root / "moorage"
    data_dir = workdir / "data"
    data_dir.mkdir(parents=True)
    port = free_port()
    env = dict(os.environ)
    env.update(
        MOORAGE_ACCOUNT_ID=ACCOUNT_ID, MOORAGE_REGION=REGION,
        MOORAGE_ADMIN_ACCESS_KEY_ID=ACCESS_KEY_ID,
        MOORAGE_ADMIN_SECRET_ACCESS_KEY=SECRET_ACCESS_KEY,
    )
    env.update(extra_env or {})
    log_path = workdir / "server.log"
    command = [sys.executable, "-m", "moorage", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--data-dir", str(data_dir), "--database-url", f"sqlite:///{workdir / 'moorage.db'}",
               *(extra_args or [])]
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                   cwd=workdir, start_new_session=True)
    target = Target("moorage", "Moorage", port, process, workdir, log_path)
    try:
        _wait_ready(process, port, "/healthz", log_path, ok=(200,))
        data = target.ecr().get_authorization_token()["authorizationData"][0]
        token = base64.b64decode(data["authorizationToken"]).decode()
        user, _, password = token.partition(":")
        target.password = password
        target.auth_header = "Basic " + base64.b64encode(f"AWS:{password}".encode()).decode()
        target.extra["command"] = " ".join(command[1:6])
        log_text = log_path.read_text(errors="replace")
        server = re.search(r"server=(\w+)", log_text)
        workers = re.search(r"workers=(\d+)", log_text)
        target.extra["version"] = (f"{server.group(1) if server else 'default ASGI server'}, "
                                   f"{workers.group(1) if workers else '?'} worker(s)")
    except BaseException:
        target.stop()
        raise
    return target


DISTRIBUTION_CONFIG = """\
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
  secret: moorage-benchmark-secret
  debug:
    addr: ""
health:
  storagedriver:
    enabled: false
"""


def distribution_binary() -> str | None:
    if os.access(DISTRIBUTION_BINARY, os.X_OK):
        return DISTRIBUTION_BINARY
    return shutil.which("docker-registry")


def start_distribution(root: Path) -> Target:
    binary = distribution_binary()
    if binary is None:
        raise SystemExit(
            "CNCF Distribution is not installed: /usr/bin/docker-registry is missing.\n"
            "Install it with:  apt-get update && apt-get install -y docker-registry\n"
            "(the Debian package starts a system service on port 5000; stop it with "
            "`systemctl disable --now docker-registry` if you do not want it)"
        )
    workdir = root / "distribution"
    (workdir / "storage").mkdir(parents=True)
    port = free_port()
    config = workdir / "config.yml"
    config.write_text(DISTRIBUTION_CONFIG.format(root=workdir / "storage", port=port))
    log_path = workdir / "server.log"
    env = dict(os.environ, OTEL_TRACES_EXPORTER="none")
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen([binary, "serve", str(config)], stdout=log_file,
                                   stderr=subprocess.STDOUT, cwd=workdir, env=env,
                                   start_new_session=True)
    target = Target("distribution", "Distribution", port, process, workdir, log_path)
    try:
        _wait_ready(process, port, "/v2/", log_path)
        version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
        target.extra["version"] = version.strip()
    except BaseException:
        target.stop()
        raise
    return target


def moto_binary() -> str | None:
    candidate = Path(sys.executable).parent / "moto_server"
    if candidate.exists():
        return str(candidate)
    return shutil.which("moto_server")


def start_moto(root: Path) -> Target:
    binary = moto_binary()
    if binary is None:
        raise SystemExit("moto_server is missing: .venv/bin/pip install 'moto[server]'")
    workdir = root / "moto"
    workdir.mkdir(parents=True)
    port = free_port()
    log_path = workdir / "server.log"
    env = dict(os.environ, MOTO_ACCOUNT_ID=ACCOUNT_ID)
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen([binary, "-H", "127.0.0.1", "-p", str(port)], stdout=log_file,
                                   stderr=subprocess.STDOUT, cwd=workdir, env=env,
                                   start_new_session=True)
    target = Target("moto", "moto", port, process, workdir, log_path)
    try:
        _wait_ready(process, port, "/moto-api/", log_path, ok=(200, 404))
    except BaseException:
        target.stop()
        raise
    return target


def make_root(parent: Path | None = None) -> Path:
    """A new working directory for the servers' data, in ``parent`` (default: the system's
    temporary directory, ``$TMPDIR`` or ``/tmp``)."""
    return Path(tempfile.mkdtemp(prefix="moorage-bench-", dir=parent))


def file_create_cost(directory: Path, files: int = 200) -> float:
    """CPU microseconds (user + system) to create and close one empty file in ``directory``,
    the mean over ``files`` files (removed afterwards). Both servers create several files per
    pushed blob, so a directory where this is slow slows both (seen: ext4 ``/tmp`` at 1.1 ms
    against 20–80 µs elsewhere on the same disk)."""
    probe = Path(tempfile.mkdtemp(prefix="create-cost-", dir=directory))
    try:
        started = time.process_time()
        for number in range(files):
            os.close(os.open(probe / str(number), os.O_CREAT | os.O_WRONLY, 0o600))
        return (time.process_time() - started) / files * 1e6
    finally:
        shutil.rmtree(probe, ignore_errors=True)
