"""The film2vec model: asset vectors scored against candidates, trained by a hand-written sparse SGD step.

A sample scores its origin against its candidates (target first, then negatives) by dot product. Two
losses: a softmax over the candidates with cross-entropy against position 0 (the described model), or
independent sigmoids, target 1 and negatives 0 (word2vec's negative sampling). Candidates come from the
same matrix as origins (`shared`, the described model) or from a separate context matrix (word2vec).

The step computes the gradients of the scores in closed form and adds them into the rows it touched with
`index_add_`: no autograd graph, no dense gradient, no optimiser state, a dozen tensor calls per batch.
A row that occurs n times in a batch gets the sum of its samples' steps divided by √n, so a rare asset
moves as under word2vec's per-sample updates and a popular one does not overshoot.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

LOSSES = ("softmax", "sigmoid")


class AssetVectors:
    """The vectors (and, unless shared, the context vectors) of `n_assets` assets, with their SGD step."""

    def __init__(
        self, n_assets: int, dim: int, *, shared: bool, loss: str, seed: int = 0, device: torch.device | str = "cpu"
    ) -> None:
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        generator = torch.Generator().manual_seed(seed)
        # Unit-scale rows: with one shared matrix, word2vec's tiny start (±0.5/dim) sits near the saddle at
        # zero, where every gradient is tiny, and barely moves. A separate context side starts at zero.
        self.vectors = torch.randn(n_assets, dim, generator=generator).mul_(dim**-0.5).to(device)
        self.context = self.vectors if shared else torch.zeros(n_assets, dim, device=device)
        self.shared = shared
        self.loss_kind = loss

    def state(self) -> dict[str, torch.Tensor]:
        """The tensors a checkpoint must hold (on the CPU)."""
        state = {"vectors": self.vectors.cpu()}
        if not self.shared:
            state["context"] = self.context.cpu()
        return state

    def load(self, state: dict[str, torch.Tensor]) -> None:
        """Restore the tensors saved by `state`, in place on this model's device."""
        self.vectors.copy_(state["vectors"])
        if not self.shared:
            self.context.copy_(state["context"])

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
        """One SGD step on a batch; returns the batch's summed loss (a 0-d tensor, before the step)."""
        candidates = _candidates(target, negatives)
        origin_vectors = self.vectors[origin]
        candidate_vectors = self.context[candidates]
        scores = torch.bmm(candidate_vectors, origin_vectors.unsqueeze(2)).squeeze(2)
        loss, gradient = _loss_and_gradient(scores, self.loss_kind)
        gradient.mul_(-learning_rate)
        origin_update = torch.bmm(gradient.unsqueeze(1), candidate_vectors).squeeze(1)
        candidate_update = (gradient.unsqueeze(2) * origin_vectors.unsqueeze(1)).reshape(-1, origin_vectors.shape[1])
        candidates = candidates.reshape(-1)
        if self.shared:
            _add_row_means(self.vectors, torch.cat((origin, candidates)), torch.cat((origin_update, candidate_update)))
        else:
            _add_row_means(self.vectors, origin, origin_update)
            _add_row_means(self.context, candidates, candidate_update)
        return loss


def _add_row_means(matrix: torch.Tensor, rows: torch.Tensor, updates: torch.Tensor) -> None:
    """Add to each row the sum of its updates in the batch divided by the square root of their number.

    A row that occurs once gets its sample's full step, as in word2vec; a popular asset that occurs n
    times in a large batch moves √n steps' worth: n stale steps at once diverge (tests: 40 assets, batch
    1,024), one (the mean) learns too slowly on small catalogues.
    """
    _, inverse, counts = torch.unique(rows, return_inverse=True, return_counts=True)
    matrix.index_add_(0, rows, updates * counts[inverse].to(updates.dtype).rsqrt().unsqueeze(1))


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
