"""The evaluation suite: film2vec against Spark ALS on datasets of different character over several seeds, so a
change is judged by its margins on all of them, not by one seed of one dataset.

    python -m benchmarks.suite --out DIR [--datasets movielens dense sparse recent synthetic synthetic-5m]
        [--seeds 0 1 2] [--json PATH] [--compare OLD.json] [-- FILM2VEC FLAGS...]

Every dataset (benchmarks/suite_datasets.py; built once under DIR/datasets, synthetic-5m only when named) and
seed gets one `film2vec evaluate --baseline als --json` process from the repository root, one at a time, in a
fresh folder DIR/runs/NAME/seed-S. Everything after `--` goes to every evaluate, so a lever is measured on the
whole suite: `python -m benchmarks.suite --out DIR -- --context-window 0 --seasons 10`.

Prints per dataset the means over seeds of film2vec's vectors and ALS's item factors (Recall@20, NDCG@20,
GenreP@10) and of both recommenders (Recall@20, NDCG@20), each margin film2vec − ALS with the seeds' min and
max, both wall times (the summary's film2vec_seconds and baseline seconds) and their ratio; then each figure's
worst margin across the suite. --json writes the same with every run's figures, the commit and whether the
tree was dirty (after every run, so a stopped suite keeps what it measured); --compare OLD.json prints every
mean and margin against an earlier suite's JSON.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.race_als import FIGURES, REPOSITORY
from benchmarks.suite_datasets import DATASETS, dataset, git_state

ERROR = re.compile(r"(Error|Exception)\b")  # the first such line of a failed run's stderr names its cause
DEFAULT_DATASETS = [name for name in DATASETS if name != "synthetic-5m"]
# what each comparison puts side by side: the summary's key and its figures; what each side is, and the pair
COMPARISONS = {"figures": FIGURES, "recommend_figures": FIGURES[:2]}
COMPARED = {"figures": "vectors", "recommend_figures": "recommend()"}
LABELS = {
    "figures": ("film2vec vectors", "ALS item factors"),
    "recommend_figures": ("film2vec recommend()", "ALS recommend()"),
}


def evaluate(name: str, flags: list[str], seed: int, out: Path, extra: list[str]) -> dict:
    """One evaluate process on a dataset and seed in a fresh folder: its figures and wall times, or its failure.
    Its stderr is kept beside the folder (a Java error's cause is at the top, not in the tail), and a failed run
    is recorded, not fatal: the other runs of the suite go on."""
    folder = out / "runs" / name / f"seed-{seed}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    log = folder.with_name(f"seed-{seed}.stderr")
    command = [sys.executable, "-m", "film2vec.cli", "evaluate", "--baseline", "als", "--json"]
    command += ["--out", str(folder), "--seed", str(seed), *flags, *extra]
    print("$ " + " ".join(command), flush=True)
    started = time.perf_counter()
    with log.open("w") as stderr:
        done = subprocess.run(command, cwd=REPOSITORY, stdout=subprocess.PIPE, stderr=stderr, text=True)
    seconds = round(time.perf_counter() - started, 1)
    print(f"  {seconds:.1f} s", flush=True)
    if done.returncode != 0:
        errors = [line.strip() for line in log.read_text().splitlines() if ERROR.search(line)]
        cause = errors[0] if errors else "no error line"
        return {"seed": seed, "process_seconds": seconds, "error": f"exit {done.returncode}: {cause} (see {log})"}
    summary = json.loads(done.stdout)
    baseline = summary["baseline"]
    return {
        "seed": seed,
        "process_seconds": seconds,
        "users_evaluated": summary["users_evaluated"],
        "film2vec": {
            "figures": summary["figures"],
            "recommend_figures": summary["recommend_figures"],
            "seconds": summary["film2vec_seconds"],
        },
        "als": {
            "figures": baseline["figures"],
            "recommend_figures": baseline["recommend_figures"],
            "seconds": baseline["seconds"],
        },
    }


def spread(values: list[float]) -> dict:
    """Mean, min, max and (over two or more) the sample standard deviation of per-seed values."""
    return {
        "mean": statistics.fmean(values),
        "min": min(values),
        "max": max(values),
        "std": statistics.stdev(values) if len(values) > 1 else None,
    }


def summarise(runs: list[dict]) -> dict:
    """Means over the seeds that ran of both models' figures and wall times, their ratio, and each margin
    film2vec − ALS with its spread over seeds."""
    done = [run for run in runs if "error" not in run]
    if not done:
        return {}
    means = {
        model: {
            **{
                kind: {figure: statistics.fmean(run[model][kind][figure] for run in done) for figure in figures}
                for kind, figures in COMPARISONS.items()
            },
            "seconds": statistics.fmean(run[model]["seconds"] for run in done),
        }
        for model in ("film2vec", "als")
    }
    margins = {
        kind: {
            figure: spread([run["film2vec"][kind][figure] - run["als"][kind][figure] for run in done])
            for figure in figures
        }
        for kind, figures in COMPARISONS.items()
    }
    return {"means": means, "seconds_ratio": means["film2vec"]["seconds"] / means["als"]["seconds"], "margins": margins}


def worst_margins(results: dict) -> dict:
    """Each figure's lowest mean margin across the datasets and the dataset where it is, as margins are keyed."""
    measured = {name: result["margins"] for name, result in results.items() if "margins" in result}
    if not measured:
        return {}
    worst: dict = {}
    for kind, figures in COMPARISONS.items():
        for figure in figures:
            name = min(measured, key=lambda name: measured[name][kind][figure]["mean"])
            worst.setdefault(kind, {})[figure] = {"dataset": name, "margin": measured[name][kind][figure]["mean"]}
    return worst


def report(name: str, result: dict) -> str:
    """One dataset's means, margins [min, max] and wall times as a table for the terminal."""
    counts = result["dataset"]["counts"]
    lines = [f"## {name}: {counts['users']:,} users, {counts['assets']:,} assets, {counts['views']:,} views"]
    lines += [f"seed {run['seed']} failed: {run['error'].splitlines()[0]}" for run in result["runs"] if "error" in run]
    if "means" not in result:
        return "\n".join(lines)
    means, margins = result["means"], result["margins"]
    seeds = " ".join(str(run["seed"]) for run in result["runs"] if "error" not in run)
    lines.append(
        f"seeds {seeds}; film2vec {means['film2vec']['seconds']:.1f} s, ALS {means['als']['seconds']:.1f} s: "
        f"{result['seconds_ratio']:.2f}x; evaluate processes {result['process_seconds']:.0f} s in all"
    )
    width = 28
    lines.append(f"{'':<24}" + "".join(f"{figure:<{width}}" for figure in FIGURES))
    for kind, figures in COMPARISONS.items():
        for model, label in zip(("film2vec", "als"), LABELS[kind]):
            lines.append(f"{label:<24}" + "".join(f"{means[model][kind][f]:<{width}.4f}" for f in figures))
        cells = [
            f"{margins[kind][f]['mean']:+.4f} [{margins[kind][f]['min']:+.4f}, {margins[kind][f]['max']:+.4f}]"
            for f in figures
        ]
        lines.append(f"{'margin [min, max]':<24}" + "".join(f"{cell:<{width}}" for cell in cells))
    return "\n".join(line.rstrip() for line in lines)


def report_worst(worst: dict) -> str:
    """The suite's worst margin of each figure and where it is."""
    lines = ["## worst margin of each figure across the suite (mean over seeds)"]
    for kind, figures in worst.items():
        lines += [f"{COMPARED[kind] + ' ' + f:<32}{e['margin']:+.4f}  {e['dataset']}" for f, e in figures.items()]
    return "\n".join(lines)


def quantities(result: dict) -> dict[str, float]:
    """A dataset's means, margins and wall times under flat names, for comparing two suites."""
    if "means" not in result:
        return {}
    flat = {}
    for kind, figures in COMPARISONS.items():
        for figure in figures:
            for model, label in zip(("film2vec", "als"), LABELS[kind]):
                flat[f"{label} {figure}"] = result["means"][model][kind][figure]
            flat[f"margin {COMPARED[kind]} {figure}"] = result["margins"][kind][figure]["mean"]
    flat["film2vec seconds"] = result["means"]["film2vec"]["seconds"]
    flat["ALS seconds"] = result["means"]["als"]["seconds"]
    flat["seconds ratio film2vec / ALS"] = result["seconds_ratio"]
    return flat


def compare(suite: dict, old: dict, old_path: str) -> str:
    """Every mean and margin of the datasets both suites measured: new, old and new − old."""
    lines = [f"## against {old_path} (commit {old['git']['commit'][:12]}{', dirty' if old['git']['dirty'] else ''})"]
    lines.append(f"{'dataset':<14}{'quantity':<40}{'new':>10}{'old':>10}{'new - old':>11}")
    for name, result in suite["datasets"].items():
        before = quantities(old["datasets"].get(name, {}))
        for key, value in quantities(result).items():
            if key in before:
                sign, digits = "+" if key.startswith("margin") else "", 2 if "seconds" in key else 4
                now, then = f"{value:{sign}.{digits}f}", f"{before[key]:{sign}.{digits}f}"
                lines.append(f"{name:<14}{key:<40}{now:>10}{then:>10}{value - before[key]:>+11.{digits}f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    own, extra = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="scratch folder: the built datasets and every run")
    parser.add_argument(
        "--datasets", nargs="+", default=DEFAULT_DATASETS, choices=DATASETS, help="default: all but synthetic-5m"
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--json", help="write the suite's results, every run's figures included, to this file")
    parser.add_argument("--compare", help="an earlier suite's JSON: print every mean and margin against it")
    arguments = parser.parse_args(own)
    old = json.loads(Path(arguments.compare).read_text()) if arguments.compare else None
    out = Path(arguments.out).resolve()
    suite = {"git": git_state(), "seeds": arguments.seeds, "flags": extra, "datasets": {}}
    started = time.perf_counter()
    for name in arguments.datasets:
        built = dataset(name, out)
        result = suite["datasets"][name] = {"dataset": built, "runs": []}
        for seed in arguments.seeds:
            result["runs"].append(evaluate(name, built["flags"], seed, out, extra))
            result.update(summarise(result["runs"]), process_seconds=sum(r["process_seconds"] for r in result["runs"]))
            suite["worst"] = worst_margins(suite["datasets"])
            suite["seconds"] = round(time.perf_counter() - started, 1)
            if arguments.json:
                Path(arguments.json).write_text(json.dumps(suite, indent=2))
        print(report(name, result), flush=True)
    print(report_worst(suite["worst"]), flush=True)
    if old is not None:
        print(compare(suite, old, arguments.compare), flush=True)


if __name__ == "__main__":
    main()
