"""Repository names, tags, and the ARNs and URIs formed from them.

Sources: OCI distribution-spec §"Pulling manifests" (name and tag grammar), ecr-api.md §7.1,
§7.3 and §7.4 (ECR's model pattern, ARN and URI formats).
"""

from __future__ import annotations

import re

from moorage.errors import InvalidRepositoryName, InvalidTag

# The ECR model's pattern for repositoryName; identical to the distribution-spec name grammar.
REPOSITORY_NAME = re.compile(
    r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*"
)
REPOSITORY_NAME_MIN, REPOSITORY_NAME_MAX = 2, 256
TAG = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")


def parse_repository_name(name: str) -> str:
    """Return ``name`` if it is a valid repository name.

    Raises:
        InvalidRepositoryName: length outside 2..256 or not matching the grammar
            (OCI ``NAME_INVALID``; ECR ``InvalidParameterException``).
    """
    if not REPOSITORY_NAME_MIN <= len(name) <= REPOSITORY_NAME_MAX:
        raise InvalidRepositoryName(
            f"invalid repository name '{name[:300]}': length must be 2 to 256 characters"
        )
    if not REPOSITORY_NAME.fullmatch(name):
        raise InvalidRepositoryName(
            f"invalid repository name '{name[:300]}': must match {REPOSITORY_NAME.pattern}"
        )
    return name


def parse_tag(tag: str) -> str:
    """Return ``tag`` if it matches ``[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}``.

    Raises:
        InvalidTag: otherwise (OCI ``TAG_INVALID``; ECR ``InvalidParameterException``).
    """
    if not TAG.fullmatch(tag):
        raise InvalidTag(f"invalid tag '{tag[:300]}': must match {TAG.pattern}")
    return tag


def repository_arn(region: str, registry_id: str, repository_name: str) -> str:
    """``arn:aws:ecr:<region>:<registryId>:repository/<name>``."""
    return f"arn:aws:ecr:{region}:{registry_id}:repository/{repository_name}"
