"""Season checkpoints: after each season the vectors and the schedule's position, so a killed run resumes.

One file, replaced atomically after every season (written beside it, then renamed), so a kill at any
moment leaves either the previous season's checkpoint or the new one, never half of one. It carries the
settings that shape the model; a checkpoint made with other settings is not resumed from.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

CHECKPOINT_FILE = "checkpoint.pt"
log = logging.getLogger(__name__)


@dataclass
class Checkpoint:
    """What a resumed run needs: tensors, the seasons done in order, and where the schedule stood."""

    fingerprint: dict
    tensors: dict[str, torch.Tensor]
    seasons_done: list[int] = field(default_factory=list)
    step: int = 0
    history: list[dict] = field(default_factory=list)
    curve: list[dict] = field(default_factory=list)  # the held-out figures after each season (--seasons 0)
    terms: list[dict[str, torch.Tensor]] = field(default_factory=list)  # each season's gain terms on the slice


def save(directory: str | Path, checkpoint: Checkpoint) -> Path:
    """Write the checkpoint to DIRECTORY/checkpoint.pt atomically; returns its path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CHECKPOINT_FILE
    partial = directory / f".{CHECKPOINT_FILE}.{os.getpid()}"
    torch.save(checkpoint.__dict__, partial)
    os.replace(partial, path)
    return path


def load(directory: str | Path, fingerprint: dict) -> Checkpoint | None:
    """The checkpoint in `directory` when there is one made with the same settings and inputs, else None; one
    made with others is set aside (the run starts afresh and replaces it) and the log says what differs."""
    path = Path(directory) / CHECKPOINT_FILE
    if not path.is_file():
        return None
    found = Checkpoint(**torch.load(path, weights_only=True))
    if found.fingerprint == fingerprint:
        return found
    differs = sorted(
        key for key in {*found.fingerprint, *fingerprint} if found.fingerprint.get(key) != fingerprint.get(key)
    )
    log.warning(
        "checkpoint %s set aside: it was made with other %s; training starts from the first season",
        path,
        ", ".join(differs),
    )
    return None


def clear(directory: str | Path) -> None:
    """Remove the checkpoint once its run has finished and its vectors are written."""
    (Path(directory) / CHECKPOINT_FILE).unlink(missing_ok=True)
