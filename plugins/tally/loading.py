"""Load landed files into raw tables with COPY: a whole file in one transaction, or nothing.

A day's files are loaded by a pool of worker processes (`Settings.load_workers`, two on a
two-core machine), each file by a fresh worker on its own connection: parsing is CPU-bound
Python, so a second process, not a thread, is what uses the second core. The file expected to
take longest goes first, and files run side by side only while their estimated memory (file
size times what its parser was measured to take per byte) stays within a budget: a channel
bill, which expands most, runs beside small files only. A small day
(one file, or only a few MiB) is loaded in this process: starting workers would cost more than
it saves.

Within a file, a parser that can (`formats.parse_pieces`) hands its rows over in pieces of
`formats.CHUNK_ROWS`, each COPYed as soon as it is parsed, so memory follows the piece, not the
file. The file's transaction:

1. takes an advisory lock on (source, business date, original name): two versions of one file
   loaded at once by two workers take turns, so the later one supersedes the earlier (below);
2. claims the manifest row (`tally.files`: landed -> loaded), or finds the file superseded by a
   newer version already loaded, or loaded by another run meanwhile, and stops there;
3. parses and COPYs piece after piece; the self-checks that need the whole file (totals,
   balances that roll forward) carry their state from piece to piece and run at the end;
4. records the row count and commits.

A parse error or a value the database refuses anywhere in the file raises inside that
transaction: it rolls back, so none of the file's pieces stay, and the file goes to quarantine
with the reason (file, line and field). "Nothing half-loaded" is the transaction's, not the
parser's.

The raw tables have no foreign key to `tally.files`: the key was checked row by row during COPY
(about 45 % of COPY's time). What it guaranteed holds without it: rows are only ever written by
step 3, whose transaction has just claimed (and so row-locked) the file's manifest row, and
manifest rows are never deleted.
"""

from __future__ import annotations

import hashlib
import multiprocessing
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
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
# A day smaller than this (bytes of all its files) is loaded in this process, without workers.
PARALLEL_MIN_BYTES = 8 * 2**20


def copy_rows(conn: psycopg.Connection, table_name: str, raw_columns: list[str], file_id: int,
              rows, first_record: int = 1) -> int:
    """COPY a parsed frame (line_no + raw_columns) into a raw table, numbering its records
    from `first_record`."""
    columns = ["file_id", "record_no", "line_no", *raw_columns]
    schema, table = table_name.split(".")
    statement = sql.SQL("copy {} ({}) from stdin (format csv)").format(
        sql.Identifier(schema, table), sql.SQL(", ").join(map(sql.Identifier, columns)))
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for start in range(0, len(rows), COPY_CHUNK_ROWS):
            chunk = rows.iloc[start:start + COPY_CHUNK_ROWS]
            first = first_record + start
            chunk = chunk.assign(file_id=file_id, record_no=range(first, first + len(chunk)))
            copy.write(chunk[columns].to_csv(index=False, header=False))
    return len(rows)


# Memory a file's parse takes per byte of the file, by parser, measured on the 1M bench day
# (peak above imports / file size): compressed channel bills expand most.
MEMORY_PER_BYTE = {"alipay_bill": 46, "wechatpay_bill": 113, "csv_table": 4, "camt053": 3}
DEFAULT_MEMORY_PER_BYTE = 8
# Parse time per byte, relative (the same day): the longest parse starts first, since the
# day's load cannot end before it does.
TIME_PER_BYTE = {"alipay_bill": 23, "wechatpay_bill": 45, "csv_table": 1, "camt053": 5}
DEFAULT_TIME_PER_BYTE = 4
# What the workers may take together, by those estimates: a file estimated above it runs alone.
WORKERS_MEMORY_BUDGET = 1200 * 2**20


def estimate(config: SourceConfig, size: int | None) -> int:
    return (size or 0) * MEMORY_PER_BYTE.get(config.parser, DEFAULT_MEMORY_PER_BYTE)


def load_files(settings: Settings, configs: dict[str, SourceConfig],
               pending: list[tuple[int, str, int]]) -> list[Loaded]:
    """Load each (file_id, source, size in bytes); results in file_id order. Files are spread
    over `settings.load_workers` processes, the longest parse first, a file joining the running
    ones only while their estimated memory stays within WORKERS_MEMORY_BUDGET (one file alone
    may exceed it); a small day is loaded in this process."""
    workers = min(settings.load_workers, len(pending))
    if workers <= 1 or sum(size or 0 for _, _, size in pending) < PARALLEL_MIN_BYTES:
        from tally.services import postgres

        s3 = storage.client(settings)
        with postgres.connect(settings, autocommit=True) as conn:
            return [load_file(settings, conn, s3, configs[source], file_id)
                    for file_id, source, _ in pending]
    # forkserver: workers are forked from a clean single-threaded server that has imported the
    # loader (pandas, pyarrow, the parsers) once, not from this process, which may run threads
    # (an Airflow task does) or hold connections. One file per worker: the memory a parse
    # leaves in its process is returned when the process ends.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["tally.loading", "tally.formats.csv_table",
                                    "tally.formats.camt053", "tally.formats.alipay_bill"])
    # (memory, file, source), the longest parse first
    waiting = [(estimate(configs[source], size), file_id, source) for file_id, source, size
               in sorted(pending, key=lambda p: -(p[2] or 0) * TIME_PER_BYTE.get(
                   configs[p[1]].parser, DEFAULT_TIME_PER_BYTE))]
    results: dict[int, Loaded] = {}
    running: dict = {}  # future -> (file_id, estimate)
    with ProcessPoolExecutor(workers, mp_context=context, max_tasks_per_child=1) as pool:
        while waiting or running:
            used = sum(weight for _, weight in running.values())
            # the longest waiting file that fits beside the running ones (any file, alone)
            fit = next((item for item in waiting
                        if not running or used + item[0] <= WORKERS_MEMORY_BUDGET), None)
            if fit is not None and len(running) < workers:
                waiting.remove(fit)
                weight, file_id, source = fit
                future = pool.submit(_load_in_worker, settings, configs[source], file_id)
                running[future] = (file_id, weight)
                continue
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                file_id, _ = running.pop(future)
                results[file_id] = future.result()
    return [results[file_id] for file_id in sorted(results)]


def _load_in_worker(settings: Settings, config: SourceConfig, file_id: int) -> Loaded:
    from tally.services import postgres

    with postgres.connect(settings, autocommit=True) as conn:
        return load_file(settings, conn, storage.client(settings), config, file_id)


def load_file(settings: Settings, conn: psycopg.Connection, s3, config: SourceConfig,
              file_id: int) -> Loaded:
    key, sha256, name = conn.execute(
        "select raw_key, sha256, original_name from tally.files where file_id = %s", (file_id,)
    ).fetchone()
    data = storage.get_bytes(s3, settings.s3.raw_bucket, key)
    if hashlib.sha256(data).hexdigest() != sha256:
        raise RuntimeError(f"raw object {key} does not match its manifest hash")
    try:
        return _load(conn, config, file_id, data, name)
    except formats.FormatError as exc:
        reason = str(exc)
    except psycopg.DataError as exc:
        # The database refused a value the parser let through: the file is bad, not the day.
        reason = f"{name}: the warehouse refused a value: {str(exc).splitlines()[0]}"
    # The file's transaction has rolled back: nothing of it is in the raw tables.
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
# Versions of one file (source, date, name) load one at a time, whichever process loads them.
VERSIONS_LOCK = """
select pg_advisory_xact_lock(hashtextextended(
    concat_ws('/', 'tally.load', source, business_date::text, original_name), 0))
from tally.files where file_id = %(file_id)s
"""


def _load(conn: psycopg.Connection, config: SourceConfig, file_id: int, data: bytes,
          name: str) -> Loaded:
    with conn.transaction():
        conn.execute(VERSIONS_LOCK, {"file_id": file_id})
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
        copied: dict[str | None, int] = {}
        for piece in formats.parse_pieces(data, config, name):
            done = copied.get(piece.table, 0)
            copy_rows(conn, config.table_name(piece.table),
                      config.tables[piece.table].raw_columns if piece.table
                      else config.raw_columns, file_id, piece.rows, first_record=done + 1)
            copied[piece.table] = done + len(piece.rows)
        count = copied.get(None, 0)
        conn.execute("update tally.files set row_count = %s where file_id = %s",
                     (count, file_id))
    return Loaded(file_id, config.source, "loaded", rows=count)
