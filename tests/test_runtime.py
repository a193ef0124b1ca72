"""The runtime we claim is the runtime we test: installing the wheel on Databricks Runtime 18 LTS ML, the job
cluster's runtime, installs film2vec and changes none of the runtime's packages.

A virtual environment stands in for the runtime: it holds the runtime's packages the way pip sees installed
packages (a `*.dist-info` folder each, with no Requires-Dist: the runtime's own consistency is Databricks'),
and pip resolves the wheel against it. Nothing is installed, so the check takes a second or two.

Where the versions come from:

- the packages: the table "Python libraries on CPU clusters" of the release notes RELEASE_NOTES, as Databricks'
  databricks/environments repository keeps it (ENVIRONMENTS: `name==version` turned into `name~=version`, local
  build segments such as torch's `+cpu` stripped; the versions below are those release numbers);
- Apache Spark 4.1.0 and MLflow 3.8.1: the release-notes index RUNTIMES ("18 LTS", released June 10, 2026;
  "MLflow-Databricks Runtime compatibility matrix"); the ML runtimes ship MLflow as mlflow-skinny, no `mlflow`;
- Python 3.12: ENVIRONMENTS' pyproject.toml beside the constraints (requires-python ==3.12.*).

On a runtime upgrade, change SPARK_VERSION (databricks.yml's `spark_version`), PYTHON and RUNTIME together.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import PathDistribution
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

RELEASE_NOTES = "https://docs.databricks.com/aws/en/release-notes/runtime/18ml"
RUNTIMES = "https://docs.databricks.com/aws/en/release-notes/runtime/"
ENVIRONMENTS = (
    "https://github.com/databricks/environments/blob/dd82b18be74058e4ce4bf0113f65bc32e63e3d4c/"
    "python/dbr/18.x-cpu-ml-scala2.13/constraints.txt"
)
SPARK_VERSION = "18.x-cpu-ml-scala2.13"  # a job cluster's spark_version for the 18 LTS ML line (CPU, Scala 2.13)
APACHE_SPARK = "4.1.0"  # RUNTIMES; on the cluster Spark's Python side is the runtime's, not a pip package
PYTHON = "3.12"

# Name -> version of the runtime's packages that film2vec's requirements touch, plus the ones the issue asked
# about (databricks-sdk). Sources: the module docstring.
RUNTIME: dict[str, str] = {
    "numpy": "2.1.3",
    "pandas": "2.2.3",
    "pyarrow": "21.0.0",
    "torch": "2.9.0",  # 2.9.0+cpu on the CPU image; the local segment is stripped in ENVIRONMENTS
    "mlflow-skinny": "3.8.1",  # MLflow 3.8.1 in RUNTIMES' matrix
    "scikit-learn": "1.6.1",
    "scipy": "1.15.3",
    "matplotlib": "3.10.0",
    "deltalake": "1.1.4",
    "databricks-sdk": "0.67.0",
    "tqdm": "4.67.1",
    "pyyaml": "6.0.2",
    "sqlalchemy": "2.0.39",
    "alembic": "1.17.1",
}

# Packages film2vec needs that the runtime does not ship, so that installing the wheel there installs them too
# (none today). Add one only with test_pip_installs_film2vec_alone_on_the_runtime run against a package index.
RUNTIME_LACKS: set[str] = set()

# A second Spark beside the runtime's breaks the cluster's Python side.
SPARK = {"pyspark", "delta-spark"}

# The markers pip evaluates on the runtime's driver (Linux, the runtime's Python, no extra asked for).
MARKERS = {
    "extra": "",
    "python_version": PYTHON,
    "python_full_version": f"{PYTHON}.0",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "os_name": "posix",
}


def wheel_metadata(installed_wheel: Path):
    (dist_info,) = installed_wheel.glob("film2vec-*.dist-info")
    return PathDistribution(dist_info).metadata


def installed_requirements(installed_wheel: Path) -> list[Requirement]:
    """The wheel's Requires-Dist that a plain `pip install film2vec` on the runtime installs."""
    requirements = [Requirement(line) for line in wheel_metadata(installed_wheel).get_all("Requires-Dist") or []]
    return [r for r in requirements if r.marker is None or r.marker.evaluate(MARKERS)]


def test_the_wheel_accepts_every_version_the_runtime_ships(installed_wheel):
    """pip check's view, without pip or an index: every requirement the runtime holds a version of accepts it."""
    python = wheel_metadata(installed_wheel)["Requires-Python"]
    assert SpecifierSet(python).contains(f"{PYTHON}.0"), f"Requires-Python {python} refuses the runtime's {PYTHON}"
    requirements = installed_requirements(installed_wheel)
    refused = {
        str(r): RUNTIME[canonicalize_name(r.name)]
        for r in requirements
        if canonicalize_name(r.name) in RUNTIME
        and not r.specifier.contains(RUNTIME[canonicalize_name(r.name)], prereleases=True)
    }
    assert not refused, f"requirements that exclude the version {SPARK_VERSION} ships (see {RELEASE_NOTES}): {refused}"
    missing = {canonicalize_name(r.name) for r in requirements} - RUNTIME.keys() - RUNTIME_LACKS
    assert not missing, (
        f"{SPARK_VERSION} ships no {sorted(missing)} ({RELEASE_NOTES}), so pip would install them there, with "
        "whatever they pin (the `mlflow` distribution pins the runtime's mlflow-skinny to its own release): "
        "depend on the distribution the runtime ships, or add them to RUNTIME (when it ships them) or RUNTIME_LACKS"
    )
    assert not {canonicalize_name(r.name) for r in requirements} & SPARK


def runtime_environment(folder: Path) -> Path:
    """A virtual environment (without pip) holding RUNTIME as installed distributions; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", folder], check=True, capture_output=True)
    python = folder / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    for name, version in RUNTIME.items():
        dist_info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (dist_info / "INSTALLER").write_text("databricks-runtime\n")
        files = ("METADATA", "INSTALLER", "RECORD")
        (dist_info / "RECORD").write_text("".join(f"{dist_info.name}/{file},,\n" for file in files))
    return python


def test_pip_installs_film2vec_alone_on_the_runtime(installed_wheel, tmp_path):
    (wheel,) = (installed_wheel.parent / "dist").glob("film2vec-*.whl")  # the one the installed_wheel fixture built
    python = runtime_environment(tmp_path / "runtime")
    lacking = {canonicalize_name(r.name) for r in installed_requirements(installed_wheel)} & RUNTIME_LACKS
    report = tmp_path / "report.json"
    command = [sys.executable, "-m", "pip", "--python", python, "install", "--dry-run", "--quiet", "--report", report]
    if lacking:  # only an index has them: pip's configuration says which
        command += ["--timeout", "15", "--retries", "1"]
        env = dict(os.environ)
    else:  # all film2vec needs is on the runtime: no index, no find-links, no pip.conf, so no network either
        command += ["--no-index"]
        env = {key: value for key, value in os.environ.items() if not key.startswith("PIP_")}
        env |= {"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    done = subprocess.run([*command, wheel], env=env, capture_output=True, text=True)
    if done.returncode and lacking and "No matching distribution" in done.stderr:
        pytest.skip(f"film2vec needs {sorted(lacking)}, which the runtime lacks, and no package index answered")
    assert done.returncode == 0, f"pip finds no way to add film2vec to {SPARK_VERSION}:\n{done.stderr[-3000:]}"
    installs = {
        canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    assert Version(installs.pop("film2vec")) == Version(wheel.name.split("-")[1])
    changed = {name: f"{RUNTIME[name]} -> {version}" for name, version in installs.items() if name in RUNTIME}
    assert not changed, f"installing film2vec on {SPARK_VERSION} would replace the runtime's {changed}"
    assert not installs.keys() & SPARK, f"a second Spark beside the runtime's Apache Spark {APACHE_SPARK}"
