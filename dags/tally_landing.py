"""
### Tally landing: one DAG per feed (include/schedule.yaml)

On the morning after each business date, at the feed's scheduled time, **wait for files** looks
for the feed's files (file drops and channel/bank APIs) and lands whatever has arrived in the
raw zone. Until every source of the feed has a usable file it checks again, backing off, in
reschedule mode (no worker slot is held while it waits), up to the feed's cut-off. Then **mark
landed** records each source as arrived or missing for the date, alerts on missing ones, and
updates the feed's assets for the date. `tally_daily` reconciles a date once every source's
asset has been updated for it (partitioned by business date).

Logic lives in the `tally` package; this file only wires it.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Asset, CronPartitionTimetable, Param, PokeReturnValue, dag, task

from tally import config, schedule

SETTINGS = config.load()


def business_date(params, dag_run, logical_date):
    return schedule.business_date_for(SETTINGS, (params or {}).get("business_date"),
                                      getattr(dag_run, "partition_key", None), logical_date)


def landing_dag(feed: schedule.Feed):
    assets = [Asset(*schedule.landed_asset(SETTINGS, source)) for source in feed.sources]

    @dag(
        dag_id=f"tally_land_{feed.name}",
        doc_md=__doc__,
        # The partition key is the business date: the day before the scheduled morning.
        schedule=CronPartitionTimetable(feed.schedule, timezone=SETTINGS.timezone,
                                        run_offset=-1, key_format="%Y-%m-%d"),
        catchup=False,
        max_active_runs=3,
        tags=["tally", "landing", feed.name],
        default_args={"owner": "finance-data", "retries": 2,
                      "retry_delay": timedelta(minutes=2), "retry_exponential_backoff": True},
        params={"business_date": Param(
            None, type=["null", "string"], format="date",
            description="Business date to land (YYYY-MM-DD); default: the run's partition.")},
    )
    def landing():
        @task.sensor(mode="reschedule", poke_interval=feed.poke, timeout=feed.cutoff,
                     exponential_backoff=True, max_wait=feed.max_poke)
        def wait_for_files(params=None, dag_run=None, logical_date=None) -> PokeReturnValue:
            from tally import pipeline

            day = business_date(params, dag_run, logical_date)
            status = pipeline.land_feed(SETTINGS, day, list(feed.sources))
            return PokeReturnValue(is_done=not status["waiting"], xcom_value=status)

        # Runs whether the files came or the cut-off passed: the date must go on either way.
        @task(trigger_rule="all_done", outlets=assets)
        def mark_landed(params=None, dag_run=None, logical_date=None, outlet_events=None):
            from tally import pipeline
            from tally.publish import alerts

            day = business_date(params, dag_run, logical_date)
            missing = pipeline.record_arrivals(SETTINGS, day, feed.name, list(feed.sources))
            if missing:
                alerts.check_missing_sources(SETTINGS, alerts.AlertSettings.from_env(
                    SETTINGS.env), day, expected=list(feed.sources))
            for source, asset in zip(feed.sources, assets, strict=True):
                # The business date is the partition: also for manual runs and backfills.
                outlet_events[asset].add_partitions(day.isoformat())
                outlet_events[asset].extra = {"business_date": day.isoformat(),
                                              "missing": source in missing}
            return {"business_date": day.isoformat(), "missing": missing}

        wait_for_files() >> mark_landed()

    return landing()


for _feed in schedule.load(SETTINGS):
    globals()[f"tally_land_{_feed.name}"] = landing_dag(_feed)
