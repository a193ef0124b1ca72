"""Metadata audit and assignment: each asset's labels as voted by its nearest labelled neighbours.

Pure numpy on the driver: the catalogue's vectors already live there for training and serving, and
the neighbours are found in blocks of one matrix product each. An asset's own labels never vote on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from film2vec.serving.nearest import top_k

SCORES_PER_BLOCK = 1 << 22
AGREES, DISAGREES, UNCERTAIN, UNLABELLED = "agrees", "disagrees", "uncertain", "unlabelled"


def label_votes(unit: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Per asset, the share of its k nearest labelled other assets (cosine) that carry each label.

    Assets with no label (all-False rows) are never voters. With fewer than k voters the share is over
    those there are; an asset with no voter at all gets zeros.
    """
    voters = np.flatnonzero(labels.any(axis=1))
    voter_of = np.full(len(unit), -1, dtype=np.int64)
    voter_of[voters] = np.arange(len(voters))
    voter_unit, voter_labels = unit[voters], labels[voters].astype(np.float64)
    shares = np.zeros(labels.shape)
    if len(voters) == 0:
        return shares
    block = max(1, SCORES_PER_BLOCK // len(voters))
    for start in range(0, len(unit), block):
        rows = np.arange(start, min(start + block, len(unit)))
        scores = unit[rows] @ voter_unit.T
        own = voter_of[rows] >= 0
        scores[np.flatnonzero(own), voter_of[rows][own]] = -np.inf
        # with k >= voters an asset's own (-inf) column is among its top ones: it is not counted
        nearest, _ = top_k(scores, np.arange(len(voters)), min(k, len(voters)))
        counted = np.isfinite(np.take_along_axis(scores, nearest, axis=1))
        votes = (voter_labels[nearest] * counted[:, :, None]).sum(axis=1)
        shares[rows] = votes / np.maximum(counted.sum(axis=1), 1)[:, None]
    return shares


@dataclass(frozen=True)
class Verdict:
    """Per asset: the top voted label's column and share, own labels' best share, predicted labels, status."""

    top_label: np.ndarray
    confidence: np.ndarray
    own_support: np.ndarray  # nan for an unlabelled asset
    predicted: np.ndarray  # assets x labels: shares reaching the confidence threshold
    status: np.ndarray


def judge(shares: np.ndarray, labels: np.ndarray, confidence: float) -> Verdict:
    """Compare each asset's labels with its vote.

    agrees: the top voted label is one of its own; disagrees: it is not, and at least `confidence` of
    the voters carry it (a likely mislabel); uncertain: it is not, with a weaker vote; unlabelled: no
    labels, so the predicted ones are suggestions.
    """
    top = np.argmax(shares, axis=1) if shares.shape[1] else np.zeros(len(shares), dtype=np.int64)
    top_share = shares[np.arange(len(shares)), top] if shares.shape[1] else np.zeros(len(shares))
    labelled = labels.any(axis=1)
    own_support = np.where(labelled, np.where(labels, shares, -np.inf).max(axis=1, initial=-np.inf), np.nan)
    top_is_own = labels[np.arange(len(labels)), top] if shares.shape[1] else np.zeros(len(shares), dtype=bool)
    status = np.where(
        ~labelled,
        UNLABELLED,
        np.where(top_is_own, AGREES, np.where(top_share >= confidence, DISAGREES, UNCERTAIN)),
    )
    return Verdict(top, top_share, own_support, shares >= confidence, status)


def holdout_recovery(unit: np.ndarray, labels: np.ndarray, share: float, k: int, confidence: float, seed: int) -> dict:
    """Hide the labels of `share` of the labelled assets, vote, and score the vote against the hidden labels.

    precision and recall are over (asset, label) pairs of the hidden assets, predicting every label with
    a share >= confidence; top_label_accuracy is how often the top voted label is one of the true ones,
    against always_most_common_accuracy for guessing the most common label every time.
    """
    labelled = np.flatnonzero(labels.any(axis=1))
    hidden = np.random.default_rng(seed).choice(labelled, size=max(1, round(share * len(labelled))), replace=False)
    visible = labels.copy()
    visible[hidden] = False
    verdict = judge(label_votes(unit, visible, k), visible, confidence)
    truth, predicted = labels[hidden], verdict.predicted[hidden]
    hits = (truth & predicted).sum()
    most_common = np.argmax(visible.sum(axis=0))
    return {
        "hidden_assets": len(hidden),
        "precision": float(hits / max(predicted.sum(), 1)),
        "recall": float(hits / max(truth.sum(), 1)),
        "top_label_accuracy": float(truth[np.arange(len(hidden)), verdict.top_label[hidden]].mean()),
        "always_most_common_accuracy": float(truth[:, most_common].mean()),
    }
