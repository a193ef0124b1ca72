"""The MLflow store (each local output folder keeps its own runs and registry; a server keeps MLflow's registry),
the input tables a run records, and the registered similar-assets model served in a separate process."""

from __future__ import annotations

import ast
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from film2vec.config import ConfigError, TrackingConfig
from film2vec.tables import embeddings_table
from film2vec.tracking import (
    experiment_id,
    log_input_tables,
    log_similar_assets_model,
    model_tables,
    use_store,
)


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


def test_run_records_its_input_delta_tables_and_versions(tmp_path, no_server):
    store = use_store(str(tmp_path))
    tables = {"views": (str(tmp_path / "views"), 0), "pairs": ("spark_catalog.film2vec.pairs.stage", 7)}
    with mlflow.start_run(experiment_id=experiment_id("inputs", store)) as run:
        log_input_tables(tables)
    recorded = {
        given.dataset.name: (given.dataset.source_type, json.loads(given.dataset.source))
        for given in mlflow.get_run(run.info.run_id).inputs.dataset_inputs
    }
    assert recorded == {
        "views": ("delta_table", {"path": str(tmp_path / "views"), "delta_table_version": 0}),
        "pairs": ("delta_table", {"delta_table_name": "spark_catalog.film2vec.pairs.stage", "delta_table_version": 7}),
    }


def brute_force_neighbours(vectors: np.ndarray, row: int, k: int) -> list[int]:
    """Rows by cosine to `row` (itself left out), best first, the lower row first on a tie."""
    cosine = vectors @ vectors[row] / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(vectors[row]))
    return sorted((other for other in range(len(vectors)) if other != row), key=lambda other: (-cosine[other], other))[
        :k
    ]


def served_over_rest(model: str, tracking_uri: str, request: dict, folder: Path) -> tuple[list[dict], set[str]]:
    """The predictions `mlflow models serve` (localhost, a free port, this environment) answers to one HTTP
    request, and the modules its processes imported (PYTHONPROFILEIMPORTTIME)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", model, "--env-manager", "local"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env |= {"MLFLOW_TRACKING_URI": tracking_uri, "PYTHONPROFILEIMPORTTIME": "1"}  # each import, to stderr
    log = (folder / "serve.log").open("w")
    server = subprocess.Popen(command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(600):  # up to 2 minutes for the server to load the model
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1):
                    break
            except OSError:
                assert server.poll() is None, (folder / "serve.log").read_text()[-3000:]
                time.sleep(0.2)
        answer = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps(request).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(answer, timeout=60) as response:
            predictions = json.loads(response.read())["predictions"]
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()
    lines = (folder / "serve.log").read_text().splitlines()
    return predictions, {line.rsplit("|", 1)[-1].strip() for line in lines if line.startswith("import time")}


def test_registered_model_is_served_over_rest_by_mlflow_in_a_separate_process(tmp_path, no_server):
    vectors = np.random.default_rng(7).standard_normal((50, 8)).astype(np.float32)
    asset_ids = np.arange(1000, 1050, dtype=np.int64)
    embeddings = embeddings_table(pa.array(asset_ids), vectors)
    optimiser_state = pa.table({"asset_id": asset_ids, "accumulator": np.linspace(0.0, 1.0, 50)})
    tracking = TrackingConfig(model_name="similar_assets", alias="champion", top_k=10)
    figures = {"recall_at_20": 0.25, "genre_p_at_10": 0.8}
    store = use_store(str(tmp_path / "out"))
    staging = tmp_path / "staging"
    staging.mkdir()
    with mlflow.start_run(experiment_id=experiment_id("serving", store)) as run:
        registered = log_similar_assets_model(embeddings, staging, tracking, True, optimiser_state, figures)
    assert registered.uri == "models:/similar_assets/1"
    assert model_tables(registered.uri) == (embeddings, optimiser_state)  # what a warm start reads back
    # the run's figures are on the logged model too, so each registered version shows its own
    assert {m.key: m.value for m in mlflow.get_logged_model(registered.model_id).metrics} == figures
    assert {key: mlflow.get_run(run.info.run_id).data.metrics[key] for key in figures} == figures

    queried = [1000, 1017, 1049, -1]
    request = {"dataframe_split": {"columns": ["asset_id"], "data": [[a] for a in queried]}, "params": {"k": 5}}
    served, imported = served_over_rest("models:/similar_assets@champion", store.uri, request, tmp_path)
    assert "mlflow.pyfunc" in imported and not {name for name in imported if name.split(".")[0] == "film2vec"}

    assert [answer["known"] for answer in served] == [True, True, True, False]
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    for answer, asset in zip(served[:3], queried):
        expected = brute_force_neighbours(vectors, asset - 1000, 5)
        assert answer["neighbours"] == asset_ids[expected].tolist()
        assert answer["scores"] == pytest.approx(unit[expected] @ unit[asset - 1000], abs=1e-5)
    assert served[3]["neighbours"] == [] and served[3]["scores"] == []

    folder = Path(mlflow.artifacts.download_artifacts(f"models:/{registered.model_id}"))
    assert not (folder / "python_model.pkl").exists()
    assert sorted(path.name for path in (folder / "code").iterdir()) == ["ann.py", "nearest.py"]  # no film2vec
    served_imports = {"mlflow", "numpy", "pandas", "pyarrow", "nearest", "ann", "film2vec"}
    for code, allowed in (  # beyond Python's own modules
        (folder / "registered_model.py", served_imports),
        (folder / "code" / "nearest.py", {"numpy"}),
        (folder / "code" / "ann.py", {"numpy", "faiss"}),
    ):
        tree = ast.parse(code.read_text())
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert {name.split(".")[0] for name in imported} - sys.stdlib_module_names <= allowed
    requirements = (folder / "requirements.txt").read_text().split()
    assert requirements == [f"{p.__name__}=={p.__version__}" for p in (mlflow, np, pd, pa)]


def test_a_large_catalogues_model_carries_its_index_and_searches_it(tmp_path, no_server):
    import faiss

    from film2vec.serving.ann import build_index
    from film2vec.serving.nearest import normalised

    rng = np.random.default_rng(8)
    groups = np.repeat(np.arange(50), 6)  # 50 planted groups of 6 near-identical vectors
    vectors = (rng.normal(size=(50, 16))[groups] + 0.01 * rng.normal(size=(300, 16))).astype(np.float32)
    asset_ids = np.arange(300, dtype=np.int64) * 7
    staging = tmp_path / "staging"
    staging.mkdir()
    store = use_store(str(tmp_path / "out"))
    with mlflow.start_run(experiment_id=experiment_id("index", store)):
        index = build_index(normalised(vectors), search_depth=64)
        tracking = TrackingConfig(model_name="indexed", top_k=5)
        embeddings = embeddings_table(pa.array(asset_ids), vectors)
        registered = log_similar_assets_model(embeddings, staging, tracking, True, index=index)
    folder = Path(mlflow.artifacts.download_artifacts(f"models:/{registered.model_id}"))
    assert f"faiss-cpu=={faiss.__version__}" in (folder / "requirements.txt").read_text().split()
    assert index.ntotal == 300 and (folder / "artifacts" / "neighbours.faiss").stat().st_size > 300 * 16 * 4

    model = mlflow.pyfunc.load_model(registered.uri)
    assert model.unwrap_python_model().index.hnsw.efSearch == 64  # the depth travels in the index
    answers = model.predict(pd.DataFrame({"asset_id": [0, 7 * 121, 5]}))
    for answer, row in zip(answers.itertuples(), (0, 121)):
        assert sorted(answer.neighbours) == sorted(asset_ids[(groups == groups[row]) & (np.arange(300) != row)])
        assert np.all(np.diff(answer.scores) <= 0) and min(answer.scores) > 0.99
    assert answers.known.tolist() == [True, True, False]


def register(store, tracking: TrackingConfig, staging: Path, figures: dict[str, float]) -> str:
    """A version of `tracking.model_name` logged with `figures`, the alias left where it was."""
    staging.mkdir(exist_ok=True)
    vectors = np.random.default_rng(3).standard_normal((12, 4)).astype(np.float32)
    with mlflow.start_run(experiment_id=experiment_id("gate", store)):
        found = log_similar_assets_model(embeddings_table(pa.array(np.arange(12)), vectors), staging, tracking, False)
        mlflow.log_metrics(figures)
    return found.version


def test_a_warm_start_needs_the_optimiser_state_the_model_carries(tmp_path, no_server):
    store = use_store(str(tmp_path / "out"))
    version = register(store, TrackingConfig(model_name="stateless"), tmp_path / "s", {"genre_p_at_10": 0.8})
    with pytest.raises(ConfigError, match="kept no optimiser state"):
        model_tables(f"models:/stateless/{version}")
