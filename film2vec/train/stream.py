"""Delta → Arrow → tensors: a season streamed in batches with bounded memory and a background prefetch.

The season is read with delta-rs (the `deltalake` package), so the driver needs no Spark to train and
never holds more than one shuffle buffer plus `prefetch` ready batches. Each minibatch's negatives are
drawn here, from its samples' draw keys (the seasons table holds none), in the prefetch thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.dataset
import torch

from film2vec.errors import InputError
from film2vec.seasons.walks import Negatives
from film2vec.tables import files_without_spark, rows_without_spark

_DONE = object()


@dataclass(frozen=True)
class SampleBatch:
    """One optimiser step's samples as tensors on the training device."""

    origin: torch.Tensor
    target: torch.Tensor
    negatives: torch.Tensor


SEASON_COLUMNS = ["draw", "origin", "target"]


def _season_files(path: str, season: int) -> list[str]:
    """The files of the season's partition, as delta-rs lists them."""
    return files_without_spark(path, f"season {season}", ("season", str(season)))


def _sorted_batches(file: str, rows_per_read: int) -> Iterator[pa.RecordBatch]:
    """A season file's batches, checked to run in draw order (as `film2vec sample` writes them)."""
    last = -1
    for batch in pa.dataset.dataset(file, format="parquet").to_batches(
        columns=SEASON_COLUMNS, batch_size=rows_per_read
    ):
        if not batch.num_rows:
            continue
        draw = batch.column("draw").to_numpy()
        if draw[0] <= last or np.any(draw[1:] <= draw[:-1]):
            raise InputError(f"{file}: rows are not in draw order; redraw the season with `film2vec sample`")
        last = draw[-1]
        yield batch


def read_season(path: str, season: int, rows_per_read: int = 262_144) -> Iterator[pa.RecordBatch]:
    """The season's (draw, origin, target) Arrow batches in draw order, whatever the files' number and
    order: each file is a sorted run, and the runs are merged a block at a time (memory: a batch per file)."""
    runs = [_sorted_batches(file, rows_per_read) for file in _season_files(path, season)]
    heads = {index: batch for index, run in enumerate(runs) if (batch := next(run, None)) is not None}
    while heads:
        bound = min(batch.column("draw")[-1].as_py() for batch in heads.values())  # every row up to it is here
        taken = []
        for index, batch in list(heads.items()):
            cut = int(np.searchsorted(batch.column("draw").to_numpy(), bound, side="right"))
            taken.append(batch.slice(0, cut))
            if cut < batch.num_rows:
                heads[index] = batch.slice(cut)
            elif (following := next(runs[index], None)) is not None:
                heads[index] = following
            else:
                del heads[index]
        block = pa.Table.from_batches(taken).combine_chunks()
        order = np.argsort(block.column("draw").to_numpy(), kind="stable")
        yield from block.take(order).to_batches()


def season_rows(path: str, season: int) -> int:
    """Number of samples in one season (from its files' Parquet footers)."""
    return rows_without_spark(path, f"season {season}", ("season", str(season)))


def _arrays(batches: list[pa.RecordBatch]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    table = pa.Table.from_batches(batches).combine_chunks()
    return tuple(table.column(name).to_numpy() for name in ("origin", "target", "draw"))


def shuffled_batches(
    batches: Iterator[pa.RecordBatch], batch_size: int, buffer_rows: int, rng: np.random.Generator
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Minibatches of (origin, target, draw), shuffled within buffers of `buffer_rows` consecutive rows
    (the last one shorter): the same rows give the same minibatches however the reader cut them into batches."""
    buffer: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        while held + batch.num_rows >= buffer_rows:
            fits = buffer_rows - held
            buffer.append(batch.slice(0, fits))
            yield from _shuffle_split(buffer, batch_size, rng)
            buffer, held, batch = [], 0, batch.slice(fits)
        if batch.num_rows:
            buffer.append(batch)
            held += batch.num_rows
    if held:
        yield from _shuffle_split(buffer, batch_size, rng)


def _shuffle_split(buffer, batch_size, rng):
    origin, target, draw = _arrays(buffer)
    order = rng.permutation(len(origin))
    for start in range(0, len(order), batch_size):
        chosen = order[start : start + batch_size]
        yield origin[chosen], target[chosen], draw[chosen]


def with_negatives(
    source: Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]], negatives: Negatives, key: np.uint64
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(origin, target, negatives) minibatches from (origin, target, draw) ones of the season whose stream key
    is `key`: the negatives the sampler's streams reserve for each sample."""
    for origin, target, draw in source:
        yield origin, target, negatives.of_draws(key, origin, draw, target)


def prefetched(source: Iterator[tuple[np.ndarray, ...]], device: torch.device, depth: int) -> Iterator[SampleBatch]:
    """Tensors on `device`, made by a background thread that stays at most `depth` batches ahead."""
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    pin = device.type == "cuda"

    def produce() -> None:
        try:
            for origin, target, negatives in source:
                tensors = [
                    torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64)) for a in (origin, target, negatives)
                ]
                if pin:
                    tensors = [t.pin_memory().to(device, non_blocking=True) for t in tensors]
                while not stop.is_set():
                    try:
                        ready.put(SampleBatch(*tensors), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ready.put(_DONE)
        except BaseException as error:  # handed to the consumer, which re-raises it
            ready.put(error)

    worker = threading.Thread(target=produce, name="film2vec-prefetch", daemon=True)
    worker.start()
    try:
        while (item := ready.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join(timeout=5)
