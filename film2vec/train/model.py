"""The film2vec model: one embedding matrix shared by origins and candidates.

A sample scores the origin against its candidates (target first, then negatives) by dot product; a
softmax over those scores with cross-entropy against position 0 pulls the target towards the origin and
pushes the negatives away.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class SharedEmbeddingModel(nn.Module):
    """Asset vectors in one sparse embedding, used for both ends of every pair."""

    def __init__(self, n_assets: int, dim: int, seed: int = 0) -> None:
        super().__init__()
        self.vectors = nn.Embedding(n_assets, dim, sparse=True)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            self.vectors.weight.normal_(0.0, dim**-0.5, generator=generator)

    def forward(self, origin: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """Scores [batch, candidates] of each origin against its candidates."""
        origin_vectors = self.vectors(origin).unsqueeze(2)
        return torch.bmm(self.vectors(candidates), origin_vectors).squeeze(2)

    def loss(self, origin: torch.Tensor, target: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        """Mean softmax cross-entropy of "the target is first" among target and negatives."""
        scores = self(origin, torch.cat((target.unsqueeze(1), negatives), dim=1))
        return F.cross_entropy(scores, torch.zeros(len(origin), dtype=torch.long, device=scores.device))
