"""Profiles and flags: every bad value stops with the file, the key and what is allowed."""

from __future__ import annotations

import pytest

from film2vec.cli import config_from, main, parser
from film2vec.config import CONF_DIR, Config, ConfigError, load_profile
from film2vec.errors import ExitCode


@pytest.mark.parametrize("profile", sorted(p.stem for p in CONF_DIR.glob("*.yaml")))
def test_shipped_profiles_load(profile):
    assert load_profile(profile).train.dim >= 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "train:\n  dimm: 3\n",
            "unknown key 'train.dimm' (did you mean 'dim'?); known keys: allow_season_mismatch, batch_size",
        ),
        ("train:\n  dim: many\n", "'train.dim' is 'many'; allowed: int >= 1 <= 4096"),
        ("train:\n  dim: 0\n", "'train.dim' is 0; allowed: int >= 1"),
        ("train:\n  device: tpu\n", "allowed: one of auto, cpu, cuda"),
        ("trainer:\n  dim: 3\n", "unknown key 'trainer' (did you mean 'train'?); known keys: apps, data"),
        ("train: 3\n", "section 'train' must be a mapping"),
        ("seasons:\n  negatives: true\n", "'seasons.negatives' is True"),
        ("train: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_profile_names_file_key_and_allowed(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="bad.yaml") as error:
        load_profile(str(path))
    assert message in str(error.value)


def test_flags_override_the_profile_and_are_validated(capsys):
    config = config_from(parser().parse_args(["train", "--dim", "32", "--learning-rate", "0.1", "--out", "x"]))
    assert (config.train.dim, config.train.learning_rate, config.data.out) == (32, 0.1, "x")
    assert main(["sample", "--negatives", "-1"]) == ExitCode.USAGE
    assert "argument --negatives: 'seasons.negatives' is -1; allowed: int >= 1 <= 1000" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="profile 'nowhere' not found"):
        load_profile("nowhere")


def test_databricks_profile_points_at_the_workspace():
    config = load_profile("databricks")
    assert config.data.out.startswith("/Volumes/")  # a volume is mounted as files: delta-rs and SQLite-free MLflow
    assert config.tracking.experiment.startswith("/")  # workspace experiments are absolute paths
    assert config.tracking.model_name.count(".") == 2  # Unity Catalog: catalog.schema.model


def test_a_bad_profile_stops_the_command_with_the_file_and_key(tmp_path, capsys):
    path = tmp_path / "mine.yaml"
    path.write_text("seasons:\n  seasons: -1\n")
    assert main(["sample", "--profile", str(path)]) == 2
    assert f"film2vec sample: {path}: 'seasons.seasons' is -1; allowed: int >= 0 <= 10000" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("change", "command", "refusal"),
    [
        ({"data.catalog": "main"}, None, "--catalog needs --schema"),
        ({}, "refresh", "--new-events PATH or --since TIME"),
        ({"data.since": "2024-01-01", "pairs.max_user_views": 500}, "pairs", "--max-user-views: new views"),
        ({"data.new_events": "/new", "pairs.min_co_views": 2.0, "seasons.walk": "coview"}, None, "--min-co-views: new"),
        ({"train.lr_schedule": "linear"}, None, "--lr-schedule linear ends"),
        ({"seasons.min_seasons": 5, "seasons.max_seasons": 4}, None, "the floor is above the ceiling"),
        ({"train.processes": 2, "train.step_kernel": "native"}, None, "--step-kernel native cannot hold"),
    ],
)
def test_settings_that_contradict_each_other_are_refused_by_flag(change, command, refusal):
    config = Config()
    if command != "refresh":
        config.check(command)  # the defaults hold together
    for key, value in change.items():
        section, name = key.split(".")
        setattr(getattr(config, section), name, value)
    with pytest.raises(ConfigError, match=refusal):
        config.check(command)
    if command != "refresh":
        config.check(command, reads=frozenset({"data.out"}))  # a command that reads none of them is not refused


def test_a_rule_between_settings_holds_only_where_they_act():
    config = Config()
    config.data.since, config.pairs.max_neighbours = "2024-01-01", 5
    config.check("run")  # the bipartite walk reads no pair counts: the cap is idle there (preflight says so)
    with pytest.raises(ConfigError, match="--max-neighbours: new views"):
        config.check("pairs")
