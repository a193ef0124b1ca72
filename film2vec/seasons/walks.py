"""Sampling kernels: pure numpy (scipy for one Poisson quantile) on arrays, no Spark.

Randomness is counter-based. Every origin owns a SplitMix64 stream whose seed is a hash of (seed, season,
origin). Counter 0 of the stream sets how many samples the origin gets (when origins are weighted); sample
s uses counters 1 + s·stride + slot, with slot 0 for the walk's first step, slot 1 for its second and
slots 2… for the negatives, which the trainer draws from the sample's draw key (Negatives.of_draws). So a
season is the same whatever the partitioning, batch size, retries or executor count, and a different
season is a fresh, independent draw. SplitMix64 passes BigCrush and vectorises to a handful of uint64
operations.

Lists of neighbours, users or assets are in CSR form: list i is items[offsets[i]:offsets[i + 1]].
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import stats

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)

FIRST_STEP, SECOND_STEP, FIRST_NEGATIVE = 0, 1, 2
UNIGRAM_SCALE = 2**40  # total of the integer unigram weights: exact arithmetic, far below 2**53


def mix64(state: np.ndarray) -> np.ndarray:
    """SplitMix64's output function on a uint64 array (wrapping arithmetic, in place on a fresh copy)."""
    z = state ^ (state >> np.uint64(30))
    z *= _MIX1
    z ^= z >> np.uint64(27)
    z *= _MIX2
    z ^= z >> np.uint64(31)
    return z


def stream_key(seed: int, season: int) -> np.uint64:
    """The key of one season's random streams."""
    seeded = mix64(np.array([seed % 2**64], dtype=np.uint64) + _GOLDEN)
    return mix64((seeded ^ np.uint64(season % 2**64)) + _GOLDEN)[0]


def origin_streams(key: np.uint64, origins: np.ndarray) -> np.ndarray:
    """The seed of each origin's stream under a season's key."""
    return mix64((origins.astype(np.uint64) ^ key) + _GOLDEN)


def sample_states(streams: np.ndarray, sample: np.ndarray, negatives: int) -> np.ndarray:
    """Each sample's stream position just before its slot 0 (streams and sample numbers per sample)."""
    counter = sample.astype(np.uint64) * np.uint64(negatives + 2) + np.uint64(1)
    return streams + counter * _GOLDEN


def slot_bits(states: np.ndarray, slot: int | np.ndarray) -> np.ndarray:
    """64 random bits for slot(s) of each sample: SplitMix64 outputs at the sample's counters."""
    return mix64(states + np.asarray(slot, dtype=np.uint64) * _GOLDEN)


def uniform_below(bits: np.ndarray, bound: np.ndarray | int) -> np.ndarray:
    """Integers uniform on [0, bound) from 32 random bits (values below 2**32), bound < 2**32, as int64.

    Multiply-shift: never reaches bound; the largest deviation from uniform is bound / 2**32 (2e-6 for
    10,000 assets), far below what a season's sample sizes can show.
    """
    return ((bits * np.asarray(bound, dtype=np.uint64)) >> np.uint64(32)).astype(np.int64)


def high_bits(bits: np.ndarray) -> np.ndarray:
    """The top 32 of 64 random bits."""
    return bits >> np.uint64(32)


def halves(bits: np.ndarray, count: int) -> np.ndarray:
    """`count` 32-bit values per row from ⌈count / 2⌉ columns of 64 random bits: two draws per hash."""
    return np.ascontiguousarray(bits).view(np.uint32)[:, :count].astype(np.uint64)


def uniform_below_wide(bits: np.ndarray, bound: np.ndarray | int) -> np.ndarray:
    """Integers uniform on [0, bound) for bound < 2**53 (53 bits of precision), as int64."""
    unit = (bits >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return np.minimum((unit * bound).astype(np.int64), np.asarray(bound, dtype=np.int64) - 1)


def stratified_counts(n_origins: int, per_origin: int) -> np.ndarray:
    """Exactly `per_origin` samples for every origin."""
    return np.full(n_origins, per_origin, dtype=np.int64)


def weighted_counts(streams: np.ndarray, weights: np.ndarray, scale: float) -> np.ndarray:
    """Poisson(scale · weight) samples per origin, from counter 0 of its stream.

    Independent Poisson counts are, given their total, a multinomial draw of origins ∝ weights; with
    scale = samples / Σ weights a season has `samples` samples on average.
    """
    unit = ((mix64(streams) >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53
    return stats.poisson.ppf(unit, scale * weights).astype(np.int64)


def origin_chunks(counts: np.ndarray, samples_per_chunk: int) -> list[tuple[int, int]]:
    """Consecutive (start, stop) ranges of origins with about `samples_per_chunk` samples each (at least one origin)."""
    ends = np.cumsum(counts)
    cuts = np.searchsorted(ends, np.arange(samples_per_chunk, ends[-1] if len(ends) else 0, samples_per_chunk)) + 1
    bounds = np.unique(np.concatenate(([0], np.minimum(cuts, len(counts)), [len(counts)])))
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist()))


def sample_rows(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For `counts[i]` samples of origin i: each sample's origin row and its number within the origin."""
    row = np.repeat(np.arange(len(counts), dtype=np.int32), counts)
    starts = np.cumsum(counts) - counts
    return row, np.arange(len(row), dtype=np.int64) - starts[row]


def draw_keys(origins: np.ndarray, sample: np.ndarray) -> np.ndarray:
    """Each sample's place in its season: origin · 2**32 + its number within the origin. Unique in a season and
    a function of the draw alone, so ordering by it gives the same rows in the same order on any cluster."""
    return (origins.astype(np.int64) << np.int64(32)) | sample.astype(np.int64)


def coview_targets(
    states: np.ndarray, row: np.ndarray, offsets: np.ndarray, neighbours: np.ndarray, co_views: np.ndarray
) -> np.ndarray:
    """One-step walk: for each sample, a neighbour of its origin row with probability ∝ co_views.

    One cumulative sum over all the lists and one binary search per sample.
    """
    cumulative = np.cumsum(co_views, dtype=np.int64)
    before = np.concatenate(([0], cumulative))[offsets[:-1]]
    totals = cumulative[offsets[1:] - 1] - before
    drawn = before[row] + uniform_below_wide(slot_bits(states, FIRST_STEP), totals[row])
    return neighbours[np.searchsorted(cumulative, drawn, side="right")]


def uniform_members(states: np.ndarray, row: np.ndarray, offsets: np.ndarray, slot: int) -> np.ndarray:
    """For each sample, a uniform position in the list of its row: the bipartite walk's first step."""
    sizes = np.diff(offsets)
    return offsets[:-1][row] + uniform_below(high_bits(slot_bits(states, slot)), sizes[row])


def other_members(
    states: np.ndarray, start: np.ndarray, size: np.ndarray, items: np.ndarray, excluded: np.ndarray
) -> np.ndarray:
    """For each sample, a uniform item of its list (items[start:start + size]) other than `excluded`.

    Draws a position below size - 1; when that item is the excluded one, takes the list's last item
    instead, which the draw could not reach: exactly uniform over the size - 1 others (size ≥ 2, and
    `excluded` in the list once).
    """
    position = start + uniform_below(high_bits(slot_bits(states, SECOND_STEP)), size - 1)
    chosen = items[position]
    hit = chosen == excluded
    chosen[hit] = items[(start + size - 1)[hit]]
    return chosen


def window_members(
    states: np.ndarray, start: np.ndarray, size: np.ndarray, items: np.ndarray, at: np.ndarray, window: int
) -> np.ndarray:
    """For each sample, a uniform item of its list (items[start:start + size]) among those at most `window`
    positions from position `at` (absolute, in the list), other than the item at `at`.

    Draws a position below the window's size less one and steps over `at`: exactly uniform over the
    window's others (size ≥ 2, window ≥ 1).
    """
    first = np.maximum(start, at - window)
    last = np.minimum(start + size - 1, at + window)
    position = first + uniform_below(high_bits(slot_bits(states, SECOND_STEP)), last - first)
    position += position >= at
    return items[position]


def positions_in_lists(offsets: np.ndarray, items: np.ndarray, row: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """The position in `items` of each `wanted` item within list `row` (lists from 0: offsets[0] == 0).

    One sort of (list, item) keys and a binary search per lookup; raises ValueError for an item not in its list.
    """
    width = np.int64(items.max(initial=0)) + 1
    keys = np.repeat(np.arange(len(offsets) - 1, dtype=np.int64), np.diff(offsets)) * width + items
    wanted_keys = row.astype(np.int64) * width + wanted
    order = np.argsort(keys, kind="stable")
    found = order[np.minimum(np.searchsorted(keys[order], wanted_keys), len(order) - 1)]
    if len(found) and (keys[found] != wanted_keys).any():
        raise ValueError("an item looked up is not in its list")
    return found


def uniform_negatives(
    states: np.ndarray, origins: np.ndarray, targets: np.ndarray, n_assets: int, count: int
) -> np.ndarray:
    """`count` negatives per sample, uniform over the assets other than its origin and target.

    A draw on [0, n_assets - 2) is shifted past the two excluded indices, which is exactly uniform on
    the rest. Negatives of one sample are drawn independently (they may repeat, as in word2vec); each
    64-bit slot gives two of them.
    """
    bits = slot_bits(states[:, None], np.arange(FIRST_NEGATIVE, FIRST_NEGATIVE + (count + 1) // 2))
    negatives = uniform_below(halves(bits, count), n_assets - 2)
    low = np.minimum(origins, targets)[:, None]
    high = np.maximum(origins, targets)[:, None]
    negatives += negatives >= low
    negatives += negatives >= high
    return negatives


def unigram_cumulative(views: np.ndarray, exponent: float) -> np.ndarray:
    """Cumulative integer weights ∝ views**exponent (index = asset index), totalling about 2**40.

    Integers keep the exclusion shift in unigram_negatives exact; every asset keeps a weight ≥ 1.
    """
    weights = np.power(views.astype(np.float64), exponent)
    return np.cumsum(np.maximum(np.rint(weights * (UNIGRAM_SCALE / weights.sum())), 1).astype(np.int64))


def unigram_negatives(
    states: np.ndarray, origins: np.ndarray, targets: np.ndarray, cumulative: np.ndarray, count: int
) -> np.ndarray:
    """`count` negatives per sample ∝ the unigram weights, never its origin or target.

    The draw is on the total weight less the two excluded assets' weights, then shifted past their
    intervals of the cumulative weights: exactly the weighted distribution over the other assets.
    """
    low, high = np.minimum(origins, targets)[:, None], np.maximum(origins, targets)[:, None]
    weight_low = cumulative[low] - np.where(low > 0, cumulative[low - 1], 0)
    weight_high = cumulative[high] - cumulative[high - 1]
    bits = slot_bits(states[:, None], np.arange(FIRST_NEGATIVE, FIRST_NEGATIVE + count))
    drawn = uniform_below_wide(bits, cumulative[-1] - weight_low - weight_high)
    drawn += weight_low * (drawn >= cumulative[low] - weight_low)
    drawn += weight_high * (drawn >= cumulative[high] - weight_high)
    return np.searchsorted(cumulative, drawn, side="right")


@dataclass(frozen=True)
class Origins:
    """How many samples each origin gets: `per_origin` each (exponent None), or ∝ views**exponent."""

    per_origin: int = 0
    exponent: float | None = None
    scale: float = 0.0  # samples / Σ views**exponent over the season's origins
    most: float = np.inf  # the largest weight (views**exponent) an origin draws with: capped

    @classmethod
    def weighted(cls, samples: float, exponent: float, views: np.ndarray) -> Origins:
        """Origins ∝ views**exponent, `samples` in all on average over the origins whose views are given."""
        total = np.power(np.sort(views).astype(np.float64), exponent).sum()  # sorted: the same sum everywhere
        return cls(exponent=exponent, scale=samples / total)

    def capped(self, samples: float, views: np.ndarray) -> Origins:
        """The same origins, `samples` in all on average when they would draw more: each origin draws as many as
        before up to a cap, and only the most viewed ones, above it, draw fewer (word2vec's subsampling of
        frequent words). A season's bound then costs the head its surplus, not the tail its scarce evidence."""
        if self.exponent is None:  # the same count for every origin: nothing to cap
            return self
        weights = np.sort(np.power(views.astype(np.float64), self.exponent))
        budget = samples / self.scale
        lighter = np.concatenate(([0.0], np.cumsum(weights)[:-1]))  # Σ of the weights below each
        under_cap = lighter + weights * np.arange(len(weights), 0, -1)  # Σ min(weight, cap) with cap = each weight
        if under_cap[-1] <= budget:  # judged by the same sums as the cap: a bound within rounding does not bind
            return self
        first_over = int(np.searchsorted(under_cap, budget, side="right"))
        return replace(self, most=(budget - lighter[first_over]) / (len(weights) - first_over))

    def counts(self, streams: np.ndarray, views: np.ndarray) -> np.ndarray:
        """Samples per origin, for origins with these streams and views."""
        if self.exponent is None:
            return stratified_counts(len(streams), self.per_origin)
        weights = np.minimum(np.power(views.astype(np.float64), self.exponent), self.most)
        return weighted_counts(streams, weights, self.scale)


@dataclass(frozen=True)
class Negatives:
    """`count` negatives per sample, uniform over the other assets or ∝ unigram weights (`cumulative`)."""

    count: int
    n_assets: int
    cumulative: np.ndarray | None = None

    def draw(self, states: np.ndarray, origins: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Negatives of samples at these stream states (see sample_states)."""
        if self.cumulative is None:
            return uniform_negatives(states, origins, targets, self.n_assets, self.count)
        return unigram_negatives(states, origins, targets, self.cumulative, self.count)

    def of_draws(self, key: np.uint64, origin: np.ndarray, draw: np.ndarray, target: np.ndarray) -> np.ndarray:
        """The negatives of a season's samples (the season's stream key; their origins, draw keys and targets):
        a function of the draw, so the trainer draws them where it uses them and the seasons hold none."""
        sample = draw & np.int64(0xFFFFFFFF)  # the sample's number within its origin (draw_keys)
        return self.draw(sample_states(origin_streams(key, origin), sample, self.count), origin, target)


def coview_samples(
    key: np.uint64,
    origins: np.ndarray,
    counts: np.ndarray,
    offsets: np.ndarray,
    neighbours: np.ndarray,
    co_views: np.ndarray,
    negatives: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(origin, sample number, target) for a block of origins: the co-view walk, counts[i] samples from origin i,
    in origin order then sample number. Each sample's stream leaves `negatives` slots for its negatives
    (Negatives.of_draws)."""
    row, sample = sample_rows(counts)
    states = sample_states(origin_streams(key, origins)[row], sample, negatives)
    return origins[row], sample, coview_targets(states, row, offsets, neighbours, co_views)


def bipartite_users(
    key: np.uint64, origins: np.ndarray, counts: np.ndarray, offsets: np.ndarray, negatives: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The bipartite walk's first step: (origin, sample number, position of a user uniform in the origin's list).

    The lists hold, per origin, the users who watched it and at least one other asset.
    """
    row, sample = sample_rows(counts)
    states = sample_states(origin_streams(key, origins)[row], sample, negatives)
    return origins[row], sample, uniform_members(states, row, offsets, FIRST_STEP)


def samples_by_member(
    origins: np.ndarray, sample: np.ndarray, position: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The first step's samples grouped by the list position drawn (one (origin, user) pair per position).

    Returns each group's origin and position, the groups' offsets and their sample numbers (in drawn order
    within a group): a row per viewing to shuffle instead of a row per sample. Origins that drew no sample (a
    Spark batch of rare origins can draw none at all) give no group.
    """
    order = np.argsort(position, kind="stable")
    drawn = position[order]
    starts = np.flatnonzero(np.diff(drawn, prepend=-1) != 0)  # positions are >= 0: the first always starts one
    return origins[order][starts], drawn[starts], np.append(starts, len(drawn)), sample[order]


def bipartite_samples(
    key: np.uint64,
    origins: np.ndarray,
    sample: np.ndarray,
    list_start: np.ndarray,
    list_size: np.ndarray,
    assets: np.ndarray,
    negatives: int,
    window: int = 0,
    origin_at: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The second step: (origin, sample number, target), each sample's user list being
    assets[list_start:list_start + list_size]. The target is uniform among the user's assets other than the
    origin; with a `window`, among those at most `window` positions from the origin's (`origin_at`, its
    position in `assets`) in the list, which is then the user's history in viewing order.
    """
    states = sample_states(origin_streams(key, origins), sample, negatives)
    if window:
        return origins, sample, window_members(states, list_start, list_size, assets, origin_at, window)
    return origins, sample, other_members(states, list_start, list_size, assets, origins)
