"""A stage through the real spark-submit, as the README shows it: the film2vec wheel, the Delta jars and confs.

The wheel is built from a clean copy of this checkout and installed into a folder of its own; the job's
driver is a file outside the repository, and its Python (driver and workers) runs with -S, so neither the
checkout nor the editable install can supply a module the wheel lacks. `--name` differs from the name
film2vec gives the sessions it builds, so the log shows that the job took spark-submit's session.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pyspark
from conftest import without_checkout
from deltalake import DeltaTable

from film2vec.spark import DELTA_CATALOG, DELTA_EXTENSION, JARS_RECORD, delta_version

ROOT = Path(__file__).resolve().parent.parent
SPARK_SUBMIT = Path(pyspark.__file__).parent / "bin" / "spark-submit"
DELTA_PACKAGE = f"io.delta:delta-spark_4.1_2.13:{delta_version()}"


def delta_jars_arguments() -> list[str]:
    """--jars with the jars film2vec remembered on its first start, else --packages (resolved from Maven)."""
    try:
        jars = json.loads(JARS_RECORD.read_text())[delta_version()]
    except (OSError, ValueError, KeyError):
        return ["--packages", DELTA_PACKAGE]
    return ["--jars", ",".join(jars)]


def test_count_pairs_job_under_spark_submit(tmp_path, installed_wheel):
    rng = np.random.default_rng(11)
    views = {(user, int(asset)) for user in range(40) for asset in rng.choice(15, 4, replace=False)}
    events = tmp_path / "events.csv"
    events.write_text("user_id,asset_id\n" + "".join(f"{u},{a}\n" for u, a in sorted(views)))
    out = tmp_path / "out"
    python = tmp_path / "python-without-site"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n')
    python.chmod(0o755)
    driver = tmp_path / "count_pairs_job.py"  # what a user's job file holds: the wheel's entry point
    driver.write_text(
        "import sys\nimport film2vec\nfrom film2vec.cli import main\n"
        "print('film2vec from', film2vec.__file__, file=sys.stderr)\nsys.exit(main(['pairs', *sys.argv[1:]]))\n"
    )
    env = {**without_checkout(installed_wheel), "PYSPARK_PYTHON": str(python), "PYSPARK_DRIVER_PYTHON": str(python)}
    command = [
        str(SPARK_SUBMIT),
        "--master",
        "local[2]",
        "--name",
        "film2vec-submit-test",
        "--driver-memory",
        "1g",
        *delta_jars_arguments(),
        "--conf",
        f"spark.sql.extensions={DELTA_EXTENSION}",
        "--conf",
        f"spark.sql.catalog.spark_catalog={DELTA_CATALOG}",
        "--conf",
        "spark.sql.shuffle.partitions=2",
        str(driver),
        "--profile",
        "cluster",
        "--events",
        str(events),
        "--out",
        str(out),
        "--summary",  # spark-submit merges the driver's stderr, the progress, into its stdout
        str(tmp_path / "summary.json"),
    ]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "Submitted application: film2vec-submit-test" in done.stderr  # spark-submit's session, not a new one
    assert f"film2vec from {installed_wheel}" in done.stdout  # spark-submit passes the driver's stderr to stdout
    assert "without the C kernel" not in done.stdout  # the wheel carries the kernels' sources
    assert {"pair_kernel.c", "native_step.c"} <= {path.name for path in installed_wheel.rglob("*.c")}

    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["ingest"]["views"] == len(views)
    by_user: dict[int, list[int]] = {}
    for user, asset in views:
        by_user.setdefault(user, []).append(asset)
    expected = Counter(pair for assets in by_user.values() for pair in itertools.permutations(assets, 2))
    pairs = DeltaTable(str(out / "pairs")).to_pyarrow_table().to_pylist()
    assert {(row["asset_a"], row["asset_b"]): row["co_views"] for row in pairs} == dict(expected)
    assert summary["pair_rows"] == len(pairs) == len(expected)
