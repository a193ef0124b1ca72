"""MLflow: where runs go, what a training run logs, and the registered similar-assets model.

With MLFLOW_TRACKING_URI set, runs go to that server and models to MLflow's registry for it (Unity Catalog
on Databricks; MLFLOW_REGISTRY_URI when the user set one). Without it, film2vec keeps a local store under a
local output folder: tracking and registry in DIR/mlflow.db (SQLite), artifacts in DIR/mlartifacts.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from mlflow.data.delta_dataset_source import DeltaDatasetSource
from mlflow.data.meta_dataset import MetaDataset
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types.schema import Array, ColSpec, DataType, ParamSchema, ParamSpec, Schema

from film2vec.config import Config, ConfigError, TrackingConfig
from film2vec.serving import ann, nearest, registered_model
from film2vec.storage import writes_in_place

MODEL_CODE = Path(registered_model.__file__)  # the file MLflow logs as the model: it imports no film2vec
NEAREST_CODE = Path(nearest.__file__)  # the top-k rule it ranks by, logged beside it (numpy only)
ANN_CODE = Path(ann.__file__)  # the approximate search of a large catalogue's index (numpy and faiss)
EMBEDDINGS_FILE = "embeddings.parquet"
INDEX_FILE = "neighbours.faiss"
OPTIMISER_STATE_FILE = "optimiser_state.parquet"


@dataclass(frozen=True)
class Store:
    """Where runs and models go: a server named by MLFLOW_TRACKING_URI, or SQLite under the output folder."""

    uri: str
    artifacts: str | None  # the local artifact root; None when the server decides

    @property
    def ui_command(self) -> str:
        """How to look at the runs: the `mlflow ui` command for a local store, else the server."""
        if self.artifacts is None:
            return f"open {self.uri} in a browser"
        return f"mlflow ui --backend-store-uri {self.uri} --default-artifact-root {self.artifacts}"


_LOCAL_URIS: set[str] = set()  # stores film2vec chose; mlflow.set_tracking_uri copies them into the environment


def use_store(out_dir: str) -> Store:
    """Point MLflow at MLFLOW_TRACKING_URI when the user set it (on Databricks, the workspace when nobody did),
    else at the SQLite store under `out_dir`.

    A server keeps MLflow's registry for it (databricks-uc for `databricks`) or the user's
    MLFLOW_REGISTRY_URI; only the local store registers models in itself. Raises ConfigError when `out_dir`
    is remote and no server is set, since the local store is a SQLite file in a local folder.
    """
    given = os.environ.get("MLFLOW_TRACKING_URI")
    if not given and "DATABRICKS_RUNTIME_VERSION" in os.environ:
        given = "databricks"  # a notebook or job on Databricks tracks to its workspace unless told otherwise
    registry = os.environ.get("MLFLOW_REGISTRY_URI")
    if registry in _LOCAL_URIS:  # exported by set_registry_uri for a local store chosen earlier in this process
        del os.environ["MLFLOW_REGISTRY_URI"]
        registry = None
    if given and given not in _LOCAL_URIS:
        store = Store(given, None)
    else:
        if not writes_in_place(out_dir):  # SQLite needs a local disk
            raise ConfigError(
                f"--out {out_dir} is remote and MLFLOW_TRACKING_URI is not set: without a tracking server, "
                "film2vec keeps MLflow's runs and models in a SQLite file in a local output folder. "
                "Set MLFLOW_TRACKING_URI (`databricks` on Databricks, or your MLflow server's URL)."
            )
        root = Path(out_dir).resolve()
        store = Store(f"sqlite:///{root / 'mlflow.db'}", str(root / "mlartifacts"))
        _LOCAL_URIS.add(store.uri)
    mlflow.set_tracking_uri(store.uri)
    # None (no registry of film2vec's choosing) lets MLflow derive the registry from the tracking server
    mlflow.set_registry_uri(registry or (store.uri if store.artifacts else None))
    return store


def experiment_id(name: str, store: Store) -> str:
    """The experiment's id, created with its artifacts under the store's artifact root when local."""
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = Path(store.artifacts).as_uri() if store.artifacts else None
    return mlflow.create_experiment(name, artifact_location=location)


def open_experiment(out_dir: str, name: str) -> str:
    """use_store and experiment_id in one call, for a thread: a new local store costs about 2 s of MLflow's
    SQLite migrations, which can run while Spark's jobs leave the driver's Python waiting."""
    return experiment_id(name, use_store(out_dir))


def flat_params(config: Config) -> dict[str, object]:
    """Every setting as section.key → value, for mlflow.log_params."""
    flat: dict[str, object] = {}
    for name, value in dataclasses.asdict(config).items():
        if isinstance(value, dict):
            flat.update({f"{name}.{key}": item for key, item in value.items()})
        else:
            flat[name] = value
    return flat


def model_uri(source: str) -> str:
    """The artifact URI of a model given as models:/NAME@ALIAS, models:/NAME/VERSION, runs:/ID/PATH or a run id;
    an alias is resolved to its version now, so the run records which version it started from."""
    if source.startswith("models:/") and "@" in source:
        name, alias = source[len("models:/") :].rsplit("@", 1)
        try:
            version = MlflowClient().get_model_version_by_alias(name, alias).version
        except mlflow.exceptions.MlflowException as error:
            raise ConfigError(f"flag --warm-start: no model {source} in {mlflow.get_registry_uri()}: {error}") from None
        return f"models:/{name}/{version}"
    if source.startswith(("models:/", "runs:/")):
        return source
    return f"runs:/{source}/model"


def model_tables(uri: str) -> tuple[pa.Table, pa.Table]:
    """The embeddings artifact (asset_id, vector, source) of a similar-assets model, by model_uri, and its
    optimiser state (asset_id, accumulator), which a warm start continues from."""
    try:
        folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri)) / "artifacts"
    except (mlflow.exceptions.MlflowException, OSError) as error:
        raise ConfigError(f"flag --warm-start: cannot load the model {uri}: {error}") from None
    if not (folder / EMBEDDINGS_FILE).is_file():
        raise ConfigError(f"flag --warm-start: {uri} is not a film2vec model (no artifacts/{EMBEDDINGS_FILE})")
    state = folder / OPTIMISER_STATE_FILE
    if not state.is_file():
        raise ConfigError(
            f"flag --warm-start: {uri} kept no optimiser state (no artifacts/{OPTIMISER_STATE_FILE}); warm-start "
            "from a model that `film2vec train` or `film2vec run` registered"
        )
    return pq.read_table(folder / EMBEDDINGS_FILE), pq.read_table(state)


@dataclass(frozen=True)
class AliasDecision:
    """Whether the serving alias moves to the new version, and why (the figure, its value and the floor)."""

    moved: bool
    reason: str


def alias_decision(figures: dict[str, float], tracking: TrackingConfig) -> AliasDecision:
    """Move the alias only when every configured floor (> 0) is reached; a floor whose figure is missing or
    not a number blocks the move."""
    floors = {"recall_at_20": tracking.alias_floor_recall, "genre_p_at_10": tracking.alias_floor_genre_p}
    for figure, floor in floors.items():
        if floor <= 0:
            continue
        value = figures.get(figure)
        if value is None or not np.isfinite(value):
            return AliasDecision(False, f"{figure} is unavailable in this run (floor {floor}); the alias stays")
        if value < floor:
            return AliasDecision(False, f"{figure} = {value:.4f} is below the floor {floor}; the alias stays")
    checked = [f"{figure} = {figures[figure]:.4f} >= {floor}" for figure, floor in floors.items() if floor > 0]
    return AliasDecision(True, "; ".join(checked) if checked else "no floor configured")


class DeltaSource(DeltaDatasetSource):
    """MLflow's Delta table source, keeping version 0: DeltaDatasetSource.to_dict leaves a falsy version out."""

    def to_dict(self) -> dict:
        return {**super().to_dict(), "delta_table_version": self.delta_table_version}


def log_input_tables(tables: dict[str, tuple[str, int]]) -> None:
    """Record on the active run each input Delta table, by name -> (path or metastore table name, version read),
    so the run says which data it learnt from. A location with a '/' is a path, else a metastore name."""
    for name, (location, version) in tables.items():
        where = {"path": location} if "/" in location else {"delta_table_name": location}
        source = DeltaSource(**where, delta_table_version=version)
        mlflow.log_input(MetaDataset(source, name=name), context="training")


@dataclass(frozen=True)
class RegisteredModel:
    """A similar-assets model as logged (its MLflow LoggedModel id) and registered (name and version)."""

    name: str
    version: str
    model_id: str

    @property
    def uri(self) -> str:
        """models:/NAME/VERSION, the registered version."""
        return f"models:/{self.name}/{self.version}"


_MLFLOW_TYPES = {
    pa.int64(): DataType.long,
    pa.int32(): DataType.integer,
    pa.string(): DataType.string,
    pa.large_string(): DataType.string,
}


def model_signature(asset_id_type: pa.DataType, top_k: int) -> ModelSignature:
    """The served model's input (asset_id), output and params (k, return_vectors), typed explicitly so MLflow
    infers nothing (and warns about nothing) from an example."""
    if asset_id_type not in _MLFLOW_TYPES:
        raise ConfigError(f"asset_id is {asset_id_type}; the similar-assets model serves int32, int64 or string ids")
    asset_id = _MLFLOW_TYPES[asset_id_type]
    outputs = Schema(
        [
            ColSpec(asset_id, "asset_id"),
            ColSpec(DataType.boolean, "known"),
            ColSpec(DataType.boolean, "provisional"),
            ColSpec(Array(asset_id), "neighbours"),
            ColSpec(Array(DataType.double), "scores"),
            ColSpec(Array(DataType.float), "vector", required=False),  # with return_vectors
        ]
    )
    params = ParamSchema(
        [ParamSpec("k", DataType.integer, top_k), ParamSpec("return_vectors", DataType.boolean, False)]
    )
    return ModelSignature(Schema([ColSpec(asset_id, "asset_id")]), outputs, params)


def _requirement(package) -> str:
    """The pip requirement pinning an imported package's version (faiss is installed as faiss-cpu)."""
    return f"{'faiss-cpu' if package.__name__ == 'faiss' else package.__name__}=={package.__version__}"


def log_similar_assets_model(
    embeddings: pa.Table,
    staging_dir: Path,
    tracking: TrackingConfig,
    move_alias: bool = True,
    optimiser_state: pa.Table | None = None,
    figures: dict[str, float] | None = None,
    index=None,
) -> RegisteredModel:
    """Log the pyfunc model in the active run, register it and, when `move_alias`, point the alias at the new
    version. The model is film2vec/serving/registered_model.py as code over the embeddings artifact; the optimiser state
    (asset_id, accumulator) travels with it for warm starts to continue, and an HNSW `index` over the
    embeddings' rows (film2vec.serving.ann), when given, for the model to search instead of scoring every asset. The
    requirements pin the versions it was logged (and its input example checked) with. `figures` go to the run
    and to the logged model, so each registered version shows its own."""
    path = staging_dir / EMBEDDINGS_FILE
    pq.write_table(embeddings, path)
    artifacts = {"embeddings": str(path)}
    if optimiser_state is not None:
        artifacts["optimiser_state"] = str(staging_dir / OPTIMISER_STATE_FILE)
        pq.write_table(optimiser_state, artifacts["optimiser_state"])
    packages = [mlflow, np, pd, pa]
    if index is not None:
        artifacts["index"] = str(staging_dir / INDEX_FILE)
        Path(artifacts["index"]).write_bytes(ann.index_bytes(index))
        packages.append(ann.faiss_module())
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=str(MODEL_CODE),
        code_paths=[str(NEAREST_CODE), str(ANN_CODE)],
        artifacts=artifacts,
        model_config={"top_k": tracking.top_k},
        signature=model_signature(embeddings.schema.field("asset_id").type, tracking.top_k),
        input_example=pd.DataFrame({"asset_id": embeddings.column("asset_id")[:1].to_pylist()}),
        pip_requirements=[_requirement(package) for package in packages],
        registered_model_name=tracking.model_name,
    )
    if figures:
        mlflow.log_metrics(figures, model_id=info.model_id)
    version = str(info.registered_model_version)
    if move_alias:
        MlflowClient().set_registered_model_alias(tracking.model_name, tracking.alias, version)
    return RegisteredModel(tracking.model_name, version, info.model_id)
