"""The film2vec model: asset vectors scored against candidates, trained by a hand-written sparse SGD step.

A sample scores its origin against its candidates (target first, then negatives) by dot product. Two
losses: a softmax over the candidates with cross-entropy against position 0 (the described model), or
independent sigmoids, target 1 and negatives 0 (word2vec's negative sampling). Candidates come from the
same matrix as origins (`shared`, the described model) or from a separate context matrix (word2vec).

The step computes the gradients of the scores in closed form and applies them with row-wise Adagrad, as
PyTorch-BigGraph does: each row keeps one accumulator (the running sum of its mean squared gradient), so
a popular asset touched in every batch takes ever smaller steps while a rare one keeps learning. No
autograd graph, no dense gradient; one scalar of optimiser state per row.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable

import torch
from torch.nn import functional as F

from film2vec.train.c_step import NativeStep

LOSSES = ("softmax", "sigmoid")


class AssetVectors:
    """The vectors (and, unless shared, the context vectors) of `n_assets` assets, with their SGD step."""

    def __init__(
        self,
        n_assets: int,
        dim: int,
        *,
        shared: bool,
        loss: str,
        seed: int = 0,
        device: torch.device | str = "cpu",
        compiled: bool = False,
    ) -> None:
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        generator = torch.Generator().manual_seed(seed)
        # Unit-scale rows: with one shared matrix, word2vec's tiny start (±0.5/dim) sits near the saddle at
        # zero, where every gradient is tiny, and barely moves. A separate context side starts at zero.
        self.vectors = torch.randn(n_assets, dim, generator=generator).mul_(dim**-0.5).to(device)
        self.context = self.vectors if shared else torch.zeros(n_assets, dim, device=device)
        self.vectors_state = torch.zeros(n_assets, device=device)
        self.context_state = self.vectors_state if shared else torch.zeros(n_assets, device=device)
        self.shared = shared
        self.loss_kind = loss
        self.compiled = compiled  # the step runs through torch.compile; set before the first step
        self._compiled_once = False
        self.native: NativeStep | None = None  # the C step (CPU), once `use_native` has built it
        self.fallback: str | None = None  # why the step is not the one asked for, once it fell back
        # A data-parallel process's link to the others (film2vec.train.distributed): given this process's
        # summed loss and (rows, gradients) per matrix, every process's, in rank order.
        self.exchange: Callable[[torch.Tensor, RowGradients], tuple[torch.Tensor, RowGradients]] | None = None

    def use_native(self) -> None:
        """Train with the C step from now on; raises NativeUnavailable where it cannot be built."""
        self.native = NativeStep(self.vectors, self.vectors_state, self.context, self.context_state, self.loss_kind)

    @property
    def kernel(self) -> str:
        """The step that trains: native (C), compiled (torch.compile) or eager (tensor code)."""
        if self.native is not None:
            return "native"
        return "compiled" if self.compiled and self._compiled_once else "eager"

    def state(self) -> dict[str, torch.Tensor]:
        """The tensors a checkpoint must hold (on the CPU)."""
        state = {"vectors": self.vectors.cpu(), "vectors_state": self.vectors_state.cpu()}
        if not self.shared:
            state.update(context=self.context.cpu(), context_state=self.context_state.cpu())
        return state

    def load(self, state: dict[str, torch.Tensor]) -> None:
        """Restore the tensors saved by `state`, in place on this model's device."""
        self.vectors.copy_(state["vectors"])
        self.vectors_state.copy_(state["vectors_state"])
        if not self.shared:
            self.context.copy_(state["context"])
            self.context_state.copy_(state["context_state"])

    def scores(self, origin: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """Scores [batch, candidates] of each origin against its candidates."""
        return torch.bmm(self.context[candidates], self.vectors[origin].unsqueeze(2)).squeeze(2)

    def loss(self, origin: torch.Tensor, target: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        """Mean loss per sample, without updating anything."""
        scores = self.scores(origin, _candidates(target, negatives))
        return _loss_and_gradient(scores, self.loss_kind)[0] / len(origin)

    @torch.no_grad()
    def step(
        self, origin: torch.Tensor, target: torch.Tensor, negatives: torch.Tensor, learning_rate: float
    ) -> torch.Tensor:
        """One row-wise Adagrad step on a batch; returns the batch's summed loss (a 0-d tensor, before the step)."""
        if self.native is not None:
            return self.native(origin, target, negatives, learning_rate)
        candidates = _candidates(target, negatives)
        if self.exchange is not None:
            return self._exchanged_step(origin, candidates, learning_rate)
        dense = self.vectors.shape[0] <= DENSE_ROWS_PER_TOUCH * candidates.numel()
        touched = None if dense else _touched(origin, candidates, self.shared)
        rate = torch.tensor(learning_rate, dtype=self.vectors.dtype, device=self.vectors.device)
        matrices = (self.vectors, self.vectors_state, self.context, self.context_state)
        arguments = (*matrices, origin, candidates, touched, rate, self.loss_kind, self.shared)
        if not self.compiled:
            return _train_step(*arguments)
        try:
            loss = compiled_step()(*arguments)
        except Exception as error:  # noqa: BLE001 - any compiler failure: the eager step computes the same
            if self._compiled_once:
                raise
            self.fallback = f"torch.compile failed ({error!r:.200}); training with the eager step"
            warnings.warn(self.fallback, stacklevel=2)
            self.compiled = False
            return _train_step(*arguments)
        self._compiled_once = True
        return loss

    def _exchanged_step(self, origin: torch.Tensor, candidates: torch.Tensor, learning_rate: float) -> torch.Tensor:
        """A data-parallel process's step: its share of the batch gives the gradients of the rows it touches,
        the exchange brings every process's, and each process applies all of them in the same order, so the
        replicas stay equal and the step is the one a single process takes on the whole batch."""
        loss, gradients = _row_gradients(self.vectors, self.context, origin, candidates, self.loss_kind, self.shared)
        loss, gradients = self.exchange(loss, gradients)
        rate = torch.tensor(learning_rate, dtype=self.vectors.dtype, device=self.vectors.device)
        matrices = [(self.vectors, self.vectors_state)]
        if not self.shared:
            matrices.append((self.context, self.context_state))
        for (matrix, state), (rows, row_gradients) in zip(matrices, gradients, strict=True):
            touched = (
                None
                if matrix.shape[0] <= DENSE_ROWS_PER_TOUCH * rows.numel()
                else torch.unique(rows, return_inverse=True)
            )
            _adagrad_rows(matrix, state, rows, row_gradients, touched, rate)
        return loss


# A catalogue of at most this many rows per candidate slot in a batch sums its gradients in a buffer of
# the whole matrix's shape (no sort); a larger one sums them over the batch's distinct rows (one sort): the
# buffer wins on a small catalogue and loses on a large one (docs/benchmarks.md, "Figures behind constants").
DENSE_ROWS_PER_TOUCH = 1


def _touched(origin: torch.Tensor, candidates: torch.Tensor, shared: bool) -> tuple[torch.Tensor, ...]:
    """The distinct rows a batch touches and each occurrence's position among them, per matrix."""
    if shared:
        return torch.unique(torch.cat((origin, candidates.reshape(-1))), return_inverse=True)
    return (*torch.unique(origin, return_inverse=True), *torch.unique(candidates.reshape(-1), return_inverse=True))


def _train_step(
    vectors: torch.Tensor,
    vectors_state: torch.Tensor,
    context: torch.Tensor,
    context_state: torch.Tensor,
    origin: torch.Tensor,
    candidates: torch.Tensor,
    touched: tuple[torch.Tensor, ...] | None,
    learning_rate: torch.Tensor,
    loss_kind: str,
    shared: bool,
) -> torch.Tensor:
    """Scores, their closed-form gradients and the Adagrad updates of one batch, in place.

    Written as plain tensor code so that torch.compile fuses the elementwise work around the two batched
    matrix products. (Inductor's own fused dot products were 3x faster at 5 candidates but 2x slower
    from 7 on: measured at 4,096 samples, dim 64, one thread.)
    """
    loss, gradients = _row_gradients(vectors, context, origin, candidates, loss_kind, shared)
    if shared:
        _adagrad_rows(vectors, vectors_state, *gradients[0], touched, learning_rate)
    else:
        _adagrad_rows(vectors, vectors_state, *gradients[0], touched and touched[:2], learning_rate)
        _adagrad_rows(context, context_state, *gradients[1], touched and touched[2:], learning_rate)
    return loss


# the rows a batch touches in each matrix (the shared one, or vectors then context) with each occurrence's gradient
RowGradients = list[tuple[torch.Tensor, torch.Tensor]]


def _row_gradients(
    vectors: torch.Tensor,
    context: torch.Tensor,
    origin: torch.Tensor,
    candidates: torch.Tensor,
    loss_kind: str,
    shared: bool,
) -> tuple[torch.Tensor, RowGradients]:
    """A batch's summed loss and, per matrix, the rows it touches with each occurrence's gradient."""
    dim = vectors.shape[1]
    origin_vectors = vectors[origin]
    candidate_vectors = context[candidates]
    scores = torch.bmm(candidate_vectors, origin_vectors.unsqueeze(2)).squeeze(2)
    loss, gradient = _loss_and_gradient(scores, loss_kind)
    origin_gradient = torch.bmm(gradient.unsqueeze(1), candidate_vectors).squeeze(1)
    candidate_gradient = (gradient.unsqueeze(2) * origin_vectors.unsqueeze(1)).reshape(-1, dim)
    flat = candidates.reshape(-1)
    if shared:
        return loss, [(torch.cat((origin, flat)), torch.cat((origin_gradient, candidate_gradient)))]
    return loss, [(origin, origin_gradient), (flat, candidate_gradient)]


def _adagrad_rows(
    matrix: torch.Tensor,
    state: torch.Tensor,
    rows: torch.Tensor,
    gradients: torch.Tensor,
    touched: tuple[torch.Tensor, ...] | None,
    learning_rate: torch.Tensor,
) -> None:
    """Row-wise Adagrad: sum each touched row's gradients, grow its accumulator, step by lr / sqrt(accumulator).

    With `touched` None the sums go to a buffer of every row (an untouched row sums to zero and does not
    move); else to the (distinct rows, inverse) given.
    """
    if touched is None:
        summed = torch.zeros_like(matrix).index_add_(0, rows, gradients)
        state.add_(summed.square().mean(dim=1))
        matrix.addcmul_(summed, (-learning_rate / (state.sqrt() + 1e-10)).unsqueeze(1))
        return
    unique, inverse = touched
    summed = matrix.new_zeros(len(unique), matrix.shape[1]).index_add_(0, inverse, gradients)
    accumulated = state[unique] + summed.square().mean(dim=1)
    state[unique] = accumulated
    matrix.index_add_(0, unique, summed * (-learning_rate / (accumulated.sqrt() + 1e-10)).unsqueeze(1))


@functools.cache
def compiled_step():
    """The step through torch.compile, made on first use: importing the compiler takes ~1.7 s, which runs on
    the C step never need."""
    return torch.compile(_train_step)


def _candidates(target: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    return torch.cat((target.unsqueeze(1), negatives), dim=1)


def _loss_and_gradient(scores: torch.Tensor, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed loss over the batch and d(loss)/d(scores), target in column 0."""
    if kind == "softmax":
        gradient = torch.softmax(scores, dim=1)
        loss = (torch.logsumexp(scores, dim=1) - scores[:, 0]).sum()
        gradient[:, 0] -= 1.0
        return loss, gradient
    labels = torch.zeros_like(scores)
    labels[:, 0] = 1.0
    loss = F.binary_cross_entropy_with_logits(scores, labels, reduction="sum")
    return loss, torch.sigmoid(scores) - labels
