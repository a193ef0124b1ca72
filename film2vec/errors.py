"""The errors film2vec reports to people, apart from the modules that raise them so that the command line
can catch them without importing Spark, Delta or torch."""

from __future__ import annotations


class InputError(ValueError):
    """Input that film2vec cannot use; the message names the path and the problem."""


class ConcurrentWriteError(RuntimeError):
    """Another job committed to the same table while this one was writing it."""


class FloorsNotCleared(RuntimeError):
    """A new model version's figures are below the configured floors, so the alias stays where it is."""
