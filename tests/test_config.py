"""Profiles and flags: every bad value stops with the file, the key and what is allowed."""

from __future__ import annotations

import pytest

from film2vec.cli import config_from, parser
from film2vec.config import CONF_DIR, ConfigError, load_profile


@pytest.mark.parametrize("profile", sorted(p.stem for p in CONF_DIR.glob("*.yaml")))
def test_shipped_profiles_load(profile):
    assert load_profile(profile).train.dim >= 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("train:\n  dimm: 3\n", "unknown key 'train.dimm'"),
        ("train:\n  dim: many\n", "'train.dim' is 'many'; allowed: int >= 1 <= 4096"),
        ("train:\n  dim: 0\n", "'train.dim' is 0; allowed: int >= 1"),
        ("train:\n  device: tpu\n", "allowed: one of auto, cpu, cuda"),
        ("trainer:\n  dim: 3\n", "unknown key 'trainer'"),
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


def test_flags_override_the_profile_and_are_validated():
    config = config_from(parser().parse_args(["train", "--dim", "32", "--learning-rate", "0.1", "--events", "x.csv"]))
    assert (config.train.dim, config.train.learning_rate, config.data.events) == (32, 0.1, "x.csv")
    with pytest.raises(ConfigError, match="flag --negatives: 'seasons.negatives' is -1"):
        config_from(parser().parse_args(["sample", "--negatives", "-1"]))
    with pytest.raises(ConfigError, match="profile 'nowhere' not found"):
        load_profile("nowhere")
