"""Load landed files into raw tables with COPY: a whole file in one transaction, or nothing."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import psycopg
from psycopg import sql

from tally import formats, landing, storage
from tally.config import Settings
from tally.sources import SourceConfig


@dataclass(frozen=True)
class Loaded:
    file_id: int
    source: str
    status: str  # 'loaded', 'quarantined', 'superseded' or 'skipped'
    rows: int = 0
    error: str | None = None


# Rows per piece of CSV written to COPY: the file's CSV text is never built whole (at a million
# rows that was ~300 MiB more). Per-row write_row costs twice the CPU; bigger pieces gain nothing.
COPY_CHUNK_ROWS = 50_000


def copy_rows(conn: psycopg.Connection, table_name: str, raw_columns: list[str], file_id: int,
              rows) -> int:
    """COPY a parsed frame (line_no + raw_columns) into a raw table, numbering its records."""
    columns = ["file_id", "record_no", "line_no", *raw_columns]
    schema, table = table_name.split(".")
    statement = sql.SQL("copy {} ({}) from stdin (format csv)").format(
        sql.Identifier(schema, table), sql.SQL(", ").join(map(sql.Identifier, columns)))
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for start in range(0, len(rows), COPY_CHUNK_ROWS):
            chunk = rows.iloc[start:start + COPY_CHUNK_ROWS]
            chunk = chunk.assign(file_id=file_id,
                                 record_no=range(start + 1, start + 1 + len(chunk)))
            copy.write(chunk[columns].to_csv(index=False, header=False))
    return len(rows)


def load_file(settings: Settings, conn: psycopg.Connection, s3, config: SourceConfig,
              file_id: int) -> Loaded:
    key, sha256, name = conn.execute(
        "select raw_key, sha256, original_name from tally.files where file_id = %s", (file_id,)
    ).fetchone()
    data = storage.get_bytes(s3, settings.s3.raw_bucket, key)
    if hashlib.sha256(data).hexdigest() != sha256:
        raise RuntimeError(f"raw object {key} does not match its manifest hash")
    try:
        parsed = formats.parse(data, config, name)
    except formats.FormatError as exc:
        landing.quarantine(settings, conn, s3, file_id, data, str(exc))
        return Loaded(file_id, config.source, "quarantined", error=str(exc))
    try:
        return _copy_file(conn, config, file_id, parsed)
    except psycopg.DataError as exc:
        # The database refused a value the parser let through: the file is bad, not the day.
        reason = f"{name}: the warehouse refused a value: {str(exc).splitlines()[0]}"
        landing.quarantine(settings, conn, s3, file_id, data, reason)
        return Loaded(file_id, config.source, "quarantined", error=reason)


# A file delivered again under the same name for the same source and date, with new bytes, is a
# correction: it replaces the version loaded before it, in the same transaction as its rows, so
# the day never counts both and never neither. Another name is another file (another account,
# another part) and adds to the day.
SUPERSEDE_EARLIER = """
update tally.files as older set status = 'superseded', superseded_by = newer.file_id
from tally.files as newer
where newer.file_id = %(file_id)s
  and older.source = newer.source and older.business_date = newer.business_date
  and older.original_name = newer.original_name
  and older.status = 'loaded' and older.file_id < newer.file_id
"""
NEWER_VERSION = """
select max(newer.file_id) from tally.files as newer
join tally.files as this on newer.source = this.source
  and newer.business_date = this.business_date and newer.original_name = this.original_name
where this.file_id = %(file_id)s and newer.file_id > this.file_id and newer.status = 'loaded'
"""


def _copy_file(conn: psycopg.Connection, config: SourceConfig, file_id: int, parsed) -> Loaded:
    with conn.transaction():
        newer = conn.execute(NEWER_VERSION, {"file_id": file_id}).fetchone()[0]
        if newer is not None:  # a later correction is already loaded: this one never counts
            conn.execute("update tally.files set status = 'superseded', superseded_by = %s"
                         " where file_id = %s and status = 'landed'", (newer, file_id))
            return Loaded(file_id, config.source, "superseded")
        claimed = conn.execute(
            "update tally.files set status = 'loaded', loaded_at = now() "
            "where file_id = %s and status = 'landed' returning file_id", (file_id,),
        ).fetchone()
        if not claimed:  # another run loaded it meanwhile
            return Loaded(file_id, config.source, "skipped")
        conn.execute(SUPERSEDE_EARLIER, {"file_id": file_id})
        count = copy_rows(conn, config.table_name(), config.raw_columns, file_id, parsed.rows)
        for table, frame in parsed.tables.items():
            copy_rows(conn, config.table_name(table), config.tables[table].raw_columns, file_id,
                      frame)
        conn.execute("update tally.files set row_count = %s where file_id = %s",
                     (count, file_id))
    return Loaded(file_id, config.source, "loaded", rows=count)
