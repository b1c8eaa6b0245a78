"""The OCI vocabulary: digests, media types, manifests and names. Pure values, no I/O."""
