"""Every notebook is a Databricks source notebook and runs to the end as plain Python on a small catalogue."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from deltalake import DeltaTable

from film2vec.notebook import LocalWidgets, default_profile, widget_variable

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py"))
SMALL = {
    "users": "300",
    "catalogue_size": "60",
    "seasons": "2",
    "samples_per_view": "0.15",
    "dim": "8",
    "epochs_per_season": "1",
}


def cells(notebook: Path) -> list[list[str]]:
    header, *rest = notebook.read_text().split("\n# COMMAND ----------\n")
    assert header.startswith("# Databricks notebook source\n")
    return [chunk.strip().splitlines() for chunk in [header.removeprefix("# Databricks notebook source\n"), *rest]]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_is_in_databricks_source_format(notebook):
    found = cells(notebook)
    assert len(found) >= 4 and all(found)
    magic = [cell for cell in found if cell[0].startswith("# MAGIC")]
    assert magic and all(cell[0] == "# MAGIC %md" or cell[0].startswith("# MAGIC %pip install ") for cell in magic)
    assert all(line.startswith("# MAGIC") for cell in magic for line in cell)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.stem)
def test_on_databricks_a_notebook_installs_the_wheel_and_reads_tables_by_their_names(notebook, monkeypatch):
    found = cells(notebook)
    (install,) = [cell for cell in found if cell[0].startswith("# MAGIC %pip install ")]
    assert found.index(install) < min(i for i, cell in enumerate(found) if not cell[0].startswith("# MAGIC"))
    assert install[0].split()[-1].endswith(".whl")
    code = notebook.read_text()
    assert ".load(" not in code and "tables.of(config, " in code  # named tables work as folders do
    assert 'dropdown("profile", default_profile()' in code
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION", raising=False)
    assert default_profile() == "local"
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "18.0")
    assert default_profile() == "databricks"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs_to_the_end(notebook, tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "FILM2VEC_NOTEBOOK_PLOTS": str(tmp_path / "plots"),
        **{widget_variable(name): value for name, value in SMALL.items()},
        widget_variable("out"): str(tmp_path / "out"),
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(
        [sys.executable, str(notebook)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800
    )
    assert done.returncode == 0, done.stderr[-4000:]
    embeddings = DeltaTable(str(tmp_path / "out" / "embeddings")).to_pyarrow_table()
    viewed = DeltaTable(str(tmp_path / "out" / "assets")).to_pyarrow_table().num_rows  # assets released too late go
    assert embeddings.num_rows == viewed > int(SMALL["catalogue_size"]) * 0.9  # to `unviewed`; the rest get vectors
    assert sorted(path.name for path in (tmp_path / "plots").iterdir()) == [f"figure-{n}.png" for n in (1, 2, 3)]
    assert "most similar" in done.stdout
    assert "recall_at_20" in done.stdout and "genre_p_at_10" in done.stdout
    assert DeltaTable(str(tmp_path / "out" / "recommendations")).to_pyarrow_table().num_rows > 0
    assert DeltaTable(str(tmp_path / "out" / "evaluation" / "embeddings")).to_pyarrow_table().num_rows > 0


def test_local_widgets_take_the_environment_and_check_dropdowns(monkeypatch):
    widgets = LocalWidgets()
    monkeypatch.setenv(widget_variable("dim"), "16")
    monkeypatch.setenv(widget_variable("profile"), "nowhere")
    widgets.text("dim", "32")
    widgets.text("out", "here")
    assert (widgets.get("dim"), widgets.get("out")) == ("16", "here")
    with pytest.raises(ValueError, match="FILM2VEC_WIDGET_PROFILE.*allowed: one of"):
        widgets.dropdown("profile", "local", ["local", "cluster"])
    with pytest.raises(ValueError, match="'seasons' is read before it is defined"):
        widgets.get("seasons")
