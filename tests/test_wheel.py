"""The wheel users install, tested where only it is importable: every module, the resources, the command."""

from __future__ import annotations

import configparser
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, without_checkout
from test_tracking import no_server, register  # noqa: F401 (a fixture)

from film2vec.config import TrackingConfig
from film2vec.errors import ExitCode
from film2vec.tracking import use_store

PACKAGE = ROOT / "film2vec"


def test_the_wheel_holds_every_module_and_resource(installed_wheel):
    shipped = {path.relative_to(installed_wheel).as_posix() for path in installed_wheel.rglob("*") if path.is_file()}
    modules = {path.relative_to(ROOT).as_posix() for path in PACKAGE.rglob("*.py")}
    assert modules <= shipped, f"missing from the wheel: {sorted(modules - shipped)}"
    sources = {path.relative_to(ROOT).as_posix() for path in PACKAGE.rglob("*.c")}
    assert sources and sources <= shipped
    profiles = {f"film2vec/conf/{path.name}" for path in (ROOT / "conf").glob("*.yaml")}
    assert profiles and profiles <= shipped
    assert "film2vec/log4j2.properties" in shipped  # Spark's logging when film2vec starts Spark


def test_every_module_imports_from_the_wheel_alone(installed_wheel, tmp_path):
    modules = sorted(
        ".".join(path.relative_to(installed_wheel).with_suffix("").parts).removesuffix(".__init__")
        for path in (installed_wheel / "film2vec").rglob("*.py")
    )
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "import film2vec; print(film2vec.__file__)\n"
        "print(sorted(m for m in sys.modules if m.startswith('__editable__')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-S", "-c", script],
        env=without_checkout(installed_wheel),
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    where, editable = done.stdout.split("\n")[:2]
    assert Path(where).is_relative_to(installed_wheel) and editable == "[]"


def test_the_console_script_of_the_wheel_prints_its_help(installed_wheel, tmp_path):
    (dist_info,) = installed_wheel.glob("film2vec-*.dist-info")
    entry_points = configparser.ConfigParser()
    entry_points.read(dist_info / "entry_points.txt")
    module, _, function = entry_points["console_scripts"]["film2vec"].partition(":")
    script = f"import sys; sys.argv[0] = 'film2vec'; from {module} import {function}; sys.exit({function}())"
    done = subprocess.run(
        [sys.executable, "-S", "-c", script, "--help"],
        env=without_checkout(installed_wheel),
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("usage: film2vec") and "similar" in done.stdout


def as_a_wheel_task(site: Path, folder: Path, *argv: str) -> subprocess.CompletedProcess:
    """Run a command as a Databricks python_wheel_task does: the `film2vec` entry point resolved from the installed
    wheel's metadata and called, its return value ignored, in a process outside the checkout."""
    script = (
        "import sys; from importlib.metadata import entry_points\n"
        "(entry,) = entry_points(group='console_scripts', name='film2vec')\n"
        "sys.argv = ['film2vec', *sys.argv[1:]]\n"
        "entry.load()()  # the task ignores what it returns\n"
    )
    return subprocess.run(
        [sys.executable, "-S", "-c", script, *argv],
        env=without_checkout(site),
        cwd=folder,
        capture_output=True,
        text=True,
    )


def test_a_wheel_task_fails_with_the_commands_exit_code_on_bad_input(installed_wheel, tmp_path):
    missing = tmp_path / "nowhere.csv"
    done = as_a_wheel_task(installed_wheel, tmp_path, "pairs", "--events", str(missing), "--out", str(tmp_path / "o"))
    assert done.returncode == ExitCode.BAD_INPUT, done.stderr[-3000:]  # not a green task
    assert str(missing) in done.stderr


@pytest.mark.usefixtures("no_server")  # the registry of the store under --out, not a server's
def test_a_wheel_task_fails_when_validation_fails(installed_wheel, tmp_path):
    out = str(tmp_path / "out")
    version = register(use_store(out), TrackingConfig(), tmp_path / "staging", {"genre_p_at_10": 0.5})
    validate = ("validate", "--out", out, "--version", version)
    done = as_a_wheel_task(installed_wheel, tmp_path, *validate, "--alias-floor-genre-p", "0.7")
    assert done.returncode == ExitCode.FLOORS, done.stderr[-3000:]
    assert "genre_p_at_10 = 0.5000 is below the floor 0.7" in done.stderr
    assert as_a_wheel_task(installed_wheel, tmp_path, *validate).returncode == ExitCode.OK


def test_installing_the_wheel_on_a_spark_runtime_pulls_no_second_spark(installed_wheel):
    (dist_info,) = installed_wheel.glob("film2vec-*.dist-info")
    requirements = [
        line.removeprefix("Requires-Dist: ")
        for line in (dist_info / "METADATA").read_text().splitlines()
        if line.startswith("Requires-Dist: ")
    ]
    always = {requirement.split(";")[0].split("[")[0] for requirement in requirements if "extra ==" not in requirement}
    names = {re.split(r"[<>=!~ ]", requirement)[0].lower() for requirement in always}
    assert {"torch", "mlflow-skinny", "deltalake", "numpy", "pandas", "pyarrow"} <= names
    assert not names & {"pyspark", "delta-spark", "mlflow"}  # the runtime's own, never a second one
    spark_extra = [r for r in requirements if r.endswith(('extra == "spark"', "extra == 'spark'"))]
    assert {re.split(r"[<>=!~ ]", r)[0] for r in spark_extra} == {"pyspark", "delta-spark", "mlflow"}
