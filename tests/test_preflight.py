"""A command that cannot finish stops before Spark starts, in about a second, names the flag and leaves nothing
behind (film2vec.preflight)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from film2vec import preflight
from film2vec.cli import COMMANDS
from film2vec.config import Config, ConfigError
from film2vec.errors import ExitCode

FAST_SECONDS = 8.0  # the process, Python's imports included; Spark's start alone takes longer


def film2vec(*argv: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, float]:
    """`film2vec ARGV` in a fresh process, and its wall time."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "film2vec.cli", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )
    return done, time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_missing_events_path_stops_before_spark_and_creates_nothing(tmp_path):
    out = tmp_path / "out"
    done, seconds = film2vec("run", "--events", str(tmp_path / "nowhere.csv"), "--out", str(out))
    assert done.returncode == ExitCode.BAD_INPUT, done.stderr[-2000:]
    assert f"flag --events: {tmp_path / 'nowhere.csv'}: no such file or folder" in done.stderr
    assert seconds < FAST_SECONDS and not out.exists()


@pytest.mark.parametrize("where", ["file", "read-only"])
def test_an_out_that_is_a_file_or_not_writable_is_refused_by_name(tmp_path, where):
    if where == "file":
        out = tmp_path / "out.txt"
        out.write_text("not a folder")
        expected = "is a file"
    else:
        assert not os.access("/proc/sys", os.W_OK)  # read-only even for root
        out = "/proc/sys/film2vec-out"
        expected = "is not writable by this user (it would be created in /proc/sys)"
    done, seconds = film2vec("pairs", "--out", str(out))
    assert done.returncode == ExitCode.USAGE, done.stderr[-2000:]
    assert f"flag --out: {out} {expected}" in done.stderr and "Traceback" not in done.stderr
    assert seconds < FAST_SECONDS


def test_a_tracking_server_that_does_not_answer_stops_the_run_before_it_writes(tmp_path):
    out = tmp_path / "out"
    server = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    done, seconds = film2vec("run", "--out", str(out), env={"MLFLOW_TRACKING_URI": server})
    assert done.returncode == ExitCode.USAGE, done.stderr[-2000:]
    assert f"MLFLOW_TRACKING_URI {server} does not answer" in done.stderr
    assert seconds < FAST_SECONDS and not out.exists()


def test_processes_with_a_setting_they_cannot_honour_stop_before_spark(tmp_path):
    out = tmp_path / "out"
    done, seconds = film2vec("run", "--processes", "2", "--step-kernel", "native", "--out", str(out))
    assert done.returncode == ExitCode.USAGE, done.stderr[-2000:]
    assert "flag --processes 2: " in done.stderr and "--step-kernel native cannot hold" in done.stderr
    assert seconds < FAST_SECONDS and not out.exists()


@pytest.mark.parametrize("setting", ["max_user_views", "user_weighting", "max_neighbours", "min_co_views"])
def test_a_pair_setting_the_walk_does_not_read_is_refused_by_name(tmp_path, setting):
    config = Config()
    config.data.out = str(tmp_path)
    value = {"max_user_views": 500, "user_weighting": "inverse", "max_neighbours": 5, "min_co_views": 2.0}[setting]
    setattr(config.pairs, setting, value)
    flag = "--" + setting.replace("_", "-")
    with pytest.raises(ConfigError, match=f"{flag} {value} acts only with --walk coview"):
        preflight.check(config, COMMANDS["run"].reads, command="run")
    preflight.check(config, COMMANDS["pairs"].reads, command="pairs")  # `film2vec pairs` counts them whatever the walk
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_an_input_reading_setting_without_events_is_refused_by_name(tmp_path):
    """The synthetic catalogue is film2vec's own table: the settings that read the user's files do not apply."""
    config = Config()
    config.data.out, config.data.time_col = str(tmp_path), "watched"
    with pytest.raises(ConfigError, match="--time-col watched acts only with --events or --new-events"):
        preflight.check(config, COMMANDS["run"].reads, command="run")
    config.data.events = str(tmp_path)
    preflight.check(config, COMMANDS["run"].reads, command="run")
