"""One local Spark session with Delta for the whole suite (Spark takes ~10 s to start), and the built wheel."""

from __future__ import annotations

import os
import shutil
import site as site_module
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from film2vec.config import SparkConfig

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def spark():
    from film2vec.spark import get_spark

    session = get_spark(SparkConfig(master="local[2]", shuffle_partitions=2, driver_memory="2g"), "film2vec-tests")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def installed_wheel(tmp_path_factory) -> Path:
    """The wheel `pip wheel` builds from a clean copy of this checkout (the files git would commit, no build
    outputs), installed without dependencies into a folder of its own: the artifact users install."""
    folder = tmp_path_factory.mktemp("wheel")
    source = folder / "source"
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            folder / "dist",
            source,
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = (folder / "dist").glob("film2vec-*.whl")
    target = folder / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", target, wheel],
        check=True,
        capture_output=True,
    )
    return target


def without_checkout(site: Path) -> dict[str, str]:
    """Environment for `python -S` that sees `site` and the installed dependencies, and neither this checkout
    nor the editable install (whose finder a .pth file installs, which -S skips)."""
    dependencies = [p for p in (*site_module.getsitepackages(), sysconfig.get_paths()["purelib"]) if Path(p).is_dir()]
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYSPARK_", "SPARK_", "MLFLOW_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(site), *dict.fromkeys(dependencies)])
    return env
