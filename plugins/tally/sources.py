"""Source configurations: how each statement source's files are read (include/sources/*.yaml)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tally.config import Settings


@dataclass(frozen=True)
class AmountSpec:
    currency_field: str | None = None  # the column holding the ISO currency code
    currency: str | None = None  # or a fixed currency for the whole source
    thousands: str = ""  # thousands separator to strip ("," in "1,234.50")
    decimal_comma: bool = False  # "1234,50" (MT940)
    blank_is_zero: bool = False
    excess_precision: str = "reject"  # or "flag": keep text, round half-even, mark inexact


def _raw_columns(columns, amounts) -> list[str]:
    minor = [f"{name}_minor" for name in amounts]
    flags = [f"{name}_inexact" for name, spec in amounts.items()
             if spec.excess_precision == "flag"]
    return [*columns, *minor, *flags]


@dataclass(frozen=True)
class TableSpec:
    """A secondary table a parser produces beside the main rows (e.g. statement balances)."""

    columns: list[str]
    required: list[str] = field(default_factory=list)
    amounts: dict[str, AmountSpec] = field(default_factory=dict)

    @property
    def raw_columns(self) -> list[str]:
        return _raw_columns(self.columns, self.amounts)


@dataclass(frozen=True)
class SourceConfig:
    source: str
    side: str
    version: int
    parser: str
    extensions: list[str]
    encoding: str
    delimiter: str
    columns: dict[str, str]
    required: list[str]
    amounts: dict[str, AmountSpec]
    allowed_values: dict[str, list[str]] = field(default_factory=dict)
    checks: list[dict] = field(default_factory=list)
    tables: dict[str, TableSpec] = field(default_factory=dict)
    # column -> strptime format; a non-empty value must parse with it (e.g. "%Y-%m-%d %H:%M:%S")
    timestamps: dict[str, str] = field(default_factory=dict)
    # Parser-specific settings (header and footer patterns, preamble, sheet names, ...).
    options: dict = field(default_factory=dict)
    # How a channel prints its fee column (FEE_SIGNS); staging turns it into a signed cost.
    fee_sign: str | None = None
    description: str = ""
    timezone: str = "Asia/Shanghai"
    digest: str = ""

    @property
    def parser_version(self) -> str:
        """What the manifest records: config version plus a hash of its exact text."""
        return f"{self.version}+{self.digest[:12]}"

    @property
    def raw_columns(self) -> list[str]:
        """Columns of the raw table after file_id and line_no: texts as given, then minor
        units, then inexact flags."""
        return _raw_columns(self.columns, self.amounts)

    def table_name(self, table: str | None = None) -> str:
        """raw.<source> for the main rows, raw.<source>__<table> for a secondary table."""
        return f"raw.{self.source}" if table is None else f"raw.{self.source}__{table}"


# A channel's fee column as printed -> the canonical fee_minor, a signed cost (positive: fee
# charged, negative: fee returned with a refund). The dbt macro fee_cost implements each.
FEE_SIGNS = {
    "as_printed_cost": "printed as the cost: positive charged, negative returned",
    "as_printed_deduction": "printed as its effect on the payout: negative charged, "
                            "positive returned",
    "charged_on_payments": "printed unsigned: charged on payment rows, returned on refund rows",
}


class ConfigError(ValueError):
    pass


def _amounts(doc: dict) -> dict[str, AmountSpec]:
    return {name: AmountSpec(**(spec or {})) for name, spec in doc.pop("amounts", {}).items()}


def parse_config(text: str) -> SourceConfig:
    doc = yaml.safe_load(text)
    amounts = _amounts(doc)
    tables = {}
    for name, spec in doc.pop("tables", {}).items():
        table_amounts = _amounts(spec)
        tables[name] = TableSpec(amounts=table_amounts, **spec)
    config = SourceConfig(amounts=amounts, tables=tables,
                          digest=hashlib.sha256(text.encode()).hexdigest(), **doc)
    if config.fee_sign is not None and config.fee_sign not in FEE_SIGNS:
        raise ConfigError(f"source {config.source}: fee_sign {config.fee_sign!r} is not one of "
                          f"{list(FEE_SIGNS)}")
    return config


def load_all(settings: Settings) -> dict[str, SourceConfig]:
    configs = {}
    for path in sorted(Path(settings.include_dir, "sources").glob("*.yaml")):
        config = parse_config(path.read_text(encoding="utf-8"))
        configs[config.source] = config
    return configs
