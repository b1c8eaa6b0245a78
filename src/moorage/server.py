"""Run the ASGI app under uvicorn, with graceful shutdown on SIGTERM/SIGINT.

uvicorn stops accepting connections on SIGTERM and lets in-flight requests finish (up to
``GRACEFUL_SHUTDOWN_SECONDS``) before exiting.
"""

from __future__ import annotations

import signal
import sys

import structlog
import uvicorn

from moorage.app import create_app
from moorage.config import Settings
from moorage.observability import configure_logging
from moorage.services import build_services

GRACEFUL_SHUTDOWN_SECONDS = 30

log = structlog.get_logger("moorage")


def run(settings: Settings) -> None:
    """Build the services, make sure an administrator key exists, and serve until stopped."""
    configure_logging(settings.log_format)
    services = build_services(settings)
    access_key_id, credentials_path = services.keys.ensure_admin(
        settings.data_dir, settings.admin_access_key_id, settings.admin_secret_access_key
    )
    if credentials_path is not None:
        log.info("admin key", access_key_id=access_key_id, credentials_file=str(credentials_path.resolve()),
                 hint=f"export AWS_SHARED_CREDENTIALS_FILE={credentials_path.resolve()}")
    else:
        log.info("admin key from MOORAGE_ADMIN_ACCESS_KEY_ID", access_key_id=access_key_id)
    log.info("serving", host=settings.host, port=settings.port, data_dir=str(settings.data_dir.resolve()),
             database=services.context.database.engine.url.render_as_string(hide_password=True),
             account_id=settings.account_id, region=settings.region)
    if settings.test_clock:
        log.warning("test clock enabled: POST /_moorage/clock can change this server's time; "
                    "never enable MOORAGE_TEST_CLOCK in production")
    app = create_app(services)
    # uvicorn finishes in-flight requests, then re-raises the signal it caught: exit cleanly.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        uvicorn.run(
            app, host=settings.host, port=settings.port, log_level="warning",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS, access_log=False,
        )
    finally:
        services.close()
