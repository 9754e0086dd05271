"""The benchmark's baselines (pandas; plain SQL in DuckDB) on a generated day that Tally ran:
they must leave exactly the rows Tally leaves unmatched and make as many pairs per rule."""

from collections import Counter
from datetime import date

import pandas as pd
import pytest

from tally import pipeline, recon, transform
from tally.devtools import baselines, generator

D1 = date(2026, 11, 20)
BASELINES = {"pandas": baselines.run_pandas, "duckdb": baselines.run_duckdb}


@pytest.fixture(scope="module")
def day(request):
    """Tally's whole pipeline on one generated day, and the day's parsed files."""
    settings = request.getfixturevalue("clean")
    generated = generator.generate_day(D1, 3000, settings.inbox_dir, seed=21)
    pipeline.land_day(settings, D1)
    pipeline.load_day(settings, D1)
    transform.build(settings, D1)
    return settings, generated, baselines.read_day(generated.files, settings)


@pytest.fixture(scope="module")
def clean(settings):
    from tests.conftest import reset

    return reset(settings)


def per_project(rows: Counter, project: str) -> Counter:
    return Counter({row: n for row, n in rows.items() if row[0] == project})


CANONICAL = ["transaction_key", "source", "side", "kind", "account", "reference",
             "settlement_batch", "channel", "direction", "amount_minor", "fee_minor",
             "net_amount_minor", "currency", "status", "event_at", "account_role"]


def rows_of(values) -> Counter:
    """Canonical rows as comparable tuples: NULL as None, times as UTC instants."""
    frame = pd.DataFrame(values, columns=CANONICAL)
    frame["event_at"] = pd.to_datetime(frame["event_at"], utc=True)
    frame = frame.astype(object)
    frame = frame.where(frame.notna(), None)
    return Counter(map(tuple, frame.itertuples(index=False)))


def test_both_standardisations_give_tally_canonical_rows(day, conn):
    """Same keys (so the same tie-breaks), references, signs, roles, batches and times as
    int_transactions: if a staging model changes, this says the baselines must follow."""
    settings, _, frames = day
    columns = ", ".join(CANONICAL)
    tally = rows_of(conn.execute(
        f"select {columns} from intermediate.int_transactions").fetchall())
    on_day = baselines.day_of(frames, settings)
    assert rows_of(baselines.standardise(on_day)[CANONICAL].values.tolist()) == tally
    with baselines.duckdb_transactions(on_day) as con:
        assert rows_of(con.execute(f"select {columns} from transactions").fetchall()) == tally
    assert len(tally) > 6000


@pytest.mark.parametrize("name", BASELINES)
def test_baseline_leaves_exactly_what_tally_leaves_unmatched(day, conn, name):
    settings, _, frames = day
    rules = recon.load(settings)
    tally = baselines.tally_open_rows(conn, D1)
    found = BASELINES[name](frames, rules, settings)
    # Every rule of platform_vs_bank pairs something; four projects leave rows open.
    assert all(tally.pairs[("platform_vs_bank", rule["rule"])] > 0
               for rule in rules["projects"][0]["rules"])
    assert len(tally.projects()) == 5 and len({row[0] for row in tally.open_rows}) == 4
    for project in rules["projects"]:
        project_name = project["project"]
        assert (per_project(found.open_rows, project_name)
                == per_project(tally.open_rows, project_name)), project_name
        for rule in project["rules"]:
            key = (project_name, rule["rule"])
            assert found.pairs[key] == tally.pairs.get(key, 0), key
    assert baselines.compare(tally, found)["same"]


def test_run_baselines_times_each_in_its_own_process_and_checks_the_breaks(day, conn):
    settings, generated, _ = day
    report = baselines.run_baselines(settings, generated.files, D1, conn,
                                     tally_seconds={"matching": 2.0, "end_to_end": 10.0})
    for name in BASELINES:
        found = report[name]
        assert found["same_breaks"] is True and found["differences"] is None
        assert found["open_rows"]["tally"] == found["open_rows"]["baseline"] > 0
        assert found["pairs"]["tally"] == found["pairs"]["baseline"] > 0
        assert found["seconds"] > 0
        assert found["peak_rss_mib"] >= found["inputs_rss_mib"] > 0
        assert found["ratio_to_tally_matching"] == pytest.approx(found["seconds"] / 2.0,
                                                                 abs=0.001)
        assert found["ratio_to_tally_end_to_end"] == pytest.approx(found["seconds"] / 10.0,
                                                                   abs=0.001)


def test_compare_shows_a_difference_and_why(day, conn):
    tally = baselines.tally_open_rows(conn, D1)
    row = sorted(tally.open_rows, key=str)[0]
    rule = ("platform_vs_bank", "amount_time_window")
    other = baselines.BaselineResult(tally.open_rows - Counter([row]),
                                     {**tally.pairs, rule: tally.pairs[rule] + 1})
    found = baselines.compare(tally, other)
    assert found["same"] is False and found["projects"][row[0]]["same"] is False
    assert found["only_in_tally"] == [dict(zip(baselines.IDENTITY, row, strict=True))]
    assert found["only_in_baseline"] == []
    assert found["pair_differences"] == {
        "platform_vs_bank.amount_time_window": {"tally": tally.pairs[rule],
                                                "baseline": tally.pairs[rule] + 1}}
    assert "platform_vs_bank.amount_time_window" in found["reason"]
    assert "1 rows Tally left open" in found["reason"]


def test_both_baselines_pair_a_bill_day_with_the_credit_of_its_net(day):
    """On a first day no batch is paid yet (a bill day is paid the next morning): make the
    day's payouts name today's bill date, Alipay's for the batch's net exactly, WeChat Pay's a
    fen short; both baselines pair the first and leave the second batch and credit open."""
    settings, _, frames = day
    rules = recon.load(settings)
    canonical = baselines.standardise(baselines.day_of(frames, settings))
    assert all(str(canonical[column].dtype) == "int64"
               for column in ("amount_minor", "fee_minor", "net_amount_minor"))
    batches = canonical[canonical["source"] == "channel_batch"].set_index("channel")
    assert len(batches) == 2
    csv, camt = frames["bank_csv"].copy(), frames["bank_camt053"].copy()
    alipay = csv["counterparty"] == generator.PAYOUTS["alipay"]["payer"]
    wechat = camt["counterparty"] == generator.PAYOUTS["wechatpay"]["payer"]
    assert alipay.sum() == 1 and wechat.sum() == 1
    csv.loc[alipay, "reference"] = f"{D1:%Y%m%d}交易结算 20261120000000000001"
    csv.loc[alipay, "credit_minor"] = int(batches.at["alipay", "amount_minor"])
    camt.loc[wechat, "remittance"] = f"财付通结算 账单日{D1:%Y-%m-%d}"
    camt.loc[wechat, "amount_minor"] = int(batches.at["wechatpay", "amount_minor"]) - 1
    frames = {**frames, "bank_csv": csv, "bank_camt053": camt}
    found = {name: run(frames, rules, settings) for name, run in BASELINES.items()}
    for result in found.values():
        assert result.pairs[("channel_settlement_vs_bank", "batch_exact")] == 1
        assert result.pairs[("channel_settlement_vs_bank", "settlement_by_amount")] == 0
        left_open = per_project(result.open_rows, "channel_settlement_vs_bank")
        assert sorted((side, source) for _, side, source, *_ in left_open.elements()) == [
            ("left", "channel_batch"), ("right", "bank_camt053")]
    assert baselines.compare(found["pandas"], found["duckdb"])["same"]