"""The daily job's steps as plain functions. The DAG only wires these; so does the CLI."""

from __future__ import annotations

import json
from datetime import date

from tally import loading, sources, storage, warehouse
from tally.config import Settings
from tally.services import postgres


def prepare(settings: Settings) -> None:
    """Create Tally's control and raw tables and the BI tools' read-only role (idempotent)."""
    from tally import roles

    with postgres.connect(settings, autocommit=True) as conn:
        warehouse.ensure_schema(conn, sources.load_all(settings))
        roles.ensure_bi_role(conn)


def land_day(settings: Settings, business_date: date) -> dict:
    """Land every file that arrived for the day (file drops, channel pulls) in the raw zone."""
    from tally import intake

    configs = sources.load_all(settings)
    s3 = storage.client(settings)
    with postgres.connect(settings, autocommit=True) as conn:
        warehouse.ensure_schema(conn, configs)
        arrived = intake.collect_day(settings, conn, s3, configs, business_date)
    return {
        "landed": sum(r.status == "landed" for r in arrived.landed),
        "duplicates": sum(r.status == "duplicate" for r in arrived.landed),
        "files": [{"file_id": r.file_id, "source": r.source, "name": r.name,
                   "status": r.status} for r in arrived.landed],
        "not_ready": arrived.not_ready,
        "failed": arrived.failed,
    }


def load_day(settings: Settings, business_date: date) -> dict:
    """Parse and COPY every landed, not yet loaded file of the day; reject bad ones."""
    configs = sources.load_all(settings)
    s3 = storage.client(settings)
    results = []
    with postgres.connect(settings, autocommit=True) as conn:
        warehouse.ensure_schema(conn, configs)
        pending = conn.execute(
            "select file_id, source from tally.files where business_date = %s"
            " and status = 'landed' order by file_id", (business_date,),
        ).fetchall()
        for file_id, source in pending:
            results.append(loading.load_file(settings, conn, s3, configs[source], file_id))
    return {
        "loaded_files": sum(r.status == "loaded" for r in results),
        "loaded_rows": sum(r.rows for r in results),
        "quarantined": [{"file_id": r.file_id, "source": r.source, "error": r.error}
                        for r in results if r.status == "quarantined"],
    }


def start_run(settings: Settings, run_id: str, business_date: date) -> None:
    """Record the run, the code version and the reconciliation rules it uses."""
    from tally import recon

    rules = recon.load(settings)
    with postgres.connect(settings, autocommit=True) as conn:
        conn.execute(
            """insert into tally.runs (run_id, business_date, code_version, rules_digest, rules)
               values (%s, %s, %s, %s, %s)
               on conflict (run_id) do update set started_at = now(), status = 'running',
                   gate_passed = null, gate_summary = null, report_uri = null,
                   finished_at = null, rules_digest = excluded.rules_digest,
                   rules = excluded.rules""",
            (run_id, business_date, code_version(settings), recon.digest(rules),
             json.dumps(rules)),
        )


def check_gate(settings: Settings, run_id: str, business_date: date) -> dict:
    """Run the GX checkpoint; record its verdict; raise GateFailed if any invariant broke."""
    from tally import gate

    result = gate.run(settings, business_date)
    with postgres.connect(settings, autocommit=True) as conn:
        conn.execute(
            "update tally.runs set gate_passed = %s, gate_summary = %s,"
            " status = case when %s then status else 'gate_failed' end,"
            " finished_at = case when %s then null else now() end where run_id = %s",
            (result.passed, json.dumps(result.as_json()), result.passed, result.passed, run_id),
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
    return uri


def day_summary(settings: Settings, business_date: date) -> dict:
    """What a person wants after a run: rows in, matched, unmatched, gate, report."""
    with postgres.connect(settings, autocommit=True) as conn:
        files = dict(conn.execute(
            "select status, count(*) from tally.files where business_date = %s group by status",
            (business_date,)).fetchall())
        rows = conn.execute(
            "select coalesce(sum(row_count), 0) from tally.files"
            " where business_date = %s and status = 'loaded'", (business_date,)).fetchone()[0]
        outcomes, projects = {}, {}
        if conn.execute("select to_regclass('marts.fct_outcomes')").fetchone()[0]:
            outcomes = dict(conn.execute(
                "select outcome, count(*) from marts.fct_outcomes"
                " where as_of_date = %s group by outcome", (business_date,)).fetchall())
            projects = {p: float(rate) for p, rate in conn.execute(
                "select project, round(sum(matched_count) * 1.0 / sum(row_count), 4)"
                " from marts.fct_daily_summary where as_of_date = %s group by project"
                " order by project", (business_date,)).fetchall()}
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
        "breaks": int(outcomes.get("break", 0)),
        "match_rate": projects,
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
