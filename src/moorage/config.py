"""Settings: one typed object, built once at start from flags > ``MOORAGE_*`` environment.

| setting | flag | environment | default |
|---|---|---|---|
| host | ``--host`` | ``MOORAGE_HOST`` | ``127.0.0.1`` |
| port | ``--port`` | ``MOORAGE_PORT`` | ``5000`` |
| data_dir | ``--data-dir`` | ``MOORAGE_DATA_DIR`` | ``./moorage-data`` |
| database_url | ``--database-url`` | ``MOORAGE_DATABASE_URL`` | ``sqlite:///<data_dir>/moorage.db`` |
| account_id | | ``MOORAGE_ACCOUNT_ID`` | ``000000000000`` |
| region | | ``MOORAGE_REGION`` | ``us-east-1`` |
| registry_host | | ``MOORAGE_REGISTRY_HOST`` | the request's Host |
| admin key | | ``MOORAGE_ADMIN_ACCESS_KEY_ID`` + ``MOORAGE_ADMIN_SECRET_ACCESS_KEY`` | generated |
| token_secret | | ``MOORAGE_TOKEN_SECRET`` | ``<data_dir>/token-secret`` (generated) |
| log_format | | ``MOORAGE_LOG_FORMAT`` (``console``/``json``) | ``console`` |
| log_level | | ``MOORAGE_LOG_LEVEL`` (``debug``/``info``/``warning``/``error``) | ``info`` |
| lifecycle_interval | | ``MOORAGE_LIFECYCLE_INTERVAL`` (seconds; 0 disables) | ``3600`` |
| gc_interval | | ``MOORAGE_GC_INTERVAL`` (seconds; 0 disables) | ``3600`` |
| gc_grace | | ``MOORAGE_GC_GRACE`` (seconds) | ``86400`` |
| test_clock | | ``MOORAGE_TEST_CLOCK`` (``1`` enables ``POST /_moorage/clock``) | off |
| workers | ``--workers`` | ``MOORAGE_WORKERS`` | twice the number of usable CPUs (:func:`default_workers`) |
| asgi_server | | ``MOORAGE_ASGI_SERVER`` (``uvicorn``/``granian``) | ``uvicorn`` |
| max_repositories | | ``MOORAGE_MAX_REPOSITORIES`` | ``100000`` (ECR's default quota) |
| max_images_per_repository | | ``MOORAGE_MAX_IMAGES_PER_REPOSITORY`` | ``20000`` |
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

_ACCOUNT_ID = re.compile(r"[0-9]{12}")
_REGION = re.compile(r"[0-9a-z-]{2,25}")
LOG_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}  # logging module levels


class SettingsError(ValueError):
    """A setting has an invalid value; the message names the setting."""


@dataclass(frozen=True)
class Settings:
    """Validated configuration of one Moorage process.

    Raises:
        SettingsError: on construction, when a value is invalid.
    """

    data_dir: Path = Path("moorage-data")
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 5000
    account_id: str = "000000000000"
    region: str = "us-east-1"
    registry_host: str | None = None
    admin_access_key_id: str | None = None
    admin_secret_access_key: str | None = None
    token_secret: str | None = None
    log_format: str = "console"
    log_level: str = "info"
    lifecycle_interval: float = 3600.0
    gc_interval: float = 3600.0
    gc_grace: float = 86400.0
    test_clock: bool = False
    workers: int = 1
    asgi_server: str = "uvicorn"
    max_repositories: int = 100_000
    max_images_per_repository: int = 20_000

    def __post_init__(self) -> None:
        if not _ACCOUNT_ID.fullmatch(self.account_id):
            raise SettingsError(f"MOORAGE_ACCOUNT_ID must be 12 digits, not {self.account_id!r}")
        if not _REGION.fullmatch(self.region):
            raise SettingsError(f"MOORAGE_REGION is not a region name: {self.region!r}")
        if not 0 <= self.port <= 65535:
            raise SettingsError(f"port out of range: {self.port}")
        if bool(self.admin_access_key_id) != bool(self.admin_secret_access_key):
            raise SettingsError(
                "set both MOORAGE_ADMIN_ACCESS_KEY_ID and MOORAGE_ADMIN_SECRET_ACCESS_KEY, or neither"
            )
        if self.log_format not in ("console", "json"):
            raise SettingsError("MOORAGE_LOG_FORMAT must be 'console' or 'json'")
        if self.log_level not in LOG_LEVELS:
            raise SettingsError(f"MOORAGE_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")
        if self.asgi_server not in ("granian", "uvicorn"):
            raise SettingsError("MOORAGE_ASGI_SERVER must be 'uvicorn' or 'granian'")
        if not 1 <= self.workers <= 64:
            raise SettingsError(f"workers must be between 1 and 64, not {self.workers}")
        if self.test_clock and self.workers != 1:
            # The frozen instant lives in one process's memory: one worker sees every request.
            object.__setattr__(self, "workers", 1)
        for name in ("lifecycle_interval", "gc_interval", "gc_grace"):
            if getattr(self, name) < 0:
                raise SettingsError(f"MOORAGE_{name.upper()} must not be negative")

    @property
    def effective_database_url(self) -> str:
        """The SQLAlchemy URL: ``database_url`` or SQLite in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir.resolve() / 'moorage.db'}"

    @classmethod
    def from_environment(cls, **overrides: object) -> Settings:
        """Build settings from ``MOORAGE_*`` variables, then apply non-None ``overrides`` (flags).

        Raises:
            SettingsError: a value is invalid.
        """
        env = os.environ
        values: dict[str, object] = {
            "data_dir": Path(env.get("MOORAGE_DATA_DIR", "moorage-data")),
            "database_url": env.get("MOORAGE_DATABASE_URL") or None,
            "host": env.get("MOORAGE_HOST", "127.0.0.1"),
            "port": _int_env("MOORAGE_PORT", 5000),
            "account_id": env.get("MOORAGE_ACCOUNT_ID", "000000000000"),
            "region": env.get("MOORAGE_REGION", "us-east-1"),
            "registry_host": env.get("MOORAGE_REGISTRY_HOST") or None,
            "admin_access_key_id": env.get("MOORAGE_ADMIN_ACCESS_KEY_ID") or None,
            "admin_secret_access_key": env.get("MOORAGE_ADMIN_SECRET_ACCESS_KEY") or None,
            "token_secret": env.get("MOORAGE_TOKEN_SECRET") or None,
            "log_format": env.get("MOORAGE_LOG_FORMAT", "console"),
            "log_level": env.get("MOORAGE_LOG_LEVEL", "info").lower(),
            "lifecycle_interval": _number_env("MOORAGE_LIFECYCLE_INTERVAL", 3600.0),
            "gc_interval": _number_env("MOORAGE_GC_INTERVAL", 3600.0),
            "gc_grace": _number_env("MOORAGE_GC_GRACE", 86400.0),
            "test_clock": env.get("MOORAGE_TEST_CLOCK", "") in ("1", "true", "yes"),
            "workers": _int_env("MOORAGE_WORKERS", default_workers()),
            "asgi_server": env.get("MOORAGE_ASGI_SERVER", "uvicorn"),
            "max_repositories": _int_env("MOORAGE_MAX_REPOSITORIES", 100_000),
            "max_images_per_repository": _int_env("MOORAGE_MAX_IMAGES_PER_REPOSITORY", 20_000),
        }
        for key, value in overrides.items():
            if value is not None:
                values[key] = Path(value) if key == "data_dir" else value  # type: ignore[arg-type]
        return cls(**values)  # type: ignore[arg-type]


def default_workers(cpus: int | None = None) -> int:
    """Worker processes when none are configured: two per CPU this process may run on (its
    CPU affinity where the system has one, as under ``taskset`` or a container's cpuset;
    otherwise ``os.cpu_count()``), at most 64 (the setting's limit). A container's CPU quota
    (``cpu.max``) is not read: give such a server ``--workers``.

    A worker spends part of each push waiting (a blob's fsyncs, the SQLite writers' turn), and a
    connection stays with the worker it was handed to, so with one worker per CPU concurrent
    pushes leave CPU idle. Measured on 2 CPUs (docs/performance.md, "Small-image push"): 8
    connections pushing small images kept the workers 1.4 cores busy with 2 workers (181–191
    images/s) and 1.6 with 4 (216–224 images/s); hot manifest and blob requests on 16
    connections cost 0.09–0.11 CPU-ms each with 4 workers against 0.07–0.09 with 2 (still 8×
    Distribution's rate). Each worker holds about 85 MiB of resident memory when idle.
    """
    if cpus is None:
        try:
            cpus = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):  # no affinity on this system
            cpus = os.cpu_count() or 1
    return max(1, min(64, 2 * cpus))


def _int_env(name: str, default: int) -> int:
    return int(_number_env(name, default, int))


def _number_env(name: str, default: float, cast: type = float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return cast(raw)
    except ValueError:
        kind = "an integer" if cast is int else "a number of seconds"
        raise SettingsError(f"{name} must be {kind}, not {raw!r}") from None
