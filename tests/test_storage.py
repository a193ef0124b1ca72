"""One rule for where a path lives (film2vec.storage), and every writer that asks it: on a FUSE mount, pointed
here at a temporary folder standing in for /Volumes, Spark writes the seasons, torch's checkpoints and
MLflow's SQLite store stay off it."""

from __future__ import annotations

import pytest
from deltalake import DeltaTable

from film2vec import cli
from film2vec.config import ConfigError
from film2vec.errors import ExitCode
from film2vec.storage import FUSE_ROOTS_VARIABLE, Storage, local_scratch, storage, writes_in_place
from film2vec.tracking import use_store

SMALL = ["--users", "200", "--catalogue-size", "40", "--genres", "4", "--views-per-user", "10"]
ONE_SEASON = ["--seasons", "1", "--sampler", "driver"]


@pytest.mark.parametrize(
    ("path", "where"),
    [
        ("/Volumes/main/film2vec/film2vec/out", Storage.FUSE),
        ("/dbfs/mnt/film2vec", Storage.FUSE),
        ("s3://bucket/film2vec", Storage.REMOTE),
        ("abfss://box@account.dfs.core.windows.net/film2vec", Storage.REMOTE),
        ("gs://bucket/film2vec", Storage.REMOTE),
        ("dbfs:/film2vec", Storage.REMOTE),
        ("/tmp/film2vec", Storage.LOCAL),
        ("out/film2vec", Storage.LOCAL),
        ("/Volumesque/film2vec", Storage.LOCAL),  # a root is a folder, not a prefix of a name
    ],
)
def test_a_path_lives_in_one_of_three_places(path, where):
    assert storage(path) is where
    assert writes_in_place(path) == (where is Storage.LOCAL)


@pytest.fixture
def mount(tmp_path, monkeypatch):
    """A temporary folder standing in for /Volumes."""
    root = tmp_path / "Volumes"
    root.mkdir()
    monkeypatch.setenv(FUSE_ROOTS_VARIABLE, str(root))
    return root


def test_checkpoints_and_the_local_mlflow_store_keep_off_a_mount(mount):
    out = str(mount / "main" / "film2vec" / "out")
    assert storage(out) is Storage.FUSE and storage(str(mount.parent / "elsewhere")) is Storage.LOCAL
    scratch = local_scratch(f"{out}/checkpoints")
    assert not scratch.startswith(str(mount)) and scratch == local_scratch(f"{out}/checkpoints")  # a retry finds it
    assert local_scratch(str(mount.parent / "checkpoints")) == str(mount.parent / "checkpoints")
    with pytest.raises(ConfigError, match="MLFLOW_TRACKING_URI"):
        use_store(out)


def test_on_a_mount_spark_writes_the_seasons_and_delta_rs_only_reads(spark, mount, tmp_path, monkeypatch):
    out = mount / "out"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")  # as a workspace's server
    assert cli.main(["pairs", "--out", str(out), *SMALL]) == ExitCode.OK
    assert cli.main(["sample", "--out", str(out), *ONE_SEASON]) == ExitCode.OK
    commits = DeltaTable(str(out / "seasons")).history()
    assert commits and all("Apache-Spark" in commit.get("engineInfo", "") for commit in commits)
    local = tmp_path / "local"
    assert cli.main(["pairs", "--out", str(local), *SMALL]) == ExitCode.OK
    assert cli.main(["sample", "--out", str(local), *ONE_SEASON]) == ExitCode.OK
    written = DeltaTable(str(local / "seasons")).history(1)[0]
    assert "delta-rs" in written.get("clientVersion", "")  # the driver's sampler writes in place on a local disk
