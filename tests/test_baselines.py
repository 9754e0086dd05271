"""The benchmark's baselines (pandas; plain SQL in DuckDB) on a generated day that Tally ran:
they must leave exactly the rows Tally leaves unmatched and make as many pairs per rule."""

from collections import Counter
from datetime import date

import pandas as pd
import pytest

from tally import baselines, generate, pipeline, recon, transform

D1 = date(2026, 11, 20)
BASELINES = {"pandas": baselines.run_pandas, "duckdb": baselines.run_duckdb}


@pytest.fixture(scope="module")
def day(request):
    """Tally's whole pipeline on one generated day, and the day's parsed files."""
    settings = request.getfixturevalue("clean")
    generated = generate.generate_day(D1, 3000, settings.inbox_dir, seed=21)
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
    """On a first day the group rule has nothing to pair (a bill day is paid the next morning):
    make the day's settlement credits pay today's bills, one exactly, one a fen short."""
    settings, _, frames = day
    rules = recon.load(settings)
    canonical = baselines.standardise(baselines.day_of(frames, settings))
    assert all(str(canonical[column].dtype) == "int64"
               for column in ("amount_minor", "fee_minor", "net_amount_minor"))
    bank = frames["bank_csv"].copy()
    bills = {}
    for channel, short in (("ALIPAY", 0), ("WECHATPAY", 1)):
        batch = f"{channel}-SETTLE-{D1:%Y%m%d}"
        bill = canonical[canonical["settlement_batch"] == batch]
        credit = bank["reference"] == f"{channel}-SETTLE-{date(2026, 11, 19):%Y%m%d}"
        assert credit.sum() == 1
        bank.loc[credit, "reference"] = batch
        bank.loc[credit, "credit_minor"] = int(bill["net_amount_minor"].sum()) - short
        bills[channel] = len(bill)
    frames = {**frames, "bank_csv": bank}
    found = {name: run(frames, rules, settings) for name, run in BASELINES.items()}
    for result in found.values():
        assert result.pairs[("channel_settlement_vs_bank", "net_settlement")] == bills["ALIPAY"]
        left_open = per_project(result.open_rows, "channel_settlement_vs_bank")
        assert left_open.total() == bills["WECHATPAY"] + 1
    assert baselines.compare(found["pandas"], found["duckdb"])["same"]
