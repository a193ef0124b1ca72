"""One pass over a season: its samples shuffled into batches, each batch's negatives drawn, one step per batch
with the learning rate stepping down along the whole run's schedule.

A process of a data-parallel run (film2vec.train.distributed) reads the same batches as every other and
steps on its share of each (`share`); the model's exchange makes the step one over the whole batch.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from film2vec.config import TrainConfig
from film2vec.seasons.walks import Negatives, stream_key
from film2vec.train.model import AssetVectors
from film2vec.train.stream import prefetched, read_season, shuffled_batches, with_negatives

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpochReport:
    """What one pass over a season did."""

    season: int
    epoch: int
    step: int
    loss: float
    samples: int
    seconds: float

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else float("nan")


@dataclass(frozen=True)
class SeasonToTrain:
    """A season as its epochs train it: where its samples are, where it sits in the run (what the learning
    rate follows), and the run's settings, seed and negatives (what the shuffle and the draws follow)."""

    seasons_path: str
    season: int
    rows: int  # the season's samples
    position: int  # seasons trained before it in this run
    n_seasons: int  # seasons the learning-rate schedule spans
    config: TrainConfig
    seed: int
    negatives: Negatives


def learning_rate(config: TrainConfig, progress: float) -> float:
    """The learning rate when `progress` (0 to 1) of the whole run's samples are done."""
    if config.lr_schedule == "constant":
        return config.learning_rate
    return config.learning_rate * (1.0 - min(progress, 1.0) * (1.0 - config.lr_floor))


def train_epoch(
    model: AssetVectors, season: SeasonToTrain, epoch: int, step: int, share: tuple[int, int] | None = None
) -> EpochReport:
    """One shuffled pass over a season, the learning rate stepping down with every batch. With `share`, (this
    process's rank, processes), the model steps on the rank's contiguous part of every batch."""
    config = season.config
    device = model.vectors.device
    rng = np.random.default_rng([season.seed, season.season, epoch])
    samples_read = read_season(season.seasons_path, season.season)
    batches = shuffled_batches(samples_read, config.batch_size, config.shuffle_buffer, rng)
    source = with_negatives(batches, season.negatives, stream_key(season.seed, season.season))
    started, total_loss, samples = time.perf_counter(), torch.zeros((), device=device), 0
    season_samples = season.rows * config.epochs_per_season
    progress = tqdm(
        total=season.rows,
        unit="samples",
        unit_scale=True,
        leave=False,
        disable=share is not None or not sys.stderr.isatty() or not log.isEnabledFor(logging.INFO),
        desc=f"season {season.season} epoch {epoch + 1}/{config.epochs_per_season}",
    )
    for batch in prefetched(source, device, config.prefetch):
        done = (season.position + (epoch * season.rows + samples) / season_samples) / season.n_seasons
        rate = learning_rate(config, done)
        if share is None:
            total_loss += model.step(batch.origin, batch.target, batch.negatives, rate)
        else:
            part = slice(*_share_bounds(len(batch.origin), *share))
            total_loss += model.step(batch.origin[part], batch.target[part], batch.negatives[part], rate)
        samples += len(batch.origin)
        step += 1
        progress.update(len(batch.origin))
    progress.close()
    return EpochReport(
        season.season, epoch, step, float(total_loss) / max(samples, 1), samples, time.perf_counter() - started
    )


def _share_bounds(size: int, rank: int, processes: int) -> tuple[int, int]:
    """The rows [start, stop) of a batch of `size` that rank `rank` of `processes` steps on: contiguous parts
    in rank order, their sizes differing by at most one."""
    return rank * size // processes, (rank + 1) * size // processes
