"""Typed configuration: one dataclass per stage, loaded from a profile in conf/ and overridden by flags.

Every field carries its help text and its allowed range, so the CLI, the jobs and the profile loader
validate the same way and a bad value stops with a message that names the file, the key and what is
allowed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import types
import typing
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from film2vec.storage import Storage, storage


def _conf_dir() -> Path:
    """The profiles: film2vec/conf in an installed wheel (setup.py packs conf/ there), else the checkout's conf/."""
    packaged = Path(__file__).resolve().parent / "conf"
    return packaged if packaged.is_dir() else packaged.parent.parent / "conf"


CONF_DIR = _conf_dir()


class ConfigError(ValueError):
    """A profile or flag value that is not allowed; the message says where and what is allowed."""


def flag_of(name: str) -> str:
    """The command-line flag of a setting, by its name: dim → --dim, lr_floor → --lr-floor."""
    return "--" + name.replace("_", "-")


def setting(
    default: Any,
    help: str,
    *,
    low: float | None = None,
    high: float | None = None,
    choices: tuple | None = None,
    speed_only: bool = False,
) -> Any:
    """A config field with its help text and allowed values (inclusive bounds). A `speed_only` setting changes
    how fast a command runs or what it holds in memory, never what it writes."""
    return field(
        default=default,
        metadata={"help": help, "low": low, "high": high, "choices": choices, "speed_only": speed_only},
    )


@dataclass
class DataConfig:
    events: str | None = setting(
        None,
        "View events: a Delta, Parquet or CSV path, a MovieLens folder, or a metastore table (catalog.schema.table "
        "or schema.table); none means the synthetic catalogue",
    )
    metadata: str | None = setting(
        None,
        "Asset metadata (asset_id, title, genres): a path or a metastore table; picked up from a MovieLens folder "
        "when omitted",
    )
    out: str = setting("film2vec-out", "Output folder: Delta tables, MLflow store, plots")
    id_type: str = setting(
        "auto", "Type of user and asset ids in CSV input: auto detects integers", choices=("auto", "int", "string")
    )
    lock_wait: float = setting(
        0.0,
        "Seconds a command waits for another one writing under the same --out before it stops with exit 4 "
        "(nothing written); 0: stop at once",
        low=0.0,
        high=86_400.0,
        speed_only=True,
    )
    null_tokens: str = setting(
        "NULL,null,\\N,NaN,nan,None",
        "Words that mean a missing value in text id and time columns (CSV), comma-separated; a blank value is "
        "always missing. Such a row is rejected with the reason 'is null', not taken for an id",
    )
    strict_metadata: bool = setting(
        False,
        "Reject the views of assets --metadata lacks ('asset_id not in metadata'); false: keep them, the assets "
        "without title or genres, and count them in the summary",
    )
    catalog: str | None = setting(
        None, "Catalog of --schema (Unity Catalog; spark_catalog for a local Hive metastore); none: the current one"
    )
    schema: str | None = setting(
        None,
        "Write the tables users read (views, assets, rejects, pairs, embeddings, neighbours, user_vectors, "
        "recommendations, audit, clusters) as managed Delta tables in this schema instead of folders under --out; "
        "scratch data (seasons, checkpoints, plots, the local MLflow store) stays under --out",
    )
    user_col: str = setting("user_id", "Column of --events (and --new-events) holding the user id")
    asset_col: str = setting("asset_id", "Column of --events (and --new-events) holding the asset id")
    time_col: str = setting("viewed_at", "Column of --events holding the view time (optional in the data)")
    metadata_asset_col: str | None = setting(None, "Column of --metadata holding the asset id; none: --asset-col")
    title_col: str = setting("title", "Column of --metadata holding the title")
    genres_col: str = setting("genres", "Column of --metadata holding the labels (a list, or '|'-separated text)")
    new_events: str | None = setting(
        None,
        "`pairs`/`refresh`: a batch of new view events (same formats as --events) merged into the existing DIR tables",
    )
    since: str | None = setting(
        None,
        "`pairs`/`refresh`: the views of --new-events (else --events) at or after this time (ISO text or Unix "
        "seconds) are the new batch",
    )


# how the user's input files are read: the id type, the column names, the null words, strict metadata
INPUT_READING = (
    *("id_type", "user_col", "asset_col", "time_col", "metadata_asset_col", "title_col", "genres_col"),
    *("null_tokens", "strict_metadata"),
)


@dataclass
class SparkConfig:
    master: str = setting("local[*]", "Spark master used when film2vec starts Spark itself", speed_only=True)
    shuffle_partitions: int = setting(8, "spark.sql.shuffle.partitions", low=1, high=100_000, speed_only=True)
    driver_memory: str = setting("4g", "Driver memory when film2vec starts Spark itself", speed_only=True)
    metastore: str = setting(
        "~/.film2vec/metastore",
        "Folder of the local Hive metastore (embedded Derby) and its warehouse, used when film2vec starts Spark "
        "itself and reads or writes tables by name; the platform's catalog (Unity Catalog) is used as it is",
    )


@dataclass
class SyntheticConfig:
    users: int = setting(2_000, "Synthetic users", low=2, high=100_000_000)
    catalogue_size: int = setting(1_000, "Synthetic assets in the catalogue", low=2, high=10_000_000)
    genres: int = setting(10, "Planted genres", low=1, high=1_000)
    views_per_user: float = setting(30.0, "Mean distinct views per user (heavy-tailed)", low=1.0, high=100_000.0)
    off_taste_share: float = setting(
        0.1, "Share of views of anything popular, ignoring the user's tastes (wanders off taste)", low=0.0, high=1.0
    )
    noise_share: float = setting(
        0.03,
        "Share of views of a uniformly random released asset, ignoring popularity and tastes (mis-clicks, autoplay); "
        "taken first where it and off_taste_share add up to more than 1",
        low=0.0,
        high=1.0,
    )
    popularity_exponent: float = setting(
        1.5,
        "Zipf exponent of asset popularity within a genre (1.5 brings views per asset near MovieLens's Gini and "
        "top-1% share)",
        low=0.0,
        high=5.0,
    )
    genre_exponent: float = setting(
        1.0,
        "Zipf exponent across genres: the k-th genre holds and draws ∝ 1/k^s of the assets and of users' liked "
        "genres, as real genres differ in size and audience (0: equal genres)",
        low=0.0,
        high=5.0,
    )
    multi_genre_share: float = setting(
        0.5,
        "Share of assets with two or three planted genres (half each), as real titles often carry several; the "
        "assets table lists them all, the first is the asset's own (0: one genre each)",
        low=0.0,
        high=1.0,
    )
    back_catalogue_share: float = setting(
        0.5,
        "Share of assets released in the year before the views start (the back catalogue); the rest come out during "
        "the year and are never viewed before their release (1: nothing new comes out)",
        low=0.0,
        high=1.0,
    )
    release_boost: float = setting(
        10.0,
        "Extra attention a release gets: right after release an asset draws (1 + this) times its lasting "
        "popularity, so views bunch soon after releases (0: popularity does not change with age)",
        low=0.0,
        high=1_000.0,
    )
    release_half_life_days: float = setting(
        30.0, "Days for a release's extra attention (release_boost) to halve", low=1.0, high=3_650.0
    )
    active_days: float = setting(
        90.0,
        "Mean length of a user's active period in days (exponential, at most the year): each user's views fall in it",
        low=1.0,
        high=365.0,
    )
    taste_drift: float = setting(
        0.5,
        "How far a user's genre weights move from their first view to their last, as tastes change: 0 keeps them, "
        "1 ends at weights drawn afresh (which may add a liked genre or drop one)",
        low=0.0,
        high=1.0,
    )
    binge_share: float = setting(
        0.2,
        "About this share of views are logged in binge sessions, at the same second as another view of the same "
        "user, as real logs tie views (0: no ties)",
        low=0.0,
        high=1.0,
    )
    heavy_user_share: float = setting(
        0.05,
        "Share of heavy users, who watch heavy_user_factor times as much as others: a heavier tail of views per "
        "user than the lognormal alone (views_per_user stays the mean)",
        low=0.0,
        high=1.0,
    )
    heavy_user_factor: float = setting(8.0, "How many times as much a heavy user watches", low=1.0, high=1_000.0)


@dataclass
class PairsConfig:
    pair_method: str = setting(
        "gram",
        "How co-views are counted: gram (per-bucket sparse products, fast) or join (the self-join reference)",
        choices=("gram", "join"),
        speed_only=True,
    )
    max_user_views: int = setting(
        0, "Users with more views contribute a seeded uniform sample of this many; 0 keeps every view", low=0
    )
    user_weighting: str = setting(
        "none",
        "none: co_views counts users (bigint); inverse: each user's pairs weigh 1/(n-1) (co_views is a double)",
        choices=("none", "inverse"),
    )
    max_neighbours: int = setting(0, "Keep each asset's top K neighbours by co_views; 0 keeps all", low=0)
    min_co_views: float = setting(0.0, "Drop pairs with co_views below this; 0 keeps all", low=0.0)
    pair_budget: int = setting(
        10_000_000_000, "Stop before counting when Σ n²/2 over users' histories exceeds this; 0: no limit", low=0
    )
    gram_block_pairs: int = setting(
        50_000_000,
        "Gram memory bound: products per sparse block, and table rows per bucket (more rows: more buckets)",
        low=1_000,
        speed_only=True,
    )


@dataclass
class SeasonsConfig:
    seasons: int = setting(
        0,
        "Seasons of samples (each a fresh draw). 0: as many as the vectors improve: after each season the run scores "
        "next-watch (and GenreP@10 where there are labels) on a held-out slice of --validation-users users' last "
        "views and stops after a season without gain, between --min-seasons and --max-seasons",
        low=0,
        high=10_000,
    )
    min_seasons: int = setting(2, "--seasons 0: the fewest seasons a run trains", low=1, high=10_000)
    max_seasons: int = setting(20, "--seasons 0: the most seasons a run trains", low=1, high=10_000)
    gain_standard_errors: float = setting(
        1.0,
        "--seasons 0: a season counts as a gain only when its held-out gain over the best earlier season exceeds "
        "this many standard errors of the users' and assets' paired differences (0: any gain in the means)",
        low=0.0,
        high=10.0,
    )
    validation_users: int = setting(
        1_000,
        "--seasons 0: users (a seeded sample of those with at least 3 views) whose last view is held out of the "
        "seasons to score each season's vectors on",
        low=1,
        high=100_000_000,
    )
    samples_per_view: float = setting(
        30.0,
        "A season's size: samples per view of the assets the walk starts from, so the volume follows the evidence "
        "(views), not the catalogue's size",
        low=1e-3,
        high=1e6,
    )
    season_samples_per_asset: float | None = setting(
        3_000.0,
        "A season's size is at most this many samples per asset the walk starts from (none: no bound), so assets "
        "viewed over 100 times each (at 30 samples per view) get seasons the held-out slice judges one by one "
        "(--seasons 0 draws more while they gain) instead of a few huge ones. The cut falls on the most viewed "
        "origins only: every origin under a cap keeps its samples per view",
        low=1.0,
        high=1e9,
    )
    negatives: int = setting(20, "Negatives per sample", low=1, high=1_000)
    walk: str = setting(
        "bipartite",
        "bipartite: origin → one of its users → another of their assets; coview: target ∝ co_views(origin, target)",
        choices=("bipartite", "coview"),
    )
    context_window: int = setting(
        50,
        "bipartite walk: the target is among the user's views at most this many before or after the origin's, in "
        "viewing order (word2vec's window); 0: any of the user's views (the described model)",
        low=0,
        high=1_000_000,
    )
    origin_distribution: str = setting(
        "views",
        "views: origins drawn ∝ views^origin_exponent; stratified: the same number of samples from every asset",
        choices=("views", "stratified"),
    )
    origin_exponent: float = setting(1.0, "β of origins ∝ views^β (0: uniform)", low=0.0, high=10.0)
    negative_distribution: str = setting(
        "uniform",
        "uniform over the other assets, or unigram: ∝ views^unigram_exponent; never the origin or the target",
        choices=("uniform", "unigram"),
    )
    unigram_exponent: float = setting(0.75, "α of unigram negatives ∝ views^α (word2vec: 0.75)", low=0.0, high=10.0)
    sample_partitions: int = setting(
        8,
        "Spark partitions of the walk's lists (and user buckets of the bipartite walk); samples do not depend on it",
        low=1,
        high=100_000,
        speed_only=True,
    )
    sampler: str = setting(
        "auto",
        "Where seasons are drawn (the same rows either way): spark, by the executors, for any size; driver, in this "
        "process from the walk's lists collected once, without a Spark job per season; auto: the driver when neither "
        "the walk's input (views or pairs) nor a season has more than --driver-sampling-rows rows",
        choices=("auto", "spark", "driver"),
        speed_only=True,
    )
    driver_sampling_rows: int = setting(
        5_000_000,
        "--sampler auto: the most input rows, and samples a season, drawn on the driver",
        low=0,
        high=10**12,
        speed_only=True,
    )
    pipelined_seasons: bool = setting(
        True, "film2vec run: sample season k + 1 while the trainer trains on season k", speed_only=True
    )


@dataclass
class TrainConfig:
    dim: int = setting(64, "Vector dimension", low=1, high=4_096)
    epochs_per_season: int = setting(
        1,
        "Passes over each season. At equal steps a fresh season (more --seasons) learns more than another pass "
        "over the same one; raise this only when drawing seasons costs more than training on them",
        low=1,
        high=1_000,
    )
    batch_size: int = setting(4_096, "Samples per SGD step", low=1, high=10_000_000)
    learning_rate: float = setting(
        0.07, "Row-wise Adagrad learning rate (at the start, under --lr-schedule linear)", low=1e-8, high=10.0
    )
    lr_schedule: str = setting(
        "constant",
        "Learning rate across the seasons: constant keeps it (row-wise Adagrad already slows each row as it learns, "
        "and a run that stops when its vectors stop improving does not know its last sample in advance); linear "
        "decays it to --lr-floor times it by the last sample (a fixed --seasons N only)",
        choices=("constant", "linear"),
    )
    lr_floor: float = setting(
        0.0001, "Last learning rate of the linear schedule, as a share of the first", low=0.0, high=1.0
    )
    loss: str = setting(
        "softmax",
        "softmax over target and negatives (described model) or independent sigmoids (word2vec)",
        choices=("softmax", "sigmoid"),
    )
    shared_vectors: bool = setting(
        True, "One matrix for origins and candidates (described model); false adds a separate context matrix"
    )
    center_vectors: bool = setting(
        True,
        "Subtract the trained assets' mean vector from their vectors once training ends: the shared matrix grows a "
        "direction common to every asset that carries popularity, not taste, and removing it makes cosine "
        "neighbours follow taste. Turn it off to keep the raw vectors (checkpoints always keep them)",
    )
    min_views: int = setting(
        1,
        "Assets with fewer distinct viewers get no vector in DIR/embeddings (word2vec's min_count)",
        low=1,
        high=1_000_000,
    )
    step_kernel: str = setting(
        "auto",
        "The CPU training step: native (C, built once per machine with the system's cc; several times faster), "
        "torch (tensor code, see --compile-step) or auto (native where it builds, else torch); CUDA runs torch",
        choices=("auto", "native", "torch"),
        speed_only=True,
    )
    compile_step: str = setting(
        "auto",
        "Fuse the tensor-code step with torch.compile: ~4x faster than eager on CPU after ~10-30 s of compiling; "
        "auto compiles when the run makes at least 5M sample passes; the eager step takes over when no compiler works",
        choices=("auto", "on", "off"),
        speed_only=True,
    )
    device: str = setting(
        "auto", "Torch device: auto picks CUDA when present", choices=("auto", "cpu", "cuda"), speed_only=True
    )
    shuffle_buffer: int = setting(1_000_000, "Samples shuffled together while streaming", low=1, high=1_000_000_000)
    prefetch: int = setting(4, "Arrow batches read ahead in the background", low=1, high=1_000, speed_only=True)
    threads: int = setting(0, "Torch CPU threads; 0 means all cores", low=0, high=1_024, speed_only=True)
    processes: int = setting(
        1,
        "Processes that train each season together, data parallel, started on the driver by Spark's "
        "TorchDistributor (CPU, gloo; the eager tensor-code step). 1 trains in the driver's own process, which "
        "is faster on one machine; more is the small case of training past one driver (docs/operations.md)",
        low=1,
        high=256,
        speed_only=True,
    )
    resume: bool = setting(
        True, "Resume from the last season checkpoint in DIR/checkpoints when its settings match", speed_only=True
    )
    warm_start: str | None = setting(
        None,
        "Start from a registered model's vectors: models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN_ID/model or a "
        "run id; new assets start from the mean vector of assets sharing a label",
    )
    allow_season_mismatch: bool = setting(
        False,
        "`train`: train on seasons drawn with other sampler settings or from older inputs than this configuration's "
        "(stopping is the default; the difference is recorded in the MLflow run and the embeddings' commit)",
    )
    warm_learning_rate: float = setting(
        0.1,
        "Learning rate at the start of a warm-started run. The model's row-wise Adagrad accumulators come with "
        "it, so known assets keep taking the small steps they had reached while new ones learn at this full rate; "
        "lower it to keep every vector, new assets' label means included, closer to where it starts",
        low=1e-8,
        high=10.0,
    )
    warm_new_assets: str = setting(
        "labels",
        "Where a warm-started run starts assets the model lacks: labels (the mean vector of known assets sharing a "
        "label; at random without one) or random (as a cold run)",
        choices=("labels", "random"),
    )
    cold_start: bool = setting(
        False,
        "Assets in the metadata with no views get a provisional vector (mean of the trained vectors sharing a "
        "label), marked source = 'metadata' in DIR/embeddings",
    )

    def check_processes(self) -> None:
        """Refuse, by flag, what training on several processes cannot honour: its processes take the eager
        tensor-code step on the CPU (film2vec.train.distributed)."""
        if self.processes == 1:
            return
        for flag, value, refused in (
            ("--step-kernel", self.step_kernel, "native"),
            ("--compile-step", self.compile_step, "on"),
            ("--device", self.device, "cuda"),
        ):
            if value == refused:
                raise ConfigError(
                    f"flag --processes {self.processes}: its processes take the eager tensor-code step on the CPU, "
                    f"so {flag} {refused} cannot hold; leave {flag} at auto, or --processes at 1"
                )


@dataclass
class EvaluateConfig:
    embeddings: str | None = setting(
        None, "`film2vec evaluate`: score this embeddings table (asset_id, vector) instead of training on the split"
    )
    baseline: str | None = setting(
        None,
        "`film2vec evaluate`: also train this baseline on the same split's train views and score it with the same "
        "protocol, side by side with wall times; als: Spark MLlib implicit ALS, rank --dim, its item factors as the "
        "vectors (and its own user-factor ranking as recommend_* figures); none: film2vec alone",
        choices=("als",),
    )
    als_iterations: int = setting(15, "ALS baseline: alternating least-squares iterations (maxIter)", low=1, high=1_000)
    als_reg_param: float = setting(0.05, "ALS baseline: L2 regularisation (regParam)", low=0.0, high=1_000.0)
    als_alpha: float = setting(
        1.0, "ALS baseline: confidence of a view, 1 + alpha (implicit feedback; a view counts 1)", low=0.0, high=1e6
    )


@dataclass
class TrackingConfig:
    experiment: str = setting("film2vec", "MLflow experiment name")
    model_name: str = setting("film2vec", "Registered model name")
    alias: str = setting("champion", "Alias of the served version, the one consumers load")
    top_k: int = setting(
        10,
        "Neighbours the served model returns by default, and each asset's rows in the neighbours table",
        low=1,
        high=10_000,
    )
    ann_from_assets: int = setting(
        100_000,
        "Catalogues of at least this many assets get approximate neighbours from a FAISS HNSW index (the optional "
        "faiss-cpu extra), in the neighbours table and in the served model; smaller ones exact",
        low=2,
    )
    ann_recall: float = setting(
        0.95,
        "Approximate neighbours: the share of 1,000 sampled assets' exact top-k neighbours the index must find; "
        "its search depth (efSearch) doubles until it does",
        low=0.5,
        high=1.0,
    )
    move_alias: str = setting(
        "when_floors_clear",
        "when_floors_clear: training serves the new version (its rows become DIR/embeddings and DIR/neighbours, "
        "the alias points at it) when its figures clear the floors; by_promote: training registers it and writes "
        "its candidate rows, and `film2vec validate` then `film2vec promote` serve it (the Databricks job's gate)",
        choices=("when_floors_clear", "by_promote"),
    )
    evaluation_model: str | None = setting(
        None,
        "`validate`: the registered model `film2vec evaluate` logged its held-out figures under (its latest "
        "version's figures count); none: only the new version's own figures (GenreP@10 over all views)",
    )
    version: int = setting(
        0,
        "`validate`, `promote`: the registered version to act on; 0: the model_version task value the train task "
        "published in this Databricks job run (film2vec.task_values), and a refusal without one",
        low=0,
    )
    evaluation_version: int = setting(
        0,
        "`validate`: the version of --evaluation-model whose held-out figures count; 0: the evaluate task's "
        "model_version task value",
        low=0,
    )
    force: bool = setting(
        False, "`promote`: serve the version even though `validate` did not pass it (recorded on the version)"
    )
    alias_floor_recall: float = setting(
        0.0,
        "The alias moves to a new version only if its held-out Recall@20 reaches this; 0: no floor",
        low=0.0,
        high=1.0,
    )
    alias_floor_genre_p: float = setting(
        0.0,
        "The alias moves only if the new vectors' GenreP@10 (held-out split, else all views) reaches this; 0: no floor",
        low=0.0,
        high=1.0,
    )


@dataclass
class AppsConfig:
    half_life_views: float | None = setting(
        5.0,
        "Recency weighting of taste vectors (and of `film2vec evaluate`'s recommender figures): a view's weight "
        "halves for every this many of the user's views after it, at the user's own pace; none: no such weighting",
        low=1e-3,
        high=1e9,
    )
    half_life_days: float | None = setting(
        None,
        "Recency weighting of taste vectors: a view's weight also halves every this many days before the user's "
        "latest view; none: no such weighting",
        low=1e-3,
        high=1e6,
    )
    candidates: str | None = setting(
        None, "Candidate assets to recommend (Delta, Parquet or CSV with asset_id); none: every asset with a vector"
    )
    recommend_n: int = setting(10, "Recommendations kept per user", low=1, high=10_000)
    popularity_prior: float = setting(
        0.15,
        "Weight of log-popularity (scaled to 0..1) added to the taste score (a cosine); 0: taste alone. Also "
        "what `film2vec evaluate` scores film2vec's recommender with",
        low=0.0,
        high=100.0,
    )
    labels: str | None = setting(
        None, "Table with asset_id and the label column to audit (Delta, Parquet or CSV); none: DIR/assets"
    )
    label_column: str = setting("genres", "Column holding each asset's labels (a list, or one label as text)")
    audit_k: int = setting(10, "Labelled neighbours that vote on an asset's labels", low=1, high=10_000)
    audit_confidence: float = setting(
        0.6, "Vote share a label needs to be predicted, and to flag an asset that lacks it", low=0.01, high=1.0
    )
    audit_holdout: float = setting(
        0.0,
        "Share of labelled assets whose labels are hidden to measure how well the vote recovers them",
        low=0.0,
        high=0.9,
    )
    n_clusters: int = setting(20, "k of k-means on the unit vectors", low=2, high=100_000)
    central_assets: int = setting(5, "Most central assets listed per cluster", low=1, high=1_000)
    similar_to: str | None = setting(None, "Asset id or title whose neighbours `film2vec similar` prints")
    map_assets: int = setting(
        20_000, "Most-viewed assets placed on the 2-D map (t-SNE cost grows with it)", low=10, high=10_000_000
    )
    run_id: str | None = setting(
        None, "MLflow run to log uses to; none: the run that trained the served vectors (DIR/embeddings' run_id)"
    )


@dataclass
class RefreshConfig:
    warm_seasons: int = setting(
        1, "`refresh`: seasons drawn, then trained from the warm-started model", low=1, high=10_000
    )
    compact: bool = setting(
        True,
        "`refresh`: OPTIMIZE the tables the refresh merged into (views, pairs) and VACUUM their unreferenced files",
        speed_only=True,
    )
    vacuum_retention_hours: float = setting(
        168.0,
        "`refresh`: files no longer referenced are deleted after this many hours (Delta's default, 7 days; readers "
        "older than that fail, and time travel cannot go further back)",
        low=0.0,
        high=1e6,
        speed_only=True,
    )
    retrain_unchanged: bool = setting(
        False,
        "`refresh`: train and register a new version even when the batch holds no view the tables lack (without "
        "it such a refresh says so and stops, exit 0: no new version, the alias stays)",
    )


@dataclass
class Config:
    seed: int = setting(0, "Seed of every random choice (generator, sampler, trainer)", low=0, high=2**63 - 1)
    data: DataConfig = field(default_factory=DataConfig)
    spark: SparkConfig = field(default_factory=SparkConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    pairs: PairsConfig = field(default_factory=PairsConfig)
    seasons: SeasonsConfig = field(default_factory=SeasonsConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    apps: AppsConfig = field(default_factory=AppsConfig)
    refresh: RefreshConfig = field(default_factory=RefreshConfig)

    @property
    def names_events(self) -> bool:
        """Whether the user names view events (--events or --new-events), read by the input settings
        (INPUT_READING, --metadata); without, the events are the synthetic catalogue, film2vec's own table."""
        return bool(self.data.events or self.data.new_events)

    @property
    def merges_new_views(self) -> bool:
        """Whether a command merges a batch of new views (--new-events or --since) rather than reading all."""
        return bool(self.data.new_events or self.data.since)

    def check(self, command: str | None = None, reads: frozenset[str] | None = None) -> None:
        """Refuse, by flag, settings each valid alone that contradict each other, as PyTorch-BigGraph's
        ConfigSchema checks its own: before Spark starts, whatever the data holds. A rule applies when every
        setting it involves acts: the command (None: any) reads it (`reads`; None: all), and the rest of the
        configuration lets it act (CONDITIONAL_SETTINGS)."""

        def read(*keys: str) -> bool:
            return all(
                (reads is None or key in reads)
                and all(rule.holds(self, command) for rule in CONDITIONAL_SETTINGS if key in rule.keys)
                for key in keys
            )

        if self.data.catalog and not self.data.schema and read("data.catalog"):
            raise ConfigError("flag --catalog needs --schema: name the schema that receives the tables")
        if command == "refresh" and not self.merges_new_views:
            raise ConfigError("film2vec refresh: give the new views, --new-events PATH or --since TIME")
        if self.merges_new_views:
            for name, why in (
                ("max_user_views", "a capped history"),
                ("max_neighbours", "a dropped pair"),
                ("min_co_views", "a dropped pair"),
            ):
                if read(f"pairs.{name}") and getattr(self.pairs, name):
                    raise ConfigError(
                        f"flag {flag_of(name)}: new views (--new-events, --since) can only be merged into exact "
                        f"counts ({why} cannot be updated); leave it at 0, or recount with `film2vec pairs`"
                    )
        if not self.seasons.seasons and read("seasons.seasons", "train.lr_schedule"):
            if self.train.lr_schedule == "linear":
                raise ConfigError(
                    "flag --seasons 0 (as many seasons as the vectors improve) does not know the run's last sample, "
                    "where --lr-schedule linear ends: give --seasons N, or --lr-schedule constant"
                )
            if self.seasons.min_seasons > self.seasons.max_seasons:
                raise ConfigError(
                    f"flags --min-seasons {self.seasons.min_seasons} and --max-seasons {self.seasons.max_seasons}: "
                    "the floor is above the ceiling"
                )
        if read("train.processes"):
            self.train.check_processes()

    def out(self, table: str) -> str:
        """Path of an output table or file under the output folder (absolute when local)."""
        if storage(self.data.out) is Storage.REMOTE:
            return f"{self.data.out.rstrip('/')}/{table}"
        return str(Path(self.data.out).resolve() / table)


SECTIONS = tuple(f.name for f in dataclasses.fields(Config) if dataclasses.is_dataclass(f.default_factory))


@dataclass(frozen=True)
class ActsOnlyWhen:
    """Settings that act only when the rest of the configuration (and the command) lets them: `film2vec
    COMMAND` refuses a value of its own for one of them otherwise, naming what would let it act."""

    keys: tuple[str, ...]
    holds: Callable[[Config, str], bool]  # (the configuration, the command)
    what_lets_them: str


def _keys(section: str, *names: str) -> tuple[str, ...]:
    """`section.name` for the names given, or for every field of the section when none are."""
    owner = type(getattr(Config(), section))
    return tuple(f"{section}.{name}" for name in names or [f.name for f in dataclasses.fields(owner)])


CONDITIONAL_SETTINGS = (
    ActsOnlyWhen(
        _keys("data", "metadata", *INPUT_READING),
        lambda c, _: c.names_events,
        "--events or --new-events (the synthetic catalogue is film2vec's own table, read by its own columns)",
    ),
    ActsOnlyWhen(_keys("pairs"), lambda c, command: command == "pairs" or c.seasons.walk == "coview", "--walk coview"),
    ActsOnlyWhen(
        _keys("seasons", "min_seasons", "max_seasons", "gain_standard_errors", "validation_users"),
        lambda c, _: c.seasons.seasons == 0,
        "--seasons 0",
    ),
    ActsOnlyWhen(
        _keys("seasons", "gain_standard_errors"),
        lambda c, _: c.seasons.max_seasons > max(c.seasons.min_seasons, 2),
        "--max-seasons above --min-seasons and 2 (only the seasons between them are judged)",
    ),
    ActsOnlyWhen(_keys("seasons", "context_window"), lambda c, _: c.seasons.walk == "bipartite", "--walk bipartite"),
    ActsOnlyWhen(
        _keys("seasons", "origin_exponent"),
        lambda c, _: c.seasons.origin_distribution == "views",
        "--origin-distribution views",
    ),
    ActsOnlyWhen(
        _keys("seasons", "unigram_exponent"),
        lambda c, _: c.seasons.negative_distribution == "unigram",
        "--negative-distribution unigram",
    ),
    ActsOnlyWhen(_keys("seasons", "driver_sampling_rows"), lambda c, _: c.seasons.sampler == "auto", "--sampler auto"),
    ActsOnlyWhen(_keys("train", "lr_floor"), lambda c, _: c.train.lr_schedule == "linear", "--lr-schedule linear"),
    ActsOnlyWhen(
        _keys("train", "warm_learning_rate", "warm_new_assets"),
        lambda c, command: c.train.warm_start is not None or command == "refresh",
        "--warm-start (or `film2vec refresh`, which warm-starts from the served model)",
    ),
    ActsOnlyWhen(
        _keys("evaluate", "als_iterations", "als_reg_param", "als_alpha"),
        lambda c, _: c.evaluate.baseline == "als",
        "--baseline als",
    ),
    ActsOnlyWhen(
        tuple(key for key in (*_keys("seasons"), *_keys("train")) if key != "seasons.sample_partitions"),
        lambda c, command: command != "evaluate" or c.evaluate.embeddings is None,
        "`film2vec evaluate` training its own vectors (no --embeddings)",
    ),
    ActsOnlyWhen(
        ("seed",),
        lambda c, command: command != "audit" or c.apps.audit_holdout > 0,
        "--audit-holdout above 0 (the only draw `film2vec audit` makes)",
    ),
    ActsOnlyWhen(
        _keys("tracking", "model_name", "alias"),
        lambda c, command: command != "similar" or c.data.schema is not None,
        "--schema (`film2vec similar` asks the served model only for tables in a metastore)",
    ),
    ActsOnlyWhen(
        _keys("tracking", "evaluation_version"),
        lambda c, _: c.tracking.evaluation_model is not None,
        "--evaluation-model",
    ),
)


def value_of(config: Config, key: str) -> Any:
    """The value of a setting by its key: `section.name`, or `name` at the top level."""
    section, _, name = key.rpartition(".")
    return getattr(getattr(config, section) if section else config, name)


def idle_settings(config: Config, base: Config, command: str, reads: Collection[str]) -> list[str]:
    """The settings `command` reads whose value differs from `base`'s (the profile the flags were applied to)
    although this configuration does not let them act, each with what would (CONDITIONAL_SETTINGS)."""
    idle = {}
    for rule in CONDITIONAL_SETTINGS:
        if rule.holds(config, command):
            continue
        for key in rule.keys:
            value = value_of(config, key)
            if key in reads and key not in idle and value != value_of(base, key):
                idle[key] = (
                    f"{flag_of(key.rpartition('.')[2])} {_yaml_text(value)} acts only with {rule.what_lets_them}"
                )
    return list(idle.values())


def _allowed(meta: dict, kind: Any) -> str:
    if meta.get("choices"):
        return "one of " + ", ".join(map(str, meta["choices"]))
    parts = [_type_name(kind)]
    if meta.get("low") is not None:
        parts.append(f">= {meta['low']:g}")
    if meta.get("high") is not None:
        parts.append(f"<= {meta['high']:g}")
    return " ".join(parts)


def _type_name(kind: Any) -> str:
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else a.__name__ for a in typing.get_args(kind))
    return kind.__name__


def _coerce(value: Any, kind: Any) -> Any:
    """The value as the field's type, or raise TypeError; ints are accepted for floats, never bools."""
    options = typing.get_args(kind) if typing.get_origin(kind) in (typing.Union, types.UnionType) else (kind,)
    if value is None:
        if type(None) in options:
            return None
        raise TypeError
    for option in options:
        if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if option in (str, bool) and isinstance(value, option):
            return value
    raise TypeError


def type_options(kind: Any) -> tuple:
    """The types a field of type `kind` takes: each member of a union, or the type itself."""
    return typing.get_args(kind) if typing.get_origin(kind) in (typing.Union, types.UnionType) else (kind,)


BOOLEANS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}


def parsed_text(text: str, options: tuple) -> Any:
    """Text (a flag, a widget) as the first of the field's types it reads as; the text itself when none
    (check_value says why)."""
    word = text.strip().lower()
    if type(None) in options and word in ("null", "none", "~"):
        return None
    for option in options:
        if option is bool and word in BOOLEANS:
            return BOOLEANS[word]
        if option in (int, float):
            with contextlib.suppress(ValueError):
                return option(text)
        if option is str:
            return text
    return text


def check_value(section: str, name: str, value: Any, source: str) -> Any:
    """Validate one value for `section.name` (section '' is the top level); return it coerced."""
    owner = Config if not section else type(getattr(Config(), section))
    fields = {f.name: f for f in dataclasses.fields(owner) if not dataclasses.is_dataclass(f.default_factory)}
    key = f"{section}.{name}" if section else name
    if name not in fields:
        known = sorted(fields) if section else sorted([*fields, *SECTIONS])
        guess = difflib.get_close_matches(str(name), known, n=1)
        hint = f" (did you mean '{guess[0]}'?)" if guess else ""
        raise ConfigError(f"{source}: unknown key '{key}'{hint}; known keys: {', '.join(known)}")
    kind = typing.get_type_hints(owner)[name]
    meta = fields[name].metadata
    try:
        value = _coerce(value, kind)
    except TypeError:
        raise ConfigError(f"{source}: '{key}' is {value!r}; allowed: {_allowed(meta, kind)}") from None
    bad = (value is not None and meta.get("choices") and value not in meta["choices"]) or (
        isinstance(value, (int, float))
        and (
            (meta.get("low") is not None and value < meta["low"])
            or (meta.get("high") is not None and value > meta["high"])
        )
    )
    if bad:
        raise ConfigError(f"{source}: '{key}' is {value!r}; allowed: {_allowed(meta, kind)}")
    return value


def apply(config: Config, values: dict, source: str) -> Config:
    """Set nested values ({section: {key: value}} or top-level keys) on config, validating each."""
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(values).__name__}")
    for key, value in values.items():
        if key in SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: section '{key}' must be a mapping, got {value!r}")
            section = getattr(config, key)
            for name, item in value.items():
                setattr(section, name, check_value(key, name, item, source))
        else:
            setattr(config, key, check_value("", key, value, source))
    return config


def load_profile(profile: str | Path = "local") -> Config:
    """Config from a profile name in conf/ (local, cluster, databricks) or a YAML path."""
    path = Path(profile)
    if not path.suffix:
        path = CONF_DIR / f"{profile}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in CONF_DIR.glob("*.yaml")))
        raise ConfigError(f"config profile {str(profile)!r} not found at {path}; profiles in {CONF_DIR}: {known}")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    return apply(Config(), values, str(path))


def field_specs() -> list[tuple[str, dataclasses.Field, Any]]:
    """(section, field, type) for every setting, top level first; the CLI makes a flag of each."""
    specs = [
        ("", f, typing.get_type_hints(Config)[f.name]) for f in dataclasses.fields(Config) if f.name not in SECTIONS
    ]
    for section in SECTIONS:
        owner = type(getattr(Config(), section))
        hints = typing.get_type_hints(owner)
        specs.extend((section, f, hints[f.name]) for f in dataclasses.fields(owner))
    return specs


def reference_markdown() -> str:
    """docs/configuration.md: every setting with its flag, allowed values, default and help text, read from the
    fields themselves (`tests/test_docs.py` keeps the file equal to this). Regenerate it with
    `python -m film2vec.config > docs/configuration.md`."""
    local = load_profile("local")
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated from film2vec/config.py: python -m film2vec.config > docs/configuration.md -->",
        "",
        "Every setting is a key of a profile (`conf/local.yaml`, `conf/cluster.yaml`, `conf/databricks.yaml`, or a",
        "YAML file given to `--profile`) and a flag of every `film2vec` command; a flag overrides the profile. A key",
        "`section.name` is written in YAML as `name` under `section:`. The default is the `local` profile's value",
        "(the CLI's profile unless `--profile` names another); where the built-in default of `film2vec/config.py`",
        "differs, it is given too (it applies when a profile leaves the key out). `null` means none.",
    ]
    for section in ("", *SECTIONS):
        lines += ["", f"## {section or 'Top level'}", ""]
        values = getattr(local, section) if section else local
        for owner, spec, kind in field_specs():
            if owner != section:
                continue
            key = f"{section}.{spec.name}" if section else spec.name
            allowed = _allowed(spec.metadata, kind)
            if spec.metadata.get("choices") and type(None) in typing.get_args(kind):
                allowed += ", or null"
            default = f"default `{_yaml_text(getattr(values, spec.name))}`"
            if getattr(values, spec.name) != spec.default:
                default += f" (built-in `{_yaml_text(spec.default)}`)"
            flag = flag_of(spec.name)
            lines.append(f"- **`{key}`** (`{flag}`): {allowed}; {default}. {help_text(spec.metadata)}")
    return "\n".join(lines) + "\n"


def help_text(meta: dict) -> str:
    """A setting's help, with what a speed-only one does not change."""
    return meta["help"] + (" (speed only: what the command writes does not depend on it)" if meta["speed_only"] else "")


def _yaml_text(value: Any) -> str:
    """A setting's value as it is written in a profile or a flag."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return str(value)


if __name__ == "__main__":
    print(reference_markdown(), end="")
