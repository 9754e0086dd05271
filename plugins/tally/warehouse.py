"""Tally's own tables in PostgreSQL: the file manifest, the run log and the raw tables.

Raw tables are derived from the source configurations, so adding a source or a column is a
configuration change. Everything here is idempotent and runs before every land and load.

Schema changes take exclusive locks (ALTER TABLE takes an ACCESS EXCLUSIVE lock even when its
IF NOT EXISTS finds nothing to do), and a run, a landing and a re-run may start at once: a
session holding that lock while another reads the table it waits for deadlocks. So each part
of the schema (the control tables, each raw table) records the digest of the DDL it was built
with in tally.schema_state, and a part whose digest is unchanged runs no DDL at all; a changed
one is applied once, under an advisory lock, by whichever session comes first. A run applies
every part before it takes the run lock (pipeline.start_run), so its own steps find nothing
to change.

A change can still meet a run that is reading (a new release, or a new source, landed while a
run reconciles): its DDL would hold one table's lock while waiting for the next, the shape of a
deadlock. So it first takes every existing table it changes at once, without waiting (LOCK
TABLE ... NOWAIT), and if any is busy lets go of all of them and tries again a moment later: it
never waits while holding a lock, so it is never part of a deadlock, and a reader never fails.
"""

from __future__ import annotations

import hashlib
import json
import time

import psycopg
from psycopg import sql

CONTROL_DDL = """
create schema if not exists tally;
create schema if not exists raw;

create table if not exists tally.files (
    file_id        bigserial primary key,
    sha256         text not null,
    source         text not null,
    business_date  date not null,
    original_name  text not null,
    size_bytes     bigint not null,
    raw_key        text not null,
    parser         text not null,
    parser_version text not null,
    status         text not null
        check (status in ('landed', 'loaded', 'quarantined', 'duplicate', 'superseded')),
    duplicate_of   bigint references tally.files (file_id),
    superseded_by  bigint references tally.files (file_id),
    row_count      integer,
    received_at    timestamptz not null default now(),
    loaded_at      timestamptz,
    quarantine_key text,
    error          text
);
comment on table tally.files is
    'Manifest: every file ever received, including duplicates and quarantined ones.';

-- The same bytes are accepted once; a later copy is recorded as a duplicate of the first.
create unique index if not exists files_first_sighting
    on tally.files (sha256) where status <> 'duplicate';
create index if not exists files_by_day on tally.files (business_date, source);

-- Since the first release: a corrected file (same source, date and name, new bytes) supersedes
-- the version loaded before it.
alter table tally.files add column if not exists superseded_by bigint
    references tally.files (file_id);
do $$
begin
    if not exists (select from pg_constraint where conname = 'files_status_check'
                   and pg_get_constraintdef(oid) like '%superseded%') then
        alter table tally.files drop constraint if exists files_status_check;
        alter table tally.files add constraint files_status_check check
            (status in ('landed', 'loaded', 'quarantined', 'duplicate', 'superseded'));
        -- Warehouses loaded before: where several versions of a file were loaded, keep the last.
        update tally.files as older set status = 'superseded', superseded_by = latest.file_id
        from (select source, business_date, original_name, max(file_id) as file_id
              from tally.files where status = 'loaded'
              group by source, business_date, original_name) as latest
        where older.status = 'loaded' and older.file_id < latest.file_id
          and (older.source, older.business_date, older.original_name)
              = (latest.source, latest.business_date, latest.original_name);
    end if;
end $$;

create table if not exists tally.runs (
    run_id         text primary key,
    business_date  date not null,
    started_at     timestamptz not null default now(),
    finished_at    timestamptz,
    status         text not null default 'running',
    gate_passed    boolean,
    gate_summary   jsonb,
    report_uri     text,
    code_version   text,
    rules_digest   text,
    rules          jsonb,
    input_files    jsonb
);
-- Columns added since the first release, for warehouses created before them.
alter table tally.runs add column if not exists code_version text;
alter table tally.runs add column if not exists rules_digest text;
alter table tally.runs add column if not exists rules jsonb;
alter table tally.runs add column if not exists input_files jsonb;
alter table tally.runs add column if not exists dry_run boolean not null default false;
alter table tally.runs add column if not exists outcomes_digest text;
alter table tally.runs add column if not exists error text;

-- One run at a time changes the warehouse (dbt rebuilds shared models): a lease, not a
-- session lock, because a run's steps are separate processes. A lease whose heartbeat is older
-- than the pipeline's limit belongs to a run that died and may be taken over.
create table if not exists tally.run_lock (
    lock_name      text primary key,
    run_id         text not null,
    business_date  date not null,
    acquired_at    timestamptz not null default now(),
    heartbeat_at   timestamptz not null default now()
);

-- Per business date and expected source: did a usable file arrive by the feed's cut-off?
create table if not exists tally.source_arrivals (
    business_date  date not null,
    source         text not null,
    feed           text not null,
    status         text not null check (status in ('arrived', 'missing')),
    files          integer not null,
    detail         text,
    checked_at     timestamptz not null default now(),
    primary key (business_date, source)
);
"""


STATE_DDL = """
create schema if not exists tally;
create table if not exists tally.schema_state (
    part        text primary key,
    digest      text not null,
    applied_at  timestamptz not null default now()
);
"""


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# Raw tables' layout version: bumped when the DDL of _ensure_raw_table changes, so that every
# warehouse applies it once (2: the file_id foreign key dropped).
RAW_LAYOUT = 2


def _raw_specs(config) -> list:
    return [RAW_LAYOUT, *_table_specs(config)]


def _table_specs(config) -> list:
    return [[config.table_name(table), list(columns),
             {a: spec.excess_precision == "flag" for a, spec in amounts.items()}]
            for table, columns, amounts in [
                (None, config.columns, config.amounts),
                *((name, t.columns, t.amounts) for name, t in config.tables.items())]]


def _applied(conn: psycopg.Connection) -> dict[str, str]:
    if not conn.execute("select to_regclass('tally.schema_state')").fetchone()[0]:
        return {}
    return dict(conn.execute("select part, digest from tally.schema_state").fetchall())


SCHEMA_LOCK_WAIT_SECONDS = 600.0  # how long a schema change keeps trying to take its tables
SCHEMA_LOCK_RETRY_SECONDS = 0.2


def ensure_schema(conn: psycopg.Connection, sources=None,
                  wait_seconds: float = SCHEMA_LOCK_WAIT_SECONDS) -> None:
    """Create control tables, and a raw table per source configuration given; parts already
    built as they are now wanted are left alone, without taking any lock. A part to change
    waits up to `wait_seconds` for its tables to be free (LockNotAvailable after that)."""
    wanted = {"control": (_digest(CONTROL_DDL), None)}
    for config in (sources or {}).values():
        specs = _raw_specs(config)
        wanted[f"raw:{config.source}"] = (_digest(json.dumps(specs, sort_keys=True)), config)
    applied = _applied(conn)
    if all(applied.get(part) == digest for part, (digest, _) in wanted.items()):
        return
    retry_while_busy(lambda: _apply(conn, wanted), wait_seconds)


def retry_while_busy(attempt, wait_seconds: float = SCHEMA_LOCK_WAIT_SECONDS) -> None:
    """Run a schema change's attempt (one transaction that takes its tables NOWAIT) until it
    finds them free, for up to `wait_seconds` (LockNotAvailable after that)."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            attempt()
            return
        except psycopg.errors.LockNotAvailable:
            if time.monotonic() >= deadline:
                raise
            time.sleep(SCHEMA_LOCK_RETRY_SECONDS)


def _apply(conn: psycopg.Connection, wanted: dict) -> None:
    """One attempt, in one transaction: the parts not yet as wanted, or LockNotAvailable (and
    nothing held) if a table they change is in use."""
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext('tally.ensure_schema'))")
        conn.execute(STATE_DDL)
        applied = _applied(conn)  # another session may have applied them meanwhile
        todo = {part: config for part, (digest, config) in wanted.items()
                if applied.get(part) != digest}
        _lock_all_or_none(conn, todo)
        for part, config in todo.items():
            if config is None:
                conn.execute(CONTROL_DDL)
            else:
                _ensure_raw_table(conn, config)
            conn.execute(
                "insert into tally.schema_state (part, digest) values (%s, %s)"
                " on conflict (part) do update set digest = excluded.digest,"
                " applied_at = now()", (part, wanted[part][0]))


def _lock_all_or_none(conn: psycopg.Connection, todo: dict) -> None:
    """ACCESS EXCLUSIVE on every existing table the parts' DDL changes or references, taken
    at once without waiting: a control change may alter any control table; a raw table
    references tally.files."""
    names = {"tally.files"}
    if any(config is None for config in todo.values()):
        names |= {f"tally.{name}" for (name,) in conn.execute(
            "select relname from pg_class where relnamespace = 'tally'::regnamespace"
            " and relkind in ('r', 'p') and relname <> 'schema_state'").fetchall()}
    for config in (c for c in todo.values() if c is not None):
        names |= {config.table_name(table) for table in (None, *config.tables)}
    existing = [name for name in sorted(names)
                if conn.execute("select to_regclass(%s)", (name,)).fetchone()[0]]
    if existing:
        conn.execute(sql.SQL("lock table {} in access exclusive mode nowait").format(
            sql.SQL(", ").join(sql.Identifier(*name.split(".")) for name in existing)))


def _ensure_raw_table(conn: psycopg.Connection, config) -> None:
    specs = [(None, config.columns, config.amounts),
             *((name, t.columns, t.amounts) for name, t in config.tables.items())]
    for table, columns, amounts in specs:
        schema, name = config.table_name(table).split(".")
        ident = sql.Identifier(schema, name)
        # No foreign key to tally.files: checked row by row it cost ~45 % of COPY's time.
        # The loader writes a file's rows only in the transaction that has just claimed the
        # file's manifest row, and manifest rows are never deleted (see tally.loading).
        conn.execute(sql.SQL(
            "create table if not exists {} ("
            " file_id bigint not null,"
            " record_no integer not null,"  # order in the file; several rows may share a line
            " line_no integer not null,"
            " primary key (file_id, record_no))"
        ).format(ident))
        for (fkey,) in conn.execute(
                "select conname from pg_constraint where contype = 'f' and conrelid = %s::regclass",
                (f"{schema}.{name}",)).fetchall():
            conn.execute(sql.SQL("alter table {} drop constraint {}").format(
                ident, sql.Identifier(fkey)))
        typed = [(c, "text") for c in columns]
        typed += [(f"{a}_minor", "bigint") for a in amounts]
        typed += [(f"{a}_inexact", "boolean") for a, spec in amounts.items()
                  if spec.excess_precision == "flag"]
        for column, kind in typed:
            conn.execute(sql.SQL("alter table {} add column if not exists {} " + kind).format(
                ident, sql.Identifier(column)))
