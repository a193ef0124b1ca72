"""The Spark session factory: Delta configured locally, the given session everywhere else.

Under spark-submit, on Databricks or over Spark Connect the platform owns the session (master, jars,
memory); film2vec only takes it. Started locally, film2vec builds one with the Delta SQL extension and
catalog and the delta-spark jars. Those are resolved from Maven Central once; their local paths are then
remembered so later sessions (tests, reruns) start without a dependency resolution. Spark's own logging is
kept to errors (film2vec/log4j2.properties), so that its start-up notes do not bury a command's progress.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from pyspark.sql import SparkSession

from film2vec.config import SparkConfig

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
JARS_RECORD = Path.home() / ".cache" / "film2vec" / "delta-jars.json"
QUIET_LOG4J = Path(__file__).with_name("log4j2.properties")  # Spark's own logging: errors only


def platform_session() -> SparkSession | None:
    """The session the platform gave us (spark-submit, Databricks, Spark Connect), if any."""
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if (
        "PYSPARK_GATEWAY_PORT" in os.environ
        or "SPARK_REMOTE" in os.environ
        or "DATABRICKS_RUNTIME_VERSION" in (os.environ)
    ):
        return SparkSession.builder.getOrCreate()
    return None


def delta_version() -> str:
    from importlib.metadata import version

    return version("delta-spark")


def _remembered_jars(delta_version: str) -> list[str] | None:
    try:
        record = json.loads(JARS_RECORD.read_text())
    except (OSError, ValueError):
        return None
    jars = record.get(delta_version) or []
    return jars if jars and all(Path(j).is_file() for j in jars) else None


def _remember_jars(spark: SparkSession, delta_version: str) -> None:
    jars = [j.removeprefix("file://").removeprefix("file:") for j in spark.conf.get("spark.jars", "").split(",") if j]
    if jars and all(Path(j).is_file() for j in jars):
        JARS_RECORD.parent.mkdir(parents=True, exist_ok=True)
        JARS_RECORD.write_text(json.dumps({delta_version: jars}))


def metastore_options(folder: str) -> dict[str, str]:
    """Spark settings of a persistent local Hive metastore (embedded Derby) and its warehouse under `folder`,
    so that a table one film2vec command writes by name is found by the next (one process at a time: Derby)."""
    root = Path(folder).expanduser().resolve()
    return {
        "spark.sql.catalogImplementation": "hive",
        "spark.sql.warehouse.dir": str(root / "warehouse"),
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={root / 'metastore_db'};create=true",
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={root}",
    }


def get_spark(
    config: SparkConfig | None = None, app_name: str = "film2vec", *, connect: bool = False, metastore: bool = False
) -> SparkSession:
    """The platform's session when there is one, else a local session with Delta Lake configured.

    With `metastore`, the local session keeps named tables in the Hive metastore at `config.metastore`. With
    `connect`, the local session is a Spark Connect client of a server started on `config.master`: no
    SparkContext, as on Databricks serverless (used to prove the job code is DataFrame-only).
    """
    session = platform_session()
    if session is not None:
        return session
    config = config or SparkConfig()
    builder = SparkSession.builder.remote(config.master) if connect else SparkSession.builder.master(config.master)
    builder = (
        builder.appName(app_name)
        .config("spark.sql.extensions", DELTA_EXTENSION)
        .config("spark.sql.catalog.spark_catalog", DELTA_CATALOG)
        .config("spark.sql.shuffle.partitions", str(config.shuffle_partitions))
        .config("spark.driver.memory", config.driver_memory)
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")  # ISO times without a zone mean UTC on every machine
        .config("spark.databricks.delta.snapshotPartitions", "2")
        # a task writing one season (one partition value) streams its rows out instead of sorting them by
        # the partition column first
        .config("spark.sql.maxConcurrentOutputFileWriters", "4")
        # iterative jobs (ALS, the evaluation's baseline) checkpoint their lineage here every 10 iterations;
        # without a folder the lineage grows until serialising a task overflows the stack
        .config("spark.checkpoint.dir", str(Path(tempfile.gettempdir()) / "film2vec-spark-checkpoints"))
    )
    java = [f"-Dlog4j2.configurationFile={QUIET_LOG4J.as_uri()}"]
    if metastore:
        Path(config.metastore).expanduser().mkdir(parents=True, exist_ok=True)
        options = metastore_options(config.metastore)
        java.append(options.pop("spark.driver.extraJavaOptions"))
        for key, value in options.items():
            builder = builder.config(key, value)
    builder = builder.config("spark.driver.extraJavaOptions", " ".join(java))
    delta = delta_version()
    jars = _remembered_jars(delta)
    if jars:
        session = builder.config("spark.jars", ",".join(jars)).getOrCreate()
    else:
        from delta import configure_spark_with_delta_pip

        session = configure_spark_with_delta_pip(builder).getOrCreate()
        _remember_jars(session, delta)
    if not connect:
        session.sparkContext.setLogLevel("ERROR")
    return session
