"""The daily DAG, run by real Airflow (`airflow dags test`) on the real services."""

import csv
import io
import re
import shutil
from dataclasses import replace
from datetime import date

from tally import airflow_local, pipeline, storage
from tally.devtools import generator

DAY = date(2026, 11, 20)


def published(settings, s3, day=DAY):
    return sorted(storage.list_keys(s3, settings.s3.published_bucket, f"daily/{day}/"))


def test_a_day_runs_end_to_end_and_again_with_the_same_result(clean, conn, s3, tmp_path):
    settings = clean
    generator.generate_day(DAY, 300, settings.inbox_dir, seed=12)
    assert airflow_local.dags_test(settings, DAY, log_file=tmp_path / "first.log") == 0
    first = pipeline.day_summary(settings, DAY)
    assert first["run_status"] == "published" and first["gate_passed"] is True
    assert first["matched"] + first["suspense"] + first["break_rows"] == first["reconciled"] > 0
    # A break is a difference: an amount mismatch is one break of two rows.
    assert 0 < first["breaks"] <= first["break_rows"]
    assert set(first["match_rate"]) == {"platform_vs_bank", "custody_flows_vs_bank",
                                        "platform_vs_alipay", "platform_vs_wechatpay",
                                        "channel_settlement_vs_bank"}
    # Every row in scope counts once per project (a channel bill day is its bill rows, in the
    # platform project, and one batch row, in the settlement project).
    assert first["reconciled"] == conn.execute(
        "select count(*) from intermediate.int_recon__scope where as_of_date = %s",
        (DAY,)).fetchone()[0]
    assert first["report"] == f"s3://{settings.s3.published_bucket}/daily/{DAY}/v0001/"

    # The published outcomes are exactly the reporting view's rows for the day.
    body = storage.get_bytes(s3, settings.s3.published_bucket, f"daily/{DAY}/v0001/outcomes.csv")
    report = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    in_view = conn.execute(
        "select project, transaction_key, outcome, amount_minor from reporting.outcomes"
        " where business_date = %s", (DAY,)).fetchall()
    assert sorted((r["project"], r["transaction_key"], r["outcome"], int(r["amount_minor"]))
                  for r in report) == sorted(in_view)
    breaks = storage.get_bytes(s3, settings.s3.published_bucket, f"daily/{DAY}/v0001/breaks.csv")
    assert len(breaks.decode("utf-8-sig").splitlines()) - 1 == conn.execute(
        "select count(*) from reporting.breaks where business_date = %s", (DAY,)).fetchone()[0]
    assert published(settings, s3) == [f"daily/{DAY}/v0001/{name}" for name in (
        "_manifest.json", "balance_checks.csv", "balance_checks.parquet",
        "breaks.csv", "breaks.parquet", "daily_summary.csv", "daily_summary.parquet",
        "matches.csv", "matches.parquet", "outcomes.csv", "outcomes.parquet",
        f"report_{DAY}.html", f"report_{DAY}.xlsx", "source_arrivals.csv",
        "source_arrivals.parquet", "status_corrections.csv", "status_corrections.parquet",
        "suspense.csv", "suspense.parquet")]

    raw_rows = conn.execute("select count(*) from raw.platform_ledger").fetchone()[0]
    # Delivered again, as `make demo` does: the same bytes are duplicates, not loaded twice.
    generator.generate_day(DAY, 300, settings.inbox_dir, seed=12)
    assert airflow_local.dags_test(settings, DAY, log_file=tmp_path / "second.log") == 0
    second = pipeline.day_summary(settings, DAY)
    assert {k: v for k, v in second.items() if k not in ("run_id", "report", "files")} == \
        {k: v for k, v in first.items() if k not in ("run_id", "report", "files")}
    assert second["files"]["duplicate"] == second["files"]["loaded"] == first["files"]["loaded"]
    assert conn.execute("select count(*) from raw.platform_ledger").fetchone()[0] == raw_rows
    again = storage.get_bytes(s3, settings.s3.published_bucket, f"daily/{DAY}/v0002/outcomes.csv")
    assert again == body


def test_a_day_whose_invariant_fails_publishes_nothing(clean, conn, s3, tmp_path):
    """A matching change that pairs a payment with both of the bank's duplicate bookings, and
    whose dbt tests were dropped with it: only the gate stands between it and finance."""
    project = tmp_path / "dbt_project"
    shutil.copytree(clean.dbt_project_dir, project,
                    ignore=shutil.ignore_patterns("target", "logs"))
    macro = project / "macros" / "reconciliation.sql"
    macro.write_text(macro.read_text().replace(" and l.occurrence = r.occurrence", ""))
    for schema in (project / "models").glob("*/_*__models.yml"):  # one per folder
        schema.write_text(re.sub(r"(?ms)^\s+data_tests:.*?(?=^\s+- name:|^unit_tests:|\Z)",
                                 "\n", schema.read_text()).split("unit_tests:")[0])
    settings = replace(clean, dbt_project_dir=project,
                       env={**clean.env, "TALLY_DBT_PROJECT_DIR": str(project)})

    generator.generate_day(DAY, 300, settings.inbox_dir, seed=12)
    log = tmp_path / "run.log"
    code = airflow_local.dags_test(settings, DAY, log_file=log)
    summary = pipeline.day_summary(settings, DAY)
    assert summary["run_status"] == "gate_failed" and summary["gate_passed"] is False
    assert summary["report"] is None
    assert published(settings, s3) == []
    text = log.read_text()
    assert "gate FAILED" in text
    assert "No platform or channel row is matched twice" in text
    assert code != 0 or "state=failed" in text
