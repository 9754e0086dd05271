"""The day's reports in the published zone: a new version per publication, manifest last.

Every output is rendered from the `reporting` views only (the contract BI tools read too):
a workbook and an HTML report for finance, and a CSV and a Parquet extract of each view.

Publication is atomic for readers: every output is first written under a staging prefix
(`_staging/<date>/<token>/`), then promoted by copy to `daily/<date>/v<NNNN>/` with conditional
puts (never overwriting), and `_manifest.json` is written LAST. A reader treats a version as
complete only when its manifest exists (`complete_versions`). Publishing a day again creates
the next version. S3 has no rename, so a publisher that dies mid-promotion leaves a version
without a manifest, which readers ignore and the next publication skips. A publisher killed
outright (SIGKILL, a lost worker) also leaves its staged objects under `_staging/`: they are
outside `daily/`, so no reader takes them for a report, and nothing removes them automatically
(an operator may delete `_staging/` objects older than a day, or set a lifecycle rule).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq

from tally import money, storage
from tally.config import Settings

# The reporting contract, in the order finance reads it; balance_checks when it exists.
VIEWS = ["daily_summary", "breaks", "suspense", "status_corrections", "matches", "outcomes"]
OPTIONAL_VIEWS = ["balance_checks", "source_arrivals"]
# Views with a row per transaction (or in-flight item): exported by streaming, never held in
# memory; the workbook streams suspense from a cursor too, and the HTML report reads only its
# ageing. The other views are small and read whole.
STREAMED_VIEWS = {"matches", "outcomes", "suspense"}
# What the workbook and the HTML report read of a view: breaks without the suspense items
# (they are on the suspense sheet, with the break each would become).
READ_WHERE = {"breaks": "outcome <> 'suspense'"}
BATCH_ROWS = 50_000
HISTORY_DAYS = 14  # the match-rate chart looks back this many days
MANIFEST = "_manifest.json"

# Suspense ageing buckets: (first day, last day or None, label zh, label en).
AGEING_BUCKETS = [
    (0, 0, "当天", "Same day"),
    (1, 1, "1 天", "1 day"),
    (2, 3, "2–3 天", "2–3 days"),
    (4, 7, "4–7 天", "4–7 days"),
    (8, None, "8 天以上", "8+ days"),
]


@dataclass
class View:
    """One reporting view's rows for the day, with the PostgreSQL type name of each column."""

    name: str
    columns: list[str]
    types: list[str]
    rows: list[tuple]

    def dicts(self) -> list[dict]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def total(self, column: str) -> dict[str, int]:
        """Sum of an integer minor-unit column per currency."""
        at, currency_at = self.columns.index(column), self.columns.index("currency")
        totals: dict[str, int] = {}
        for row in self.rows:
            if row[at] is not None:
                totals[row[currency_at]] = totals.get(row[currency_at], 0) + row[at]
        return totals


@dataclass
class DayReport:
    business_date: date
    run: dict
    views: dict[str, View]
    # (day, project, rows, matched rows) for the HISTORY_DAYS ending on the business date.
    history: list[tuple] = field(default_factory=list)
    inputs: list[dict] = field(default_factory=list)
    # Suspense per project, currency and ageing bucket (read_ageing).
    ageing: list[dict] = field(default_factory=list)
    # Break type -> "中文 English" label, for every type (suspense items name theirs too).
    break_labels: dict[str, str] = field(default_factory=dict)


def bucket_of(age_days: int | None) -> int:
    """Index into AGEING_BUCKETS for an age in days."""
    age = max(age_days or 0, 0)
    for index, (first, last, _, _) in enumerate(AGEING_BUCKETS):
        if age >= first and (last is None or age <= last):
            return index
    raise AssertionError(age)


def read_ageing(conn: psycopg.Connection, business_date: date) -> list[dict]:
    """Suspense per project, currency and ageing bucket: count and amount (minor units).
    PostgreSQL sums per age in days; the ages are put in buckets here (AGEING_BUCKETS)."""
    table: dict[tuple, list[int]] = {}
    for project, currency, age, count, total in conn.execute(
            "select project, currency, greatest(coalesce(age_days, 0), 0), count(*),"
            " coalesce(sum(amount_minor), 0)::bigint from reporting.suspense"
            " where business_date = %s group by 1, 2, 3", (business_date,)):
        counts = table.setdefault((project, currency, bucket_of(age)), [0, 0])
        counts[0] += count
        counts[1] += total
    return [{"project": p, "currency": c, "bucket": b, "label_zh": AGEING_BUCKETS[b][2],
             "label_en": AGEING_BUCKETS[b][3], "count": n, "amount_minor": amount}
            for (p, c, b), (n, amount) in sorted(table.items())]


def existing_views(conn: psycopg.Connection) -> list[str]:
    found = [name for name in [*VIEWS, *OPTIONAL_VIEWS]
             if conn.execute("select to_regclass(%s)", (f"reporting.{name}",)).fetchone()[0]]
    missing = [name for name in VIEWS if name not in found]
    if missing:
        raise RuntimeError(f"reporting views missing: {', '.join(missing)}; run dbt first")
    return found


def _query(conn: psycopg.Connection, name: str, where: str = "") -> str:
    # Ordered by every column: the same day gives the same bytes, whichever plan PostgreSQL picks.
    count = len(conn.execute(f"select * from reporting.{name} limit 0").description)
    order = ", ".join(str(i) for i in range(1, count + 1))
    where = f" and ({where})" if where else ""
    return f"select * from reporting.{name} where business_date = %s{where} order by {order}"


def _shape(conn: psycopg.Connection, description) -> tuple[list[str], list[str], list[int]]:
    """Column names, type names, and the positions of minor-unit columns PostgreSQL returns as
    numeric (sum() of bigint is numeric): those are made integers again."""
    columns = [d.name for d in description]
    types = []
    for d in description:
        info = conn.adapters.types.get(d.type_code)
        types.append(info.name if info else "text")
    numeric = [i for i, (c, t) in enumerate(zip(columns, types, strict=True))
               if c.endswith("_minor") and t == "numeric"]
    return columns, ["int8" if i in numeric else t for i, t in enumerate(types)], numeric


def read_view(conn: psycopg.Connection, name: str, business_date: date,
              where: str = "") -> View:
    cursor = conn.execute(_query(conn, name, where), (business_date,))
    columns, types, numeric = _shape(conn, cursor.description)
    rows = cursor.fetchall()
    if numeric:
        rows = [_integral(row, numeric, name) for row in rows]
    return View(name, columns, types, rows)


def iter_view(conn: psycopg.Connection, name: str, business_date: date) -> Iterator[dict]:
    """The view's rows for the day as dicts, in the order of read_view, BATCH_ROWS at a time
    from a server-side cursor. Read it to the end: the cursor's transaction closes then."""
    with conn.transaction(), conn.cursor(name=f"iter_{name}") as cursor:
        cursor.execute(_query(conn, name), (business_date,))
        columns, _, numeric = _shape(conn, cursor.description)
        while rows := cursor.fetchmany(BATCH_ROWS):
            for row in rows:
                if numeric:
                    row = _integral(row, numeric, name)
                yield dict(zip(columns, row, strict=True))


def _integral(row: tuple, positions: list[int], view: str) -> tuple:
    values = list(row)
    for i in positions:
        if values[i] is not None:
            if values[i] != values[i].to_integral_value():
                raise ValueError(f"reporting.{view}: minor units not whole: {values[i]}")
            values[i] = int(values[i])
    return tuple(values)


def read_day(conn: psycopg.Connection, business_date: date, run_id: str) -> DayReport:
    """What the workbook and the HTML report show: every view but the streamed ones."""
    views = {name: read_view(conn, name, business_date, READ_WHERE.get(name, ""))
             for name in existing_views(conn) if name not in STREAMED_VIEWS}
    run = conn.execute(
        "select run_id, code_version, rules_digest, gate_passed, gate_summary from tally.runs"
        " where run_id = %s", (run_id,)).fetchone()
    run_info = dict(zip(["run_id", "code_version", "rules_digest", "gate_passed", "gate"],
                        run or (run_id, None, None, None, None), strict=True))
    history = conn.execute(
        "select business_date, project, sum(row_count)::bigint, sum(matched_count)::bigint"
        " from reporting.daily_summary where business_date between %s and %s"
        " group by business_date, project order by business_date, project",
        (business_date - timedelta(days=HISTORY_DAYS - 1), business_date)).fetchall()
    inputs = conn.execute(
        "select file_id, source, original_name, sha256, size_bytes, row_count from tally.files"
        " where business_date <= %s and status = 'loaded' order by file_id",
        (business_date,)).fetchall()
    # Every type's label, not only the day's breaks': a suspense item names the type it would
    # become (a payout awaiting its bill would be an unidentified settlement).
    labels = conn.execute(
        "select break_type, label_zh, label_en from reference.break_types").fetchall()
    return DayReport(business_date, run_info, views, history, [
        {"file_id": f, "source": s, "name": n, "sha256": h, "bytes": b, "rows": r}
        for f, s, n, h, b, r in inputs], read_ageing(conn, business_date),
        {code: f"{zh} {en}" for code, zh, en in labels})


# Extracts -----------------------------------------------------------------------------------

def _csv_rows(columns: list[str], rows):
    """The view's columns, then for each `<x>_minor` column the decimal text `<x>` (exact,
    from money.format_minor)."""
    minor = [(i, c[: -len("_minor")]) for i, c in enumerate(columns) if c.endswith("_minor")]
    currency_at = columns.index("currency") if "currency" in columns else None
    minor = minor if currency_at is not None else []
    if rows is None:
        return [*columns, *(name for _, name in minor)]
    return [[*row, *(None if row[i] is None else money.format_minor(row[i], row[currency_at])
                     for i, _ in minor)] for row in rows]


_ARROW_TYPES = {
    "int8": pa.int64(), "int4": pa.int32(), "int2": pa.int16(), "bool": pa.bool_(),
    "date": pa.date32(), "text": pa.string(), "varchar": pa.string(), "bpchar": pa.string(),
    "timestamptz": pa.timestamp("us", tz="UTC"), "timestamp": pa.timestamp("us"),
}


def _arrow_column(values: list, type_name: str) -> pa.Array:
    if type_name in _ARROW_TYPES:
        return pa.array(values, type=_ARROW_TYPES[type_name])
    if type_name == "numeric":
        # Decimals stay decimals (match rates); a column of nulls only has no scale to infer.
        array = pa.array(values)
        return array if not pa.types.is_null(array.type) else array.cast(pa.decimal128(38, 6))
    return pa.array([None if v is None else str(v) for v in values], type=pa.string())


def _arrow_table(columns: list[str], types: list[str], rows: list[tuple],
                 decimals: dict[str, pa.DataType]) -> pa.Table:
    values = list(zip(*rows, strict=True)) if rows else [[] for _ in columns]
    return pa.table({name: pa.array(list(column), type=decimals[name]) if name in decimals
                     else _arrow_column(list(column), type_name)
                     for name, type_name, column in zip(columns, types, values, strict=True)})


def _decimal_types(conn: psycopg.Connection, name: str, business_date: date,
                   columns: list[str], types: list[str]) -> dict[str, pa.DataType]:
    """A numeric column's Parquet type for the whole view, whatever the batch: its largest
    scale on the day (round() leaves PostgreSQL's numeric without a declared scale)."""
    numeric = [c for c, t in zip(columns, types, strict=True) if t == "numeric"]
    if not numeric:
        return {}
    scales = conn.execute(
        "select " + ", ".join(f"coalesce(max(scale({c})), 0)" for c in numeric)
        + f" from reporting.{name} where business_date = %s", (business_date,)).fetchone()
    return {c: pa.decimal128(38, scale) for c, scale in zip(numeric, scales, strict=True)}


@dataclass
class Extract:
    name: str
    rows: int
    files: dict[str, Path]  # output name -> local file


def export_view(conn: psycopg.Connection, name: str, business_date: date,
                directory: Path) -> Extract:
    """Write the view's rows for the day to `<name>.csv` (UTF-8 with BOM, so that Excel opens
    Chinese text) and `<name>.parquet` (amounts stay int64 minor units, dates are dates),
    50 000 rows at a time from a server-side cursor: memory does not grow with the view."""
    query = _query(conn, name)
    csv_path, parquet_path = directory / f"{name}.csv", directory / f"{name}.parquet"
    columns, types, numeric = _shape(
        conn, conn.execute(f"select * from reporting.{name} limit 0").description)
    decimals = _decimal_types(conn, name, business_date, columns, types)
    count, writer = 0, None
    with conn.transaction(), conn.cursor(name=f"export_{name}") as cursor, \
            open(csv_path, "w", encoding="utf-8", newline="") as text:
        cursor.execute(query, (business_date,))
        out = csv.writer(text, lineterminator="\n")
        text.write("\ufeff")
        out.writerow(_csv_rows(columns, None))
        try:
            while True:
                rows = cursor.fetchmany(BATCH_ROWS)
                if numeric:
                    rows = [_integral(row, numeric, name) for row in rows]
                if rows or writer is None:
                    table = _arrow_table(columns, types, rows, decimals)
                    if writer is None:
                        writer = pq.ParquetWriter(parquet_path, table.schema,
                                                  compression="zstd")
                    writer.write_table(table.cast(writer.schema))
                if not rows:
                    break
                out.writerows(_csv_rows(columns, rows))
                count += len(rows)
        finally:
            if writer is not None:
                writer.close()
    return Extract(name, count, {f"{name}.csv": csv_path, f"{name}.parquet": parquet_path})


def render_outputs(conn: psycopg.Connection, day: DayReport, directory: Path
                   ) -> tuple[dict[str, Path], dict[str, int]]:
    """Every file of a publication, written under `directory`: workbook, HTML report, one CSV
    and Parquet per view. Returns {output name: file} and {view: rows}."""
    from tally.publish import excel
    from tally.publish import html_report as html

    stamp = day.business_date.isoformat()
    files = {f"report_{stamp}.xlsx": directory / f"report_{stamp}.xlsx",
             f"report_{stamp}.html": directory / f"report_{stamp}.html"}
    excel.write_workbook(day, iter_view(conn, "suspense", day.business_date),
                         files[f"report_{stamp}.xlsx"])
    files[f"report_{stamp}.html"].write_bytes(html.report(day).encode("utf-8"))
    counts = {}
    for name in existing_views(conn):
        extract = export_view(conn, name, day.business_date, directory)
        files.update(extract.files)
        counts[name] = extract.rows
    return files, counts


# Publication --------------------------------------------------------------------------------

def day_prefix(business_date: date) -> str:
    return f"daily/{business_date.isoformat()}/"


def version_prefix(business_date: date, version: int) -> str:
    return f"{day_prefix(business_date)}v{version:04d}/"


def _versions(keys: list[str]) -> dict[int, set[str]]:
    found: dict[int, set[str]] = {}
    for key in keys:
        if m := re.search(r"/v(\d+)/(.+)$", key):
            found.setdefault(int(m.group(1)), set()).add(m.group(2))
    return found


def complete_versions(s3, bucket: str, business_date: date) -> list[int]:
    """The versions a reader may use: those whose manifest exists (it is written last)."""
    found = _versions(storage.list_keys(s3, bucket, day_prefix(business_date)))
    return sorted(v for v, names in found.items() if MANIFEST in names)


def latest_manifest(s3, bucket: str, business_date: date) -> dict | None:
    """The manifest of the newest complete version of the day, or None."""
    versions = complete_versions(s3, bucket, business_date)
    if not versions:
        return None
    key = version_prefix(business_date, versions[-1]) + MANIFEST
    return json.loads(storage.get_bytes(s3, bucket, key))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _promote(s3, bucket: str, business_date: date, staging: str,
             digests: dict[str, str]) -> tuple[int, str]:
    """Copy the staged objects into the next free version; return (version, prefix)."""
    names = list(digests)
    while True:
        found = _versions(storage.list_keys(s3, bucket, day_prefix(business_date)))
        version = max(found, default=0) + 1
        prefix = version_prefix(business_date, version)
        # The first object claims the version; a concurrent publisher moves to the next one.
        if _copy(s3, bucket, staging + names[0], prefix + names[0], digests[names[0]]):
            break
    for name in names[1:]:
        if not _copy(s3, bucket, staging + name, prefix + name, digests[name]):
            raise RuntimeError(f"{prefix}{name} exists already: another publisher wrote into "
                               "this version; it stays incomplete (no manifest)")
    return version, prefix


def _copy(s3, bucket: str, source: str, target: str, digest: str) -> bool:
    # A copy through this process (via a temporary file: outputs can be large), so that the
    # write is conditional (never overwrites) and the staged bytes are proven to be the ones
    # rendered.
    with tempfile.TemporaryFile() as spool:
        check = hashlib.sha256()
        for chunk in s3.get_object(Bucket=bucket, Key=source)["Body"].iter_chunks(1 << 20):
            spool.write(chunk)
            check.update(chunk)
        if check.hexdigest() != digest:
            raise RuntimeError(f"staged object {source} does not have the bytes rendered")
        spool.seek(0)
        return storage.put_if_absent(s3, bucket, target, spool)


def publish_day(settings: Settings, conn: psycopg.Connection, s3, business_date: date,
                run_id: str) -> str:
    """Render, stage, promote, then write the manifest. Returns the version's s3:// URI."""
    bucket = settings.s3.published_bucket
    scratch_root = settings.home / "run"
    scratch_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="publish-", dir=scratch_root) as scratch:
        day = read_day(conn, business_date, run_id)
        files, counts = render_outputs(conn, day, Path(scratch))
        digests = {name: _sha256(path) for name, path in files.items()}
        staging = f"_staging/{business_date.isoformat()}/{uuid.uuid4().hex}/"
        try:
            for name, path in files.items():
                with open(path, "rb") as body:
                    if not storage.put_if_absent(s3, bucket, staging + name, body):
                        raise RuntimeError(f"staging key {staging}{name} exists already")
            version, prefix = _promote(s3, bucket, business_date, staging, digests)
        finally:
            for name in files:
                s3.delete_object(Bucket=bucket, Key=staging + name)
        sizes = {name: path.stat().st_size for name, path in files.items()}
    manifest = {
        "business_date": business_date.isoformat(),
        "version": version,
        "run_id": run_id,
        "code_version": day.run["code_version"],
        "rules_digest": day.run["rules_digest"],
        "gate": day.run["gate"],
        "published_at": datetime.now(UTC).isoformat(),
        "inputs": day.inputs,
        "views": counts,
        "outputs": [{"name": name, "key": prefix + name, "sha256": digests[name],
                     "bytes": sizes[name]} for name in files],
    }
    body = json.dumps(manifest, indent=2, ensure_ascii=False, default=str).encode()
    if not storage.put_if_absent(s3, bucket, prefix + MANIFEST, body):
        raise RuntimeError(f"{prefix}{MANIFEST} exists already")
    return f"s3://{bucket}/{prefix}"
