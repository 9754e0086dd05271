"""
### Tally daily reconciliation

For one business date: **land** the date's files still waiting (and files dropped late for
earlier dates) → **load** parsed rows into raw tables with lineage (bad files go to quarantine)
→ **transform** with dbt (staging → canonical transactions → matching → marts, run by Cosmos) →
**gate** with Great Expectations (nothing goes further unless every invariant holds) →
**publish** the date's reports → **alert** a person when needed → **follow up**: dates that
must be reconciled again (a late file landed for them, or this run changed the carry-over of
a date already reconciled) are handed to `tally_rerun`, which runs them in order.

Scheduled by data: a run starts once every expected source's asset has been updated for the
business date (the landing DAGs do that when the files are in, or at their cut-off with the
missing sources recorded). Manual runs take `business_date`, `sources` (land and load only
these) and `dry_run` (everything up to the gate; nothing is published). One run at a time
changes the warehouse: a run waits for the run lock.

Logic lives in the `tally` package (`tally.daily`, over `tally.pipeline`); this file only
wires it.
"""

from __future__ import annotations

import os
from datetime import timedelta

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Asset, AssetAll, Param, PartitionedAssetTimetable, dag, task
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import InvocationMode, LoadMode, TestBehavior

from tally import config, daily

SETTINGS = config.load()
# dbt's profiles.yml reads the warehouse settings from these; they are never written to disk.
os.environ.update(SETTINGS.dbt_env())


def _run_failed(context) -> None:
    """A task failed for good: the run is over; record why and free the warehouse."""
    daily.run_failed(SETTINGS, context["run_id"], context.get("exception"))


def _gate_failed(context) -> None:
    daily.alert_gate_failed(SETTINGS, context.get("run_id"),
                            context["ti"].xcom_pull(task_ids="resolve_business_date"),
                            context.get("exception"))
    _run_failed(context)


@dag(
    dag_id="tally_daily",
    doc_md=__doc__,
    schedule=PartitionedAssetTimetable(assets=AssetAll(
        *(Asset(name, uri) for name, uri in daily.landed_assets(SETTINGS)))),
    catchup=False,
    max_active_runs=1,
    tags=["tally", "reconciliation", "finance"],
    default_args={
        "owner": "finance-data",
        "retries": 2,
        "retry_delay": timedelta(minutes=2),
        "on_failure_callback": _run_failed,
    },
    params={
        "business_date": Param(
            None, type=["null", "string"], format="date",
            description="Business date to reconcile (YYYY-MM-DD); default: the run's "
                        "partition (scheduled runs) or the day before."),
        "sources": Param(
            None, type=["null", "array"], items={"type": "string"},
            description="Land and load only these sources (default: all)."),
        "dry_run": Param(
            False, type="boolean",
            description="Run up to the gate and stop: no report, no alert, no follow-up."),
    },
)
def tally_daily():
    @task
    def resolve_business_date(params=None, dag_run=None, logical_date=None, run_id=None) -> str:
        return daily.begin(SETTINGS, run_id, params["business_date"],
                           getattr(dag_run, "partition_key", None), logical_date,
                           dry_run=params["dry_run"])

    @task
    def land(business_date: str, params=None, run_id=None) -> dict:
        return daily.land(SETTINGS, run_id, business_date, params["sources"])

    @task
    def load(business_date: str, landed: dict, params=None, run_id=None) -> dict:
        return daily.load(SETTINGS, run_id, business_date, params["sources"])

    transform = DbtTaskGroup(
        group_id="transform",
        project_config=ProjectConfig(dbt_project_path=SETTINGS.dbt_project_dir),
        profile_config=ProfileConfig(
            profile_name="tally", target_name="warehouse",
            profiles_yml_filepath=SETTINGS.dbt_project_dir / "profiles.yml",
        ),
        execution_config=ExecutionConfig(dbt_executable_path=daily.dbt_executable(),
                                         invocation_mode=InvocationMode.DBT_RUNNER),
        # Parse the project from its files: no dbt call while the DAG file is imported.
        render_config=RenderConfig(load_method=LoadMode.CUSTOM, test_behavior=TestBehavior.BUILD,
                                   emit_datasets=False),
        operator_args=daily.dbt_operator_args(SETTINGS),
        default_args={"retries": 1},
    )

    # A failed invariant is a verdict, not a glitch: never retried; a person is told.
    @task(retries=0, on_failure_callback=_gate_failed)
    def gate(business_date: str, run_id=None) -> dict:
        return daily.check_gate(SETTINGS, run_id, business_date)

    @task
    def publish(business_date: str, verdict: dict, params=None, run_id=None) -> str | None:
        return daily.publish(SETTINGS, run_id, business_date, params["dry_run"])

    @task
    def alert_if_needed(business_date: str, report: str | None, params=None) -> list[str]:
        """Breaks above their limits, projects incomplete for want of a source, or sources
        missing for the day: tell a person."""
        return daily.alert_if_needed(SETTINGS, business_date, params["dry_run"])

    @task.short_circuit
    def follow_up(business_date: str, landed: dict, report: str | None, params=None,
                  run_id=None) -> dict | None:
        """The earliest date to reconcile again, if any; tally_rerun goes on from there."""
        return daily.follow_up(SETTINGS, run_id, business_date, landed["late_dates"],
                               params["dry_run"])

    rerun = TriggerDagRunOperator(
        task_id="rerun_later_dates",
        trigger_dag_id="tally_rerun",
        conf={"from_date": "{{ ti.xcom_pull(task_ids='follow_up')['from_date'] }}"},
        retries=0,
        on_failure_callback=None,
    )

    business_date = resolve_business_date()
    landed = land(business_date)
    loaded = load(business_date, landed)
    verdict = gate(business_date)
    loaded >> transform >> verdict
    report = publish(business_date, verdict)
    alert_if_needed(business_date, report)
    follow_up(business_date, landed, report) >> rerun


tally_daily()
