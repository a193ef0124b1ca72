"""The tables of a run: where each one lives, how it is read, written, versioned and found.

A table users read (views, assets, pairs, embeddings, neighbours, …) is a Delta folder under --out, or a
managed Delta table `CATALOG.SCHEMA.NAME` in a metastore (Unity Catalog, Hive) when --schema is given.
Scratch data (seasons, checkpoints, the evaluation split, the synthetic catalogue, plots) always lives at
a path under --out: on Databricks a Volume. Every stage reaches its tables through here.

Example::

    pairs = tables.of(config, "pairs")  # its name or folder, resolved once
    pairs.write(frame, record={"film2vec_pairs": {...}})  # one commit, its provenance with it
    pairs.read(spark), pairs.version(spark), pairs.records(spark, "film2vec_pairs")
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from film2vec.errors import InputError
from film2vec.storage import Storage, storage, writes_in_place

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
    from delta.tables import DeltaTable
    from pyspark.sql import DataFrame, DataFrameWriter, SparkSession

    from film2vec.config import Config


# The tables users read, and the command that writes each (named in "not found" messages)
USER_TABLES = {
    "views": "pairs",
    "assets": "pairs",
    "unviewed": "pairs",
    "rejects": "pairs",
    "pairs": "pairs",
    "embeddings": "train",  # served: `promote` (or `train` when its figures clear the floors) replaces it
    "neighbours": "train",
    "candidate_embeddings": "train",  # every version's rows until one is served (film2vec.serving.gate)
    "candidate_neighbours": "train",
    "user_vectors": "tastes",
    "recommendations": "recommend",
    "audit": "audit",
    "clusters": "clusters",
    "asset_clusters": "clusters",
}
# Tables a reader without Spark opens (delta-rs: the trainer, `film2vec similar`): created with deletion
# vectors off, because delta-rs's pyarrow reader refuses tables whose protocol has them
READ_WITHOUT_SPARK = ("seasons", "embeddings", "neighbours", "assets", "unviewed")
NO_DELETION_VECTORS = {"delta.enableDeletionVectors": "false"}

_PLAIN_PART = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_QUOTED_PART = re.compile(r"`((?:[^`]|``)+)`")


def is_remote(path: str) -> bool:
    """Whether a path names a store reached through a URI (s3://, abfss://, gs://, dbfs:/), where only Spark can
    tell what is there (film2vec.storage decides)."""
    return storage(path) is Storage.REMOTE


def name_parts(text: str, what: str) -> list[str]:
    """The parts of a table or schema name (`a.b.c`, each part plain or `back-quoted`), or InputError."""
    parts, rest = [], text.strip()
    while True:
        quoted = _QUOTED_PART.match(rest)
        plain = _PLAIN_PART.match(rest)
        if quoted:
            parts.append(quoted.group(1).replace("``", "`"))
            rest = rest[quoted.end() :]
        elif plain:
            parts.append(plain.group(0))
            rest = rest[plain.end() :]
        else:
            break
        if not rest.startswith("."):
            break
        rest = rest[1:]
    if rest or not parts:
        raise InputError(
            f"{what} {text!r} is not a table name: give catalog.schema.table or schema.table, each part letters, "
            "digits and _ (or `back-quoted`)"
        )
    return parts


def quoted(parts: list[str]) -> str:
    """A multi-part name with every part back-quoted, so no text of a user's reaches SQL unquoted."""
    return ".".join("`" + part.replace("`", "``") + "`" for part in parts)


def looks_like_table(text: str) -> bool:
    """Whether --events (or another input) names a metastore table rather than a path: two or three name parts
    and nothing on the local file system by that name."""
    if is_remote(text) or "/" in text or "\\" in text or Path(text).exists():
        return False
    try:
        return len(name_parts(text, "input")) in (2, 3)
    except InputError:
        return False


def output_schema(config: Config) -> list[str] | None:
    """The schema that receives the user tables (--catalog, --schema), as name parts; None: under --out
    (Config.check refuses --catalog without --schema)."""
    from film2vec.config import ConfigError

    if not config.data.schema:
        return None
    parts = [*([config.data.catalog] if config.data.catalog else []), config.data.schema]
    try:
        return [part for text in parts for part in name_parts(text, "flag --catalog/--schema")]
    except InputError as error:  # a flag's value, not the data: a usage error
        raise ConfigError(str(error)) from None


def uses_metastore(config: Config) -> bool:
    """Whether a run reads or writes any table by name (a local session then needs the Hive metastore)."""
    inputs = (
        config.data.events,
        config.data.metadata if config.names_events else None,
        config.data.new_events,
        config.apps.labels,
        config.apps.candidates,
        config.evaluate.embeddings,
    )
    return bool(config.data.schema) or any(source and looks_like_table(source) for source in inputs)


def committed(path: str) -> bool:
    """Whether a Delta folder (local or on a mount) holds a commit: a folder whose first write stopped before
    committing has a `_delta_log` with no commit in it, and is a table no reader can open."""
    log_folder = Path(path) / "_delta_log"
    return log_folder.is_dir() and any(
        entry.name.endswith(".json") or entry.name == "_last_checkpoint" for entry in log_folder.iterdir()
    )


def started(path: str) -> bool:
    """Whether a write began at a local path (files or a log there) without necessarily committing."""
    return not is_remote(path) and Path(path).is_dir() and any(Path(path).iterdir())


def ensure_schema(spark: SparkSession, config: Config) -> None:
    """Create the output schema when it is missing; InputError when it is missing and cannot be created (on
    Unity Catalog that takes the CREATE SCHEMA privilege, often an admin's)."""
    from film2vec.conflicts import spark_errors, spark_reason

    schema = quoted(output_schema(config))
    if spark.catalog.databaseExists(schema):
        return
    try:
        spark.sql(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    except spark_errors() as error:
        raise InputError(
            f"schema {schema} does not exist and film2vec could not create it ({spark_reason(error)}); create it "
            "or ask for the privilege, or name another with --catalog/--schema"
        ) from None


# At most this many rows are written to a local table from the driver by delta-rs, when the caller knows
# the count: collecting them costs less than a Spark commit, whose cost is fixed however few the rows.
DRIVER_ROWS = 1_000_000
# What delta-rs keeps when it commits: the writer features it implements (a change feed that Spark reads as an
# overwrite's deletes and inserts, generated columns it computes), and the properties it may create a table with;
# a table asking more of its writers (row tracking, column mapping, deletion vectors…) gets Spark
DELTA_RS_WRITER_FEATURES = frozenset(
    {"appendOnly", "invariants", "checkConstraints", "changeDataFeed", "generatedColumns"}
)
DELTA_RS_LEGACY_WRITER_VERSION = 4  # the legacy protocol versions up to 4 ask for DELTA_RS_WRITER_FEATURES only
CHANGE_FEED = {"delta.enableChangeDataFeed": "true"}
DELTA_RS_PROPERTIES = {**NO_DELETION_VECTORS, **CHANGE_FEED}
USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"  # the session's record, for a commit without options
ROWS_KEPT = ("OPTIMIZE", "VACUUM START", "VACUUM END", "SET TBLPROPERTIES")  # operations that keep the rows


def commit_metadata(record: dict) -> str:
    """A commit's record as Delta keeps it (the commit's userMetadata): one JSON object, its keys sorted, each
    key one stage's provenance, which `Table.records` finds again."""
    return json.dumps(record, sort_keys=True)


def of(config: Config, table: str) -> Table:
    """The handle of one of the run's tables, its metastore name or its folder resolved once (as
    DeltaTable.forName and forPath resolve theirs)."""
    schema = output_schema(config)
    name = quoted([*schema, table]) if schema is not None and table in USER_TABLES else None
    return Table(config, table, name, config.out(table))


@dataclass(frozen=True, eq=False)
class Table:
    """One table of a run: a managed table by `name` when outputs go to a schema and it is a user table, else
    the Delta folder at `path` under --out. Every read, write, version and record of it goes through here."""

    config: Config
    key: str  # "views", "split/train", "synthetic/assets", …
    name: str | None  # quoted catalog.schema.table
    path: str  # its folder: where it lives when it has no name

    @property
    def where(self) -> str:
        """Where the table is, for people: its metastore name or its path."""
        return self.name or self.path

    @property
    def local_folder(self) -> bool:
        """Whether it is a Delta folder of files (not named in a metastore, not remote: on this machine or a FUSE
        mount), whose log and files delta-rs reads without a Spark job."""
        return self.name is None and not is_remote(self.path)

    def missing(self) -> InputError:
        """The error of reading it before it is written, naming the command that writes it."""
        stage = USER_TABLES.get(self.key, "sample" if self.key == "seasons" else "run")
        state = "not written yet (a write stopped before its first commit)" if started(self.path) else "not found"
        return InputError(
            f"{self.where} {state}: run `film2vec {stage}` (or `film2vec run`) with the same "
            f"{'--catalog/--schema' if self.name else '--out'} first"
        )

    def exists(self, spark: SparkSession) -> bool:
        """Whether the table is there (a metastore name, a local folder, or a remote path Delta finds)."""
        if self.name:
            return spark.catalog.tableExists(self.name)
        if is_remote(self.path):
            from delta.tables import DeltaTable

            return DeltaTable.isDeltaTable(spark, self.path)
        return committed(self.path)

    def read(self, spark: SparkSession, version: int | None = None) -> DataFrame:
        """Its rows (at a Delta version when given); InputError naming the command that writes it."""
        if not self.exists(spark):
            raise self.missing()
        reader = spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        return reader.table(self.name) if self.name else reader.load(self.path)

    def read_arrow(self, spark: SparkSession, columns: list[str]) -> pa.Table:
        """Its columns as an Arrow table: read by delta-rs from a local folder whose files hold its rows as they
        are (a Spark job of a second or more saved), else collected from Spark."""
        held = self._readable_without_spark()
        if held is not None:
            return _read_files(held, self.path, columns)
        return self.read(spark).select(*columns).toArrow()

    def rows_where(self, spark: SparkSession, column: str, value: int) -> pa.Table | DataFrame:
        """Its rows whose `column` is `value`: read by delta-rs into the driver from a local folder of at most
        DRIVER_ROWS rows (its files' footers say; no Spark job), else a Spark frame."""
        import pyarrow.dataset as ds
        from pyspark.sql import functions as F

        held = self._driver_table()
        if held is not None:
            return _read_files(held, self.path, None, ds.field(column) == value)
        return self.read(spark).where(F.col(column) == value)

    def driver_rows(self, columns: list[str]) -> pa.Table | None:
        """Its columns read into the driver by delta-rs from a local folder of at most DRIVER_ROWS rows (its files'
        footers say; no Spark job), else None: the caller reads it with Spark."""
        held = self._driver_table()
        return None if held is None else _read_files(held, self.path, columns)

    def rows_and_distinct(self, spark: SparkSession, column: str) -> tuple[int, int]:
        """Its rows and the distinct values of `column` (nulls not counted): read by delta-rs from a local folder
        of at most DRIVER_ROWS rows, else counted by a Spark job."""
        import pyarrow.compute as pc
        from pyspark.sql import functions as F

        held = self._driver_table()
        if held is not None:
            values = _read_files(held, self.path, [column]).column(column)
            return len(values), pc.count_distinct(values).as_py()
        counts = self.read(spark).agg(F.count("*"), F.count_distinct(column)).first()
        return counts[0], counts[1]

    def _readable_without_spark(self):
        """delta-rs's handle of a local folder whose files hold its rows as they are (_files_misread_by), else None.
        The log is read once, for the check and the read."""
        if not (self.local_folder and committed(self.path)):
            return None
        table = self._log()
        return None if _files_misread_by(table) else table

    def _driver_table(self):
        """delta-rs's handle when the driver reads its rows instead of a Spark frame: readable without Spark, of at
        most DRIVER_ROWS rows (its files' footers say); else None."""
        table = self._readable_without_spark()
        if table is None or _footer_rows(_file_names(table, self.path)) > DRIVER_ROWS:
            return None
        return table

    def partition_numbers(self, spark: SparkSession, column: str) -> list[int]:
        """The values of its integer partition column `column` that its current files hold, ascending: from a
        local folder's log by delta-rs, else by a Spark job."""
        if self.local_folder:
            return sorted({int(values[column]) for values in self._log().partitions()})
        return sorted(row[column] for row in self.read(spark).select(column).distinct().collect())

    def delete_rows(self, spark: SparkSession, condition: str) -> None:
        """Delete the rows matching `condition` (a SQL predicate) in one commit: by delta-rs from a plain local
        table, else through Spark; ConcurrentWriteError when another job commits to it too."""
        from film2vec.conflicts import committing

        with committing(self.where):
            if self._plain_local({}):
                self._log().delete(condition)
            else:
                self.delta(spark).delete(condition)

    def delta(self, spark: SparkSession) -> DeltaTable:
        """Delta's own handle (history, merge, optimize, vacuum)."""
        from delta.tables import DeltaTable

        if not self.exists(spark):
            raise self.missing()
        return DeltaTable.forName(spark, self.name) if self.name else DeltaTable.forPath(spark, self.path)

    def _log(self):
        """delta-rs's handle of a local folder's table (its log read without a Spark job); InputError naming the
        command that writes it."""
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        try:
            return DeltaTable(self.path)
        except TableNotFoundError:
            raise self.missing() from None

    def version(self, spark: SparkSession) -> int:
        """Its latest version: from its log by delta-rs for a local folder (a Spark job of Delta's history costs
        ~0.4 s, and a run asks five times), else from Delta's history."""
        if not self.local_folder:
            return self.delta(spark).history(1).first()["version"]
        return self._log().version()

    def records(self, spark: SparkSession, key: str) -> list[tuple[int, dict]]:
        """(version, record) of each commit whose record (`write(record=…)`) holds `key` (the provenance a stage
        writes with its rows), newest first; a local folder's log is read by delta-rs (Delta's history is a Spark
        job)."""
        from pyspark.sql import functions as F

        marker = json.dumps(key)
        if self.local_folder:
            history = self._log().history()
            commits = sorted(
                (
                    (commit["version"], commit["userMetadata"])
                    for commit in history
                    if marker in commit.get("userMetadata", "")
                ),
                reverse=True,
            )
        else:
            history = self.delta(spark).history().where(F.col("userMetadata").contains(marker))
            commits = [
                tuple(commit)
                for commit in history.select("version", "userMetadata").orderBy(F.desc("version")).collect()
            ]
        return [(version, json.loads(metadata)[key]) for version, metadata in commits]

    def changed_since(self, spark: SparkSession, version: int) -> list[int]:
        """The versions after `version` whose commits changed its rows (a compaction or vacuum does not); a local
        folder's log is read by delta-rs (Delta's history is a Spark job)."""
        from pyspark.sql import functions as F

        if self.local_folder:
            history = self._log().history()
            return sorted(
                commit["version"]
                for commit in history
                if commit["version"] > version and commit.get("operation") not in ROWS_KEPT
            )
        later = self.delta(spark).history().where(F.col("version") > version)
        return sorted(commit["version"] for commit in later.where(~F.col("operation").isin(*ROWS_KEPT)).collect())

    def write(
        self, rows: DataFrame | pa.Table, *, record: dict | None = None, at_most: int | None = None, **properties: str
    ) -> None:
        """Replace its rows in one Delta commit; ConcurrentWriteError when another job commits to it too.

        `record` is the commit's provenance (`records` reads it); `properties` are Delta table properties
        ("delta.…"). Rows held on the driver (an Arrow table), or a frame of at most DRIVER_ROWS rows
        (`at_most`), go to a plain table on this machine's disk by delta-rs, without a Spark commit; a metastore
        table, a mount, a remote path or a table with writer features gets them through Spark. Tables read
        without Spark are created with deletion vectors off, whatever the platform's default."""
        import pyarrow as pa
        from pyspark.sql import SparkSession

        if self.key in READ_WITHOUT_SPARK:
            properties = {**NO_DELETION_VECTORS, **properties}
        held = isinstance(rows, pa.Table)
        if (held or (at_most is not None and at_most <= DRIVER_ROWS)) and self._plain_local(properties):
            self._write_without_spark(rows if held else rows.toArrow(), properties, record)
            return
        frame = SparkSession.active().createDataFrame(rows) if held else rows
        writer = frame.write.format("delta").mode("overwrite").option("overwriteSchema", "true").options(**properties)
        self._commit(frame.sparkSession, _recorded(writer, record))

    def replace_rows(self, rows: DataFrame | pa.Table, condition: str, *, record: dict | None = None) -> None:
        """Replace the rows matching `condition` (a SQL predicate every one of `rows` meets) in one Delta commit,
        its other rows untouched; created when missing. Rows held on the driver (an Arrow table) go to a plain
        local table by delta-rs, as `write` sends them."""
        import pyarrow as pa
        from pyspark.sql import SparkSession

        held = isinstance(rows, pa.Table)
        if held and self._plain_local({}):
            self._write_without_spark(rows, {}, record, condition)
            return
        frame = SparkSession.active().createDataFrame(rows) if held else rows
        writer = frame.write.format("delta").mode("overwrite").option("replaceWhere", condition)
        self._commit(frame.sparkSession, _recorded(writer, record))

    def append(self, frame: DataFrame) -> None:
        """Append rows in one Delta commit."""
        self._commit(frame.sparkSession, frame.write.format("delta").mode("append"))

    def merge_sum(
        self, spark: SparkSession, rows: DataFrame, keys: tuple[str, ...], column: str, *, record: dict
    ) -> dict:
        """Add `rows` in one MERGE commit carrying `record`: a row whose `keys` match gets its `column` summed,
        the others are inserted. Returns the commit's operation metrics. A MERGE takes no writer options, so the
        record goes through the session's commit setting, unset afterwards."""
        from film2vec.conflicts import committing

        matched = " AND ".join(f"target.{key} = source.{key}" for key in keys)
        spark.conf.set(USER_METADATA, commit_metadata(record))
        try:
            with committing(self.where):
                self.delta(spark).alias("target").merge(rows.alias("source"), matched).whenMatchedUpdate(
                    set={column: f"target.{column} + source.{column}"}
                ).whenNotMatchedInsertAll().execute()
        finally:
            spark.conf.unset(USER_METADATA)
        return self.delta(spark).history(1).first()["operationMetrics"]

    def compact(self, spark: SparkSession, retention_hours: float) -> dict:
        """OPTIMIZE it (a refresh's appends and MERGEs leave small and rewritten files behind every night), then
        VACUUM the files no version younger than `retention_hours` references; the files added and removed."""
        check = "spark.databricks.delta.retentionDurationCheck.enabled"
        # VACUUM lists the table's files in this many tasks (10,000 by default, each with a fixed cost); as many
        # as the session's shuffle partitions do
        listing = "spark.sql.sources.parallelPartitionDiscovery.parallelism"
        delta = self.delta(spark)
        optimized = delta.optimize().executeCompaction().first()["metrics"]
        if retention_hours < 168:  # Delta refuses a retention under its default unless the check is off for this call
            spark.conf.set(check, "false")
        before = spark.conf.get(listing, None)
        spark.conf.set(listing, spark.conf.get("spark.sql.shuffle.partitions"))
        try:
            delta.vacuum(retention_hours)
        finally:
            spark.conf.unset(check)
            if before is None:
                spark.conf.unset(listing)
            else:
                spark.conf.set(listing, before)
        return {"files_added": optimized["numFilesAdded"], "files_removed": optimized["numFilesRemoved"]}

    def _plain_local(self, properties: dict[str, str]) -> bool:
        """Whether delta-rs may replace it: a folder on this machine's disk, asked for no table property beyond
        DELTA_RS_PROPERTIES, and (when it exists) asking of its writers only what delta-rs keeps."""
        from deltalake import DeltaTable

        if self.name or not writes_in_place(self.path):
            return False
        if properties.items() - DELTA_RS_PROPERTIES.items():
            return False
        if not committed(self.path):
            return True
        protocol = DeltaTable(self.path).protocol()
        if protocol.min_writer_version < 7:
            return protocol.min_writer_version <= DELTA_RS_LEGACY_WRITER_VERSION
        return set(protocol.writer_features or ()) <= DELTA_RS_WRITER_FEATURES

    def _write_without_spark(
        self, rows: pa.Table, properties: dict[str, str], record: dict | None, condition: str | None = None
    ) -> None:
        """Replace a plain local table's rows (those matching `condition` when given) by delta-rs in one commit
        carrying `record`."""
        from film2vec.conflicts import committing

        with committing(self.where):
            _delta_rs_write(
                self.path,
                rows,
                record,
                schema_mode=None if condition else "overwrite",
                predicate=condition,
                configuration=properties,
            )

    def _commit(self, spark: SparkSession, writer: DataFrameWriter) -> None:
        """Run a Delta write to its name or path; a commit conflict becomes ConcurrentWriteError."""
        from film2vec.conflicts import committing

        if self.name:
            ensure_schema(spark, self.config)
        with committing(self.where):
            if self.name:
                writer.saveAsTable(self.name)
            else:
                writer.save(self.path)


def _recorded(writer: DataFrameWriter, record: dict | None) -> DataFrameWriter:
    """A Spark writer whose commit carries `record`."""
    return writer if record is None else writer.option("userMetadata", commit_metadata(record))


def _delta_rs_write(path: str, rows: pa.Table, record: dict | None, **arguments) -> None:
    """An overwrite by delta-rs whose commit carries `record`, as a Spark commit's userMetadata does."""
    from deltalake import CommitProperties, write_deltalake

    metadata = None if record is None else {"userMetadata": commit_metadata(record)}
    write_deltalake(
        path, rows, mode="overwrite", commit_properties=CommitProperties(custom_metadata=metadata), **arguments
    )


def replace_partition(
    rows: DataFrame | pa.Table, path: str, column: str, value: int, *, record: dict | None = None
) -> None:
    """Replace the partition `column` = `value` of the Delta table at `path` (partitioned by `column`, other
    partitions untouched) in one commit carrying `record`: from Spark, or by delta-rs for rows held on the
    driver. Optimized writes stay off: they would reshuffle sorted rows. ConcurrentWriteError when another job
    commits to the table between this write's read and commit."""
    import pyarrow as pa

    from film2vec.conflicts import committing

    condition = f"{column} = {int(value)}"
    with committing(f"{column} {value} of {path}"):
        if isinstance(rows, pa.Table):
            _delta_rs_write(
                path, rows, record, partition_by=[column], predicate=condition, configuration=NO_DELETION_VECTORS
            )
            return
        writer = (
            rows.write.format("delta")
            .mode("overwrite")
            .options(**NO_DELETION_VECTORS)
            .option("optimizeWrite", "false")
            .option("replaceWhere", condition)
            .partitionBy(column)
        )
        _recorded(writer, record).save(path)


def embeddings_table(asset_ids: pa.Array, vectors: np.ndarray, source: str = "views") -> pa.Table:
    """(asset_id, vector, source) with vectors as lists of float32; source is 'views' for trained vectors and
    'metadata' for provisional ones made from labels."""
    import numpy as np
    import pyarrow as pa

    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).ravel())
    offsets = pa.array(np.arange(0, len(flat) + 1, vectors.shape[1], dtype=np.int32))
    return pa.table(
        {
            "asset_id": asset_ids,
            "vector": pa.ListArray.from_arrays(offsets, flat),
            "source": pa.array([source] * len(asset_ids), pa.string()),
        }
    )


def open_without_spark(path: str, what: str):
    """A Delta table opened with delta-rs (no JVM), for the trainer and `film2vec similar`, whose files pyarrow
    then reads as they are; a table whose files do not hold its rows as they are (deletion vectors or column
    mapping, turned on by hand or by a platform default) stops with what to do instead of a reader's own error."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    if not is_remote(path) and Path(path).is_dir() and not committed(path):
        raise InputError(f"{what} at {path} is not written yet: a write stopped before its first commit")
    try:
        table = DeltaTable(path)
    except TableNotFoundError:
        raise InputError(f"{what} not found: no Delta table at {path}") from None
    refused = _files_misread_by(table)
    if refused:
        raise InputError(
            f"{what} at {path} cannot be read without Spark: its protocol has the reader feature "
            f"{' and '.join(refused)}, so its Parquet files do not hold its rows as they are. film2vec creates it "
            "with delta.enableDeletionVectors = false and no column mapping; this copy has them (set by hand, or "
            "by a platform default on a table film2vec did not create). Delete the folder and rerun the stage that "
            "writes it, or drop them in place: "
            + " then ".join(f"ALTER TABLE delta.`{path}` DROP FEATURE {name}" for name in refused)
        )
    return table


def _files_misread_by(table) -> list[str]:
    """The reader features of a delta-rs table under which its Parquet files, read as they are (by pyarrow), do
    not hold its rows: deletion vectors (rows marked deleted beside the files) and column mapping (the files name
    columns by id)."""
    protocol = table.protocol()
    features = set(protocol.reader_features or ())
    if protocol.min_reader_version == 2:  # column mapping, before table features
        features.add("columnMapping")
    return sorted(features & {"deletionVectors", "columnMapping"})


def files_without_spark(path: str, what: str, partition: tuple[str, str] | None = None) -> list[str]:
    """The data files of a Delta table's current version (of one partition, (column, value), when given), listed
    by delta-rs without Spark, for pyarrow to read: scanning through delta-rs's own file system leaves threads
    that can abort the process at exit (delta-io/delta-rs#2184)."""
    return _file_names(open_without_spark(path, what), path, partition)


def _file_names(table, path: str, partition: tuple[str, str] | None = None) -> list[str]:
    """The data files of a delta-rs table at `path` as pyarrow opens them: delta-rs gives a local file as its
    URI's path, percent-encoded ("my%20runs/…"), and pyarrow wants the file's name."""
    from urllib.parse import unquote

    if partition is None:
        files = table.file_uris()
    else:
        chosen = [(partition[0], "=", partition[1])]
        try:
            files = table.file_uris(file_pruning_predicate=chosen)
        except TypeError:  # deltalake before 1.6.6 (Databricks Runtime 18 ships 1.1.4) names it partition_filters
            files = table.file_uris(partition_filters=chosen)
    return files if is_remote(path) else [unquote(file) for file in files]


def rows_without_spark(path: str, what: str, partition: tuple[str, str] | None = None) -> int:
    """The rows of a Delta table's current version (of one partition, when given), from its files' Parquet
    footers: no data read, no Spark job."""
    return _footer_rows(files_without_spark(path, what, partition))


def _footer_rows(files: list[str]) -> int:
    """The rows of Parquet files, from their footers."""
    import pyarrow.dataset as ds

    return ds.dataset(files, format="parquet").count_rows() if files else 0


def read_without_spark(path: str, what: str, columns: list[str] | None, where=None):
    """Rows of an unpartitioned Delta table as an Arrow table (every column when `columns` is None), read
    without Spark; `where` is a pyarrow.dataset filter. A table without rows keeps its schema."""
    return _read_files(open_without_spark(path, what), path, columns, where)


def _read_files(table, path: str, columns: list[str] | None, where=None):
    """read_without_spark on an opened delta-rs table."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    files = _file_names(table, path)
    if not files:
        empty = pa.schema(table.schema().to_arrow()).empty_table()
        return empty if columns is None else empty.select(columns)
    return ds.dataset(files, format="parquet").to_table(columns=columns, filter=where)
