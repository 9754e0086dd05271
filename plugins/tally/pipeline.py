"""The daily job's steps as plain functions. The DAG only wires these; so does the CLI.

What may run at once (runlock.py has the run lock itself):
- Schema changes happen before a run takes the run lock (start_run), once, under an advisory
  lock, and never wait while holding a table (warehouse.py).
- Landing (land_day, land_feed, land_late_files, `tally upload`) never waits for a run, of any
  date: it is safe by construction. It writes a new write-once object and inserts a manifest
  row with status 'landed' (the same bytes twice: one 'landed', one 'duplicate', under an
  advisory lock per hash); no run reconciles a landed file before a load step picks it up, and
  a run's load step takes only what has landed by then (what lands later waits for the next run).
- Loading (load_day) changes what a run reconciles (raw rows, a superseded version), so it
  happens under the run lock: a run's load step passes its run_id; called on its own, it waits
  for the run in progress (RunInProgress after `wait_seconds`) and holds the lock while it loads.
- dbt, the gate and publishing run only inside a run, which holds the run lock.
"""

from __future__ import annotations

import json
import time
from datetime import date, timedelta

import psycopg

from tally import loading, sources, storage, warehouse
from tally.config import Settings
from tally.services import postgres


def prepare(settings: Settings) -> None:
    """Create Tally's control and raw tables, the workbench's tables and the BI tools'
    read-only role (idempotent)."""
    from tally import roles
    from tally.workbench import schema as workbench_schema

    with postgres.connect(settings, autocommit=True) as conn:
        warehouse.ensure_schema(conn, sources.load_all(settings))
        workbench_schema.ensure(conn)
        roles.ensure_bi_role(conn)


def _selected(configs: dict, only: list[str] | None) -> dict:
    if not only:
        return configs
    unknown = sorted(set(only) - set(configs))
    if unknown:
        raise ValueError(f"unknown sources {', '.join(unknown)}; configured: {', '.join(configs)}")
    return {name: configs[name] for name in only}


def land_day(settings: Settings, business_date: date, only: list[str] | None = None,
             pulls: bool = True) -> dict:
    """Land every file that arrived for the day (file drops, channel pulls) in the raw zone;
    `only` limits it to those sources."""
    from tally import intake

    configs = sources.load_all(settings)
    s3 = storage.client(settings)
    with postgres.connect(settings, autocommit=True) as conn:
        warehouse.ensure_schema(conn, configs)
        arrived = intake.collect_day(settings, conn, s3, _selected(configs, only),
                                     business_date, pulls=pulls)
    return {
        "landed": sum(r.status == "landed" for r in arrived.landed),
        "duplicates": sum(r.status == "duplicate" for r in arrived.landed),
        "files": [{"file_id": r.file_id, "source": r.source, "name": r.name,
                   "status": r.status} for r in arrived.landed],
        "not_ready": arrived.not_ready,
        "failed": arrived.failed,
    }


def source_arrivals(settings: Settings, business_date: date, expected: list[str]) -> dict:
    """Which of the expected sources have a usable file for the date (landed, loaded, or the
    same bytes received again) and which are still waiting; a quarantined file does not count.
    """
    with postgres.connect(settings, autocommit=True) as conn:
        warehouse.ensure_schema(conn)
        rows = conn.execute(
            "select source, count(*) filter (where status <> 'quarantined'),"
            " count(*) filter (where status = 'quarantined')"
            " from tally.files where business_date = %s and source = any(%s) group by source",
            (business_date, expected)).fetchall()
    usable = {source: (good, bad) for source, good, bad in rows}
    return {
        "arrived": [s for s in expected if usable.get(s, (0, 0))[0]],
        "waiting": [s for s in expected if not usable.get(s, (0, 0))[0]],
        "quarantined": {s: bad for s, (_, bad) in usable.items() if bad},
    }


def land_feed(settings: Settings, business_date: date, feed_sources: list[str]) -> dict:
    """One look for a feed's files: land whatever arrived, say which sources still wait."""
    landed = land_day(settings, business_date, only=feed_sources)
    return {**source_arrivals(settings, business_date, feed_sources),
            "landed": landed["landed"], "not_ready": landed["not_ready"],
            "failed": landed["failed"]}


def record_arrivals(settings: Settings, business_date: date, feed: str,
                    feed_sources: list[str]) -> list[str]:
    """At the end of a feed's wait: record each source as arrived or missing for the date
    (tally.source_arrivals, read by the report); returns the missing sources."""
    status = source_arrivals(settings, business_date, feed_sources)
    with postgres.connect(settings, autocommit=True) as conn, conn.transaction():
        for source in feed_sources:
            arrived = source in status["arrived"]
            bad = status["quarantined"].get(source, 0)
            detail = None if arrived else (
                f"no usable file by the cut-off ({bad} quarantined)" if bad
                else "no file by the cut-off")
            conn.execute(
                """insert into tally.source_arrivals
                       (business_date, source, feed, status, files, detail)
                   values (%s, %s, %s, %s,
                           (select count(*) from tally.files where business_date = %s
                            and source = %s and status <> 'quarantined'), %s)
                   on conflict (business_date, source) do update set
                       feed = excluded.feed, status = excluded.status, files = excluded.files,
                       detail = excluded.detail, checked_at = now()""",
                (business_date, source, feed, "arrived" if arrived else "missing",
                 business_date, source, detail))
    return status["waiting"]


def land_late_files(settings: Settings, business_date: date, lookback_days: int = 14) -> list:
    """Files dropped for earlier dates after those dates ran: land each under its own date.
    Returns the dates that received a file (their reconciliation must be run again)."""
    from tally.connectors.inbox import LocalInbox

    configs = sources.load_all(settings)
    inbox = LocalInbox(settings.inbox_dir)
    late = []
    for back in range(lookback_days, 0, -1):
        day = business_date - timedelta(days=back)
        waiting = [s for s in configs if inbox.pending(s, day)]
        if waiting and land_day(settings, day, only=waiting, pulls=False)["landed"]:
            late.append(day.isoformat())
            with postgres.connect(settings, autocommit=True) as conn:
                # A source reported missing at its cut-off has arrived after all.
                conn.execute(
                    "update tally.source_arrivals set status = 'arrived', detail ="
                    " 'arrived after the cut-off', checked_at = now(), files = (select count(*)"
                    " from tally.files f where f.business_date = source_arrivals.business_date"
                    " and f.source = source_arrivals.source and f.status <> 'quarantined')"
                    " where business_date = %s and source = any(%s)", (day, waiting))
    return late


def load_day(settings: Settings, business_date: date, only: list[str] | None = None,
             run_id: str | None = None, wait_seconds: float = 600) -> dict:
    """Parse and COPY every landed, not yet loaded file of the day; reject bad ones.

    Under the run lock: `run_id` is the run whose step this is (it must hold the lock); without
    it the load takes the lock for itself, waiting up to `wait_seconds` for a run in progress."""
    from tally import runlock

    configs = sources.load_all(settings)
    if run_id is None:
        own = f"load__{business_date.isoformat()}__{time.time_ns()}"
        with postgres.connect(settings, autocommit=True) as conn:
            warehouse.ensure_schema(conn, configs)  # before the lock, as a run does
            runlock.acquire(conn, own, business_date, wait_seconds=wait_seconds)
        try:
            return load_day(settings, business_date, only, run_id=own)
        finally:
            _release_when_reachable(settings, own)
    chosen = list(_selected(configs, only))
    with postgres.connect(settings, autocommit=True) as conn:
        runlock.acquire(conn, run_id, business_date)  # still this run's (RunInProgress if not)
        warehouse.ensure_schema(conn, configs)
        pending = conn.execute(
            "select file_id, source, size_bytes from tally.files where business_date = %s"
            " and status = 'landed' and source = any(%s) order by file_id",
            (business_date, chosen),
        ).fetchall()
    # Closed before the files load: the loader may fork worker processes.
    results = loading.load_files(settings, configs, pending)
    return {
        "loaded_files": sum(r.status == "loaded" for r in results),
        "loaded_rows": sum(r.rows for r in results),
        "superseded": [r.file_id for r in results if r.status == "superseded"],
        "quarantined": [{"file_id": r.file_id, "source": r.source, "error": r.error}
                        for r in results if r.status == "quarantined"],
    }


def _release_when_reachable(settings: Settings, run_id: str, patience: float = 60) -> None:
    """Release the lock even if the load failed because the warehouse went away for a moment
    (a restart): a lock left behind would hold every run back until it goes stale."""
    from tally import runlock

    deadline = time.monotonic() + patience
    while True:
        try:
            with postgres.connect(settings, autocommit=True) as conn:
                runlock.release(conn, run_id)
            return
        except psycopg.OperationalError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(1)


def start_run(settings: Settings, run_id: str, business_date: date, dry_run: bool = False,
              wait_seconds: float = 0) -> None:
    """Record the run, the code version and the reconciliation rules it uses; take the
    warehouse's run lock (waiting up to `wait_seconds` for another run to finish); refuse a
    date whose previous date has files but was never reconciled."""
    from tally import accounts, recon, runlock
    from tally.workbench import schema as workbench_schema

    # The rules in force include the account registry: it decides which rows each project
    # holds and which bank credits are a channel's payout.
    rules = {**recon.load(settings), "accounts": accounts.load(settings).dbt_var()}
    with postgres.connect(settings, autocommit=True) as conn:
        # Every part of the schema, raw tables too, before the lock: the run's steps then find
        # nothing to change while other runs wait for it. The workbench's decisions are a
        # source of the matching.
        warehouse.ensure_schema(conn, sources.load_all(settings))
        workbench_schema.ensure(conn)
        conn.execute(
            """insert into tally.runs (run_id, business_date, code_version, rules_digest, rules,
                                       dry_run)
               values (%s, %s, %s, %s, %s, %s)
               on conflict (run_id) do update set started_at = now(), status = 'running',
                   gate_passed = null, gate_summary = null, report_uri = null, error = null,
                   finished_at = null, rules_digest = excluded.rules_digest,
                   rules = excluded.rules, dry_run = excluded.dry_run,
                   outcomes_digest = null""",
            (run_id, business_date, code_version(settings), recon.digest(rules),
             json.dumps(rules), dry_run),
        )
        try:
            runlock.acquire(conn, run_id, business_date, wait_seconds=wait_seconds)
            runlock.check_order(conn, business_date)
        except Exception as exc:
            _record_failure(conn, run_id, exc)
            raise


def heartbeat(settings: Settings, run_id: str, business_date: date) -> None:
    """A step of a run is alive: keep (or take back) the run lock."""
    from tally import runlock

    with postgres.connect(settings, autocommit=True) as conn:
        runlock.acquire(conn, run_id, business_date)


def fail_run(settings: Settings, run_id: str, error: BaseException | str) -> None:
    """A run ended in failure: record why and release the lock for the next run."""
    with postgres.connect(settings, autocommit=True) as conn:
        _record_failure(conn, run_id, error)


def _record_failure(conn, run_id: str, error) -> None:
    from tally import runlock

    conn.execute(
        "update tally.runs set status = case when status = 'gate_failed' then status"
        " else 'failed' end, error = %s, finished_at = now() where run_id = %s",
        (str(error)[:4000], run_id))
    runlock.release(conn, run_id)


def finish_dry_run(settings: Settings, run_id: str) -> None:
    """A dry run stops after the gate: nothing is published; the lock is released."""
    from tally import runlock

    with postgres.connect(settings, autocommit=True) as conn:
        conn.execute("update tally.runs set status = 'dry_run', finished_at = now()"
                     " where run_id = %s", (run_id,))
        runlock.release(conn, run_id)


def outcomes_digest(conn, business_date: date) -> str | None:
    """A fingerprint of a date's reconciliation (every outcome and what it rests on); file ids
    are left out, so reloading a file does not change it. Digested in 4,096 buckets of keys,
    then the buckets' digests in order: one string of every outcome would pass PostgreSQL's
    1 GiB limit on a value at ten million transactions a day."""
    row = conn.execute(
        """with lines as (
               select substr(md5(project || '|' || transaction_key), 1, 3) as bucket,
                      project, transaction_key,
                      concat_ws('|', project, transaction_key, outcome, break_type, rule,
                                counterpart_key, amount_difference_minor, age_days) as line
               from marts.fct_outcomes where as_of_date = %s
           ),
           buckets as (
               select bucket,
                      md5(string_agg(line, E'\n' order by project, transaction_key)) as digest
               from lines group by bucket
           )
           select md5(string_agg(bucket || digest, '' order by bucket)) from buckets""",
        (business_date,)).fetchone()
    return row[0] if row else None


def next_date_to_rerun(settings: Settings, run_id: str, business_date: date) -> date | None:
    """After a run of a date: the next date, if it was reconciled before and may now differ
    (this date's outcomes changed since, or the next date's last run did not pass)."""
    following = business_date + timedelta(days=1)
    with postgres.connect(settings, autocommit=True) as conn:
        later = conn.execute(
            "select gate_passed from tally.runs where business_date = %s and not dry_run"
            " order by started_at desc limit 1", (following,)).fetchone()
        if later is None:
            return None
        if later[0] is not True:
            return following
        now, before = conn.execute(
            """select (select outcomes_digest from tally.runs where run_id = %(run)s),
                      (select outcomes_digest from tally.runs
                       where business_date = %(day)s and run_id <> %(run)s and gate_passed
                             and not dry_run and started_at < (
                                 select max(started_at) from tally.runs
                                 where business_date = %(next)s)
                       order by started_at desc limit 1)""",
            {"run": run_id, "day": business_date, "next": following}).fetchone()
    return following if now != before else None


def check_gate(settings: Settings, run_id: str, business_date: date) -> dict:
    """Run the GX checkpoint; record its verdict; raise GateFailed if any invariant broke."""
    from tally import gate

    heartbeat(settings, run_id, business_date)
    result = gate.run(settings, business_date)
    with postgres.connect(settings, autocommit=True) as conn:
        conn.execute(
            "update tally.runs set gate_passed = %s, gate_summary = %s, outcomes_digest = %s,"
            " status = case when %s then status else 'gate_failed' end,"
            " finished_at = case when %s then null else now() end where run_id = %s",
            (result.passed, json.dumps(result.as_json()), outcomes_digest(conn, business_date),
             result.passed, result.passed, run_id),
        )
    if not result.passed:
        raise gate.GateFailed(result.summary())
    return result.as_json()


def publish(settings: Settings, run_id: str, business_date: date) -> str:
    """Write the day's reports to the published zone; only for a run whose gate passed."""
    from tally.publish import reports

    with postgres.connect(settings, autocommit=True) as conn:
        row = conn.execute("select gate_passed from tally.runs where run_id = %s",
                           (run_id,)).fetchone()
        if not row or row[0] is not True:
            raise RuntimeError(f"run {run_id}: the gate has not passed; nothing is published")
        uri = reports.publish_day(settings, conn, storage.client(settings), business_date, run_id)
        conn.execute(
            "update tally.runs set report_uri = %s, status = 'published', finished_at = now()"
            " where run_id = %s", (uri, run_id))
        from tally import runlock

        runlock.release(conn, run_id)
    return uri


def run_day(settings: Settings, business_date: date, run_id: str | None = None,
            only: list[str] | None = None, dry_run: bool = False,
            wait_seconds: float = 600, run_prefix: str = "local") -> dict:
    """The whole daily job for one date in this process (the DAG runs the same steps as
    tasks): land, load, dbt build, gate, then publish unless it is a dry run."""
    from tally import transform

    run_id = run_id or f"{run_prefix}__{business_date.isoformat()}__{time.time_ns()}"
    start_run(settings, run_id, business_date, dry_run=dry_run, wait_seconds=wait_seconds)
    try:
        land_day(settings, business_date, only=only)
        load_day(settings, business_date, only=only, run_id=run_id)
        heartbeat(settings, run_id, business_date)
        transform.build(settings, business_date)
        check_gate(settings, run_id, business_date)
        if dry_run:
            finish_dry_run(settings, run_id)
        else:
            publish(settings, run_id, business_date)
    except BaseException as exc:
        fail_run(settings, run_id, exc)
        raise
    return {"run_id": run_id, "business_date": business_date.isoformat(), "dry_run": dry_run}


def run_in_order(settings: Settings, first: date, last: date | None = None,
                 run=run_day, **options) -> list[dict]:
    """Reconcile dates in order, because each date's suspense carries into the next.

    With `last`: every date from first to last (a backfill). Without: `first`, then each later
    date that was reconciled before and may have changed (after a late file), until one comes
    out unchanged. Stops at the first failure (raised), so no date is built on a broken one.
    """
    done, day = [], first
    while day is not None and (last is None or day <= last):
        result = run(settings, day, **options)
        done.append(result)
        if last is not None:
            day = day + timedelta(days=1)
        elif not options.get("dry_run"):
            day = next_date_to_rerun(settings, result["run_id"], day)
        else:
            day = None
    return done


def day_summary(settings: Settings, business_date: date) -> dict:
    """What a person wants after a run: rows in, matched, unmatched, gate, report."""
    from tally.publish import alerts

    with postgres.connect(settings, autocommit=True) as conn:
        files = dict(conn.execute(
            "select status, count(*) from tally.files where business_date = %s group by status",
            (business_date,)).fetchall())
        rows = conn.execute(
            "select coalesce(sum(row_count), 0) from tally.files"
            " where business_date = %s and status = 'loaded'", (business_date,)).fetchone()[0]
        outcomes, projects, breaks, incomplete = {}, {}, 0, {}
        if conn.execute("select to_regclass('marts.fct_outcomes')").fetchone()[0]:
            outcomes = dict(conn.execute(
                "select outcome, count(*) from marts.fct_outcomes"
                " where as_of_date = %s group by outcome", (business_date,)).fetchall())
            projects = {p: float(rate) for p, rate in conn.execute(
                "select project, round(sum(matched_count) * 1.0 / sum(row_count), 4)"
                " from marts.fct_daily_summary where as_of_date = %s group by project"
                " order by project", (business_date,)).fetchall()}
            # breaks are differences (one per case), not the rows in them
            breaks = conn.execute(
                "select count(*) from marts.fct_breaks where as_of_date = %s and needs_person",
                (business_date,)).fetchone()[0]
            incomplete = alerts.incomplete_projects(conn, business_date)
        unregistered = []
        if conn.execute("select to_regclass('marts.fct_unregistered_accounts')").fetchone()[0]:
            unregistered = [
                {"account": account, "source": source, "bookings": int(n)}
                for account, source, n in conn.execute(
                    "select coalesce(account, '(no account number)'), source, booking_count"
                    " from marts.fct_unregistered_accounts where business_date = %s"
                    " order by 1, 2", (business_date,)).fetchall()]
        run = conn.execute(
            "select run_id, status, gate_passed, report_uri from tally.runs"
            " where business_date = %s order by started_at desc limit 1",
            (business_date,)).fetchone()
    return {
        "business_date": business_date.isoformat(),
        "files": files,
        "rows_loaded": int(rows),
        "reconciled": int(sum(outcomes.values())),
        "matched": int(outcomes.get("matched", 0)),
        "suspense": int(outcomes.get("suspense", 0)),
        "breaks": int(breaks),
        "break_rows": int(outcomes.get("break", 0)),
        "resolved": int(outcomes.get("resolved", 0)),
        "incomplete": incomplete,
        "match_rate": projects,
        # statements for accounts not in include/accounts.yaml: loaded, not reconciled
        "unregistered_accounts": unregistered,
        "run_id": run[0] if run else None,
        "run_status": run[1] if run else None,
        "gate_passed": run[2] if run else None,
        "report": run[3] if run else None,
    }


def code_version(settings: Settings) -> str:
    """The commit the code runs at, if it is a git checkout; else the package version."""
    import subprocess

    from tally import __version__

    try:
        commit = subprocess.run(
            ["git", "-C", str(settings.project_dir), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True).stdout.strip()
        return f"{__version__}+{commit}"
    except (OSError, subprocess.SubprocessError):
        return __version__
