"""The training loop: seasons in order, several epochs each, streamed from the seasons Delta table.

The learning rate follows the schedule across all seasons (`n_seasons` of them); after each season the
model and the schedule's position go to a checkpoint, and a run started again with the same settings
skips the seasons its checkpoint has done.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from film2vec.c_kernels import NativeUnavailable
from film2vec.config import TrainConfig
from film2vec.seasons.walks import Negatives
from film2vec.train import checkpoint
from film2vec.train.distributed import train_season_on_processes
from film2vec.train.epoch import EpochReport, SeasonToTrain, train_epoch
from film2vec.train.model import AssetVectors
from film2vec.train.stopping import StopRule, Validation
from film2vec.train.stream import season_rows

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    vectors: np.ndarray
    accumulators: np.ndarray  # each row's row-wise Adagrad accumulator: what a warm start continues from
    history: list[EpochReport] = field(default_factory=list)
    resumed_seasons: list[int] = field(default_factory=list)
    seasons: list[int] = field(default_factory=list)  # the seasons trained, in order
    curve: list[dict] = field(default_factory=list)  # held-out figures after each season, when scored
    stopped: str | None = None  # why the run stopped before its seasons ran out
    step: dict = field(default_factory=dict)  # which step trained: kernel, device, processes, and any fallback


@dataclass(frozen=True)
class StartingRows:
    """Where a warm start puts some rows: their vectors and Adagrad accumulators (0: a row that learns at the
    full rate, as a new one does)."""

    rows: np.ndarray
    vectors: np.ndarray
    accumulators: np.ndarray


def pick_device(choice: str) -> torch.device:
    """CUDA when asked for or when present under `auto`; CPU otherwise."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is 'cuda' but torch sees no CUDA device; use 'auto' or 'cpu'")
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def train(
    seasons_path: str,
    seasons: Iterable[int],
    n_assets: int,
    config: TrainConfig,
    seed: int = 0,
    on_epoch: Callable[[EpochReport], None] | None = None,
    *,
    negatives: Negatives,
    n_seasons: int | None = None,
    checkpoints: str | None = None,
    start: StartingRows | None = None,
    validation: Validation | None = None,
    stop_rule: StopRule | None = None,
    added_back: Callable[[int], int] | None = None,
    drawn_from: dict | None = None,
) -> TrainResult:
    """Train vectors for `n_assets` assets on the given seasons, `epochs_per_season` passes each, every sample
    against its `negatives` (drawn from its draw key under the seasons' `seed`).

    `seasons` may be any iterable, one that waits for each season to be written included; `n_seasons`
    (default: its length) sets the learning-rate schedule. With `checkpoints`, a folder, each finished
    season is checkpointed there and, when `config.resume` holds, a checkpoint of the same settings is
    resumed from: its seasons are skipped and its vectors, step and history carried on. A warm start gives
    `start`, the vectors and accumulators of some rows; the other rows start at random with empty ones. With
    `validation`, the vectors (as they would be published) are scored after each season and the run stops
    when `stop_rule` says so; then `added_back`, given the next season number, draws the season that puts the
    held-out slice back (a walk over every view) and returns its number, and the run trains it unscored.
    `drawn_from` (what the seasons are drawn from: the walk's settings and input versions) is part of what a
    checkpoint must match to be resumed, so a checkpoint of other events is never trained on.
    """
    seasons_list = None if n_seasons is not None else list(seasons)
    n_seasons = n_seasons if n_seasons is not None else len(seasons_list)
    seasons = seasons if seasons_list is None else seasons_list
    config.check_processes()
    device = pick_device("cpu" if config.processes > 1 else config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    model = AssetVectors(
        n_assets,
        config.dim,
        shared=config.shared_vectors,
        loss=config.loss,
        seed=seed,
        device=device,
        compiled=config.compile_step == "on",
    )
    if device.type == "cpu" and config.step_kernel != "torch" and config.processes == 1:
        try:
            model.use_native()
        except NativeUnavailable as error:
            if config.step_kernel == "native":
                raise
            model.fallback = f"the C training step is unavailable ({error}); training with the tensor-code step"
            warnings.warn(model.fallback, stacklevel=2)
    elif config.step_kernel == "native" and config.processes == 1:
        raise RuntimeError(f"train.step_kernel 'native' runs on the CPU, but the device is {device}")
    if start is not None:
        rows = torch.as_tensor(start.rows, dtype=torch.long, device=device)
        model.vectors[rows] = torch.as_tensor(start.vectors, dtype=model.vectors.dtype).to(device)
        model.vectors_state[rows] = torch.as_tensor(start.accumulators, dtype=model.vectors_state.dtype).to(device)
    fingerprint = {
        "seasons_path": seasons_path,
        "n_assets": n_assets,
        "n_seasons": n_seasons,
        "seed": seed,
        "negatives": negatives.count,
        "negative_weights": None if negatives.cumulative is None else zlib.crc32(negatives.cumulative.tobytes()),
        **{key: value for key, value in dataclasses.asdict(config).items() if key in _MODEL_SETTINGS},
        "drawn_from": drawn_from,
    }
    state = checkpoint.load(checkpoints, fingerprint) if checkpoints and config.resume else None
    if state is None:
        state = checkpoint.Checkpoint(fingerprint, model.state())
    else:
        model.load(state.tensors)
    result = TrainResult(
        vectors=np.empty((0, config.dim)),
        accumulators=np.empty(0),
        history=[EpochReport(**report) for report in state.history],
        resumed_seasons=list(state.seasons_done),
    )
    result.stopped = stop_rule.reason(state.curve, state.terms) if stop_rule and state.curve else None
    compile_undecided = config.compile_step == "auto"  # decided on the first season to train, by its size

    def train_season(season: int) -> None:
        nonlocal compile_undecided
        position, rows = len(state.seasons_done), season_rows(seasons_path, season)
        if rows == 0:
            raise RuntimeError(f"season {season} in {seasons_path} has no samples; run the sample stage first")
        if compile_undecided and model.native is None and config.processes == 1:
            model.compiled = rows * config.epochs_per_season * (n_seasons - position) >= COMPILE_FROM_SAMPLES
            compile_undecided = False
        to_train = SeasonToTrain(seasons_path, season, rows, position, n_seasons, config, seed, negatives)
        for report in _epochs(model, to_train, state.step):
            state.step = report.step
            result.history.append(report)
            if on_epoch:
                on_epoch(report)
        state.seasons_done.append(season)

    with _deterministic_on_cpu(device, model):
        for season in seasons:
            if result.stopped:
                break
            if season in state.seasons_done:
                continue
            train_season(season)
            if validation is not None:
                score = validation.score(published_vectors(model, config))
                state.curve.append(score.figures)
                state.terms.append({name: torch.from_numpy(values) for name, values in score.terms.items()})
                log.info("season %d on the held-out slice: %s", season, _figures_text(score.figures))
                result.stopped = stop_rule.reason(state.curve, state.terms) if stop_rule else None
            if checkpoints:
                state.tensors = model.state()
                state.history = [dataclasses.asdict(report) for report in result.history]
                checkpoint.save(checkpoints, state)
            if result.stopped:
                break
        result.curve = list(state.curve)
        if added_back is not None and result.stopped:  # not checkpointed: a run killed here trains it again
            train_season(added_back(max(state.seasons_done) + 1))
    result.seasons = list(state.seasons_done)
    result.step = {
        "kernel": "eager" if config.processes > 1 else model.kernel,
        "device": str(device),
        "processes": config.processes,
        "fallback": model.fallback,
    }
    result.accumulators = model.vectors_state.cpu().numpy().copy()
    result.vectors = published_vectors(model, config)
    return result


def published_vectors(model: AssetVectors, config: TrainConfig) -> np.ndarray:
    """The model's vectors as the run publishes them: centred on the trained rows' mean unless turned off."""
    vectors = model.vectors.cpu().numpy()
    return centered(vectors, model.vectors_state.cpu().numpy() > 0) if config.center_vectors else vectors.copy()


def _figures_text(figures: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.4f}" for name, value in figures.items())


def centered(vectors: np.ndarray, trained: np.ndarray) -> np.ndarray:
    """The `trained` rows less their mean vector; the other rows (never touched by a step) as they are.

    One matrix serves as origins and candidates, so the vectors share a common direction whose dot product
    with each row acts as a per-asset popularity offset. Removing it leaves what sets assets apart, as
    "all-but-the-top" post-processing does for word vectors (Mu & Viswanath, 2018).
    """
    result = vectors.copy()
    if trained.any():
        result[trained] -= vectors[trained].mean(axis=0)
    return result


@contextlib.contextmanager
def _deterministic_on_cpu(device: torch.device, model: AssetVectors) -> Iterator[None]:
    """Deterministic kernels while the tensor-code step trains on the CPU, so that a rerun gives identical vectors.

    The compiled step's scatter-adds otherwise sum in thread order; the deterministic ones cost little
    there. Ops without a deterministic kernel only warn; the caller's setting comes back afterwards. The C
    step is deterministic by itself, and leaving the switch alone spares importing the compiler's settings.
    """
    if device.type != "cpu" or model.native is not None:
        yield
        return
    previous = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])


# compile_step auto: compiling costs tens of seconds once, and pays off from this many sample passes on
# (docs/benchmarks.md, "Figures behind constants").
COMPILE_FROM_SAMPLES = 5_000_000

# The settings that change what a season's training does; a checkpoint made under others is not resumed.
_MODEL_SETTINGS = (
    "dim",
    "epochs_per_season",
    "batch_size",
    "learning_rate",
    "lr_schedule",
    "lr_floor",
    "loss",
    "shared_vectors",
    "shuffle_buffer",
    "warm_start",
)


def _epochs(model: AssetVectors, season: SeasonToTrain, step: int) -> Iterator[EpochReport]:
    """The season's epochs, each reported once done: in this process, or on --processes of them."""
    if season.config.processes > 1:
        yield from train_season_on_processes(model, season, step)
        return
    for epoch in range(season.config.epochs_per_season):
        report = train_epoch(model, season, epoch, step)
        step = report.step
        yield report
