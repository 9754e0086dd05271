"""One run at a time: the warehouse's run lock, and the order dates must be reconciled in.

dbt rebuilds models every date shares (the canonical transactions, the scope), so two runs at
once, even of different dates, would read each other's half-built tables. A run's steps are
separate processes (Airflow tasks), so the lock is a lease row in tally.run_lock rather than a
session lock: taken when the run starts, renewed by each step, released when the run ends. A
lease whose heartbeat is older than STALE_AFTER belongs to a run that died without releasing
it, and the next run takes it over. A load started outside a run takes the same lease for as
long as it loads (pipeline.load_day); pipeline.py says what else may run beside a run.
"""

from __future__ import annotations

import time
from datetime import date, timedelta

import psycopg

STALE_AFTER = timedelta(hours=2)  # longer than any step of a daily run at 10M rows
POLL_SECONDS = 2.0


class RunInProgress(RuntimeError):
    """Another run holds the warehouse."""


class DateOutOfOrder(RuntimeError):
    """The date before has files but was never reconciled; its suspense is unknown."""


def acquire(conn: psycopg.Connection, run_id: str, business_date: date,
            wait_seconds: float = 0) -> None:
    """Take or renew the lease for `run_id`, waiting up to `wait_seconds` for another run."""
    deadline = time.monotonic() + wait_seconds
    while True:
        taken = conn.execute(
            """insert into tally.run_lock (lock_name, run_id, business_date)
               values ('warehouse', %(run)s, %(day)s)
               on conflict (lock_name) do update
                   set run_id = excluded.run_id, business_date = excluded.business_date,
                       acquired_at = case when tally.run_lock.run_id = excluded.run_id
                                          then tally.run_lock.acquired_at else now() end,
                       heartbeat_at = now()
                   where tally.run_lock.run_id = excluded.run_id
                      or tally.run_lock.heartbeat_at < now() - %(stale)s
               returning run_id""",
            {"run": run_id, "day": business_date, "stale": STALE_AFTER}).fetchone()
        if taken:
            return
        holder = conn.execute("select run_id, business_date, acquired_at from tally.run_lock"
                              " where lock_name = 'warehouse'").fetchone()
        if time.monotonic() >= deadline:
            if holder is None:
                continue  # released between the two statements: try again
            raise RunInProgress(
                f"run {holder[0]} has been reconciling {holder[1]} since "
                f"{holder[2]:%Y-%m-%d %H:%M:%S %Z}; the warehouse takes one run at a time "
                f"(run {run_id} waited {wait_seconds:.0f}s)")
        time.sleep(POLL_SECONDS)


def release(conn: psycopg.Connection, run_id: str) -> None:
    conn.execute("delete from tally.run_lock where run_id = %s", (run_id,))


def holder(conn: psycopg.Connection) -> str | None:
    row = conn.execute("select run_id from tally.run_lock").fetchone()
    return row[0] if row else None


def check_order(conn: psycopg.Connection, business_date: date) -> None:
    """Refuse a date whose previous date has files but no run, once reconciliation has
    history before this date: that date's open items would be missing from the carry-over."""
    previous = business_date - timedelta(days=1)
    history, files, runs = conn.execute(
        """select exists (select 1 from tally.runs where business_date < %(day)s),
                  exists (select 1 from tally.files where business_date = %(prev)s
                          and status in ('landed', 'loaded')),
                  exists (select 1 from tally.runs where business_date = %(prev)s
                          and gate_passed is not null)""",
        {"day": business_date, "prev": previous}).fetchone()
    if history and files and not runs:
        raise DateOutOfOrder(
            f"{previous} has files but was never reconciled; reconcile it before "
            f"{business_date} (dates run in order: `tally backfill --from {previous} "
            f"--to {business_date}`)")
