"""The Databricks asset bundle: the task graph, entry points that exist, parameters the jobs accept."""

from __future__ import annotations

import re
from graphlib import TopologicalSorter
from pathlib import Path

import pytest
import yaml
from test_runtime import SPARK_VERSION

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


TASK_VALUE = re.compile(r"\{\{tasks\.(\w+)\.values\.(\w+)\}\}")
PUBLISHED_VERSION = "7"  # what a task value reference stands for here: the version the task registered


def resolved(parameter: str, job: dict = JOB) -> str:
    """A task parameter with {{job.parameters.X}} replaced by the job parameter's default (${var.X} resolved)
    and {{tasks.T.values.model_version}} by a version number."""
    defaults = {p["name"]: p["default"] for p in job["parameters"]}
    variables = {name: spec["default"] for name, spec in BUNDLE["variables"].items()}
    with_job = re.sub(r"\{\{job\.parameters\.(\w+)\}\}", lambda m: str(defaults[m.group(1)]), parameter)
    with_tasks = TASK_VALUE.sub(PUBLISHED_VERSION, with_job)
    return re.sub(r"\$\{var\.(\w+)\}", lambda m: str(variables[m.group(1)]), with_tasks)


def graph(job: dict) -> dict[str, set[str]]:
    return {task["task_key"]: {d["task_key"] for d in task.get("depends_on", [])} for task in job["tasks"]}


def upstream(job: dict, key: str) -> set[str]:
    """The tasks that finish before `key` starts."""
    edges, found, todo = graph(job), set(), [key]
    while todo:
        for parent in edges[todo.pop()] - found:
            found.add(parent)
            todo.append(parent)
    return found


def test_tasks_run_the_stages_in_order_and_promotion_waits_for_validation():
    assert graph(JOB) == {
        "pairs": set(),
        "sample": {"pairs"},
        "train": {"sample"},
        "evaluate": set(),
        "validate": {"train", "evaluate"},
        "promote": {"validate"},
        "uses": {"promote"},
    }
    order = list(TopologicalSorter(graph(JOB)).static_order())  # raises on a cycle
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


def test_refresh_job_goes_through_the_same_gate_on_a_paused_nightly_schedule():
    job_file, job = JOB_FILES["film2vec_refresh"]
    assert graph(job) == {"refresh": set(), "validate": {"refresh"}, "promote": {"validate"}, "uses": {"promote"}}
    tasks = {task["task_key"]: task for task in job["tasks"]}
    configs = {}
    for key, task in tasks.items():
        command, flags = wheel_command(task)
        configs[key] = config_from(parser().parse_args([command, *[resolved(flag, job) for flag in flags]]))
    assert configs["refresh"].data.new_events == BUNDLE["variables"]["new_events"]["default"]
    assert configs["refresh"].refresh.compact and configs["refresh"].tracking.move_alias == "by_promote"
    assert configs["validate"].tracking.alias_floor_genre_p > 0
    assert job["schedule"]["pause_status"] == "PAUSED" and job["schedule"]["timezone_id"] == "UTC"


@pytest.mark.parametrize("job_name", sorted(JOB_FILES))
def test_validate_and_promote_act_on_the_version_this_run_trained(job_name):
    _, job = JOB_FILES[job_name]
    trains = {task["task_key"] for task in job["tasks"] if COMMANDS[wheel_command(task)[0]].trains}
    for task in job["tasks"]:
        command, flags = wheel_command(task)
        if command not in ("validate", "promote"):
            continue
        version = flags[flags.index("--version") + 1]
        (source,) = TASK_VALUE.findall(version)
        assert source[0] in trains & upstream(job, task["task_key"]) and source[1] == "model_version"
        if "--evaluation-model" in flags:
            (evaluated,) = TASK_VALUE.findall(flags[flags.index("--evaluation-version") + 1])
            assert evaluated == ("evaluate", "model_version") and "evaluate" in upstream(job, task["task_key"])


@pytest.mark.parametrize("job_name", sorted(JOB_FILES))
def test_every_task_has_a_timeout_and_every_task_that_commits_retries(job_name):
    _, job = JOB_FILES[job_name]
    variables = BUNDLE["variables"]
    assert job["email_notifications"]["on_failure"] == "${var.failure_emails}"
    assert variables["failure_emails"]["type"] == "complex"
    for task in job["tasks"]:
        assert 0 < task["timeout_seconds"] <= 4 * 3600
        command, _ = wheel_command(task)
        if command == "validate":  # the same figures fail the same way: no retry
            assert "max_retries" not in task
        else:  # a Delta commit that met another job's (exit 4) passes on a retry
            assert task["max_retries"] == "${var.retries}" and int(variables["retries"]["default"]) >= 1
            assert task["min_retry_interval_millis"] == "${var.retry_interval_millis}"


def test_one_cluster_for_both_jobs_and_a_production_target():
    clusters = [cluster["new_cluster"] for _, job in JOB_FILES.values() for cluster in job["job_clusters"]]
    assert len(clusters) == 2 and clusters[0] == clusters[1]  # one anchor
    assert JOB_FILE.read_text().count("spark_version:") == 1
    assert BUNDLE["variables"]["spark_version"]["default"] == SPARK_VERSION  # the runtime test_runtime.py checks
    prod = BUNDLE["targets"]["prod"]
    assert prod["mode"] == "production" and prod["run_as"]["service_principal_name"] == "${var.prod_service_principal}"
    assert {entry["level"] for entry in prod["permissions"]} == {"CAN_MANAGE", "CAN_VIEW"}
    variables = {name: spec["default"] for name, spec in BUNDLE["variables"].items()} | prod["variables"]
    owned = prod["resources"]
    schema, volume, model = (
        owned["schemas"]["film2vec"],
        owned["volumes"]["film2vec"],
        owned["registered_models"]["film2vec"],
    )
    assert (schema["catalog_name"], schema["name"]) == ("${var.catalog}", "${var.schema}")
    catalog, schema_name = variables["catalog"], variables["schema"]
    assert variables["out"].startswith(f"/Volumes/{catalog}/{schema_name}/{volume['name']}/")
    assert variables["model"] == f"{catalog}.{schema_name}.{model['name']}"


def test_every_reference_is_declared():
    text = JOB_FILE.read_text()
    declared = {p["name"] for _, job in JOB_FILES.values() for p in job["parameters"]}
    assert set(re.findall(r"\{\{job\.parameters\.(\w+)\}\}", text)) <= declared
    for _, job in JOB_FILES.values():
        used = set(re.findall(r"\{\{job\.parameters\.(\w+)\}\}", yaml.safe_dump(job["tasks"])))
        assert used <= {p["name"] for p in job["parameters"]}
    assert set(re.findall(r"\$\{var\.(\w+)\}", text + (ROOT / "databricks.yml").read_text())) <= set(
        BUNDLE["variables"]
    )
    for _, job in JOB_FILES.values():
        for task in job["tasks"]:
            for source, _ in TASK_VALUE.findall(yaml.safe_dump(task)):
                assert source in upstream(job, task["task_key"])  # a task value is read after its task ran
    wheels = {library["whl"] for _, job in JOB_FILES.values() for task in job["tasks"] for library in task["libraries"]}
    build = BUNDLE["artifacts"]["film2vec_wheel"]["build"]
    assert wheels == {"../dist/*.whl"} and "-w dist" in build  # the artifact the bundle builds is what tasks install
