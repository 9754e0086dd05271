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


def expected_unmatched(labels) -> Counter:
    """What platform-vs-bank must leave unmatched on a generated day, from its labels."""
    bank = [d for d in labels["discrepancies"] if d["source"] == "bank"]
    platform = [d["reference"] for d in bank
                if d["type"] in ("missing_on_statement", "amount_mismatch")
                or (d["type"] == "timing" and "booked_on" in d)]
    statement = [d["reference"] for d in bank
                 if d["type"] in ("missing_on_platform", "amount_mismatch", "duplicate")
                 or (d["type"] == "timing" and "recorded_on" in d)]
    return Counter([("platform", r) for r in platform] + [("bank", r) for r in statement])


def test_outcomes_agree_with_the_labels(clean, conn):
    labels = load_generated(clean)
    transform.build(clean)
    rows = outcomes(conn)
    unmatched = Counter((side, ref) for _, side, ref, outcome, _, _ in rows
                        if outcome == "unmatched")
    assert unmatched == expected_unmatched(labels)

    # Every match pairs a platform row with a bank row of the same reference, amount and
    # direction, by the exact rule; and every bank transfer in the ledger is accounted for.
    mismatched_pairs = conn.execute("""
        select count(*) from marts.fct_reconciliation_outcomes p
        join marts.fct_reconciliation_outcomes b on b.transaction_key = p.counterpart_key
        where p.side = 'platform' and p.outcome = 'matched'
          and (b.side <> 'bank' or b.reference <> p.reference or b.amount_minor <> p.amount_minor
               or b.direction <> p.direction or p.rule <> 'exact_reference')""").fetchone()[0]
    assert mismatched_pairs == 0
    transfers = conn.execute(
        "select count(*) from staging.stg_platform__ledger"
        " where channel = 'bank_transfer' and status <> 'failed'").fetchone()[0]
    assert sum(1 for r in rows if r[1] == "platform") == transfers > 0
    matched = sum(1 for r in rows if r[3] == "matched")
    assert matched == 2 * (transfers - sum(
        n for (side, _), n in expected_unmatched(labels).items() if side == "platform"))


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
