"""The trainer: streaming covers every sample once, errors surface, and training lowers the loss."""

from __future__ import annotations

import dataclasses
import os
import shutil

import numpy as np
import pyarrow as pa
import pytest
import torch
from deltalake import write_deltalake

from film2vec.c_kernels import NativeUnavailable
from film2vec.config import ConfigError, TrainConfig
from film2vec.seasons.walks import Negatives, stream_key
from film2vec.train import c_step
from film2vec.train import model as model_module
from film2vec.train.epoch import learning_rate
from film2vec.train.model import LOSSES, AssetVectors
from film2vec.train.stream import prefetched, read_season, shuffled_batches, with_negatives
from film2vec.train.trainer import pick_device, train

NEGATIVES = Negatives(4, 40)  # 4 uniform negatives a sample among assets 0..39, drawn by the trainer


def train_uniform(*arguments, **options):
    """The trainer on the test seasons with NEGATIVES."""
    return train(*arguments, negatives=NEGATIVES, **options)


def season_table(season: int, rows: int, n_assets: int, rng) -> pa.Table:
    """Samples with structure: assets 0..n/2-1 co-occur with each other, as do the rest."""
    half = n_assets // 2
    origin = rng.integers(0, n_assets, rows)
    target = (origin // half) * half + rng.integers(0, half, rows)
    return pa.table(
        {
            "season": pa.array(np.full(rows, season, dtype=np.int32)),
            "draw": pa.array(np.arange(rows, dtype=np.int64)),  # the file's rows in draw order, as sample writes them
            "origin": pa.array(origin.astype(np.int32)),
            "target": pa.array(target.astype(np.int32)),
        }
    )


@pytest.fixture(scope="module")
def seasons_path(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("train") / "seasons")
    rng = np.random.default_rng(0)
    for season in range(2):
        write_deltalake(path, season_table(season, 8_000, 40, rng), mode="append", partition_by=["season"])
    return path


def test_shuffled_stream_yields_every_sample_once(seasons_path):
    rng = np.random.default_rng(1)
    batches = list(shuffled_batches(read_season(seasons_path, 1, rows_per_read=3_000), 512, 5_000, rng))
    assert max(len(origin) for origin, _, _ in batches) == 512
    origin, target, draw = (np.concatenate([b[i] for b in batches]) for i in range(3))
    table = pa.Table.from_batches(list(read_season(seasons_path, 1)))
    expected = sorted(zip(*(table[name].to_pylist() for name in ("origin", "target", "draw"))))
    assert sorted(zip(origin.tolist(), target.tolist(), draw.tolist())) == expected
    assert not np.array_equal(origin, table["origin"].to_numpy())  # shuffled


def test_each_minibatch_gets_its_samples_negatives_drawn_from_their_draw_keys(seasons_path):
    key = stream_key(0, 1)
    batches = shuffled_batches(read_season(seasons_path, 1), 512, 5_000, np.random.default_rng(1))
    for origin, target, negatives in with_negatives(batches, NEGATIVES, key):
        assert negatives.shape == (len(origin), 4)
        assert not (negatives == origin[:, None]).any() and not (negatives == target[:, None]).any()
    table = pa.Table.from_batches(list(read_season(seasons_path, 1)))
    origin, target, draw = (table[name].to_numpy().astype(np.int64) for name in ("origin", "target", "draw"))
    counts = np.bincount(NEGATIVES.of_draws(key, origin, draw, target).ravel(), minlength=40)
    assert counts.sum() == 4 * len(origin) and counts.min() > 0.8 * counts.mean()  # uniform over the 40


def test_prefetch_hands_producer_errors_to_the_consumer():
    def failing():
        yield np.zeros(2), np.zeros(2), np.zeros((2, 1))
        raise OSError("disk went away")

    stream = prefetched(failing(), torch.device("cpu"), depth=2)
    next(stream)
    with pytest.raises(OSError, match="disk went away"):
        next(stream)


def test_loss_is_cross_entropy_with_target_first():
    model = AssetVectors(4, 2, shared=True, loss="softmax")
    model.vectors.copy_(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]))
    loss = model.loss(torch.tensor([0]), torch.tensor([1]), torch.tensor([[2, 3]]))
    expected = -torch.log_softmax(torch.tensor([1.0, 0.0, -1.0]), 0)[0]
    assert torch.isclose(loss, expected)


NEEDS_CC = pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None, reason="no C compiler for the C step")

STEP_CASES = [
    *((shared, loss, "eager", dense, 3) for shared in (True, False) for loss in LOSSES for dense in (1, 0)),
    (True, "softmax", "compiled", 1, 3),  # compiling takes ~10 s a case: the default model, and the other branches
    (False, "sigmoid", "compiled", 0, 3),
    *(
        pytest.param(shared, loss, "native", 1, dim, marks=NEEDS_CC)
        for shared in (True, False)
        for loss in LOSSES
        for dim in (3, 32)  # the C step's dot products take dimensions of a multiple of 16 in 16 lanes
    ),
]


@pytest.mark.parametrize(("shared", "loss", "kernel", "dense_rows_per_touch", "dim"), STEP_CASES)
def test_hand_written_step_is_sgd_on_the_autograd_gradient(
    shared, loss, kernel, dense_rows_per_touch, dim, monkeypatch
):
    """The closed-form step equals row-wise Adagrad on autograd's gradient of the summed loss: each row
    steps by lr · g / sqrt(mean(g²)) on its first update. Eager, compiled or in C, gradients summed in a
    buffer of every row or over the batch's distinct rows."""
    monkeypatch.setattr(model_module, "DENSE_ROWS_PER_TOUCH", dense_rows_per_touch)
    model = AssetVectors(6, dim, shared=shared, loss=loss, seed=1, compiled=kernel == "compiled")
    if kernel == "native":
        model.use_native()
    assert (model.vectors.shape[0] <= model_module.DENSE_ROWS_PER_TOUCH * 9) == bool(dense_rows_per_touch)
    if not shared:
        model.context.normal_(generator=torch.Generator().manual_seed(2))
    origin, target, negatives = torch.tensor([0, 1, 0]), torch.tensor([2, 0, 3]), torch.tensor([[3, 4], [5, 5], [1, 2]])
    vectors = model.vectors.clone().requires_grad_()
    context = vectors if shared else model.context.clone().requires_grad_()
    scores = torch.bmm(context[torch.cat((target[:, None], negatives), 1)], vectors[origin][:, :, None])[:, :, 0]
    if loss == "softmax":
        summed = torch.nn.functional.cross_entropy(scores, torch.zeros(3, dtype=torch.long), reduction="sum")
    else:
        labels = torch.zeros_like(scores)
        labels[:, 0] = 1.0
        summed = torch.nn.functional.binary_cross_entropy_with_logits(scores, labels, reduction="sum")
    summed.backward()
    reported = model.step(origin, target, negatives, learning_rate=0.1)
    assert torch.isclose(reported, summed.detach())

    def adagrad(before: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
        scale = gradient.square().mean(dim=1, keepdim=True).sqrt()
        return (before - 0.1 * torch.where(scale > 0, gradient / scale, 0.0)).detach()

    assert torch.allclose(model.vectors, adagrad(vectors, vectors.grad), atol=1e-5)
    if not shared:
        assert torch.allclose(model.context, adagrad(context, context.grad), atol=1e-5)


def grouped(vectors: np.ndarray) -> float:
    """Mean cosine within the planted halves minus across them."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    cosine = unit @ unit.T
    same = np.equal.outer(np.arange(40) // 20, np.arange(40) // 20)
    return cosine[same].mean() - cosine[~same].mean()


@pytest.mark.parametrize(
    "option",
    [
        {},
        {"loss": "sigmoid"},
        {"shared_vectors": False},
        {"lr_schedule": "linear"},
        {"dim": 2},
        {"step_kernel": "torch", "compile_step": "off"},
    ],
    ids=["defaults", "sigmoid", "separate", "linear-lr", "dim-2", "tensor-code-step"],
)
def test_each_option_lowers_the_loss_and_separates_the_groups(seasons_path, option):
    config = TrainConfig(**{"dim": 8, "batch_size": 256, "learning_rate": 0.5, "device": "cpu", **option})
    result = train_uniform(seasons_path, range(2), 40, config, seed=0)
    season = pa.Table.from_batches(list(read_season(seasons_path, 1)))
    origin, target, draw = (season[name].to_numpy().astype(np.int64) for name in ("origin", "target", "draw"))
    negatives = NEGATIVES.of_draws(stream_key(0, 1), origin, draw, target)
    untrained = AssetVectors(40, config.dim, shared=config.shared_vectors, loss=config.loss).loss(
        *(torch.from_numpy(a) for a in (origin, target, negatives))
    )
    losses = [report.loss for report in result.history]
    assert len(losses) == 2 * config.epochs_per_season and losses[-1] < float(untrained) - 0.1
    assert grouped(result.vectors) > 0.5


def test_trained_vectors_are_centred_and_untouched_rows_kept(seasons_path):
    config = TrainConfig(dim=8, batch_size=1024, learning_rate=0.5, device="cpu", center_vectors=False)
    raw = train_uniform(seasons_path, range(1), 41, config, seed=0).vectors  # asset 40 is in no sample
    centred = train_uniform(
        seasons_path, range(1), 41, dataclasses.replace(config, center_vectors=True), seed=0
    ).vectors
    assert np.linalg.norm(raw[:40].mean(axis=0)) > 0.1  # the common direction the shared matrix grows
    np.testing.assert_allclose(centred[:40], raw[:40] - raw[:40].mean(axis=0), atol=1e-6)
    np.testing.assert_array_equal(centred[40], raw[40])


def test_learning_rate_schedule_decays_linearly_to_the_floor():
    config = TrainConfig(learning_rate=0.02, lr_floor=0.1, lr_schedule="linear")
    assert [learning_rate(config, p) for p in (0.0, 0.5, 1.0)] == pytest.approx([0.02, 0.011, 0.002])
    assert learning_rate(TrainConfig(learning_rate=0.02, lr_schedule="constant"), 0.9) == 0.02


class Killed(Exception):
    pass


def test_a_run_killed_in_season_two_resumes_and_ends_as_an_unbroken_one(seasons_path, tmp_path):
    config = TrainConfig(dim=8, batch_size=1024, learning_rate=0.05, device="cpu")
    unbroken = train_uniform(seasons_path, range(2), 40, config, seed=3)

    def kill_in_season_one(report):
        if report.season == 1:
            raise Killed

    with pytest.raises(Killed):
        train_uniform(
            seasons_path, range(2), 40, config, seed=3, on_epoch=kill_in_season_one, checkpoints=str(tmp_path)
        )
    resumed = train_uniform(seasons_path, range(2), 40, config, seed=3, checkpoints=str(tmp_path))
    assert resumed.resumed_seasons == [0]
    assert [(r.season, r.epoch, r.step) for r in resumed.history] == [
        (r.season, r.epoch, r.step) for r in unbroken.history
    ]
    np.testing.assert_allclose(resumed.vectors, unbroken.vectors, rtol=1e-5, atol=1e-6)


def test_a_checkpoint_of_other_settings_is_not_resumed(seasons_path, tmp_path):
    config = TrainConfig(dim=8, batch_size=1024, device="cpu")
    train_uniform(seasons_path, range(1), 40, config, seed=0, checkpoints=str(tmp_path))
    other = train_uniform(
        seasons_path, range(1), 40, TrainConfig(dim=4, batch_size=1024, device="cpu"), checkpoints=str(tmp_path)
    )
    assert other.resumed_seasons == [] and other.vectors.shape == (40, 4)
    again = train_uniform(seasons_path, range(1), 40, config, seed=0, checkpoints=str(tmp_path))
    assert again.resumed_seasons == [] and len(again.history) == config.epochs_per_season  # the dim-4 run's


def test_cuda_request_without_a_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        assert pick_device("cuda").type == "cuda"
    else:
        with pytest.raises(RuntimeError, match="no CUDA device"):
            pick_device("cuda")
    assert pick_device("cpu").type == "cpu"


def test_compiled_training_on_two_threads_repeats_exactly(seasons_path):
    """The fused step's scatter-adds would sum in thread order; the trainer makes them deterministic."""
    config = TrainConfig(dim=8, batch_size=512, device="cpu", step_kernel="torch", compile_step="on", threads=2)
    first, second = (train_uniform(seasons_path, range(2), 40, config, seed=0).vectors for _ in range(2))
    assert np.array_equal(first, second)
    assert not torch.are_deterministic_algorithms_enabled()  # the caller's setting is back


@NEEDS_CC
def test_the_c_step_gives_the_same_vectors_on_any_number_of_threads(seasons_path):
    """Each row's gradients are summed in sample order by the thread that owns the row."""
    runs = [
        train_uniform(
            seasons_path, range(2), 40, TrainConfig(dim=8, batch_size=512, step_kernel="native", threads=threads)
        )
        for threads in (1, 3, 3)  # the C step works on one thread fewer than torch's: 1, 2 and 2
    ]
    assert np.array_equal(runs[0].vectors, runs[1].vectors) and np.array_equal(runs[1].vectors, runs[2].vectors)
    assert [report.loss for report in runs[0].history] == [report.loss for report in runs[1].history]
    assert runs[0].step == {"kernel": "native", "device": "cpu", "processes": 1, "fallback": None}


@NEEDS_CC
def test_the_c_step_rejects_an_asset_index_out_of_range():
    model = AssetVectors(5, 2, shared=True, loss="softmax")
    model.use_native()
    with pytest.raises(IndexError, match=r"out of range \[0, 5\): 0\.\.5"):
        model.step(torch.tensor([0, 1]), torch.tensor([2, 5]), torch.tensor([[1], [0]]), learning_rate=0.1)


def test_without_a_c_compiler_auto_trains_with_tensor_code_and_native_says_why(seasons_path, tmp_path, monkeypatch):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("FILM2VEC_CACHE", str(tmp_path / "cache"))
    c_step.library.cache_clear()
    try:
        with pytest.warns(UserWarning, match="C training step is unavailable .*no C compiler"):
            fallback = train_uniform(seasons_path, range(1), 40, TrainConfig(dim=8, batch_size=512, compile_step="off"))
        assert grouped(fallback.vectors) > 0.5
        assert fallback.step["kernel"] == "eager" and "C training step is unavailable" in fallback.step["fallback"]
        with pytest.raises(NativeUnavailable, match="no-such-compiler"):
            train_uniform(seasons_path, range(1), 40, TrainConfig(dim=8, step_kernel="native"))
    finally:
        c_step.library.cache_clear()


def test_processes_through_torch_distributor_train_what_one_process_does(spark, seasons_path):
    """Two gloo processes started by TorchDistributor, each stepping on half of every batch and applying
    both halves' row gradients, train the planted catalogue to the single process's vectors and loss."""
    config = TrainConfig(
        dim=8, batch_size=512, learning_rate=0.1, step_kernel="torch", compile_step="off", device="cpu"
    )
    alone = train_uniform(seasons_path, [0, 1], 40, config)
    together = train_uniform(seasons_path, [0, 1], 40, dataclasses.replace(config, processes=2))
    assert [report.samples for report in together.history] == [8_000, 8_000]
    assert together.step == {"kernel": "eager", "device": "cpu", "processes": 2, "fallback": None}
    assert [report.step for report in together.history] == [report.step for report in alone.history]
    assert together.history[-1].loss == pytest.approx(alone.history[-1].loss, rel=1e-4)
    assert grouped(together.vectors) > 0.5
    np.testing.assert_allclose(together.vectors, alone.vectors, atol=1e-4)


def test_processes_refuse_what_they_cannot_honour(seasons_path):
    for refused in ({"step_kernel": "native"}, {"compile_step": "on"}, {"device": "cuda"}):
        flag = "--" + next(iter(refused)).replace("_", "-")
        with pytest.raises(ConfigError, match=f"--processes 2: .*{flag} {next(iter(refused.values()))} cannot hold"):
            train_uniform(seasons_path, [0], 40, TrainConfig(processes=2, **refused))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA device; the CUDA step runs where it does")
def test_cuda_trains_what_the_cpu_does(seasons_path):
    """The CUDA path (the tensor-code step on the GPU) recovers the planted halves with the CPU's loss."""
    config = TrainConfig(dim=8, batch_size=512, learning_rate=0.1, step_kernel="torch", compile_step="off")
    on_cpu = train_uniform(seasons_path, [0, 1], 40, dataclasses.replace(config, device="cpu"))
    on_gpu = train_uniform(seasons_path, [0, 1], 40, dataclasses.replace(config, device="cuda"))
    assert on_gpu.step["device"].startswith("cuda") and on_gpu.step["kernel"] == "eager"
    assert on_gpu.history[-1].loss == pytest.approx(on_cpu.history[-1].loss, rel=1e-2)  # atomics sum in any order
    assert grouped(on_gpu.vectors) > 0.5
