"""Schema changes never wait on readers: once the warehouse is built as the configuration
wants it, ensuring it again runs no DDL and takes no lock on any table, so a landing, a run and
a re-run starting at once cannot deadlock on a table another one is reading."""

import threading
import time
from dataclasses import replace

import psycopg
import pytest

from tally import sources, warehouse
from tally.services import postgres


def test_ensuring_a_built_schema_takes_no_lock_a_reader_would_block(clean):
    settings = clean
    configs = sources.load_all(settings)
    with postgres.connect(settings) as reader, postgres.connect(settings) as other:
        # A run reading the manifest and a raw table, its transaction still open.
        reader.execute("select count(*) from tally.files").fetchone()
        reader.execute("select count(*) from raw.platform_ledger").fetchone()
        other.execute("set lock_timeout = '2s'")
        warehouse.ensure_schema(other, configs)  # before: ALTER TABLE waited, then timed out
        other.commit()
        reader.rollback()


def test_a_changed_part_is_applied_once_under_the_advisory_lock(clean):
    settings = clean
    configs = sources.load_all(settings)
    ledger = configs["platform_ledger"]
    changed = replace(ledger, columns={**ledger.columns, "memo": "memo"})
    with postgres.connect(settings) as reader, postgres.connect(settings,
                                                                autocommit=True) as other:
        reader.execute("select count(*) from raw.platform_ledger").fetchone()
        # A real change needs the table to itself: it waits for the reader, never skips.
        with pytest.raises(psycopg.errors.LockNotAvailable):
            warehouse.ensure_schema(other, {"platform_ledger": changed}, wait_seconds=2)
        reader.rollback()
        warehouse.ensure_schema(other, {"platform_ledger": changed})
        assert other.execute(
            "select count(*) from information_schema.columns where table_schema = 'raw'"
            " and table_name = 'platform_ledger' and column_name = 'memo'").fetchone()[0] == 1


def test_a_change_meeting_a_run_that_reads_lets_go_and_retries_instead_of_deadlocking(clean):
    settings = clean
    errors = []
    with postgres.connect(settings, autocommit=True) as admin:
        admin.execute("delete from tally.schema_state where part = 'control'")  # a new release
    with postgres.connect(settings) as reader:
        # A run's order check, between its two reads: tally.runs held, tally.files next.
        reader.execute("select count(*) from tally.runs").fetchone()

        def change():
            try:
                with postgres.connect(settings, autocommit=True) as other:
                    warehouse.ensure_schema(other)
            except Exception as exc:  # reported below
                errors.append(exc)

        changer = threading.Thread(target=change)
        changer.start()
        time.sleep(0.5)  # the change is trying to take the tables now
        # Before: the change held tally.files and waited for tally.runs, the reader waited for
        # tally.files, and PostgreSQL ended one of them (DeadlockDetected).
        reader.execute("set lock_timeout = '10s'")
        reader.execute("select count(*) from tally.files").fetchone()
        reader.rollback()
        changer.join(timeout=30)
    assert not changer.is_alive() and not errors
    with postgres.connect(settings, autocommit=True) as conn:
        assert conn.execute("select count(*) from tally.schema_state where part = 'control'"
                            ).fetchone()[0] == 1
