"""When to stop drawing seasons: the vectors are scored after every season on a held-out slice, and the run
stops after a season that brought no gain, between a floor and a ceiling of seasons.

The slice is each sampled user's last view, held out of the seasons (film2vec/seasons/stage.py draws the walk without
it), so next-watch on it is a fair test of vectors that never trained on it; GenreP@10 over the catalogue's
labels needs no held-out views. Pure numpy: the training stage builds a Validation, the trainer calls it.

Example::

    validation = Validation.of_slice(user, asset, held_out, n_assets, views, genres)
    rule = StopRule(min_seasons=2, max_seasons=20)
    curve = [validation.score(vectors_after_season_0), ...]
    rule.reason(curve)  # None: go on; else why the run stops
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from film2vec.evaluation.protocol import Split, genre_precision_of_views, next_watch

GENRE_ASSETS = 5_000  # GenreP@10 of the stopping rule over the most viewed labelled assets: bounded cost per season


@dataclass(frozen=True)
class Validation:
    """The held-out slice (a Split in asset indices: the sampled users' other views as train, their last view
    as test), ranked against the whole catalogue, and the labels GenreP@10 is scored on (None without any)."""

    split: Split
    n_assets: int
    views: np.ndarray  # each asset index's views: GenreP@10's eligibility
    genres: Sequence[Collection[str]] | None

    @classmethod
    def of_slice(
        cls,
        user: np.ndarray,
        asset: np.ndarray,
        held_out: np.ndarray,
        n_assets: int,
        views: np.ndarray,
        genres: Sequence[Collection[str]] | None,
    ) -> Validation:
        """The slice from its users' views (any user codes, asset indices), `held_out` marking each user's last."""
        user = np.asarray(user, dtype=np.int64)
        asset = np.asarray(asset, dtype=np.int64)
        held_out = np.asarray(held_out, dtype=bool)
        split = Split(user[~held_out], asset[~held_out], user[held_out], asset[held_out])
        labelled = genres is not None and any(genres)
        views = np.asarray(views, dtype=np.int64)
        if labelled and np.count_nonzero(views) > GENRE_ASSETS:
            views = np.where(views >= np.sort(views)[-GENRE_ASSETS], views, 0)
        return cls(split, n_assets, views, genres if labelled else None)

    @property
    def users(self) -> int:
        return int(np.unique(self.split.test_user).size)

    def score(self, vectors: np.ndarray) -> dict[str, float]:
        """Next-watch on the slice (Recall@20, NDCG@20, and NDCG@1000, which the gain is judged by) and, with
        labels, GenreP@10 of the vectors."""
        catalogue = np.arange(self.n_assets)
        figures = next_watch(vectors, self.split, catalogue=catalogue)
        deep = next_watch(vectors, self.split, DEEP_K, catalogue=catalogue)
        figures[f"ndcg_at_{DEEP_K}"] = deep[f"ndcg_at_{DEEP_K}"]
        if self.genres is not None:
            figures["genre_p_at_10"] = genre_precision_of_views(vectors, self.views, self.genres)
        return figures


# One held-out view per user makes Recall@20 a coin per user: with a thousand users a season's gain drowns in
# it. NDCG over the top 1,000 still counts a held-out view that moved from rank 300 to 40.
DEEP_K = 1_000
GAIN_FIGURES = (f"ndcg_at_{DEEP_K}", "genre_p_at_10")


def gain_score(figures: dict[str, float]) -> float:
    """One number to compare seasons by: NDCG@1000 on the slice plus GenreP@10 where there are labels."""
    return float(sum(figures[name] for name in GAIN_FIGURES if np.isfinite(figures.get(name, np.nan))))


@dataclass(frozen=True)
class StopRule:
    """Stop after a season whose figures beat no earlier season's, once `min_seasons` are trained; never train
    more than `max_seasons`."""

    min_seasons: int
    max_seasons: int

    def reason(self, curve: Sequence[dict[str, float]]) -> str | None:
        """Why the run stops after the seasons scored in `curve` (one entry a season), or None to go on."""
        trained = len(curve)
        if trained >= self.max_seasons:
            return f"reached the ceiling of {self.max_seasons} seasons (--max-seasons)"
        if trained < max(self.min_seasons, 2):
            return None
        best, last = max(gain_score(figures) for figures in curve[:-1]), gain_score(curve[-1])
        if last <= best:
            return f"season {trained - 1} brought no gain on the held-out slice ({last:.4f}, best {best:.4f})"
        return None
