"""The validation gate: consumers read only vectors of a version that passed it.

`train` registers a version and writes its rows to DIR/candidate_embeddings and DIR/candidate_neighbours,
keyed by model_version; the tables consumers read, DIR/embeddings and DIR/neighbours, change only when a
version is served: by `train` itself when its figures clear the floors (--move-alias when_floors_clear), or
by `film2vec promote` after `film2vec validate` passed it (by_promote, the Databricks job). Serving
replaces each served table in one Delta commit with the version's candidate rows, then points the alias at
the version. A version that fails, or a run that dies before serving, leaves the served tables as they were.

validate and promote act on a named version (--version, or the version the train task of this Databricks job
run published as a task value, film2vec.task_values), never on the newest: two overlapping jobs each gate
what they trained.
"""

from __future__ import annotations

import logging
import os

import mlflow
import pyarrow as pa
from mlflow.tracking import MlflowClient
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from film2vec import conflicts, tables, task_values
from film2vec.config import Config, ConfigError
from film2vec.errors import FloorsNotCleared, InputError
from film2vec.tracking import alias_decision, use_store

log = logging.getLogger(__name__)
SERVED_TABLES = ("embeddings", "neighbours")  # each served from the candidate rows of one version
VERSION_KEY = "model_version"  # the task value `train` (and `evaluate`) publish
TRAIN_TASK, EVALUATE_TASK = "train", "evaluate"  # the job's task keys validate reads the versions of
VALIDATION_TAG = "film2vec.validation"  # model version tag: passed or failed, set by `film2vec validate`
FORCED_TAG = "film2vec.promoted_by_force"  # model version tag: why a version was served without passing
SERVED_RECORD = "film2vec_served"  # the key of a served table's commit metadata: the version and why
EMBEDDINGS_RECORD = "film2vec_embeddings"  # the key of the rows' provenance in the candidate and served commits


# The served embeddings are what a Databricks Vector Search Delta Sync index follows: their changes are
# recorded (Change Data Feed) and each row is one asset (the key, asset_id; model_version says which version)
SYNCED = tables.CHANGE_FEED
KEY = "asset_id"


def declare_key(spark: SparkSession, config: Config) -> None:
    """On Unity Catalog, declare the served embeddings' primary key (an informational constraint: what a
    Vector Search index and other readers may rely on); other catalogs have no primary keys to declare."""
    name = tables.of(config, "embeddings").name
    if name is None or "DATABRICKS_RUNTIME_VERSION" not in os.environ:
        return
    try:
        spark.sql(f"ALTER TABLE {name} ALTER COLUMN {KEY} SET NOT NULL")
        spark.sql(f"ALTER TABLE {name} ADD CONSTRAINT embeddings_pk PRIMARY KEY ({KEY})")
    except conflicts.spark_errors() as error:  # declared by an earlier serve, or a catalog without the feature
        log.info("primary key of %s not declared now: %s", name, conflicts.spark_reason(error))


def candidate(table: str) -> str:
    """The table holding every unserved version's rows of a served table."""
    return f"candidate_{table}"


def write_candidate(config: Config, rows: DataFrame | pa.Table, table: str, version: int, record: dict) -> None:
    """Replace version `version`'s rows of `table`'s candidate table (other versions untouched) in one commit;
    rows held on the driver (an Arrow table) are written from it."""
    if isinstance(rows, pa.Table):
        rows = rows.append_column(VERSION_KEY, pa.array([version] * rows.num_rows, pa.int32()))
    else:
        rows = rows.withColumn(VERSION_KEY, F.lit(version))
    tables.of(config, candidate(table)).replace_rows(rows, f"{VERSION_KEY} = {version}", record=record)


def candidate_rows(spark: SparkSession, config: Config, table: str, version: int) -> DataFrame:
    """Version `version`'s candidate rows of a served table."""
    return tables.of(config, candidate(table)).read(spark).where(F.col(VERSION_KEY) == version)


def serve(spark: SparkSession, config: Config, version: int, why: str) -> None:
    """Make version `version`'s candidate rows what the served tables hold (one commit each), point the alias
    at it, then drop older versions' candidate rows. InputError when the version wrote no candidate rows."""
    records = {}
    for table in SERVED_TABLES:
        written = (
            tables.of(config, candidate(table)).records(spark, EMBEDDINGS_RECORD)
            if tables.of(config, candidate(table)).exists(spark)
            else []
        )
        records[table] = next((record for _, record in written if record[VERSION_KEY] == version), None)
        if records[table] is None:
            raise InputError(
                f"{tables.of(config, candidate(table)).where} holds no rows of version {version}: `film2vec train` "
                "writes them; serve a version trained with this --out (or --catalog/--schema)"
            )
    served = {VERSION_KEY: version, "why": why}
    for table, record in records.items():
        properties = SYNCED if table == "embeddings" else {}
        rows = tables.of(config, candidate(table)).rows_where(spark, VERSION_KEY, version)
        tables.of(config, table).write(rows, record={EMBEDDINGS_RECORD: record, SERVED_RECORD: served}, **properties)
    declare_key(spark, config)
    MlflowClient().set_registered_model_alias(config.tracking.model_name, config.tracking.alias, str(version))
    for table in SERVED_TABLES:
        tables.of(config, candidate(table)).delete_rows(spark, f"{VERSION_KEY} < {int(version)}")
    log.info("version %d served in %s (%s)", version, ", ".join(tables.of(config, t).where for t in SERVED_TABLES), why)


def chosen_version(given: int, task: str, flag: str) -> int:
    """The version a command acts on: `given` (its flag), else the task value `task` published in this job
    run; ConfigError when there is neither, since the newest version may be another job's."""
    if given:
        return given
    published = task_values.value(task, VERSION_KEY)
    if published is None:
        raise ConfigError(
            f"flag {flag}: name the registered version to act on; there is no {VERSION_KEY} task value from the "
            f"{task!r} task either (film2vec never takes the newest version: it may be another job's)"
        )
    return int(published)


def model_version(name: str, version: int):
    """A registered version; InputError when the registry has no such version."""
    try:
        return MlflowClient().get_model_version(name, str(version))
    except mlflow.exceptions.MlflowException:
        raise InputError(f"no version {version} of the model {name!r} in {mlflow.get_registry_uri()}") from None


def validate(config: Config) -> dict:
    """Check the version this job trained against the alias floors: its own figures, with the held-out
    next-watch figures of the version `film2vec evaluate` registered (--evaluation-model). The verdict is
    tagged on the version; FloorsNotCleared when it fails, so no promotion follows."""
    use_store(config.data.out)
    client = MlflowClient()
    tracking = config.tracking
    candidate_version = model_version(tracking.model_name, chosen_version(tracking.version, TRAIN_TASK, "--version"))
    figures = dict(client.get_run(candidate_version.run_id).data.metrics)
    own = f"models:/{candidate_version.name}/{candidate_version.version}"
    sources = {"own": own}
    if tracking.evaluation_model:
        number = chosen_version(tracking.evaluation_version, EVALUATE_TASK, "--evaluation-version")
        evaluated = model_version(tracking.evaluation_model, number)
        held_out = client.get_run(evaluated.run_id).data.metrics
        figures.update({key: value for key, value in held_out.items() if key in ("recall_at_20", "ndcg_at_20")})
        sources["held_out"] = f"models:/{evaluated.name}/{evaluated.version}"
    decision = alias_decision(figures, tracking)
    verdict = "passed" if decision.moved else "failed"
    client.set_model_version_tag(candidate_version.name, candidate_version.version, VALIDATION_TAG, verdict)
    client.set_model_version_tag(
        candidate_version.name, candidate_version.version, f"{VALIDATION_TAG}_reason", decision.reason
    )
    summary = {"model": own, "figures_from": sources, "passed": decision.moved, "reason": decision.reason}
    if not decision.moved:
        raise FloorsNotCleared(f"{own} did not pass validation: {decision.reason}")
    return summary


def promote(spark: SparkSession, config: Config) -> dict:
    """Serve the version this job trained once `film2vec validate` passed it; with --force, serve it anyway and
    record that on the version."""
    use_store(config.data.out)
    tracking = config.tracking
    version = chosen_version(tracking.version, TRAIN_TASK, "--version")
    found = model_version(tracking.model_name, version)
    uri = f"models:/{found.name}/{found.version}"
    verdict = found.tags.get(VALIDATION_TAG)
    reason = found.tags.get(f"{VALIDATION_TAG}_reason", "not validated yet: run `film2vec validate` first")
    if verdict != "passed" and not tracking.force:
        raise FloorsNotCleared(f"{uri} is not promoted: {reason}")
    why = "passed `film2vec validate`"
    if verdict != "passed":
        why = f"promoted by force (--force true); validation: {verdict or 'none'}, {reason}"
        MlflowClient().set_model_version_tag(found.name, found.version, FORCED_TAG, why)
    serve(spark, config, version, why)
    return {"model": uri, "alias": tracking.alias, "served": [tables.of(config, t).where for t in SERVED_TABLES]}
