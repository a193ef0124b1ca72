"""Every option does what it says: each command, run on a tiny catalogue, consults every setting it accepts
that can act in the configuration given, and refuses a value of its own for any other, by flag, before Spark
starts (config.CONDITIONAL_SETTINGS, checked by film2vec.preflight); and each setting it consults changes its
result: run again from the same folder with the setting moved, it gives another exit code, summary, table,
file or registered model.

A setting counts as consulted when film2vec's code reads it while the command runs; the reads that build the
configuration, check it, or copy it whole (MLflow's parameters, fingerprints) do not count. Speed-only
settings (config.setting(speed_only=True)) are left out, as are the settings the data decides about (DATA
below) and the synthetic generator's, which its Spark tasks read (test_every_synthetic_setting_changes_the_
catalogue covers them).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import typing
from pathlib import Path

import pytest
from deltalake import DeltaTable
from mlflow.tracking import MlflowClient

from benchmarks.compare_outputs import canonical_rows, delta_tables
from film2vec import cli, preflight
from film2vec.config import SECTIONS, Config, ConfigError, SyntheticConfig, idle_settings, value_of
from film2vec.ingest.synthetic import plan_catalogue

TINY = ["--set", "synthetic.users=150", "--set", "synthetic.catalogue_size=60", "--set", "synthetic.genres=4"]

# (command, its arguments), in an order where each finds what it reads; then other configurations of the
# commands whose settings depend on each other most
WALK = [
    ("generate", TINY),
    ("pairs", TINY),
    ("sample", ["--seasons", "1"]),
    ("train", ["--seasons", "1"]),
    ("tastes", []),
    ("recommend", ["--candidates", "CANDIDATES"]),
    ("audit", []),
    ("clusters", ["--n-clusters", "3"]),
    ("map", []),
    ("similar", ["1"]),
    ("validate", ["--version", "1"]),
    ("promote", ["--version", "1"]),
    ("uses", ["--candidates", "CANDIDATES", "--n-clusters", "3"]),
    ("refresh", [*TINY, "--since", "2000-01-01", "--retrain-unchanged", "true"]),
    ("evaluate", [*TINY, "--seasons", "1", "--baseline", "als", "--als-iterations", "2"]),
    ("run", [*TINY, "--set", "synthetic.views_per_user=12", "--seasons", "0", "--max-seasons", "3"]),
    (
        "run",
        [*TINY, "--walk", "coview", "--seasons", "1", "--negative-distribution", "unigram"]
        + ["--origin-distribution", "stratified", "--lr-schedule", "linear"],
    ),
]

# settings whose effect the data decides, not the configuration: (command or "*", key) with the condition
DATA = {
    ("*", "tracking.ann_recall"): "the catalogue has --ann-from-assets assets or more",
    ("*", "tracking.alias_floor_recall"): "a held-out split scores the version",
    ("refresh", "refresh.retrain_unchanged"): "the batch holds no new view (given here, it is consulted then)",
    ("promote", "tracking.force"): "`validate` did not pass the version",
    ("similar", "train.min_views"): "the asset has no vector (the answer then says why)",
    ("*", "data.catalog"): "--schema names tables in a metastore",
    ("*", "spark.metastore"): "a table is named: --schema, or an input given as schema.table",
    ("train", "train.allow_season_mismatch"): "DIR/seasons was drawn by other settings or inputs",
    ("*", "pairs.pair_budget"): "the users' histories hold more pairs than the budget (the count then stops)",
    ("refresh", "train.warm_new_assets"): "the batch brings assets the served model lacks",
}


@pytest.fixture
def consulted(monkeypatch):
    """The keys film2vec's code reads while a command runs, beyond building and checking its configuration."""
    read: set[str] = set()
    skipped = (
        "dataclasses.py",
        "copy.py",
        os.path.join("film2vec", "cli.py"),
        os.path.join("film2vec", "preflight.py"),
    )
    config_py = os.path.join("film2vec", "config.py")  # its rules and loaders skipped; Config's methods read
    for section in ("", *SECTIONS):
        owner = type(getattr(Config(), section)) if section else Config
        names = {spec.name for spec in dataclasses.fields(owner)} - (set() if section else set(SECTIONS))

        def traced(self, name, _get=owner.__getattribute__, _names=names, _prefix=f"{section}." if section else ""):
            caller = sys._getframe(1).f_code
            if name in _names and not caller.co_filename.endswith(skipped):
                if caller.co_filename.endswith(config_py) and not caller.co_qualname.startswith("Config."):
                    return _get(self, name)
                read.add(_prefix + name)
            return _get(self, name)

        monkeypatch.setattr(owner, "__getattribute__", traced)
    return read


def other_values(key: str, value: typing.Any) -> list[typing.Any]:
    """Valid values of the setting other than `value`: the next one up (another choice, the other truth value),
    then a number's bounds, where a threshold a tiny catalogue never reaches binds."""
    setting = cli.SETTINGS[key]
    meta, kinds = setting.meta, typing.get_args(setting.kind) or (setting.kind,)
    if meta["choices"]:
        return [next((choice for choice in meta["choices"] if choice != value), None)]  # None: an optional one's
    if bool in kinds:
        return [not value]
    if int in kinds or float in kinds:
        kind = int if int in kinds else float
        low, high = meta["low"] if meta["low"] is not None else 0, meta["high"]
        found = [kind(value or 0) + 1, kind(low), *([kind(high)] if high is not None else [])]
        return list(dict.fromkeys(v for v in found if v != value and v >= low and (high is None or v <= high)))
    return ["elsewhere" if value != "elsewhere" else "other"]


def moved(config: Config, key: str, value: typing.Any) -> Config:
    """A copy of the configuration with the setting at `value`."""
    changed = copy.deepcopy(config)
    *section, name = key.split(".")
    setattr(getattr(changed, section[0]) if section else changed, name, value)
    return changed


def first_move(config: Config, key: str) -> Config:
    """The configuration with the setting at its first other value."""
    return moved(config, key, other_values(key, value_of(config, key))[0])


VOLATILE = {"run_id", "model_id", "tracking_uri", "mlflow_ui"}  # summary keys that name the run, not its result


def result_of(out: Path, code: int, summary: Path) -> dict:
    """What a command gave: its exit code; its summary, without timings and run ids, numbers to 12 places;
    every Delta table's rows (benchmarks.compare_outputs's canonical order, run ids left out); the other files
    it wrote (plots), by content; and the MLflow experiments and registered models with their aliases."""

    def kept(value):
        if isinstance(value, dict):
            return {k: kept(v) for k, v in value.items() if k not in VOLATILE and "seconds" not in k}
        if isinstance(value, float):
            return round(value, 12)  # a figure's mean summed in another order differs in its last bit
        return [kept(v) for v in value] if isinstance(value, list) else value

    found = {"code": code, "summary": kept(json.loads(summary.read_text())) if summary.exists() else None}
    found["tables"] = {name: canonical_rows(path) for name, path in delta_tables(out).items()}
    tables = [path for path in out.rglob("_delta_log")]
    found["files"] = {
        str(path.relative_to(out)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(out.rglob("*"))
        if path.is_file()
        and path.parts[len(out.parts)] not in ("mlflow.db", "mlartifacts", "checkpoints", ".film2vec.lock")
        and not any(table.parent in path.parents for table in tables)
    }
    if (out / "mlflow.db").exists():
        client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
        found["experiments"] = sorted(experiment.name for experiment in client.search_experiments())
        found["models"] = {model.name: dict(model.aliases) for model in client.search_registered_models()}
    return found


def difference(first: dict, second: dict) -> str | None:
    """Which part of two results differs (a table's name, a part of result_of), or None."""
    for name in sorted(first["tables"].keys() | second["tables"].keys()):
        if name not in first["tables"] or name not in second["tables"]:
            return f"table {name}"
        if not first["tables"][name].equals(second["tables"][name]):
            return f"table {name}"
    return next((where(part, first[part], second.get(part)) for part in first if first[part] != second.get(part)), None)


def where(path: str, first, second) -> str:
    """The path of the first value two nested dicts differ at."""
    if isinstance(first, dict) and isinstance(second, dict):
        return next(
            (
                where(f"{path}.{key}", first.get(key), second.get(key))
                for key in first.keys() | second.keys()
                if first.get(key) != second.get(key)
            ),
            path,
        )
    return f"{path} ({first!r:.80} against {second!r:.80})"


def copy_folder(source: Path, target: Path) -> None:
    """`target` made a copy of `source`."""
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)


def test_every_command_uses_each_setting_it_accepts_or_refuses_it(spark, tmp_path, consulted, monkeypatch):
    """Each command reads every setting it accepts, and each setting it reads changes its result, or the
    command refuses it by flag. A setting's effect is checked at the first command of the walk that reads it,
    as the commands that run several stages (run, uses, refresh, evaluate) call the same stage functions
    with the same configuration."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)  # a path setting moved to a relative value lands here
    monkeypatch.setenv("MLFLOW_SQLALCHEMYSTORE_POOLCLASS", "NullPool")  # a restored mlflow.db is read afresh
    out, before, after, summary = (tmp_path / name for name in ("out", "before", "after", "summary.json"))
    candidates = tmp_path / "candidates.csv"
    candidates.write_text("asset_id\n" + "\n".join(str(asset) for asset in range(1, 31)) + "\n")
    problems, profile, effective = [], cli.load_profile("local"), set()
    given_config = cli.config_from
    out.mkdir()  # with its MLflow store made: a restored folder then always holds one that MLflow set up
    MlflowClient(f"sqlite:///{out / 'mlflow.db'}").search_experiments()

    def run(argv: list[str], key: str | None = None, value: typing.Any = None) -> dict:
        summary.unlink(missing_ok=True)
        if key:
            monkeypatch.setattr(cli, "config_from", lambda *given: moved(given_config(*given), key, value))
        code = cli.main([*argv, "--summary", str(summary)])
        monkeypatch.setattr(cli, "config_from", given_config)
        return result_of(out, code, summary)

    for command, arguments in WALK:
        argv = [command, *[str(candidates) if word == "CANDIDATES" else word for word in arguments]]
        argv += ["--out", str(out)]
        shown = " ".join(argv[:1] + arguments)
        copy_folder(out, before)
        consulted.clear()
        result = run(argv)
        assert result["code"] == 0, argv
        seen = set(consulted)  # what the command read (the checks below read settings too)
        copy_folder(out, after)
        given = cli.config_from(cli.parser(profile).parse_args(argv), profile)
        reads = cli.COMMANDS[command].reads
        checked = {
            key
            for key in reads
            if not (
                cli.SETTINGS[key].meta["speed_only"]
                or key.startswith("synthetic.")
                or ("*", key) in DATA
                or (command, key) in DATA
            )
        }
        for key in sorted(checked - seen):
            try:
                preflight.check(first_move(given, key), reads, command=command, base=profile)
            except ConfigError as refusal:
                assert cli.SETTINGS[key].flag in str(refusal)
                continue
            problems.append(f"{shown}: {key} accepted, never consulted, not refused")
        for key in sorted(reads & seen):
            if any(
                refusal.startswith(cli.SETTINGS[key].flag + " ")
                for refusal in idle_settings(first_move(given, key), profile, command, reads)
            ):
                problems.append(f"{shown}: {key} consulted, yet refused as idle")
        to_move = sorted((checked & seen) - effective)
        if to_move:
            copy_folder(before, out)
            again = difference(run(argv), result)
            assert not again, f"{shown}: two runs differ in their {again}; the result cannot tell settings apart"
        for key in to_move:
            for value in other_values(key, value_of(given, key)):
                copy_folder(before, out)
                if difference(run(argv, key, value), result):
                    effective.add(key)
                    break
            else:
                problems.append(f"{shown}: {key} consulted, changes nothing, not refused")
        copy_folder(after, out)
    assert not problems, "\n".join(problems)
    history = DeltaTable(str(out / "synthetic" / "assets")).history()
    drawn = [json.loads(commit["userMetadata"])["synthetic"]["views_per_user"] for commit in history]
    assert drawn == [30.0, 12.0, 30.0]  # each `run` drew the catalogue again for its own settings, newest first


@pytest.mark.parametrize("name", [spec.name for spec in dataclasses.fields(SyntheticConfig)])
def test_every_synthetic_setting_changes_the_catalogue(name):
    """The generator's settings are read in its Spark tasks; each changes the events (or metadata) drawn."""
    tiny = SyntheticConfig(users=150, catalogue_size=60, genres=4)
    plan = plan_catalogue(tiny, 0)
    moved = dataclasses.replace(tiny, **{name: other_values(f"synthetic.{name}", getattr(tiny, name))[0]})
    other = plan_catalogue(moved, 0)
    assert not (
        plan.events_chunk(0).equals(other.events_chunk(0)) and plan.assets_table().equals(other.assets_table())
    ), name
