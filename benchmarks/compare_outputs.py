"""Compare the Delta tables of two output folders row by row: the check that a change of code moved no result.

    python -m benchmarks.compare_outputs OUT_A OUT_B

Every Delta table found in both folders (and their synthetic/ sub-folder) is read without Spark, its rows put
in a canonical order (seasons: by season and draw, their own order), and compared exactly, vectors bit for
bit. Columns that name the run rather than its results (the MLflow run id) are left out. Exit status 1 when
a table differs or is only in one folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable

from film2vec.tables import open_without_spark, read_without_spark
from film2vec.train.stream import read_season

RUN_COLUMNS = {"run_id"}  # differ between any two runs, whatever they computed


def delta_tables(out: Path) -> dict[str, Path]:
    """Name → folder of every Delta table directly under `out` or `out/synthetic`."""
    found = {}
    for folder in (out, out / "synthetic"):
        for log in sorted(folder.glob("*/_delta_log")):
            found[str(log.parent.relative_to(out))] = log.parent
    return found


def canonical_rows(path: Path) -> pa.Table:
    """The table's rows in an order that depends only on their values (seasons: the trainer's order)."""
    if path.name == "seasons":
        # the table's partitions, not its folders: a season it replaced keeps its folder until a vacuum
        seasons = sorted(int(values["season"]) for values in DeltaTable(str(path)).partitions())
        return pa.concat_tables(
            (table := pa.Table.from_batches(list(read_season(str(path), season)))).append_column(
                "season", pa.array([season] * table.num_rows, pa.int32())
            )
            for season in seasons
        )
    columns = pa.schema(open_without_spark(str(path), path.name).schema().to_arrow()).names
    table = read_without_spark(str(path), path.name, [name for name in columns if name not in RUN_COLUMNS])
    keys = [(name, "ascending") for name in table.column_names if not pa.types.is_nested(table.schema.field(name).type)]
    return table.sort_by(keys) if keys else table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    arguments = parser.parse_args(argv)
    first, second = delta_tables(arguments.first), delta_tables(arguments.second)
    differ = 0
    for name in sorted(set(first) | set(second)):
        if name not in first or name not in second:
            print(f"{name:24} only in {arguments.first if name in first else arguments.second}")
            differ += 1
            continue
        a, b = canonical_rows(first[name]), canonical_rows(second[name])
        same = a.schema.equals(b.schema) and a.equals(b)
        print(f"{name:24} {a.num_rows:>10,} rows  {'identical' if same else 'DIFFERENT'}")
        differ += not same
    print(f"{len(set(first) | set(second)) - differ} of {len(set(first) | set(second))} tables identical")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
