"""A 2-D map of the catalogue for people to look at.

t-SNE with cosine distances: the vectors are used by nearest neighbours, and t-SNE keeps exactly the
neighbourhoods (genres as islands) where PCA, being linear, piles 64 dimensions of structure into two
overlapping blobs. UMAP would do as well and scale further but needs another dependency (umap-learn,
numba); scikit-learn's Barnes-Hut t-SNE maps the 20,000 most-viewed assets in about a minute.
"""

from __future__ import annotations

import numpy as np
from sklearn.manifold import TSNE

PERPLEXITY = 30.0


def map_coordinates(unit: np.ndarray, seed: int) -> np.ndarray:
    """(assets x 2) t-SNE coordinates, PCA-initialised so reruns and nearby settings look alike."""
    perplexity = min(PERPLEXITY, (len(unit) - 1) / 3)
    embedded = TSNE(
        n_components=2, perplexity=perplexity, metric="cosine", init="pca", random_state=seed % 2**32
    ).fit_transform(unit)
    return embedded.astype(np.float64)
