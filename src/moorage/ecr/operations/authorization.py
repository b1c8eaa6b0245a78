"""GetAuthorizationToken (ecr-api.md §3.14, §6.1)."""

from __future__ import annotations

import base64
from typing import Any

from moorage.ecr.operations.context import OperationContext


def get_authorization_token(context: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    """A 12-hour registry login token for the caller.

    Returns ``authorizationData``: one entry, or one per deprecated ``registryIds`` entry, each
    with ``authorizationToken`` = base64(``AWS:<token>``), ``expiresAt`` (epoch seconds) and
    ``proxyEndpoint`` (``<scheme>://<registry host>``).
    """
    services = context.services
    token, expires_at = services.tokens.issue(
        context.principal.access_key_id,
        context.principal.user_name,
        context.registry_id,
        services.context.region,
        services.context.clock.now(),
    )
    encoded = base64.b64encode(f"AWS:{token}".encode()).decode()
    entry = {
        "authorizationToken": encoded,
        "expiresAt": expires_at,
        "proxyEndpoint": f"{context.scheme}://{context.registry_host}",
    }
    count = len(params.get("registryIds") or [None])
    return {"authorizationData": [dict(entry) for _ in range(count)]}
