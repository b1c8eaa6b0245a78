"""Domain services: the single place where the ECR API and the OCI Distribution API meet.

Each service takes validated values, enforces the registry's rules, and works on storage
through :class:`moorage.storage.metadata.database.Database` and the blob store. They raise
:mod:`moorage.errors` only and know nothing about HTTP.
"""
