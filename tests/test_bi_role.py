"""The BI role on the real warehouse: it reads the reporting views and nothing upstream."""

from __future__ import annotations

import secrets

import psycopg
import pytest

from tally import roles, transform
from tally.services import postgres
from tests.test_transform import DAY, load_generated

ROLE = "tally_reader"
UPSTREAM = ["raw.platform_ledger", "staging.stg_platform__ledger",
            "intermediate.int_transactions", "marts.fct_outcomes", "marts.fct_breaks",
            "tally.files", "tally.runs", "reference.break_types",
            # the workbench's people (password hashes) and audit trail
            "workbench.users", "workbench.api_tokens", "workbench.audit_log"]


@pytest.fixture
def reader(clean):
    load_generated(clean, scale=100, seed=9)
    transform.build(clean, DAY)
    password = secrets.token_urlsafe(16)
    with postgres.connect(clean, autocommit=True) as conn:
        roles.ensure_bi_role(conn, ROLE, password)
        roles.ensure_bi_role(conn, ROLE, password)  # idempotent
    pg = clean.pg

    def connect():
        return psycopg.connect(host=pg.host, port=pg.port, user=ROLE, password=password,
                               dbname=pg.database, autocommit=True, connect_timeout=10)
    return connect


def test_the_reader_reads_reporting_views_and_nothing_upstream(reader, conn):
    with reader() as bi:
        for view in ("breaks", "suspense", "outcomes", "daily_summary", "matches",
                     "status_corrections"):
            ours = conn.execute(f"select count(*) from reporting.{view}").fetchone()[0]
            assert bi.execute(f"select count(*) from reporting.{view}").fetchone()[0] == ours
        assert ours > 0
        # What BI sees of an account is its last four digits.
        accounts = {a for (a,) in bi.execute(
            "select distinct account from reporting.breaks where account is not null")}
        assert accounts and all(a.startswith("****") and len(a) == 8 for a in accounts)
        for table in UPSTREAM:
            assert conn.execute(f"select count(*) from {table}").fetchone()[0] >= 0
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
                bi.execute(f"select * from {table} limit 1")


def test_the_reader_cannot_write(reader):
    with reader() as bi:
        for statement in ("create table reporting.notes (a int)",
                          "delete from reporting.outcomes",
                          "create table public.notes (a int)"):
            with pytest.raises((psycopg.errors.InsufficientPrivilege,
                                psycopg.errors.ReadOnlySqlTransaction)):
                bi.execute(statement)
        bi.execute("set default_transaction_read_only = off")
        for statement in ("create table reporting.notes (a int)",
                          "delete from reporting.outcomes"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                bi.execute(statement)


def test_views_rebuilt_by_dbt_stay_readable(reader, clean, conn):
    # dbt recreates every view on each run: default privileges grant the new ones.
    transform.build(clean, DAY)
    conn.execute("create view reporting.bi_probe as select business_date, project"
                 " from reporting.daily_summary")
    with reader() as bi:
        assert bi.execute("select count(*) from reporting.breaks").fetchone()[0] > 0
        assert bi.execute("select count(*) from reporting.bi_probe").fetchone()[0] > 0


def test_the_reader_creates_nothing_and_blanket_default_grants_are_undone(reader, clean, conn):
    # What docker/postgres-init.sh grants: every schema and table the pipeline makes from now on.
    conn.execute(f"alter default privileges grant usage on schemas to {ROLE}")
    conn.execute(f"alter default privileges grant select on tables to {ROLE}")
    try:
        with postgres.connect(clean, autocommit=True) as pipeline_role:
            roles.ensure_bi_role(pipeline_role, ROLE)
        conn.execute("create schema bi_probe")
        conn.execute("create table bi_probe.upstream as select 1 as a")
        schemas = [s for (s,) in conn.execute(
            "select nspname from pg_namespace where nspname !~ '^pg_'"
            " and nspname <> 'information_schema'")]
        assert {"public", "reporting", "raw", "marts", "bi_probe"} <= set(schemas)
        with reader() as bi:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                bi.execute("select * from bi_probe.upstream")
            # Not even with read-only sessions switched off: no schema, no table anywhere.
            bi.execute("set default_transaction_read_only = off")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                bi.execute("create schema bi_notes")
            for schema in schemas:
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    bi.execute(f'create table "{schema}".bi_notes (a int)')
    finally:
        conn.execute(f"alter default privileges revoke all on schemas from {ROLE}")
        conn.execute(f"alter default privileges revoke all on tables from {ROLE}")
        conn.execute("drop schema if exists bi_probe cascade")
