"""The validation gate: validate and promote act on the version a job trained, never the newest; the served
tables change only when a version is promoted; a failed or unfinished version leaves them as they were."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pyarrow as pa
import pytest
from deltalake import DeltaTable
from test_tracking import no_server, register  # noqa: F401 (a fixture)

from film2vec import cli, task_values
from film2vec.cli import config_from, parser
from film2vec.config import TrackingConfig
from film2vec.errors import ExitCode
from film2vec.serving import gate
from film2vec.tables import embeddings_table
from film2vec.tracking import use_store

FLOOR = ["--alias-floor-genre-p", "0.7"]


def trained(spark, out: str, tmp_path, genre_p: float) -> int:
    """A registered version with its candidate rows, as `train --move-alias by_promote` leaves them."""
    figures = {"genre_p_at_10": genre_p}
    version = int(register(use_store(out), TrackingConfig(), tmp_path / f"staging-{genre_p}", figures))
    config = config_from(parser().parse_args(["train", "--out", out]))
    vectors = np.random.default_rng(version).standard_normal((6, 4)).astype(np.float32)
    record = {gate.EMBEDDINGS_RECORD: {"model_version": version, "run_id": "r"}}
    embeddings = spark.createDataFrame(embeddings_table(pa.array(np.arange(6)), vectors))
    gate.write_candidate(config, embeddings, "embeddings", version, record)
    neighbours = spark.createDataFrame([(0, 1, 1, 0.5)], "asset_id long, rank int, neighbour_id long, score double")
    gate.write_candidate(config, neighbours, "neighbours", version, record)
    return version


def served(out: str) -> dict:
    """Each served table's Delta version, files and model versions."""
    state = {}
    for table in gate.SERVED_TABLES:
        found = DeltaTable(f"{out}/{table}")
        versions = sorted(set(found.to_pandas(columns=["model_version"]).model_version))
        state[table] = (found.version(), sorted(found.file_uris()), versions)
    return state


def alias(out: str) -> str:
    use_store(out)
    return str(mlflow.MlflowClient().get_model_version_by_alias("film2vec", "champion").version)


@pytest.mark.usefixtures("no_server")
def test_each_job_gates_the_version_it_trained_and_never_guesses_the_newest(spark, tmp_path, capsys, monkeypatch):
    out = str(tmp_path / "out")
    first = trained(spark, out, tmp_path, 0.8)  # a nightly job's version
    second = trained(spark, out, tmp_path, 0.9)  # a manual run registered after it
    assert cli.main(["validate", "--out", out, *FLOOR]) == ExitCode.USAGE  # no --version, no task value
    assert "never takes the newest version" in capsys.readouterr().err
    evaluated = register(
        use_store(out), TrackingConfig(model_name="film2vec_evaluation"), tmp_path / "e", {"recall_at_20": 0.12}
    )
    held_out = ["--evaluation-model", "film2vec_evaluation", "--alias-floor-recall", "0.1"]
    assert cli.main(["validate", "--out", out, "--version", str(first), *FLOOR, *held_out]) == ExitCode.USAGE
    assert "--evaluation-version" in capsys.readouterr().err  # nor the newest evaluation
    held_out += ["--evaluation-version", evaluated]
    assert cli.main(["validate", "--out", out, "--version", str(first), *FLOOR, *held_out]) == ExitCode.OK
    assert cli.main(["promote", "--out", out, "--version", str(first)]) == ExitCode.OK
    assert alias(out) == str(first)
    assert {state[2][0] for state in served(out).values()} == {first}
    newer = mlflow.MlflowClient().get_model_version("film2vec", str(second))
    assert gate.VALIDATION_TAG not in newer.tags  # the other job's version is untouched
    config = config_from(parser().parse_args(["train", "--out", out]))
    assert gate.candidate_rows(spark, config, "embeddings", second).count() == 6
    # in a job, the train task's published version is the one validate and promote act on
    monkeypatch.setenv(task_values.LOCAL_FILE, str(tmp_path / "task_values.json"))
    task_values.publish(gate.TRAIN_TASK, gate.VERSION_KEY, second)
    assert cli.main(["validate", "--out", out, *FLOOR]) == ExitCode.OK
    assert cli.main(["promote", "--out", out]) == ExitCode.OK
    assert alias(out) == str(second) and {state[2][0] for state in served(out).values()} == {second}


@pytest.mark.usefixtures("no_server")
def test_a_version_that_fails_changes_no_served_row_unless_promoted_by_force(spark, tmp_path):
    out = str(tmp_path / "out")
    good = trained(spark, out, tmp_path, 0.8)
    assert cli.main(["validate", "--out", out, "--version", str(good), *FLOOR]) == ExitCode.OK
    assert cli.main(["promote", "--out", out, "--version", str(good)]) == ExitCode.OK
    before = served(out)
    bad = trained(spark, out, tmp_path, 0.5)  # a crash here, after the candidate write, is the same state
    assert served(out) == before
    assert cli.main(["validate", "--out", out, "--version", str(bad), *FLOOR]) == ExitCode.FLOORS
    assert cli.main(["promote", "--out", out, "--version", str(bad)]) == ExitCode.FLOORS
    assert served(out) == before and alias(out) == str(good)  # not one commit to the served tables

    assert cli.main(["promote", "--out", out, "--version", str(bad), "--force", "true"]) == ExitCode.OK
    assert alias(out) == str(bad) and {state[2][0] for state in served(out).values()} == {bad}
    forced = mlflow.MlflowClient().get_model_version("film2vec", str(bad)).tags[gate.FORCED_TAG]
    assert "genre_p_at_10 = 0.5000 is below the floor 0.7" in forced
    commit = DeltaTable(f"{out}/embeddings").history(1)[0]
    assert json.loads(commit["userMetadata"])[gate.SERVED_RECORD]["why"] == forced


@pytest.mark.usefixtures("no_server")
def test_the_served_embeddings_record_their_changes_for_a_vector_search_index(spark, tmp_path):
    out = str(tmp_path / "out")
    versions = [trained(spark, out, tmp_path, genre_p) for genre_p in (0.8, 0.9)]
    for version in versions:
        assert cli.main(["promote", "--out", out, "--version", str(version), "--force", "true"]) == ExitCode.OK
    served = DeltaTable(f"{out}/embeddings")
    assert served.metadata().configuration["delta.enableChangeDataFeed"] == "true"
    assert served.history(1)[0]["engineInfo"].startswith("delta-rs")  # a local table is served without Spark
    rows = served.to_pandas()
    assert rows[gate.KEY].notna().all() and rows[gate.KEY].is_unique  # one row per asset: the index's key
    changes = (
        spark.read.format("delta")
        .option("readChangeFeed", "true")
        .option("startingVersion", served.version())
        .load(f"{out}/embeddings")
    )
    counted = {
        (row["_change_type"], row["model_version"]): row["count"]
        for row in changes.groupBy("_change_type", "model_version").count().collect()
    }
    assert counted == {("delete", versions[0]): 6, ("insert", versions[1]): 6}
