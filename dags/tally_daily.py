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

Logic lives in the `tally` package; this file only wires it.
"""

from __future__ import annotations

import os
from datetime import date, timedelta
from pathlib import Path

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Asset, AssetAll, Param, PartitionedAssetTimetable, dag, task
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import InvocationMode, LoadMode, TestBehavior

from tally import accounts, config, recon, schedule

SETTINGS = config.load()
# dbt's profiles.yml reads the warehouse settings from these; they are never written to disk.
os.environ.update(SETTINGS.dbt_env())
# The rules in force when the DAG was parsed; every run records their hash.
RULES = recon.load(SETTINGS)
FEE_SIGNS = recon.fee_signs(SETTINGS)  # each channel's fee sign convention (staging fee_cost)
# The account registry (include/accounts.yaml) as dbt reads it.
ACCOUNTS = accounts.load(SETTINGS).dbt_var()
EXPECTED = schedule.expected_sources(SETTINGS)
RUN_LOCK_WAIT_SECONDS = 300  # then fail; the retry waits again


def _run_failed(context) -> None:
    """A task failed for good: the run is over; record why and free the warehouse."""
    from tally import pipeline

    pipeline.fail_run(SETTINGS, context["run_id"], context.get("exception") or "task failed")


@dag(
    dag_id="tally_daily",
    doc_md=__doc__,
    schedule=PartitionedAssetTimetable(assets=AssetAll(
        *(Asset(*schedule.landed_asset(SETTINGS, source)) for source in EXPECTED))),
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
        from tally import pipeline

        business_date = schedule.business_date_for(
            SETTINGS, params["business_date"], getattr(dag_run, "partition_key", None),
            logical_date)
        pipeline.start_run(SETTINGS, run_id, business_date, dry_run=params["dry_run"],
                           wait_seconds=RUN_LOCK_WAIT_SECONDS)
        return business_date.isoformat()

    @task
    def land(business_date: str, params=None, run_id=None) -> dict:
        from tally import pipeline

        day = date.fromisoformat(business_date)
        pipeline.heartbeat(SETTINGS, run_id, day)
        landed = pipeline.land_day(SETTINGS, day, only=params["sources"])
        landed["late_dates"] = pipeline.land_late_files(SETTINGS, day)
        return landed

    @task
    def load(business_date: str, landed: dict, params=None, run_id=None) -> dict:
        from tally import pipeline

        day = date.fromisoformat(business_date)
        return pipeline.load_day(SETTINGS, day, only=params["sources"], run_id=run_id)

    transform = DbtTaskGroup(
        group_id="transform",
        project_config=ProjectConfig(dbt_project_path=SETTINGS.dbt_project_dir),
        profile_config=ProfileConfig(
            profile_name="tally", target_name="warehouse",
            profiles_yml_filepath=SETTINGS.dbt_project_dir / "profiles.yml",
        ),
        execution_config=ExecutionConfig(
            dbt_executable_path=str(Path(os.sys.executable).parent / "dbt"),
            invocation_mode=InvocationMode.DBT_RUNNER,
        ),
        # Parse the project from its files: no dbt call while the DAG file is imported.
        render_config=RenderConfig(load_method=LoadMode.CUSTOM, test_behavior=TestBehavior.BUILD,
                                   emit_datasets=False),
        operator_args={
            "install_deps": False,
            # The models' unit tests check the SQL, not the day: `make test` runs them.
            "exclude": "test_type:unit",
            # Incremental marts are built for one business date, with the rules as data.
            "vars": {
                "as_of": "{{ ti.xcom_pull(task_ids='resolve_business_date') }}",
                "reconciliation": RULES,
                "fee_signs": FEE_SIGNS,
                "accounts": ACCOUNTS,
            },
        },
        default_args={"retries": 1},
    )

    def gate_failed(context) -> None:
        from tally.publish import alerts

        alerts.on_gate_failed(alerts.AlertSettings.from_env(SETTINGS.env),
                              date.fromisoformat(context["ti"].xcom_pull(
                                  task_ids="resolve_business_date")),
                              str(context.get("exception")), context.get("run_id"))
        _run_failed(context)

    # A failed invariant is a verdict, not a glitch: never retried; a person is told.
    @task(retries=0, on_failure_callback=gate_failed)
    def gate(business_date: str, run_id=None) -> dict:
        from tally import pipeline

        return pipeline.check_gate(SETTINGS, run_id, date.fromisoformat(business_date))

    @task
    def publish(business_date: str, verdict: dict, params=None, run_id=None) -> str | None:
        from tally import pipeline

        if params["dry_run"]:
            pipeline.finish_dry_run(SETTINGS, run_id)
            return None
        return pipeline.publish(SETTINGS, run_id, date.fromisoformat(business_date))

    @task
    def alert_if_needed(business_date: str, report: str | None, params=None) -> list[str]:
        """Breaks above their limits, projects incomplete for want of a source, or sources
        missing for the day: tell a person."""
        from tally.publish import alerts

        if params["dry_run"]:
            return []
        config = alerts.AlertSettings.from_env(SETTINGS.env)
        day = date.fromisoformat(business_date)
        events = [alerts.check_breaks(SETTINGS, config, day),
                  alerts.check_incomplete_projects(SETTINGS, config, day),
                  alerts.check_missing_sources(SETTINGS, config, day,
                                               expected=schedule.expected_sources(SETTINGS))]
        return [event.title for event in events if event]

    @task.short_circuit
    def follow_up(business_date: str, landed: dict, report: str | None, params=None,
                  run_id=None) -> dict | None:
        """The earliest date to reconcile again, if any; tally_rerun goes on from there."""
        from tally import pipeline

        if params["dry_run"]:
            return None
        day = date.fromisoformat(business_date)
        dates = [date.fromisoformat(d) for d in landed["late_dates"]]
        following = pipeline.next_date_to_rerun(SETTINGS, run_id, day)
        if following:
            dates.append(following)
        return {"from_date": min(dates).isoformat()} if dates else None

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
