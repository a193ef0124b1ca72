"""Recency weights of a user's views: pure numpy, shared by the taste vectors (apps/tastes.py) and the protocol's
recommender figures (evaluation/protocol.py).

What a user watched last says most about what they watch next. Two clocks, either or both:
- views: a view's weight halves for every `half_life_views` of the user's views that came after it, so the
  weighting follows each user's own pace (a binge of ten in an evening, or ten over a year);
- days: a view's weight halves every `half_life_days` days before the user's latest view.
Views at one time share their weight (none comes after another); a view without a time (nan) counts as the
user's latest.
"""

from __future__ import annotations

import numpy as np

SECONDS_PER_DAY = 86_400.0


def later_views(view_counts: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """For each view (rows grouped by user, `view_counts` each), how many of the user's views are strictly later."""
    view_counts = np.asarray(view_counts, dtype=np.int64)
    times = np.nan_to_num(np.asarray(seconds, dtype=np.float64), nan=np.inf)
    owner = np.repeat(np.arange(len(view_counts)), view_counts)
    order = np.lexsort((times, owner))
    owner, times = owner[order], times[order]
    last_of_tie = np.ones(len(order), dtype=bool)
    last_of_tie[:-1] = (owner[1:] != owner[:-1]) | (times[1:] != times[:-1])
    ends = np.flatnonzero(last_of_tie)
    tie_end = ends[np.searchsorted(ends, np.arange(len(order)))] + 1
    user_end = np.cumsum(view_counts)[owner]
    later = np.empty(len(order), dtype=np.int64)
    later[order] = user_end - tie_end
    return later


def recency_weights(
    view_counts: np.ndarray,
    seconds: np.ndarray | None,
    half_life_days: float | None = None,
    half_life_views: float | None = None,
) -> np.ndarray:
    """Each view's weight (rows grouped by user, `view_counts` each; `seconds` its Unix time, nan when unknown):
    0.5 ** (later views / half_life_views) times 0.5 ** (days before the user's latest view / half_life_days),
    1 for a clock that is off or without times. Age is measured from each user's own latest view, which keeps
    the weights away from underflow and changes no weighted mean."""
    view_counts = np.asarray(view_counts, dtype=np.int64)
    weights = np.ones(int(view_counts.sum()))
    if seconds is None or not len(weights):
        return weights
    seconds = np.asarray(seconds, dtype=np.float64)
    if half_life_views is not None:
        weights *= 0.5 ** (later_views(view_counts, seconds) / half_life_views)
    if half_life_days is not None:
        starts, watched = np.cumsum(view_counts) - view_counts, view_counts > 0
        latest = np.full(len(view_counts), np.nan)
        latest[watched] = np.fmax.reduceat(seconds, starts[watched])
        age_days = np.nan_to_num(np.repeat(latest, view_counts) - seconds, nan=0.0) / SECONDS_PER_DAY
        weights *= 0.5 ** (age_days / half_life_days)
    return weights
