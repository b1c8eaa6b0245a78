"""The HTTP edge: one ASGI app, one port, both API surfaces (DESIGN.md §1).

``POST /`` is the ECR control plane, ``/v2/…`` the OCI Distribution API; ``/healthz`` and
``/readyz`` report readiness and ``/metrics`` exposes Prometheus metrics.

Requests for ``/v2`` and below go straight to :class:`DistributionApp` (a plain ASGI app with
its own route table and error handling), and ``POST /`` straight to :class:`EcrEndpoint` (which
answers every error itself), not through Starlette's router and middleware: they are the
requests a registry answers most, and that layering cost more than the rest of a manifest
``HEAD``. Everything else, and the lifespan, is served by the Starlette app.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from moorage.background import BackgroundRunner, PeriodicTask
from moorage.distribution.download import SignedLayerDownload
from moorage.distribution.routes import DistributionApp
from moorage.ecr.endpoint import EcrEndpoint
from moorage.ecr.operations import check_dispatch_table
from moorage.services import Services
from moorage.test_clock import TestClockEndpoint


def periodic_tasks(services: Services) -> list[PeriodicTask]:
    """The server's periodic tasks: lifecycle policies and garbage collection."""
    from moorage.lifecycle.executor import LifecycleExecutor
    from moorage.registry.housekeeping import Housekeeping

    settings = services.settings
    return [
        PeriodicTask("lifecycle", settings.lifecycle_interval, lambda: LifecycleExecutor(services).run()),
        PeriodicTask("gc", settings.gc_interval, lambda: Housekeeping(services.context).collect(
            grace_seconds=settings.gc_grace)),
    ]


class MoorageApp:
    """The ASGI application: ``/v2`` and below to the distribution app, ``POST /`` to the ECR
    endpoint, the rest to Starlette."""

    def __init__(self, distribution: DistributionApp, ecr: EcrEndpoint, starlette: Starlette) -> None:
        self.distribution = distribution
        self.ecr = ecr
        self.starlette = starlette

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Dispatch one ASGI event."""
        if scope["type"] == "http":
            path = scope["path"]
            if path.startswith("/v2") and (len(path) == 3 or path[3] == "/"):
                await self.distribution(scope, receive, send)
                return
            if path == "/" and scope["method"] == "POST":
                # The endpoint answers every error itself (ECR's JSON error shape).
                await self.ecr(scope, receive, send)
                return
        await self.starlette(scope, receive, send)


def create_app(services: Services, *, background: bool = True) -> MoorageApp:
    """The ASGI application serving ``services``; with ``background``, the periodic tasks run
    while it serves."""
    check_dispatch_table()
    distribution = DistributionApp(services)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        try:
            # One statement, no BEGIN: on SQLite the engine's own transactions start with
            # BEGIN IMMEDIATE, which would take the write lock outside the writers' turn.
            with services.context.database.read_connection() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as error:  # report, never raise: this is a probe
            return JSONResponse({"status": "unavailable", "reason": str(error)[:200]}, 503)
        return JSONResponse({"status": "ok"})

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    ecr = EcrEndpoint(services)
    routes = [
        Route("/", ecr, methods=["POST"]),  # reached only by other methods: 405
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/_moorage/layers/{path:path}", SignedLayerDownload(services).__call__,
              methods=["GET", "HEAD"]),
        Route("/_moorage/clock", TestClockEndpoint(
            services.context.clock, services.settings.test_clock).__call__, methods=["GET", "POST"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        runner = BackgroundRunner(services.context.database, time.time)
        if background:
            runner.start(periodic_tasks(services))
        yield
        runner.stop()

    return MoorageApp(distribution, ecr, Starlette(routes=routes, lifespan=lifespan))
