"""The errors film2vec reports to people, apart from the modules that raise them so that the command line
can catch them without importing Spark, Delta or torch; and the exit code of each."""

from __future__ import annotations

from enum import IntEnum


class InputError(ValueError):
    """Input that film2vec cannot use; the message names the path and the problem."""


class ConcurrentWriteError(RuntimeError):
    """Another job committed to the same table while this one was writing it."""


class FloorsNotCleared(RuntimeError):
    """A new model version's figures are below the configured floors, so the alias stays where it is."""


class ExitCode(IntEnum):
    """What `film2vec` exits with; a scheduler retries CONFLICT and alerts on the others."""

    OK = 0
    UNEXPECTED = 1  # an error film2vec did not foresee (a bug, the machine): Python's own code, with the traceback
    USAGE = 2  # a flag, --set or profile value that is not allowed (argparse's own code for usage errors)
    BAD_INPUT = 3  # events, metadata or a table missing, unreadable or without a usable row
    CONFLICT = 4  # another job committed to the same Delta table at the same time: rerun (retryable)
    FLOORS = 5  # the figures did not clear the alias floors (validate, promote; training with --fail-on-floors)
