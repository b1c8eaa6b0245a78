"""Moorage: a self-hosted container registry, wire-compatible with Amazon ECR."""

__version__ = "0.1.0"
