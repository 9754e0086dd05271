"""The Great Expectations gate on the real warehouse: it passes a sound day and names what broke."""

import json
import os
import shutil
from dataclasses import replace
from datetime import date

import pytest

from tally import config, gate, pipeline, storage, transform
from tests.test_transform import load_generated

DAY = date(2026, 11, 20)


@pytest.fixture
def built_day(clean):
    load_generated(clean, scale=200, seed=6)
    transform.build(clean, DAY)
    return clean


def test_a_sound_day_passes(built_day):
    result = gate.run(built_day, DAY)
    assert result.passed, result.summary()
    assert result.evaluated == 14 and result.failures == []
    # The run's Data Docs are kept in object storage.
    bucket, key = result.data_docs.removeprefix("s3://").split("/", 1)
    page = storage.get_bytes(storage.client(built_day), bucket, key)
    assert b"<html" in page.lower() and len(
        storage.list_keys(storage.client(built_day), bucket, key.rsplit("/", 1)[0])) > 3

    # A second run's Data Docs hold that run's four validations only, and nothing of either
    # run is left in the repository's GX project.
    again = gate.run(built_day, DAY)
    prefix = again.data_docs.removeprefix(f"s3://{bucket}/").rsplit("/", 1)[0]
    pages = [k for k in storage.list_keys(storage.client(built_day), bucket, prefix)
             if "/validations/" in k and k.endswith(".html")]
    assert len(pages) == 4, pages
    assert not (built_day.expectations_dir / "gx" / "uncommitted" / "validations").exists()


def test_a_row_with_two_outcomes_fails_the_gate_by_name(built_day, conn):
    conn.execute(
        "insert into marts.fct_outcomes"
        " select * from marts.fct_outcomes where outcome = 'break' limit 1")
    result = gate.run(built_day, DAY)
    assert not result.passed
    failed = {f.expectation for f in result.failures}
    assert "Every open row has exactly one outcome in each of its projects" in failed
    assert "No row has two outcomes in a project on a date" in failed
    assert "first offending rows" in result.summary()
    # Each check query runs once and carries its own count: one row has two outcomes, and its
    # example is the query's row without the count column.
    twice = next(f for f in result.failures
                 if f.expectation == "No row has two outcomes in a project on a date")
    assert twice.observed == 1
    assert [set(row) for row in twice.examples] == [{"project", "transaction_key", "outcomes"}]
    assert twice.examples[0]["outcomes"] == 2


def test_a_lost_row_and_a_double_match_fail_the_gate(built_day, conn):
    conn.execute(
        "delete from marts.fct_outcomes where transaction_key ="
        " (select min(transaction_key) from marts.fct_outcomes where outcome = 'break')")
    conn.execute(
        "insert into marts.fct_matches select * from marts.fct_matches"
        " where rule = 'exact_reference' limit 1")
    conn.execute(
        "update marts.fct_outcomes set break_type = 'lost' where transaction_key ="
        " (select max(transaction_key) from marts.fct_outcomes where outcome = 'break')")
    failed = {f.expectation for f in gate.run(built_day, DAY).failures}
    assert failed == {
        "Every open row has exactly one outcome in each of its projects",
        "No platform or channel row is matched twice",
        "No statement row is matched twice outside a group rule",
        "Every break type is a known one",
    }


def test_the_gate_reads_its_own_date_only(built_day, conn):
    """Each suite's batch is the gated date's rows: a broken row on another date is not this
    date's failure, and a table with no row for the date is (unless it may be empty)."""
    conn.execute("create temp table earlier as select * from marts.fct_outcomes"
                 " where outcome = 'break' limit 1")
    conn.execute("update earlier set as_of_date = as_of_date - 1")
    conn.execute("insert into marts.fct_outcomes select * from earlier union all"
                 " select * from earlier")
    result = gate.run(built_day, DAY)
    assert result.passed, result.summary()

    conn.execute("delete from marts.fct_matches where as_of_date = %s", (DAY,))
    conn.execute("delete from marts.fct_outcomes where as_of_date = %s", (DAY,))
    result = gate.run(built_day, DAY)
    assert [(f.suite, f.expectation) for f in result.failures
            if f.expectation == "The business date has rows to check"] == [
        ("reconciliation_outcomes", "The business date has rows to check")]


def test_a_day_with_no_data_fails(built_day):
    result = gate.run(built_day, date(2026, 11, 21))
    assert not result.passed
    assert result.failures[0].expectation == "The business date has transactions"


def test_publish_refuses_a_run_whose_gate_failed(built_day, conn, s3):
    conn.execute("delete from marts.fct_outcomes where side = 'bank'")
    pipeline.start_run(built_day, "run-1", DAY)
    with pytest.raises(gate.GateFailed, match="exactly one outcome"):
        pipeline.check_gate(built_day, "run-1", DAY)
    with pytest.raises(RuntimeError, match="nothing is published"):
        pipeline.publish(built_day, "run-1", DAY)
    assert storage.list_keys(s3, built_day.s3.published_bucket, "daily/") == []
    assert conn.execute("select status, gate_passed from tally.runs").fetchone() == (
        "gate_failed", False)


def _definitions(gx_dir):
    suites = {}
    for path in sorted((gx_dir / "expectations").glob("*.json")):
        doc = json.loads(path.read_text())
        suites[doc["name"]] = sorted(
            (e["type"], e.get("description") or "", json.dumps(e["kwargs"], sort_keys=True))
            for e in doc["expectations"])
    return suites


def test_committed_gx_project_is_what_the_code_defines(settings, tmp_path):
    copy = tmp_path / "expectations"
    shutil.copytree(settings.expectations_dir, copy,
                    ignore=shutil.ignore_patterns("uncommitted"))
    gate.init_project(replace(settings, expectations_dir=copy))
    assert _definitions(copy / "gx") == _definitions(settings.expectations_dir / "gx")
    checkpoint = (settings.expectations_dir / "gx" / "checkpoints" / "daily_gate.json")
    assert checkpoint.exists()
    committed = (settings.expectations_dir / "gx" / "great_expectations.yml").read_text()
    assert "analytics_enabled: false" in committed
    assert "progress_bars:\n  globally: false" in committed


def test_gx_is_given_the_warehouse_url_by_the_code_not_the_environment(tmp_path):
    """The committed datasource names its URL as a config variable; each context is handed
    the value from the settings, and neither the environment nor the project's files get it.
    (No warehouse needed: the engine is built, not connected.)"""
    settings = config.load({**config.load().env,
                            "TALLY_PG_DSN": "postgresql://gx:pa%40ss-0@127.0.0.1:9/wh"})
    shutil.copytree(settings.expectations_dir / "gx", tmp_path / "gx",
                    ignore=shutil.ignore_patterns("uncommitted"))
    source = gate._context(settings, project_root=tmp_path).data_sources.get(gate.DATASOURCE)
    assert str(source.connection_string) == "${" + gate.URL_VARIABLE + "}"
    url = source.get_engine().url
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "gx", "pa@ss-0", "127.0.0.1", 9, "wh")
    assert gate.URL_VARIABLE not in os.environ
    written = [path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()]
    assert not [data for data in written if b"pa@ss-0" in data or b"pa%40ss-0" in data]
