"""The command line: each command takes the settings it reads, typed; stdout carries the result, stderr the
progress; each kind of failure has its exit code."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pyarrow as pa
import pytest
import yaml
from deltalake import write_deltalake

from film2vec import cli
from film2vec.config import Config, ConfigError, load_profile
from film2vec.errors import ConcurrentWriteError, ExitCode, FloorsNotCleared, InputError

ROOT = Path(__file__).resolve().parents[1]


def help_of(command: str) -> str:
    (commands,) = [action for action in cli.parser()._actions if action.dest == "command"]
    return commands.choices[command].format_help()


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_each_command_shows_the_settings_it_reads_and_no_other(command):
    shown = help_of(command)
    flags = {line.split()[0] for line in shown.splitlines() if line.startswith("  --")}
    for key, setting in cli.SETTINGS.items():
        assert (setting.flag in flags) == (key in cli.COMMANDS[command].reads), key
    sections = {setting.section for key, setting in cli.SETTINGS.items() if key in cli.COMMANDS[command].reads}
    assert {f"{section} settings:" for section in sections - {""}} <= set(shown.splitlines())


def test_every_setting_is_read_by_some_command():
    assert [key for key in cli.SETTINGS if not cli.readers(key)] == []


def test_a_flag_the_command_does_not_read_is_refused_naming_those_that_do(capsys):
    assert cli.main(["generate", "--audit-k", "3"]) == ExitCode.USAGE
    assert "film2vec generate: error: --audit-k is not read by generate; it is read by: audit, uses" in (
        capsys.readouterr().err
    )
    assert cli.main(["train", "--events=x.csv"]) == ExitCode.USAGE
    assert "--events is not read by train; it is read by: pairs, run, refresh, evaluate" in capsys.readouterr().err


def test_flags_are_typed_and_checked_as_profile_values_are(capsys):
    arguments = cli.parser().parse_args(
        ["run", "--dim", "32", "--pipelined-seasons", "false", "--warm-start", "null", "--views-per-user", "12"]
    )
    config = cli.config_from(arguments)
    assert (config.train.dim, config.seasons.pipelined_seasons, config.train.warm_start) == (32, False, None)
    assert config.synthetic.views_per_user == 12.0 and isinstance(config.synthetic.views_per_user, float)
    assert cli.config_from(cli.parser().parse_args(["evaluate", "--experiment", "2024"])).tracking.experiment == "2024"
    for argv, message in [
        (["train", "--dim", "many"], "argument --dim: 'train.dim' is 'many'; allowed: int >= 1 <= 4096"),
        (["train", "--device", "tpu"], "argument --device: 'train.device' is 'tpu'; allowed: one of auto, cpu, cuda"),
        (["run", "--resume", "maybe"], "argument --resume: 'train.resume' is 'maybe'; allowed: bool"),
        (["evaluate", "--baseline", "lightfm"], "'evaluate.baseline' is 'lightfm'; allowed: one of als"),
    ]:
        assert cli.main(argv) == ExitCode.USAGE
        assert message in capsys.readouterr().err


def test_set_reaches_a_setting_by_its_key_typed_and_scoped(capsys):
    arguments = cli.parser().parse_args(["train", "--set", "train.dim=16", "--set", "seed=7", "--dim", "24"])
    config = cli.config_from(arguments)
    assert (config.train.dim, config.seed) == (24, 7)  # the flags come after --set
    assert cli.config_from(cli.parser().parse_args(["train", "--set", "train.dim=16"])).train.dim == 16
    for argv, message in [
        (["train", "--set", "train.dimm=3"], "no setting 'train.dimm' (did you mean train.dim?)"),
        (["train", "--set", "seasons.walk=coview"], "seasons.walk is not read by train; it is read by: sample"),
        (["train", "--set", "train.dim"], "'train.dim' is not SECTION.KEY=VALUE"),
        (["train", "--set", "train.dim=0"], "'train.dim' is 0; allowed: int >= 1 <= 4096"),
    ]:
        assert cli.main(argv) == ExitCode.USAGE
        assert message in capsys.readouterr().err


def test_help_shows_the_profiles_values_as_defaults(capsys):
    assert cli.main(["train", "--profile", "cluster", "--help"]) == ExitCode.OK
    shown = " ".join(capsys.readouterr().out.split())
    assert "Vector dimension (default: 128)" in shown  # conf/cluster.yaml, not the built-in 64
    assert "--loss {softmax,sigmoid}" in shown and "--warm-start TEXT" in shown


def test_help_lists_the_exit_codes(capsys):
    assert cli.main(["--help"]) == ExitCode.OK
    shown = capsys.readouterr().out
    assert all(f"\n  {code.value}  " in shown for code in ExitCode)


def test_version_and_the_effective_config(capsys):
    assert cli.main(["--version"]) == ExitCode.OK
    assert capsys.readouterr().out.startswith("film2vec ")
    assert cli.main(["config", "--profile", "cluster", "--dim", "32", "--set", "apps.audit_k=3"]) == ExitCode.OK
    printed = yaml.safe_load(capsys.readouterr().out)
    expected = load_profile("cluster")
    expected.train.dim, expected.apps.audit_k = 32, 3
    assert printed == dataclasses.asdict(expected)
    assert cli.main(["config", "--json"]) == ExitCode.OK
    assert json.loads(capsys.readouterr().out)["train"]["dim"] == load_profile("local").train.dim


def lookup_tables(out: Path) -> None:
    write_deltalake(
        out / "assets", pa.table({"asset_id": [1, 2, 3], "title": ["Alpha", "Beta", "Gamma"], "views": [5, 9, 2]})
    )
    neighbours = {"asset_id": [1, 1], "rank": [1, 2], "neighbour_id": [3, 2], "score": [0.9, 0.2]}
    write_deltalake(out / "neighbours", pa.table(neighbours))


def test_similar_prints_the_neighbours_and_with_json_only_the_json(tmp_path, capsys):
    lookup_tables(tmp_path)
    assert cli.main(["similar", "alpha", "--out", str(tmp_path)]) == ExitCode.OK
    printed = capsys.readouterr()
    assert printed.out.splitlines() == ["Alpha (1)", "   1  0.9000  Gamma (3)", "   2  0.2000  Beta (2)"]
    assert "film2vec similar done in" in printed.err
    assert cli.main(["similar", "alpha", "--out", str(tmp_path), "--json", "--log-level", "WARNING"]) == 0
    printed = capsys.readouterr()
    assert json.loads(printed.out)["neighbours"][0]["title"] == "Gamma" and printed.err == ""


# Exit codes, through a command whose function raises (no Spark): similar's


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ConfigError("flag --x: bad"), ExitCode.USAGE),
        (InputError("events at x: no valid view"), ExitCode.BAD_INPUT),
        (ConcurrentWriteError("pairs was written by another job"), ExitCode.CONFLICT),
        (FloorsNotCleared("recall_at_20 is below the floor"), ExitCode.FLOORS),
    ],
)
def test_each_kind_of_failure_has_its_exit_code(monkeypatch, capsys, error, code):
    def failing(config: Config) -> dict:
        raise error

    monkeypatch.setattr("film2vec.apps.similar.similar", failing)
    assert cli.main(["similar", "x"]) == code
    printed = capsys.readouterr()
    assert printed.err == f"film2vec similar: {error}\n" and printed.out == ""


def test_bad_input_exits_3_and_says_what_to_run(tmp_path, capsys):
    assert cli.main(["similar", "Alpha", "--out", str(tmp_path)]) == ExitCode.BAD_INPUT
    assert f"{tmp_path / 'assets'} not found: `film2vec pairs`" in capsys.readouterr().err


def trained(spark, config: Config) -> dict:
    """A stand-in for train_vectors: progress on the film2vec loggers, a warning, and a summary whose figures
    missed the floor."""
    logging.getLogger("film2vec.pipeline").info("season 0 epoch 1: loss 3.0")
    warnings.warn("torch.compile failed; training with the eager step", stacklevel=1)
    cleared = config.tracking.alias_floor_genre_p <= 0.8
    reason = "genre_p_at_10 = 0.8000 >= 0.0" if cleared else "genre_p_at_10 = 0.8000 is below the floor 0.9"
    floors = {"cleared": cleared, "reason": reason}
    return {
        "embeddings": config.out("embeddings"),
        "figures": {"genre_p_at_10": 0.8},
        "model": "models:/film2vec/2",
        "alias": {"name": "champion", "moved": floors["cleared"], "reason": floors["reason"], "floors": floors},
    }


@pytest.fixture
def fake_training(monkeypatch):
    monkeypatch.setitem(cli.COMMANDS, "train", cli.COMMANDS["train"]._replace(target=f"{__name__}:trained"))
    monkeypatch.setattr("film2vec.spark.get_spark", lambda *_, **__: None)


def test_failing_the_floors_exits_5_only_when_asked(fake_training, tmp_path, capsys):
    floor = ["--out", str(tmp_path), "--alias-floor-genre-p", "0.9"]
    assert cli.main(["train", *floor]) == ExitCode.OK
    capsys.readouterr()
    assert cli.main(["train", *floor, "--fail-on-floors"]) == ExitCode.FLOORS
    printed = capsys.readouterr()
    assert "film2vec train: the figures did not clear the alias floors: genre_p_at_10 = 0.8000 is below the floor" in (
        printed.err
    )
    assert "embeddings" in printed.out  # the outputs are written and said all the same
    assert cli.main(["train", "--out", str(tmp_path), "--fail-on-floors"]) == ExitCode.OK
    assert cli.main(["pairs", "--fail-on-floors"]) == ExitCode.USAGE  # pairs registers no version


def test_stdout_carries_the_result_and_stderr_the_progress(fake_training, tmp_path, capsys):
    summary = tmp_path / "summaries" / "train.json"
    assert cli.main(["train", "--out", str(tmp_path), "--summary", str(summary)]) == ExitCode.OK
    printed = capsys.readouterr()
    assert printed.out.splitlines() == [
        f"embeddings   {tmp_path.resolve() / 'embeddings'}",
        "figures      genre_p_at_10 0.8000",
        "model        models:/film2vec/2",
        "alias        champion moved to it: genre_p_at_10 = 0.8000 >= 0.0",
    ]
    progress = printed.err.splitlines()
    assert progress[:2] == ["Spark ready in 0.0 s", "season 0 epoch 1: loss 3.0"]
    assert progress[2].startswith("warning: torch.compile failed; training with the eager step (UserWarning, ")
    assert progress[3].startswith("film2vec train done in ") and progress[4] == f"summary → {summary}"
    assert json.loads(summary.read_text())["figures"] == {"genre_p_at_10": 0.8}

    assert cli.main(["train", "--out", str(tmp_path), "--json", "--log-level", "ERROR"]) == ExitCode.OK
    printed = capsys.readouterr()
    assert json.loads(printed.out)["model"] == "models:/film2vec/2" and printed.err == ""
    assert not logging.getLogger("film2vec").handlers  # the command's handler goes when it ends


def switch_interval_seen(spark, config: Config) -> dict:
    return {"switch_interval": sys.getswitchinterval()}


def test_a_command_runs_at_the_short_switch_interval_and_restores_it(monkeypatch, tmp_path, capsys):
    command = cli.COMMANDS["train"]._replace(target=f"{__name__}:switch_interval_seen")
    monkeypatch.setitem(cli.COMMANDS, "train", command)
    monkeypatch.setattr("film2vec.spark.get_spark", lambda *_, **__: None)
    before = sys.getswitchinterval()
    assert before != cli.SWITCH_INTERVAL_SECONDS
    assert cli.main(["train", "--out", str(tmp_path), "--json"]) == ExitCode.OK
    assert json.loads(capsys.readouterr().out)["switch_interval"] == pytest.approx(cli.SWITCH_INTERVAL_SECONDS)
    assert sys.getswitchinterval() == before


def test_help_imports_neither_spark_nor_torch_nor_mlflow():
    script = """
import contextlib, io, sys
from film2vec import cli
with contextlib.redirect_stdout(io.StringIO()):
    assert cli.main(["--help"]) == 0
    for command in cli.COMMANDS:
        assert cli.main([command, "--help"]) == 0
print(sorted({m.split(".")[0] for m in sys.modules} & {"pyspark", "torch", "mlflow", "pandas", "py4j", "delta"}))
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.strip() == "[]"


def test_a_real_command_says_little_and_spark_nothing(tmp_path):
    """`film2vec generate` in a fresh process: its progress and the JVM's one notice on stderr, no Spark or
    MLflow start-up lines; the outputs on stdout."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env = {key: value for key, value in env.items() if not key.startswith(("PYSPARK_", "SPARK_"))}
    small = ["--users", "40", "--catalogue-size", "12", "--genres", "2", "--views-per-user", "4"]
    spark = ["--master", "local[1]", "--shuffle-partitions", "1", "--driver-memory", "1g"]
    done = subprocess.run(
        [sys.executable, "-m", "film2vec.cli", "generate", "--out", str(tmp_path), *small, *spark],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines() == [
        f"events       {tmp_path.resolve() / 'synthetic' / 'events'}",
        f"metadata     {tmp_path.resolve() / 'synthetic' / 'assets'}",
    ]
    noise = [line for line in done.stderr.splitlines() if not line.startswith("WARNING: Using incubator modules")]
    assert len(noise) == 2 and noise[0].startswith("Spark ready in ") and noise[1].startswith("film2vec generate done")


def test_the_result_says_how_many_seasons_and_samples_trained_and_why_the_run_stopped():
    volume = {"seasons": [0, 1, 2], "samples": 8_700_123, "stopped": "season 2 brought no gain on the held-out slice"}
    assert cli.result("train", {"train": {"volume": volume}}) == (
        "volume       3 season(s), 8,700,123 samples: season 2 brought no gain on the held-out slice"
    )


def noisy(spark, config: Config) -> dict:
    """A stand-in command whose libraries write to the process's standard output, as the JVM does."""
    os.write(1, b"Deleted 0 files and directories in a total of 1 directories.\n")
    subprocess.run(["echo", "a child process's line"], check=True)
    return {"embeddings": config.out("embeddings")}


def test_stdout_holds_the_json_alone_whatever_the_libraries_print(monkeypatch, tmp_path, capfd):
    monkeypatch.setitem(cli.COMMANDS, "train", cli.COMMANDS["train"]._replace(target=f"{__name__}:noisy"))
    monkeypatch.setattr("film2vec.spark.get_spark", lambda *_, **__: None)
    assert cli.main(["train", "--out", str(tmp_path), "--json"]) == ExitCode.OK
    printed = capfd.readouterr()
    assert json.loads(printed.out) == {"embeddings": str(tmp_path.resolve() / "embeddings")}
    assert "Deleted 0 files" in printed.err and "a child process's line" in printed.err
