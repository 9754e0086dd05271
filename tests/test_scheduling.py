"""Running unattended: landing DAGs that wait for each feed up to its cut-off and mark the
date's assets, the daily DAG triggered by those assets, dry runs, one run at a time, and dates
in order. Real Airflow (`airflow dags test`), PostgreSQL and S3."""

import shutil
import sqlite3
import threading
from datetime import date, timedelta

import pytest
import yaml

from tally import airflow_local, config, pipeline, runlock, schedule, sources, storage
from tally.devtools import generator

DAY = date(2026, 11, 20)


def test_every_generated_source_belongs_to_exactly_one_feed(settings, tmp_path):
    feeds = schedule.load(settings)
    expected = schedule.expected_sources(settings)
    assert len(expected) == len(set(expected))
    assert set(expected) <= set(sources.load_all(settings))
    day = generator.generate_day(DAY, 50, tmp_path, seed=3)
    assert {key.split(":")[0] for key in day.files} == set(expected)
    for feed in feeds:
        assert timedelta(0) < feed.cutoff < timedelta(hours=24)


def _asset_events(settings, day: date) -> dict[str, dict]:
    """Asset name -> extra of its event for the business date, from Airflow's metadata."""
    import json

    with sqlite3.connect(settings.airflow_home / "airflow.db") as db:
        rows = db.execute(
            "select a.name, e.extra from asset_event e join asset a on a.id = e.asset_id"
            " where e.partition_key = ? order by e.id", (day.isoformat(),)).fetchall()
    return {name: json.loads(extra) for name, extra in rows}


def _forget_asset_events(settings, day: date) -> None:
    """The test's own clean-up: Airflow's metadata database outlives the warehouse's reset (the
    test home is kept between sessions), so the date's asset events of an earlier session are
    deleted first."""
    with sqlite3.connect(settings.airflow_home / "airflow.db") as db:
        db.execute("delete from asset_event where partition_key = ?", (day.isoformat(),))


def _daily_condition_met(settings, events: dict) -> bool:
    """Would tally_daily's schedule be met by these events? It needs every asset (AssetAll)."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import AssetAll, PartitionedAssetTimetable

    dag = DagBag(dag_folder=str(settings.project_dir / "dags" / "tally_daily.py")
                 ).get_dag("tally_daily")
    assert isinstance(dag.timetable, PartitionedAssetTimetable)
    condition = dag.timetable.asset_condition
    assert isinstance(condition, AssetAll)
    names = {asset.name for asset in condition.objects}
    assert names == {f"tally_landed_{s}" for s in schedule.expected_sources(settings)}
    return names <= set(events)


def test_landing_dags_mark_the_date_and_trigger_the_daily_run_once_all_have(
        clean, conn, s3, tmp_path):
    settings = clean
    airflow_local.prepare_home(settings)
    _forget_asset_events(settings, DAY)
    generator.generate_day(DAY, 150, settings.inbox_dir, seed=12)
    feeds = schedule.load(settings)
    for i, feed in enumerate(feeds):
        assert not _daily_condition_met(settings, _asset_events(settings, DAY)), feed.name
        code = airflow_local.dags_test(settings, DAY, log_file=tmp_path / f"{feed.name}.log",
                                       dag_id=f"tally_land_{feed.name}")
        assert code == 0, (tmp_path / f"{feed.name}.log").read_text()[-3000:]
        events = _asset_events(settings, DAY)
        assert {f"tally_landed_{s}" for f in feeds[:i + 1] for s in f.sources} == set(events)
    assert _daily_condition_met(settings, events)
    assert all(extra == {"business_date": DAY.isoformat(), "missing": False}
               for extra in events.values())
    arrivals = conn.execute("select source, status from tally.source_arrivals"
                            " where business_date = %s", (DAY,)).fetchall()
    assert sorted(arrivals) == sorted((s, "arrived") for s in schedule.expected_sources(settings))

    # The daily run, as a dry run: reconciled and gated, nothing published.
    code = airflow_local.dags_test(settings, DAY, log_file=tmp_path / "daily.log",
                                   conf={"dry_run": True})
    assert code == 0, (tmp_path / "daily.log").read_text()[-3000:]
    summary = pipeline.day_summary(settings, DAY)
    assert summary["run_status"] == "dry_run" and summary["gate_passed"] is True
    assert summary["reconciled"] > 0 and summary["report"] is None
    assert storage.list_keys(s3, settings.s3.published_bucket, "daily/") == []
    assert runlock.holder(conn) is None


def test_at_the_cut_off_a_missing_source_is_recorded_and_the_date_goes_on(
        clean, conn, tmp_path):
    include = tmp_path / "include"
    shutil.copytree(clean.include_dir, include)
    plan = yaml.safe_load((include / "schedule.yaml").read_text())
    plan.update(poke_minutes=0.02, max_poke_minutes=0.05)
    plan["feeds"]["wechatpay"]["cutoff_hours"] = 0.003  # about eleven seconds
    (include / "schedule.yaml").write_text(yaml.safe_dump(plan))
    settings = config.load({**clean.env, "TALLY_INCLUDE_DIR": str(include)})
    generator.generate_day(DAY, 100, settings.inbox_dir, seed=4, late=("wechatpay_trade_bill",))

    log = tmp_path / "wechatpay.log"
    airflow_local.dags_test(settings, DAY, log_file=log, dag_id="tally_land_wechatpay")
    text = log.read_text()
    assert "wait_for_files" in text and "AirflowSensorTimeout" in text, text[-3000:]
    row = conn.execute("select status, files, detail from tally.source_arrivals where"
                       " business_date = %s and source = 'wechatpay_trade_bill'",
                       (DAY,)).fetchone()
    assert row == ("missing", 0, "no file by the cut-off")
    assert _asset_events(settings, DAY)["tally_landed_wechatpay_trade_bill"] == {
        "business_date": DAY.isoformat(), "missing": True}

    # The date is reconciled without it, and the report names it.
    run = pipeline.run_day(settings, DAY)
    uri = pipeline.day_summary(settings, DAY)["report"]
    prefix = uri.split(settings.s3.published_bucket + "/", 1)[1]
    s3 = storage.client(settings)
    html = storage.get_bytes(s3, settings.s3.published_bucket,
                             f"{prefix}report_{DAY}.html").decode()
    assert "Missing sources" in html and "wechatpay_trade_bill" in html, run
    arrivals = storage.get_bytes(s3, settings.s3.published_bucket,
                                 f"{prefix}source_arrivals.csv").decode("utf-8-sig")
    assert "wechatpay,wechatpay_trade_bill,missing,0,no file by the cut-off" in arrivals


def test_two_runs_of_the_same_date_at_once_take_turns_and_count_once(clean, conn):
    settings = clean
    generator.generate_day(DAY, 150, settings.inbox_dir, seed=8)
    results, errors = [], []

    def run():
        try:
            results.append(pipeline.run_day(settings, DAY, wait_seconds=600))
        except Exception as exc:  # reported below, with the other run's outcome
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(results) == 2
    statuses = conn.execute("select status, report_uri from tally.runs where business_date = %s"
                            " order by started_at", (DAY,)).fetchall()
    assert [s for s, _ in statuses] == ["published", "published"]
    assert sorted(uri[-6:] for _, uri in statuses) == ["v0001/", "v0002/"]
    # Every open row once per project, and the files loaded once.
    assert conn.execute(
        "select count(*), count(distinct (project, transaction_key)) from marts.fct_outcomes"
        " where as_of_date = %s", (DAY,)).fetchone() == conn.execute(
        "select count(*), count(*) from intermediate.int_recon__scope where as_of_date = %s",
        (DAY,)).fetchone()
    assert conn.execute("select count(*) from tally.files where status = 'loaded'").fetchone()[0] \
        == len(schedule.expected_sources(settings)) + 1  # the second CAMT account
    assert runlock.holder(conn) is None


def test_the_run_lock_waits_names_its_holder_and_expires(clean, conn):
    runlock.acquire(conn, "run-a", DAY)
    runlock.acquire(conn, "run-a", DAY)  # a retry of the same run renews its lease
    with pytest.raises(runlock.RunInProgress, match="run run-a has been reconciling 2026-11-20"):
        runlock.acquire(conn, "run-b", DAY, wait_seconds=0)
    conn.execute("update tally.run_lock set heartbeat_at = now() - %s",
                 (runlock.STALE_AFTER + timedelta(minutes=1),))
    runlock.acquire(conn, "run-b", DAY)  # run-a died: its lease is taken over
    assert runlock.holder(conn) == "run-b"
    runlock.release(conn, "run-a")  # a late release by the dead run changes nothing
    assert runlock.holder(conn) == "run-b"
    runlock.release(conn, "run-b")
    assert runlock.holder(conn) is None


def test_a_date_after_one_never_reconciled_is_refused(clean, conn):
    settings = clean
    first, skipped, third = DAY, DAY + timedelta(days=1), DAY + timedelta(days=2)
    for day in (first, skipped, third):
        generator.generate_day(day, 60, settings.inbox_dir, seed=2)
    pipeline.run_day(settings, first)
    pipeline.land_day(settings, skipped)
    with pytest.raises(runlock.DateOutOfOrder, match=f"{skipped} has files but was never"):
        pipeline.run_day(settings, third)
    assert conn.execute("select status from tally.runs where business_date = %s",
                        (third,)).fetchone() == ("failed",)
    assert runlock.holder(conn) is None
    # In order, it goes through.
    assert [r["business_date"] for r in pipeline.run_in_order(settings, skipped, third)] == [
        skipped.isoformat(), third.isoformat()]
