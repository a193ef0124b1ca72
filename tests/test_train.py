"""The trainer: streaming covers every sample once, errors surface, and training lowers the loss."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch
from deltalake import write_deltalake

from film2vec.config import TrainConfig
from film2vec.train.model import SharedEmbeddingModel
from film2vec.train.stream import prefetched, read_season, shuffled_batches
from film2vec.train.trainer import pick_device, train


def season_table(season: int, rows: int, n_assets: int, negatives: int, rng) -> pa.Table:
    """Samples with structure: assets 0..n/2-1 co-occur with each other, as do the rest."""
    half = n_assets // 2
    origin = rng.integers(0, n_assets, rows)
    target = (origin // half) * half + rng.integers(0, half, rows)
    flat = pa.array(rng.integers(0, n_assets, rows * negatives).astype(np.int32))
    offsets = pa.array(np.arange(0, rows * negatives + 1, negatives, dtype=np.int32))
    return pa.table(
        {
            "season": pa.array(np.full(rows, season, dtype=np.int32)),
            "origin": pa.array(origin.astype(np.int32)),
            "target": pa.array(target.astype(np.int32)),
            "negatives": pa.ListArray.from_arrays(offsets, flat),
        }
    )


@pytest.fixture(scope="module")
def seasons_path(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("train") / "seasons")
    rng = np.random.default_rng(0)
    for season in range(2):
        write_deltalake(path, season_table(season, 20_000, 40, 4, rng), mode="append", partition_by=["season"])
    return path


def test_shuffled_stream_yields_every_sample_once(seasons_path):
    rng = np.random.default_rng(1)
    batches = list(shuffled_batches(read_season(seasons_path, 1, rows_per_read=3_000), 512, 5_000, rng))
    assert max(len(origin) for origin, _, _ in batches) == 512
    origin = np.concatenate([b[0] for b in batches])
    target = np.concatenate([b[1] for b in batches])
    negatives = np.concatenate([b[2] for b in batches])
    table = pa.Table.from_batches(list(read_season(seasons_path, 1)))
    expected = sorted(
        zip(table["origin"].to_pylist(), table["target"].to_pylist(), map(tuple, table["negatives"].to_pylist()))
    )
    assert sorted(zip(origin.tolist(), target.tolist(), map(tuple, negatives.tolist()))) == expected
    assert not np.array_equal(origin, table["origin"].to_numpy())  # shuffled


def test_prefetch_hands_producer_errors_to_the_consumer():
    def failing():
        yield np.zeros(2), np.zeros(2), np.zeros((2, 1))
        raise OSError("disk went away")

    stream = prefetched(failing(), torch.device("cpu"), depth=2)
    next(stream)
    with pytest.raises(OSError, match="disk went away"):
        next(stream)


def test_loss_is_cross_entropy_with_target_first():
    model = SharedEmbeddingModel(4, 2)
    with torch.no_grad():
        model.vectors.weight.copy_(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]))
    loss = model.loss(torch.tensor([0]), torch.tensor([1]), torch.tensor([[2, 3]]))
    expected = -torch.log_softmax(torch.tensor([1.0, 0.0, -1.0]), 0)[0]
    assert torch.isclose(loss, expected)


def test_training_lowers_the_loss_and_separates_the_groups(seasons_path):
    config = TrainConfig(dim=8, epochs_per_season=2, batch_size=1024, learning_rate=0.05, device="cpu")
    result = train(seasons_path, range(2), 40, config, seed=0)
    losses = [report.loss for report in result.history]
    assert len(losses) == 4 and losses[-1] < losses[0] - 0.15
    unit = result.vectors / np.linalg.norm(result.vectors, axis=1, keepdims=True)
    cosine = unit @ unit.T
    same = np.equal.outer(np.arange(40) // 20, np.arange(40) // 20)
    assert cosine[same].mean() > cosine[~same].mean() + 0.5


def test_cuda_request_without_a_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        assert pick_device("cuda").type == "cuda"
    else:
        with pytest.raises(RuntimeError, match="no CUDA device"):
            pick_device("cuda")
    assert pick_device("cpu").type == "cpu"
