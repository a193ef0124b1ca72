"""The MLflow store: each local output folder keeps its own runs and its own model registry."""

from __future__ import annotations

import mlflow

from film2vec.tracking import use_store


def test_each_local_store_gets_its_own_registry(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    first = use_store(str(tmp_path / "history"))
    assert mlflow.get_registry_uri() == first.uri
    second = use_store(str(tmp_path / "refresh"))  # e.g. a benchmark's second output folder in the same process
    assert mlflow.get_tracking_uri() == mlflow.get_registry_uri() == second.uri != first.uri
