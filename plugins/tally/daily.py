"""The plain part of the tally_daily DAG: what it computes when parsed and what each task does.

dags/tally_daily.py keeps the Airflow objects (the DAG, its params, tasks, callbacks and the
Cosmos task group) and calls these with values it takes from Airflow's context; like the rest
of the package, this module never imports Airflow. The steps are pipeline.py's; this adds the
DAG's choices (which date, what a dry run skips, which date to run again).

Airflow imports the DAG file often (and Cosmos reads the dbt project's files while it does, with
no dbt call), so only light modules are imported at the top; each step imports what it needs.
"""

from __future__ import annotations

import sys
from datetime import date, datetime
from pathlib import Path

from tally import recon, schedule, transform
from tally.config import Settings

# The business date as the first task returns it, rendered by Airflow when a dbt task runs.
BUSINESS_DATE_XCOM = "{{ ti.xcom_pull(task_ids='resolve_business_date') }}"
RUN_LOCK_WAIT_SECONDS = 300  # then fail; the retry waits again


# ---- when the DAG is parsed -----------------------------------------------------------------

def landed_assets(settings: Settings) -> list[tuple[str, str]]:
    """(name, uri) of every expected source's landed asset: a date is reconciled once each
    has been updated for it."""
    return [schedule.landed_asset(settings, source)
            for source in schedule.expected_sources(settings)]


def dbt_executable() -> str:
    """The dbt of the environment the DAG runs in."""
    return str(Path(sys.executable).parent / "dbt")


def dbt_operator_args(settings: Settings) -> dict:
    """Arguments of every dbt task. Incremental marts are built for one business date, with
    the rules, each channel's fee sign convention and the account registry as data, read when
    the DAG is parsed (every run records the rules' hash), so they are values; only `as_of`
    is a template, filled in by Airflow when a task runs. The models' unit tests check the
    SQL, not the day: `make test` runs them, a daily build leaves them out."""
    return {
        "install_deps": False,
        "exclude": transform.DAILY_EXCLUDE,
        "vars": recon.dbt_vars(settings, BUSINESS_DATE_XCOM),
    }


# ---- the tasks ------------------------------------------------------------------------------

def begin(settings: Settings, run_id: str, chosen: str | None, partition_key: str | None,
          logical_date: datetime | None, dry_run: bool) -> str:
    """The run's business date (chosen by hand, else the run's partition, else the day before
    its logical date); the run is recorded and holds the warehouse's run lock."""
    from tally import pipeline

    business_date = schedule.business_date_for(settings, chosen, partition_key, logical_date)
    pipeline.start_run(settings, run_id, business_date, dry_run=dry_run,
                       wait_seconds=RUN_LOCK_WAIT_SECONDS)
    return business_date.isoformat()


def land(settings: Settings, run_id: str, business_date: str,
         only: list[str] | None) -> dict:
    """Land the date's files still waiting, then files dropped late for earlier dates (their
    dates are in `late_dates`)."""
    from tally import pipeline

    day = date.fromisoformat(business_date)
    pipeline.heartbeat(settings, run_id, day)
    landed = pipeline.land_day(settings, day, only=only)
    landed["late_dates"] = pipeline.land_late_files(settings, day)
    return landed


def load(settings: Settings, run_id: str, business_date: str,
         only: list[str] | None) -> dict:
    from tally import pipeline

    return pipeline.load_day(settings, date.fromisoformat(business_date), only=only,
                             run_id=run_id)


def check_gate(settings: Settings, run_id: str, business_date: str) -> dict:
    """The day's invariants; raises gate.GateFailed if any broke."""
    from tally import pipeline

    return pipeline.check_gate(settings, run_id, date.fromisoformat(business_date))


def publish(settings: Settings, run_id: str, business_date: str, dry_run: bool) -> str | None:
    """The day's reports (their URI); a dry run publishes nothing and only ends the run."""
    from tally import pipeline

    if dry_run:
        pipeline.finish_dry_run(settings, run_id)
        return None
    return pipeline.publish(settings, run_id, date.fromisoformat(business_date))


def alert_if_needed(settings: Settings, business_date: str, dry_run: bool) -> list[str]:
    """Breaks above their limits, projects incomplete for want of a source, or sources
    missing for the day: tell a person. Returns the alerts' titles."""
    from tally.publish import alerts

    if dry_run:
        return []
    config = alerts.AlertSettings.from_env(settings.env)
    day = date.fromisoformat(business_date)
    events = [alerts.check_breaks(settings, config, day),
              alerts.check_incomplete_projects(settings, config, day),
              alerts.check_missing_sources(settings, config, day,
                                           expected=schedule.expected_sources(settings))]
    return [event.title for event in events if event]


def follow_up(settings: Settings, run_id: str, business_date: str, late_dates: list[str],
              dry_run: bool) -> dict | None:
    """The earliest date to reconcile again, if any, as tally_rerun's conf: a date a late
    file landed for, or the next date when this run may have changed what it carries over."""
    from tally import pipeline

    if dry_run:
        return None
    day = date.fromisoformat(business_date)
    dates = [date.fromisoformat(d) for d in late_dates]
    following = pipeline.next_date_to_rerun(settings, run_id, day)
    if following:
        dates.append(following)
    return {"from_date": min(dates).isoformat()} if dates else None


# ---- when a task fails for good -------------------------------------------------------------

def run_failed(settings: Settings, run_id: str, error: BaseException | str | None) -> None:
    """The run is over: record why and free the warehouse."""
    from tally import pipeline

    pipeline.fail_run(settings, run_id, error or "task failed")


def alert_gate_failed(settings: Settings, run_id: str | None, business_date: str,
                      error: BaseException | str | None) -> None:
    """A failed invariant is a verdict, not a glitch: a person is told."""
    from tally.publish import alerts

    alerts.on_gate_failed(alerts.AlertSettings.from_env(settings.env),
                          date.fromisoformat(business_date), str(error), run_id)
