"""The errors film2vec raises for people: pure, so any module (pure numerics, the CLI) can raise or catch them
without importing Spark."""


class InputError(ValueError):
    """Input that film2vec cannot use; the message names the path and the problem."""
