"""Content-addressed blob storage (filesystem today; S3-compatible object stores later)."""
