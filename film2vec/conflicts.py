"""Spark's errors made into film2vec's: two jobs committing to one Delta table at once (Delta's optimistic
concurrency rejects the later commit), and a read Spark cannot do.

Delta raises one of its conflict exceptions (ConcurrentAppendException for two writers of one season,
ConcurrentDeleteDeleteException for two overwrites of a table, …), deep in a Py4J or Spark Connect error;
delta-rs raises CommitFailedError.
`committing` turns that into a ConcurrentWriteError that names the table and says what to do; the table
itself holds the other job's commit, whole, and this job's commit is not in it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import delta.exceptions

from film2vec.errors import ConcurrentWriteError, InputError

# Delta's conflict exceptions by class name, and the error classes of their messages (DELTA_CONCURRENT_APPEND…)
CONFLICT_MARKERS = (*delta.exceptions.__all__, "DELTA_CONCURRENT_", "DELTA_METADATA_CHANGED", "DELTA_PROTOCOL_CHANGED")


def is_conflict(error: BaseException) -> bool:
    """Whether a Spark error is Delta refusing a commit because another one got in first."""
    return isinstance(error, delta.exceptions.DeltaConcurrentModificationException) or any(
        marker in str(error) for marker in CONFLICT_MARKERS
    )


@contextmanager
def committing(what: str) -> Iterator[None]:
    """Run a Delta write of `what` (a table, or a season of one); a commit conflict becomes ConcurrentWriteError."""
    from deltalake.exceptions import CommitFailedError

    try:
        yield
    except (*spark_errors(), CommitFailedError) as error:
        if not isinstance(error, CommitFailedError) and not is_conflict(error):
            raise
        raise ConcurrentWriteError(
            f"{what} was written by another job at the same time; Delta kept the other job's commit and refused "
            "this one, so the table is whole but holds the other job's rows. Run one job per --out at a time "
            "(give concurrent runs their own --out), then rerun this one"
        ) from error


def spark_errors() -> tuple[type[Exception], ...]:
    """The exceptions a Spark call raises (classic Py4J or Spark Connect), imported only when one is caught."""
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PySparkException

    return (PySparkException, Py4JJavaError)


def spark_reason(error: Exception) -> str:
    """The line of a Spark error that says what went wrong: the innermost Java cause, else the first line."""
    java = getattr(error, "java_exception", None)
    if java is not None:
        while java.getCause() is not None:
            java = java.getCause()
        return str(java.toString())
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


@contextmanager
def reading(where: str) -> Iterator[None]:
    """Turn a Spark failure while reading into an InputError that starts with `where` (what and its path)."""
    try:
        yield
    except spark_errors() as error:
        raise InputError(f"{where}: Spark cannot read it: {spark_reason(error)}") from error
