"""The MLflow store: each local output folder keeps its own runs and registry; a server keeps MLflow's registry."""

from __future__ import annotations

import mlflow
import pytest

from film2vec.config import ConfigError
from film2vec.tracking import use_store


@pytest.fixture
def no_server(monkeypatch):
    """No tracking server or registry set by the user; MLflow's process-wide URIs are put back afterwards."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    yield monkeypatch
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


def test_each_local_store_gets_its_own_registry(tmp_path, no_server):
    first = use_store(str(tmp_path / "history"))
    assert mlflow.get_registry_uri() == first.uri
    second = use_store(str(tmp_path / "refresh"))  # e.g. a benchmark's second output folder in the same process
    assert mlflow.get_tracking_uri() == mlflow.get_registry_uri() == second.uri != first.uri


def test_a_tracking_server_keeps_mlflows_registry_for_it(tmp_path, no_server):
    use_store(str(tmp_path / "local"))  # a local store chosen earlier in the process must not pin the registry
    no_server.setenv("MLFLOW_TRACKING_URI", "databricks")
    store = use_store("/Volumes/main/default/film2vec/out")
    assert store.uri == mlflow.get_tracking_uri() == "databricks" and store.artifacts is None
    assert mlflow.get_registry_uri() == "databricks-uc"  # Unity Catalog, MLflow's default for Databricks


def test_a_registry_the_user_set_is_honoured(tmp_path, no_server):
    use_store(str(tmp_path / "local"))
    no_server.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    no_server.setenv("MLFLOW_REGISTRY_URI", "http://registry.example:5000")
    use_store("s3://bucket/film2vec/out")
    assert mlflow.get_tracking_uri() == "http://tracking.example:5000"
    assert mlflow.get_registry_uri() == "http://registry.example:5000"


@pytest.mark.parametrize(
    "out", ["s3://bucket/film2vec/out", "dbfs:/film2vec/out", "/Volumes/main/default/film2vec/out", "/dbfs/film2vec"]
)
def test_remote_output_without_a_tracking_server_is_refused(tmp_path, no_server, out):
    no_server.chdir(tmp_path)
    use_store(str(tmp_path / "local"))  # its URI, exported to MLFLOW_TRACKING_URI, is not a server the user set
    with pytest.raises(ConfigError, match="MLFLOW_TRACKING_URI") as refused:
        use_store(out)
    assert out in str(refused.value) and "SQLite" in str(refused.value) and "databricks" in str(refused.value)
    assert not any(tmp_path.iterdir())  # no ./s3:/... store was made
