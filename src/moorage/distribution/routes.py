"""The ``/v2/`` route table and handlers (OCI distribution-spec v1.1, "Endpoints").

Routes are data: a path pattern (the repository name may contain ``/``) and a method → handler
map, matched in order. Handlers parse the HTTP request, call one domain service, and shape the
response; every error is served once by :class:`DistributionApp` through
:mod:`moorage.distribution.errors`.

:class:`DistributionApp` is a plain ASGI app (no Starlette routing or middleware in front of it):
the pull path — ``GET``/``HEAD`` of manifests, ``HEAD`` of blobs, ``tags/list`` — reads headers
straight from the ASGI scope, answers with a :class:`~moorage.distribution.responses.Reply` and
reads the database with one statement (:mod:`moorage.registry.pulls`). Handlers that need more of
the request (bodies, query parameters) use ``call.request``, a Starlette ``Request`` built on
first use.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Future
from typing import Any
from urllib.parse import quote, urlencode

import structlog
from moorage.threads import run_in_thread, run_write, start_in_thread
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, Response

from moorage import errors, metrics
from moorage.asgi import header
from moorage.distribution.auth import Authenticator
from moorage.distribution.errors import OciError, error_response, from_domain
from moorage.distribution.responses import API_VERSION, BlobDownload, Reply, blob_headers
from moorage.images.digests import is_digest, parse_digest
from moorage.images.manifests import MAX_MANIFEST_BYTES
from moorage.images.media_types import OCI_INDEX
from moorage.images.references import parse_repository_name, parse_tag
from moorage.registry.images import StoredManifest
from moorage.registry.pulls import PullReads
from moorage.registry.uploads import MAX_WRITE_CHUNKS
from moorage.services import Services

log = structlog.get_logger("moorage.distribution")

# A body is hashed and written in pieces of about this many bytes, each while the next arrives.
# Smaller pieces overlap more at a request's start and end: 8 MiB PATCHes, 4–17 % faster than
# with 1 MiB pieces (docs/performance.md, "Large pushes").
FLUSH_BYTES = 256 * 1024
# A completing request's body up to this size (a config, a small layer) is read into memory and
# handed over with the completion.
SMALL_BODY_BYTES = 1024 * 1024
MAX_TAGS_PAGE = 10_000
_DECIMAL = re.compile(r"[0-9]{1,18}")
_ZERO_QUALITY = re.compile(r"0(?:\.0{0,3})?")  # RFC 9110 §12.4.2 qvalue of zero
_BYTE_RANGES = re.compile(r"bytes=\s*(?:[0-9]+-[0-9]*|-[0-9]+)(?:\s*,\s*(?:[0-9]+-[0-9]*|-[0-9]+))*\s*")
_CONTENT_RANGE = re.compile(r"(?:bytes[ =])?(\d+)-(\d+)(?:/(?:\d+|\*))?")

Handler = Callable[["Call"], Awaitable["Reply | Response"]]
_CACHE_LIMIT = 1024


class Call:
    """One ``/v2/`` request being handled: the ASGI scope, the services and the path values."""

    __slots__ = ("scope", "receive", "services", "pulls", "method", "name", "values", "_request")

    def __init__(self, scope: dict[str, Any], receive: Any, services: Services, pulls: PullReads) -> None:
        self.scope = scope
        self.receive = receive
        self.services = services
        self.pulls = pulls
        self.method: str = scope["method"]
        self.name = ""
        self.values: dict[str, str] = {}
        self._request: Request | None = None

    @property
    def request(self) -> Request:
        """The Starlette request (built on first use)."""
        if self._request is None:
            self._request = Request(self.scope, self.receive)
        return self._request

    def header(self, name: bytes) -> str | None:
        """The first value of header ``name`` (lower case), or None."""
        return header(self.scope["headers"], name)

    def header_values(self, name: bytes) -> tuple[str, ...]:
        """Every value of header ``name`` (lower case), in order."""
        return tuple(value.decode("latin-1") for key, value in self.scope["headers"] if key == name)

    def upload_headers(self, upload_id: str, size: int) -> dict[str, str]:
        """Location, Range and Docker-Upload-UUID of an upload session holding ``size`` bytes."""
        return {
            "Location": f"/v2/{self.name}/blobs/uploads/{upload_id}",
            "Range": f"0-{max(size - 1, 0)}",
            "Docker-Upload-UUID": upload_id,
        }


async def read(call: Call, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a read-only domain call: inline on SQLite (a WAL read never waits for a writer and
    takes microseconds, less than a hop to a worker thread), in a thread otherwise."""
    if call.services.context.database.is_sqlite:
        return function(*args, **kwargs)
    return await run_in_thread(function, *args, **kwargs)


async def write(call: Call, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a short write domain call that takes ``wait_for_writer``: on a SQLite file inline
    while the writers' turn is free (:func:`moorage.threads.run_write`; the ECR API runs PutImage
    and BatchDeleteImage the same way), in a worker thread otherwise and on PostgreSQL."""
    inline = call.services.context.database.sqlite_path is not None
    return await run_write(function, *args, inline={"wait_for_writer": False} if inline else None,
                           **kwargs)


# -- base ----------------------------------------------------------------------------------


async def api_version_check(call: Call) -> Reply:
    """``GET /v2/``: 200 ``{}`` once authenticated."""
    return Reply(200, body=b"{}", media_type="application/json")


# -- manifests -------------------------------------------------------------------------------


_accepted: dict[tuple[tuple[str, ...], str], bool] = {}

# Largest manifest stored on the event loop (:func:`write`); most are 0.5–5 KB. Storing one
# takes about 0.2 ms with 2 layers, 0.8 ms with 50 (8 KB), 6.6 ms with 480 (74 KB).
INLINE_MANIFEST_BYTES = 16 * 1024


def _accepts(accept: tuple[str, ...], media_type: str) -> bool:
    """Whether ``Accept`` header values ``accept`` admit ``media_type`` (RFC 9110 §12.5.1: the
    most specific matching range decides, and ``q=0`` means "not acceptable"; no ranges at all
    admit anything). Answers are kept: a client sends the same few headers over and over."""
    if not accept:
        return True
    key = (accept, media_type)
    found = _accepted.get(key)
    if found is None:
        offered: set[str] = set()
        refused: set[str] = set()
        for value in accept:
            for part in value.split(","):
                media_range, *parameters = part.split(";")
                media_range = media_range.strip().lower()
                if media_range:
                    (refused if any(_is_zero_quality(p) for p in parameters) else offered).add(
                        media_range)
        found = not offered and not refused
        for candidate in (media_type, media_type.split("/", 1)[0] + "/*", "*/*"):
            if candidate in refused or candidate in offered:
                found = candidate in offered
                break
        if sum(map(len, accept)) <= 512:  # the usual headers, not an odd client's
            if len(_accepted) >= _CACHE_LIMIT:
                _accepted.clear()
            _accepted[key] = found
    return found


def _is_zero_quality(parameter: str) -> bool:
    """``q=0`` (also ``q=0.0``, ``Q = 0.000``): the range is refused."""
    name, _, value = parameter.partition("=")
    return name.strip().lower() == "q" and _ZERO_QUALITY.fullmatch(value.strip()) is not None


async def get_manifest(call: Call) -> Reply:
    """``GET``/``HEAD /v2/<name>/manifests/<reference>`` by tag or digest.

    A client whose ``Accept`` excludes the stored media type gets ``MANIFEST_UNKNOWN`` (404):
    Moorage never converts manifests (ecr-api.md §9.4).
    """
    head = call.method == "HEAD"
    reference = call.values["reference"]
    by_digest = is_digest(reference)
    if by_digest:
        parse_digest(reference)
    else:
        parse_tag(reference)
    image_id, digest, media_type, last_pulled_at, content = await read(
        call, call.pulls.manifest, call.name, reference, by_digest=by_digest, with_content=not head)
    if not head:
        images = call.services.images
        stored = StoredManifest(digest, media_type, b"", image_id, last_pulled_at)
        if images.pull_is_stale(stored):
            await run_in_thread(images.record_pull, stored)
    if not _accepts(call.header_values(b"accept"), media_type):
        raise OciError(
            "MANIFEST_UNKNOWN",
            f"the manifest is stored as {media_type}, which the request's Accept header "
            "does not list",
            404,
        )
    headers = [("docker-content-digest", digest), ("etag", f'"{digest}"')]
    if head:
        return Reply(200, headers, media_type=media_type, content_length=content)
    return Reply(200, headers, content, media_type=media_type)


async def put_manifest(call: Call) -> Reply:
    """``PUT /v2/<name>/manifests/<reference>``: 201 with Location and Docker-Content-Digest
    (and ``OCI-Subject`` when the manifest has a subject)."""
    reference = call.values["reference"]
    content = await _read_limited(call.request, MAX_MANIFEST_BYTES)
    by_digest = ":" in reference
    put = (call.services.images.put, call.name, content, call.request.headers.get("content-type"))
    options = {"tag": None if by_digest else reference,
               "expected_digest": reference if by_digest else None}
    if len(content) <= INLINE_MANIFEST_BYTES:
        manifest = await write(call, *put, **options)
    else:  # parsing a large manifest would hold the event loop
        manifest = await run_in_thread(*put, **options)
    headers = {
        "Location": f"/v2/{call.name}/manifests/{manifest.digest}",
        "Docker-Content-Digest": manifest.digest,
    }
    if manifest.subject is not None:
        headers["OCI-Subject"] = manifest.subject.digest
    log.info("manifest.put", repository=call.name, reference=reference, digest=manifest.digest)
    return Reply(201, [(name.lower(), value) for name, value in headers.items()])


async def delete_manifest(call: Call) -> Reply:
    """``DELETE /v2/<name>/manifests/<reference>``: 202. By digest, the image and its tags; by
    tag, the tag (and the image when it was its last tag, as ECR's BatchDeleteImage)."""
    await run_in_thread(call.services.images.delete, call.name, call.values["reference"])
    log.info("manifest.delete", repository=call.name, reference=call.values["reference"])
    return Reply(202)


# -- blobs -----------------------------------------------------------------------------------


async def get_blob(call: Call) -> Reply | Response:
    """``GET``/``HEAD /v2/<name>/blobs/<digest>``, with ``Range`` support (206/416)."""
    digest = parse_digest(call.values["digest"])
    size = await read(call, call.pulls.blob_size, call.name, digest)
    if call.method == "HEAD":
        return Reply(200, blob_headers(digest), media_type="application/octet-stream",
                     content_length=size)
    path = call.services.blobs.path(digest)
    if _byte_ranges(call.request):  # a resumed download: Starlette's ranges (206, 416)
        if path.is_file():
            return FileResponse(path, media_type="application/octet-stream",
                                headers=dict(blob_headers(digest)))
    else:
        download = BlobDownload.open(str(path), size, digest)
        if download is not None:
            return download
    # The file was collected between the look-up and now.
    raise OciError("BLOB_UNKNOWN", f"blob {digest} is unknown to repository '{call.name}'", 404)


def _byte_ranges(request: Request) -> bool:
    """True when the request asks for byte ranges with a valid ``Range`` header. An invalid one
    is dropped, so the whole blob is served (RFC 9110 §14.2: a server MAY ignore Range; an
    invalid one MUST be ignored)."""
    value = request.headers.get("range")
    if value is None:
        return False
    if not _BYTE_RANGES.fullmatch(value) or not _ranges_ascend(value):
        request.scope["headers"] = [(k, v) for k, v in request.scope["headers"] if k != b"range"]
        return False
    return True


def _ranges_ascend(value: str) -> bool:
    for part in value.split("=", 1)[1].split(","):
        start, _, end = part.strip().partition("-")
        if start and end and int(end) < int(start):
            return False
    return True


async def delete_blob(call: Call) -> Reply:
    """``DELETE /v2/<name>/blobs/<digest>``: unlink from the repository, 202."""
    await run_in_thread(call.services.blobs.unlink, call.name, call.values["digest"])
    return Reply(202)


# -- uploads ---------------------------------------------------------------------------------


async def start_upload(call: Call) -> Response:
    """``POST /v2/<name>/blobs/uploads/``: a session (202), a monolithic upload with
    ``?digest=`` (201), or a cross-repository mount with ``?mount=&from=`` (201, else 202)."""
    params = call.request.query_params
    uploads = call.services.uploads
    mount, source = params.get("mount"), params.get("from")
    if mount is not None and source is not None:
        parse_digest(mount)
        try:
            parse_repository_name(source)
            mounted = await run_in_thread(call.services.blobs.mount, call.name, mount, source)
        except errors.InvalidRepositoryName:
            mounted = False
        if mounted:
            return _blob_created(call, mount)
    digest = params.get("digest")
    if digest is not None:
        parse_digest(digest)
    upload_id = await write(call, uploads.start, call.name)
    if digest is None:
        return Response(b"", 202, headers=call.upload_headers(upload_id, 0))
    await _receive_and_complete(call, upload_id, digest, start=0)
    return _blob_created(call, digest)


async def upload_status(call: Call) -> Response:
    """``GET /v2/<name>/blobs/uploads/<id>``: 204 with the received ``Range``."""
    upload_id = call.values["upload_id"]
    size = await run_in_thread(call.services.uploads.size, call.name, upload_id)
    return Response(b"", 204, headers=call.upload_headers(upload_id, size))


async def patch_upload(call: Call) -> Response:
    """``PATCH /v2/<name>/blobs/uploads/<id>``: append a chunk (``Content-Range`` checked;
    out of order → 416 with the current ``Range``), 202."""
    upload_id = call.values["upload_id"]
    size = await _receive(call, upload_id, start=None)
    return Response(b"", 202, headers=call.upload_headers(upload_id, size))


async def put_upload(call: Call) -> Response:
    """``PUT /v2/<name>/blobs/uploads/<id>?digest=``: append the optional last chunk, verify
    and publish; 201 with Location. ``DIGEST_INVALID`` when the bytes hash differently."""
    upload_id = call.values["upload_id"]
    digest = call.request.query_params.get("digest")
    if digest is None:
        raise OciError("DIGEST_INVALID", "the digest query parameter is required", 400)
    parse_digest(digest)
    await _receive_and_complete(call, upload_id, digest, start=None)
    log.debug("blob.uploaded", repository=call.name, digest=digest)
    return _blob_created(call, digest)


async def cancel_upload(call: Call) -> Response:
    """``DELETE /v2/<name>/blobs/uploads/<id>``: 204."""
    await run_in_thread(call.services.uploads.cancel, call.name, call.values["upload_id"])
    return Response(b"", 204)


def _blob_created(call: Call, digest: str) -> Response:
    return Response(
        b"", 201,
        headers={"Location": f"/v2/{call.name}/blobs/{digest}", "Docker-Content-Digest": digest},
    )


async def _receive_and_complete(call: Call, upload_id: str, digest: str, start: int | None) -> None:
    """Receive the completing request's body (if any) into the upload, then verify and publish.

    A small body announced by ``Content-Length`` without ``Content-Range`` (the usual
    monolithic push of a config or a small layer) is read into memory and handed over with the
    completion: one trip to a worker thread and one session look-up instead of three.
    """
    request = call.request
    uploads = call.services.uploads
    length = request.headers.get("content-length", "").strip()
    if length.isdigit() and int(length) <= SMALL_BODY_BYTES and "content-range" not in request.headers:
        chunks = [chunk async for chunk in request.stream()]
        try:
            await run_in_thread(uploads.complete, call.name, upload_id, digest, b"".join(chunks))
        except errors.UploadOffsetMismatch as error:  # another request is appending
            raise OciError("BLOB_UPLOAD_INVALID", error.message, 416,
                           headers=call.upload_headers(upload_id, error.size_bytes)) from None
        return
    if _has_body(request):
        await _receive(call, upload_id, start=start, completing=True)
    await run_in_thread(uploads.complete, call.name, upload_id, digest)


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    if length is not None:
        return length.strip() != "0"
    return "chunked" in request.headers.get("transfer-encoding", "").lower()


async def _receive(call: Call, upload_id: str, start: int | None, completing: bool = False) -> int:
    """Stream the request body into the upload, hashing on the way; return the new size.
    ``completing``: the same request completes the upload next (no progress to record).

    ``Content-Range`` (if sent) must start at the current size, and the body must have exactly
    its length; a failed or short chunk is cut back so the session stays as it was.
    """
    request = call.request
    expected_length = None
    content_range = request.headers.get("content-range")
    if content_range is not None:
        match = _CONTENT_RANGE.fullmatch(content_range.strip())
        if match is None or int(match.group(2)) < int(match.group(1)):
            raise OciError("BLOB_UPLOAD_INVALID", f"malformed Content-Range '{content_range[:100]}'", 416)
        range_start = int(match.group(1))
        if start is not None and range_start != start:
            raise OciError("BLOB_UPLOAD_INVALID", "Content-Range does not start at 0", 416)
        start = range_start
        expected_length = int(match.group(2)) - range_start + 1
    uploads = call.services.uploads
    try:
        append = await run_in_thread(uploads.append, call.name, upload_id, start)
    except errors.UploadOffsetMismatch as error:
        raise OciError(
            "BLOB_UPLOAD_INVALID", error.message, 416,
            headers=call.upload_headers(upload_id, error.size_bytes),
        ) from None
    append.record_progress = not completing
    # One buffer in flight: while the next one arrives, one worker thread hashes it (when the
    # upload has a running hash here) and another writes it (at most two buffers of FLUSH_BYTES
    # held).
    halves = ([append.hash_chunks] if append.hashing else []) + [append.store_chunks]
    in_flight: list[Future[None]] = []
    try:
        async for buffer in _buffers(request):
            for work in in_flight:
                await asyncio.wrap_future(work)
            in_flight = [start_in_thread(half, buffer) for half in halves]
        for work in in_flight:
            await asyncio.wrap_future(work)
        in_flight = []
        received = append.size_bytes - append.start
        if expected_length is not None and received != expected_length:
            raise OciError(
                "BLOB_UPLOAD_INVALID",
                f"Content-Range announces {expected_length} bytes but the body has {received}",
                400,
            )
    except BaseException as error:
        # Synchronously (a truncate and a close): an await here could itself be cancelled and
        # leave the upload locked. Work not started yet is dropped; work under way finishes
        # first (one buffer), so nothing writes to the descriptor once it is closed.
        for work in in_flight:
            if not work.cancel():
                with contextlib.suppress(BaseException):
                    work.result()
        append.__exit__(type(error), error, None)
        raise
    await run_in_thread(append.__exit__, None, None, None)
    return append.size_bytes


async def _buffers(request: Request) -> AsyncIterator[list[bytes]]:
    """The request body as lists of received pieces of about ``FLUSH_BYTES`` (at most
    ``MAX_WRITE_CHUNKS`` pieces each; the last list may be shorter)."""
    chunks: list[bytes] = []
    buffered = 0
    async for chunk in request.stream():
        chunks.append(chunk)
        buffered += len(chunk)
        if buffered >= FLUSH_BYTES or len(chunks) >= MAX_WRITE_CHUNKS:
            yield chunks
            chunks, buffered = [], 0
    if chunks:
        yield chunks


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise OciError("SIZE_INVALID", f"the manifest is larger than {limit} bytes", 413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise OciError("SIZE_INVALID", f"the manifest is larger than {limit} bytes", 413)
        chunks.append(chunk)
    return b"".join(chunks)


# -- tags and referrers ----------------------------------------------------------------------


async def list_tags(call: Call) -> Reply:
    """``GET /v2/<name>/tags/list[?n=&last=]``: lexical order, ``Link`` to the next page."""
    limit = last = None
    if call.scope["query_string"]:
        params = call.request.query_params
        if "n" in params:
            if not _DECIMAL.fullmatch(params["n"]):
                raise OciError("PAGINATION_NUMBER_INVALID", "n must be a non-negative integer", 400)
            limit = min(int(params["n"]), MAX_TAGS_PAGE)
        last = params.get("last")
    tags, last_tag, more = await read(call, call.services.listing.tags_json, call.name, last, limit)
    headers = []
    if more and last_tag is not None:  # the last name is given only then
        query = urlencode({"n": limit, "last": last_tag})
        headers.append(("link", f'</v2/{quote(call.name)}/tags/list?{query}>; rel="next"'))
    body = f'{{"name": {json.dumps(call.name)}, "tags": {tags}}}'.encode()
    return Reply(200, headers, body, media_type="application/json")


async def list_referrers(call: Call) -> Reply:
    """``GET /v2/<name>/referrers/<digest>[?artifactType=]``: an OCI index of referrers."""
    artifact_type = call.request.query_params.get("artifactType")
    referrers = await run_in_thread(
        call.services.listing.referrers, call.name, call.values["digest"], artifact_type
    )
    manifests = []
    for referrer in referrers:
        descriptor: dict[str, Any] = {
            "mediaType": referrer.media_type, "digest": referrer.digest, "size": referrer.size,
        }
        if referrer.artifact_type:
            descriptor["artifactType"] = referrer.artifact_type
        if referrer.annotations:
            descriptor["annotations"] = referrer.annotations
        manifests.append(descriptor)
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}).encode()
    headers = [("oci-filters-applied", "artifactType")] if artifact_type is not None else []
    return Reply(200, headers, body, media_type=OCI_INDEX)


# -- the table -------------------------------------------------------------------------------

ROUTES: list[tuple[re.Pattern[str], dict[str, Handler]]] = [
    (re.compile(r""), {"GET": api_version_check}),
    (re.compile(r"(?P<name>.+)/manifests/(?P<reference>[^/]+)"),
     {"GET": get_manifest, "PUT": put_manifest, "DELETE": delete_manifest}),
    (re.compile(r"(?P<name>.+)/blobs/uploads/?"), {"POST": start_upload}),
    (re.compile(r"(?P<name>.+)/blobs/uploads/(?P<upload_id>[^/]+)"),
     {"GET": upload_status, "PATCH": patch_upload, "PUT": put_upload, "DELETE": cancel_upload}),
    (re.compile(r"(?P<name>.+)/blobs/(?P<digest>[^/]+)"),
     {"GET": get_blob, "DELETE": delete_blob}),
    (re.compile(r"(?P<name>.+)/tags/list"), {"GET": list_tags}),
    (re.compile(r"(?P<name>.+)/referrers/(?P<digest>[^/]+)"), {"GET": list_referrers}),
]


class DistributionApp:
    """ASGI app for every path under ``/v2/``: authenticate, route, serve errors once."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.authenticator = Authenticator(services)
        self.pulls = PullReads(services.context)
        self._valid_names: set[str] = set()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Answer one ``/v2/`` HTTP request (ASGI)."""
        call = Call(scope, receive, self.services, self.pulls)
        response = await self._respond(call)
        status = response.status_code
        if status >= 400:
            # A 404 is routine (every push probes blobs and manifests with HEAD first): debug.
            (log.debug if status == 404 else log.info)(
                "distribution.refused", method=call.method, path=scope["path"], status=status)
        if not isinstance(response, Reply):
            response.raw_headers.append(API_VERSION)
        metrics.count_request("oci", status)
        await response(scope, receive, send)

    async def _respond(self, call: Call) -> Reply | Response:
        try:
            self.authenticator.authenticate(call.header(b"authorization"), call.header(b"host"))
            if call.scope["query_string"] and any(
                "\x00" in value for value in call.request.query_params.values()
            ):
                raise OciError("UNSUPPORTED", "query parameters must not contain NUL characters", 400)
            handler, values = self._route(call.method, call.scope["path"])
            call.values = values
            if "name" in values:
                call.name = self._repository_name(values["name"])
            return await handler(call)
        except OciError as error:
            return error_response(error)
        except errors.MoorageError as error:
            return error_response(from_domain(error))
        except ClientDisconnect:
            return Reply(400)
        except Exception:
            log.exception("distribution.unexpected_error", path=call.scope["path"])
            return error_response(
                OciError("UNKNOWN", "an internal error occurred; see the server log", 500))

    def _repository_name(self, name: str) -> str:
        """``name`` once validated (valid names are remembered: clients repeat them)."""
        if name not in self._valid_names:
            parse_repository_name(name)
            if len(self._valid_names) >= _CACHE_LIMIT:
                self._valid_names.clear()
            self._valid_names.add(name)
        return name

    @staticmethod
    def _route(method: str, path: str) -> tuple[Handler, dict[str, str]]:
        if not path.startswith("/v2"):
            raise OciError("NAME_UNKNOWN", "not found", 404)
        rest = path[3:].lstrip("/")
        for pattern, methods in ROUTES:
            match = pattern.fullmatch(rest)
            if match is None:
                continue
            # HEAD is GET without the body (RFC 9110 §9.3.2): every GET route answers it.
            handler = methods.get(method) or (methods.get("GET") if method == "HEAD" else None)
            if handler is None:
                allowed = set(methods) | ({"HEAD"} if "GET" in methods else set())
                raise OciError("UNSUPPORTED", f"{method} is not supported here", 405,
                               headers={"Allow": ", ".join(sorted(allowed))})
            return handler, match.groupdict()
        raise OciError("NAME_UNKNOWN", f"no such endpoint: {path[:200]}", 404)
