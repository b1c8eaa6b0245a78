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

from moorage import metrics
from moorage.asgi import header
from moorage.auth.sigv4 import SignedRequest, verify_sigv4
from moorage.ecr.exceptions import EcrError, from_domain
from moorage.ecr.model import TARGET_PREFIX, operation_model
from moorage.ecr.operations import (
    INLINE_WRITE_OPERATIONS, OPERATIONS, READ_ONLY_OPERATIONS, JsonText, OperationContext,
)
from moorage.ecr.validation import validate_input
from moorage.errors import MoorageError
from moorage.services import Services
from moorage.threads import run_write

CONTENT_TYPE = "application/x-amz-json-1.1"
# UploadLayerPart carries up to 20 MiB as base64 (about 27 MiB) plus JSON framing.
MAX_BODY_BYTES = 32 * 1024 * 1024

log = structlog.get_logger("moorage.ecr")


class EcrEndpoint:
    """The ASGI app serving every ECR operation (``POST /``), a plain ASGI callable: the
    request's headers are read from the scope and the answer is sent as two ASGI messages, with
    no Starlette request or response objects on the way (they cost more than a small
    operation's own work).

    Read-only operations (:data:`READ_ONLY_OPERATIONS`) run on the event loop on SQLite, like
    the ``/v2/`` reads (a WAL read never waits for a writer). On a SQLite file, the operations
    of :data:`INLINE_WRITE_OPERATIONS` run there too while the writers' turn is free, and in a
    worker thread when it is not. Everything else, and everything on PostgreSQL, runs in a
    worker thread.
    """

    def __init__(self, services: Services) -> None:
        self.services = services
        self.inline_reads = services.context.database.is_sqlite
        self.inline_writes = services.context.database.sqlite_path is not None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Serve one ``POST /``; every outcome, errors included, is an ECR JSON answer."""
        request_id = str(uuid.uuid4())
        operation_name = None
        try:
            headers = scope["headers"]
            operation_name = _operation_name(headers)
            body = await _read_body(headers, receive)
            if self.inline_reads and operation_name in READ_ONLY_OPERATIONS:
                result = self._handle(scope, operation_name, body)
            else:  # WriterBusy inline (turn taken, or too large): again in a worker thread
                inline = self.inline_writes and operation_name in INLINE_WRITE_OPERATIONS
                result = await run_write(self._handle, scope, operation_name, body,
                                         inline={"on_event_loop": True} if inline else None)
            if isinstance(result, JsonText):
                payload = result.encode()
            else:
                payload = json.dumps(_drop_none(result), separators=(",", ":")).encode()
            metrics.count_request("ecr", 200)
            await _send(send, 200, request_id, payload)
        except _Disconnected:
            return
        except EcrError as error:
            await self._error(send, error, request_id, operation_name)
        except MoorageError as error:
            await self._error(send, from_domain(error), request_id, operation_name)
        except Exception:
            log.exception("ecr.unexpected_error", request_id=request_id, operation=operation_name)
            await self._error(
                send,
                EcrError("ServerException", "An internal error occurred; see the server log "
                         f"for request {request_id}"),
                request_id, operation_name,
            )

    def _handle(self, scope: dict[str, Any], operation_name: str, body: bytes,
                on_event_loop: bool = False) -> dict[str, Any] | JsonText:
        access_key_id = verify_sigv4(
            SignedRequest(
                method=scope["method"],
                path=(scope.get("raw_path") or b"/").decode("latin-1").split("?", 1)[0],
                query_string=scope.get("query_string", b"").decode("latin-1"),
                headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]],
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
        request_host = header(scope["headers"], b"host") or "localhost"
        request_scheme = scope.get("scheme", "http")
        if settings.registry_host:
            registry_host, scheme = settings.registry_host, "https"
        else:
            registry_host, scheme = request_host, request_scheme
        context = OperationContext(self.services, principal, registry_host, scheme, request_host,
                                   request_scheme, on_event_loop)
        log.debug("ecr.request", operation=operation_name, principal=principal.arn)
        return handler(context, params)

    async def _error(self, send: Any, error: EcrError, request_id: str,
                     operation: str | None) -> None:
        log.info("ecr.error", request_id=request_id, operation=operation, code=error.code,
                 message=error.message)
        status = 501 if error.code == "NotImplementedException" else error.status
        metrics.count_request("ecr", status)
        await _send(send, status, request_id, json.dumps(error.body()).encode(),
                    [(b"x-amzn-errortype", error.code.encode("latin-1"))])


class _Disconnected(Exception):
    """The client went away before its request body arrived: nothing to answer."""


async def _send(send: Any, status: int, request_id: str, payload: bytes,
                extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", CONTENT_TYPE.encode()),
               (b"content-length", str(len(payload)).encode()),
               (b"x-amzn-requestid", request_id.encode()), *(extra or ())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def _operation_name(headers: list[tuple[bytes, bytes]]) -> str:
    target = header(headers, b"x-amz-target")
    if not target:
        raise EcrError("UnknownOperationException", "Missing X-Amz-Target header")
    if not target.startswith(TARGET_PREFIX) or operation_model(target[len(TARGET_PREFIX):]) is None:
        raise EcrError("UnknownOperationException", f"Unknown operation {target[:200]}")
    return target[len(TARGET_PREFIX):]


async def _read_body(headers: list[tuple[bytes, bytes]], receive: Any) -> bytes:
    """The request body (at most ``MAX_BODY_BYTES``, else ``SerializationException``)."""
    declared = header(headers, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise EcrError("SerializationException", f"Request body larger than {MAX_BODY_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise EcrError("SerializationException", f"Request body larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _drop_none(value: Any) -> Any:
    """``value`` without the None members of its dicts, at any depth (absent in the output)."""
    if isinstance(value, dict):
        return {k: (_drop_none(v) if isinstance(v, (dict, list)) else v)
                for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) if isinstance(v, (dict, list)) else v for v in value]
    return value
