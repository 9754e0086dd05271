"""dbt on the real warehouse: rebuilding is idempotent and keys survive reloading a file."""

import json
import re
from datetime import date

from tally import pipeline, transform, warehouse
from tally.devtools import generator

DAY = date(2026, 11, 20)


def load_generated(settings, scale=400, seed=4, day=DAY):
    generated = generator.generate_day(day, scale, settings.inbox_dir, seed=seed)
    pipeline.land_day(settings, day)
    pipeline.load_day(settings, day)
    return json.loads(generated.labels.read_text())


def outcomes(conn, day=DAY):
    return conn.execute(
        "select project, transaction_key, outcome, break_type, rule, counterpart_key,"
        " explanation from marts.fct_outcomes where as_of_date = %s order by 1, 2",
        (day,)).fetchall()


def test_every_source_row_reaches_the_canonical_model(clean, conn):
    labels = load_generated(clean)
    transform.build(clean, DAY)
    counts = dict(conn.execute(
        "select source, count(*) from intermediate.int_transactions group by source").fetchall())
    rows = labels["rows"]
    assert counts["platform_ledger"] == rows["platform_ledger"]
    assert counts["platform_custody_flows"] == rows["platform_custody_flows"]
    assert counts["alipay_bill"] == rows["alipay_bill"]
    assert counts["wechatpay_trade_bill"] == rows["wechatpay_bill"]
    banks = {"bank_csv", "bank_camt053", "bank_mt940", "bank_icbc_csv", "bank_cmb_csv",
             "bank_ccb_xls"}
    assert banks <= set(counts)
    assert sum(counts[b] for b in banks) == rows["bank"]


def test_the_models_unit_tests_pass(clean):
    """dbt's unit tests (fixed inputs and expected outputs, in the models' YAML) run here, once,
    rather than in every daily build."""
    load_generated(clean, scale=50, seed=2)
    transform.build(clean, DAY)
    output = transform.unit_tests(clean, DAY)
    done = re.search(r"PASS=(\d+) .*ERROR=(\d+) .*TOTAL=(\d+)", output)
    assert done, output[-2000:]
    passed, errors, total = map(int, done.groups())
    assert total >= 10 and passed == total and errors == 0, output[-2000:]


def test_rebuild_is_identical_and_keys_survive_reloading_a_file(clean, conn):
    load_generated(clean, scale=150, seed=8)
    transform.build(clean, DAY)
    before = outcomes(conn)
    assert before
    transform.build(clean, DAY)
    assert outcomes(conn) == before

    # Reload the platform file from scratch (new file id): every key and outcome stays.
    file_id = conn.execute("select file_id from tally.files where source = 'platform_ledger'"
                           " and status = 'loaded'").fetchone()[0]
    data_path = next((clean.inbox_dir / "platform_ledger" / DAY.isoformat()).glob("*.csv"))
    conn.execute("delete from raw.platform_ledger where file_id = %s", (file_id,))
    conn.execute("delete from tally.files where duplicate_of = %s", (file_id,))
    conn.execute("delete from tally.files where file_id = %s", (file_id,))
    data_path.with_name("reloaded.csv").write_bytes(data_path.read_bytes())
    pipeline.land_day(clean, DAY)
    pipeline.load_day(clean, DAY)
    new_id = conn.execute("select file_id from tally.files where source = 'platform_ledger'"
                          " and status = 'loaded'").fetchone()[0]
    assert new_id != file_id
    transform.build(clean, DAY)
    assert outcomes(conn) == before


def test_a_corrected_file_replaces_the_version_before_it(clean, conn):
    labels = load_generated(clean, scale=150, seed=8)
    transform.build(clean, DAY)
    keys = dict(conn.execute(
        "select transaction_key, amount_minor from intermediate.int_transactions"
        " where source = 'platform_ledger'").fetchall())

    # The platform sends its ledger again under the same name with one amount corrected.
    path = next((clean.inbox_dir / "platform_ledger" / DAY.isoformat()).glob("*.csv"))
    lines = path.read_text().splitlines(keepends=True)
    fields = lines[1].split(",")
    fields[5] = f"{int(fields[5].replace('.', '')) + 1:d}"
    fields[5] = f"{fields[5][:-2]}.{fields[5][-2:]}"
    lines[1] = ",".join(fields)
    path.write_text("".join(lines))
    pipeline.land_day(clean, DAY)
    assert pipeline.load_day(clean, DAY)["loaded_files"] == 1
    versions = conn.execute(
        "select file_id, status, superseded_by from tally.files"
        " where source = 'platform_ledger' order by file_id").fetchall()
    assert [v[1] for v in versions] == ["superseded", "loaded"]
    assert versions[0][2] == versions[1][0]

    transform.build(clean, DAY)
    after = dict(conn.execute(
        "select transaction_key, amount_minor from intermediate.int_transactions"
        " where source = 'platform_ledger'").fetchall())
    # The day counts the correction once, not both versions; every key survives.
    assert len(after) == labels["rows"]["platform_ledger"] == len(keys)
    assert after.keys() == keys.keys()
    changed = [after[k] - keys[k] for k in keys if keys[k] != after[k]]
    assert changed == [1]  # the corrected amount, one cent more


def test_a_warehouse_that_loaded_both_versions_keeps_the_last_when_it_migrates(clean, conn):
    load_generated(clean, scale=50, seed=9)
    path = next((clean.inbox_dir / "platform_ledger" / DAY.isoformat()).glob("*.csv"))
    path.write_text(path.read_text() + path.read_text().splitlines(keepends=True)[1])
    pipeline.land_day(clean, DAY)
    pipeline.load_day(clean, DAY)
    # As a warehouse from before corrections were known: both versions loaded, no such status.
    conn.execute("update tally.files set status = 'loaded', superseded_by = null"
                 " where status = 'superseded'")
    conn.execute("alter table tally.files drop constraint files_status_check")
    conn.execute("alter table tally.files add constraint files_status_check check"
                 " (status in ('landed', 'loaded', 'quarantined', 'duplicate'))")
    # ...and from before the schema recorded what it was built with.
    conn.execute("drop table tally.schema_state")

    warehouse.ensure_schema(conn)
    versions = conn.execute(
        "select file_id, status, superseded_by from tally.files"
        " where source = 'platform_ledger' order by file_id").fetchall()
    assert [v[1] for v in versions] == ["superseded", "loaded"]
    assert versions[0][2] == versions[1][0]
