"""What a command checks before Spark starts, so that a run that cannot finish stops in about a second and
leaves nothing behind: the local inputs exist, --out is a folder it can write, the tracking server answers.

Each check names the flag (or variable) and the problem; the command line turns the errors into exit codes
(2 for a setting, 3 for an input).
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

from film2vec.config import Config, ConfigError, idle_settings, value_of
from film2vec.errors import InputError
from film2vec.storage import Storage, storage
from film2vec.tables import looks_like_table

# the settings that name an input a command reads: checked to exist when they are local paths
INPUT_FLAGS = {
    "data.events": "--events",
    "data.metadata": "--metadata",
    "data.new_events": "--new-events",
    "apps.candidates": "--candidates",
    "apps.labels": "--labels",
    "evaluate.embeddings": "--embeddings",
}
SERVER_TIMEOUT_SECONDS = 5.0


def check(
    config: Config, reads: frozenset[str], writes: bool = True, command: str = "run", base: Config | None = None
) -> None:
    """Every check that needs no Spark, for `command`, which reads the settings `reads` (and writes under --out
    unless `writes` is False); `base` is the profile the flags were applied to (default: the built-in values)."""
    idle = idle_settings(config, base or Config(), command, reads)
    if idle:
        raise ConfigError("; ".join(idle) + ": leave them out, or give what lets them act")
    for key, flag in INPUT_FLAGS.items():
        if key in reads:
            check_input(value_of(config, key), flag)
    if writes and "data.out" in reads:
        check_out(config.data.out)
    config.check(command, reads)
    if any(key.startswith("tracking.") for key in reads):
        check_tracking_server(os.environ.get("MLFLOW_TRACKING_URI", ""))


def check_input(source: str | None, flag: str) -> None:
    """A local path given as an input must exist (a table name or a remote URI is Spark's to find)."""
    if not source or storage(source) is Storage.REMOTE or looks_like_table(source):
        return
    if not Path(source).exists():
        raise InputError(f"flag {flag}: {source}: no such file or folder")


def check_out(out: str) -> None:
    """--out must be a folder this process can write, or one it can create."""
    if storage(out) is Storage.REMOTE:
        return
    path = Path(out).resolve()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"flag --out: {out} is a file; give a folder (it is created when missing)")
    existing = next(parent for parent in (path, *path.parents) if parent.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "" if existing == path else f" (it would be created in {existing})"
        raise ConfigError(f"flag --out: {out} is not writable by this user{what}")


def check_tracking_server(uri: str) -> None:
    """An MLflow server named by MLFLOW_TRACKING_URI (http or https) must answer its health check within a few
    seconds; a stopped or unreachable server otherwise fails the run minutes later, after tables are written."""
    if not uri.startswith(("http://", "https://")):
        return
    health = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(health, timeout=SERVER_TIMEOUT_SECONDS) as answer:
            answer.read(64)
    except urllib.error.HTTPError as error:
        if error.code >= 500:
            raise ConfigError(f"MLFLOW_TRACKING_URI {uri}: the server answers {error.code} ({error.reason})") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise ConfigError(
            f"MLFLOW_TRACKING_URI {uri} does not answer within {SERVER_TIMEOUT_SECONDS:.0f} s ({reason}); start the "
            "server, or unset the variable to keep runs in a SQLite file under --out"
        ) from None
