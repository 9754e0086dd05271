"""The account registry, include/accounts.yaml: checked with errors that name the line, handed
to dbt, and a statement for an account it does not list is named in the day's summary."""

import dataclasses
import shutil
from datetime import date

import pytest

from tally import accounts, cli, pipeline, transform
from tests.test_settlement import ALIPAY, camt053, payout, run_day

D1 = date(2026, 11, 20)
GOOD = """\
version: 1
channels:
  alipay:
    payer_names: [支付宝（中国）网络技术有限公司]
    remittance_patterns: ['账单日(\\\\d{8})']
    delay_days: [1, 3]
accounts:
  - account: "6222020200112233445"
    bank: Generic Bank
    role: collection
    currency: CNY
    statement_source: bank_csv
    settles: [alipay]
  - account: "6228480011223344556"
    bank: Custody Bank
    role: custody
    currency: CNY
    statement_source: bank_camt053
"""


def test_the_repository_registry_is_valid_and_lists_the_sample_accounts(settings):
    from tally.devtools import generator

    registry = accounts.load(settings)
    assert set(registry.roles()) == set(generator.STATEMENT_SOURCES)
    assert {a: registry.roles()[a] for a in generator.COLLECTION_ACCOUNTS} == {
        a: "collection" for a in generator.COLLECTION_ACCOUNTS}
    assert {(s.account, s.channel) for s in registry.settlements()} >= {
        (p["account"], channel) for channel, p in generator.PAYOUTS.items()}


def test_a_good_registry_reads_with_channel_defaults_and_overrides():
    text = GOOD.replace("    settles: [alipay]", "    settles:\n      - channel: alipay\n"
                        "        payer_accounts: ['1234']\n        delay_days: [0, 2]")
    registry = accounts.parse(text)
    (settlement,) = registry.settlements()
    assert settlement == accounts.Settlement(
        "6222020200112233445", "alipay", (ALIPAY,), ("1234",), (r"账单日(\\d{8})",), 0, 2)
    assert registry.dbt_var()["accounts"][1] == {
        "account": "6228480011223344556", "bank": "Custody Bank", "role": "custody",
        "currency": "CNY", "statement_source": "bank_camt053"}


@pytest.mark.parametrize("change, line, message", [
    (("role: custody", "role: custodian"), 16, "role 'custodian' is not one of"),
    (("currency: CNY\n    statement_source: bank_csv", "currency: yuan\n"
      "    statement_source: bank_csv"), 11, "currency 'yuan' is not an ISO 4217 code"),
    (("settles: [alipay]", "settles: [alipay, unionpay]"), 13, "channel 'unionpay' is not"),
    (("  - account: \"6228480011223344556\"", "  - account: \"6222020200112233445\""), 14,
     "registered twice"),
    (("    bank: Custody Bank\n", ""), 14, "'bank' is missing"),
    (("delay_days: [1, 3]", "delay_days: [3, 1]"), 6, "delay_days must be [earliest, latest]"),
    (("'账单日(\\\\d{8})'", "'账单日\\\\d{8}'"), 5, "it needs one, the bill date"),
    (("'账单日(\\\\d{8})'", "'账单日(\\\\d{8}'"), 5, "is not a regular expression"),
    (("    statement_source: bank_csv", "    statement_source: bank_csv\n    colour: red"), 13,
     "unknown key 'colour'"),
    (("payer_names: [支付宝（中国）网络技术有限公司]", "payer_names: []"), 13,
     "no payer_names or payer_accounts"),
])
def test_a_mistake_is_refused_naming_its_line(change, line, message):
    text = GOOD.replace(*change)
    assert text != GOOD
    with pytest.raises(accounts.AccountsError) as caught:
        accounts.parse(text, "include/accounts.yaml", {"bank_csv", "bank_camt053"})
    assert str(caught.value).startswith(f"include/accounts.yaml:{line}: "), caught.value
    assert message in str(caught.value)


def test_an_unknown_statement_source_is_refused_naming_its_line():
    with pytest.raises(accounts.AccountsError, match=r"^a.yaml:18: .*'bank_camt053' is not a"):
        accounts.parse(GOOD, "a.yaml", {"bank_csv"})


def test_broken_yaml_names_its_line():
    with pytest.raises(accounts.AccountsError, match=r"^a.yaml:9: not valid YAML"):
        accounts.parse(GOOD.replace("    bank: Generic Bank", "    bank: Generic: Bank"), "a.yaml")


def test_an_unregistered_accounts_statement_is_named_in_the_day_summary(clean, conn, capsys,
                                                                        tmp_path):
    settings = clean
    stranger = "6230580000012345678"
    run_day(settings, D1, {"bank_camt053": (
        f"camt053_{stranger}_20261120.xml",
        camt053(D1, [payout(5_000, serial="AS1")], account=stranger))})
    summary = pipeline.day_summary(settings, D1)
    assert summary["unregistered_accounts"] == [
        {"account": stranger, "source": "bank_camt053", "bookings": 1}]
    cli.print_summary(summary)
    assert f"UNREGISTERED {stranger} (bank_camt053, 1 bookings)" in capsys.readouterr().out
    # Its rows are loaded, in no project, and have no role; no other account is named.
    assert conn.execute("select account_role, kind from intermediate.int_transactions"
                        " where side = 'bank'").fetchall() == [(None, "booking")]
    assert conn.execute("select count(*) from marts.fct_outcomes where account = %s",
                        (stranger,)).fetchone()[0] == 0

    # Registering it is configuration only: the next build reconciles it.
    include = tmp_path / "include"
    shutil.copytree(settings.include_dir, include)
    registry = include / "accounts.yaml"
    registry.write_text(registry.read_text(encoding="utf-8") + (
        f'  - account: "{stranger}"\n    bank: New Bank\n    role: collection\n'
        "    currency: CNY\n    statement_source: bank_camt053\n    settles: [alipay]\n"),
        encoding="utf-8")
    transform.build(dataclasses.replace(settings, include_dir=include), D1)
    assert pipeline.day_summary(settings, D1)["unregistered_accounts"] == []
    assert conn.execute("select account_role, kind, channel from intermediate.int_transactions"
                        " where side = 'bank'").fetchall() == [
        ("collection", "unidentified_settlement", "alipay")]


def test_a_run_records_the_registry_among_the_rules_in_force(clean, conn, tmp_path):
    """Changing how payouts are recognised changes the digest every published day names."""
    settings = clean
    pipeline.start_run(settings, "run-a", D1)
    pipeline.fail_run(settings, "run-a", "done with it")
    include = tmp_path / "include"
    shutil.copytree(settings.include_dir, include)
    registry = include / "accounts.yaml"
    registry.write_text(registry.read_text(encoding="utf-8").replace(
        "delay_days: [1, 3]", "delay_days: [1, 5]", 1), encoding="utf-8")
    pipeline.start_run(dataclasses.replace(settings, include_dir=include), "run-b", D1)
    pipeline.fail_run(settings, "run-b", "done with it")
    runs = dict(conn.execute("select run_id, rules_digest from tally.runs").fetchall())
    rules = conn.execute("select rules from tally.runs where run_id = 'run-a'").fetchone()[0]
    assert rules["accounts"] == accounts.load(settings).dbt_var()
    assert runs["run-a"] != runs["run-b"]
