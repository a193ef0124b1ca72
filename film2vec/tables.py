"""The tables of a run: where each one lives (a folder under --out, or a metastore name), how it is read,
written, versioned and found. Every stage reaches its tables through here."""

from __future__ import annotations

REMOTE_PREFIXES = ("dbfs:",)


def is_remote(path: str) -> bool:
    """Whether a path names a store reached through a URI (s3://, abfss://, gs://, dbfs:/) rather than a local
    file system; such paths cannot be checked with the local file system and are taken to exist."""
    return "://" in path or path.startswith(REMOTE_PREFIXES)
