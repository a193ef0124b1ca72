"""One writer per output folder (film2vec.lock): a second command stops at once, names the first and writes
nothing, or waits for it when asked; a killed holder leaves no stale lock."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from film2vec.errors import ConcurrentWriteError, ExitCode
from film2vec.lock import LOCK_FILE, writing

HOLD = (
    "import sys, time\n"
    "from film2vec.lock import writing\n"
    "with writing(sys.argv[1], 'run'):\n"
    "    print('held', flush=True)\n"
    "    time.sleep(float(sys.argv[2]))\n"
)


def holder(out, seconds: float) -> subprocess.Popen:
    """A process that holds the folder's lock for `seconds`, once it has said so."""
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(out), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_second_writer_stops_at_once_names_the_first_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    first = holder(out, 60)
    try:
        started = time.perf_counter()
        second = subprocess.run(
            [sys.executable, "-m", "film2vec.cli", "pairs", "--out", str(out)], capture_output=True, text=True
        )
        assert second.returncode == ExitCode.CONFLICT, second.stderr[-2000:]
        assert f"{out} is being written by `film2vec run` (pid {first.pid}" in second.stderr
        assert time.perf_counter() - started < 8 and [p.name for p in out.iterdir()] == [LOCK_FILE]
    finally:
        first.kill()
        first.wait()
    with writing(str(out), "pairs"):  # the killed holder's lock went with it
        pass


def test_a_writer_asked_to_wait_goes_on_once_the_first_finishes(tmp_path):
    first = holder(tmp_path, 1.5)
    started = time.perf_counter()
    with pytest.raises(ConcurrentWriteError), writing(str(tmp_path), "train", wait_seconds=0.3):
        pass
    with writing(str(tmp_path), "train", wait_seconds=30):
        waited = time.perf_counter() - started
    assert first.wait() == 0 and 1.0 < waited < 10
