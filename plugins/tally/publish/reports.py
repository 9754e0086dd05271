"""The day's reports in the published zone: a new version per publication, manifest last.

Every output is rendered from the `reporting` views only (the contract BI tools read too):
a workbook and an HTML report for finance, and a CSV and a Parquet extract of each view.

**Extracts hold every row; the workbook and the HTML report are bounded.** A day of a million
transactions leaves millions of rows in `outcomes` and `matches` and tens of thousands of
breaks (29,423 on the 1M bench day; ten times that at 10M); suspense is kept per batch by the
models already (a channel's bill day awaiting its payout is one `settlement_batch` item), but a
day of missing statements can still leave many items waiting. Nobody works such sheets in
Excel, and writing them cell by cell was most of publishing's time (555k suspense rows × 16
cells, when suspense still listed bill rows). So the workbook's item sheets (breaks, suspense)
hold at most
`Settings.workbook_rows` rows (10,000 by default), the ones a person looks at first: open
breaks, then the largest amounts; suspense items largest first. Next to them the workbook shows
what no cap can leave out, summed by PostgreSQL over every row: suspense per batch (a channel's
bill day awaiting its payout, a source not received, ... one line per project, source, kind,
day, awaited source and the break it would become) and per ageing bucket, and breaks per type.
Where a sheet is cut, the sheet's last line and the summary sheet say how many rows there are
and name the CSV and Parquet extracts that hold every one.

Extracts are written by PostgreSQL: `COPY (select ...) TO STDOUT (FORMAT csv)` streams the CSV
straight to a local file (the decimal text of each `_minor` column computed in SQL, exactly);
the Parquet file is that CSV read back by Arrow's streaming CSV reader, with the view's types,
block by block. No Python object per cell either way.

Publication is atomic for readers: every output is rendered to local files first, then written
once, with conditional puts (never overwriting), straight into `daily/<date>/v<NNNN>/`; the
first object written claims the version (a concurrent publisher that loses the race moves on to
the next number), and `_manifest.json` is written LAST. A reader treats a version as complete
only when its manifest exists (`complete_versions`). Publishing a day again creates the next
version. A publisher that dies mid-way leaves a version without a manifest, which readers
ignore and the next publication skips.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from psycopg import sql

from tally import money, storage
from tally.config import Settings
from tally.publish import excel
from tally.publish import html_report as html
from tally.publish.model import (
    AGEING_BUCKETS,
    HISTORY_DAYS,
    WORKBOOK_ROWS,
    DayReport,
    View,
    bucket_of,
)

# The reporting contract, in the order finance reads it; balance_checks when it exists.
VIEWS = ["daily_summary", "breaks", "suspense", "status_corrections", "matches", "outcomes"]
OPTIONAL_VIEWS = ["balance_checks", "source_arrivals"]
# Views with a row per transaction (or in-flight item): only exported (by COPY), never read
# whole; the workbook reads the largest suspense items and sums of the rest. The other views
# are small and read whole, except breaks (below).
STREAMED_VIEWS = {"matches", "outcomes", "suspense"}
# What the workbook and the HTML report read of a view: breaks without the suspense items
# (they are on the suspense sheet, with the break each would become).
READ_WHERE = {"breaks": "outcome <> 'suspense'"}
# Rows the workbook shows of the item views, first first (the rest are in the extracts):
# open breaks, then informational differences, each largest first; suspense largest first.
READ_ORDER = {
    "breaks": "outcome <> 'break', outcome <> 'matched', abs(amount_minor) desc nulls last",
    "suspense": "abs(amount_minor) desc nulls last, age_days desc nulls last",
}
BATCH_ROWS = 50_000  # rows per Parquet row group
COPY_BLOCK_BYTES = 4 * 2**20  # bytes of CSV per block of Arrow's reader
MANIFEST = "_manifest.json"

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


SUSPENSE_BATCH_KEYS = ["project", "source", "kind", "transaction_date", "awaiting",
                       "becomes_break_type", "currency"]


def read_suspense_batches(conn: psycopg.Connection, business_date: date,
                          limit: int) -> list[dict]:
    """Suspense summed per batch: the items of one project, source and kind from one day that
    wait for the same thing and would become the same break (a channel's bill day awaiting
    its payout is one such line), largest amount first, with their count and oldest age."""
    keys = ", ".join(SUSPENSE_BATCH_KEYS)
    cursor = conn.execute(
        f"select {keys}, count(*) as count, coalesce(sum(amount_minor), 0)::bigint"
        " as amount_minor, max(age_days) as age_days from reporting.suspense"
        f" where business_date = %s group by {keys}"
        f" order by abs(coalesce(sum(amount_minor), 0)) desc, {keys} limit %s",
        (business_date, limit))
    columns = [d.name for d in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def read_break_totals(conn: psycopg.Connection, business_date: date) -> list[dict]:
    """Breaks (without the suspense items) per outcome, type and currency: count and amount."""
    cursor = conn.execute(
        "select outcome, break_type, label_zh, label_en, currency, count(*) as count,"
        " coalesce(sum(amount_minor), 0)::bigint as amount_minor from reporting.breaks"
        f" where business_date = %s and ({READ_WHERE['breaks']})"
        " group by 1, 2, 3, 4, 5 order by 1, 2, 3, 4, 5", (business_date,))
    columns = [d.name for d in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def count_rows(conn: psycopg.Connection, name: str, business_date: date,
               where: str = "") -> int:
    where = f" and ({where})" if where else ""
    return conn.execute(f"select count(*) from reporting.{name} where business_date = %s"
                        + where, (business_date,)).fetchone()[0]


def existing_views(conn: psycopg.Connection) -> list[str]:
    found = [name for name in [*VIEWS, *OPTIONAL_VIEWS]
             if conn.execute("select to_regclass(%s)", (f"reporting.{name}",)).fetchone()[0]]
    missing = [name for name in VIEWS if name not in found]
    if missing:
        raise RuntimeError(f"reporting views missing: {', '.join(missing)}; run dbt first")
    return found


def _query(conn: psycopg.Connection, name: str, where: str = "", first: str = "",
           limit: int | None = None) -> str:
    # Ordered by every column: the same day gives the same bytes, whichever plan PostgreSQL picks.
    count = len(conn.execute(f"select * from reporting.{name} limit 0").description)
    order = ", ".join([*([first] if first else []), *(str(i) for i in range(1, count + 1))])
    where = f" and ({where})" if where else ""
    limit_clause = f" limit {int(limit)}" if limit is not None else ""
    return (f"select * from reporting.{name} where business_date = %s{where} order by {order}"
            f"{limit_clause}")


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
              where: str = "", first: str = "", limit: int | None = None) -> View:
    """The view's rows for the day (those matching `where`), ordered by `first` then every
    column, at most `limit` of them."""
    cursor = conn.execute(_query(conn, name, where, first, limit), (business_date,))
    columns, types, numeric = _shape(conn, cursor.description)
    rows = cursor.fetchall()
    if numeric:
        rows = [_integral(row, numeric, name) for row in rows]
    return View(name, columns, types, rows)


def iter_view(conn: psycopg.Connection, name: str, business_date: date, first: str = "",
              limit: int | None = None) -> Iterator[dict]:
    """The view's rows for the day as dicts, in the order of read_view, BATCH_ROWS at a time
    from a server-side cursor. Read it to the end: the cursor's transaction closes then."""
    with conn.transaction(), conn.cursor(name=f"iter_{name}") as cursor:
        cursor.execute(_query(conn, name, first=first, limit=limit), (business_date,))
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


def read_day(conn: psycopg.Connection, business_date: date, run_id: str,
             limit: int = WORKBOOK_ROWS) -> DayReport:
    """What the workbook and the HTML report show: every view but the streamed ones, breaks
    at most `limit` rows (open breaks and the largest first), and sums over every row."""
    views = {name: read_view(conn, name, business_date, READ_WHERE.get(name, ""),
                             READ_ORDER.get(name, ""), limit if name == "breaks" else None)
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
    ageing = read_ageing(conn, business_date)
    counts = {"breaks": count_rows(conn, "breaks", business_date, READ_WHERE["breaks"]),
              "suspense": sum(r["count"] for r in ageing)}
    return DayReport(business_date, run_info, views, history, [
        {"file_id": f, "source": s, "name": n, "sha256": h, "bytes": b, "rows": r}
        for f, s, n, h, b, r in inputs], ageing,
        {code: f"{zh} {en}" for code, zh, en in labels}, counts, limit,
        read_suspense_batches(conn, business_date, limit),
        read_break_totals(conn, business_date))


def read_suspense(conn: psycopg.Connection, business_date: date, limit: int) -> Iterator[dict]:
    """The day's largest `limit` suspense items (by amount, then age), for the workbook."""
    return iter_view(conn, "suspense", business_date, READ_ORDER["suspense"], limit)


# Extracts -----------------------------------------------------------------------------------

_ARROW_TYPES = {
    "int8": pa.int64(), "int4": pa.int32(), "int2": pa.int16(), "bool": pa.bool_(),
    "date": pa.date32(), "text": pa.string(), "varchar": pa.string(), "bpchar": pa.string(),
    "timestamptz": pa.timestamp("us", tz="UTC"), "timestamp": pa.timestamp("us"),
}


def _decimal_types(conn: psycopg.Connection, name: str, business_date: date,
                   columns: list[str], types: list[str]) -> dict[str, pa.DataType]:
    """A numeric column's Parquet type for the whole view: its largest scale on the day
    (round() leaves PostgreSQL's numeric without a declared scale)."""
    numeric = [c for c, t in zip(columns, types, strict=True) if t == "numeric"]
    if not numeric:
        return {}
    scales = conn.execute(
        "select " + ", ".join(f"coalesce(max(scale({c})), 0)" for c in numeric)
        + f" from reporting.{name} where business_date = %s", (business_date,)).fetchone()
    return {c: pa.decimal128(38, scale) for c, scale in zip(numeric, scales, strict=True)}


def _csv_value(column: str, type_name: str, whole: bool) -> str:
    """The SQL for a column's CSV text: booleans as True/False, minor units summed as numeric
    made bigint again, times in UTC ISO form; everything else as PostgreSQL writes it (NULL
    empty, an empty text quoted: "")."""
    ident = f'v."{column}"'
    if type_name == "bool":
        return f"case when {ident} then 'True' when not {ident} then 'False' end"
    if whole:
        return f"{ident}::bigint"
    if type_name == "timestamptz":
        return f"""to_char({ident} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
    if type_name == "timestamp":
        return f"""to_char({ident}, 'YYYY-MM-DD"T"HH24:MI:SS.US')"""
    return ident


def _decimal_text(column: str, exponents: dict[str, int]) -> str:
    """SQL for the exact decimal text of a minor-unit column in its row's currency, as
    money.format_minor writes it (-1234 CNY -> -12.34, JPY -> -1234)."""
    by_exponent: dict[int, list[str]] = {}
    for currency, exp in exponents.items():
        by_exponent.setdefault(exp, []).append(currency)
    ident = f'v."{column}"'
    cases = []
    for exp, currencies in sorted(by_exponent.items()):
        listed = ", ".join("'" + c.replace("'", "''") + "'" for c in sorted(currencies))
        text = (f"{ident}::numeric::text" if exp == 0
                else f"round({ident}::numeric / {10 ** exp}, {exp})::text")
        cases.append(f"when v.currency in ({listed}) then {text}")
    return f"case {' '.join(cases)} end" if cases else "null::text"


@dataclass
class Extract:
    name: str
    rows: int
    files: dict[str, Path]  # output name -> local file


def export_view(conn: psycopg.Connection, name: str, business_date: date,
                directory: Path) -> Extract:
    """Write the view's rows for the day to `<name>.csv` (UTF-8 with BOM, so that Excel opens
    Chinese text; the view's columns, then the decimal text `<x>` of each `<x>_minor`) and
    `<name>.parquet` (amounts stay int64 minor units, dates are dates, numerics decimals).

    PostgreSQL writes the CSV (COPY ... TO STDOUT), streamed to the file; Arrow reads it back
    block by block with the view's types for the Parquet file. Memory does not grow with the
    view, and no cell becomes a Python object."""
    csv_path, parquet_path = directory / f"{name}.csv", directory / f"{name}.parquet"
    columns, types, numeric = _shape(
        conn, conn.execute(f"select * from reporting.{name} limit 0").description)
    decimals = _decimal_types(conn, name, business_date, columns, types)
    minor = ([c for c in columns if c.endswith("_minor")] if "currency" in columns else [])
    exponents = {}
    if minor:
        exponents = {c: money.exponent(c) for (c,) in conn.execute(
            f"select distinct currency from reporting.{name} where business_date = %s"
            " and currency is not null", (business_date,)).fetchall()}
    select = [_csv_value(c, t, i in numeric) for i, (c, t) in enumerate(
        zip(columns, types, strict=True))]
    select += [_decimal_text(c, exponents) for c in minor]
    order = ", ".join(f'v."{c}"' for c in columns)  # every column: the same day, same bytes
    query = sql.SQL(
        "copy (select {} from reporting.{} as v where v.business_date = {} order by {})"
        " to stdout (format csv)").format(
        sql.SQL(", ".join(select)), sql.Identifier(name),
        sql.Literal(business_date), sql.SQL(order))
    header = [*columns, *(c[: -len("_minor")] for c in minor)]
    with open(csv_path, "wb") as out:
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerow(header)
        out.write(("\ufeff" + text.getvalue()).encode("utf-8"))
        with conn.cursor() as cursor, cursor.copy(query) as copy:
            for data in copy:
                out.write(data)
    rows = _csv_to_parquet(csv_path, parquet_path, header, columns, types, decimals)
    return Extract(name, rows, {f"{name}.csv": csv_path, f"{name}.parquet": parquet_path})


def _csv_to_parquet(csv_path: Path, parquet_path: Path, header: list[str],
                    columns: list[str], types: list[str],
                    decimals: dict[str, pa.DataType]) -> int:
    """The CSV extract read back with the view's types, written as Parquet (zstd), BATCH_ROWS
    rows per row group. Returns the rows."""
    schema = pa.schema([(c, decimals.get(c) or _ARROW_TYPES.get(t, pa.string()))
                        for c, t in zip(columns, types, strict=True)])
    reader = pa_csv.open_csv(
        csv_path,
        read_options=pa_csv.ReadOptions(column_names=header, skip_rows=1,
                                        block_size=COPY_BLOCK_BYTES),
        parse_options=pa_csv.ParseOptions(newlines_in_values=True),
        convert_options=pa_csv.ConvertOptions(
            column_types={f.name: f.type for f in schema}, include_columns=columns,
            null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=False,
            true_values=["True"], false_values=["False"],
            timestamp_parsers=[pa_csv.ISO8601]))
    rows = 0
    with pq.ParquetWriter(parquet_path, schema, compression="zstd") as writer:
        pending: list[pa.RecordBatch] = []
        size = 0
        for batch in reader:
            pending.append(batch)
            size += batch.num_rows
            if size >= BATCH_ROWS:
                table = pa.Table.from_batches(pending, schema)
                writer.write_table(table, row_group_size=BATCH_ROWS)
                rows, pending, size = rows + table.num_rows, [], 0
        table = pa.Table.from_batches(pending, schema)
        writer.write_table(table, row_group_size=BATCH_ROWS)
        rows += table.num_rows
    return rows


def render_outputs(conn: psycopg.Connection, day: DayReport, directory: Path
                   ) -> tuple[dict[str, Path], dict[str, int]]:
    """Every file of a publication, written under `directory`: workbook, HTML report, one CSV
    and Parquet per view. Returns {output name: file} and {view: rows}."""
    stamp = day.business_date.isoformat()
    files = {f"report_{stamp}.xlsx": directory / f"report_{stamp}.xlsx",
             f"report_{stamp}.html": directory / f"report_{stamp}.html"}
    excel.write_workbook(day, read_suspense(conn, day.business_date, day.limit),
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


def _write_version(s3, bucket: str, business_date: date, files: dict[str, Path]
                   ) -> tuple[int, str]:
    """Write every output once, straight into the next free version, with conditional puts;
    return (version, prefix). The first object claims the version: a concurrent publisher
    that wrote it first moves this one on to the next number."""
    names = list(files)
    while True:
        found = _versions(storage.list_keys(s3, bucket, day_prefix(business_date)))
        version = max(found, default=0) + 1
        prefix = version_prefix(business_date, version)
        with open(files[names[0]], "rb") as body:
            if storage.put_if_absent(s3, bucket, prefix + names[0], body):
                break
    for name in names[1:]:
        with open(files[name], "rb") as body:
            if not storage.put_if_absent(s3, bucket, prefix + name, body):
                raise RuntimeError(f"{prefix}{name} exists already: another publisher wrote "
                                   "into this version; it stays incomplete (no manifest)")
    return version, prefix


def publish_day(settings: Settings, conn: psycopg.Connection, s3, business_date: date,
                run_id: str) -> str:
    """Render, write each output into the next version, then the manifest. Returns the
    version's s3:// URI."""
    bucket = settings.s3.published_bucket
    scratch_root = settings.home / "run"
    scratch_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="publish-", dir=scratch_root) as scratch:
        day = read_day(conn, business_date, run_id, settings.workbook_rows)
        files, counts = render_outputs(conn, day, Path(scratch))
        digests = {name: _sha256(path) for name, path in files.items()}
        version, prefix = _write_version(s3, bucket, business_date, files)
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
