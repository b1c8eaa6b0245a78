"""What an ECR operation handler receives besides its input."""

from __future__ import annotations

from dataclasses import dataclass

from moorage.auth.principals import Principal
from moorage.services import Services


@dataclass(frozen=True)
class OperationContext:
    """The caller and the registry, for one ECR request.

    Attributes:
        services: the domain services.
        principal: who signed the request.
        registry_host: host[:port] of the data plane, for ``repositoryUri`` and
            ``proxyEndpoint`` (``MOORAGE_REGISTRY_HOST`` or the request's Host).
        scheme: ``https`` when ``MOORAGE_REGISTRY_HOST`` is set, else the request's scheme.
        request_host: the Host this request arrived on (for URLs served by this server).
        request_scheme: the scheme this request arrived with.
        on_event_loop: the handler runs on the event loop (:data:`INLINE_WRITE_OPERATIONS`):
            its write transaction must not wait for the writers' turn (``WriterBusy`` instead).
    """

    services: Services
    principal: Principal
    registry_host: str
    scheme: str
    request_host: str
    request_scheme: str
    on_event_loop: bool = False

    @property
    def registry_id(self) -> str:
        """The 12-digit account id of this registry."""
        return self.services.context.registry_id


class JsonText(str):
    """A handler's output already serialized as the operation's JSON document (the endpoint
    sends it unchanged). For listings whose members are built from database rows: writing their
    JSON directly costs a fraction of building dicts and serializing them."""
