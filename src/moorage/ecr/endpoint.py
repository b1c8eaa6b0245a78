"""``POST /``: the ECR edge. authenticate → parse → validate → dispatch → serialize.

This is the one ``try/except`` of the ECR surface: handlers raise :class:`EcrError` or domain
errors, and this module answers them as ``{"__type", "message"}`` with the status of
:mod:`moorage.ecr.exceptions` (ecr-api.md §1). Unexpected exceptions are logged with the request
id and answered ``ServerException`` (500) without a traceback.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import structlog
from moorage.threads import run_in_thread
from starlette.requests import Request
from starlette.responses import Response

from moorage.auth.sigv4 import SignedRequest, verify_sigv4
from moorage.ecr.exceptions import EcrError, from_domain
from moorage.ecr.model import TARGET_PREFIX, operation_model
from moorage.ecr.operations import OPERATIONS, OperationContext
from moorage.ecr.validation import validate_input
from moorage import metrics
from moorage.errors import MoorageError
from moorage.services import Services

CONTENT_TYPE = "application/x-amz-json-1.1"
# UploadLayerPart carries up to 20 MiB as base64 (about 27 MiB) plus JSON framing.
MAX_BODY_BYTES = 32 * 1024 * 1024

log = structlog.get_logger("moorage.ecr")


class EcrEndpoint:
    """The ASGI endpoint serving every ECR operation."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def __call__(self, request: Request) -> Response:
        request_id = str(uuid.uuid4())
        operation_name = None
        try:
            operation_name = _operation_name(request)
            body = await _read_body(request)
            result = await run_in_thread(self._handle, request, operation_name, body)
            payload = json.dumps(_drop_none(result), separators=(",", ":"))
            metrics.count_request("ecr", 200)
            return Response(payload, 200, headers=_headers(request_id), media_type=CONTENT_TYPE)
        except EcrError as error:
            return self._error(error, request_id, operation_name)
        except MoorageError as error:
            return self._error(from_domain(error), request_id, operation_name)
        except Exception:
            log.exception("ecr.unexpected_error", request_id=request_id, operation=operation_name)
            return self._error(
                EcrError("ServerException", "An internal error occurred; see the server log "
                         f"for request {request_id}"),
                request_id, operation_name,
            )

    def _handle(self, request: Request, operation_name: str, body: bytes) -> dict[str, Any]:
        access_key_id = verify_sigv4(
            SignedRequest(
                method=request.method,
                path=request.scope.get("raw_path", b"/").decode("latin-1").split("?", 1)[0],
                query_string=request.scope.get("query_string", b"").decode("latin-1"),
                headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.scope["headers"]],
                body=body,
            ),
            lookup_secret=self.services.keys.secret_of,
            region=self.services.settings.region,
            # Signature freshness is a transport check against real time, never the test clock:
            # a frozen test clock must not lock AWS clients out.
            now=time.time(),
        )
        principal = self.services.keys.principal(access_key_id)
        if principal is None:  # deleted between the two look-ups
            raise EcrError("UnrecognizedClientException",
                           "The security token included in the request is invalid.")
        operation = operation_model(operation_name)
        assert operation is not None
        handler = OPERATIONS.get(operation_name)
        try:
            params = json.loads(body) if body.strip() else {}
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise EcrError("SerializationException", "The request body is not valid JSON") from None
        params = validate_input(operation, params)
        if handler is None:
            raise EcrError(
                "NotImplementedException",
                f"Moorage does not implement the ECR operation '{operation_name}' yet",
            )
        settings = self.services.settings
        request_host, request_scheme = request.headers.get("host", "localhost"), request.url.scheme
        if settings.registry_host:
            registry_host, scheme = settings.registry_host, "https"
        else:
            registry_host, scheme = request_host, request_scheme
        context = OperationContext(
            self.services, principal, registry_host, scheme, request_host, request_scheme)
        log.debug("ecr.request", operation=operation_name, principal=principal.arn)
        return handler(context, params)

    def _error(self, error: EcrError, request_id: str, operation: str | None) -> Response:
        log.info("ecr.error", request_id=request_id, operation=operation, code=error.code,
                 message=error.message)
        status = 501 if error.code == "NotImplementedException" else error.status
        headers = _headers(request_id)
        headers["x-amzn-ErrorType"] = error.code
        metrics.count_request("ecr", status)
        return Response(json.dumps(error.body()), status, headers=headers, media_type=CONTENT_TYPE)


def _operation_name(request: Request) -> str:
    target = request.headers.get("x-amz-target")
    if not target:
        raise EcrError("UnknownOperationException", "Missing X-Amz-Target header")
    if not target.startswith(TARGET_PREFIX) or operation_model(target[len(TARGET_PREFIX):]) is None:
        raise EcrError("UnknownOperationException", f"Unknown operation {target[:200]}")
    return target[len(TARGET_PREFIX):]


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise EcrError("SerializationException", f"Request body larger than {MAX_BODY_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise EcrError("SerializationException", f"Request body larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _headers(request_id: str) -> dict[str, str]:
    return {"x-amzn-RequestId": request_id}


def _drop_none(value: Any) -> Any:
    """``value`` without the None members of its dicts, at any depth (absent in the output)."""
    if isinstance(value, dict):
        return {k: (_drop_none(v) if isinstance(v, (dict, list)) else v)
                for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) if isinstance(v, (dict, list)) else v for v in value]
    return value
