"""The publication gate: Great Expectations checkpoints on the day's invariants.

The GX project under expectations/gx is a committed file context. Its suites are written from
SUITES below by `tally gate init` (which refuses to change what is committed unless asked),
and each daily run validates the business date's batch through the checkpoint `daily_gate`.
Nothing is published unless every expectation holds.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, date

from tally.config import Settings
from tally.money import EXPONENTS

CHECKPOINT = "daily_gate"
DATASOURCE = "warehouse"
# The committed datasource names its URL as this config variable, never the URL itself: each
# context is given the value when it is built (_context), so no credential is committed.
URL_VARIABLE = "TALLY_GX_WAREHOUSE_URL"

# (asset name, schema, table): tables validated per business date (their as_of_date column).
ASSETS = {
    "reconciliation_scope": ("intermediate", "int_recon__scope"),
    "reconciliation_outcomes": ("marts", "fct_outcomes"),
    "reconciliation_matches": ("marts", "fct_matches"),
    "balance_checks": ("marts", "fct_balance_checks"),
}
# Each asset is a query over one date's rows: the date being gated, which each run gives its
# connections as this setting (options in the URL). GX's own daily partition would filter on
# extract(year/month/day) of the column, which no index serves, and first list every date of
# the table to find the batch: two scans of every date ever built, per suite and expectation,
# so the gate grew with the history (11 s on the 2nd day at 100,000 a day, 22 s on the 30th).
DATE_SETTING = "tally.gate_date"
BATCH = "business_date"


def _asset_query(schema: str, table: str) -> str:
    return (f"select * from {schema}.{table}"
            f" where as_of_date = cast(current_setting('{DATE_SETTING}') as date)")


# Where the rows loaded from each source's files arrive: transaction sources in the canonical
# table (counted per file of the day); the settlement and balances files in their staging
# models (no window over them: a day's filter reaches the raw table's file index).
TRANSACTION_SOURCES = (
    "platform_ledger", "platform_custody_flows", "bank_csv", "bank_camt053", "bank_mt940",
    "bank_icbc_csv", "bank_cmb_csv", "bank_ccb_xls", "bank_abc_csv", "bank_boc_csv",
    "bank_bocom_csv", "alipay_bill", "wechatpay_trade_bill")
STAGED = {
    "platform_settlement": "staging.stg_platform__settlement",
    "platform_balances": "staging.stg_platform__balances",
}
BREAK_TYPES = ["missing_on_statement", "missing_on_platform", "amount_mismatch",
               "status_mismatch", "duplicate", "timing", "unidentified_settlement"]

# GX puts {batch} in a query as "(...) AS subselect" unless the query has a JOIN, in which
# case it is "(...)" and the query names it: queries below follow that rule.
# The batch's date, for queries that look beyond the batch's table: one value, worked out
# once (a CTE), so the planner sees an equality on a date rather than a semi-join with the
# batch, whose rows it cannot estimate (it guesses one, and then re-aggregates the day's rows
# for each file of the day in a nested loop: two minutes at 100,000 transactions a day).
_DAY_CTE = "day as materialized (select max(day_rows.as_of_date) as business_date" \
           " from {batch} as day_rows)"
_DAY = "(select day.business_date from day)"


_SOURCE_LIST = ", ".join(repr(s) for s in (*TRANSACTION_SOURCES, *STAGED))


def _values_in(description: str, column: str, values: list[str], key: str = "transaction_key"):
    """Rows whose `column` holds a value outside `values` (a null is not one), as GX's
    ExpectColumnValuesToBeInSet would find them. Not that expectation itself: on a query asset
    GX reads the table's columns by running the whole query and fetching every row (2.3 GiB in
    the gate's process at a million transactions a day)."""
    from tally.gx_expectations import UnexpectedRowsCountedOnce, counted

    listed = ", ".join(f"'{value}'" for value in values)
    return UnexpectedRowsCountedOnce(
        description=description,
        unexpected_rows_query=counted(
            f"select {key}, {column} from {{batch}}"
            f" where {column} is not null and {column} not in ({listed})"))


def _suites():
    from tally.gx_expectations import UnexpectedRowsCountedOnce, counted

    arrived = " union all ".join(
        ["select file_id, count(*) as rows from intermediate.int_transactions"
         f" where business_date = {_DAY} group by file_id"]
        + [f"select file_id, count(*) from {model} where business_date = {_DAY}"
           " group by file_id" for model in sorted(STAGED.values())])
    return {
        # The scope holds the day's new rows and the open items carried to it, nothing older:
        # each needs its one outcome, and each file of the day all its rows (counted at load).
        "reconciliation_completeness": ("reconciliation_scope", [
            UnexpectedRowsCountedOnce(
                description="Every row in scope has a transaction key",
                unexpected_rows_query=counted(
                    "select project, reference from {batch} where transaction_key is null"),
            ),
            UnexpectedRowsCountedOnce(
                description="Every open row has exactly one outcome in each of its projects",
                unexpected_rows_query=counted(
                    "select s.project, s.transaction_key, s.reference,"
                    " count(o.transaction_key) as outcomes"
                    " from {batch} s"
                    " left join marts.fct_outcomes o on o.as_of_date = s.as_of_date"
                    " and o.project = s.project and o.transaction_key = s.transaction_key"
                    " group by s.project, s.transaction_key, s.reference"
                    " having count(o.transaction_key) <> 1"
                ),
            ),
            UnexpectedRowsCountedOnce(
                description="Rows loaded from each file of the day all reach the reconciliation",
                unexpected_rows_query=counted(
                    f"with {_DAY_CTE}, arrived as materialized ({arrived})"
                    " select f.file_id, f.original_name, f.row_count as rows_loaded,"
                    " coalesce(a.rows, 0) as rows_arrived"
                    " from tally.files f"
                    " left join arrived a on a.file_id = f.file_id"
                    " where f.status = 'loaded'"
                    f" and f.source in ({_SOURCE_LIST})"
                    f" and f.business_date = {_DAY}"
                    " and f.row_count <> coalesce(a.rows, 0)"
                ),
            ),
        ]),
        "reconciliation_outcomes": ("reconciliation_outcomes", [
            # GROUP BY rather than GX's compound-uniqueness expectation, which is quadratic
            # on PostgreSQL (over ten minutes at a million rows).
            UnexpectedRowsCountedOnce(
                description="No row has two outcomes in a project on a date",
                unexpected_rows_query=counted(
                    "select project, transaction_key, count(*) as outcomes from {batch}"
                    " group by project, transaction_key having count(*) > 1"
                ),
            ),
            _values_in("Every outcome's currency is a known one", "currency", sorted(EXPONENTS)),
            UnexpectedRowsCountedOnce(
                description="Every outcome has an amount",
                unexpected_rows_query=counted(
                    "select project, transaction_key from {batch} where amount_minor is null"),
            ),
            _values_in("Every outcome is matched, suspense, break or resolved", "outcome",
                       ["matched", "suspense", "break", "resolved"]),
            _values_in("Every break type is a known one", "break_type", BREAK_TYPES),
            UnexpectedRowsCountedOnce(
                description="Every outcome belongs to a row in scope that day",
                unexpected_rows_query=counted(
                    "select o.project, o.transaction_key from {batch} o"
                    " left join intermediate.int_recon__scope s on s.as_of_date = o.as_of_date"
                    " and s.project = o.project and s.transaction_key = o.transaction_key"
                    " where s.transaction_key is null"
                ),
            ),
        ]),
        "balance_checks": ("balance_checks", [
            UnexpectedRowsCountedOnce(
                description="Every balance rolls forward and every platform-bank difference is "
                            "explained by the day's open items",
                unexpected_rows_query=counted(
                    "select check_type, account, subject, expected_minor, actual_minor,"
                    " difference_minor, explained_minor from {batch} where not passed"
                ),
            ),
            _values_in("Every balance check is of a known type", "check_type",
                       ["statement_rollforward", "platform_account_rollforward",
                        "settlement_trial_balance", "platform_vs_bank"], key="account"),
        ]),
        "reconciliation_matches": ("reconciliation_matches", [
            UnexpectedRowsCountedOnce(
                description="No platform or channel row is matched twice",
                unexpected_rows_query=counted(
                    "select project, left_key, count(*) as pairs from {batch}"
                    " where rule_kind <> 'group' group by project, left_key"
                    " having count(*) > 1"
                ),
            ),
            UnexpectedRowsCountedOnce(
                description="No statement row is matched twice outside a group rule",
                unexpected_rows_query=counted(
                    "select project, right_key, count(*) as pairs from {batch}"
                    " where rule_kind <> 'group' group by project, right_key"
                    " having count(*) > 1"
                ),
            ),
            UnexpectedRowsCountedOnce(
                description="Each pair keeps within the differences its rule allows",
                unexpected_rows_query=counted(
                    "select project, rule, left_key, right_key, amount_difference_minor"
                    " from {batch} where rule_kind = 'exact' and amount_difference_minor <> 0"
                ),
            ),
        ]),
    }


def _context(settings: Settings, mode: str = "file", project_root=None,
             business_date: date | None = None):
    import great_expectations as gx

    import tally.gx_expectations  # noqa: F401 - registers our expectation types with GX

    # GX resolves ${URL_VARIABLE} from the context's runtime environment (which wins over the
    # process environment and config_variables.yml): the URL goes from the settings to this
    # context only, not into os.environ (only config.py deals with the environment) nor into
    # any file of the GX project.
    url = settings.pg.sqlalchemy_url
    if business_date is not None:
        url += f"?options=-c%20{DATE_SETTING}%3D{business_date.isoformat()}"
    return gx.get_context(mode=mode,
                          project_root_dir=str(project_root or settings.expectations_dir),
                          runtime_environment={URL_VARIABLE: url})


def init_project(settings: Settings) -> list[str]:
    """Write the GX project (datasource, assets, suites, checkpoint). Idempotent: existing
    definitions are replaced with the ones in this module."""
    import great_expectations as gx

    context = _context(settings)
    try:
        datasource = context.data_sources.get(DATASOURCE)
    except (KeyError, ValueError):
        datasource = context.data_sources.add_postgres(
            name=DATASOURCE, connection_string="${" + URL_VARIABLE + "}")
    batch_definitions = {}
    for asset_name, (schema, table) in ASSETS.items():
        query = _asset_query(schema, table)
        try:
            asset = datasource.get_asset(asset_name)
            if getattr(asset, "query", None) != query:  # a table asset of an earlier version
                datasource.delete_asset(asset_name)
                raise LookupError(asset_name)
        except LookupError:
            asset = datasource.add_query_asset(name=asset_name, query=query)
        try:
            batch_definitions[asset_name] = asset.get_batch_definition(BATCH)
        except KeyError:
            batch_definitions[asset_name] = asset.add_batch_definition_whole_table(name=BATCH)
    validations = []
    for suite_name, (asset_name, expectations) in _suites().items():
        suite = gx.ExpectationSuite(name=suite_name, expectations=expectations)
        suite = context.suites.add_or_update(suite)
        validation = gx.ValidationDefinition(name=suite_name, data=batch_definitions[asset_name],
                                             suite=suite)
        validations.append(context.validation_definitions.add_or_update(validation))
    context.checkpoints.add_or_update(gx.Checkpoint(
        name=CHECKPOINT, validation_definitions=validations,
        result_format={"result_format": "COMPLETE", "partial_unexpected_count": 5},
    ))
    _disable_analytics(settings)
    return [v.name for v in validations]


def _disable_analytics(settings: Settings) -> None:
    """No analytics events; no progress bars in task logs."""
    path = settings.expectations_dir / "gx" / "great_expectations.yml"
    text = re.sub(r"(?m)^analytics_enabled:.*$", "analytics_enabled: false", path.read_text())
    if "progress_bars:" not in text:
        text += "progress_bars:\n  globally: false\n"
    path.write_text(text)


@dataclass
class Failure:
    suite: str
    expectation: str
    observed: object
    examples: list = field(default_factory=list)

    def __str__(self) -> str:
        text = f"{self.suite}: {self.expectation} (observed {self.observed})"
        if self.examples:
            text += "\n    first offending rows: " + json.dumps(self.examples, default=str)
        return text


@dataclass
class GateResult:
    business_date: date
    passed: bool
    evaluated: int
    failures: list[Failure]
    data_docs: str | None = None  # where this run's GX Data Docs were stored
    # Projects reconciled without a counterpart source (their rows wait): not a failure, but
    # the verdict says so, so nobody reads a passed gate as a complete day.
    incomplete: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        head = (f"gate {'passed' if self.passed else 'FAILED'} for {self.business_date}: "
                f"{self.evaluated - len(self.failures)}/{self.evaluated} expectations hold")
        waiting = [f"  - incomplete: {project} awaiting {sources}"
                   for project, sources in self.incomplete.items()]
        return "\n".join([head, *(f"  - {f}" for f in self.failures), *waiting])

    def as_json(self) -> dict:
        return {"passed": self.passed, "evaluated": self.evaluated,
                "failures": [str(f) for f in self.failures], "data_docs": self.data_docs,
                "incomplete": self.incomplete}


class GateFailed(RuntimeError):
    pass


def _exception_messages(info) -> list[str]:
    """GX reports an expectation's errors either flat or keyed by metric; collect both."""
    if not info:
        return []
    if info.get("raised_exception"):
        return [info.get("exception_message") or "error"]
    return [m for value in info.values() if isinstance(value, dict)
            for m in _exception_messages(value)]


def _describe(config) -> str:
    if config.description:
        return config.description
    kwargs = {k: v for k, v in config.kwargs.items() if k not in ("batch_id",)}
    return f"{config.type} {kwargs}"


def run(settings: Settings, business_date: date) -> GateResult:
    """Run the committed checkpoint for the date, from a fresh copy of the GX project: its
    validation results and Data Docs then hold this run only (they go to object storage), and
    nothing piles up in the repository however many days run."""
    import shutil
    import tempfile

    run_dir = settings.home / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gate-", dir=run_dir) as scratch:
        shutil.copytree(settings.expectations_dir / "gx", f"{scratch}/gx",
                        ignore=shutil.ignore_patterns("uncommitted"))
        context = _context(settings, project_root=scratch, business_date=business_date)
        return _run(settings, context, business_date)


# Suites over tables a day may rightly have no rows in: a platform that sends no balances file
# has no balance checks, and a day may make no pair. Every other suite needs its rows.
OPTIONAL_SUITES = {"balance_checks", "reconciliation_matches"}


def _run(settings: Settings, context, business_date: date) -> GateResult:
    checkpoint = context.checkpoints.get(CHECKPOINT)
    files_loaded, empty_assets, incomplete = _day_state(settings, business_date)
    validated, empty = [], []
    # Each validation on its own (as the checkpoint would run them, results stored the same
    # way), so that a table with no rows for the day is judged by whether it may be empty.
    for definition in checkpoint.validation_definitions:
        if definition.data.data_asset.name in empty_assets:
            if definition.name not in OPTIONAL_SUITES:
                empty.append(definition.name)
            continue
        validated.append(definition.run(result_format=checkpoint.result_format))
    # Open items carry over, so a day's scope is never empty once history exists: a day for
    # which no file at all was loaded is what has no transactions.
    if "reconciliation_completeness" in empty or not files_loaded:
        failure = Failure("reconciliation_completeness", "The business date has transactions", 0)
        return GateResult(business_date, False, 1, [failure])
    failures = [Failure(name, "The business date has rows to check", 0) for name in empty]
    evaluated = len(empty)
    for validation in validated:
        suite = validation.suite_name
        for result in validation.results:
            evaluated += 1
            if result.success:
                continue
            details = result.result or {}
            examples = (details.get("details", {}).get("unexpected_rows")
                        or details.get("partial_unexpected_list") or [])[:5]
            errors = _exception_messages(result.exception_info)
            if errors:
                examples = [errors[0][:500]]
            failures.append(Failure(suite, _describe(result.expectation_config),
                                    details.get("observed_value", details.get("unexpected_count")),
                                    examples))
    passed = not failures and all(v.success for v in validated)
    result = GateResult(business_date, passed, evaluated, failures)
    result.data_docs = store_data_docs(settings, context, business_date)
    result.incomplete = incomplete
    return result


def _day_state(settings: Settings, business_date: date) -> tuple[bool, set[str], dict[str, str]]:
    """(whether any file was loaded for the date, the assets with no row for it, the projects
    left incomplete), read over one connection."""
    from tally.publish import alerts
    from tally.services import postgres

    with postgres.connect(settings, autocommit=True) as conn:
        loaded = conn.execute("select exists (select 1 from tally.files where business_date = %s"
                              " and status = 'loaded')", (business_date,)).fetchone()[0]
        empty = {name for name, (schema, table) in ASSETS.items()
                 if not conn.execute(f"select exists (select 1 from {schema}.{table}"
                                     " where as_of_date = %s)", (business_date,)).fetchone()[0]}
        return loaded, empty, alerts.incomplete_projects(conn, business_date)


def store_data_docs(settings: Settings, context, business_date: date) -> str:
    """Build the GX Data Docs site and keep a copy of it in object storage, per run, so the
    validation behind every published (or refused) day can be looked at later."""
    from datetime import datetime
    from pathlib import Path
    from urllib.parse import unquote, urlparse

    from tally import storage

    site = context.build_data_docs(site_names=["local_site"])["local_site"]
    root = Path(unquote(urlparse(site).path)).parent
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    prefix = f"data-docs/{business_date.isoformat()}/{stamp}/"
    s3 = storage.client(settings)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        storage.put_if_absent(s3, settings.s3.published_bucket,
                              prefix + path.relative_to(root).as_posix(), path.read_bytes())
    return f"s3://{settings.s3.published_bucket}/{prefix}index.html"
