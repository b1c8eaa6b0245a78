"""botocore's ECR service model, loaded once: the contract for shapes, constraints and errors."""

from __future__ import annotations

from functools import lru_cache

import botocore.session
from botocore.model import OperationModel, ServiceModel

TARGET_PREFIX = "AmazonEC2ContainerRegistry_V20150921."


@lru_cache(maxsize=1)
def service_model() -> ServiceModel:
    """The ECR ``ServiceModel`` of the installed (pinned) botocore."""
    return botocore.session.get_session().get_service_model("ecr")


@lru_cache(maxsize=None)
def operation_model(name: str) -> OperationModel | None:
    """The model of operation ``name`` (``CreateRepository``), or None when it is not an ECR
    operation."""
    model = service_model()
    if name not in model.operation_names:
        return None
    return model.operation_model(name)
