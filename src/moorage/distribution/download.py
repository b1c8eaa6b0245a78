"""``GET /_moorage/layers/<repository>/<digest>?expires=&signature=``: the blob behind a URL from
GetDownloadUrlForLayer, served without Basic auth (the signature is the credential)."""

from __future__ import annotations

import re

from moorage.threads import run_in_thread
from starlette.requests import Request

from moorage import errors
from moorage.auth.download_urls import PATH_PREFIX
from moorage.distribution.errors import OciError, error_response, from_domain
from moorage.distribution.responses import BlobDownload, Reply, blob_headers
from moorage.services import Services

_PATH = re.compile(r"(?P<name>.+)/(?P<digest>sha256:[a-f0-9]{64})")


class SignedLayerDownload:
    """ASGI endpoint serving signed layer URLs."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def __call__(self, request: Request) -> Reply:
        head = request.method == "HEAD"
        match = _PATH.fullmatch(request.url.path[len(PATH_PREFIX):])
        params = request.query_params
        try:
            if match is None or not self.services.download_urls.verify(
                match["name"], match["digest"], params.get("expires", ""),
                params.get("signature", ""), self.services.context.clock.now(),
            ):
                raise OciError("DENIED", "the download URL is invalid or has expired", 403)
            size = await run_in_thread(self.services.blobs.stat, match["name"], match["digest"])
        except OciError as error:
            return error_response(error)
        except errors.MoorageError as error:
            return error_response(from_domain(error))
        if head:
            return Reply(200, blob_headers(match["digest"]), media_type="application/octet-stream",
                         content_length=size)
        download = BlobDownload.open(str(self.services.blobs.path(match["digest"])), size,
                                     match["digest"])
        if download is None:  # collected between the look-up and now
            return error_response(OciError("BLOB_UNKNOWN", f"blob {match['digest']} is unknown", 404))
        return download
