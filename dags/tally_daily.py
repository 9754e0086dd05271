"""
### Tally daily reconciliation

For one business date: **land** every statement file in the raw zone (write-once, by content
hash) → **load** parsed rows into raw tables with lineage (bad files go to quarantine) →
**transform** with dbt (staging → canonical transactions → matching → marts, run by Cosmos) →
**gate** with Great Expectations (nothing goes further unless every invariant holds) →
**publish** the day's reports to the published zone.

The business date is the `business_date` parameter, or the day before the run's logical date
in the platform's time zone. Logic lives in the `tally` package; this file only wires it.
"""

from __future__ import annotations

import os
from datetime import date, timedelta
from pathlib import Path

import pendulum
from airflow.sdk import Param, dag, task
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import InvocationMode, LoadMode, TestBehavior

from tally import config, recon

SETTINGS = config.load()
# The rules in force when the DAG was parsed; every run records their hash.
RULES = recon.load(SETTINGS)
# dbt's profiles.yml reads the warehouse settings from these; they are never written to disk.
os.environ.update(SETTINGS.dbt_env())


@dag(
    dag_id="tally_daily",
    doc_md=__doc__,
    schedule="0 10 * * *",  # bills are ready mid-morning of the next day
    start_date=pendulum.datetime(2026, 1, 1, tz=SETTINGS.timezone),
    catchup=False,
    max_active_runs=1,
    tags=["tally", "reconciliation", "finance"],
    default_args={
        "owner": "finance-data",
        "retries": 2,
        "retry_delay": timedelta(minutes=2),
    },
    params={
        "business_date": Param(
            None, type=["null", "string"], format="date",
            description="Business date to reconcile (YYYY-MM-DD); default: the day before.",
        ),
    },
)
def tally_daily():
    @task
    def resolve_business_date(params=None, logical_date=None, run_id=None) -> str:
        from tally import pipeline

        chosen = (params or {}).get("business_date")
        if chosen:
            business_date = date.fromisoformat(chosen)
        else:
            business_date = logical_date.in_timezone(SETTINGS.timezone).date() - timedelta(days=1)
        pipeline.start_run(SETTINGS, run_id, business_date)
        return business_date.isoformat()

    @task
    def land(business_date: str) -> dict:
        from tally import pipeline

        return pipeline.land_day(SETTINGS, date.fromisoformat(business_date))

    @task
    def load(business_date: str, landed: dict) -> dict:
        from tally import pipeline

        return pipeline.load_day(SETTINGS, date.fromisoformat(business_date))

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
        # Asset events per model are off until the DAGs are scheduled by data (assets).
        render_config=RenderConfig(load_method=LoadMode.CUSTOM, test_behavior=TestBehavior.BUILD,
                                   emit_datasets=False),
        operator_args={
            "install_deps": False,
            # Incremental marts are built for one business date, with the rules as data.
            "vars": {
                "as_of": "{{ ti.xcom_pull(task_ids='resolve_business_date') }}",
                "reconciliation": RULES,
            },
        },
        default_args={"retries": 1},
    )

    def alert_gate_failed(context) -> None:
        from tally.publish import alerts

        alerts.on_gate_failed(alerts.AlertSettings.from_env(SETTINGS.env),
                              date.fromisoformat(context["ti"].xcom_pull(
                                  task_ids="resolve_business_date")),
                              str(context.get("exception")), context.get("run_id"))

    # A failed invariant is a verdict, not a glitch: never retried; a person is told.
    @task(retries=0, on_failure_callback=alert_gate_failed)
    def gate(business_date: str, run_id=None) -> dict:
        from tally import pipeline

        return pipeline.check_gate(SETTINGS, run_id, date.fromisoformat(business_date))

    @task
    def publish(business_date: str, verdict: dict, run_id=None) -> str:
        from tally import pipeline

        return pipeline.publish(SETTINGS, run_id, date.fromisoformat(business_date))

    @task
    def alert_if_needed(business_date: str, report: str) -> list[str]:
        """Breaks above their limits, or sources missing for the day: tell a person."""
        from tally.publish import alerts

        config = alerts.AlertSettings.from_env(SETTINGS.env)
        day = date.fromisoformat(business_date)
        events = [alerts.check_breaks(SETTINGS, config, day),
                  alerts.check_missing_sources(SETTINGS, config, day)]
        return [event.title for event in events if event]

    business_date = resolve_business_date()
    loaded = load(business_date, land(business_date))
    verdict = gate(business_date)
    loaded >> transform >> verdict
    alert_if_needed(business_date, publish(business_date, verdict))


tally_daily()
