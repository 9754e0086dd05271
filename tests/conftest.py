"""Tests run against the real services, started by the same code as the demo, but with their
own home, ports and buckets so that they never touch a developer's demo data."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Several test sessions can run side by side, each with its own services: TALLY_TEST_SLOT=N.
SLOT = int(os.environ.get("TALLY_TEST_SLOT", "0"))
TEST_HOME = ROOT / ".tally" / (f"test-{SLOT}" if SLOT else "test")

os.environ.update({
    "TALLY_HOME": str(TEST_HOME),
    "TALLY_PG_PORT": str(54339 + 2 * SLOT),
    "TALLY_S3_PORT": str(18433 + 20 * SLOT),
    "TALLY_WEB_PORT": str(18440 + 20 * SLOT),
})
for name in ("TALLY_PG_DSN", "TALLY_S3_ENDPOINT", "AIRFLOW_CONN_TALLY_WAREHOUSE",
             "AIRFLOW_CONN_TALLY_S3", "TALLY_INBOX"):
    os.environ.pop(name, None)

from tally import airflow_local, config, services, storage  # noqa: E402
from tally.services import postgres  # noqa: E402

# The browser fixtures (`browser`, `page`): Playwright on Debian's chromium.
pytest_plugins = ("tests.browser",)

# Airflow imported by the tests reads the same home and settings as `airflow dags test` does.
os.environ.update(airflow_local.environment(config.load()))

WAREHOUSE_SCHEMAS = ("tally", "raw", "staging", "intermediate", "marts", "reporting",
                     "reference", "workbench")


@pytest.fixture(scope="session")
def settings():
    started = services.up(config.load())
    yield started
    services.down(started)


def _empty_bucket(s3, bucket: str) -> None:
    for key in storage.list_keys(s3, bucket, ""):
        s3.delete_object(Bucket=bucket, Key=key)


def reset(settings, prepare: bool = True):
    """A warehouse and zones with nothing in them (the test's own admin clean-up: Tally itself
    never deletes from the raw zone); without `prepare`, not even the schema, as on a fresh
    clone."""
    with postgres.connect(settings, autocommit=True) as conn:
        for schema in WAREHOUSE_SCHEMAS:
            conn.execute(f"drop schema if exists {schema} cascade")
    s3 = storage.client(settings)
    for bucket in (settings.s3.raw_bucket, settings.s3.quarantine_bucket,
                   settings.s3.published_bucket):
        _empty_bucket(s3, bucket)
    shutil.rmtree(settings.inbox_dir, ignore_errors=True)
    if prepare:
        from tally import pipeline

        pipeline.prepare(settings)
    return settings


@pytest.fixture
def clean(settings):
    return reset(settings)


@pytest.fixture
def conn(settings):
    with postgres.connect(settings, autocommit=True) as connection:
        yield connection


@pytest.fixture
def s3(settings):
    return storage.client(settings)
