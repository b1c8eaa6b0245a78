"""The HTTP edge: one ASGI app, one port, both API surfaces (DESIGN.md §1).

``POST /`` is the ECR control plane, ``/v2/…`` the OCI Distribution API; ``/healthz`` and
``/readyz`` report readiness and ``/metrics`` exposes Prometheus metrics.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from moorage.distribution.download import SignedLayerDownload
from moorage.distribution.routes import DistributionApp
from moorage.ecr.endpoint import EcrEndpoint
from moorage.ecr.operations import check_dispatch_table
from moorage.services import Services

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]


def create_app(services: Services) -> Starlette:
    """The ASGI application serving ``services``."""
    check_dispatch_table()
    distribution = DistributionApp(services)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        try:
            with services.context.database.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as error:  # report, never raise: this is a probe
            return JSONResponse({"status": "unavailable", "reason": str(error)[:200]}, 503)
        return JSONResponse({"status": "ok"})

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    routes = [
        Route("/", EcrEndpoint(services).__call__, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/v2", distribution.__call__, methods=ALL_METHODS),
        Route("/v2/{path:path}", distribution.__call__, methods=ALL_METHODS),
        Route("/_moorage/layers/{path:path}", SignedLayerDownload(services).__call__,
              methods=["GET", "HEAD"]),
    ]
    return Starlette(routes=routes)
