"""Run the ASGI app: uvicorn (default) or granian, with graceful shutdown on SIGTERM/SIGINT.

uvicorn was chosen by measurement (docs/performance.md, fifth pass): a request costs it half the
wall time it costs granian when one client waits for each answer (a small POST 140–150 µs
against 270–390 µs on the benchmark machine: granian hands every request between its Rust
threads and the Python thread), which decides the ECR API, a small-image push and a docker
push's streamed body. granian answers many connections at once with less CPU and can send a
file itself (``http.response.pathsend``); it stays available (``MOORAGE_ASGI_SERVER=granian``).
How uvicorn is set up is in :mod:`moorage.uvicorn_edge`. Both servers stop accepting
connections on SIGTERM and let in-flight requests finish before exiting.

Settings reach the worker processes through the environment (``MOORAGE_*``): the parent
process validates them, migrates the database and creates the administrator key once, then
each worker builds its own services with :func:`worker_app`.
"""

from __future__ import annotations

import os

import structlog
# Exit status of a worker process that cannot start: uvicorn's supervisor stops the server on
# it instead of starting the worker again and again.
from uvicorn.config import STARTUP_FAILURE as WORKER_STARTUP_FAILURE

from moorage.config import LOG_LEVELS, Settings
from moorage.observability import configure_logging
from moorage.services import StartupError, build_services

# Largest HTTP/1 read buffer of a connection (granian's default: 408 KiB). A request body reaches
# the application in pieces of up to this size: 2 MiB pieces halve the per-piece work of a large
# push (docs/performance.md: POST + PUT of 128 MiB 2.5× → 3.1× Distribution). The buffer grows
# to this size only while a connection streams a large body.
HTTP1_BUFFER_BYTES = 2 * 1024 * 1024
GRACEFUL_SHUTDOWN_SECONDS = 30
# glibc malloc: blocks of up to MMAP_THRESHOLD_BYTES come from the heap, each heap (arena) keeps
# up to TRIM_THRESHOLD_BYTES of freed memory at its top instead of returning it to the kernel at
# once, and a process has at most MAX_ARENAS of them (glibc's default: 8 per CPU, up to the
# number of threads), which bounds what is kept. Blob download pieces (2 MiB) and request body
# pieces are then reused memory; by default glibc maps and unmaps them, and the kernel
# zero-fills each fresh page (docs/performance.md: 8 readers 0.56 → 0.39 CPU-s/GB).
MMAP_THRESHOLD_BYTES = 16 * 1024 * 1024
TRIM_THRESHOLD_BYTES = 32 * 1024 * 1024
MAX_ARENAS = 4

log = structlog.get_logger("moorage")


def _export(settings: Settings) -> None:
    """Put the effective settings into ``MOORAGE_*`` variables for worker processes."""
    values = {
        "MOORAGE_DATA_DIR": str(settings.data_dir.resolve()),
        "MOORAGE_DATABASE_URL": settings.effective_database_url,
        "MOORAGE_HOST": settings.host,
        "MOORAGE_PORT": str(settings.port),
        "MOORAGE_WORKERS": str(settings.workers),
        "MOORAGE_ASGI_SERVER": settings.asgi_server,
    }
    os.environ.update(values)


def worker_app():  # type: ignore[no-untyped-def]
    """ASGI app factory for a worker process (uvicorn's or granian's): settings from the
    environment, no migrations; the process's allocator and server tuned first.

    Raises:
        SystemExit: status :data:`WORKER_STARTUP_FAILURE` when the storage cannot be opened.
    """
    from moorage.app import create_app

    settings = Settings.from_environment()
    configure_logging(settings.log_format, LOG_LEVELS[settings.log_level])
    prepare_worker_process(settings.asgi_server)
    try:
        services = build_services(settings, migrate=False)
    except StartupError as error:
        # The parent opened the same storage a moment ago; a worker that cannot is not worth
        # restarting: uvicorn's supervisor stops on this status instead of respawning it.
        log.error("worker cannot start", error=str(error))
        raise SystemExit(WORKER_STARTUP_FAILURE) from None
    return create_app(services)


def prepare_worker_process(asgi_server: str) -> None:
    """Tune this worker process before it serves: the C allocator (:func:`tune_allocator`)
    and, under uvicorn, the request body read-ahead
    (:func:`moorage.uvicorn_edge.buffer_request_bodies`)."""
    if not tune_allocator():
        log.info("allocator not tuned (no glibc mallopt)")
    if asgi_server == "uvicorn":
        from moorage.uvicorn_edge import buffer_request_bodies
        buffer_request_bodies()


def tune_allocator() -> bool:
    """Apply :data:`MMAP_THRESHOLD_BYTES`, :data:`TRIM_THRESHOLD_BYTES` and :data:`MAX_ARENAS`
    to this process's C allocator with ``mallopt(3)``.

    Returns:
        True when all three were applied; False where the C library has no ``mallopt`` (not
        glibc) or refused one.
    """
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold, m_arena_max = -1, -3, -8  # <malloc.h>
    applied = [mallopt(option, value) for option, value in (
        (m_trim_threshold, TRIM_THRESHOLD_BYTES), (m_mmap_threshold, MMAP_THRESHOLD_BYTES),
        (m_arena_max, MAX_ARENAS))]
    return all(applied)


def run(settings: Settings) -> None:
    """Build the services, make sure an administrator key exists, and serve until stopped.

    Raises:
        StartupError: the storage cannot be opened.
    """
    configure_logging(settings.log_format, LOG_LEVELS[settings.log_level])
    _check_port_free(settings.host, settings.port)
    services = build_services(settings)
    access_key_id, credentials_path = services.keys.ensure_admin(
        settings.data_dir, settings.admin_access_key_id, settings.admin_secret_access_key
    )
    if credentials_path is not None:
        log.info("admin key", access_key_id=access_key_id, credentials_file=str(credentials_path.resolve()),
                 hint=f"export AWS_SHARED_CREDENTIALS_FILE={credentials_path.resolve()}")
    else:
        log.info("admin key from MOORAGE_ADMIN_ACCESS_KEY_ID", access_key_id=access_key_id)
    if settings.test_clock:
        log.warning("test clock enabled: POST /_moorage/clock can change this server's time; "
                    "never enable MOORAGE_TEST_CLOCK in production")
    log.info("serving", host=settings.host, port=settings.port, data_dir=str(settings.data_dir.resolve()),
             database=services.context.database.engine.url.render_as_string(hide_password=True),
             account_id=settings.account_id, region=settings.region, server=settings.asgi_server,
             workers=settings.workers)
    services.close()
    if settings.asgi_server == "uvicorn":
        _run_uvicorn(settings)
    else:
        _run_granian(settings)


def _run_uvicorn(settings: Settings) -> None:
    from moorage.uvicorn_edge import serve

    _export(settings)
    serve("moorage.server:worker_app", settings.host, settings.port, settings.workers,
          GRACEFUL_SHUTDOWN_SECONDS)


def _check_port_free(host: str, port: int) -> None:
    """Refuse to start on a busy port with a one-line error, before any worker starts (granian
    binds with SO_REUSEPORT, so a second server would silently share the port with the first;
    uvicorn's workers would each fail with a traceback).

    Raises:
        StartupError: something listens on ``host:port`` already.
    """
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # SO_REUSEADDR: connections of a previous run in TIME_WAIT do not count as busy; a
        # listening socket still does.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise StartupError(f"cannot listen on {host}:{port}: {error.strerror}") from None


def _run_granian(settings: Settings) -> None:
    from granian.constants import Interfaces
    from granian.http import HTTP1Settings
    from granian.server import Server

    _export(settings)
    Server(
        "moorage.server:worker_app", factory=True, address=settings.host, port=settings.port,
        interface=Interfaces.ASGI, workers=settings.workers, log_enabled=False,
        workers_kill_timeout=GRACEFUL_SHUTDOWN_SECONDS, backpressure=256,
        http1_settings=HTTP1Settings(max_buffer_size=HTTP1_BUFFER_BYTES),
    ).serve()
