"""The `film2vec` command: parse, build the config, call one pipeline stage, say what it wrote.

Every config setting is a flag (`--dim 32`, `--events PATH`, `--out DIR`), applied over the chosen
profile (`--profile local|cluster|databricks|PATH.yaml`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import yaml

from film2vec import pipeline, uses
from film2vec.config import ConfigError, apply, field_specs, load_profile
from film2vec.conflicts import ConcurrentWriteError
from film2vec.events import InputError

COMMANDS = {
    "generate": ("write the synthetic catalogue (events and metadata) under --out", pipeline.generate),
    "pairs": ("validate events, then count co-views into DIR/pairs", pipeline.count_pairs),
    "sample": ("draw the seasons of samples into DIR/seasons", pipeline.sample),
    "train": ("train vectors, log to MLflow, write DIR/embeddings, register the model", pipeline.train_vectors),
    "run": ("the whole pipeline; with no --events, on the synthetic catalogue", pipeline.run),
    "refresh": (
        "merge new views (--new-events PATH or --since TIME) into the tables, warm-start training from the "
        "serving model, move the alias when the figures clear the floors",
        pipeline.refresh,
    ),
    "evaluate": (
        "split the events per user (last 5 views held out), train on the rest (or score --embeddings), "
        "print the figures as JSON on the last line",
        pipeline.evaluate,
    ),
    "tastes": ("write each user's taste vector into DIR/user_vectors", uses.tastes),
    "recommend": ("rank --candidates for every user into DIR/recommendations", uses.recommend),
    "audit": ("vote each asset's labels from its neighbours into DIR/audit", uses.audit),
    "clusters": ("k-means on the vectors into DIR/clusters and DIR/asset_clusters", uses.clusters),
    "similar": ("print an asset's nearest neighbours: film2vec similar 'ASSET ID OR TITLE'", uses.similar),
    "map": ("draw the 2-D map (PNG, HTML) and the loss curve into DIR/plots and the MLflow run", uses.draw_map),
    "uses": ("tastes, recommend, audit, clusters and map in turn", uses.uses),
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def parser() -> argparse.ArgumentParser:
    """The argument parser: one subcommand per stage, every setting a flag of each."""
    root = argparse.ArgumentParser(prog="film2vec", description="Vectors of catalogue assets from views.")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command, (help_text, _) in COMMANDS.items():
        sub = commands.add_parser(command, help=help_text, description=help_text)
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
    try:
        config = config_from(arguments)
        from film2vec.spark import get_spark
        from film2vec.tables import output_schema, uses_metastore

        output_schema(config)  # a schema name that is not one stops here, before Spark starts
        spark = get_spark(config.spark, metastore=uses_metastore(config))
        summary = COMMANDS[arguments.command][1](spark, config)
    except (ConfigError, InputError, ConcurrentWriteError) as error:
        print(f"film2vec {arguments.command}: {error}", file=sys.stderr)
        return 2
    print(pipeline.describe(summary))
    if "figures" in summary:
        print(json.dumps(summary["figures"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
