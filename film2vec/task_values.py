"""Values one task of a Databricks job hands to the next: `train` publishes the model version it registered,
and `validate` and `promote` act on that version, never on "the newest".

On Databricks the values are the job's task values (dbutils.jobs.taskValues, through the SDK's runtime
module, which a job's Python process can import). Elsewhere, FILM2VEC_TASK_VALUES names a JSON file that
stands in for them ({task: {key: value}}), so a local chain of commands, and the tests, hand values on the
same way; without it there is nowhere to keep them and publishing is a no-op.

Example::

    publish("train", "model_version", 7)
    value("train", "model_version")  # 7, or None when the task set none
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)
LOCAL_FILE = "FILM2VEC_TASK_VALUES"  # environment variable: the JSON file standing in for the job's task values


def _dbutils():
    """The job's dbutils on Databricks, else None."""
    if "DATABRICKS_RUNTIME_VERSION" not in os.environ:
        return None
    from databricks.sdk.runtime import dbutils

    return dbutils


def publish(task: str, key: str, value: int | str) -> bool:
    """Set `key` of this task (`task` names it in the local file; on Databricks the task is the running one);
    False when there is nowhere to set it."""
    dbutils = _dbutils()
    if dbutils is not None:
        dbutils.jobs.taskValues.set(key=key, value=value)
        return True
    path = os.environ.get(LOCAL_FILE)
    if not path:
        return False
    values = json.loads(Path(path).read_text()) if Path(path).is_file() else {}
    values.setdefault(task, {})[key] = value
    partial = Path(f"{path}.{os.getpid()}")
    partial.write_text(json.dumps(values, indent=2))
    os.replace(partial, path)  # a reader sees the old file or the new one
    return True


def value(task: str, key: str) -> int | str | None:
    """`key` as task `task` of this job run set it; None when it set none (or outside a job and the file)."""
    dbutils = _dbutils()
    if dbutils is not None:
        try:
            return dbutils.jobs.taskValues.get(taskKey=task, key=key, default=None)
        except (TypeError, ValueError) as error:  # outside a job run: no debugValue to fall back on
            log.info("no task value %s.%s: %s", task, key, error)
            return None
    path = os.environ.get(LOCAL_FILE)
    if not path or not Path(path).is_file():
        return None
    return json.loads(Path(path).read_text()).get(task, {}).get(key)
