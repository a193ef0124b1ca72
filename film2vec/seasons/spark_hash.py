"""Spark's xxhash64 of integer columns, in numpy: the driver picks the held-out slice and orders ties exactly as
Spark's jobs do (seasons.held_out_views, seasons.view_tie), so a walk drawn on the driver needs no Spark job.

Spark hashes each column in turn, the previous hash as the next seed (42 first); an int is hashed as XXH64 of
its 4 bytes, a long as XXH64 of its 8 (org.apache.spark.sql.catalyst.expressions.XXH64.hashInt, hashLong).
tests/test_seasons.py holds it to Spark's F.xxhash64.
"""

from __future__ import annotations

import numpy as np

SPARK_SEED = 42
PRIME_1 = np.uint64(0x9E3779B185EBCA87)
PRIME_2 = np.uint64(0xC2B2AE3D27D4EB4F)
PRIME_3 = np.uint64(0x165667B19E3779F9)
PRIME_4 = np.uint64(0x85EBCA77C2B2AE63)
PRIME_5 = np.uint64(0x27D4EB2F165667C5)


def _rotl(value: np.ndarray, bits: int) -> np.ndarray:
    return (value << np.uint64(bits)) | (value >> np.uint64(64 - bits))


def _mix(value: np.ndarray) -> np.ndarray:
    value = value ^ (value >> np.uint64(33))
    value = value * PRIME_2
    value = value ^ (value >> np.uint64(29))
    value = value * PRIME_3
    return value ^ (value >> np.uint64(32))


def _hash_int(values: np.ndarray, seed: np.ndarray) -> np.ndarray:
    state = seed + PRIME_5 + np.uint64(4)
    state = state ^ (values.astype(np.uint32).astype(np.uint64) * PRIME_1)
    return _mix(_rotl(state, 23) * PRIME_2 + PRIME_3)


def _hash_long(values: np.ndarray, seed: np.ndarray) -> np.ndarray:
    state = seed + PRIME_5 + np.uint64(8)
    state = state ^ (_rotl(values.astype(np.uint64) * PRIME_2, 31) * PRIME_1)
    return _mix(_rotl(state, 27) * PRIME_1 + PRIME_4)


def xxhash64(*columns: np.ndarray) -> np.ndarray:
    """F.xxhash64(*columns) of int32 and int64 columns (a Python int broadcasts as Spark's literal: an int when it
    fits 32 bits, else a long), as int64."""
    state = np.uint64(SPARK_SEED)
    with np.errstate(over="ignore"):
        for column in columns:
            if isinstance(column, int):
                column = np.array(column, dtype=np.int32 if -(2**31) <= column < 2**31 else np.int64)
            if column.dtype == np.int32:
                state = _hash_int(column, state)
            elif column.dtype == np.int64:
                state = _hash_long(column, state)
            else:
                raise TypeError(f"xxhash64 of {column.dtype}: only int32 and int64 columns are hashed here")
    return np.asarray(state).astype(np.int64)
