"""The publication gate: Great Expectations checkpoints on the day's invariants.

The GX project under expectations/gx is a committed file context. Its suites are written from
SUITES below by `tally gate init` (which refuses to change what is committed unless asked),
and each daily run validates the business date's batch through the checkpoint `daily_gate`.
Nothing is published unless every expectation holds.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import date

from tally.config import Settings

CHECKPOINT = "daily_gate"
DATASOURCE = "warehouse"
# GX substitutes ${...} from the environment at run time, so no credential is committed.
URL_VARIABLE = "TALLY_GX_WAREHOUSE_URL"

# (asset name, schema, table): tables validated per business date.
ASSETS = {
    "canonical_transactions": ("intermediate", "int_transactions"),
    "reconciliation_outcomes": ("marts", "fct_reconciliation_outcomes"),
}


def _suites():
    import great_expectations as gx

    expect = gx.expectations
    return {
        "reconciliation_completeness": ("canonical_transactions", [
            expect.ExpectColumnValuesToNotBeNull(column="transaction_key"),
            expect.UnexpectedRowsExpectation(
                description="Every canonical transaction has exactly one outcome",
                unexpected_rows_query=(
                    "select t.transaction_key, t.source, t.reference,"
                    " count(o.transaction_key) as outcomes"
                    " from {batch} t"
                    " left join marts.fct_reconciliation_outcomes o"
                    " on o.transaction_key = t.transaction_key"
                    " group by t.transaction_key, t.source, t.reference"
                    " having count(o.transaction_key) <> 1"
                ),
            ),
            expect.UnexpectedRowsExpectation(
                description="Rows loaded from each file all reach staging",
                unexpected_rows_query=(
                    "select f.file_id, f.original_name, f.row_count as rows_loaded,"
                    " count(s.file_id) as rows_staged"
                    " from tally.files f"
                    " left join (select file_id from staging.stg_platform__ledger"
                    " union all select file_id from staging.stg_bank__csv_statement) s"
                    " on s.file_id = f.file_id"
                    " where f.status = 'loaded'"
                    " and f.source in ('platform_ledger', 'bank_csv')"
                    " and f.business_date in"
                    " (select day_rows.business_date from {batch} as day_rows)"
                    " group by f.file_id, f.original_name, f.row_count"
                    " having f.row_count <> count(s.file_id)"
                ),
            ),
        ]),
        "reconciliation_outcomes": ("reconciliation_outcomes", [
            expect.ExpectColumnValuesToBeUnique(column="transaction_key"),
            expect.ExpectColumnValuesToNotBeNull(column="amount_minor"),
            expect.ExpectColumnValuesToBeInSet(column="outcome",
                                               value_set=["matched", "unmatched"]),
            expect.UnexpectedRowsExpectation(
                description="A matched row's counterpart is matched back to it, by the same rule",
                unexpected_rows_query=(
                    "select o.transaction_key, o.reference, o.counterpart_key"
                    " from {batch} o"
                    " left join marts.fct_reconciliation_outcomes c"
                    " on c.transaction_key = o.counterpart_key"
                    " where o.outcome = 'matched'"
                    " and (c.counterpart_key is distinct from o.transaction_key"
                    " or c.rule is distinct from o.rule)"
                ),
            ),
        ]),
    }


def _context(settings: Settings, mode: str = "file"):
    import great_expectations as gx

    os.environ.update({URL_VARIABLE: settings.pg.sqlalchemy_url})
    return gx.get_context(mode=mode, project_root_dir=str(settings.expectations_dir))


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
        try:
            asset = datasource.get_asset(asset_name)
        except LookupError:
            asset = datasource.add_table_asset(name=asset_name, table_name=table,
                                               schema_name=schema)
        try:
            batch_definitions[asset_name] = asset.get_batch_definition("business_date")
        except KeyError:
            batch_definitions[asset_name] = asset.add_batch_definition_daily(
                name="business_date", column="business_date")
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

    def summary(self) -> str:
        head = (f"gate {'passed' if self.passed else 'FAILED'} for {self.business_date}: "
                f"{self.evaluated - len(self.failures)}/{self.evaluated} expectations hold")
        return "\n".join([head, *(f"  - {f}" for f in self.failures)])

    def as_json(self) -> dict:
        return {"passed": self.passed, "evaluated": self.evaluated,
                "failures": [str(f) for f in self.failures]}


class GateFailed(RuntimeError):
    pass


def _describe(config) -> str:
    if config.description:
        return config.description
    kwargs = {k: v for k, v in config.kwargs.items() if k not in ("batch_id",)}
    return f"{config.type} {kwargs}"


def run(settings: Settings, business_date: date) -> GateResult:
    from great_expectations.exceptions.exceptions import NoAvailableBatchesError

    context = _context(settings)
    checkpoint = context.checkpoints.get(CHECKPOINT)
    try:
        outcome = checkpoint.run(batch_parameters={
            "year": business_date.year, "month": business_date.month, "day": business_date.day})
    except NoAvailableBatchesError:
        failure = Failure("reconciliation_completeness", "The business date has transactions", 0)
        return GateResult(business_date, False, 1, [failure])
    failures, evaluated = [], 0
    for validation in outcome.run_results.values():
        suite = validation.suite_name
        for result in validation.results:
            evaluated += 1
            if result.success:
                continue
            details = result.result or {}
            examples = (details.get("details", {}).get("unexpected_rows")
                        or details.get("partial_unexpected_list") or [])[:5]
            if result.exception_info and result.exception_info.get("raised_exception"):
                examples = [result.exception_info["exception_message"][:500]]
            failures.append(Failure(suite, _describe(result.expectation_config),
                                    details.get("observed_value", details.get("unexpected_count")),
                                    examples))
    return GateResult(business_date, not failures and outcome.success, evaluated, failures)
