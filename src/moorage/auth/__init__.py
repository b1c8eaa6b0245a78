"""Identity: access keys and principals, SigV4 verification, registry login tokens."""
