"""Clusters of assets: k-means on the unit vectors, each cluster described by its labels and central assets.

k-means because every asset should land on some shelf and the number of shelves is a business choice;
a density method (HDBSCAN) would leave the long tail as noise. On unit vectors the squared distance is
2 - 2 cosine, so k-means groups by the same similarity the vectors were trained for. scikit-learn's
implementation (k-means++ seeding, several restarts, compiled Lloyd steps) replaces a loop of our own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans

RESTARTS = 4


@dataclass(frozen=True)
class Clustering:
    """Each asset's cluster and its cosine to the cluster's centre; the centres as unit vectors."""

    cluster: np.ndarray
    cosine: np.ndarray
    centres: np.ndarray


def kmeans(unit: np.ndarray, k: int, seed: int) -> Clustering:
    """k-means with k-means++ seeding, the best of RESTARTS runs; clusters numbered by size, largest first."""
    k = min(k, len(unit))
    fitted = KMeans(n_clusters=k, n_init=RESTARTS, random_state=seed % 2**32).fit(unit)
    by_size = np.argsort(-np.bincount(fitted.labels_, minlength=k), kind="stable")
    renumber = np.empty(k, dtype=np.int64)
    renumber[by_size] = np.arange(k)
    cluster = renumber[fitted.labels_]
    centres = fitted.cluster_centers_[by_size]
    centres = centres / np.maximum(np.linalg.norm(centres, axis=1, keepdims=True), 1e-12)
    return Clustering(cluster, np.einsum("ij,ij->i", unit, centres[cluster]), centres)


def describe_clusters(
    clustering: Clustering, labels: np.ndarray, label_names: tuple[str, ...], top_labels: int, central: int
) -> list[dict]:
    """Per cluster: size, its most common labels with their shares, and the rows of its most central assets."""
    described = []
    for number in range(len(clustering.centres)):
        members = np.flatnonzero(clustering.cluster == number)
        shares = labels[members].mean(axis=0) if len(members) else np.zeros(len(label_names))
        best = np.argsort(-shares, kind="stable")[:top_labels]
        best = best[shares[best] > 0]
        closest = members[np.argsort(-clustering.cosine[members], kind="stable")[:central]]
        described.append(
            {
                "cluster": number,
                "size": len(members),
                "top_labels": [label_names[c] for c in best],
                "label_shares": shares[best].round(4).tolist(),
                "central_rows": closest.tolist(),
            }
        )
    return described
