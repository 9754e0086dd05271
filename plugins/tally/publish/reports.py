"""The day's reports in the published zone: a new version per publication, manifest last.

Layout: daily/<business_date>/v<NNNN>/{outcomes.csv, summary.csv, _manifest.json}. Every object
is written once (conditional put); a reader treats a version as complete only when its
_manifest.json exists, and the manifest is written after everything it lists.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from datetime import UTC, date, datetime

import psycopg

from tally import money, storage
from tally.config import Settings

OUTCOME_COLUMNS = [
    "business_date", "project", "side", "source", "kind", "reference", "account_masked",
    "direction", "amount_minor", "currency", "outcome", "break_type", "rule", "age_days",
    "explanation", "transaction_key", "counterpart_key",
]
BREAK_COLUMNS = [
    "business_date", "project", "break_type", "label_zh", "label_en", "outcome", "source",
    "reference", "account", "amount_minor", "amount_difference_minor", "currency",
    "transaction_date", "age_days", "explanation", "transaction_key",
]


def _csv(header: list[str], rows: list[tuple]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    # UTF-8 with BOM so that Excel opens Chinese text correctly.
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def outcomes_csv(conn: psycopg.Connection, business_date: date) -> bytes:
    rows = conn.execute(
        f"select {', '.join(OUTCOME_COLUMNS)} from reporting.outcomes"
        " where business_date = %s order by side, outcome, reference, transaction_key",
        (business_date,)).fetchall()
    header = [*OUTCOME_COLUMNS, "amount"]
    amount_at = OUTCOME_COLUMNS.index("amount_minor")
    currency_at = OUTCOME_COLUMNS.index("currency")
    return _csv(header, [(*r, money.format_minor(r[amount_at], r[currency_at])) for r in rows])


def breaks_csv(conn: psycopg.Connection, business_date: date) -> bytes:
    rows = conn.execute(
        f"select {', '.join(BREAK_COLUMNS)} from reporting.breaks where business_date = %s"
        " order by project, break_type, reference, transaction_key", (business_date,)).fetchall()
    amount_at, currency_at = BREAK_COLUMNS.index("amount_minor"), BREAK_COLUMNS.index("currency")
    return _csv([*BREAK_COLUMNS, "amount"],
                [(*r, money.format_minor(r[amount_at], r[currency_at])) for r in rows])


def summary_csv(conn: psycopg.Connection, business_date: date) -> bytes:
    columns = ["business_date", "project", "currency", "row_count", "matched_count",
               "suspense_count", "break_count", "matched_amount_minor", "suspense_amount_minor",
               "break_amount_minor", "match_rate"]
    rows = conn.execute(
        f"select {', '.join(columns)} from reporting.daily_summary where business_date = %s"
        " order by project, currency", (business_date,)).fetchall()
    return _csv(columns, rows)


def _next_version(s3, bucket: str, prefix: str) -> int:
    versions = [int(m.group(1)) for key in storage.list_keys(s3, bucket, prefix)
                if (m := re.search(r"/v(\d+)/", key))]
    return max(versions, default=0) + 1


def publish_day(settings: Settings, conn: psycopg.Connection, s3, business_date: date,
                run_id: str) -> str:
    bucket = settings.s3.published_bucket
    day_prefix = f"daily/{business_date.isoformat()}/"
    outputs = {"outcomes.csv": outcomes_csv(conn, business_date),
               "breaks.csv": breaks_csv(conn, business_date),
               "summary.csv": summary_csv(conn, business_date)}
    inputs = conn.execute(
        "select file_id, source, original_name, sha256, row_count from tally.files"
        " where business_date <= %s and status = 'loaded' order by file_id",
        (business_date,)).fetchall()
    run = conn.execute("select code_version, rules_digest from tally.runs where run_id = %s",
                       (run_id,)).fetchone()
    while True:
        version = _next_version(s3, bucket, day_prefix)
        prefix = f"{day_prefix}v{version:04d}/"
        # Claim the version with its first object; a concurrent publisher takes the next one.
        names = list(outputs)
        if not storage.put_if_absent(s3, bucket, prefix + names[0], outputs[names[0]]):
            continue
        for name in names[1:]:
            storage.put_if_absent(s3, bucket, prefix + name, outputs[name])
        break
    manifest = {
        "business_date": business_date.isoformat(),
        "version": version,
        "run_id": run_id,
        "code_version": run[0] if run else None,
        "rules_digest": run[1] if run else None,
        "published_at": datetime.now(UTC).isoformat(),
        "inputs": [{"file_id": f, "source": s, "name": n, "sha256": h, "rows": r}
                   for f, s, n, h, r in inputs],
        "outputs": [{"key": prefix + name, "sha256": hashlib.sha256(body).hexdigest(),
                     "bytes": len(body)} for name, body in outputs.items()],
    }
    storage.put_if_absent(s3, bucket, prefix + "_manifest.json",
                          json.dumps(manifest, indent=2, ensure_ascii=False).encode())
    return f"s3://{bucket}/{prefix}"
