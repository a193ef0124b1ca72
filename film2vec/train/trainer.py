"""The training loop: seasons in order, several epochs each, streamed from the seasons Delta table."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from film2vec.config import TrainConfig
from film2vec.train.model import SharedEmbeddingModel
from film2vec.train.stream import prefetched, read_season, season_rows, shuffled_batches


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


@dataclass
class TrainResult:
    vectors: np.ndarray
    history: list[EpochReport] = field(default_factory=list)
    device: str = "cpu"


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
) -> TrainResult:
    """Train vectors for `n_assets` assets on the given seasons, `epochs_per_season` passes each."""
    device = pick_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(seed)
    model = SharedEmbeddingModel(n_assets, config.dim, seed).to(device)
    optimizer = torch.optim.SparseAdam(model.parameters(), lr=config.learning_rate)
    result = TrainResult(vectors=np.empty((0, config.dim)), device=str(device))
    step = 0
    for season in seasons:
        rows = season_rows(seasons_path, season)
        if rows == 0:
            raise RuntimeError(f"season {season} in {seasons_path} has no samples; run the sample stage first")
        for epoch in range(config.epochs_per_season):
            rng = np.random.default_rng([seed, season, epoch])
            source = shuffled_batches(read_season(seasons_path, season), config.batch_size, config.shuffle_buffer, rng)
            started, total_loss, samples = time.perf_counter(), torch.zeros((), device=device), 0
            progress = tqdm(
                total=rows,
                unit="samples",
                unit_scale=True,
                leave=False,
                disable=not sys.stderr.isatty(),
                desc=f"season {season} epoch {epoch + 1}/{config.epochs_per_season}",
            )
            for batch in prefetched(source, device, config.prefetch):
                optimizer.zero_grad(set_to_none=True)
                loss = model.loss(batch.origin, batch.target, batch.negatives)
                loss.backward()
                optimizer.step()
                total_loss += loss.detach() * len(batch.origin)
                samples += len(batch.origin)
                step += 1
                progress.update(len(batch.origin))
            progress.close()
            report = EpochReport(
                season, epoch, step, float(total_loss) / max(samples, 1), samples, time.perf_counter() - started
            )
            result.history.append(report)
            if on_epoch:
                on_epoch(report)
    result.vectors = model.vectors.weight.detach().cpu().numpy().copy()
    return result
