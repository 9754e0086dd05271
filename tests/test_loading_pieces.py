"""Loading in pieces and over worker processes: a file lands exactly its rows whatever the
piece size, a bad row in a later piece leaves nothing of the file, and a day spread over
several processes loads each file once."""

import csv
import hashlib
import io
from datetime import date
from decimal import Decimal

import pandas as pd
from psycopg import sql

from tally import formats, loading, pipeline, sources
from tally.devtools import generator
from tally.formats import csv_table

DAY = date(2026, 11, 20)


def drop(settings, source: str, name: str, data: bytes) -> None:
    folder = settings.inbox_dir / source / DAY.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)


def raw_table(conn, settings, source: str, table: str | None = None) -> pd.DataFrame:
    config = sources.load_all(settings)[source]
    schema, name = config.table_name(table).split(".")
    cursor = conn.execute(sql.SQL("select * from {} order by file_id, record_no").format(
        sql.Identifier(schema, name)))
    return pd.DataFrame(cursor.fetchall(), columns=[d.name for d in cursor.description])


def ledger(settings, rows: int, seed: int = 3) -> tuple[str, bytes]:
    day = generator.generate_day(DAY, rows, settings.home / "generated", seed=seed)
    path = day.files["platform_ledger"]
    return path.name, path.read_bytes()


def test_a_file_loaded_in_pieces_lands_exactly_its_rows(clean, conn, monkeypatch):
    settings = clean
    name, data = ledger(settings, 200)
    config = sources.load_all(settings)["platform_ledger"]
    whole = formats.parse(data, config, name).rows
    pieces = []
    copy = loading.copy_rows
    monkeypatch.setattr(formats, "CHUNK_ROWS", 7)  # 200 rows: 29 pieces, 29 COPYs
    monkeypatch.setattr(loading, "copy_rows", lambda *a, **k: pieces.append(len(a[4])) or
                        copy(*a, **k))
    drop(settings, "platform_ledger", name, data)
    pipeline.land_day(settings, DAY)
    loaded = pipeline.load_day(settings, DAY)

    assert loaded["loaded_rows"] == len(whole) > 150
    assert len(pieces) == -(-len(whole) // 7) and max(pieces) == 7 and sum(pieces) == len(whole)
    raw = raw_table(conn, settings, "platform_ledger")
    # Records numbered 1..n across the pieces, each row the parser's, in file order.
    assert raw["record_no"].tolist() == list(range(1, len(whole) + 1))
    assert raw["line_no"].tolist() == whole["line_no"].tolist()
    for column in config.raw_columns:
        expected = whole[column].tolist()
        got = raw[column].tolist()
        if column.endswith("_minor"):
            assert got == expected, column
        else:  # an empty text goes to COPY as NULL
            assert [g if isinstance(g, str) else "" for g in got] == expected, column


def test_pieces_put_together_are_the_whole_parse_with_the_same_checks(settings):
    """The settlement file's trial balance and the bank CSV's running balance need the whole
    file: fed piece by piece they pass (and say the same) as over the whole file."""
    day = generator.generate_day(DAY, 300, settings.home / "generated-checks", seed=9)
    configs = sources.load_all(settings)
    for source, key in (("platform_settlement", "platform_settlement"),
                        ("bank_csv", "bank_csv:3445"), ("platform_balances", "platform_balances")):
        path = day.files[key]
        data = path.read_bytes()
        whole = formats.parse(data, configs[source], path.name)
        pieces = formats.parse_pieces(data, configs[source], path.name, chunk_rows=3)
        frames = [piece.rows for piece in pieces]
        assert len(frames) >= 3
        joined = pd.concat(frames).reset_index(drop=True)
        pd.testing.assert_frame_equal(joined, whole.rows)
        assert pieces.checks == whole.checks and pieces.checks


def test_a_running_balance_broken_in_a_later_piece_is_found_there(settings):
    day = generator.generate_day(DAY, 300, settings.home / "generated-balance", seed=9)
    config = sources.load_all(settings)["bank_csv"]
    path = day.files["bank_csv:3445"]
    rows = list(csv.reader(io.StringIO(path.read_bytes().decode())))
    at = rows[0].index(config.columns["balance"])
    balance = Decimal(rows[40][at].replace(",", ""))
    rows[40][at] = f"{balance + 1:,}"  # one yuan too much on line 41 (quoted: "1,234.56")
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    data = out.getvalue().encode()
    seen = []
    try:
        for piece in formats.parse_pieces(data, config, path.name, chunk_rows=10):
            seen.append(len(piece.rows))
    except formats.FormatError as exc:
        assert (exc.line, exc.field_name) == (41, "balance")
        assert "running balance breaks" in exc.message
    else:
        raise AssertionError("the broken balance was not found")
    assert sum(seen) >= 30  # earlier pieces had been handed over (and would be rolled back)


def test_a_bad_row_in_a_later_piece_quarantines_the_whole_file(clean, conn, s3, monkeypatch):
    settings = clean
    name, data = ledger(settings, 200)
    lines = data.decode().split("\n")
    bad_line = 150  # 1-based line of the file; pieces of 7 rows: earlier pieces were COPYed
    cells = lines[bad_line - 1].split(",")
    cells[5] = "12.3.4"  # amount
    lines[bad_line - 1] = ",".join(cells)
    bad = "\n".join(lines).encode()
    copied = []
    copy = loading.copy_rows
    monkeypatch.setattr(formats, "CHUNK_ROWS", 7)
    monkeypatch.setattr(loading, "copy_rows", lambda *a, **k: copied.append(len(a[4])) or
                        copy(*a, **k))
    drop(settings, "platform_ledger", name, bad)
    pipeline.land_day(settings, DAY)
    result = pipeline.load_day(settings, DAY)

    assert sum(copied) >= 140  # the pieces before the bad row were sent to COPY ...
    (file_id, status, rows, error, q_key), = conn.execute(
        "select file_id, status, row_count, error, quarantine_key from tally.files").fetchall()
    assert (status, rows) == ("quarantined", None)
    assert error.startswith(f"{name}, line {bad_line}, field 'amount': '12.3.4' is not an amount")
    assert result["quarantined"] == [{"file_id": file_id, "source": "platform_ledger",
                                      "error": error}]
    # ... and none of them stayed: the file's one transaction rolled back.
    assert conn.execute("select count(*) from raw.platform_ledger").fetchone()[0] == 0
    assert s3.get_object(Bucket=settings.s3.quarantine_bucket, Key=q_key)["Body"].read() == bad


def test_a_day_loaded_by_worker_processes_loads_each_file_once(clean, conn, monkeypatch):
    settings = clean
    day = generator.generate_day(DAY, 400, settings.inbox_dir, seed=11)
    monkeypatch.setattr(loading, "PARALLEL_MIN_BYTES", 0)  # a small day, spread anyway
    monkeypatch.setattr(type(settings), "load_workers", property(lambda self: 2))
    landed = pipeline.land_day(settings, DAY)
    # Each file's own worker: none shares this process's connection.
    loaded = pipeline.load_day(settings, DAY)

    assert loaded["loaded_files"] == landed["landed"] == len(day.files)
    assert loaded["quarantined"] == []
    counts = dict(conn.execute(
        "select source, sum(row_count) from tally.files where status = 'loaded'"
        " group by source").fetchall())
    configs = sources.load_all(settings)
    for source, expected in counts.items():
        raw = raw_table(conn, settings, source)
        assert len(raw) == expected, source
        # every file's records numbered once, 1..n
        for _, records in raw.groupby("file_id")["record_no"]:
            assert records.tolist() == list(range(1, len(records) + 1))
        assert configs[source]
    assert pipeline.load_day(settings, DAY)["loaded_files"] == 0


def test_raw_tables_have_no_foreign_key_and_one_from_before_is_dropped(clean, conn):
    settings = clean
    pipeline.prepare(settings)
    conn.execute("alter table raw.platform_ledger add foreign key (file_id)"
                 " references tally.files (file_id)")
    # A warehouse built before: its raw tables' layout digest is not today's.
    conn.execute("update tally.schema_state set digest = 'before' where part like 'raw:%'")
    pipeline.prepare(settings)
    assert conn.execute(
        "select count(*) from pg_constraint where contype = 'f'"
        " and connamespace = 'raw'::regnamespace").fetchone()[0] == 0


def test_plain_and_exact_readings_of_a_csv_agree(settings):
    """The same ledger read by Arrow (plain lines) and by the exact reader (one quoted cell
    makes a file not plain) gives the same rows."""
    name, data = ledger(settings, 60, seed=4)
    config = sources.load_all(settings)["platform_ledger"]
    plain = csv_table.parse(data, config, name)
    lines = data.decode().split("\n")
    first = lines[1].split(",")
    first[0] = f'"{first[0]}"'  # a quoted id: the same value, read exactly
    lines[1] = ",".join(first)
    exact = csv_table.parse("\n".join(lines).encode(), config, name)
    pd.testing.assert_frame_equal(plain.rows, exact.rows)
    assert plain.checks == exact.checks
    assert hashlib.sha256(data).hexdigest()  # the plain file itself was untouched
