"""Where a path lives, decided in one place, and what film2vec writes there.

- LOCAL, this machine's file system: Spark, delta-rs, torch checkpoints and MLflow's SQLite store all write
  in place; a file is written beside its final name and renamed, which is atomic.
- FUSE, a Databricks mount of cloud storage (/Volumes/…, /dbfs/…): files, but a rename copies and a crash can
  leave half a file, and delta-rs's commits there are not atomic. Spark's Delta writer (which commits through
  the platform's storage) writes the tables, delta-rs only reads them; checkpoints go to a local scratch
  folder; MLflow's SQLite store cannot live there (set MLFLOW_TRACKING_URI).
- REMOTE, a URI (s3://, abfss://, gs://, dbfs:/…): only Spark, or the store's client, reaches it; as FUSE, and
  delta-rs does not read it either.

FILM2VEC_FUSE_ROOTS adds mount roots (separated by the path separator): a mount elsewhere, or a test's
stand-in for /Volumes.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from enum import Enum
from pathlib import Path

FUSE_ROOTS = ("/Volumes/", "/dbfs/")
FUSE_ROOTS_VARIABLE = "FILM2VEC_FUSE_ROOTS"


class Storage(Enum):
    LOCAL = "local"
    FUSE = "fuse"
    REMOTE = "remote"


def storage(path: str) -> Storage:
    """Where `path` lives: a URI is REMOTE, a path under a mount root FUSE, anything else LOCAL."""
    if "://" in path or path.startswith("dbfs:"):
        return Storage.REMOTE
    extra = [root for root in os.environ.get(FUSE_ROOTS_VARIABLE, "").split(os.pathsep) if root]
    roots = (*FUSE_ROOTS, *(str(Path(root).resolve()).rstrip("/") + "/" for root in extra))
    absolute = path if path.startswith(FUSE_ROOTS) else str(Path(path).resolve())
    return Storage.FUSE if (absolute.rstrip("/") + "/").startswith(roots) else Storage.LOCAL


def writes_in_place(path: str) -> bool:
    """Whether film2vec's own writers (delta-rs, torch.save, SQLite) may write at `path`: only on LOCAL."""
    return storage(path) is Storage.LOCAL


def local_scratch(path: str) -> str:
    """`path` when film2vec may write there, else a folder on this machine standing in for it: the same one
    for the same path, so a task retried on the same driver finds what its first try left."""
    if writes_in_place(path):
        return path
    digest = hashlib.sha1(path.encode()).hexdigest()[:12]
    return str(Path(tempfile.gettempdir()) / "film2vec" / digest / Path(path).name)
