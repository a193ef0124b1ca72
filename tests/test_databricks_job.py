"""The Databricks asset bundle: the task graph, entry points that exist, parameters the jobs accept."""

from __future__ import annotations

import ast
import re
from graphlib import TopologicalSorter
from pathlib import Path

import pytest
import yaml

from film2vec.cli import COMMANDS, config_from, parser

ROOT = Path(__file__).resolve().parent.parent
BUNDLE = yaml.safe_load((ROOT / "databricks.yml").read_text())
RESOURCE_FILES = sorted(path for pattern in BUNDLE["include"] for path in ROOT.glob(pattern))
JOB_FILES = {
    name: (path, job)
    for path in RESOURCE_FILES
    for name, job in yaml.safe_load(path.read_text())["resources"]["jobs"].items()
}
JOB_FILE, JOB = JOB_FILES["film2vec"]
TASKS = {task["task_key"]: task for task in JOB["tasks"]}
EVERY_TASK = [(name, task) for name, (_, job) in sorted(JOB_FILES.items()) for task in job["tasks"]]


def stage_of(entry_point: Path) -> str:
    """The film2vec command a jobs/ file runs: the first item of the list it passes to film2vec.cli.main."""
    for node in ast.walk(ast.parse(entry_point.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "main":
            return node.args[0].elts[0].value
    raise AssertionError(f"{entry_point} does not call film2vec.cli.main")


def resolved(parameter: str, job: dict = JOB) -> str:
    """A task parameter with {{job.parameters.X}} replaced by the job parameter's default (${var.X} resolved)."""
    defaults = {p["name"]: p["default"] for p in job["parameters"]}
    variables = {name: spec["default"] for name, spec in BUNDLE["variables"].items()}
    with_job = re.sub(r"\{\{job\.parameters\.(\w+)\}\}", lambda m: str(defaults[m.group(1)]), parameter)
    return re.sub(r"\$\{var\.(\w+)\}", lambda m: str(variables[m.group(1)]), with_job)


def test_tasks_run_the_stages_in_order():
    graph = {key: {d["task_key"] for d in task.get("depends_on", [])} for key, task in TASKS.items()}
    assert graph == {"pairs": set(), "sample": {"pairs"}, "train": {"sample"}}
    assert list(TopologicalSorter(graph).static_order()) == ["pairs", "sample", "train"]  # raises on a cycle
    clusters = {cluster["job_cluster_key"] for cluster in JOB["job_clusters"]}
    assert all(task["job_cluster_key"] in clusters for task in TASKS.values())


@pytest.mark.parametrize("job_name, task", EVERY_TASK, ids=[f"{name}.{t['task_key']}" for name, t in EVERY_TASK])
def test_task_entry_point_exists_and_accepts_its_parameters(job_name, task):
    job_file, job = JOB_FILES[job_name]
    task = task["spark_python_task"]
    entry_point = (job_file.parent / task["python_file"]).resolve()
    assert entry_point.is_file() and entry_point.parent == ROOT / "jobs"
    command = stage_of(entry_point)
    assert command in COMMANDS
    parameters = [resolved(parameter, job) for parameter in task["parameters"]]
    arguments = parser().parse_args([command, *parameters])  # SystemExit on an unknown flag
    config = config_from(arguments)  # ConfigError on a value the profile or a flag does not allow
    assert arguments.profile == "databricks"
    assert config.data.out == BUNDLE["variables"]["out"]["default"]


def test_stage_tasks_match_their_entry_points():
    stages = {key: stage_of(JOB_FILE.parent / task["spark_python_task"]["python_file"]) for key, task in TASKS.items()}
    assert stages == {"pairs": "pairs", "sample": "sample", "train": "train"}


def test_refresh_job_runs_the_refresh_on_a_paused_nightly_schedule():
    job_file, job = JOB_FILES["film2vec_refresh"]
    (task,) = job["tasks"]
    assert stage_of(job_file.parent / task["spark_python_task"]["python_file"]) == "refresh"
    parameters = [resolved(parameter, job) for parameter in task["spark_python_task"]["parameters"]]
    config = config_from(parser().parse_args(["refresh", *parameters]))
    assert config.data.new_events == BUNDLE["variables"]["new_events"]["default"]
    assert job["schedule"]["pause_status"] == "PAUSED" and job["schedule"]["timezone_id"] == "UTC"
    assert task["job_cluster_key"] in {cluster["job_cluster_key"] for cluster in job["job_clusters"]}


def test_every_reference_is_declared():
    text = JOB_FILE.read_text()
    declared = {p["name"] for _, job in JOB_FILES.values() for p in job["parameters"]}
    assert set(re.findall(r"\{\{job\.parameters\.(\w+)\}\}", text)) <= declared
    for _, job in JOB_FILES.values():
        used = set(re.findall(r"\{\{job\.parameters\.(\w+)\}\}", yaml.safe_dump(job["tasks"])))
        assert used <= {p["name"] for p in job["parameters"]}
    assert set(re.findall(r"\$\{var\.(\w+)\}", text)) <= set(BUNDLE["variables"])
    wheels = {library["whl"] for _, job in JOB_FILES.values() for task in job["tasks"] for library in task["libraries"]}
    build = BUNDLE["artifacts"]["film2vec_wheel"]["build"]
    assert wheels == {"../dist/*.whl"} and "-w dist" in build  # the artifact the bundle builds is what tasks install
