"""Co-view counts: for every ordered pair of distinct assets, the number of distinct users who watched both.

Two methods write the same table (asset_a, asset_b, co_views), both orders, ids in the catalogue's type:
- `pairs_by_join`, the reference: a self-join of views on the user. It shuffles every user's n² pairs.
- `pairs_by_gram`: the co-view matrix is XᵀX for the user×asset matrix X. The assets are split into
  `buckets` (asset_idx mod buckets); each bucket's rows of XᵀX are X[:, bucket]ᵀ X, which needs only the
  histories of the users who watched something in the bucket. So Spark shuffles histories (each at most
  once per bucket, far fewer rows than pairs), and each partition computes its rows with one sparse
  product per block of users, summing the blocks itself: the rows it emits are final, in both orders,
  with no shuffle of pairs at all.
Heavy-user control (`cap_views`, `weighted`), sparsification (`sparsify`) and the budget estimate
(`estimate_pairs`) apply to both.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from scipy import sparse

from film2vec import tables
from film2vec.c_kernels import NativeUnavailable, build
from film2vec.config import Config, ConfigError, flag_of
from film2vec.errors import InputError
from film2vec.ingest.stage import merge_new_views, prepare_views
from film2vec.timing import Stopwatch

log = logging.getLogger(__name__)

ROW_BYTES = 24  # two 8-byte ids and an 8-byte count, uncompressed: the table-size estimate's unit
OUTPUT_BATCH_ROWS = 1 << 20


def cap_views(views: DataFrame, max_views: int, seed: int) -> DataFrame:
    """Each user with more than `max_views` views keeps a seeded uniform sample of `max_views` of them.

    The sample ranks a user's assets by a hash of (seed, user, asset), so it is the same on every rerun
    and for every method.
    """
    order = Window.partitionBy("user_id").orderBy(F.xxhash64(F.lit(seed), "user_id", "asset_idx"), "asset_idx")
    return views.withColumn("rank", F.row_number().over(order)).where(F.col("rank") <= max_views).drop("rank")


def pairs_by_join(views: DataFrame, assets: DataFrame, weighted: bool = False, increment: bool = False) -> DataFrame:
    """The reference: a self-join of distinct (user, asset) on the user, counted for a < b, then mirrored.

    With `weighted`, each user's pairs count 1/(n − 1) for a user with n assets (co_views is a double).
    With `increment`, the views carry a boolean `new` and only pairs with at least one new view count.
    """
    distinct = views.select("user_id", "asset_idx", *(["new"] if increment else [])).distinct()
    if weighted:
        viewers = F.count("*").over(Window.partitionBy("user_id"))
        # a user with one view has no pairs; the guard keeps ANSI mode from dividing by zero first
        distinct = distinct.withColumn("weight", F.lit(1.0) / F.greatest(viewers - 1, F.lit(1)))
    left = distinct.withColumnRenamed("asset_idx", "a").withColumnRenamed("new", "new_a")
    right = distinct.withColumnRenamed("asset_idx", "b").withColumnRenamed("new", "new_b").drop("weight")
    both = left.join(right, "user_id").where(F.col("a") < F.col("b"))
    if increment:
        both = both.where(F.col("new_a") | F.col("new_b"))
    co_views = F.sum("weight") if weighted else F.count("*")
    upper = both.groupBy("a", "b").agg(co_views.alias("co_views"))
    return mirrored(with_asset_ids(upper, assets))


def pair_increment(before: DataFrame, after: DataFrame) -> DataFrame:
    """What to add to co_views: the pair counts `after` (the users' whole histories now) minus `before` (the
    same users' histories when the table was counted), rows with a nonzero difference only.

    Both are co-view tables of the users with new views, so the work grows with those users' histories,
    not with the catalogue's. Under --user-weighting inverse a user's weight 1/(n − 1) changes with n, and
    the difference then lowers the pairs among the user's earlier views too.
    """
    now = after.withColumnRenamed("co_views", "after")
    then = before.withColumnRenamed("co_views", "before")
    change = F.coalesce("after", F.lit(0)) - F.coalesce("before", F.lit(0))
    joined = now.join(then, ["asset_a", "asset_b"], "full")
    return joined.select("asset_a", "asset_b", change.alias("co_views")).where(F.col("co_views") != 0)


def with_asset_ids(pairs: DataFrame, assets: DataFrame) -> DataFrame:
    """Replace dense indices (a, b) by the catalogue's own ids, keeping their type."""
    ids = assets.select("asset_idx", "asset_id")
    return (
        pairs.join(ids.withColumnRenamed("asset_id", "asset_a"), F.col("a") == F.col("asset_idx"))
        .drop("asset_idx")
        .join(ids.withColumnRenamed("asset_id", "asset_b"), F.col("b") == F.col("asset_idx"))
        .select("asset_a", "asset_b", "co_views")
    )


def mirrored(upper: DataFrame) -> DataFrame:
    """Both orders of every pair: the sampler needs each asset's full neighbour list."""
    both = F.explode(
        F.array(
            F.struct("asset_a", "asset_b", "co_views"),
            F.struct(F.col("asset_b").alias("asset_a"), F.col("asset_a").alias("asset_b"), "co_views"),
        )
    )
    return upper.select(both.alias("pair")).select("pair.*")


def bucket_gram(
    offsets: np.ndarray,
    assets: np.ndarray,
    bucket: int,
    buckets: int,
    n_assets: int,
    weighted: bool = False,
    block_pairs: int = 50_000_000,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Rows a ≡ bucket (mod buckets) of XᵀX, off the diagonal, as chunks of (a, b, co_views) arrays.

    X is the user×asset matrix of the histories in CSR form: user u watched assets[offsets[u]:offsets[u + 1]]
    (duplicates count once). With `weighted`, user u's row is weighted 1/(n_u − 1), and co_views is a float.
    """
    X = _views_matrix(offsets, assets, n_assets, np.float64 if weighted else np.int32)
    left = X
    if weighted:
        left = X.copy()
        left.data /= np.repeat(np.maximum(np.diff(X.indptr) - 1, 1), np.diff(X.indptr))
    return _bucket_rows(left, X, bucket, buckets, block_pairs)


def bucket_increment(
    offsets: np.ndarray,
    assets: np.ndarray,
    new: np.ndarray,
    bucket: int,
    buckets: int,
    n_assets: int,
    block_pairs: int = 50_000_000,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Rows a ≡ bucket (mod buckets) of the co-view increment NᵀX + XᵀN − NᵀN, off the diagonal, in chunks.

    X holds the users' whole histories as in `bucket_gram`, N the views flagged `new` (one flag per entry of
    `assets`). The increment counts, per user, each pair of distinct assets with at least one new view: the
    exact change of XᵀX when N is added to earlier histories X − N. It is computed as NᵀX + (X − N)ᵀN (the
    same matrix, two products and no subtraction), so the work is about 2 |N_u| |X_u| per user rather than
    the |X_u|² of recounting them.
    """
    # each matrix gets its own copy of the histories: sorting them in place would part views from their flags
    X = _views_matrix(offsets, assets.copy(), n_assets, np.int32)
    N = _views_matrix(offsets, assets.copy(), n_assets, np.int32, np.asarray(new, np.int32))
    earlier = X - N
    earlier.eliminate_zeros()
    return _bucket_rows(sparse.vstack((N, earlier), "csr"), sparse.vstack((X, N), "csr"), bucket, buckets, block_pairs)


def _views_matrix(
    offsets: np.ndarray, assets: np.ndarray, n_assets: int, dtype, kept: np.ndarray | None = None
) -> sparse.csr_matrix:
    """The user×asset 0/1 matrix of CSR histories (only the views flagged in `kept` when given); duplicate
    views count once. It sorts `assets` within each history, and drops the unflagged views, in place (no copy
    of the catalogue's views)."""
    data = np.ones(len(assets), dtype) if kept is None else kept.astype(dtype)
    # offsets copied (one per user): dropping the unflagged views rewrites them in place
    X = sparse.csr_matrix((data, assets, np.array(offsets)), shape=(len(offsets) - 1, n_assets))
    X.sum_duplicates()
    X.eliminate_zeros()
    X.data[:] = 1
    return X


@functools.cache
def pair_kernel() -> ctypes.CDLL | None:
    """The C kernel of film2vec/pairs/pair_kernel.c, or None (with a warning) where it cannot be built."""
    try:
        kernel = build(Path(__file__).with_name("pair_kernel.c"))
    except NativeUnavailable as error:
        warnings.warn(f"co-view counts without the C kernel ({error}); using scipy's sparse product", stacklevel=2)
        return None
    pointer, size = ctypes.c_void_p, ctypes.c_int64
    kernel.film2vec_pair_rows.restype = size
    kernel.film2vec_pair_rows.argtypes = [size, *(pointer,) * 5, *(size,) * 4, *(pointer,) * 2, size, *(pointer,) * 5]
    return kernel


def _bucket_rows(
    left: sparse.csr_matrix, right: sparse.csr_matrix, bucket: int, buckets: int, block_pairs: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Rows a ≡ bucket (mod buckets) of leftᵀright, off the diagonal, as chunks of (a, b, values) arrays.

    The C kernel streams the rows through a buffer of OUTPUT_BATCH_ROWS pairs (or one catalogue row), so a
    bucket's memory is its histories and that buffer. Without it, scipy multiplies blocks of users of about
    `block_pairs` products each and the bucket's rows are held at once.
    """
    n_users = left.shape[0]
    in_bucket = left.indices % buckets == bucket
    user_of_view = np.repeat(np.arange(n_users, dtype=np.int32), np.diff(left.indptr))
    rows_in_bucket = np.bincount(user_of_view[in_bucket], minlength=n_users)
    n_rows = -(-left.shape[1] // buckets)
    left_bucket = sparse.csr_matrix(
        (left.data[in_bucket], left.indices[in_bucket] // buckets, np.concatenate(([0], np.cumsum(rows_in_bucket)))),
        shape=(n_users, n_rows),
    )
    counts = left.dtype.kind != "f"
    kernel = pair_kernel()
    if kernel is None:
        yield _scipy_bucket_rows(left_bucket, right, bucket, buckets, block_pairs, counts)
        return
    members = left_bucket.T.tocsr()  # bucket rows → the users (rows of right) that hold them
    row_ptr, row_members = members.indptr.astype(np.int64), np.ascontiguousarray(members.indices, np.int32)
    row_weights = None if counts else np.ascontiguousarray(members.data, np.float64)
    member_ptr, member_assets = right.indptr.astype(np.int64), np.ascontiguousarray(right.indices, np.int32)
    n_assets = right.shape[1]
    accumulator, touched = np.zeros(n_assets), np.empty(n_assets, np.int64)
    capacity = max(OUTPUT_BATCH_ROWS, n_assets)
    row, written = 0, ctypes.c_int64()
    while row < n_rows:
        a, b = np.empty(capacity, np.int64), np.empty(capacity, np.int64)
        values = np.empty(capacity, np.int64 if counts else np.float64)
        row = kernel.film2vec_pair_rows(
            n_rows,
            *(_address(array) for array in (row_ptr, row_members, row_weights, member_ptr, member_assets)),
            bucket,
            buckets,
            n_assets,
            row,
            _address(accumulator),
            _address(touched),
            capacity,
            *(_address(array) for array in (a, b, values if counts else None, None if counts else values)),
            ctypes.byref(written),
        )
        yield a[: written.value], b[: written.value], values[: written.value]


def _address(array: np.ndarray | None) -> int | None:
    return None if array is None else array.ctypes.data


def _scipy_bucket_rows(
    left_bucket: sparse.csr_matrix,
    right: sparse.csr_matrix,
    bucket: int,
    buckets: int,
    block_pairs: int,
    counts: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`_bucket_rows` by scipy sparse products, users in blocks of about `block_pairs` products, summed here."""
    n_users, n_rows = left_bucket.shape
    work = np.diff(right.indptr).astype(np.int64) * np.diff(left_bucket.indptr)
    block_of_user = np.concatenate(([0], np.cumsum(work)[:-1])) // block_pairs
    bounds = np.concatenate(([0], np.flatnonzero(np.diff(block_of_user)) + 1, [n_users]))
    gram = None
    for start, stop in zip(bounds[:-1], bounds[1:]):
        # CSR @ CSR gives CSR rows directly; a CSC left operand (a bare .T) made scipy transpose both sides
        block = left_bucket[start:stop].T.tocsr() @ right[start:stop]
        gram = block if gram is None else gram + block
    a = np.repeat(np.arange(n_rows, dtype=np.int64) * buckets + bucket, np.diff(gram.indptr))
    off_diagonal = (a != gram.indices) & (gram.data != 0)
    values = gram.data[off_diagonal].astype(np.int64 if counts else np.float64)
    return a[off_diagonal], gram.indices[off_diagonal].astype(np.int64), values


def catalogue_ids(assets: DataFrame) -> pa.Array:
    """Every asset's id at its asset_idx, collected to the driver for the gram tasks to name their rows with."""
    table = assets.select("asset_idx", "asset_id").toArrow()
    index = table.column("asset_idx").to_numpy()
    position = np.full(int(index.max()) + 1 if len(index) else 0, -1, np.int64)
    position[index] = np.arange(len(index))
    return table.column("asset_id").combine_chunks().take(pa.array(position, mask=position < 0))


def _gram_rows(ids: pa.Array, buckets: int, weighted: bool, block_pairs: int):
    """The mapInArrow function: users' histories (asset indices), tagged with a bucket, in; that bucket's pair
    rows out, named by `ids` (catalogue_ids).

    Histories of (asset_idx, new) views give the rows of the increment (`bucket_increment`).
    """
    n_assets = len(ids)
    id_values = ids.to_numpy() if pa.types.is_integer(ids.type) else None

    def named(indices: np.ndarray) -> pa.Array:
        return pa.array(id_values[indices], ids.type) if id_values is not None else ids.take(pa.array(indices))

    def rows(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        batches = [batch for batch in batches if batch.num_rows]
        if not batches:
            return
        table = pa.Table.from_batches(batches)
        histories, bucket_of_user = table.column("history").combine_chunks(), table.column("bucket").to_numpy()
        offsets = histories.offsets.to_numpy() - histories.offsets[0].as_py()
        views = histories.flatten()
        flagged = pa.types.is_struct(views.type)
        asset_idx, *flags = views.flatten() if flagged else (views,)  # StructArray.flatten: the children, sliced
        assets = np.array(asset_idx.to_numpy())  # writable: the kernels sort each history in place
        new = flags[0].to_numpy(zero_copy_only=False) if flags else None
        # a task's histories are the catalogue's views when users touch every bucket: hold them once, as int32
        del batches, table, histories, views, asset_idx, flags
        for bucket in np.unique(bucket_of_user):
            users = np.flatnonzero(bucket_of_user == bucket)
            if len(users) == len(bucket_of_user):  # the partition is one bucket: its histories as they are
                user_offsets, positions = offsets, slice(None)
            else:
                lengths = offsets[users + 1] - offsets[users]
                positions = np.repeat(offsets[users] - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
                positions += np.arange(lengths.sum())
                user_offsets = np.concatenate(([0], np.cumsum(lengths)))
            if new is None:
                chunks = bucket_gram(
                    user_offsets, assets[positions], int(bucket), buckets, n_assets, weighted, block_pairs
                )
            else:
                chunks = bucket_increment(
                    user_offsets, assets[positions], new[positions], int(bucket), buckets, n_assets, block_pairs
                )
            for a, b, co_views in chunks:
                for start in range(0, len(a), OUTPUT_BATCH_ROWS):
                    part = slice(start, start + OUTPUT_BATCH_ROWS)
                    yield pa.RecordBatch.from_arrays(
                        [named(a[part]), named(b[part]), pa.array(co_views[part])],
                        names=["asset_a", "asset_b", "co_views"],
                    )

    return rows


def pairs_by_gram(
    views: DataFrame,
    assets: DataFrame,
    buckets: int,
    weighted: bool = False,
    block_pairs: int = 50_000_000,
    increment: bool = False,
) -> DataFrame:
    """The co-view table from per-bucket sparse Gram products (see the module docstring).

    `assets` maps asset_idx to asset_id (its ids go to every task, which names its rows by index). `buckets`
    is the number of partitions the pair rows are computed in, and each history is shuffled at most once per
    bucket it touches. With `increment` (unweighted counts only), the views carry a boolean `new` and the
    rows are only what the new views add: the pairs with at least one new view, per user.
    """
    if increment and weighted:
        raise ValueError("an increment of weighted counts changes old pairs too: take the difference of two counts")
    ids = catalogue_ids(assets)
    index = F.col("asset_idx").cast("int").alias("asset_idx")
    view = F.struct(index, "new") if increment else index
    history = F.collect_list(view)  # a repeated view is harmless: the kernels count it once
    histories = views.groupBy("user_id").agg(history.alias("history"))
    asset_of = (lambda view: view["asset_idx"]) if increment else (lambda view: view)
    touched = F.array_distinct(F.transform("history", lambda view: F.pmod(asset_of(view), F.lit(buckets))))
    tagged = histories.select("history", F.explode(touched).alias("bucket"))
    id_type = assets.schema["asset_id"].dataType.simpleString()
    schema = f"asset_a {id_type}, asset_b {id_type}, co_views {'double' if weighted else 'long'}"
    rows = _gram_rows(ids, buckets, weighted, block_pairs)
    return tagged.repartitionByRange(buckets, "bucket").mapInArrow(rows, schema)


@dataclass(frozen=True)
class PairEstimate:
    """What the pair stage will cost, from one aggregation over the views (after any cap)."""

    users: int
    views: int
    n_assets: int
    raw_pairs: int  # Σ n_u (n_u − 1) / 2: the pairs a self-join shuffles, and the sparse products' work
    max_rows: int  # upper bound on rows of the table: min(2 · raw_pairs, n_assets (n_assets − 1))
    history_lengths: np.ndarray  # distinct n_u, ascending
    users_per_length: np.ndarray

    @property
    def max_bytes(self) -> int:
        return self.max_rows * ROW_BYTES

    def largest_cap_within(self, budget: int) -> int:
        """The largest H such that capping every history at H views keeps raw_pairs within budget."""
        n, users = self.history_lengths, self.users_per_length
        below = np.concatenate(([0], np.cumsum(users * n * (n - 1) // 2)))
        above = np.concatenate((np.cumsum(users[::-1])[::-1], [0]))

        def pairs_with_cap(cap: int) -> int:
            split = np.searchsorted(n, cap, side="right")
            return int(below[split] + above[split] * cap * (cap - 1) // 2)

        low, high = 1, int(n[-1])
        while low < high:
            middle = (low + high + 1) // 2
            low, high = (middle, high) if pairs_with_cap(middle) <= budget else (low, middle - 1)
        return low

    def summary(self) -> dict:
        return {
            "users": self.users,
            "views": self.views,
            "raw_pairs": self.raw_pairs,
            "max_table_rows": self.max_rows,
            "max_table_bytes": self.max_bytes,
        }


def estimate_pairs(views: DataFrame) -> PairEstimate:
    """Σ n_u (n_u − 1)/2 and the table-size bound, from a histogram of history lengths (one small collect)."""
    lengths = views.groupBy("user_id").agg(F.count("*").alias("n"), F.max("asset_idx").alias("top_idx"))
    histogram = lengths.groupBy("n").agg(F.count("*").alias("users"), F.max("top_idx").alias("top_idx")).toArrow()
    if histogram.num_rows == 0:
        return PairEstimate(0, 0, 0, 0, 0, np.zeros(0, np.int64), np.zeros(0, np.int64))
    order = np.argsort(histogram.column("n").to_numpy())
    n = histogram.column("n").to_numpy()[order].astype(np.int64)
    users = histogram.column("users").to_numpy()[order].astype(np.int64)
    n_assets = int(histogram.column("top_idx").to_numpy().max()) + 1
    raw = int((users * n * (n - 1) // 2).sum())
    return PairEstimate(
        users=int(users.sum()),
        views=int((users * n).sum()),
        n_assets=n_assets,
        raw_pairs=raw,
        max_rows=min(2 * raw, n_assets * (n_assets - 1)),
        history_lengths=n,
        users_per_length=users,
    )


def check_budget(estimate: PairEstimate, budget: int, views: DataFrame, where: str) -> None:
    """Stop before the heavy work when the raw pairs exceed `budget`, naming the heaviest users."""
    if budget == 0 or estimate.raw_pairs <= budget:
        return
    heaviest = views.groupBy("user_id").agg(F.count("*").alias("n")).orderBy(F.desc("n"), "user_id").limit(5)
    named = ", ".join(f"{row.user_id} ({row.n:,} views)" for row in heaviest.collect())
    cap = estimate.largest_cap_within(budget)
    raise InputError(
        f"{where}: about {estimate.raw_pairs:,} raw pairs (Σ n²/2 over {estimate.users:,} users) exceed the budget "
        f"--pair-budget {budget:,}; the heaviest users are {named}. Cap heavy users with --max-user-views {cap} "
        f"(the largest cap within the budget), or raise --pair-budget; --max-neighbours K then keeps the table "
        f"itself at most K rows per asset (it is at most {estimate.max_rows:,} rows, {estimate.max_bytes / 1e9:.1f} GB)"
    )


BUCKET_RAW_PAIRS = 10_000_000  # a bucket's task has fixed costs (a round trip to Python, X rebuilt)


def gram_buckets(estimate: PairEstimate, partitions: int, block_pairs: int) -> int:
    """Buckets for pairs_by_gram: up to `partitions`, but no more than one per BUCKET_RAW_PAIRS raw pairs
    (MovieLens latest-small, 30M raw pairs on 2 cores: 2.0 s with 4 buckets, 2.4 s with 8); more when the
    table would not fit in them (`block_pairs` rows each)."""
    wanted = min(partitions, math.ceil(estimate.raw_pairs / BUCKET_RAW_PAIRS))
    return max(1, min(max(wanted, math.ceil(estimate.max_rows / block_pairs)), max(estimate.n_assets, 1)))


def sparsify(pairs: DataFrame, max_neighbours: int, min_co_views: float) -> DataFrame:
    """Keep pairs with co_views ≥ min_co_views, then each asset's `max_neighbours` best (0: all).

    Ties are broken by the neighbour's id, so the kept set is the same on every run. The result need not
    be symmetric: b may be among a's best without a being among b's.
    """
    kept = pairs.where(F.col("co_views") >= min_co_views) if min_co_views > 0 else pairs
    if max_neighbours == 0:
        return kept
    best = Window.partitionBy("asset_a").orderBy(F.desc("co_views"), "asset_b")
    return kept.withColumn("rank", F.row_number().over(best)).where(F.col("rank") <= max_neighbours).drop("rank")


# Key of the pair table's commit metadata: the version of DIR/views its counts are of, and how they were counted
PAIRS_RECORD = "film2vec_pairs"


def count_pairs(spark: SparkSession, config: Config) -> dict:
    """Ingest the events, estimate the cost (stopping when over budget), then write the co-view table DIR/pairs.

    With --new-events or --since, the new views are merged into the existing tables instead (count_new_pairs).

    Example::

        from film2vec import config, spark
        from film2vec.pairs.stage import count_pairs
        settings = config.load_profile("local"); settings.data.out = "/tmp/f2v"
        count_pairs(spark.get_spark(settings.spark), settings)
    """
    views_table = tables.of(config, "views")
    pairs_table = tables.of(config, "pairs")
    if config.merges_new_views:
        return count_new_pairs(spark, config)
    summary = {"ingest": prepare_views(spark, config)}
    settings = config.pairs
    views = views_table.read(spark)
    if settings.max_user_views:
        views = cap_views(views, settings.max_user_views, config.seed)
    estimate = estimate_pairs(views)
    summary["estimate"] = estimate.summary()
    log.info(
        "pairs: about %s raw pairs from %s users; the table has at most %s rows (%.2f GB uncompressed)",
        f"{estimate.raw_pairs:,}",
        f"{estimate.users:,}",
        f"{estimate.max_rows:,}",
        estimate.max_bytes / 1e9,
    )
    check_budget(estimate, settings.pair_budget, views, views_table.where)
    pairs = _pair_counter(spark, config, estimate)(views)
    sparse = settings.max_neighbours > 0 or settings.min_co_views > 0
    if sparse:
        pairs = pairs.persist()
        full = pairs.agg(F.count("*").alias("rows"), F.sum("co_views").alias("weight")).first()
        pairs_kept = sparsify(pairs, settings.max_neighbours, settings.min_co_views)
    record = _pairs_record(spark, config, views_table.version(spark))
    pairs_table.write(pairs_kept if sparse else pairs, record=record)
    if sparse:
        pairs.unpersist()
    written = pairs_table.read(spark)
    stats = written.agg(
        F.count("*").alias("pairs"),
        F.countDistinct("asset_a").alias("assets_with_neighbours"),
        F.sum("co_views").alias("weight"),
    ).first()
    if stats["pairs"] == 0:
        raise InputError(
            f"events at {summary['ingest']['source']}: no pair of assets is left (two assets watched by the same "
            "user, after --min-co-views); check that user ids are real (not one user per view)"
        )
    summary.update(
        pairs=pairs_table.where,
        pair_rows=stats["pairs"],
        assets_with_neighbours=stats["assets_with_neighbours"],
    )
    if sparse:
        summary.update(
            pair_rows_before_sparsifying=full["rows"],
            share_of_edges_kept=round(stats["pairs"] / full["rows"], 4),
            share_of_weight_kept=round(float(stats["weight"]) / float(full["weight"]), 4),
        )
    return summary


def _pair_counter(
    spark: SparkSession, config: Config, estimate: PairEstimate, increment: bool = False
) -> Callable[[DataFrame], DataFrame]:
    """The configured counting method, as a function from views to the co-view table of those views (with
    `increment`, from views flagged `new` to the pairs those add)."""
    settings = config.pairs
    weighted = settings.user_weighting == "inverse"
    assets = tables.of(config, "assets").read(spark)
    if settings.pair_method == "join":
        return lambda views: pairs_by_join(views, assets, weighted, increment)
    partitions = int(spark.conf.get("spark.sql.shuffle.partitions"))
    buckets = gram_buckets(estimate, partitions, settings.gram_block_pairs)
    return lambda views: pairs_by_gram(views, assets, buckets, weighted, settings.gram_block_pairs, increment)


def _pairs_record(spark: SparkSession, config: Config, views_version: int) -> dict:
    """The commit metadata of a pair table write: which views (and assets) it counts and the settings that
    shaped it."""
    settings = config.pairs
    return {
        PAIRS_RECORD: {
            "views_version": views_version,
            "assets_version": tables.of(config, "assets").version(spark),
            "user_weighting": settings.user_weighting,
            "max_user_views": settings.max_user_views,
            "max_neighbours": settings.max_neighbours,
            "min_co_views": settings.min_co_views,
        }
    }


EXACT_COUNTS = ("max_user_views", "max_neighbours", "min_co_views")  # 0 each: the counts a merge can update


def _pairs_counted(spark: SparkSession, config: Config) -> dict:
    """The record of the latest pair table write, checked against what an incremental count can update."""
    pairs_table = tables.of(config, "pairs")
    records = pairs_table.records(spark, PAIRS_RECORD)
    if not records:
        raise InputError(
            f"{pairs_table.where}: no record of the views it counts; "
            "run `film2vec pairs` once without --new-events/--since"
        )
    record = records[0][1]
    settings, pairs = config.pairs, pairs_table.where
    config.check("pairs", reads=frozenset(f"pairs.{name}" for name in EXACT_COUNTS))  # this run asks for exact counts
    for name in EXACT_COUNTS:
        if record[name]:
            raise ConfigError(
                f"flag {flag_of(name)}: new views can only be merged into exact counts (a capped history or a "
                f"dropped pair cannot be updated); {pairs} was counted with {name} = {record[name]}. Recount with "
                "`film2vec pairs`"
            )
    if record["user_weighting"] != settings.user_weighting:
        raise ConfigError(
            f"flag --user-weighting: {pairs} was counted with {record['user_weighting']!r}, this run "
            f"asks for {settings.user_weighting!r}; give the same, or recount with `film2vec pairs`"
        )
    return record


def count_new_pairs(spark: SparkSession, config: Config) -> dict:
    """Merge a batch of new views into DIR/views, DIR/assets and DIR/pairs; the pair table then equals a full
    recount of all the views.

    Each table changes in one Delta commit, views first. The pair table's commit records the views version
    it counts, so the pair increment is always the views added since (Delta time travel): a run stopped
    between the commits is completed by the next one, and a batch given twice adds nothing.

    Example::

        from film2vec import config, spark
        from film2vec.pairs.stage import count_new_pairs
        settings = config.load_profile("local"); settings.data.out = "/tmp/f2v"
        settings.data.new_events = "/tmp/f2v-new-views"
        count_new_pairs(spark.get_spark(settings.spark), settings)
    """
    views_table = tables.of(config, "views")
    pairs_table = tables.of(config, "pairs")
    counted = _pairs_counted(spark, config)
    merged_views = merge_new_views(spark, config)
    watch = Stopwatch()
    path = views_table.where
    version = merged_views["views_version"]
    summary = {"ingest": merged_views["ingest"], "views_version": version, "pairs": pairs_table.where}
    if version == counted["views_version"]:
        return {**summary, "new_views": 0, "users_with_new_views": 0, "new_assets": 0, "pair_rows_updated": 0}
    commits = views_table.delta(spark).history().where(F.col("version") > counted["views_version"])
    rewrites = commits.where((F.col("operation") != "WRITE") | (F.col("operationParameters")["mode"] != "Append"))
    if not rewrites.isEmpty():
        raise InputError(
            f"{path} was rewritten since {summary['pairs']} was counted (at version {counted['views_version']}, "
            f"now {version}); recount with `film2vec pairs` without --new-events/--since"
        )
    then = views_table.read(spark, version=counted["views_version"])
    now = views_table.read(spark, version=version)
    added = now.join(then.select("user_id", "asset_id"), ["user_id", "asset_id"], "left_anti")
    users = added.select("user_id").distinct()
    after = now.join(users, "user_id", "left_semi")
    estimate = estimate_pairs(after)
    check_budget(estimate, config.pairs.pair_budget, after, path)
    if config.pairs.user_weighting == "inverse":  # a user's weight changes with n: their old pairs change too
        count = _pair_counter(spark, config, estimate)
        increment = pair_increment(count(then.join(users, "user_id", "left_semi")), count(after))
    else:
        flagged = added.select("user_id", "asset_id", F.lit(True).alias("new"))
        after = after.join(flagged, ["user_id", "asset_id"], "left").fillna(False, ["new"])
        increment = _pair_counter(spark, config, estimate, increment=True)(after)
    record = _pairs_record(spark, config, version)
    merged = pairs_table.merge_sum(spark, increment, ("asset_a", "asset_b"), "co_views", record=record)
    counted_and_merged = watch.seconds
    stats = added.agg(F.count("*").alias("views"), F.countDistinct("user_id").alias("users")).first()
    new_assets = now.agg(F.max("asset_idx")).first()[0] - then.agg(F.max("asset_idx")).first()[0]
    return {
        **summary,
        "new_views": stats["views"],
        "users_with_new_views": stats["users"],
        "new_assets": int(new_assets),
        "pair_rows_updated": int(merged.get("numTargetRowsUpdated", 0)),
        "pair_rows_inserted": int(merged.get("numTargetRowsInserted", 0)),
        "pair_rows_rewritten_unchanged": int(merged.get("numTargetRowsCopied", 0)),
        "seconds_by_step": {
            **merged_views["seconds_by_step"],
            "count_and_merge_pairs": counted_and_merged,
            "of_which_merge_scan": round(int(merged.get("scanTimeMs", 0)) / 1000, 1),
            "of_which_merge_rewrite": round(int(merged.get("rewriteTimeMs", 0)) / 1000, 1),
        },
    }
