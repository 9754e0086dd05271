"""Every DAG imports cleanly, cheaply, and says who owns it and how it retries."""

import subprocess
import sys
import textwrap

import pytest

from tally import airflow_local, config, schedule

ROOT = config.load().project_dir


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    airflow_local.prepare_home(config.load())  # a fresh clone has no metadata database yet
    return DagBag(dag_folder=str(ROOT / "dags"))


def test_dags_import_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "tally_daily" in dagbag.dag_ids


def test_dags_have_owner_retries_tags_and_docs(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.doc_md and len(dag.doc_md.strip()) > 100, dag_id
        assert dag.tags, dag_id
        for task in dag.tasks:
            assert task.owner and task.owner != "airflow", (dag_id, task.task_id)
            assert task.retries >= 0, (dag_id, task.task_id)
        assert dag.default_args.get("retries", 0) >= 1, dag_id


def test_daily_dag_shape(dagbag):
    dag = dagbag.get_dag("tally_daily")
    ids = set(dag.task_ids)
    assert {"resolve_business_date", "land", "load", "gate", "publish"} <= ids
    dbt_tasks = {t for t in ids if t.startswith("transform.")}
    assert "transform.fct_outcomes_model_build" in dbt_tasks
    # publish runs only downstream of the gate, and the gate only after every dbt model.
    assert "gate" in dag.get_task("publish").upstream_task_ids
    assert dag.get_task("gate").retries == 0
    gate_upstream = dag.get_task("gate").get_flat_relative_ids(upstream=True)
    assert dbt_tasks <= gate_upstream


def test_each_feed_lands_on_its_own_schedule_and_waits_without_a_worker_slot(dagbag):
    from airflow.sdk import CronPartitionTimetable

    settings = config.load()
    for feed in schedule.load(settings):
        dag = dagbag.get_dag(f"tally_land_{feed.name}")
        assert isinstance(dag.timetable, CronPartitionTimetable)
        assert dag.timetable.key_format == "%Y-%m-%d" and dag.timetable.run_offset == -1
        wait = dag.get_task("wait_for_files")
        assert wait.mode == "reschedule" and wait.exponential_backoff
        assert wait.timeout == feed.cutoff.total_seconds()
        mark = dag.get_task("mark_landed")
        assert mark.trigger_rule == "all_done" and "wait_for_files" in mark.upstream_task_ids
        assert {o.name for o in mark.outlets} == {f"tally_landed_{s}" for s in feed.sources}


def test_daily_dag_takes_manual_parameters_and_hands_follow_ups_to_the_rerun_dag(dagbag):
    dag = dagbag.get_dag("tally_daily")
    assert set(dag.params) == {"business_date", "sources", "dry_run"}
    assert dag.params["dry_run"] is False and dag.max_active_runs == 1
    assert dag.get_task("rerun_later_dates").trigger_dag_id == "tally_rerun"
    rerun = dagbag.get_dag("tally_rerun")
    assert rerun.max_active_runs == 1 and set(rerun.params) >= {"from_date", "to_date"}


def test_dag_files_do_no_heavy_work_at_import(tmp_path):
    """Importing the DAG must not reach the database or S3 or run dbt: with both pointed at
    closed ports and no dbt on PATH, the import still succeeds. Nor does it load the
    development tools (tally.devtools)."""
    env = airflow_local.environment(config.load())
    env.update({"TALLY_PG_PORT": "9", "TALLY_S3_PORT": "9", "PATH": "/usr/bin:/bin",
                "TALLY_HOME": str(tmp_path)})
    script = textwrap.dedent(f"""
        import sys, importlib.util, pathlib
        for path in sorted(pathlib.Path({str(ROOT / 'dags')!r}).glob("*.py")):
            spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        loaded = [m for m in sys.modules if m.startswith("tally.devtools")]
        assert not loaded, loaded
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")


def test_airflow_does_not_load_the_package_as_plugins():
    """Airflow imports each file under plugins/ as a top-level module named after the file;
    tally/devtools/samples/platform.py would then replace the standard library's `platform`.
    It loads the workbench's plugin file only (tests/test_airflow_plugin.py)."""
    from airflow._shared.module_loading import find_path_from_directory

    loaded = [f for f in find_path_from_directory(str(ROOT / "plugins"), ".airflowignore", "glob")
              if f.endswith(".py")]
    assert loaded == [str(ROOT / "plugins" / "tally_workbench_plugin.py")]
