"""Scale: wall time and peak memory of generate, pair counts and one season at 5M, 20M and 50M events.

    python -m benchmarks.bench_scale --out DIR [--sizes 5 20 50] [--repeats 1] [--driver-memory 8g]

Each size is a synthetic catalogue (`--catalogue-size` assets, users ∝ size, heavy-tailed views per user
with mean `--views-per-user`) run through the real CLI, one fresh process per stage: `film2vec generate`,
`film2vec pairs`, `film2vec sample --seasons 1`. For each stage the parent samples the resident memory of
the child's whole process tree (python and its Spark JVM) from /proc every 0.2 s and prints the wall time
and the peak. The last lines give how time grows with events: t ∝ events^k between consecutive sizes.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
STAGES = ("generate", "pairs", "sample")


def tree_rss(root: int) -> int:
    """Resident bytes of a process and all its descendants, read from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
        except OSError:
            continue
        pid = int(entry.name)
        children.setdefault(int(fields[1]), []).append(pid)
        rss[pid] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    total, pending = 0, [root]
    while pending:
        pid = pending.pop()
        total += rss.get(pid, 0)
        pending.extend(children.get(pid, []))
    return total


def measured(command: list[str]) -> tuple[float, int, str]:
    """(wall seconds, peak tree RSS in bytes, output tail) of a child process; raise when it fails."""
    started = time.perf_counter()
    child = subprocess.Popen(command, cwd=REPOSITORY, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = 0
    while child.poll() is None:
        peak = max(peak, tree_rss(child.pid))
        time.sleep(0.2)
    seconds = time.perf_counter() - started
    output = child.stdout.read()
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({child.returncode}):\n{output[-4000:]}")
    return seconds, peak, output[-2000:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for the runs (emptied per size)")
    parser.add_argument("--sizes", nargs="+", type=float, default=[5, 20, 50], help="millions of events")
    parser.add_argument("--catalogue-size", type=int, default=20_000)
    parser.add_argument("--views-per-user", type=float, default=50.0)
    parser.add_argument("--driver-memory", default="8g")
    parser.add_argument("--shuffle-partitions", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=1, help="runs of each stage (median time, largest peak)")
    parser.add_argument("--keep", action="store_true", help="keep each size's tables")
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES), help="each needs the one before")
    arguments = parser.parse_args()
    results: dict[float, dict[str, tuple[float, int]]] = {}
    for millions in arguments.sizes:
        out = Path(arguments.out) / f"{millions:g}M"
        users = round(millions * 1e6 / arguments.views_per_user)
        common = [
            f"--out={out}",
            f"--driver-memory={arguments.driver_memory}",
            f"--shuffle-partitions={arguments.shuffle_partitions}",
        ]
        catalogue = [
            f"--users={users}",
            f"--catalogue-size={arguments.catalogue_size}",
            f"--views-per-user={arguments.views_per_user}",
        ]
        flags = {  # each stage's own settings; pairs prints its summary (--json) for the counts below
            "generate": [*common, *catalogue],
            "pairs": [*common, *catalogue, "--json"],
            "sample": [*common, f"--sample-partitions={arguments.shuffle_partitions}", "--seasons=1"],
        }
        print(f"\n{millions:g}M events: {users:,} users, {arguments.catalogue_size:,} assets", flush=True)
        results[millions] = {}
        for stage in arguments.stages:
            runs = []
            for _ in range(arguments.repeats):
                runs.append(measured([sys.executable, "-m", "film2vec.cli", stage, *flags[stage]]))
            seconds = statistics.median(run[0] for run in runs)
            peak = max(run[1] for run in runs)
            results[millions][stage] = (seconds, peak)
            print(f"  {stage:9s} {seconds:8.1f} s   peak RSS {peak / 2**30:6.2f} GiB", flush=True)
            if stage == "pairs":
                for line in runs[-1][2].splitlines():
                    if '"views"' in line or '"raw_pairs"' in line or '"pair_rows"' in line:
                        print("           " + line.strip(), flush=True)
        if not arguments.keep:
            shutil.rmtree(out, ignore_errors=True)
    sizes = sorted(results)
    stages = arguments.stages
    print("\nevents   " + "  ".join(f"{stage:>22s}" for stage in stages))
    for millions in sizes:
        cells = [f"{results[millions][s][0]:9.1f} s {results[millions][s][1] / 2**30:6.2f} GiB" for s in stages]
        print(f"{millions:5g}M   " + "  ".join(f"{cell:>22s}" for cell in cells))
    for small, large in zip(sizes, sizes[1:]):
        exponents = [math.log(results[large][s][0] / results[small][s][0]) / math.log(large / small) for s in stages]
        shown = ", ".join(f"{stage} {k:.2f}" for stage, k in zip(stages, exponents))
        print(f"time ∝ events^k from {small:g}M to {large:g}M: {shown}")


if __name__ == "__main__":
    main()
