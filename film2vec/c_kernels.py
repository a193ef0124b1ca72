"""C kernels built once per machine with the system's C compiler and loaded with ctypes.

film2vec's hot loops that numpy cannot express without large temporaries are small C files next to the
module that calls them (the training step, the co-view counts). Each is compiled on first use into
~/.cache/film2vec (or $FILM2VEC_CACHE), under a name that hashes the source, the flags, the compiler and
the CPU's instruction-set flags, so a cache shared between machines never hands one a binary built for
another (-march=native). Where no compiler works, callers fall back to their numpy or tensor code.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import subprocess
import tempfile
from pathlib import Path

FLAGS = ("-O3", "-march=native", "-fopenmp-simd", "-pthread", "-std=gnu11", "-shared", "-fPIC")


class NativeUnavailable(RuntimeError):
    """A C kernel could not be built or loaded here."""


def cache_folder() -> Path:
    """Where built libraries are kept: $FILM2VEC_CACHE, else ~/.cache/film2vec."""
    return Path(os.environ.get("FILM2VEC_CACHE") or Path.home() / ".cache" / "film2vec")


def build(source: Path) -> ctypes.CDLL:
    """The library compiled from `source` with $CC (else cc), built now unless this machine has it already."""
    compiler = os.environ.get("CC", "cc")
    code = source.read_bytes()
    try:
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        raise NativeUnavailable(f"no C compiler ({compiler}): {error}") from None
    key = hashlib.sha256(b"\0".join([code, " ".join(FLAGS).encode(), version.encode(), _cpu_flags()]))
    built = cache_folder() / f"{source.stem}-{platform.machine()}-{key.hexdigest()[:16]}.so"
    if not built.exists():
        built.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=built.parent) as scratch:
            partial = Path(scratch) / built.name
            command = [compiler, *FLAGS, str(source), "-o", str(partial), "-lm"]
            compiled = subprocess.run(command, capture_output=True, text=True)
            if compiled.returncode != 0:
                raise NativeUnavailable(f"{' '.join(command)} failed:\n{compiled.stderr[-2000:]}")
            partial.replace(built)  # atomic: a concurrent build of the same key writes the same bytes
    try:
        return ctypes.CDLL(str(built))
    except OSError as error:
        raise NativeUnavailable(f"cannot load {built}: {error}") from None


def _cpu_flags() -> bytes:
    try:
        lines = Path("/proc/cpuinfo").read_bytes().splitlines()
    except OSError:
        return platform.processor().encode()
    return next((line for line in lines if line.startswith((b"flags", b"Features"))), b"")
