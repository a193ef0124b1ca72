"""The `film2vec` command: parse, build the config, call one pipeline stage, say what it wrote.

Every config setting is a flag (`--dim 32`, `--events PATH`, `--out DIR`), applied over the chosen
profile (`--profile local|cluster|databricks|PATH.yaml`).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from typing import NamedTuple

import yaml

from film2vec.config import ConfigError, apply, field_specs, load_profile
from film2vec.errors import ConcurrentWriteError, FloorsNotCleared, InputError


class Command(NamedTuple):
    """A subcommand: its help, the function that runs it ("module:function", imported only when it runs, so
    that `--help` and Spark-less commands start in a second) and whether that function takes a Spark session."""

    help: str
    target: str
    spark: bool = True

    def function(self) -> Callable[..., dict]:
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)


COMMANDS = {
    "generate": Command(
        "write the synthetic catalogue (events and metadata) under --out", "film2vec.pipeline:generate"
    ),
    "pairs": Command("validate events, then count co-views into DIR/pairs", "film2vec.pipeline:count_pairs"),
    "sample": Command("draw the seasons of samples into DIR/seasons", "film2vec.pipeline:sample"),
    "train": Command(
        "train vectors, log to MLflow, write DIR/embeddings, register the model", "film2vec.pipeline:train_vectors"
    ),
    "run": Command("the whole pipeline; with no --events, on the synthetic catalogue", "film2vec.pipeline:run"),
    "refresh": Command(
        "merge new views (--new-events PATH or --since TIME) into the tables, warm-start training from the "
        "serving model, move the alias when the figures clear the floors",
        "film2vec.pipeline:refresh",
    ),
    "evaluate": Command(
        "split the events per user (last 5 views held out), train on the rest (or score --embeddings), "
        "print the figures as JSON on the last line",
        "film2vec.pipeline:evaluate",
    ),
    "tastes": Command("write each user's taste vector into DIR/user_vectors", "film2vec.uses:tastes"),
    "recommend": Command("rank --candidates for every user into DIR/recommendations", "film2vec.uses:recommend"),
    "audit": Command("vote each asset's labels from its neighbours into DIR/audit", "film2vec.uses:audit"),
    "clusters": Command("k-means on the vectors into DIR/clusters and DIR/asset_clusters", "film2vec.uses:clusters"),
    "similar": Command(
        "print an asset's nearest neighbours from DIR/neighbours, without Spark: film2vec similar 'ASSET ID OR TITLE'",
        "film2vec.apps.similar:similar",
        spark=False,
    ),
    "map": Command(
        "draw the 2-D map (PNG, HTML) and the loss curve into DIR/plots and the MLflow run", "film2vec.uses:draw_map"
    ),
    "uses": Command("tastes, recommend, audit, clusters and map in turn", "film2vec.uses:uses"),
    "validate": Command(
        "check the newest registered version against the alias floors (with --evaluation-model's held-out "
        "figures); exit 3 when it fails",
        "film2vec.tracking:validate",
        spark=False,
    ),
    "promote": Command(
        "move the alias to the newest registered version once `validate` passed it; exit 3 otherwise",
        "film2vec.tracking:promote",
        spark=False,
    ),
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def parser() -> argparse.ArgumentParser:
    """The argument parser: one subcommand per stage, every setting a flag of each."""
    root = argparse.ArgumentParser(prog="film2vec", description="Vectors of catalogue assets from views.")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command, spec in COMMANDS.items():
        sub = commands.add_parser(command, help=spec.help, description=spec.help)
        sub.add_argument("--profile", default="local", help="config profile in conf/ or a YAML file (default: local)")
        for section, setting, _kind in field_specs():
            key = f"{section}.{setting.name}" if section else setting.name
            sub.add_argument(
                _flag(setting.name),
                dest=key,
                default=None,
                metavar="VALUE",
                help=f"{setting.metadata['help']} (default: {setting.default})",
            )
        if command == "similar":
            sub.add_argument(
                "apps.similar_to", nargs="?", default=argparse.SUPPRESS, metavar="ASSET", help="asset id or title"
            )
    return root


def config_from(arguments: argparse.Namespace):
    """The profile with every given flag applied and validated."""
    config = load_profile(arguments.profile)
    for key, text in vars(arguments).items():
        if text is None or key in ("command", "profile"):
            continue
        section, _, name = key.rpartition(".")
        value = yaml.safe_load(text) if text.strip() else text
        if isinstance(value, (dict, list)) or value is None and text.strip().lower() not in ("null", "none", "~"):
            value = text
        try:
            apply(config, {section: {name: value}} if section else {name: value}, f"flag {_flag(name)}")
        except ConfigError as error:
            # a text setting given digits (an asset id, an experiment called 2024) is meant as text
            try:
                apply(config, {section: {name: text}} if section else {name: text}, f"flag {_flag(name)}")
            except ConfigError:
                raise error from None
    return config


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parser().parse_args(argv)
    command = COMMANDS[arguments.command]
    try:
        config = config_from(arguments)
        if command.spark:
            from film2vec.spark import get_spark
            from film2vec.tables import output_schema, uses_metastore

            output_schema(config)  # a schema name that is not one stops here, before Spark starts
            summary = command.function()(get_spark(config.spark, metastore=uses_metastore(config)), config)
        else:
            summary = command.function()(config)
    except (ConfigError, InputError, ConcurrentWriteError) as error:
        print(f"film2vec {arguments.command}: {error}", file=sys.stderr)
        return 2
    except FloorsNotCleared as error:
        print(f"film2vec {arguments.command}: {error}", file=sys.stderr)
        return 3
    print(json.dumps(summary, indent=2, default=str))
    if "figures" in summary:
        print(json.dumps(summary["figures"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
