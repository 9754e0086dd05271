"""Faults on the real services: S3 down while landing, PostgreSQL restarted in the middle of a
COPY, a publisher killed midway, the same file delivered twice, and two lands and two loads of
one day at once. After each, Tally recovers on its own, and nothing is lost: every file that
arrived is accounted for in the manifest (tally.files)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import psycopg
import pytest

from tally import pipeline, sources, storage, transform
from tally.devtools import generator
from tally.publish import reports
from tally.services import postgres
from tally.services import s3 as s3_service
from tests.conftest import reset

DAY = date(2026, 12, 1)
RUN = "run-faults"


# Helpers ------------------------------------------------------------------------------------

def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def arrived(settings, day: date = DAY) -> dict[tuple[str, str], str]:
    """Every file in the local drop for the day: (source, name) -> sha256 of its bytes."""
    files = {}
    for path in sorted(settings.inbox_dir.glob(f"*/{day.isoformat()}/*")):
        source = path.parent.parent.name
        if not source.startswith(".") and not path.name.startswith("."):
            files[(source, path.name)] = sha256(path.read_bytes())
    return files


def manifest(conn, day: date = DAY) -> list[tuple]:
    return conn.execute(
        "select file_id, source, original_name, sha256, status, duplicate_of, raw_key"
        " from tally.files where business_date = %s order by file_id", (day,)).fetchall()


def assert_nothing_lost(settings, conn, s3, day: date = DAY,
                        final=("loaded", "duplicate", "quarantined")) -> list[tuple]:
    """Every file that arrived is in the manifest, and nothing else is; each content is accepted
    once (other receipts of it are duplicates of that one); every receipt ended in a final
    status; and the raw zone holds the bytes of each."""
    rows = manifest(conn, day)
    assert {(s, n): h for _, s, n, h, *_ in rows} == arrived(settings, day)
    firsts = {h: f for f, _, _, h, status, _, _ in rows if status != "duplicate"}
    assert len(firsts) == len([r for r in rows if r[4] != "duplicate"])  # one first per content
    for file_id, _, _, digest, status, duplicate_of, key in rows:
        assert status in final, (file_id, status)
        assert duplicate_of == (firsts[digest] if status == "duplicate" else None)
        assert sha256(storage.get_bytes(s3, settings.s3.raw_bucket, key)) == digest
    return rows


def raw_rows(conn, table: str) -> tuple[int, int]:
    """Rows in a raw table, and distinct (file, line) among them: equal when none is twice."""
    return conn.execute(f"select count(*), count(distinct (file_id, line_no)) from raw.{table}"
                        ).fetchone()


def assert_each_file_loaded_once(settings, conn, day: date = DAY) -> int:
    """A loaded file's rows are in its raw table as many times as its manifest says, any other
    receipt has none there; returns the rows loaded."""
    configs = sources.load_all(settings)
    total = 0
    for file_id, source, status, row_count in conn.execute(
            "select file_id, source, status, row_count from tally.files"
            " where business_date = %s", (day,)).fetchall():
        in_table = conn.execute(f"select count(*) from {configs[source].table_name()}"
                                " where file_id = %s", (file_id,)).fetchone()[0]
        assert in_table == (row_count if status == "loaded" else 0), (file_id, status)
        total += in_table
    return total


def in_processes(count: int, code: str, *args: str) -> list[dict]:
    """Run `code` in `count` Python processes released at the same moment (as two Airflow
    tasks would run); each prints its JSON result last."""
    go = Path(os.environ["TALLY_HOME"]) / f"faults-go-{os.getpid()}"
    go.unlink(missing_ok=True)
    wait = f"import os, time\nwhile not os.path.exists({str(go)!r}): time.sleep(0.01)\n"
    procs = [subprocess.Popen([sys.executable, "-c", wait + code, *args], text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(count)]
    time.sleep(1)  # let both import Tally, then release them together
    go.touch()
    results = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            results.append(json.loads(out.splitlines()[-1]))
    finally:
        go.unlink()
    return results


# 1. S3 down while landing --------------------------------------------------------------------

def test_landing_while_s3_is_down_fails_clearly_and_lands_everything_once_it_is_back(
        clean, conn, s3, caplog):
    settings = clean
    generator.generate_day(DAY, 200, settings.inbox_dir, seed=31)
    files = arrived(settings)
    # botocore logs each retry it decides on: the count is the client's real behaviour.
    caplog.set_level(logging.DEBUG, logger="botocore.retries.standard")
    s3_service.stop(settings)
    try:
        with pytest.raises(storage.StorageUnavailable) as down:
            pipeline.land_day(settings, DAY)
    finally:
        s3_service.start(settings)

    # A clear error: which endpoint, which object, after bounded retries.
    assert str(down.value).startswith(
        f"S3 at {settings.s3.endpoint} unreachable while writing"
        f" s3://{settings.s3.raw_bucket}/raw/")
    assert f"gave up after {storage.RETRIES} retries" in str(down.value)
    retries = [r for r in caplog.records if r.getMessage().startswith("Retry needed")]
    assert len(retries) == storage.RETRIES
    # Nothing half done: no object, no manifest row, no file marked as picked up.
    assert storage.list_keys(s3, settings.s3.raw_bucket, "") == []
    assert manifest(conn) == []
    assert [p for p in (settings.inbox_dir / ".picked").rglob("*") if p.is_file()] == []

    # S3 is back: the same files are handed out again and each lands once.
    again = pipeline.land_day(settings, DAY)
    assert (again["landed"], again["duplicates"]) == (len(files), 0)
    assert pipeline.land_day(settings, DAY)["files"] == []
    assert len(storage.list_keys(s3, settings.s3.raw_bucket, "raw/")) == len(files)
    loaded = pipeline.load_day(settings, DAY)
    assert (loaded["loaded_files"], loaded["quarantined"]) == (len(files), [])
    assert assert_each_file_loaded_once(settings, conn) == loaded["loaded_rows"]
    assert len(assert_nothing_lost(settings, conn, s3)) == len(files)


# 2. PostgreSQL restarted in the middle of a COPY ----------------------------------------------

def wait_for_copy(settings, table: str, loader: threading.Thread) -> int:
    """Poll until a COPY into `table` has written rows (its transaction still open); return how
    many it had written."""
    with postgres.connect(settings, autocommit=True) as watch:
        while loader.is_alive():
            row = watch.execute("select tuples_processed from pg_stat_progress_copy"
                                " where relid = %s::regclass", (table,)).fetchone()
            if row and row[0] > 0:
                return row[0]
            time.sleep(0.01)
    raise AssertionError(f"the load ended before its COPY into {table} was seen")


def test_a_postgres_restart_in_the_middle_of_a_copy_loads_the_whole_file_or_nothing(clean, s3):
    settings = clean
    generated = generator.generate_day(DAY, 200_000, settings.inbox_dir, seed=32)
    # Only the platform ledger (200k rows): its COPY runs for about a second.
    for key, path in generated.files.items():
        if key != "platform_ledger":
            path.unlink()
    expected = json.loads(generated.labels.read_text())["rows"]["platform_ledger"]
    (landed,) = pipeline.land_day(settings, DAY)["files"]

    outcome = {}

    def load():
        try:
            outcome["result"] = pipeline.load_day(settings, DAY)
        except Exception as exc:  # the failure is what this test is about
            outcome["error"] = exc

    loader = threading.Thread(target=load)
    loader.start()
    try:
        written = wait_for_copy(settings, "raw.platform_ledger", loader)
        postgres.restart(settings)
    finally:
        loader.join()
        postgres.start(settings)  # running again whatever happened (a no-op if it is)

    assert 0 < written < expected
    assert "result" not in outcome and isinstance(outcome["error"], psycopg.OperationalError)
    with postgres.connect(settings, autocommit=True) as conn:
        # Whole file or nothing: none of the rows written before the restart survived.
        assert conn.execute("select count(*) from raw.platform_ledger where file_id = %s",
                            (landed["file_id"],)).fetchone()[0] == 0
        assert conn.execute("select status, row_count, loaded_at from tally.files"
                            " where file_id = %s", (landed["file_id"],)).fetchone() == \
            ("landed", None, None)

        # Loading again loads it completely, and once more loads nothing.
        again = pipeline.load_day(settings, DAY)
        assert (again["loaded_files"], again["loaded_rows"]) == (1, expected)
        assert raw_rows(conn, "platform_ledger") == (expected, expected)
        assert conn.execute("select status, row_count from tally.files where file_id = %s",
                            (landed["file_id"],)).fetchone() == ("loaded", expected)
        assert pipeline.load_day(settings, DAY)["loaded_files"] == 0
        assert raw_rows(conn, "platform_ledger") == (expected, expected)
        assert_nothing_lost(settings, conn, s3)


# 4. The same file twice; two lands and two loads at once ------------------------------------

def test_the_same_file_delivered_twice_is_recorded_as_a_duplicate_and_loaded_once(
        clean, conn, s3):
    settings = clean
    generated = generator.generate_day(DAY, 200, settings.inbox_dir, seed=34)
    expected = json.loads(generated.labels.read_text())["rows"]
    ledger = generated.files["platform_ledger"]
    files = len(generated.files)
    # The same bytes under a second name, in the same delivery.
    ledger.with_name("resent_" + ledger.name).write_bytes(ledger.read_bytes())
    first = pipeline.land_day(settings, DAY)
    assert (first["landed"], first["duplicates"]) == (files, 1)
    pipeline.load_day(settings, DAY)

    # The same name again, later (a sender that retries its upload): written anew, same bytes.
    stat = ledger.stat()
    ledger.write_bytes(ledger.read_bytes())
    os.utime(ledger, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    second = pipeline.land_day(settings, DAY)
    assert (second["landed"], second["duplicates"]) == (0, 1)
    assert pipeline.load_day(settings, DAY)["loaded_files"] == 0

    assert raw_rows(conn, "platform_ledger") == (expected["platform_ledger"],) * 2
    rows = assert_nothing_lost(settings, conn, s3)
    receipts = [(name, status) for _, source, name, _, status, _, _ in rows
                if source == "platform_ledger"]
    assert receipts == [(ledger.name, "loaded"), ("resent_" + ledger.name, "duplicate"),
                        (ledger.name, "duplicate")]


LAND = ("import json, sys; from datetime import date; from tally import config, pipeline\n"
        "r = pipeline.land_day(config.load(), date.fromisoformat(sys.argv[1]))\n"
        "print(json.dumps({'landed': r['landed'], 'duplicates': r['duplicates']}))\n")
LOAD = ("import json, sys; from datetime import date; from tally import config, pipeline\n"
        "r = pipeline.load_day(config.load(), date.fromisoformat(sys.argv[1]))\n"
        "print(json.dumps(r))\n")


def test_two_lands_and_two_loads_of_a_day_at_once_count_every_row_once(clean, conn, s3):
    settings = clean
    generated = generator.generate_day(DAY, 300, settings.inbox_dir, seed=35)
    expected = json.loads(generated.labels.read_text())["rows"]
    files = arrived(settings)

    lands = in_processes(2, LAND, DAY.isoformat())
    # Each content is accepted once; a file both processes picked up is a second receipt.
    assert sum(r["landed"] for r in lands) == len(set(files.values())) == len(files)
    assert sum(r["duplicates"] for r in lands) == len(manifest(conn)) - len(files)

    loads = in_processes(2, LOAD, DAY.isoformat())
    assert sum(r["loaded_files"] for r in loads) == len(files)
    assert [r["quarantined"] for r in loads] == [[], []]
    # Rows reported loaded by both together are the rows in the raw tables, each file once.
    assert sum(r["loaded_rows"] for r in loads) == assert_each_file_loaded_once(settings, conn)
    for table in ("platform_ledger", "platform_custody_flows"):
        assert raw_rows(conn, table) == (expected[table],) * 2
    assert_nothing_lost(settings, conn, s3)


# 3. A publisher killed midway ---------------------------------------------------------------

@pytest.fixture(scope="module")
def gated(settings):
    """A generated day, transformed, with a run whose gate passed (as in test_publish)."""
    reset(settings)
    generator.generate_day(DAY, 150, settings.inbox_dir, seed=33)
    pipeline.land_day(settings, DAY)
    pipeline.load_day(settings, DAY)
    transform.build(settings, DAY)
    pipeline.start_run(settings, RUN, DAY)
    pipeline.check_gate(settings, RUN, DAY)
    return settings


PUBLISH = ("import sys; from datetime import date; from tally import config, pipeline\n"
           "pipeline.publish(config.load(), sys.argv[1], date.fromisoformat(sys.argv[2]))\n")


def test_a_publisher_killed_midway_shows_readers_nothing_and_the_next_publishes_whole(
        gated, conn, s3):
    settings = gated
    bucket = settings.s3.published_bucket
    for key in storage.list_keys(s3, bucket, ""):
        s3.delete_object(Bucket=bucket, Key=key)

    # SIGKILL: no finally, no clean-up; the process is gone as on a lost worker.
    publisher = subprocess.Popen([sys.executable, "-c", PUBLISH, RUN, DAY.isoformat()],
                                 stderr=subprocess.PIPE, text=True)
    try:
        while not storage.list_keys(s3, bucket, "daily/"):  # its first output is written
            assert publisher.poll() is None, publisher.stderr.read()  # ended before the kill
            time.sleep(0.01)
    finally:
        publisher.send_signal(signal.SIGKILL)
        publisher.wait()
    assert publisher.returncode == -signal.SIGKILL

    # Readers see no report of the day; what the killed attempt left has no manifest.
    day_keys = storage.list_keys(s3, bucket, reports.day_prefix(DAY))
    assert reports.complete_versions(s3, bucket, DAY) == []
    assert reports.latest_manifest(s3, bucket, DAY) is None
    assert not any(key.endswith(reports.MANIFEST) for key in day_keys)
    assert day_keys  # a partial version exists, and readers ignore it

    # Publishing again: exactly one complete version, after any partial one, whole and intact.
    partial = {int(key.split("/")[2].lstrip("v")) for key in day_keys}  # daily/<d>/vNNNN/x
    uri = pipeline.publish(settings, RUN, DAY)
    (version,) = reports.complete_versions(s3, bucket, DAY)
    assert version == max(partial, default=0) + 1
    prefix = reports.version_prefix(DAY, version)
    assert uri == f"s3://{bucket}/{prefix}"
    document = reports.latest_manifest(s3, bucket, DAY)
    assert (document["version"], document["run_id"]) == (version, RUN)
    outputs = {o["key"]: o["sha256"] for o in document["outputs"]}
    assert set(outputs) == set(storage.list_keys(s3, bucket, prefix)) - {prefix + "_manifest.json"}
    assert len(outputs) == 2 + 2 * len(reports.existing_views(conn))
    for key, digest in outputs.items():
        assert sha256(storage.get_bytes(s3, bucket, key)) == digest
    assert conn.execute("select status, report_uri from tally.runs where run_id = %s",
                        (RUN,)).fetchone() == ("published", uri)
    assert_nothing_lost(settings, conn, s3)
