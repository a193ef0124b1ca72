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
import hashlib
import os
import platform
import subprocess
import tempfile
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("native_step.c")
FLAGS = ("-O3", "-march=native", "-fopenmp-simd", "-pthread", "-std=gnu11", "-shared", "-fPIC")


class NativeStepUnavailable(RuntimeError):
    """The C step could not be built or loaded here."""


def cache_folder() -> Path:
    """Where the built library is kept: $FILM2VEC_CACHE, else ~/.cache/film2vec."""
    return Path(os.environ.get("FILM2VEC_CACHE") or Path.home() / ".cache" / "film2vec")


@functools.cache
def library() -> ctypes.CDLL:
    """The built step, compiled on first use. The file name hashes the source, the flags, the compiler and this
    CPU's instruction-set flags, so a cache folder shared between machines never hands one a binary built
    for another (-march=native)."""
    compiler = os.environ.get("CC", "cc")
    source = SOURCE.read_bytes()
    try:
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        raise NativeStepUnavailable(f"no C compiler ({compiler}): {error}") from None
    key = hashlib.sha256(b"\0".join([source, " ".join(FLAGS).encode(), version.encode(), _cpu_flags()]))
    built = cache_folder() / f"native_step-{platform.machine()}-{key.hexdigest()[:16]}.so"
    if not built.exists():
        built.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=built.parent) as scratch:
            partial = Path(scratch) / built.name
            command = [compiler, *FLAGS, str(SOURCE), "-o", str(partial), "-lm"]
            compiled = subprocess.run(command, capture_output=True, text=True)
            if compiled.returncode != 0:
                raise NativeStepUnavailable(f"{' '.join(command)} failed:\n{compiled.stderr[-2000:]}")
            partial.replace(built)  # atomic: a concurrent build of the same key writes the same bytes
    try:
        loaded = ctypes.CDLL(str(built))
    except OSError as error:
        raise NativeStepUnavailable(f"cannot load {built}: {error}") from None
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


def _cpu_flags() -> bytes:
    try:
        lines = Path("/proc/cpuinfo").read_bytes().splitlines()
    except OSError:
        return platform.processor().encode()
    return next((line for line in lines if line.startswith((b"flags", b"Features"))), b"")


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
                raise NativeStepUnavailable("the C step trains contiguous float32 matrices on the CPU")
        self._function = library().film2vec_step
        self.matrices = (vectors, vectors_state, context, context_state)
        self.sigmoid = int(loss_kind == "sigmoid")
        rows, dim = vectors.shape
        self.vector_scratch = _Scratch(rows, dim)
        self.context_scratch = self.vector_scratch if context is vectors else _Scratch(rows, dim)

    def __call__(self, origin: torch.Tensor, candidates: torch.Tensor, learning_rate: float) -> torch.Tensor:
        """One step on (origin [batch], candidates [batch, width]); returns the summed loss before the step."""
        rows, dim = self.matrices[0].shape
        origin = origin.to(torch.int64).contiguous()
        candidates = candidates.to(torch.int64).contiguous()
        for indices in (origin.numpy(), candidates.numpy()):  # numpy: torch's own threads would spin beside C's
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
            origin.data_ptr(),
            candidates.data_ptr(),
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
