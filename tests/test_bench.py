"""The benchmark at a small scale: every stage runs for real on the bench's own services, is
timed and measured, the day passes the gate and is published; the results make the table.
Consecutive days run for real too: each day reconciled in order on one warehouse, yesterday's
bill days settled by today's payouts, each day recorded, tabled and charted."""

from __future__ import annotations

import contextlib
import io
import json
import socket
from datetime import timedelta

import pandas as pd
import pytest

from tally import cli, config, loading, services, storage
from tally.devtools import bench, generator
from tally.services import postgres

STAGES = ["generate", "parse", "land", "load", "dbt build", "matching", "gate", "publish",
          "end to end"]
DAY_ROWS, DAYS = 300, 3
DATES = [bench.BENCH_DATE + timedelta(days=n) for n in range(DAYS)]


@pytest.fixture(scope="module")
def small_run():
    settings = bench.bench_settings(config.load())
    try:
        result = bench.run(2000, settings=settings, with_baselines=False, keep_services=True)
        settings = services.ensure_secrets(settings)  # the credentials its services made
        prefix = result["stages"]["publish"]["report"].removeprefix(
            f"s3://{settings.s3.published_bucket}/")
        published = storage.list_keys(storage.client(settings), settings.s3.published_bucket,
                                      prefix)
    finally:
        services.down(settings)
    return result, published


def test_every_stage_is_timed_and_measured(small_run):
    result, _ = small_run
    stages = result["stages"]
    assert list(stages) == STAGES
    for name, figures in stages.items():
        assert figures["seconds"] > 0, name
        assert figures["rows_per_second"] > 0, name
        assert figures["peak_mib"] > 0, name
    # The services' own processes were found and measured while the day was loaded.
    assert stages["load"]["peak_mib_by_process"]["postgres"] > 0
    assert stages["land"]["peak_mib_by_process"]["s3"] > 0
    assert set(stages["parse"]["peak_mib_by_process"]) == {"pipeline"}
    daily = sum(stages[s]["seconds"] for s in ("land", "load", "dbt build", "gate", "publish"))
    assert stages["end to end"]["seconds"] == pytest.approx(daily, abs=0.05)
    assert stages["matching"]["seconds"] <= stages["dbt build"]["seconds"]
    assert set(bench.MATCHING_MODELS) <= set(result["dbt_models"])
    assert result["rows_loaded"] == result["rows_in_files"] > 2000


def test_the_day_passes_the_gate_and_is_published(small_run):
    result, published = small_run
    assert result["stages"]["gate"]["passed"] is True
    assert any(key.endswith("/_manifest.json") for key in published)
    assert any(key.endswith("outcomes.csv") for key in published)


def test_the_table_has_every_stage_and_keeps_the_notes(small_run, tmp_path):
    result, _ = small_run
    with_baselines = {**result, "rows": 3000,
                      "baselines": {"pandas": {"seconds": 1.5, "rows_per_second": 2000,
                                               "peak_mib": 300, "unmatched": 12}}}
    results = bench.save([result, with_baselines], tmp_path / "benchmarks.json")
    assert [r["rows"] for r in json.loads((tmp_path / "benchmarks.json").read_text())] == [
        2000, 3000]
    markdown = tmp_path / "benchmarks.md"
    bench.write_markdown(results, markdown)
    text = markdown.read_text()
    for label in ("| generate |", "| parse |", "| land |", "| load |", "| dbt build |",
                  "| ↳ matching (int_recon__scope + fct_matches + int_recon__open_items"
                  " + fct_outcomes) |",
                  "| gate (passed) |", "| publish |", "| **end to end** (land → publish) |"):
        assert text.count(label) == 2, label
    assert f"| cores | {result['machine']['cores']} |" in text
    assert "| 3,000 | pandas | 1.5 | 2,000 | 300 | " in text
    assert "| unmatched: 12 |" in text

    markdown.write_text(text + "\nThe gate spends its time in one query.\n")
    bench.write_markdown(results[:1], markdown)
    again = markdown.read_text()
    assert "The gate spends its time in one query." in again
    assert "## 3,000 platform transactions" not in again


def test_copy_rows_sends_a_frame_in_pieces_unchanged(conn, monkeypatch):
    monkeypatch.setattr(loading, "COPY_CHUNK_ROWS", 3)
    frame = pd.DataFrame({
        "line_no": range(2, 12), "note": [f'row "{i}", with a comma' for i in range(10)],
        "amount_minor": [i * 101 for i in range(10)],
        "amount_inexact": [i % 2 == 0 for i in range(10)],
    }).iloc[2:]  # an index that does not start at 0, as after a filter
    with conn.transaction():
        conn.execute("create temporary table copy_probe (file_id bigint, record_no integer,"
                     " line_no integer, note text, amount_minor bigint, amount_inexact boolean)"
                     " on commit drop")
        count = loading.copy_rows(conn, "pg_temp.copy_probe",
                                  ["note", "amount_minor", "amount_inexact"], 42, frame)
        rows = conn.execute("select * from pg_temp.copy_probe order by record_no").fetchall()
    assert count == 8
    assert rows == [(42, n, line, note, amount, inexact) for n, (line, note, amount, inexact)
                    in enumerate(frame.itertuples(index=False), 1)]


@pytest.fixture(scope="module")
def three_days(tmp_path_factory):
    """`tally bench --rows 300 --days 3` from the command line, its services kept until the
    warehouse has been looked at."""
    out = tmp_path_factory.mktemp("bench-days")
    settings = bench.bench_settings(config.load())
    printed = io.StringIO()
    seen = {}
    try:
        with contextlib.redirect_stdout(printed):
            seen["exit"] = cli.main(["bench", "--rows", str(DAY_ROWS), "--days", str(DAYS),
                                     "--keep", "--out", str(out / "benchmarks.json"),
                                     "--markdown", str(out / "benchmarks.md")])
        settings = services.ensure_secrets(settings)  # the credentials its services made
        with postgres.connect(settings, autocommit=True) as conn:
            seen["runs"] = conn.execute(
                "select business_date, status, gate_passed from tally.runs"
                " order by started_at").fetchall()
            seen["locks"] = conn.execute("select count(*) from tally.run_lock").fetchone()[0]
            seen["settled"] = conn.execute(
                "select left_key, left_business_date, right_business_date, left_amount_minor,"
                " right_amount_minor from reporting.matches where business_date = %s"
                " and project = 'channel_settlement_vs_bank'", (DATES[1],)).fetchall()
            seen["before"] = dict(conn.execute(
                "select transaction_key, outcome from reporting.outcomes where business_date = %s"
                " and project = 'channel_settlement_vs_bank' and transaction_key = any(%s)",
                (DATES[0], [row[0] for row in seen["settled"]])).fetchall())
        seen["inbox_files"] = [p for p in settings.inbox_dir.rglob("*")
                               if p.is_file() and ".picked" not in p.parts]
    finally:
        services.down(settings)
    seen["results"] = json.loads((out / "benchmarks.json").read_text())
    seen["markdown"] = (out / "benchmarks.md").read_text()
    seen["printed"] = printed.getvalue()
    return seen


def test_every_day_is_reconciled_in_order_each_stage_timed(three_days):
    assert three_days["exit"] == 0
    [result] = three_days["results"]
    assert (result["rows"], result["day_count"]) == (DAY_ROWS, DAYS)
    days = result["days"]
    assert [d["business_date"] for d in days] == [d.isoformat() for d in DATES]
    # Day 2 and the last two are published; day 1 ends after the gate, as a dry run.
    assert [d["published"] for d in days] == [False, True, True]
    for day in days:
        stages = day["stages"]
        daily = ["land", "load", "dbt build", "gate"] + (["publish"] if day["published"] else [])
        assert list(stages) == ["generate", "land", "load", "dbt build", "matching", "gate",
                                *(["publish"] if day["published"] else []), "end to end"]
        for name, figures in stages.items():
            assert figures["seconds"] > 0, (day["business_date"], name)
            assert figures["peak_mib"] > 0, (day["business_date"], name)
        assert stages["gate"]["passed"] is True
        assert stages["end to end"]["stages"] == daily
        assert stages["end to end"]["seconds"] == pytest.approx(
            sum(stages[s]["seconds"] for s in daily), abs=0.05)
        assert day["rows_loaded"] == day["rows_in_files"] > DAY_ROWS
    # The warehouse ran each day once, in order, through the run lock, and released it.
    assert three_days["runs"] == [(DATES[0], "dry_run", True), (DATES[1], "published", True),
                                  (DATES[2], "published", True)]
    assert three_days["locks"] == 0
    # Each day's generated files were deleted once landed.
    assert three_days["inbox_files"] == []


def test_yesterdays_bill_days_are_settled_by_todays_payouts(three_days):
    """Suspense carries over: day 1's bill days wait in suspense, and day 2 matches each to
    the payout its channel booked that morning, for the bill day's net."""
    payers = {payout["payer"] for payout in generator.PAYOUTS.values()}
    bookings = generator.build_day(DATES[1], DAY_ROWS).bookings
    payouts = sorted(bookings.loc[bookings["counterparty"].isin(payers), "amount_minor"])
    settled = three_days["settled"]
    assert len(payouts) == len(generator.PAYOUTS) == len(settled)
    assert sorted(row[4] for row in settled) == payouts
    assert {row[1:3] for row in settled} == {(DATES[0], DATES[1])}
    assert all(left == right for *_, left, right in settled)
    assert three_days["before"] == {row[0]: "suspense" for row in settled}


def test_the_days_are_written_as_a_table_a_chart_and_the_flat_cost_check(three_days):
    [result] = three_days["results"]
    days = result["days"]
    check = result["flat_cost"]
    last, second = (days[i]["stages"]["end to end"]["seconds"] for i in (-1, 1))
    assert check["end_to_end_ratio"] == round(last / second, 3)
    assert check["end_to_end_within_target"] == (check["end_to_end_ratio"] <= 1.15)
    assert check["peak_mib"] == max(s["peak_mib"] for d in days for s in d["stages"].values())
    assert check["peak_within_target"] == (check["peak_mib"] < 2048)
    # Each day's scope: its new rows, and from day 2 the open items carried into it.
    scopes = [d["scope_rows"] for d in days]
    assert scopes[0]["carried"] == 0 and all(s["new"] > DAY_ROWS for s in scopes)
    assert all(s["carried"] > 0 for s in scopes[1:])
    held = (scopes[-1]["new"] + scopes[-1]["carried"], scopes[1]["new"] + scopes[1]["carried"])
    assert check["per_100k_in_scope_ratio"] == pytest.approx(
        (last / held[0]) / (second / held[1]), abs=0.01)

    text = three_days["markdown"]
    assert f"## {DAY_ROWS} platform transactions a day, {DAYS} consecutive days" in text
    assert ("| day | date | in scope: new + carried | generate | land | load | dbt build |"
            " matching | gate | publish | end to end | peak MiB |") in text
    rows = [line.split(" | ") for line in text.splitlines()
            if line.startswith("| ") and line.split(" | ")[1:2] in ([d.isoformat()] for d in DATES)]
    assert [row[:2] for row in rows] == [[f"| {n}", d.isoformat()] for n, d in enumerate(DATES, 1)]
    assert [row[9] == "–" for row in rows] == [True, False, False]  # publish: not on day 1
    assert rows[0][2] == f"{days[0]['scope_rows']['new']:,} + 0"
    assert "```mermaid\nxychart-beta\n" in text
    assert '    x-axis "day" ["1", "2", "3"]' in text
    end_to_end = ", ".join(f"{d['stages']['end to end']['seconds']:g}" for d in days)
    assert f"    bar [{end_to_end}]" in text
    assert f"Flat cost: day {DAYS}'s end to end" in text
    assert "per 100,000 rows in scope (new rows + open items carried)" in text
    assert "Flat cost:" in three_days["printed"]
    assert three_days["printed"].count(f"\nday 2 {DATES[1].isoformat()}: ") == 1


def test_a_days_result_is_kept_beside_the_one_day_results(three_days, small_run, tmp_path):
    [days] = three_days["results"]
    single, _ = small_run
    path = tmp_path / "benchmarks.json"
    bench.save([single], path)
    bench.save([days], path)
    again = {**days, "started_at": "later"}
    merged = bench.save([again], path)  # the same rows and days: replaced
    assert [(r["rows"], r.get("day_count"), r["started_at"] == "later") for r in merged] == [
        (single["rows"], None, False), (DAY_ROWS, DAYS, True)]
    bench.write_markdown(merged, tmp_path / "benchmarks.md")
    text = (tmp_path / "benchmarks.md").read_text()
    assert f"## {single['rows']:,} platform transactions\n" in text
    assert f"## {DAY_ROWS} platform transactions a day, {DAYS} consecutive days" in text


def test_the_bench_takes_its_slots_ports_and_refuses_ports_in_use():
    base = config.load()
    slot_2 = bench.bench_settings(base, slot=2)
    assert (slot_2.pg.port, slot_2.s3.port) == (base.pg.port + 3, base.s3.port + 30)
    with pytest.raises(ValueError):
        bench.bench_settings(base, slot=bench.MAX_SLOT + 1)
    with socket.socket() as other:  # a port another checkout's bench would hold
        other.bind(("127.0.0.1", 0))
        other.listen()
        taken = other.getsockname()[1]
        settings = bench.bench_settings(config.load({**base.env,
                                                     "TALLY_PG_PORT": str(taken - 1)}))
        assert settings.pg.port == taken
        with pytest.raises(RuntimeError, match=rf"ports {taken}\b.*--slot N"):
            bench._check_ports_free(settings)
