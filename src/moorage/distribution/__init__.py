"""The OCI Distribution API v1.1 on ``/v2/`` (what docker, podman, skopeo and oras speak)."""
