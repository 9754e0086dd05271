"""Landing in the write-once raw zone and COPY loading, on the real S3 server and PostgreSQL."""

import hashlib
import json
from datetime import date

import botocore.exceptions
import pytest

from tally import landing, pipeline, sources, storage
from tally.devtools import generator

DAY = date(2026, 11, 20)


def drop(settings, source: str, name: str, data: bytes, day: date = DAY):
    folder = settings.inbox_dir / source / day.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)


def test_files_land_byte_for_byte_under_their_hash_and_load_once(clean, conn, s3):
    settings = clean
    day = generator.generate_day(DAY, 300, settings.inbox_dir, seed=5)
    files = len(day.files)
    first = pipeline.land_day(settings, DAY)
    assert first["landed"] == files >= 7 and first["duplicates"] == 0

    for path in day.files.values():
        data = path.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        key = landing.raw_key(path.parent.parent.name, DAY, sha, path.name)
        assert key.startswith(f"raw/{path.parent.parent.name}/{DAY.isoformat()}/{sha}.")
        assert storage.get_bytes(s3, settings.s3.raw_bucket, key) == data

    loaded = pipeline.load_day(settings, DAY)
    assert loaded["loaded_files"] == files and loaded["quarantined"] == []
    rows = json.loads(day.labels.read_text())["rows"]
    expected_rows = sum(rows.values())
    assert loaded["loaded_rows"] == expected_rows

    # Files already picked up are not picked up again.
    assert pipeline.land_day(settings, DAY)["files"] == []
    # The same bytes delivered again (other names): duplicates of the first receipt, not loaded.
    for path in day.files.values():
        (path.parent / f"again_{path.name}").write_bytes(path.read_bytes())
    again = pipeline.land_day(settings, DAY)
    assert again["landed"] == 0 and again["duplicates"] == files
    assert pipeline.load_day(settings, DAY)["loaded_rows"] == 0
    assert conn.execute("select count(*) from raw.platform_ledger").fetchone()[0] == \
        rows["platform_ledger"]
    statuses = conn.execute(
        "select status, count(*), count(duplicate_of) from tally.files group by status"
        " order by status").fetchall()
    assert statuses == [("duplicate", files, files), ("loaded", files, 0)]


def test_raw_rows_carry_file_and_line(clean, conn):
    settings = clean
    day = generator.generate_day(DAY, 50, settings.inbox_dir, seed=2)
    pipeline.land_day(settings, DAY)
    pipeline.load_day(settings, DAY)
    lines = day.files["platform_ledger"].read_text().splitlines()
    for line_no, txn_id, amount, amount_minor in conn.execute(
            "select line_no, txn_id, amount, amount_minor from raw.platform_ledger"
            " order by line_no").fetchall():
        fields = lines[line_no - 1].split(",")
        assert (fields[0], fields[5]) == (txn_id, amount)
        assert amount_minor == int(amount.replace(".", ""))  # generated amounts have 2 decimals


def test_raw_zone_is_write_once(clean, s3):
    settings = clean
    key = "raw/platform_ledger/2026-11-20/abc.csv"
    assert storage.put_if_absent(s3, settings.s3.raw_bucket, key, b"first")
    assert not storage.put_if_absent(s3, settings.s3.raw_bucket, key, b"second")
    assert storage.get_bytes(s3, settings.s3.raw_bucket, key) == b"first"
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        s3.put_object(Bucket=settings.s3.raw_bucket, Key=key, Body=b"x", IfNoneMatch="*")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412


def test_bad_file_goes_to_quarantine_whole_and_the_day_goes_on(clean, conn, s3):
    settings = clean
    day = generator.generate_day(DAY, 100, settings.inbox_dir, seed=3)
    good = next((settings.inbox_dir / "platform_ledger" / DAY.isoformat()).iterdir())
    lines = good.read_text().splitlines()
    # 60 good rows, then one whose amount is not a number: none of the 60 may be loaded.
    fields = lines[61].split(",")
    fields[5] = "12.3.4"
    bad = "\n".join([lines[0], *lines[1:61], ",".join(fields), *lines[62:]]) + "\n"
    drop(settings, "platform_ledger", "late_correction.csv", bad.encode())

    pipeline.land_day(settings, DAY)
    result = pipeline.load_day(settings, DAY)
    assert result["loaded_files"] == len(day.files)
    (rejected,) = result["quarantined"]
    assert rejected["error"] == (
        "late_correction.csv, line 62, field 'amount': '12.3.4' is not an amount in 'CNY' "
        "(plain decimal, at most the currency's minor-unit digits)")

    file_id = rejected["file_id"]
    status, q_key, row_count = conn.execute(
        "select status, quarantine_key, row_count from tally.files where file_id = %s",
        (file_id,)).fetchone()
    assert status == "quarantined" and row_count is None
    assert conn.execute("select count(*) from raw.platform_ledger where file_id = %s",
                        (file_id,)).fetchone()[0] == 0
    assert storage.get_bytes(s3, settings.s3.quarantine_bucket, q_key) == bad.encode()
    reason = json.loads(storage.get_bytes(s3, settings.s3.quarantine_bucket,
                                          q_key + ".reason.json"))
    assert reason["reason"] == rejected["error"] and reason["file_id"] == file_id
    # The original bytes stay in the raw zone as received.
    raw_key = landing.raw_key("platform_ledger", DAY, hashlib.sha256(bad.encode()).hexdigest(),
                              "x.csv")
    assert storage.get_bytes(s3, settings.s3.raw_bucket, raw_key) == bad.encode()


def test_manual_upload_lands_a_file(clean, conn, tmp_path):
    settings = clean
    from tally import cli

    path = tmp_path / "ledger.csv"
    day = generator.generate_day(DAY, 60, tmp_path / "gen", seed=9)
    path.write_bytes(day.files["platform_ledger"].read_bytes())
    assert cli.main(["upload", "--source", "platform_ledger", "--date", "2026-11-20",
                     str(path)]) == 0
    rows = json.loads(day.labels.read_text())["rows"]["platform_ledger"]
    assert pipeline.load_day(settings, DAY)["loaded_rows"] == rows
    assert sources.load_all(settings)["platform_ledger"].parser_version.startswith("1+")
    parser_version = conn.execute("select parser_version from tally.files").fetchone()[0]
    assert parser_version == sources.load_all(settings)["platform_ledger"].parser_version
