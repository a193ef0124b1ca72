"""When to stop drawing seasons: the vectors are scored after every season on a held-out slice, and the run
stops after a season that brought no gain, between a floor and a ceiling of seasons. A gain counts only when it
exceeds the slice's noise by a chosen number of standard errors: the paired differences, user by user and asset
by asset, between the season and the best one before it.

The slice is each sampled user's last view, held out of the seasons (film2vec/seasons/stage.py draws the walk without
it), so next-watch on it is a fair test of vectors that never trained on it; GenreP@10 over the catalogue's
labels needs no held-out views. Pure numpy: the training stage builds a Validation, the trainer calls it.

Example::

    validation = Validation.of_slice(user, asset, held_out, n_assets, views, genres)
    rule = StopRule(min_seasons=2, max_seasons=20, gain_standard_errors=1.0)
    scores = [validation.score(vectors_after_season_0), ...]
    rule.reason([s.figures for s in scores], [s.terms for s in scores])  # None: go on; else why the run stops
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from film2vec.evaluation.protocol import Split, genre_shares_of_views, next_watch_by_user, term_means

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

    def score(self, vectors: np.ndarray) -> SeasonScore:
        """Next-watch on the slice (Recall@20, NDCG@20, and NDCG@1000, which the gain is judged by) and, with
        labels, GenreP@10 of the vectors; with the gain figures' terms, per user and per asset."""
        catalogue = np.arange(self.n_assets)
        terms = next_watch_by_user(vectors, self.split, catalogue=catalogue)
        terms[DEEP] = next_watch_by_user(vectors, self.split, DEEP_K, catalogue=catalogue)[DEEP]
        if self.genres is not None:
            terms["genre_p_at_10"] = genre_shares_of_views(vectors, self.views, self.genres)
        return SeasonScore(term_means(terms), {name: terms[name] for name in GAIN_FIGURES if name in terms})


@dataclass(frozen=True)
class SeasonScore:
    """A season's figures on the slice, and the terms each gain figure averages (one per held-out user for
    NDCG@1000, one per eligible labelled asset for GenreP@10), which a paired comparison of seasons needs."""

    figures: dict[str, float]
    terms: dict[str, np.ndarray]


# One held-out view per user makes Recall@20 a coin per user: with a thousand users a season's gain drowns in
# it. NDCG over the top 1,000 still counts a held-out view that moved from rank 300 to 40.
DEEP_K = 1_000
DEEP = f"ndcg_at_{DEEP_K}"
GAIN_FIGURES = (DEEP, "genre_p_at_10")


def gain_score(figures: dict[str, float]) -> float:
    """One number to compare seasons by: NDCG@1000 on the slice plus GenreP@10 where there are labels."""
    return float(sum(figures[name] for name in GAIN_FIGURES if np.isfinite(figures.get(name, np.nan))))


def gain_standard_error(last: Mapping[str, np.ndarray], best: Mapping[str, np.ndarray]) -> float:
    """The standard error of gain_score(last) − gain_score(best) over the slice: each gain figure's paired
    differences (same user, same asset) give the variance of their mean, and the figures' variances add."""
    variance = 0.0
    for name in GAIN_FIGURES:
        if name in last and name in best and len(last[name]) > 1:
            difference = np.asarray(last[name], dtype=np.float64) - np.asarray(best[name], dtype=np.float64)
            variance += float(np.var(difference, ddof=1)) / len(difference)
    return float(np.sqrt(variance))


@dataclass(frozen=True)
class StopRule:
    """Stop after a season whose gain over the best earlier season does not exceed `gain_standard_errors` of its
    standard error (0: any gain goes on), once `min_seasons` are trained; never train more than `max_seasons`."""

    min_seasons: int
    max_seasons: int
    gain_standard_errors: float

    def reason(self, curve: Sequence[dict[str, float]], terms: Sequence[Mapping[str, np.ndarray]] = ()) -> str | None:
        """Why the run stops after the seasons scored in `curve` (one entry a season, with each season's gain terms
        in `terms` where known), or None to go on."""
        trained = len(curve)
        if trained >= self.max_seasons:
            return f"reached the ceiling of {self.max_seasons} seasons (--max-seasons)"
        if trained < max(self.min_seasons, 2):
            return None
        scores = [gain_score(figures) for figures in curve]
        best = int(np.argmax(scores[:-1]))
        gain = scores[-1] - scores[best]
        noise = gain_standard_error(terms[-1], terms[best]) if len(terms) == trained else 0.0
        if gain <= self.gain_standard_errors * noise:
            return (
                f"season {trained - 1} brought no gain on the held-out slice ({scores[-1]:.4f}, best {scores[best]:.4f}"
                + (f", standard error {noise:.4f})" if self.gain_standard_errors else ")")
            )
        return None
