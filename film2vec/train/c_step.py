"""The CPU training step in C (native_step.c), built once per machine with the system's C compiler.

The tensor-code step is memory-bound: it gathers every sample's candidate rows into [batch, candidates, dim]
tensors and scatters as many gradient rows back. The C step reads the rows in place and sums gradients into
one buffer, which is several times faster (see benchmarks/bench_trainer.py). It is called through ctypes on
the tensors' memory (no Python work per sample; the GIL is released while it runs). The build needs only
`cc` with pthreads; where there is none, the trainer uses the tensor-code step.
"""

from __future__ import annotations

import ctypes
import functools
from pathlib import Path

import numpy as np
import torch

from film2vec.c_kernels import NativeUnavailable, build

SOURCE = Path(__file__).with_name("native_step.c")


@functools.cache
def library() -> ctypes.CDLL:
    """The built step (see film2vec.c_kernels), with its argument types."""
    loaded = build(SOURCE)
    pointer, size = ctypes.c_void_p, ctypes.c_int64
    loaded.film2vec_step.restype = ctypes.c_double
    loaded.film2vec_step.argtypes = [
        *(pointer,) * 4,
        size,
        size,
        pointer,
        pointer,
        size,
        size,
        ctypes.c_float,
        ctypes.c_int,
        *(pointer,) * 8,
        ctypes.c_int,
    ]
    return loaded


class NativeStep:
    """The C step bound to a model's matrices, with its scratch buffers (one gradient-sum row per asset row)."""

    def __init__(
        self,
        vectors: torch.Tensor,
        vectors_state: torch.Tensor,
        context: torch.Tensor,
        context_state: torch.Tensor,
        loss_kind: str,
    ) -> None:
        for tensor in (vectors, vectors_state, context, context_state):
            if tensor.device.type != "cpu" or tensor.dtype != torch.float32 or not tensor.is_contiguous():
                raise NativeUnavailable("the C step trains contiguous float32 matrices on the CPU")
        self._function = library().film2vec_step
        self.matrices = (vectors, vectors_state, context, context_state)
        self.sigmoid = int(loss_kind == "sigmoid")
        rows, dim = vectors.shape
        self.vector_scratch = _Scratch(rows, dim)
        self.context_scratch = self.vector_scratch if context is vectors else _Scratch(rows, dim)

    def __call__(
        self, origin: torch.Tensor, target: torch.Tensor, negatives: torch.Tensor, learning_rate: float
    ) -> torch.Tensor:
        """One step on (origin [batch], target [batch], negatives [batch, n]); returns the summed loss before the
        step. The index arrays are handled by numpy: torch's own threads (a cat of a batch's candidates is
        parallel) would wait on a core that samples the next season, as long as the step itself."""
        rows, dim = self.matrices[0].shape
        origin = np.ascontiguousarray(origin.numpy(), dtype=np.int64)
        candidates = np.concatenate((target.numpy()[:, None], negatives.numpy()), axis=1, dtype=np.int64)
        for indices in (origin, candidates):
            low, high = indices.min(), indices.max()
            if low < 0 or high >= rows:  # C would read out of bounds where tensor code raises
                raise IndexError(f"asset index out of range [0, {rows}): {int(low)}..{int(high)}")
        batch, width = candidates.shape
        gradients = torch.empty(batch, width)
        losses = torch.empty(batch, dtype=torch.float64)
        vector, context = self.vector_scratch, self.context_scratch
        loss = self._function(
            *(tensor.data_ptr() for tensor in self.matrices),
            rows,
            dim,
            origin.ctypes.data,
            candidates.ctypes.data,
            batch,
            width,
            learning_rate,
            self.sigmoid,
            vector.sums.data_ptr(),
            context.sums.data_ptr(),
            vector.marks.data_ptr(),
            context.marks.data_ptr(),
            vector.touched.data_ptr(),
            context.touched.data_ptr(),
            gradients.data_ptr(),
            losses.data_ptr(),
            max(1, torch.get_num_threads() - 1),  # a core stays with the thread that streams the batches in
        )
        return torch.tensor(loss, dtype=torch.float32)


class _Scratch:
    """Per matrix: gradient sums (kept zeroed between steps), first-touch marks and the touched-row list."""

    def __init__(self, rows: int, dim: int) -> None:
        self.sums = torch.zeros(rows, dim)
        self.marks = torch.zeros(rows, dtype=torch.uint8)
        self.touched = torch.empty(rows, dtype=torch.int64)
