"""How fast `film2vec --help` and every `film2vec COMMAND --help` answer, and how many flags each command shows.

    python -m benchmarks.bench_cli_help [--repeats 3]

Each help is a whole process (`python -m film2vec.cli ... --help` from this checkout), run `--repeats` times;
the median and each time are printed, with the flags of the command's help (the settings it reads, plus
--help, --profile, --set, --log-level, --json, --summary, --fail-on-floors where it has them). The issue's
bar is 2 s a help.
"""

from __future__ import annotations

import argparse
import statistics

from benchmarks.bench_similar import timed_runs
from film2vec.cli import parser


def shown_flags(command: argparse.ArgumentParser) -> tuple[int, int]:
    """(flags, of which settings) a command's help lists, hidden ones (argparse.SUPPRESS) left out; a setting's
    flag keeps its profile key, `section.name` or `seed`, as its destination."""
    shown = [action for action in command._actions if action.option_strings and action.help != argparse.SUPPRESS]
    return len(shown), sum(1 for action in shown if "." in action.dest or action.dest == "seed")


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--repeats", type=int, default=3)
    repeats = options.parse_args().repeats
    (commands,) = [action for action in parser()._actions if isinstance(action, argparse._SubParsersAction)]
    every = timed_runs(["--help"], repeats)
    print(
        f"{'film2vec --help':<32} median {statistics.median(every):5.2f} s   each "
        + " ".join(f"{s:.2f}" for s in every)
    )
    flags, settings = {}, {}
    for name, command in commands.choices.items():
        seconds = timed_runs([name, "--help"], repeats)
        flags[name], settings[name] = shown_flags(command)
        each = " ".join(f"{s:.2f}" for s in seconds)
        print(f"{'film2vec ' + name + ' --help':<32} median {statistics.median(seconds):5.2f} s   each {each}", end="")
        print(f"   {flags[name]:3d} flags, {settings[name]:3d} of them settings")
    for what, counts in (("flags", flags), ("settings", settings)):
        print(
            f"{what} per command: min {min(counts.values())}, median {statistics.median(counts.values()):g}, ", end=""
        )
        print(f"max {max(counts.values())}, total {sum(counts.values())} over {len(counts)} commands")


if __name__ == "__main__":
    main()
