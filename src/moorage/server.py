"""Run the ASGI app: granian (default) or uvicorn, with graceful shutdown on SIGTERM/SIGINT.

granian was chosen by measurement (docs/performance.md): it parses HTTP in Rust and can send a
file itself (the ``http.response.pathsend`` extension, which blob downloads use when several run
at once: see :class:`moorage.distribution.responses.BlobDownload`). Both servers stop accepting
connections on SIGTERM and let in-flight requests finish before exiting.

Settings reach granian's worker processes through the environment (``MOORAGE_*``): the parent
process validates them, migrates the database and creates the administrator key once, then
each worker builds its own services with :func:`worker_app`.
"""

from __future__ import annotations

import os
import signal
import sys

import structlog

from moorage.config import LOG_LEVELS, Settings
from moorage.observability import configure_logging
from moorage.services import build_services

# Largest HTTP/1 read buffer of a connection (granian's default: 408 KiB). A request body reaches
# the application in pieces of up to this size: 2 MiB pieces halve the per-piece work of a large
# push (docs/performance.md: POST + PUT of 128 MiB 2.5× → 3.1× Distribution). The buffer grows
# to this size only while a connection streams a large body.
HTTP1_BUFFER_BYTES = 2 * 1024 * 1024
GRACEFUL_SHUTDOWN_SECONDS = 30

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
    """ASGI app factory for a granian worker: settings from the environment, no migrations."""
    from moorage.app import create_app

    settings = Settings.from_environment()
    configure_logging(settings.log_format, LOG_LEVELS[settings.log_level])
    return create_app(build_services(settings, migrate=False))


def run(settings: Settings) -> None:
    """Build the services, make sure an administrator key exists, and serve until stopped.

    Raises:
        StartupError: the storage cannot be opened.
    """
    configure_logging(settings.log_format, LOG_LEVELS[settings.log_level])
    if settings.asgi_server == "granian":
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
    if settings.asgi_server == "uvicorn":
        _run_uvicorn(settings, services)
    else:
        services.close()
        _run_granian(settings)


def _run_uvicorn(settings: Settings, services) -> None:  # type: ignore[no-untyped-def]
    import uvicorn

    from moorage.app import create_app

    # uvicorn finishes in-flight requests, then re-raises the signal it caught: exit cleanly.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        uvicorn.run(create_app(services), host=settings.host, port=settings.port, log_level="warning",
                    timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS, access_log=False)
    finally:
        services.close()


def _check_port_free(host: str, port: int) -> None:
    """granian binds with SO_REUSEPORT, so a second server on a busy port would silently share
    it with the first; refuse to start instead.

    Raises:
        StartupError: something listens on ``host:port`` already.
    """
    import socket

    from moorage.services import StartupError

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
