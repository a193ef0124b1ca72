"""The `film2vec` command: parse, build the config, call one pipeline stage, say what it wrote.

Each command shows and accepts the settings it reads (`Command.reads`), typed and grouped by config section,
with the profile's values as the defaults in its help (`--profile local|cluster|databricks|PATH.yaml`);
`--set SECTION.KEY=VALUE` sets one by its key in the profile. A setting's flag given to a command that does
not read it stops with the commands that do. `film2vec config` prints the effective configuration.

Progress and diagnostics go to stderr through `logging` (`--log-level`). stdout carries the result alone: a
few lines (where each output went, the figures, the model; the neighbours of `similar`), or with `--json` the
whole summary as one JSON document; `--summary FILE` writes that JSON to a file as well. Only the module of
the command that runs is imported, so `--help` answers without Spark, torch or MLflow.

Each kind of failure has its exit code (film2vec.errors.ExitCode; EXIT_CODES below is the table that
`film2vec --help` prints): 2 usage or configuration, 3 bad input, 4 a concurrent write (retryable), 5 figures
below the alias floors (validate, promote; training commands with --fail-on-floors).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import difflib
import functools
import importlib
import json
import logging
import os
import sys
import typing
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from film2vec.config import (
    Config,
    ConfigError,
    apply,
    check_value,
    field_specs,
    flag_of,
    help_text,
    load_profile,
    parsed_text,
    type_options,
)
from film2vec.errors import ConcurrentWriteError, ExitCode, FloorsNotCleared, InputError
from film2vec.timing import Stopwatch

log = logging.getLogger("film2vec.cli")  # by name: run as `python -m film2vec.cli`, __name__ is __main__

EXIT_CODES = """exit codes:
  0  done
  1  an error film2vec did not foresee (a bug, or the machine): the traceback is on stderr
  2  usage or configuration: a flag, --set or profile value that is not allowed, or a flag the command
     does not read
  3  bad input: events, metadata or a table that is missing, unreadable or without a usable row
  4  another job committed to the same Delta table at the same time; the table holds the other commit,
     whole: rerun (retryable)
  5  the figures did not clear the alias floors: `validate` and `promote` always; `train`, `run`,
     `refresh` and `evaluate` with --fail-on-floors"""
EXIT_OF = (  # the errors film2vec reports to people, by the code each exits with
    (ConfigError, ExitCode.USAGE),
    (InputError, ExitCode.BAD_INPUT),
    (ConcurrentWriteError, ExitCode.CONFLICT),
    (FloorsNotCleared, ExitCode.FLOORS),
)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
PACKAGE = Path(__file__).resolve().parent


class Setting(NamedTuple):
    """A config setting as a flag: its section ('' at the top level), name, type and field metadata."""

    section: str
    name: str
    kind: Any
    meta: typing.Mapping[str, Any]  # help, low, high, choices

    @property
    def key(self) -> str:
        """Its key in a profile and in --set: section.name, or name at the top level."""
        return f"{self.section}.{self.name}" if self.section else self.name

    @property
    def flag(self) -> str:
        return flag_of(self.name)


SETTINGS = {s.key: s for s in (Setting(section, f.name, kind, f.metadata) for section, f, kind in field_specs())}


def every(section: str, *but: str) -> frozenset[str]:
    """The keys of a section's settings, but the named ones."""
    return frozenset(key for key, s in SETTINGS.items() if s.section == section and s.name not in but)


# What each command reads, by the code it runs (the stage.py of ingest/, pairs/, seasons/, train/, evaluation/,
# apps/; pipeline.py, tracking.py, apps/similar.py)
SESSION = frozenset({"spark.master", "spark.shuffle_partitions", "spark.driver_memory"})  # a session film2vec starts
TABLES = frozenset({"data.out", "data.catalog", "data.schema", "spark.metastore", "data.lock_wait"})  # path or name
EVENTS = {  # read and validated by events.ingest; without --events, the synthetic catalogue drawn on first use
    "seed",
    *("data.events", "data.metadata", "data.id_type", "data.user_col", "data.asset_col", "data.time_col"),
    *("data.metadata_asset_col", "data.title_col", "data.genres_col", "data.null_tokens", "data.strict_metadata"),
} | every("synthetic")
NEW_VIEWS = frozenset({"data.new_events", "data.since"})  # a batch merged into the tables (count_new_pairs)
NEGATIVES = frozenset({"seasons.negatives", "seasons.negative_distribution", "seasons.unigram_exponent"})
# the sampler leaves each sample's negatives' slots in its stream; the trainer draws them (train/stream.py)
SAMPLING = {"seed"} | every(
    "seasons", "pipelined_seasons", "negative_distribution", "unigram_exponent", "gain_standard_errors"
)
HELD_OUT = frozenset(  # --seasons 0
    {"seasons.min_seasons", "seasons.max_seasons", "seasons.gain_standard_errors", "seasons.validation_users"}
)
GATE = ("evaluation_model", "version", "evaluation_version", "force")  # tracking settings only validate, promote read
# the settings of training on the seasons drawn beside it (run, refresh, evaluate); `train` reads DIR/seasons
TRAINING = (
    {"seed", "seasons.seasons"}
    | HELD_OUT
    | NEGATIVES
    | every("train", "allow_season_mismatch")
    | every("tracking", *GATE)
)
USES_RUN = SESSION | TABLES | {"apps.run_id"}  # the MLflow run uses log to (the served vectors' unless named)
LABELS = frozenset({"apps.labels", "apps.label_column"})  # uses.load_catalogue's labels

PAIRS = SESSION | TABLES | EVENTS | NEW_VIEWS | every("pairs")
SAMPLE = SESSION | TABLES | SAMPLING
TRAIN = SESSION | TABLES | TRAINING | {"train.allow_season_mismatch"}
RUN = PAIRS | SAMPLE | TRAINING | {"seasons.pipelined_seasons"}
RECENCY = frozenset({"apps.half_life_views", "apps.half_life_days"})  # film2vec.recency's clocks
TASTES = USES_RUN | RECENCY
RECOMMEND = USES_RUN | {"apps.candidates", "apps.popularity_prior", "apps.recommend_n"}
AUDIT = USES_RUN | LABELS | {"seed", "apps.audit_k", "apps.audit_confidence", "apps.audit_holdout"}
CLUSTERS = USES_RUN | LABELS | {"seed", "apps.n_clusters", "apps.central_assets"}
MAP = USES_RUN | LABELS | {"seed", "apps.map_assets"}


class Command(NamedTuple):
    """A subcommand: its help, the function that runs it ("module:function", imported only when it runs, so
    that `--help` and Spark-less commands start in a second), the settings that function reads, whether it
    takes a Spark session, and whether it trains and registers a version (--fail-on-floors)."""

    help: str
    target: str
    reads: frozenset[str]
    spark: bool = True
    trains: bool = False

    def function(self) -> Callable[..., dict]:
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)


COMMANDS = {
    "generate": Command(
        "write the synthetic catalogue (events and metadata) under --out",
        "film2vec.ingest.stage:generate",
        SESSION | {"seed", "data.out"} | every("synthetic"),
    ),
    "pairs": Command("validate events, then count co-views into DIR/pairs", "film2vec.pairs.stage:count_pairs", PAIRS),
    "sample": Command("draw the seasons of samples into DIR/seasons", "film2vec.seasons.stage:sample", SAMPLE),
    "train": Command(
        "train vectors, log to MLflow, write DIR/embeddings, register the model",
        "film2vec.train.stage:train_vectors",
        TRAIN,
        trains=True,
    ),
    "run": Command(
        "the whole pipeline; with no --events, on the synthetic catalogue", "film2vec.pipeline:run", RUN, trains=True
    ),
    "refresh": Command(
        "merge new views (--new-events PATH or --since TIME) into the tables, warm-start training from the "
        "serving model, move the alias when the figures clear the floors",
        "film2vec.pipeline:refresh",
        (RUN - {"seasons.seasons", "seasons.pipelined_seasons"} - HELD_OUT) | every("refresh"),
        trains=True,
    ),
    "evaluate": Command(
        "split the events per user (last 5 views held out), train on the rest (or score --embeddings), "
        "print the figures",
        "film2vec.evaluation.stage:evaluate",
        (PAIRS - NEW_VIEWS) | SAMPLE | TRAINING | every("evaluate") | RECENCY | {"apps.popularity_prior"},
        trains=True,
    ),
    "tastes": Command("write each user's taste vector into DIR/user_vectors", "film2vec.apps.stage:tastes", TASTES),
    "recommend": Command(
        "rank --candidates for every user into DIR/recommendations", "film2vec.apps.stage:recommend", RECOMMEND
    ),
    "audit": Command("vote each asset's labels from its neighbours into DIR/audit", "film2vec.apps.stage:audit", AUDIT),
    "clusters": Command(
        "k-means on the vectors into DIR/clusters and DIR/asset_clusters", "film2vec.apps.stage:clusters", CLUSTERS
    ),
    "similar": Command(
        "print an asset's nearest neighbours from DIR/neighbours, without Spark: film2vec similar 'ASSET ID OR TITLE'",
        "film2vec.apps.similar:similar",
        frozenset({"data.out", "data.schema", "apps.similar_to", "tracking.top_k", "tracking.model_name"})
        | {"tracking.alias", "train.min_views"},
        spark=False,
    ),
    "map": Command(
        "draw the 2-D map (PNG, HTML) and the loss curve into DIR/plots and the MLflow run",
        "film2vec.apps.stage:draw_map",
        MAP,
    ),
    "uses": Command(
        "tastes, recommend, audit, clusters and map in turn",
        "film2vec.apps.stage:uses",
        TASTES | RECOMMEND | AUDIT | CLUSTERS | MAP,
    ),
    "validate": Command(
        "check the version this job trained (--version) against the alias floors (with --evaluation-model's "
        "held-out figures); exit 5 when it fails",
        "film2vec.serving.gate:validate",
        frozenset({"data.out", "tracking.model_name", "tracking.version", "tracking.evaluation_model"})
        | {"tracking.evaluation_version", "tracking.alias_floor_recall", "tracking.alias_floor_genre_p"},
        spark=False,
    ),
    "promote": Command(
        "serve the version this job trained (--version) once `validate` passed it: its rows become DIR/embeddings "
        "and DIR/neighbours and the alias points at it; exit 5 otherwise",
        "film2vec.serving.gate:promote",
        SESSION | TABLES | {"tracking.model_name", "tracking.alias", "tracking.version", "tracking.force"},
    ),
    "config": Command(
        "print the effective configuration (the profile, --set and the flags) as YAML",
        "",
        frozenset(SETTINGS),
        spark=False,
    ),
}


def readers(key: str) -> list[str]:
    """The commands that read a setting (`config`, which prints them all, left out)."""
    return [name for name, command in COMMANDS.items() if key in command.reads and name != "config"]


def _not_read(what: str, key: str, command: str) -> str:
    return f"{what} is not read by {command}; it is read by: {', '.join(readers(key))}"


def typed(setting: Setting) -> Callable[[str], Any]:
    """The argparse type of a setting's flag: its text as the field's type, checked against its choices and
    range as a profile value is (`--dim many` stops with what --dim allows)."""

    def value(text: str) -> Any:
        try:
            return check_value(setting.section, setting.name, parsed_text(text, type_options(setting.kind)), "flag")
        except ConfigError as error:
            raise argparse.ArgumentTypeError(str(error).removeprefix("flag: ")) from None

    value.__name__ = setting.key
    return value


def assignment(command: str) -> Callable[[str], tuple[str, Any]]:
    """The argparse type of --set: SECTION.KEY=VALUE as (key, typed value), for a setting `command` reads."""

    def setting_value(text: str) -> tuple[str, Any]:
        key, equals, value = text.partition("=")
        key = key.strip()
        if not equals:
            raise argparse.ArgumentTypeError(f"{text!r} is not SECTION.KEY=VALUE (e.g. train.dim=32)")
        if key not in SETTINGS:
            guess = difflib.get_close_matches(key, SETTINGS, n=1)
            hint = f" (did you mean {guess[0]}?)" if guess else ""
            raise argparse.ArgumentTypeError(f"no setting {key!r}{hint}; `film2vec config` lists them all")
        if key not in COMMANDS[command].reads:
            raise argparse.ArgumentTypeError(_not_read(key, key, command))
        return key, typed(SETTINGS[key])(value)

    return setting_value


class NotRead(argparse.Action):
    """The flag of a setting the command does not read: a usage error that names the commands that read it."""

    def __init__(self, option_strings: list[str], dest: str, command: str = "", key: str = "", **_: Any) -> None:
        super().__init__(option_strings, dest, nargs="?", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        self.command, self.key = command, key

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        parser.error(_not_read(option_string, self.key, self.command))


class Version(argparse.Action):
    """--version: the installed distribution's version (the package's own when it is not installed)."""

    def __init__(self, option_strings: list[str], dest: str, **_: Any) -> None:
        super().__init__(
            option_strings, argparse.SUPPRESS, nargs=0, default=argparse.SUPPRESS, help="print the version"
        )

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("film2vec")
        except PackageNotFoundError:
            from film2vec import __version__ as found
        print(f"film2vec {found}")
        parser.exit()


def shown(value: Any) -> str:
    """A setting's value as a profile spells it."""
    if value is None:
        return "null"
    return str(value).lower() if isinstance(value, bool) else str(value)


def _metavar(setting: Setting) -> str:
    options = type_options(setting.kind)
    choices = [*(setting.meta.get("choices") or ())]
    if bool in options:
        choices = ["true", "false"]
    if choices:
        return "{" + ",".join([*map(str, choices), *(["null"] if type(None) in options else [])]) + "}"
    return {int: "INT", float: "NUMBER"}.get(options[0], "TEXT")


def parser(profile: Config | None = None) -> argparse.ArgumentParser:
    """The argument parser: one subcommand per stage with the settings it reads, their defaults in the help
    taken from `profile` (the built-in ones when None)."""
    defaults = profile or Config()
    layout = functools.partial(argparse.RawDescriptionHelpFormatter, max_help_position=32)
    root = argparse.ArgumentParser(
        prog="film2vec",
        description="Vectors of catalogue assets from views. `film2vec COMMAND --help` lists a command's settings.",
        epilog=EXIT_CODES,
        formatter_class=layout,
        allow_abbrev=False,
    )
    root.add_argument("--version", action=Version)
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands")
    for name, command in COMMANDS.items():
        sub = commands.add_parser(
            name,
            help=command.help,
            description=command.help,
            usage=f"film2vec {name} [options]" + (" [ASSET]" if name == "similar" else ""),
            epilog="exit codes: 0 done, 2 usage, 3 bad input, 4 concurrent write (retry), 5 floors not cleared; "
            "see film2vec --help",
            formatter_class=layout,
            allow_abbrev=False,
        )
        _common_options(sub, name, command)
        groups: dict[str, argparse._ArgumentGroup] = {}
        for key, setting in SETTINGS.items():
            if key not in command.reads:
                sub.add_argument(setting.flag, action=NotRead, command=name, key=key)
                continue
            group = sub
            if setting.section:
                group = groups.get(setting.section) or sub.add_argument_group(f"{setting.section} settings")
                groups[setting.section] = group
            value = getattr(getattr(defaults, setting.section), setting.name) if setting.section else defaults.seed
            group.add_argument(
                setting.flag,
                dest=key,
                default=argparse.SUPPRESS,
                type=typed(setting),
                metavar=_metavar(setting),
                help=f"{help_text(setting.meta)} (default: {shown(value)})".replace("%", "%%"),
            )
        if name == "similar":
            sub.add_argument(
                "apps.similar_to", nargs="?", default=argparse.SUPPRESS, metavar="ASSET", help="asset id or title"
            )
    return root


def _common_options(sub: argparse.ArgumentParser, name: str, command: Command) -> None:
    sub.add_argument(
        "--profile",
        default="local",
        metavar="NAME|PATH",
        help="config profile: local, cluster, databricks or a YAML file; the defaults below are its values "
        "(default: local)",
    )
    sub.add_argument(
        "--set",
        action="append",
        default=[],
        type=assignment(name),
        metavar="SECTION.KEY=VALUE",
        help="set a setting by its key in the profile, e.g. --set train.dim=32 (repeatable; before the flags)",
    )
    sub.add_argument(
        "--log-level", default="INFO", type=str.upper, choices=LOG_LEVELS, help="progress on stderr (default: INFO)"
    )
    if name == "config":
        sub.add_argument("--json", action="store_true", help="print the configuration as JSON instead of YAML")
        return
    sub.add_argument("--json", action="store_true", help="print the whole summary as JSON on stdout, and only that")
    sub.add_argument("--summary", metavar="FILE", help="also write the whole summary as JSON to FILE")
    if command.trains:
        sub.add_argument(
            "--fail-on-floors",
            action="store_true",
            help="exit 5 when the new version's figures do not clear the alias floors (--alias-floor-recall, "
            "--alias-floor-genre-p); the outputs are written all the same",
        )


def config_from(arguments: argparse.Namespace, profile: Config | None = None) -> Config:
    """The profile (`arguments.profile` unless given loaded) with the --set values, then the flags, applied
    and validated."""
    config = copy.deepcopy(profile) if profile is not None else load_profile(arguments.profile)
    given = [*getattr(arguments, "set", [])]
    given += [(key, value) for key, value in vars(arguments).items() if key in SETTINGS]
    for key, value in given:
        setting = SETTINGS[key]
        values = {setting.section: {setting.name: value}} if setting.section else {setting.name: value}
        apply(config, values, f"flag {setting.flag}")
    return config


def _profile_named(argv: Sequence[str]) -> str:
    """The --profile in argv (the last one, as argparse takes it), found before parsing so that the help can
    show its values."""
    named = "local"
    for position, word in enumerate(argv):
        if word == "--profile" and position + 1 < len(argv):
            named = argv[position + 1]
        elif word.startswith("--profile="):
            named = word.partition("=")[2]
    return named


class Lines(logging.Formatter):
    """film2vec's progress as bare lines; warnings and other libraries' records say what they are."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.name == "py.warnings" or record.name.startswith("film2vec") and record.levelno == logging.WARNING:
            text = f"warning: {text}"
        elif not record.name.startswith("film2vec"):
            text = f"{record.levelname.lower()}: {record.name}: {text}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """warnings.showwarning through logging: film2vec's own as their message, others with where they came from."""
    own = Path(filename).resolve().is_relative_to(PACKAGE)
    logging.getLogger("py.warnings").warning(
        "%s%s", message, "" if own else f" ({category.__name__}, {filename}:{lineno})"
    )


@contextlib.contextmanager
def logging_to_stderr(level: str) -> Iterator[logging.Handler]:
    """film2vec's loggers and Python's warnings to stderr at `level` while a command runs; then as they were."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(Lines())
    loggers = [logging.getLogger("film2vec"), logging.getLogger("py.warnings")]
    saved = [(logger, logger.level, logger.propagate) for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False
    shown_before, warnings.showwarning = warnings.showwarning, _show_warning
    try:
        yield handler
    finally:
        warnings.showwarning = shown_before
        for logger, was, propagate in saved:
            logger.removeHandler(handler)
            logger.setLevel(was)
            logger.propagate = propagate


ARTIFACT_BARS = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


# A command's main thread runs beside others (its imports, MLflow's store, the next season's draw, the
# trainer's prefetch), and takes the GIL back after every py4j reply and every C step. At Python's default
# 5 ms switch interval it waits that long each time the others are busy in Python (docs/benchmarks.md,
# "Figures behind constants").
SWITCH_INTERVAL_SECONDS = 0.0005


@contextlib.contextmanager
def switch_interval(seconds: float) -> Iterator[None]:
    """Python's thread switch interval set to `seconds` while a command runs; then as it was."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(seconds)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


@contextlib.contextmanager
def mlflow_quietly(handler: logging.Handler, level: str) -> Iterator[None]:
    """MLflow's notes (store set-up, input example checked, model registered, download bars) left out unless
    --log-level DEBUG; its warnings through film2vec's handler. Only once MLflow is imported."""
    if "mlflow" not in sys.modules:
        yield
        return
    from mlflow.utils import logging_utils

    logger = logging.getLogger("mlflow")
    saved = (logger.level, logging_utils.MLFLOW_LOGGING_STREAM.enabled, os.environ.get(ARTIFACT_BARS))
    logger.setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
    logger.addHandler(handler)
    logging_utils.MLFLOW_LOGGING_STREAM.enabled = False  # MLflow's own handler and its print-like notes
    os.environ.setdefault(ARTIFACT_BARS, "false")
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logging_utils.MLFLOW_LOGGING_STREAM.enabled = saved[1]
        if saved[2] is None:
            os.environ.pop(ARTIFACT_BARS, None)


def _run(name: str, command: Command, config: Config, base: Config, handler: logging.Handler, level: str) -> dict:
    """Call the command's function (with a Spark session when it takes one) and return its summary, once the
    checks that need no Spark have passed (film2vec.preflight)."""
    from film2vec import preflight

    preflight.check(config, command.reads, writes=name != "similar", command=name, base=base)
    if command.spark and "data.schema" in command.reads:
        from film2vec.tables import output_schema

        output_schema(config)  # a schema name that is not one stops here, before Spark starts
    if not command.spark:
        function = command.function()
        with mlflow_quietly(handler, level):
            return function(config)
    from film2vec.lock import writing
    from film2vec.spark import get_spark
    from film2vec.tables import uses_metastore

    with writing(config.data.out, name, config.data.lock_wait):
        # The command's imports (torch, MLflow: ~7 s) load in a thread while the JVM starts (~6 s); the session
        # itself is made on this thread, whose Spark calls then find it active.
        with ThreadPoolExecutor(1, thread_name_prefix="film2vec-imports") as pool:
            imported = pool.submit(command.function)
            watch = Stopwatch()
            spark = get_spark(config.spark, metastore=uses_metastore(config))
            log.info("Spark ready in %.1f s", watch.seconds)
            function = imported.result()
        with mlflow_quietly(handler, level):
            return function(spark, config)


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """While a command runs, whatever reaches the process's standard output (the JVM's own lines, such as
    Delta's "Deleted 0 files" from a vacuum, or a library's prints) goes to standard error instead, so that
    stdout carries the result alone (`--json`: one JSON document)."""
    sys.stdout.flush()
    try:
        kept = os.dup(1)
    except OSError:  # no standard output at all
        yield
        return
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(kept, 1)
        os.close(kept)


def entry_point() -> None:
    """The `film2vec` console script, and what a Databricks wheel task calls: main's exit code raised as
    SystemExit when it is not 0, because a wheel task calls this function and ignores what it returns."""
    code = main()
    if code:
        raise SystemExit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """`film2vec COMMAND [options]`; returns the exit code (ExitCode, documented in `film2vec --help`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        profile, problem = load_profile(_profile_named(argv)), None
    except ConfigError as error:  # the help shows the built-in defaults; a command stops below
        profile, problem = None, error
    try:
        arguments = parser(profile).parse_args(argv)
    except SystemExit as stop:  # --help, --version, or a usage error argparse has reported
        return stop.code if isinstance(stop.code, int) else ExitCode.USAGE
    name, command = arguments.command, COMMANDS[arguments.command]
    with logging_to_stderr(arguments.log_level) as handler:
        watch = Stopwatch()
        try:
            if problem:
                raise problem
            config = config_from(arguments, profile)
            if name == "config":
                values = dataclasses.asdict(config)
                print(
                    json.dumps(values, indent=2) if arguments.json else yaml.safe_dump(values, sort_keys=False), end=""
                )
                return ExitCode.OK
            with switch_interval(SWITCH_INTERVAL_SECONDS), stdout_to_stderr():
                summary = _run(name, command, config, profile, handler, arguments.log_level)
        except tuple(error for error, _ in EXIT_OF) as error:
            log.error("film2vec %s: %s", name, error)
            return next(code for kind, code in EXIT_OF if isinstance(error, kind))
        log.info("film2vec %s done in %.1f s", name, watch.seconds)
        whole = json.dumps(summary, indent=2, default=str)
        if arguments.summary:
            Path(arguments.summary).parent.mkdir(parents=True, exist_ok=True)
            Path(arguments.summary).write_text(whole + "\n")
            log.info("summary → %s", arguments.summary)
        print(whole if arguments.json else result(name, summary))
        floors = floor_verdict(summary)
        if getattr(arguments, "fail_on_floors", False) and floors and not floors["cleared"]:
            log.error("film2vec %s: the figures did not clear the alias floors: %s", name, floors["reason"])
            return ExitCode.FLOORS
    return ExitCode.OK


def floor_verdict(summary: dict) -> dict | None:
    """The training's check of its figures against the alias floors ({cleared, reason}), when it trained."""
    trained = summary.get("train", summary)
    return trained.get("alias", {}).get("floors") if isinstance(trained.get("alias"), dict) else None


# The result on stdout: where each output went, the figures, the model

OUTPUTS = (
    *("events", "metadata", "pairs", "seasons", "split", "embeddings", "neighbours", "user_vectors"),
    *("recommendations", "audit", "clusters", "asset_clusters", "plots", "served"),
)
NOT_OUTPUTS = ("ingest", "estimate", "settings", "figures_from", "baseline")  # inputs and settings, not outputs


def result(command: str, summary: dict) -> str:
    """A command's summary as a few lines for people: each output and where it went, the figures, the model and
    its alias, the MLflow runs; `similar` prints the neighbours. `--json` prints the whole summary instead."""
    if command == "similar":
        return neighbours_text(summary)
    lines: list[str] = []

    def add(label: str, text: str) -> None:
        line = f"{label:<12} {text}"
        if line not in lines:
            lines.append(line)

    def walk(node: dict) -> None:
        for key, value in node.items():
            if key in ("figures", "recommend_figures") and isinstance(value, dict):
                add(key.replace("_", " "), "   ".join(f"{name} {figure:.4f}" for name, figure in value.items()))
            elif key == "volume" and isinstance(value, dict):
                trained = f"{len(value['seasons'])} season(s), {value['samples']:,} samples"
                add("volume", f"{trained}: {value['stopped']}")
            elif key == "alias" and isinstance(value, dict):
                moved = "moved to it" if value["moved"] else "stays"
                add("alias", f"{value['name']} {moved}: {value['reason']}")
            elif isinstance(value, dict) and key not in NOT_OUTPUTS:
                walk(value)
            elif key in OUTPUTS and isinstance(value, (str, list)):
                add(key, value if isinstance(value, str) else ", ".join(map(str, value)))
            elif key == "model":
                add("model", str(value))
            elif key == "alias":  # promote: the alias moved to the model
                add("alias", f"{value} → {node['model']}")
            elif key == "passed":
                add("validation", f"{'passed' if value else 'failed'}: {node['reason']}")
            elif key == "mlflow_ui":
                add("MLflow", str(value))
            elif key == "nothing_new":
                add("nothing new", str(value))

    walk(summary)
    if "baseline" in summary:
        lines.append(side_by_side(summary))
    return "\n".join(lines)


def neighbours_text(found: dict) -> str:
    """`film2vec similar`'s answer: the asset found, then rank, cosine, title and id of each neighbour."""
    name = f"{found['title']} ({found['asset_id']})" if found.get("title") else str(found["asset_id"])
    lines = [
        name + (f"; also matched: {', '.join(map(str, found['also_matched']))}" if found.get("also_matched") else "")
    ]
    if found.get("no_vector"):
        lines.append(f"no vector: {found['no_vector']}")
    for neighbour in found["neighbours"]:
        title = f"{neighbour['title']} ({neighbour['asset_id']})" if neighbour.get("title") else neighbour["asset_id"]
        lines.append(f"{neighbour['rank']:>4}  {neighbour['score']:.4f}  {title}")
    return "\n".join(lines)


def side_by_side(summary: dict) -> str:
    """film2vec's and the baseline's figures and wall times as a small table for the terminal."""
    baseline = summary["baseline"]
    names = list(summary["figures"])
    scored = "--embeddings" if "embeddings" in summary else "film2vec"
    rows = [(scored, summary["figures"], summary.get("film2vec_seconds"))]
    rows.append((f"{scored} recommend()", summary["recommend_figures"], None))
    rows.append((f"{baseline['method']} item factors", baseline["figures"], baseline["seconds"]))
    rows.append((f"{baseline['method']} recommend()", baseline["recommend_figures"], None))
    lines = [f"{'':<25}" + "".join(f"{name:>15}" for name in [*names, "seconds"])]
    for label, figures, seconds in rows:
        cells = [f"{figures[name]:>15.4f}" if name in figures else f"{'':>15}" for name in names]
        lines.append(f"{label:<25}" + "".join(cells) + (f"{seconds:>15.1f}" if seconds is not None else ""))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
