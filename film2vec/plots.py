"""Pictures logged with every run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen before pyplot loads)


def plot_loss(history: Sequence, path: Path) -> Path:
    """Mean training loss per epoch, with season boundaries marked."""
    figure, axis = plt.subplots(figsize=(7, 4))
    axis.plot(range(1, len(history) + 1), [report.loss for report in history], marker="o")
    for position, (before, after) in enumerate(zip(history, history[1:]), start=1):
        if after.season != before.season:
            axis.axvline(position + 0.5, color="grey", linewidth=0.5)
    axis.set_xlabel("epoch (grey lines: new season)")
    axis.set_ylabel("mean softmax cross-entropy")
    axis.set_title("film2vec training loss")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
