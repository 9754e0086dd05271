"""Publishing on the real services: every output agrees with the reporting views, versions are
atomic for readers and never overwritten, and the HTML report renders offline in Chromium."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import struct
import subprocess
from datetime import timedelta
from decimal import Decimal

import openpyxl
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from tally import pipeline, storage, transform
from tally.publish import model, reports
from tests.browser import chromium
from tests.conftest import reset
from tests.test_transform import DAY, load_generated

RUN = "run-publish"
DAYS = [DAY - timedelta(days=2), DAY - timedelta(days=1), DAY]


@pytest.fixture(scope="module")
def built(settings):
    """Three generated days (so the match-rate chart has a history), gate passed for DAY."""
    reset(settings)
    for day in DAYS:
        load_generated(settings, scale=150, seed=20, day=day)
        transform.build(settings, day)
    pipeline.start_run(settings, RUN, DAY)
    pipeline.check_gate(settings, RUN, DAY)
    return settings


@pytest.fixture
def zone(built, s3):
    """An empty published zone for each test."""
    bucket = built.s3.published_bucket
    for key in storage.list_keys(s3, bucket, ""):
        s3.delete_object(Bucket=bucket, Key=key)
    return bucket


def keys(s3, bucket, prefix=""):
    return sorted(storage.list_keys(s3, bucket, prefix))


def view_totals(conn, view, where="true"):
    """Rows and per-currency sum of amount_minor of a reporting view for DAY."""
    rows = conn.execute(f"select count(*) from reporting.{view} where business_date = %s"
                        f" and {where}", (DAY,)).fetchone()[0]
    sums = dict(conn.execute(
        f"select currency, sum(amount_minor)::bigint from reporting.{view}"
        f" where business_date = %s and {where} group by currency", (DAY,)).fetchall())
    return rows, sums


def sheet_table(ws):
    """A table sheet read back: header, then rows as dicts by header."""
    rows = list(ws.iter_rows(values_only=True))
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


def minor_sums(rows, amount="金额 / Amount", currency="币种 / Currency"):
    """Sums of workbook amounts back in minor units (CNY: 2 decimals), exactly."""
    sums = {}
    for row in rows:
        value = Decimal(str(row[amount])) * 100
        assert value == value.to_integral_value()
        sums[row[currency]] = sums.get(row[currency], 0) + int(value)
    return sums


def test_a_clean_day_publishes_every_output_and_they_agree_with_the_views(built, conn, s3, zone):
    uri = pipeline.publish(built, RUN, DAY)
    prefix = f"daily/{DAY}/v0001/"
    assert uri == f"s3://{zone}/{prefix}"
    views = ["breaks", "daily_summary", "matches", "outcomes", "source_arrivals",
             "status_corrections", "suspense"]
    balance = has_balance_checks(conn)
    views += ["balance_checks"] if balance else []
    expected = sorted([prefix + "_manifest.json", prefix + f"report_{DAY}.html",
                       prefix + f"report_{DAY}.xlsx",
                       *(prefix + f"{v}.{ext}" for v in views for ext in ("csv", "parquet"))])
    assert keys(s3, zone) == expected  # each output written once, into the version

    manifest = json.loads(storage.get_bytes(s3, zone, prefix + "_manifest.json"))
    run = conn.execute("select code_version, rules_digest from tally.runs where run_id = %s",
                       (RUN,)).fetchone()
    assert (manifest["version"], manifest["run_id"]) == (1, RUN)
    assert (manifest["code_version"], manifest["rules_digest"]) == run
    assert manifest["gate"]["passed"] is True
    assert sorted((i["file_id"], i["sha256"]) for i in manifest["inputs"]) == sorted(
        conn.execute("select file_id, sha256 from tally.files where status = 'loaded'"
                     " and business_date <= %s", (DAY,)).fetchall())
    assert sorted(o["key"] for o in manifest["outputs"]) == [k for k in expected
                                                             if not k.endswith(".json")]
    for output in manifest["outputs"]:
        body = storage.get_bytes(s3, zone, output["key"])
        assert (hashlib.sha256(body).hexdigest(), len(body)) == (output["sha256"],
                                                                 output["bytes"])

    for view in views:
        columns = [r[0] for r in conn.execute(
            "select column_name from information_schema.columns where table_schema ="
            " 'reporting' and table_name = %s order by ordinal_position", (view,)).fetchall()]
        rows = conn.execute(f"select count(*) from reporting.{view} where business_date = %s",
                            (DAY,)).fetchone()[0]
        table = pq.read_table(io.BytesIO(storage.get_bytes(s3, zone, f"{prefix}{view}.parquet")))
        assert table.column_names == columns and table.num_rows == rows
        text = storage.get_bytes(s3, zone, f"{prefix}{view}.csv").decode("utf-8-sig")
        extract = list(csv.DictReader(io.StringIO(text)))
        assert len(extract) == rows
        for column in (c for c in columns if c.endswith("_minor")):
            total = conn.execute(f"select coalesce(sum({column}), 0)::bigint from"
                                 f" reporting.{view} where business_date = %s",
                                 (DAY,)).fetchone()[0]
            assert str(table.schema.field(column).type) == "int64"
            assert (pc.sum(table[column]).as_py() or 0) == total
            assert sum(int(r[column]) for r in extract if r[column]) == total
            # The decimal text column next to it is the same money, exactly.
            decimal = column[: -len("_minor")]
            assert sum(Decimal(r[decimal]) for r in extract if r[decimal]) * 100 == total
    assert rows > 0 and view_totals(conn, "breaks")[0] > 0

    book = openpyxl.load_workbook(io.BytesIO(storage.get_bytes(s3, zone,
                                                               f"{prefix}report_{DAY}.xlsx")))
    assert book.sheetnames == ["汇总 Summary", "差异 Breaks", "挂账 Suspense",
                               "挂账批次 Suspense batches", "挂账账龄 Suspense ageing",
                               "状态更正 Status corrections",
                               *(["余额核对 Balance checks"] if balance else [])]
    # The breaks sheet leaves out suspense items: they are on the suspense sheet.
    for sheet, view, where in [("差异 Breaks", "breaks", "outcome <> 'suspense'"),
                               ("挂账 Suspense", "suspense", "true"),
                               ("状态更正 Status corrections", "status_corrections", "true")]:
        ws = book[sheet]
        table = sheet_table(ws)
        count, sums = view_totals(conn, view, where)
        assert len(table) == count
        assert minor_sums(table) == sums
        assert ws.freeze_panes == "A2"
        assert ws["A1"].font.bold
        amount_at = [c.value for c in ws[1]].index("金额 / Amount") + 1
        if count:
            cell = ws.cell(row=2, column=amount_at)
            assert isinstance(cell.value, int | float) and cell.number_format.startswith(
                "#,##0.00")
    breaks = sheet_table(book["差异 Breaks"])
    assert "差异类型 / Break type" in breaks[0]
    assert {r["差异类型 / Break type"] for r in breaks} <= {
        f"{zh} {en}" for zh, en in conn.execute(
            "select label_zh, label_en from reporting.breaks").fetchall()}
    becomes = {r["逾期后差异类型 / Becomes break type"] for r in sheet_table(book["挂账 Suspense"])}
    assert becomes and becomes <= {f"{zh} {en}" for zh, en in conn.execute(
        "select label_zh, label_en from reference.break_types").fetchall()}
    # Ageing buckets and batches each account for every suspense row and amount.
    count, sums = view_totals(conn, "suspense")
    for sheet in ("挂账账龄 Suspense ageing", "挂账批次 Suspense batches"):
        summed = sheet_table(book[sheet])
        assert sum(r["笔数 / Count"] for r in summed) == count
        assert minor_sums(summed) == sums
    # The summary table is the daily_summary view.
    summary = list(book["汇总 Summary"].iter_rows(values_only=True))
    head = summary.index(next(r for r in summary if r[0] == "对账项目 / Project"))
    assert book["汇总 Summary"].freeze_panes == f"A{head + 2}"
    in_sheet = {(r[0], r[1]): (r[2], r[3], int(Decimal(str(r[8])) * 100))
                for r in summary[head + 1:] if r[0] != "合计 Total"}
    assert in_sheet == {(p, c): (n, m, b) for p, c, n, m, b in conn.execute(
        "select project, currency, row_count, matched_count, break_amount_minor"
        " from reporting.daily_summary where business_date = %s", (DAY,)).fetchall()}


def test_a_capped_workbook_shows_the_largest_items_and_the_extracts_keep_every_row(
        built, conn, s3, zone):
    """With the workbook limited to 3 rows a sheet: the suspense and breaks sheets show the 3
    largest (open breaks first), each ends with a note naming the extracts, the summary sheet
    repeats it; batches and ageing still sum every item; the extracts hold every row."""
    import dataclasses

    capped = dataclasses.replace(built, env={**built.env, "TALLY_WORKBOOK_ROWS": "3"})
    assert capped.workbook_rows == 3
    pipeline.publish(capped, RUN, DAY)
    prefix = f"daily/{DAY}/v0001/"
    book = openpyxl.load_workbook(io.BytesIO(storage.get_bytes(s3, zone,
                                                               f"{prefix}report_{DAY}.xlsx")))
    notes = [r[0] for r in book["汇总 Summary"].iter_rows(values_only=True) if r[0]]
    count, sums = view_totals(conn, "suspense")
    broken, _ = view_totals(conn, "breaks", "outcome <> 'suspense'")
    assert count > 3 and broken > 3
    for sheet, view, where, order in [
            ("挂账 Suspense", "suspense", "true", "abs(amount_minor) desc"),
            ("差异 Breaks", "breaks", "outcome <> 'suspense'",
             "outcome <> 'break', outcome <> 'matched', abs(amount_minor) desc")]:
        rows = list(book[sheet].iter_rows(values_only=True))
        table = [dict(zip(rows[0], row, strict=True)) for row in rows[1:4]]
        largest = [r[0] for r in conn.execute(
            f"select amount_minor from reporting.{view} where business_date = %s and {where}"
            f" order by {order} limit 3", (DAY,)).fetchall()]
        assert [int(Decimal(str(r["金额 / Amount"])) * 100) for r in table] == largest
        total = count if view == "suspense" else broken
        assert len(rows) == 1 + 3 + 2  # header, 3 rows, a blank line, the note
        note = rows[-1][0]
        assert f"3 of {total:,} rows shown" in note and f"{view}.csv and {view}.parquet" in note
        assert note in notes
    # Every item is counted in the batches and the ageing, whatever the cap.
    for sheet in ("挂账批次 Suspense batches", "挂账账龄 Suspense ageing"):
        summed = sheet_table(book[sheet])
        assert sum(r["笔数 / Count"] for r in summed) == count
        assert minor_sums(summed) == sums
    # The extracts hold every row.
    text = storage.get_bytes(s3, zone, f"{prefix}suspense.csv").decode("utf-8-sig")
    assert len(list(csv.DictReader(io.StringIO(text)))) == count
    table = pq.read_table(io.BytesIO(storage.get_bytes(s3, zone, f"{prefix}breaks.parquet")))
    assert table.num_rows == view_totals(conn, "breaks")[0]


def test_extracts_keep_null_and_empty_text_apart_and_write_values_as_before(built, conn,
                                                                           tmp_path):
    """PostgreSQL writes the CSV: booleans as True/False, a NULL as an empty cell, an empty
    text as "", amounts' decimal text exactly; Parquet reads NULL as null and "" as ""."""
    conn.execute(f"create or replace view reporting.probe as select '{DAY}'::date as business_date,"
                 " * from (values (1, 'a,b', ''::text, true, -1234::bigint, 'CNY', 1.50),"
                 " (2, null, 'x\"y', false, 5::bigint, 'JPY', null),"
                 " (3, 'z', null, null, null::bigint, 'KWD', 0.25))"
                 " as t(n, label, note, flag, amount_minor, currency, rate)")
    try:
        extract = reports.export_view(conn, "probe", DAY, tmp_path)
    finally:
        conn.execute("drop view reporting.probe")
    assert extract.rows == 3
    text = extract.files["probe.csv"].read_bytes().decode("utf-8")
    assert text == ("\ufeffbusiness_date,n,label,note,flag,amount_minor,currency,rate,amount\n"
                    f'{DAY},1,"a,b","",True,-1234,CNY,1.50,-12.34\n'
                    f'{DAY},2,,"x""y",False,5,JPY,,5\n'
                    f"{DAY},3,z,,,,KWD,0.25,\n")
    table = pq.read_table(extract.files["probe.parquet"])
    assert table.column_names == ["business_date", "n", "label", "note", "flag",
                                  "amount_minor", "currency", "rate"]
    assert table.column("note").to_pylist() == ["", 'x"y', None]
    assert table.column("label").to_pylist() == ["a,b", None, "z"]
    assert table.column("flag").to_pylist() == [True, False, None]
    assert table.column("amount_minor").to_pylist() == [-1234, 5, None]
    assert str(table.schema.field("rate").type) == "decimal128(38, 2)"
    assert [str(v) if v is not None else None for v in table.column("rate").to_pylist()] == [
        "1.50", None, "0.25"]


def test_publishing_again_creates_the_next_version_and_never_overwrites(built, s3, zone):
    first = pipeline.publish(built, RUN, DAY)
    before = {k: storage.get_bytes(s3, zone, k) for k in keys(s3, zone)}
    second = pipeline.publish(built, RUN, DAY)
    assert (first, second) == (f"s3://{zone}/daily/{DAY}/v0001/",
                               f"s3://{zone}/daily/{DAY}/v0002/")
    assert {k: storage.get_bytes(s3, zone, k) for k in before} == before
    assert reports.complete_versions(s3, zone, DAY) == [1, 2]
    assert reports.latest_manifest(s3, zone, DAY)["version"] == 2
    # Same day, same data: the extracts are the same bytes in both versions.
    for name in ("outcomes.csv", "breaks.parquet"):
        assert storage.get_bytes(s3, zone, f"daily/{DAY}/v0002/{name}") == \
            before[f"daily/{DAY}/v0001/{name}"]


def test_a_reader_sees_a_version_only_once_its_manifest_exists(built, conn, s3, zone,
                                                               monkeypatch):
    seen = {}
    put = storage.put_if_absent

    def spy(client, bucket, key, body, **extra):
        if key.endswith("/_manifest.json"):
            # The moment before the manifest: every output is in place, yet not complete.
            seen["keys"] = keys(s3, bucket, f"daily/{DAY}/")
            seen["complete"] = reports.complete_versions(s3, bucket, DAY)
            seen["latest"] = reports.latest_manifest(s3, bucket, DAY)
        return put(client, bucket, key, body, **extra)

    monkeypatch.setattr(storage, "put_if_absent", spy)
    pipeline.publish(built, RUN, DAY)
    assert f"daily/{DAY}/v0001/report_{DAY}.xlsx" in seen["keys"]
    assert len(seen["keys"]) == 2 + 2 * len(reports.existing_views(conn))
    assert seen["complete"] == [] and seen["latest"] is None
    assert reports.complete_versions(s3, zone, DAY) == [1]


def test_a_publication_that_dies_midway_stays_invisible(built, s3, zone, monkeypatch):
    put = storage.put_if_absent
    promoted = []

    def failing(client, bucket, key, body, **extra):
        if key.startswith("daily/"):
            promoted.append(key)
            if len(promoted) == 3:
                raise ConnectionError("the network went away")
        return put(client, bucket, key, body, **extra)

    monkeypatch.setattr(storage, "put_if_absent", failing)
    with pytest.raises(ConnectionError):
        pipeline.publish(built, RUN, DAY)
    assert len(keys(s3, zone, f"daily/{DAY}/v0001/")) == 2
    assert reports.complete_versions(s3, zone, DAY) == []

    monkeypatch.setattr(storage, "put_if_absent", put)
    assert pipeline.publish(built, RUN, DAY).endswith("/v0002/")
    assert reports.complete_versions(s3, zone, DAY) == [2]


def has_balance_checks(conn):
    return conn.execute("select to_regclass('reporting.balance_checks')").fetchone()[0]


def test_the_balance_checks_view_is_published_when_it_exists(built, conn, s3, zone):
    """With the dbt model if the project has it; else with a stand-in view of the same kind."""
    stand_in = not has_balance_checks(conn)
    if stand_in:
        conn.execute(
            "create view reporting.balance_checks as select business_date, 'platform_vs_bank'"
            " as check_type, project as subject, currency, matched_amount_minor +"
            " break_amount_minor as expected_minor, matched_amount_minor as actual_minor,"
            " break_amount_minor as difference_minor, break_count = 0 as passed"
            " from reporting.daily_summary")
    try:
        pipeline.publish(built, RUN, DAY)
        prefix = f"daily/{DAY}/v0001/"
        assert {prefix + "balance_checks.csv", prefix + "balance_checks.parquet"} <= set(
            keys(s3, zone))
        book = openpyxl.load_workbook(io.BytesIO(storage.get_bytes(
            s3, zone, f"{prefix}report_{DAY}.xlsx")))
        assert book.sheetnames[-1] == "余额核对 Balance checks"
        table = sheet_table(book["余额核对 Balance checks"])
        count = conn.execute("select count(*) from reporting.balance_checks"
                             " where business_date = %s", (DAY,)).fetchone()[0]
        assert len(table) == count > 0
        for column, title in [("expected_minor", "应有金额 / Expected"),
                              ("actual_minor", "实际金额 / Actual"),
                              ("difference_minor", "差额 / Difference")]:
            assert minor_sums([r for r in table if r[title] is not None], amount=title) == dict(
                conn.execute(f"select currency, sum({column})::bigint from"
                             f" reporting.balance_checks where business_date = %s"
                             f" and {column} is not null group by currency",
                             (DAY,)).fetchall())
        assert {r["通过 / Passed"] for r in table} <= {"是 Yes", "否 No"}
        html = storage.get_bytes(s3, zone, f"{prefix}report_{DAY}.html").decode()
        assert "余额核对 Balance checks" in html
    finally:
        if stand_in:
            conn.execute("drop view reporting.balance_checks")


# The HTML report in a real browser ---------------------------------------------------------

def screenshot(page, png, tmp_path):
    """Render a file headless; return the URLs the page itself asked the network for."""
    net_log = tmp_path / f"{png.stem}-net.json"
    subprocess.run([
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-default-apps", "--no-pings",
        # No name resolves: not even the browser's own background calls leave the machine.
        "--host-resolver-rules=MAP * ^NOTFOUND",
        f"--user-data-dir={tmp_path / (png.stem + '-profile')}", f"--log-net-log={net_log}",
        f"--screenshot={png}", "--window-size=1280,2000", page.as_uri(),
    ], check=True, capture_output=True, timeout=120)
    log = json.loads(net_log.read_text())
    names = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    # Requests a page makes carry its origin as initiator ("null" for a file); the browser's
    # own housekeeping has none ("not an origin").
    return [e["params"]["url"] for e in log["events"]
            if names[e["type"]] == "URL_REQUEST_START_JOB" and "url" in e.get("params", {})
            and e["params"].get("initiator") != "not an origin"]


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_the_html_report_renders_offline_in_headless_chromium(built, conn, s3, zone, tmp_path):
    pipeline.publish(built, RUN, DAY)
    html = storage.get_bytes(s3, zone, f"daily/{DAY}/v0001/report_{DAY}.html").decode()
    assert "http://" not in html and "https://" not in html
    assert "<script" not in html and "url(" not in html and " src=" not in html
    # The charts are inline SVG drawn from the views: one point per project and recent day.
    points = conn.execute("select count(distinct (business_date, project)) from"
                          " reporting.daily_summary where business_date between %s and %s",
                          (DAY - timedelta(days=model.HISTORY_DAYS - 1), DAY)).fetchone()[0]
    assert html.count("<circle") == points > len(DAYS)
    assert html.count("<polyline") >= 2
    assert "差异类型与金额 Breaks by type and amount" in html and "挂账账龄" in html

    page = tmp_path / "report.html"
    page.write_text(html, encoding="utf-8")
    png = tmp_path / "report.png"
    assert screenshot(page, png, tmp_path) == []
    assert png_size(png) == (1280, 2000)
    assert png.stat().st_size > 20_000

    # The request detector above does see a page that fetches from the network.
    control = tmp_path / "control.html"
    control.write_text('<link rel="stylesheet" href="https://fonts.example.com/a.css">'
                       '<img src="http://cdn.example.com/x.png">')
    assert sorted(screenshot(control, tmp_path / "control.png", tmp_path)) == [
        "http://cdn.example.com/x.png", "https://fonts.example.com/a.css"]


def test_extracts_stream_in_batches_with_the_same_bytes(built, conn, tmp_path, monkeypatch):
    """Views are exported a batch at a time (memory does not grow with the day); the files do
    not depend on the batch size, even where a numeric column's values grow from batch to
    batch (matches.minutes_apart)."""
    import pyarrow.parquet as pq

    from tally.publish import reports

    whole = {v: reports.export_view(conn, v, DAY, tmp_path) for v in ("outcomes", "matches")}
    (tmp_path / "small").mkdir()
    monkeypatch.setattr(reports, "BATCH_ROWS", 7)
    for view, extract in whole.items():
        batched = reports.export_view(conn, view, DAY, tmp_path / "small")
        assert batched.rows == extract.rows > 7 * 3
        csv_name, parquet_name = f"{view}.csv", f"{view}.parquet"
        assert batched.files[csv_name].read_bytes() == extract.files[csv_name].read_bytes()
        assert pq.read_table(batched.files[parquet_name]).equals(
            pq.read_table(extract.files[parquet_name]))
    # A numeric column gets one type for the whole view, wide enough for every batch.
    schema = pq.read_schema(whole["matches"].files["matches.parquet"])
    assert str(schema.field("minutes_apart").type) == "decimal128(38, 1)"


def test_the_item_sheets_hold_at_most_the_configured_rows_and_say_where_the_rest_are(
        tmp_path):
    """The suspense sheet shows the rows it is given (the largest, read by SQL) up to the
    workbook's limit; the rows past it are read (counted) but not written; the sheet's last
    line and the summary sheet say how many of how many and name the extracts."""
    from tally.publish import excel

    consumed = []

    def suspense():
        for i in range(25):
            consumed.append(i)
            yield {"age_days": i % 9, "project": "platform_vs_bank", "source": "bank_csv",
                   "side": "bank", "kind": "transfer", "direction": "credit",
                   "reference": f"R{i:03d}", "account": "****1234", "amount_minor": 1000 - i,
                   "currency": "CNY", "status": "success", "transaction_date": DAY,
                   "becomes_break_type": "long", "explanation": "no counterpart yet",
                   "transaction_key": f"k{i:03d}"}

    def view(name, columns, rows=()):
        return model.View(name, columns, ["text"] * len(columns), list(rows))

    day = model.DayReport(
        DAY, {"run_id": "r1", "gate_passed": True, "gate": {"evaluated": 3}},
        {"daily_summary": view("daily_summary", [c.key for c in excel.SUMMARY_COLUMNS]),
         "breaks": view("breaks", ["break_type", "label_zh", "label_en", "outcome"]),
         "status_corrections": view("status_corrections", ["project"])},
        counts={"suspense": 40, "breaks": 0}, limit=10)
    path = tmp_path / "book.xlsx"
    excel.write_workbook(day, suspense(), path)

    assert len(consumed) == 25
    book = openpyxl.load_workbook(path)
    sheet = book["挂账 Suspense"]
    rows = list(sheet.iter_rows(values_only=True))
    table = [dict(zip(rows[0], row, strict=True)) for row in rows[1:11]]
    assert [r["参考号 / Reference"] for r in table] == [f"R{i:03d}" for i in range(10)]
    assert [Decimal(str(r["金额 / Amount"])) for r in table] == [Decimal(1000 - i) / 100
                                                                 for i in range(10)]
    assert sheet.auto_filter.ref == "A1:Q11"
    # a blank line, then the note (the counts from the day: 40 in suspense, not the 25 read)
    assert rows[11] == (None,) * len(rows[0])
    note = rows[12][0]
    assert note.startswith("挂账 Suspense: 仅列出 10 / 40 行")
    assert "10 of 40 rows shown (largest amounts first)" in note
    assert "suspense.csv and suspense.parquet" in note
    notes = [r[0] for r in book["汇总 Summary"].iter_rows(values_only=True) if r[0]]
    assert note in notes
    assert not any(n.startswith("差异 Breaks") for n in notes)
