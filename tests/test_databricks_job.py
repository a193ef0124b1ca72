"""The Databricks asset bundle: the task graph, entry points that exist, parameters the jobs accept."""

from __future__ import annotations

import re
from graphlib import TopologicalSorter
from pathlib import Path

import pytest
import yaml

from film2vec.cli import COMMANDS, config_from, parser

ROOT = Path(__file__).resolve().parent.parent
ENTRY_POINTS = re.sub(r"\s", "", (ROOT / "setup.py").read_text().split("console_scripts")[1].split("]")[0])
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


def wheel_command(task: dict) -> tuple[str, list[str]]:
    """The film2vec command a python_wheel_task runs and its flags; the entry point is the wheel's console script."""
    wheel_task = task["python_wheel_task"]
    assert wheel_task["package_name"] == "film2vec"
    assert f"{wheel_task['entry_point']}=" in ENTRY_POINTS
    command, *flags = wheel_task["parameters"]
    return command, flags


def resolved(parameter: str, job: dict = JOB) -> str:
    """A task parameter with {{job.parameters.X}} replaced by the job parameter's default (${var.X} resolved)."""
    defaults = {p["name"]: p["default"] for p in job["parameters"]}
    variables = {name: spec["default"] for name, spec in BUNDLE["variables"].items()}
    with_job = re.sub(r"\{\{job\.parameters\.(\w+)\}\}", lambda m: str(defaults[m.group(1)]), parameter)
    return re.sub(r"\$\{var\.(\w+)\}", lambda m: str(variables[m.group(1)]), with_job)


def test_tasks_run_the_stages_in_order_and_promotion_waits_for_validation():
    graph = {key: {d["task_key"] for d in task.get("depends_on", [])} for key, task in TASKS.items()}
    assert graph == {
        "pairs": set(),
        "sample": {"pairs"},
        "train": {"sample"},
        "evaluate": set(),
        "validate": {"train", "evaluate"},
        "promote": {"validate"},
        "uses": {"promote"},
    }
    order = list(TopologicalSorter(graph).static_order())  # raises on a cycle
    assert order.index("train") < order.index("validate") < order.index("promote") < order.index("uses")
    clusters = {cluster["job_cluster_key"] for cluster in JOB["job_clusters"]}
    assert all(task["job_cluster_key"] in clusters for task in TASKS.values())


@pytest.mark.parametrize("job_name, task", EVERY_TASK, ids=[f"{name}.{t['task_key']}" for name, t in EVERY_TASK])
def test_task_runs_a_command_that_accepts_its_parameters(job_name, task):
    _, job = JOB_FILES[job_name]
    command, flags = wheel_command(task)
    assert command in COMMANDS
    parameters = [resolved(parameter, job) for parameter in flags]
    arguments = parser().parse_args([command, *parameters])  # SystemExit on an unknown flag
    config = config_from(arguments)  # ConfigError on a value the profile or a flag does not allow
    assert arguments.profile == "databricks"
    assert config.data.out.startswith(BUNDLE["variables"]["out"]["default"])


def test_only_the_job_moves_the_alias_and_evaluation_keeps_to_its_own_tables():
    configs = {}
    for key, task in TASKS.items():
        command, flags = wheel_command(task)
        configs[key] = config_from(parser().parse_args([command, *[resolved(flag) for flag in flags]]))
    assert configs["train"].tracking.move_alias == "by_promote"
    assert configs["evaluate"].tracking.move_alias == "by_promote"
    assert configs["evaluate"].tracking.model_name != configs["train"].tracking.model_name
    assert not configs["evaluate"].data.schema and configs["evaluate"].data.out != configs["train"].data.out
    assert configs["validate"].tracking.evaluation_model == configs["evaluate"].tracking.model_name
    assert configs["validate"].tracking.alias_floor_recall > 0 and configs["validate"].tracking.alias_floor_genre_p > 0
    assert {configs[key].data.schema for key in ("pairs", "sample", "train", "uses")} == {"film2vec"}


def test_refresh_job_runs_the_refresh_on_a_paused_nightly_schedule():
    job_file, job = JOB_FILES["film2vec_refresh"]
    (task,) = job["tasks"]
    command, flags = wheel_command(task)
    assert command == "refresh"
    config = config_from(parser().parse_args(["refresh", *[resolved(flag, job) for flag in flags]]))
    assert config.data.new_events == BUNDLE["variables"]["new_events"]["default"]
    assert config.refresh.compact
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
