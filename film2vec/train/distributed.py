"""A season's epochs on several processes through Spark's TorchDistributor: data parallel, one replica of the
vectors in each process.

Every process reads the same shuffled batches and steps on its share of each. The gradients of the rows its
share touches are gathered from all processes over gloo (a batch touches at most batch × (1 + negatives) rows,
so what travels does not grow with the catalogue, unlike an all-reduce of the whole matrix), and every
process applies all of them in rank order: the replicas stay equal and the run trains what one process does
on the same batches. The vectors go to the processes and back through a file once a season, so the driver
keeps the schedule, the held-out stopping, the checkpoints and the seasons drawn beside training.

This is the local mode (processes on the driver, CPU). docs/operations.md ("Training past one driver") says
what a cluster of GPUs needs beyond it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.distributed as dist

from film2vec.train.epoch import EpochReport, SeasonToTrain, train_epoch
from film2vec.train.model import AssetVectors, RowGradients


def train_season_on_processes(model: AssetVectors, season: SeasonToTrain, step: int) -> list[EpochReport]:
    """The season's epochs on `processes` processes; `model` holds the trained vectors afterwards."""
    from pyspark.ml.torch.distributor import TorchDistributor  # imports torch's launcher: only when asked for

    with tempfile.TemporaryDirectory(prefix="film2vec-processes-") as folder:
        before, after = str(Path(folder) / "before.pt"), str(Path(folder) / "after.pt")
        torch.save(model.state(), before)
        distributor = TorchDistributor(num_processes=season.config.processes, local_mode=True, use_gpu=False)
        # the processes' output is a log, not the command's answer; they import this film2vec, wherever it is
        with contextlib.redirect_stdout(sys.stderr), _importable_by_children():
            reports = distributor.run(_season_on_rank, before, after, season, step)
        model.load(torch.load(after))
    return reports


@contextlib.contextmanager
def _importable_by_children() -> Iterator[None]:
    """PYTHONPATH led by the folder this film2vec is imported from, while the processes start: they unpickle
    their function by importing film2vec, and must find this one (a checkout or a notebook's sys.path), not
    another installed copy or none."""
    previous = os.environ.get("PYTHONPATH")
    root = str(Path(__file__).resolve().parents[2])
    os.environ["PYTHONPATH"] = os.pathsep.join(part for part in (root, previous) if part)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = previous


def _season_on_rank(before: str, after: str, season: SeasonToTrain, step: int) -> list[EpochReport]:
    """One process's part (torchrun sets its rank): load the vectors, train the season's epochs on this rank's
    share of each batch, and (rank 0) save the vectors."""
    config = season.config
    dist.init_process_group("gloo")
    try:
        rank, processes = dist.get_rank(), dist.get_world_size()
        torch.set_num_threads(max(1, (config.threads or os.cpu_count() or 1) // processes))
        state = torch.load(before)
        model = AssetVectors(len(state["vectors"]), config.dim, shared=config.shared_vectors, loss=config.loss)
        model.load(state)
        model.exchange = _exchanged
        reports = []
        for epoch in range(config.epochs_per_season):
            reports.append(train_epoch(model, season, epoch, step, (rank, processes)))
            step = reports[-1].step
        if rank == 0:
            torch.save(model.state(), after)
        return reports
    finally:
        dist.destroy_process_group()


def _exchanged(loss: torch.Tensor, gradients: RowGradients) -> tuple[torch.Tensor, RowGradients]:
    """Every process's summed loss and row gradients, in rank order."""
    dist.all_reduce(loss)
    return loss, [_gathered(rows, values) for rows, values in gradients]


def _gathered(rows: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every process's rows and their gradients (as many as its rows, which differ between processes),
    concatenated in rank order: the lengths travel once, then each tensor padded to the longest."""
    lengths = [torch.zeros(1, dtype=torch.long) for _ in range(dist.get_world_size())]
    dist.all_gather(lengths, torch.tensor([len(rows)]))
    longest = int(max(lengths))
    gathered = []
    for part in (rows, values):
        padded = part.new_zeros((longest, *part.shape[1:]))
        padded[: len(part)] = part
        parts = [torch.empty_like(padded) for _ in lengths]
        dist.all_gather(parts, padded)
        gathered.append(torch.cat([whole[: int(length)] for whole, length in zip(parts, lengths, strict=True)]))
    return gathered[0], gathered[1]
