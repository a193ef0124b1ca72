"""Every option does what it says: each command, run on a tiny catalogue, consults every setting it accepts
that can act in the configuration given, and refuses a value of its own for any other, by flag, before Spark
starts (config.CONDITIONAL_SETTINGS, checked by film2vec.preflight).

A setting counts as consulted when film2vec's code reads it while the command runs; the reads that build the
configuration, check it, or copy it whole (MLflow's parameters, fingerprints) do not count. Speed-only
settings (config.setting(speed_only=True)) are left out, as are the settings the data decides about (DATA
below) and the synthetic generator's, which its Spark tasks read (test_every_synthetic_setting_changes_the_
catalogue covers them).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import sys
import typing

import pytest
from deltalake import DeltaTable

from film2vec import cli, preflight
from film2vec.config import SECTIONS, Config, ConfigError, SyntheticConfig, idle_settings
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
    ("run", [*TINY, "--set", "synthetic.views_per_user=12", "--seasons", "0", "--max-seasons", "2"]),
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
    ("*", "data.metadata_asset_col"): "the metadata names its asset column apart from --asset-col",
    ("*", "apps.half_life_days"): "the views carry times (the recency weighting by days)",
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


def another_value(key: str, value: typing.Any) -> typing.Any:
    """A valid value of the setting other than `value`."""
    setting = cli.SETTINGS[key]
    meta, kinds = setting.meta, typing.get_args(setting.kind) or (setting.kind,)
    if meta["choices"]:
        return next((choice for choice in meta["choices"] if choice != value), None)  # None: an optional one's
    if bool in kinds:
        return not value
    if int in kinds or float in kinds:
        kind = int if int in kinds else float
        low, high = meta["low"] if meta["low"] is not None else 0, meta["high"]
        moved = kind(value or 0) + 1 if (high is None or (value or 0) + 1 <= high) else kind(low)
        return max(moved, kind(low))
    return "elsewhere" if value != "elsewhere" else "other"


def moved(config: Config, key: str) -> Config:
    """A copy of the configuration with the setting at another valid value."""
    changed = copy.deepcopy(config)
    *section, name = key.split(".")
    owner = getattr(changed, section[0]) if section else changed
    setattr(owner, name, another_value(key, getattr(owner, name)))
    return changed


def test_every_command_consults_each_setting_it_accepts_or_refuses_it(spark, tmp_path, consulted, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "out"
    candidates = tmp_path / "candidates.csv"
    candidates.write_text("asset_id\n" + "\n".join(str(asset) for asset in range(1, 31)) + "\n")
    problems, profile = [], cli.load_profile("local")
    for command, arguments in WALK:
        argv = [command, *[str(candidates) if word == "CANDIDATES" else word for word in arguments]]
        argv += ["--out", str(out)]
        consulted.clear()
        assert cli.main(argv) == 0, argv
        seen = set(consulted)  # what the command read (the checks below read settings too)
        given = cli.config_from(cli.parser(profile).parse_args(argv), profile)
        reads = cli.COMMANDS[command].reads
        for key in sorted(reads - seen):
            if (
                cli.SETTINGS[key].meta["speed_only"]
                or key.startswith("synthetic.")
                or ("*", key) in DATA
                or (command, key) in DATA
            ):
                continue
            try:
                preflight.check(moved(given, key), reads, command=command, base=profile)
            except ConfigError as refusal:
                assert cli.SETTINGS[key].flag in str(refusal)
                continue
            problems.append(f"{' '.join(argv[:1] + arguments)}: {key} accepted, never consulted, not refused")
        for key in sorted(reads & seen):
            if any(
                refusal.startswith(cli.SETTINGS[key].flag + " ")
                for refusal in idle_settings(moved(given, key), profile, command, reads)
            ):
                problems.append(f"{' '.join(argv[:1] + arguments)}: {key} consulted, yet refused as idle")
    assert not problems, "\n".join(problems)
    history = DeltaTable(str(out / "synthetic" / "assets")).history()
    drawn = [json.loads(commit["userMetadata"])["synthetic"]["views_per_user"] for commit in history]
    assert drawn == [30.0, 12.0, 30.0]  # each `run` drew the catalogue again for its own settings, newest first


@pytest.mark.parametrize("name", [spec.name for spec in dataclasses.fields(SyntheticConfig)])
def test_every_synthetic_setting_changes_the_catalogue(name):
    """The generator's settings are read in its Spark tasks; each changes the events (or metadata) drawn."""
    tiny = SyntheticConfig(users=150, catalogue_size=60, genres=4)
    plan = plan_catalogue(tiny, 0)
    moved = dataclasses.replace(tiny, **{name: another_value(f"synthetic.{name}", getattr(tiny, name))})
    other = plan_catalogue(moved, 0)
    assert not (
        plan.events_chunk(0).equals(other.events_chunk(0)) and plan.assets_table().equals(other.assets_table())
    ), name
