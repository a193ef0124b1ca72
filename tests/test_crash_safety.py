"""SIGKILL a real `film2vec` process while it writes the pair table, a season, or trains; nothing is lost.
And two real `film2vec pairs` processes on their own --out at once: each gets its own, exact table.

Each test runs the CLI as a child process (python, and its Spark JVM, in their own process group) on a
small synthetic catalogue that the shared session wrote first, kills the whole group the moment the
child starts writing (its first new data file) or checkpoints, then checks that the table's latest version
is the previous one, whole, and that a rerun completes and gives what a clean run gives.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml
from deltalake import DeltaTable
from scipy import sparse

from film2vec.config import Config
from film2vec.pairs.stage import count_pairs
from film2vec.seasons.stage import sample
from film2vec.train.checkpoint import CHECKPOINT_FILE
from film2vec.train.stage import train_vectors

pytestmark = pytest.mark.slow
REPOSITORY = Path(__file__).resolve().parents[1]
SETTINGS = {  # small, but with several write tasks per table so that a kill lands between two of them
    "users": 600,
    "catalogue_size": 150,
    "views_per_user": 15,
    "shuffle_partitions": 6,
    "sample_partitions": 6,
    "seasons": 3,
    "sampler": "spark",  # a season drawn on the driver is one file, committed before a kill can land in it
    "samples_per_view": 6.5,
    "dim": 32,
    "epochs_per_season": 2,
    "batch_size": 512,
    "device": "cpu",
}


def configured(out: Path) -> Config:
    config = Config()
    config.data.out = str(out)
    for name, value in SETTINGS.items():
        section = next(s for s in (config.synthetic, config.spark, config.seasons, config.train) if hasattr(s, name))
        setattr(section, name, value)
    return config


def start(command: str, out: Path, *more: str) -> subprocess.Popen:
    """`film2vec COMMAND` on `out` with SETTINGS (as a profile: each command reads its part), as a child in its
    own process group (python and its JVM)."""
    profile = out.with_name(f"{out.name}.yaml")
    profile.write_text(yaml.safe_dump(dataclasses.asdict(configured(out))))
    environment = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}
    return subprocess.Popen(
        [sys.executable, "-m", "film2vec.cli", command, f"--profile={profile}", "--master=local[2]"]
        + ["--driver-memory=1g", *more],
        cwd=REPOSITORY,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def kill_when(process: subprocess.Popen, happened, what: str, timeout: float = 600) -> None:
    """SIGKILL the child's process group as soon as `happened()` holds; fail if the child ends first."""
    deadline = time.monotonic() + timeout
    while not happened():
        if process.poll() is not None:
            pytest.fail(f"the child ended before {what}:\n{process.stdout.read()[-3000:]}")
        if time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail(f"no {what} within {timeout} s")
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def data_files(table: Path) -> set[Path]:
    return set(table.rglob("*.parquet"))


def snapshot(path: str) -> tuple[int, list[tuple]]:
    """(latest version, sorted rows) of a Delta table."""
    table = DeltaTable(path)
    rows = sorted(tuple(str(value) for value in row.values()) for row in table.to_pyarrow_table().to_pylist())
    return table.version(), rows


@pytest.fixture(scope="module")
def finished(spark, tmp_path_factory) -> Config:
    """A complete pairs and seasons run, written by the shared session; each test leaves it complete again."""
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    config = configured(tmp_path_factory.mktemp("crash") / "out")
    count_pairs(spark, config)
    sample(spark, config)
    return config


@pytest.mark.parametrize("stage, table", [("pairs", "pairs"), ("sample", "seasons")])
def test_killed_while_writing_leaves_the_previous_version_and_a_rerun_completes(spark, finished, stage, table):
    path = Path(finished.out(table))
    before = snapshot(str(path))
    existing = data_files(path)
    child = start(stage, Path(finished.data.out))
    kill_when(child, lambda: bool(data_files(path) - existing), f"a new data file in {path}")
    assert data_files(path) - existing, "the kill came before any data file was written"
    assert snapshot(str(path)) == before  # the uncommitted files are not part of any version
    {"pairs": count_pairs, "sample": sample}[stage](spark, finished)
    version, rows = snapshot(str(path))
    assert version > before[0] and rows == before[1]  # a rerun commits exactly what the clean run wrote


def test_killed_trainer_resumes_from_its_last_season_checkpoint(spark, finished):
    checkpoint = Path(finished.out("checkpoints")) / CHECKPOINT_FILE
    child = start("train", Path(finished.data.out))
    kill_when(child, checkpoint.is_file, "a season checkpoint")
    resumed = train_vectors(spark, finished)
    assert 1 <= len(resumed["resumed_seasons"]) < SETTINGS["seasons"]
    assert resumed["resumed_seasons"] == list(range(len(resumed["resumed_seasons"])))
    done = len(resumed["resumed_seasons"])
    trained = mlflow.MlflowClient().get_metric_history(resumed["run_id"], "season")
    assert {int(metric.value) for metric in trained} == set(range(done, SETTINGS["seasons"]))  # the rest, once each
    assert len(trained) == (SETTINGS["seasons"] - done) * SETTINGS["epochs_per_season"]
    embeddings = DeltaTable(finished.out("embeddings")).to_pyarrow_table()
    assert embeddings.num_rows == resumed["assets_with_vectors"] > 0
    assert not checkpoint.exists()  # cleared once the run is written


def brute_force_pairs(events: str) -> dict[tuple[int, int], int]:
    """co_views of every ordered pair of distinct assets: XᵀX off the diagonal, from the events table."""
    table = DeltaTable(events).to_pyarrow_table(columns=["user_id", "asset_id"])
    users, user_row = np.unique(table.column("user_id").to_numpy(), return_inverse=True)
    assets, asset_column = np.unique(table.column("asset_id").to_numpy(), return_inverse=True)
    X = sparse.csr_matrix((np.ones(len(user_row)), (user_row, asset_column)), shape=(len(users), len(assets)))
    X.data[:] = 1  # a repeated view counts once
    gram = (X.T @ X).tocoo()
    return {(int(assets[a]), int(assets[b])): int(n) for a, b, n in zip(gram.row, gram.col, gram.data) if a != b}


def test_two_runs_with_their_own_out_at_once_each_get_their_exact_pairs(tmp_path):
    outs = {seed: tmp_path / f"seed-{seed}" for seed in (1, 2)}  # other seeds: other catalogues
    children = {seed: start("pairs", out, f"--seed={seed}") for seed, out in outs.items()}
    for child in children.values():
        output, _ = child.communicate(timeout=900)
        assert child.returncode == 0, output[-3000:]
    found = {}
    for seed, out in outs.items():
        rows = DeltaTable(str(out / "pairs")).to_pyarrow_table().to_pylist()
        found[seed] = {(row["asset_a"], row["asset_b"]): row["co_views"] for row in rows}
        assert found[seed] == brute_force_pairs(str(out / "synthetic" / "events"))
    assert found[1] != found[2]
