"""dbt on the real warehouse: a generated day's outcomes agree with its ground-truth labels."""

import json
from collections import Counter
from datetime import date

from tally import generate, pipeline, transform

DAY = date(2026, 11, 20)


def load_generated(settings, scale=400, seed=4, day=DAY):
    generated = generate.generate_day(day, scale, settings.inbox_dir, seed=seed)
    pipeline.land_day(settings, day)
    pipeline.load_day(settings, day)
    return json.loads(generated.labels.read_text())


def outcomes(conn, day=DAY):
    return conn.execute(
        "select transaction_key, side, reference, outcome, rule, counterpart_key"
        " from marts.fct_reconciliation_outcomes where business_date = %s order by 1",
        (day,)).fetchall()


def test_outcomes_agree_with_the_labels(clean, conn):
    labels = load_generated(clean)
    transform.build(clean)
    rows = outcomes(conn)
    by_type = {t: {d["reference"] for d in labels["discrepancies"] if d["type"] == t}
               for t in generate.DISCREPANCY_TYPES}

    unmatched = Counter((side, ref) for _, side, ref, outcome, _, _ in rows
                        if outcome == "unmatched")
    expected = Counter(
        [("platform", r) for r in by_type["missing_on_statement"] | by_type["amount_mismatch"]]
        + [("bank", r) for r in by_type["missing_on_platform"] | by_type["amount_mismatch"]]
        + [("bank", r) for r in by_type["duplicate"]])
    assert unmatched == expected

    matched = [r for r in rows if r[3] == "matched"]
    assert len(matched) == 2 * labels["expected"]["matched_pairs"]
    assert {r[4] for r in matched} == {"exact_reference"}
    assert len(rows) == labels["expected"]["platform_rows"] + labels["expected"]["bank_rows"]


def test_rebuild_is_identical_and_keys_survive_reloading_a_file(clean, conn):
    load_generated(clean, scale=150, seed=8)
    transform.build(clean)
    before = outcomes(conn)
    transform.build(clean)
    assert outcomes(conn) == before

    # Reload the platform file from scratch (new file id): every key and outcome stays.
    file_id = conn.execute("select file_id from tally.files where source = 'platform_ledger'"
                           " and status = 'loaded'").fetchone()[0]
    conn.execute("delete from raw.platform_ledger where file_id = %s", (file_id,))
    conn.execute("delete from tally.files where duplicate_of = %s", (file_id,))
    conn.execute("delete from tally.files where file_id = %s", (file_id,))
    pipeline.land_day(clean, DAY)
    pipeline.load_day(clean, DAY)
    new_id = conn.execute("select file_id from tally.files where source = 'platform_ledger'"
                          " and status = 'loaded'").fetchone()[0]
    assert new_id != file_id
    transform.build(clean)
    assert outcomes(conn) == before
