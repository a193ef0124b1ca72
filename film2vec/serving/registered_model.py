"""The registered model: given asset ids, each one's most similar assets by cosine, with scores.

This file is itself what MLflow logs as the model (models from code): MLflow runs it and serves the
SimilarAssets it hands to `mlflow.models.set_model`, loading the embeddings from the model's artifacts, so
nothing is pickled. It imports only mlflow, numpy, pandas, pyarrow, film2vec/serving/nearest.py (numpy alone) and
film2vec/serving/ann.py (faiss, which only a model with an index needs), which the model carries in its code/ folder,
never the film2vec package: consumers load it with
`mlflow.pyfunc.load_model("models:/<name>@<alias>")` without film2vec, Spark or torch, and the served model
ranks by the same top-k rule as the library and the neighbours table.
"""

from __future__ import annotations

import mlflow.models
import mlflow.pyfunc
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

try:  # served by MLflow: film2vec/serving/nearest.py and ann.py travel beside this file in the model's code/ folder
    from ann import load_index, search
    from nearest import Vectors, top_neighbours
except ImportError:  # inside film2vec
    from film2vec.serving.ann import load_index, search
    from film2vec.serving.nearest import Vectors, top_neighbours


class SimilarAssets(mlflow.pyfunc.PythonModel):
    """pyfunc model over the embeddings artifact (Parquet: asset_id, vector, source); the default k is the
    model config's `top_k`. A large catalogue's model carries an HNSW index over the artifact's rows (`index`),
    which it searches instead of scoring every asset."""

    def load_context(self, context) -> None:
        self.top_k = int(context.model_config["top_k"])
        table = pq.read_table(context.artifacts["embeddings"])
        stored = Vectors.of_table(table)
        self.asset_ids = stored.ids.to_numpy(zero_copy_only=False)
        self.vectors = stored.matrix
        # a provisional vector is made from labels, not yet from views
        self.provisional = np.array(table.column("source").to_pylist()) == "metadata"
        self.unit = stored.unit()
        self.row_of = {asset: row for row, asset in enumerate(self.asset_ids.tolist())}
        self.index = None
        if "index" in context.artifacts:
            with open(context.artifacts["index"], "rb") as stored:
                self.index = load_index(stored.read())

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        """One row per input asset id: neighbours and scores (cosine), whether its vector is provisional (made
        from its labels before any view), and its vector on request."""
        params = params or {}
        k = int(params.get("k", self.top_k))
        asset_ids = model_input["asset_id"].tolist()
        rows = np.array([self.row_of.get(a, -1) for a in asset_ids], dtype=np.int64)
        known = rows >= 0
        neighbours: list[list] = [[] for _ in asset_ids]
        scores: list[list[float]] = [[] for _ in asset_ids]
        if known.any():
            if self.index is None:
                order, cosine = top_neighbours(self.unit, rows[known], k)
            else:
                order, cosine = search(self.index, self.unit[rows[known]], rows[known], k)  # -1: none found
            for slot, position in enumerate(np.flatnonzero(known)):
                found = order[slot] >= 0
                neighbours[position] = self.asset_ids[order[slot][found]].tolist()
                scores[position] = cosine[slot][found].astype(float).tolist()
        provisional = known & self.provisional[np.maximum(rows, 0)]
        result = pd.DataFrame(
            {
                "asset_id": asset_ids,
                "known": known,
                "provisional": provisional,
                "neighbours": neighbours,
                "scores": scores,
            }
        )
        if params.get("return_vectors", False):
            result["vector"] = [self.vectors[r].tolist() if r >= 0 else [] for r in rows]
        return result


# MLflow runs this file under a name of its own; importing film2vec sets nothing
if __name__ != "film2vec.serving.registered_model":
    mlflow.models.set_model(SimilarAssets())
